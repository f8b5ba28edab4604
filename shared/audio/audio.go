// Package audio extracts a lesson's speech from its source video for
// recognition (DESIGN.md section 5, Speech-to-Text v2): mono 16 kHz FLAC, cut
// into segments short enough for the recognition model, written next to the
// source video in the raw bucket as
//
//	lessons/{lessonId}/v{version}/audio/seg-NNN.flac
//
// with object metadata lessonId, version, offsetSeconds and totalSeconds
// (what stitching the segments' words back onto one timeline needs, and the
// contract local/speech reads).
//
// Nothing goes through local disk or memory whole: ffmpeg reads the video
// from a loopback HTTP server that answers Range requests with Cloud Storage
// range reads (an MP4 may keep its index at the end, so ffmpeg must seek),
// and each segment's FLAC streams from ffmpeg's stdout into a resumable
// upload, hashed on the way. The SHA-256 over every segment in order names
// the audio: the same video, cut the same way, gives the same hash, so a new
// lesson version whose video did not change reuses its transcript.
//
// FLAC rather than Ogg Opus: Speech-to-Text recommends lossless audio for
// accuracy, and the size FLAC costs (about 60 MB an hour at 16 kHz mono)
// lives only as long as the raw bucket keeps derived files. A FLAC written
// to a pipe leaves the total sample count in its header 0 (ffmpeg cannot
// seek back to fill it in); decoders, the real service and local/speech read
// such files.
package audio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/logging"
)

// Segment object metadata keys (local/speech reads the same names).
const (
	MetaLessonID = "lessonId"
	MetaVersion  = "version"
	MetaOffset   = "offsetSeconds"
	MetaTotal    = "totalSeconds"
)

// SampleRate is the rate segments are encoded at: what Speech-to-Text's
// models are trained on; more only costs bytes.
const SampleRate = 16000

// ContentType of a segment object.
const ContentType = "audio/flac"

// uploadChunk bounds what the upload of one segment holds in memory (the
// storage client buffers one chunk to retry it), so an hour of audio costs
// the same memory as a minute.
const uploadChunk = 4 << 20

// ErrNoAudio marks a source video without an audio stream: there is nothing
// to transcribe, and trying again will not change that.
var ErrNoAudio = errors.New("the source video has no audio track")

// Options configures an Extractor.
type Options struct {
	// SegmentSeconds is the longest a segment may be. Segments of one
	// lesson are of equal length, each at most this.
	SegmentSeconds float64
	// FFmpeg and FFprobe are the tools' paths; "" means "ffmpeg" and
	// "ffprobe" in PATH.
	FFmpeg, FFprobe string
}

// Extractor cuts source videos in Cloud Storage into audio segments in
// Cloud Storage. It is safe for concurrent use; create one per instance.
type Extractor struct {
	storage *storage.Client
	opts    Options
}

// New returns an Extractor writing through st.
func New(st *storage.Client, opts Options) (*Extractor, error) {
	if st == nil {
		return nil, errors.New("audio: storage client is nil")
	}
	if !(opts.SegmentSeconds >= 1) {
		return nil, fmt.Errorf("audio: segment length %v s: want at least 1 s", opts.SegmentSeconds)
	}
	if opts.FFmpeg == "" {
		opts.FFmpeg = "ffmpeg"
	}
	if opts.FFprobe == "" {
		opts.FFprobe = "ffprobe"
	}
	return &Extractor{storage: st, opts: opts}, nil
}

// Source is the video to extract from.
type Source struct {
	Bucket, Object string
}

// Dest is where the segments go: Prefix + "seg-NNN.flac" in Bucket, each
// with Metadata plus its offsetSeconds and totalSeconds.
type Dest struct {
	Bucket   string
	Prefix   string
	Metadata map[string]string
}

// Segment is one extracted piece of audio.
type Segment struct {
	Index  int
	Object string
	// URI is gs://bucket/object, what a recognition request names.
	URI string
	// Offset is where the segment starts in the lesson's audio, seconds;
	// Duration how long it was cut to be.
	Offset, Duration float64
	Bytes            int64
}

// Result is what Extract made.
type Result struct {
	Segments []Segment
	// DurationSeconds is the audio's length (of the audio stream when the
	// container says, else of the container).
	DurationSeconds float64
	// SHA256 is the hex SHA-256 of every segment's bytes, in order.
	SHA256 string
	Bytes  int64
	// SegmentSeconds is the length each segment was cut to (the last may
	// be a little longer or shorter, as the audio ends).
	SegmentSeconds float64
}

// SegmentObject is the name of segment i under prefix.
func SegmentObject(prefix string, i int) string {
	return fmt.Sprintf("%sseg-%03d.flac", prefix, i)
}

