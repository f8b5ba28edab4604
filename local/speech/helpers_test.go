package speech_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	speech "cloud.google.com/go/speech/apiv2"
	"cloud.google.com/go/speech/apiv2/speechpb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/sample"
	localspeech "github.com/coursekb/pipeline/local/speech"
)

const (
	rawBucket = "raw"
	outBucket = "artifacts"
	lesson1   = "pyL1vars001" // narrated lesson of the bundled sample
	lesson2   = "pyL2cond002"
	chirp3    = "projects/demo/locations/us/recognizers/_"
	chirp2    = "projects/demo/locations/us-central1/recognizers/_"
)

// media holds the audio every test uses, made once by TestMain with the same
// tools the pipeline uses: espeak-ng speaks lesson 1's narration, ffmpeg cuts
// it into three FLAC segments and encodes the whole as Ogg Opus; a silent
// FLAC lasts 21 minutes (past chirp_3's word-timestamp limit).
var media struct {
	dir       string
	narration string
	total     float64   // seconds of the spoken lesson
	segments  []segment // three back-to-back FLAC files
	opus      string    // the whole lesson as Ogg Opus
	wav       string    // the whole lesson as WAV
	long      string    // 21 minutes of silence, FLAC
	short     string    // 2 s of tone, FLAC, for tests that need any audio
}

type segment struct {
	path   string
	offset float64
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "local-speech-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := makeMedia(dir); err != nil {
		// No skip: the machine is expected to have what the README lists.
		fmt.Fprintf(os.Stderr, "local speech tests need ffmpeg, ffprobe and espeak-ng (%s): %v\n", sample.InstallHint, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func makeMedia(dir string) error {
	cat, err := sample.Load()
	if err != nil {
		return err
	}
	cat.Pages(func(_ sample.Product, _ sample.Module, pg sample.Page) {
		if pg.PageID == lesson1 {
			media.narration = pg.Narration
		}
	})
	if media.narration == "" {
		return fmt.Errorf("sample has no narration for %s", lesson1)
	}
	media.dir = dir
	txt := filepath.Join(dir, "narration.txt")
	if err := os.WriteFile(txt, []byte(media.narration), 0o644); err != nil {
		return err
	}
	wav := filepath.Join(dir, "lesson.wav")
	if err := run("espeak-ng", "-v", "es", "-f", txt, "-w", wav); err != nil {
		return err
	}
	if media.total, err = probeSeconds(wav); err != nil {
		return err
	}
	third := media.total / 3
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("seg-%03d.flac", i))
		args := []string{"-i", wav, "-ss", ffsec(float64(i) * third)}
		if i < 2 {
			args = append(args, "-t", ffsec(third))
		}
		args = append(args, "-ac", "1", "-ar", "16000", "-c:a", "flac", p)
		if err := ffmpeg(args...); err != nil {
			return err
		}
		media.segments = append(media.segments, segment{path: p, offset: float64(i) * third})
	}
	media.opus = filepath.Join(dir, "lesson.ogg")
	if err := ffmpeg("-i", wav, "-ac", "1", "-c:a", "libopus", "-b:a", "24k", media.opus); err != nil {
		return err
	}
	media.wav = filepath.Join(dir, "lesson16k.wav")
	if err := ffmpeg("-i", wav, "-ac", "1", "-ar", "16000", media.wav); err != nil {
		return err
	}
	media.long = filepath.Join(dir, "long.flac")
	if err := ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1260", "-c:a", "flac", media.long); err != nil {
		return err
	}
	media.short = filepath.Join(dir, "short.flac")
	return ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "2", "-ac", "1", "-c:a", "flac", media.short)
}

func ffsec(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

func ffmpeg(args ...string) error {
	return run("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}

func probeSeconds(path string) (float64, error) {
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		return 0, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// env is one test's world: a local Cloud Storage with the raw and artifacts
// buckets, the local speech engine on a loopback port, and a real client.
type env struct {
	gcs      *gcs.Server
	store    *storage.Client
	engine   *localspeech.Server
	endpoint string
	client   *speech.Client
}

func newEnv(t *testing.T, opts localspeech.Options) *env {
	t.Helper()
	g, err := gcs.Start(gcs.Options{Buckets: []string{rawBucket, outBucket}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	e := &env{gcs: g, store: g.Client()}
	t.Cleanup(func() { e.store.Close() })
	if opts.Storage == nil {
		opts.Storage = e.store
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	e.engine = startEngine(t, opts)
	e.endpoint = listen(t, e.engine)
	e.client = newClient(t, e.endpoint)
	return e
}

func startEngine(t *testing.T, opts localspeech.Options) *localspeech.Server {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	s, err := localspeech.New(localspeech.FromCatalog(cat), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listen serves the engine and returns its endpoint.
func listen(t *testing.T, s *localspeech.Server) string {
	t.Helper()
	addr, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return addr
}

// newClient is the real client configured as the pipeline configures it for
// a local endpoint.
func newClient(t *testing.T, endpoint string) *speech.Client {
	t.Helper()
	c, err := speech.NewClient(context.Background(),
		option.WithEndpoint(endpoint),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// upload copies a local file to gs://raw/object with the given metadata.
func (e *env) upload(t *testing.T, object, file string, meta map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return e.put(t, object, b, meta)
}

func (e *env) put(t *testing.T, object string, b []byte, meta map[string]string) string {
	t.Helper()
	w := e.store.Bucket(rawBucket).Object(object).NewWriter(t.Context())
	w.Metadata = meta
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("upload %s: %v", object, err)
	}
	return "gs://" + rawBucket + "/" + object
}

// uploadSegments uploads lesson 1's three segments as the transcriber does.
func (e *env) uploadSegments(t *testing.T, version int) []string {
	t.Helper()
	var uris []string
	for i, s := range media.segments {
		uris = append(uris, e.upload(t, fmt.Sprintf("lessons/%s/v%d/audio/seg-%03d.flac", lesson1, version, i), s.path, segMeta(lesson1, version, s.offset)))
	}
	return uris
}

func segMeta(lesson string, version int, offset float64) map[string]string {
	return map[string]string{
		localspeech.MetaLessonID: lesson,
		localspeech.MetaVersion:  strconv.Itoa(version),
		localspeech.MetaOffset:   strconv.FormatFloat(offset, 'f', 3, 64),
		localspeech.MetaTotal:    strconv.FormatFloat(media.total, 'f', 3, 64),
	}
}

// request is what the transcriber sends: chirp_3 in us, word offsets,
// punctuation, results to Cloud Storage, dynamic batching.
func request(uris ...string) *speechpb.BatchRecognizeRequest {
	req := &speechpb.BatchRecognizeRequest{
		Recognizer: chirp3,
		Config: &speechpb.RecognitionConfig{
			DecodingConfig: &speechpb.RecognitionConfig_AutoDecodingConfig{AutoDecodingConfig: &speechpb.AutoDetectDecodingConfig{}},
			Model:          "chirp_3",
			LanguageCodes:  []string{"es-ES"},
			Features: &speechpb.RecognitionFeatures{
				EnableWordTimeOffsets:      true,
				EnableWordConfidence:       true,
				EnableAutomaticPunctuation: true,
			},
		},
		RecognitionOutputConfig: &speechpb.RecognitionOutputConfig{
			Output: &speechpb.RecognitionOutputConfig_GcsOutputConfig{GcsOutputConfig: &speechpb.GcsOutputConfig{Uri: "gs://" + outBucket + "/transcripts/"}},
		},
		ProcessingStrategy: speechpb.BatchRecognizeRequest_DYNAMIC_BATCHING,
	}
	for _, u := range uris {
		req.Files = append(req.Files, &speechpb.BatchRecognizeFileMetadata{AudioSource: &speechpb.BatchRecognizeFileMetadata_Uri{Uri: u}})
	}
	return req
}

func inline(req *speechpb.BatchRecognizeRequest) *speechpb.BatchRecognizeRequest {
	req.RecognitionOutputConfig = &speechpb.RecognitionOutputConfig{
		Output: &speechpb.RecognitionOutputConfig_InlineResponseConfig{InlineResponseConfig: &speechpb.InlineOutputConfig{}},
	}
	return req
}

// recognize starts a request and polls it to the end, with a deadline.
func (e *env) recognize(t *testing.T, req *speechpb.BatchRecognizeRequest) *speechpb.BatchRecognizeResponse {
	t.Helper()
	op, err := e.client.BatchRecognize(t.Context(), req)
	if err != nil {
		t.Fatalf("BatchRecognize: %v", err)
	}
	resp, err := pollUntilDone(t, op)
	if err != nil {
		t.Fatalf("operation %s: %v", op.Name(), err)
	}
	return resp
}

// pollUntilDone polls op until it is done (each poll a GetOperation), for at
// most 10 seconds.
func pollUntilDone(t *testing.T, op *speech.BatchRecognizeOperation) (*speechpb.BatchRecognizeResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		resp, err := op.Poll(ctx)
		if err != nil || op.Done() {
			return resp, err
		}
		if ctx.Err() != nil {
			t.Fatalf("operation %s not done in time", op.Name())
		}
	}
}

// readResults reads a results object the engine wrote.
func (e *env) readResults(t *testing.T, uri string) *speechpb.BatchRecognizeResults {
	t.Helper()
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok {
		t.Fatalf("results URI %q", uri)
	}
	bucket, object, _ := strings.Cut(rest, "/")
	r, err := e.store.Bucket(bucket).Object(object).NewReader(t.Context())
	if err != nil {
		t.Fatalf("read %s: %v", uri, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var res speechpb.BatchRecognizeResults
	if err := protojson.Unmarshal(b, &res); err != nil {
		t.Fatalf("results %s are not BatchRecognizeResults JSON: %v\n%s", uri, err, b)
	}
	return &res
}

// testLogger sends the engine's log to the test's output while the test
// runs, and drops what comes after (a late line would fail the test).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
