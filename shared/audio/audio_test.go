package audio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/shared/failure"
)

// media holds the test videos, made once by TestMain with ffmpeg.
var media struct {
	tone     string // 20 s, tone + test pattern, MP4 with its index at the end
	retagged string // the same streams remuxed with other tags, index at the start
	silent   string // 2 s of video, no audio track
	garbage  string // bytes that are no media format
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "audio-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := makeMedia(dir); err != nil {
		// No skip: the machine is expected to have ffmpeg (scripts/install-deps.sh).
		fmt.Fprintf(os.Stderr, "audio tests need ffmpeg and ffprobe: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func makeMedia(dir string) error {
	if err := CheckTools(context.Background()); err != nil {
		return err
	}
	media.tone = filepath.Join(dir, "tone.mp4")
	media.retagged = filepath.Join(dir, "retagged.mp4")
	media.silent = filepath.Join(dir, "silent.mp4")
	media.garbage = filepath.Join(dir, "garbage.mp4")
	if err := ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=20",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=20",
		"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "64k", "-shortest", media.tone); err != nil {
		return err
	}
	if err := ffmpeg("-i", media.tone, "-c", "copy", "-metadata", "title=Re-uploaded master", "-movflags", "+faststart", media.retagged); err != nil {
		return err
	}
	if err := ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2",
		"-c:v", "libx264", "-preset", "ultrafast", media.silent); err != nil {
		return err
	}
	junk := bytes.Repeat([]byte("not a video, just bytes. "), 4000)
	return os.WriteFile(media.garbage, junk, 0o644)
}

func ffmpeg(args ...string) error {
	out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg %v: %w: %s", args, err, out)
	}
	return nil
}

type env struct {
	gcs *gcs.Server
	st  *storage.Client
	x   *Extractor
}

func newEnv(t *testing.T, segment float64) *env {
	t.Helper()
	srv, err := gcs.Start(gcs.Options{Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	st := srv.Client()
	t.Cleanup(func() { st.Close() })
	x, err := New(st, Options{SegmentSeconds: segment})
	if err != nil {
		t.Fatal(err)
	}
	return &env{gcs: srv, st: st, x: x}
}

func (e *env) upload(t *testing.T, object, file string) Source {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	w := e.st.Bucket("raw").Object(object).NewWriter(t.Context())
	w.ContentType = "video/mp4"
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return Source{Bucket: "raw", Object: object}
}

func (e *env) read(t *testing.T, object string) ([]byte, *storage.ObjectAttrs) {
	t.Helper()
	obj := e.st.Bucket("raw").Object(object)
	attrs, err := obj.Attrs(t.Context())
	if err != nil {
		t.Fatalf("%s: %v", object, err)
	}
	r, err := obj.NewReader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b, attrs
}

func (e *env) objects(t *testing.T, prefix string) []string {
	t.Helper()
	var names []string
	it := e.st.Bucket("raw").Objects(t.Context(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if err != nil {
			break
		}
		names = append(names, a.Name)
	}
	return names
}

// probeFile is what ffprobe says of a segment's bytes: sample rate,
// channels and duration of its audio.
func probeFile(t *testing.T, b []byte) (rate, channels int, secs float64) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "seg.flac")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// A piped FLAC has no total in its header; decoding counts it.
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-select_streams", "a:0",
		"-show_entries", "stream=codec_name,sample_rate,channels", "-show_entries", "format=duration",
		"-of", "default=noprint_wrappers=1", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe segment: %v: %s", err, out)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		kv[k] = v
	}
	if kv["codec_name"] != "flac" {
		t.Errorf("segment codec %q, want flac", kv["codec_name"])
	}
	rate, _ = strconv.Atoi(kv["sample_rate"])
	channels, _ = strconv.Atoi(kv["channels"])
	secs = decodedSeconds(t, f)
	return rate, channels, secs
}

// decodedSeconds decodes a file to count its audio's real length.
func decodedSeconds(t *testing.T, f string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostats", "-i", f, "-f", "s16le", "-ac", "1", "-ar", "16000", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", f, err)
	}
	return float64(len(out)) / 2 / 16000
}

// A 20-second video with its index at the end, cut at most 8 s a segment,
// becomes three equal FLAC segments, mono 16 kHz, back to back, each with
// the metadata stitching needs; the hash is the SHA-256 of their bytes in
// order.
func TestExtractCutsEqualSegments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	src := e.upload(t, "lessons/L1/v1/source.mp4", media.tone)
	res, err := e.x.Extract(t.Context(), src, Dest{Bucket: "raw", Prefix: "lessons/L1/v1/audio/",
		Metadata: map[string]string{MetaLessonID: "L1", MetaVersion: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.DurationSeconds-20) > 0.1 {
		t.Errorf("duration %.3f s, want 20", res.DurationSeconds)
	}
	if len(res.Segments) != 3 {
		t.Fatalf("%d segments, want 3", len(res.Segments))
	}
	wantOffsets := []string{"0.000", "6.667", "13.333"}
	all := sha256.New()
	var covered float64
	for i, seg := range res.Segments {
		want := fmt.Sprintf("lessons/L1/v1/audio/seg-%03d.flac", i)
		if seg.Object != want || seg.URI != "gs://raw/"+want {
			t.Errorf("segment %d at %s (%s), want %s", i, seg.Object, seg.URI, want)
		}
		b, attrs := e.read(t, seg.Object)
		all.Write(b)
		if int64(len(b)) != seg.Bytes {
			t.Errorf("segment %d: %d bytes stored, Extract says %d", i, len(b), seg.Bytes)
		}
		if attrs.ContentType != ContentType {
			t.Errorf("segment %d content type %q", i, attrs.ContentType)
		}
		m := attrs.Metadata
		if m[MetaLessonID] != "L1" || m[MetaVersion] != "1" || m[MetaOffset] != wantOffsets[i] || m[MetaTotal] != "20.000" {
			t.Errorf("segment %d metadata %v, want lesson L1 v1 at %s of 20.000", i, m, wantOffsets[i])
		}
		if got := strconv.FormatFloat(seg.Offset, 'f', 3, 64); got != wantOffsets[i] {
			t.Errorf("segment %d offset %s, want %s", i, got, wantOffsets[i])
		}
		rate, ch, secs := probeFile(t, b)
		if rate != SampleRate || ch != 1 {
			t.Errorf("segment %d: %d Hz, %d channel(s); want 16000 Hz mono", i, rate, ch)
		}
		if math.Abs(secs-seg.Duration) > 0.05 {
			t.Errorf("segment %d holds %.3f s of audio, cut to %.3f s", i, secs, seg.Duration)
		}
		covered += secs
	}
	if math.Abs(covered-20) > 0.1 {
		t.Errorf("segments hold %.3f s together, want the 20 s of the video", covered)
	}
	if got := hex.EncodeToString(all.Sum(nil)); got != res.SHA256 {
		t.Errorf("SHA256 %s, want the hash of the segments' bytes in order %s", res.SHA256, got)
	}
}

// The hash names the audio, not the file: the same streams remuxed with
// other tags and the index moved to the front hash the same, and a version
// written under another prefix with other metadata too.
func TestExtractHashIsTheAudios(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	a, err := e.x.Extract(t.Context(), e.upload(t, "lessons/L1/v1/source.mp4", media.tone),
		Dest{Bucket: "raw", Prefix: "lessons/L1/v1/audio/", Metadata: map[string]string{MetaVersion: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.x.Extract(t.Context(), e.upload(t, "lessons/L1/v2/source.mp4", media.retagged),
		Dest{Bucket: "raw", Prefix: "lessons/L1/v2/audio/", Metadata: map[string]string{MetaVersion: "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 != b.SHA256 || a.SHA256 == "" {
		t.Errorf("same audio hashed %s and %s", a.SHA256, b.SHA256)
	}
}

// What can never give audio fails permanently, naming why, and leaves no
// segment behind.
func TestExtractRefusesWhatHasNoAudio(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	empty := "lessons/E/v1/source.mp4"
	w := e.st.Bucket("raw").Object(empty).NewWriter(t.Context())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"no audio track", e.upload(t, "lessons/S/v1/source.mp4", media.silent), "no audio track"},
		{"not a media file", e.upload(t, "lessons/G/v1/source.mp4", media.garbage), "cannot be read as media"},
		{"empty object", Source{Bucket: "raw", Object: empty}, "is empty (0 bytes)"},
		{"missing object", Source{Bucket: "raw", Object: "lessons/M/v1/source.mp4"}, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := strings.TrimSuffix(tt.src.Object, "source.mp4") + "audio/"
			_, err := e.x.Extract(t.Context(), tt.src, Dest{Bucket: "raw", Prefix: prefix})
			if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a permanent failure saying %q", err, tt.want)
			}
			if tt.name == "no audio track" && !errors.Is(err, ErrNoAudio) {
				t.Errorf("%v is not ErrNoAudio", err)
			}
			if objs := e.objects(t, prefix); len(objs) != 0 {
				t.Errorf("left %v behind", objs)
			}
		})
	}
}

// When Cloud Storage fails under ffmpeg, ffmpeg's complaint is retryable:
// the video may be fine.
func TestStorageFailureUnderFFmpegIsRetryable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	src := e.upload(t, "lessons/L1/v1/source.mp4", media.tone)
	obj := e.st.Bucket(src.Bucket).Object(src.Object)
	attrs, err := obj.Attrs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serveObject(obj.Generation(attrs.Generation), attrs)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	if err := obj.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = e.x.probe(t.Context(), srv)
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "could not read the source video") {
		t.Fatalf("got %v, want a retryable failure to read the source", err)
	}
}

// Cancelling the request kills ffmpeg: the call returns at once, retryable.
func TestCancelKillsFFmpeg(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	requested := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case requested <- struct{}{}:
		default:
		}
		<-r.Context().Done() // never answers
	}))
	defer hang.Close()
	srv := &objectServer{url: hang.URL + "/source"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- e.x.run(ctx, srv, "ffmpeg", []string{"-hide_banner", "-loglevel", "error", "-i", srv.url, "-f", "null", "-"},
			func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err })
	}()
	select {
	case <-requested:
	case <-time.After(10 * time.Second):
		t.Fatal("ffmpeg never asked for the source")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || failure.IsPermanent(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want a retryable cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ffmpeg still running 10 s after the cancellation")
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		total, max float64
		want       []window
	}{
		{20, 8, []window{{0, 6.667}, {6.667, 6.666}, {13.333, 6.667}}},
		{10, 19 * 60, []window{{0, 10}}},
		{2280, 1140, []window{{0, 1140}, {1140, 1140}}}, // exactly two windows, not three
		{3600, 1140, []window{{0, 900}, {900, 900}, {1800, 900}, {2700, 900}}},
		{0.5, 8, []window{{0, 0.5}}},
	}
	for _, tt := range tests {
		got := plan(tt.total, tt.max)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("plan(%v, %v) = %v, want %v", tt.total, tt.max, got, tt.want)
		}
		for _, w := range got {
			if w.length > tt.max {
				t.Errorf("plan(%v, %v): window %v over the maximum", tt.total, tt.max, w)
			}
		}
	}
}

func TestParseRange(t *testing.T) {
	t.Parallel()
	const size = 1000
	tests := []struct {
		h           string
		start, end  int64
		partial, ok bool
	}{
		{"", 0, 999, false, true},
		{"bytes=0-", 0, 999, true, true},
		{"bytes=990-", 990, 999, true, true},
		{"bytes=10-19", 10, 19, true, true},
		{"bytes=10-5000", 10, 999, true, true},
		{"bytes=-100", 900, 999, true, true},
		{"bytes=-5000", 0, 999, true, true},
		{"bytes=1000-", 0, 0, false, false},
		{"bytes=0-1,5-9", 0, 999, false, true},
		{"items=0-1", 0, 999, false, true},
	}
	for _, tt := range tests {
		s, e, p, ok := parseRange(tt.h, size)
		if s != tt.start || e != tt.end || p != tt.partial || ok != tt.ok {
			t.Errorf("parseRange(%q) = %d, %d, %v, %v; want %d, %d, %v, %v", tt.h, s, e, p, ok, tt.start, tt.end, tt.partial, tt.ok)
		}
	}
}