// Extract probes src and writes its audio as segments to dst. Its errors
// are failure.Permanent when the source can never give audio (missing,
// empty, not a media file, no audio track: ErrNoAudio) and retryable
// otherwise (Cloud Storage failing, the request cancelled).
func (x *Extractor) Extract(ctx context.Context, src Source, dst Dest) (Result, error) {
	obj := x.storage.Bucket(src.Bucket).Object(src.Object)
	attrs, err := obj.Attrs(ctx)
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return Result{}, failure.Permanentf("source video gs://%s/%s not found", src.Bucket, src.Object)
	case err != nil:
		return Result{}, failure.Retryablef("source video gs://%s/%s: %w", src.Bucket, src.Object, err)
	case attrs.Size == 0:
		return Result{}, failure.Permanentf("source video gs://%s/%s is empty (0 bytes)", src.Bucket, src.Object)
	}
	// Pinned to the generation read here: a video replaced while it is
	// being cut must not mix two files.
	srv, err := serveObject(obj.Generation(attrs.Generation), attrs)
	if err != nil {
		return Result{}, failure.Retryablef("serve source video to ffmpeg: %w", err)
	}
	defer srv.close()

	info, err := x.probe(ctx, srv)
	if err != nil {
		return Result{}, fmt.Errorf("probe gs://%s/%s: %w", src.Bucket, src.Object, err)
	}
	windows := plan(info.duration, x.opts.SegmentSeconds)
	log := logging.FromContext(ctx)
	log.DebugContext(ctx, "audio extraction planned", "source", "gs://"+src.Bucket+"/"+src.Object,
		"durationSeconds", info.duration, "segments", len(windows))

	res := Result{DurationSeconds: info.duration, SegmentSeconds: windows[0].length}
	hash := sha256.New()
	total := strconv.FormatFloat(info.duration, 'f', 3, 64)
	for i, w := range windows {
		seg := Segment{Index: i, Object: SegmentObject(dst.Prefix, i), Offset: w.offset, Duration: w.length}
		seg.URI = "gs://" + dst.Bucket + "/" + seg.Object
		meta := make(map[string]string, len(dst.Metadata)+2)
		for k, v := range dst.Metadata {
			meta[k] = v
		}
		meta[MetaOffset] = strconv.FormatFloat(w.offset, 'f', 3, 64)
		meta[MetaTotal] = total
		start := time.Now()
		n, err := x.segment(ctx, srv, w, i == len(windows)-1, x.storage.Bucket(dst.Bucket).Object(seg.Object), meta, hash)
		if err != nil {
			return Result{}, fmt.Errorf("audio segment %d of gs://%s/%s: %w", i, src.Bucket, src.Object, err)
		}
		seg.Bytes = n
		res.Bytes += n
		res.Segments = append(res.Segments, seg)
		log.DebugContext(ctx, "audio segment written", "uri", seg.URI, "offsetSeconds", w.offset,
			"bytes", n, "seconds", time.Since(start).Seconds())
	}
	res.SHA256 = hex.EncodeToString(hash.Sum(nil))
	return res, nil
}

// segment encodes one window into obj, feeding its bytes to hash too. The
// upload only completes when ffmpeg succeeded: a failed segment leaves no
// object (its writer's context is cancelled).
func (x *Extractor) segment(ctx context.Context, srv *objectServer, w window, last bool, obj *storage.ObjectHandle, meta map[string]string, hash io.Writer) (int64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ow := obj.NewWriter(wctx)
	ow.ContentType = ContentType
	ow.Metadata = meta
	ow.ChunkSize = uploadChunk

	args := []string{
		"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
		// Before -i: a fast seek by the container's index, then decoding
		// from there to the exact time.
		"-ss", seconds(w.offset), "-i", srv.url,
	}
	if !last {
		args = append(args, "-t", seconds(w.length))
	}
	args = append(args,
		"-map", "0:a:0", "-vn", "-sn", "-dn",
		"-ac", "1", "-ar", strconv.Itoa(SampleRate), "-sample_fmt", "s16",
		"-c:a", "flac",
		// No tags, no encoder version: the same audio gives the same bytes
		// whatever the source's tags or the ffmpeg build, so its hash finds
		// the transcript made of it before.
		"-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
		"-f", "flac", "pipe:1",
	)
	var n int64
	err := x.run(ctx, srv, x.opts.FFmpeg, args, func(stdout io.Reader) error {
		var err error
		n, err = io.Copy(io.MultiWriter(ow, hash), stdout)
		if err != nil {
			return failure.Retryablef("upload gs://%s/%s: %w", obj.BucketName(), obj.ObjectName(), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, failure.Permanentf("ffmpeg produced no audio for %s s at %s s", seconds(w.length), seconds(w.offset))
	}
	if err := ow.Close(); err != nil {
		return 0, failure.Retryablef("upload gs://%s/%s: %w", obj.BucketName(), obj.ObjectName(), err)
	}
	return n, nil
}

// window is one segment's span of the audio, seconds.
type window struct {
	offset, length float64
}

// plan cuts total seconds into the fewest equal windows of at most max
// seconds. Equal lengths rather than max-length windows and a remainder:
// no segment is a sliver too short to carry a word. Times are whole
// milliseconds, so what ffmpeg is asked for and what the metadata says
// agree exactly.
func plan(total, max float64) []window {
	n := int(math.Ceil(total/max - 1e-9))
	if n < 1 {
		n = 1
	}
	ms := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	out := make([]window, n)
	for i := range out {
		off := ms(float64(i) * total / float64(n))
		end := ms(float64(i+1) * total / float64(n))
		out[i] = window{offset: off, length: ms(end - off)}
	}
	return out
}

// seconds formats seconds for ffmpeg's command line.
func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }
