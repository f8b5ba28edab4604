package download_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/mediahost"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/media"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/transfer"
)

const raw = "raw"

// clock lets a test end a lease without waiting for it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

type env struct {
	stage    *download.Stage
	store    *lessonstate.Store
	storage  *storage.Client
	media    *mediahost.Host
	mediaURL string
	clock    *clock
	failed   func() []events.LessonEvent
	manifest media.Manifest
}

const manifestURI = "gs://" + raw + "/media/manifest.json"

// newEnv wires the stage to the real collaborators: the Firestore and Pub/Sub
// emulators, the local Cloud Storage server and the media host.
func newEnv(t *testing.T) *env {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("dl")

	srv, err := gcs.Start(gcs.Options{Buckets: []string{raw}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	host, err := mediahost.New("")
	if err != nil {
		t.Fatal(err)
	}
	hs, err := host.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	clk := &clock{now: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	store := lessonstate.New(fs, lessonstate.WithClock(clk.Now), lessonstate.WithMaxAttempts(2))

	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	topic := "projects/" + project + "/topics/" + events.TopicLessonEvents
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/events", Topic: topic,
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var failed []events.LessonEvent
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ps.Subscriber("events").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			var ev events.LessonEvent
			_ = json.Unmarshal(m.Data, &ev)
			mu.Lock()
			failed = append(failed, ev)
			mu.Unlock()
			m.Ack()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	pub := events.NewPublisher(ps)
	t.Cleanup(pub.Close)

	copier := transfer.New(srv.Client(), http.DefaultClient, transfer.Options{MaxBytes: 64 << 20})
	rl, err := relay.New(store, pub, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stage, err := download.New(download.Deps{
		Store: store, Copier: copier, Links: media.NewLinks(manifestURI, srv.Client(), nil, time.Nanosecond), Announcer: rl,
		RawBucket: raw, Lease: time.Minute,
		Outcome: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		stage: stage, store: store, storage: srv.Client(),
		media: host, mediaURL: hs.URL(), clock: clk, manifest: media.Manifest{Pages: map[string]media.Entry{}},
		failed: func() []events.LessonEvent {
			mu.Lock()
			defer mu.Unlock()
			return append([]events.LessonEvent(nil), failed...)
		},
	}
}

// detected records a lesson as the detector would, with its media listed in
// the manifest at path.
func (e *env) detected(t *testing.T, id, path string, size int64, md5 string) {
	t.Helper()
	e.list(t, id, e.mediaURL+path, size, md5)
	_, _, err := e.store.ApplyDetected(t.Context(), id, lessonstate.Observed{RunID: "run-1", Lesson: lessonstate.Lesson{
		CourseID: "4100001", Title: "Lección " + id, Type: "CONTENT", HasMedia: true,
		MediaStatus: lessonstate.MediaReady, Fingerprint: id + path,
		Media: &lessonstate.Media{Kind: media.KindURL, Ref: id, Ext: "mp4", Size: size, MD5: md5, Fingerprint: path},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// list writes the manifest with page id's media at url, as the producer does.
func (e *env) list(t *testing.T, id, url string, size int64, md5 string) {
	t.Helper()
	e.manifest.Pages[id] = media.Entry{URL: url, Size: size, MD5: md5}
	b, err := json.Marshal(e.manifest)
	if err != nil {
		t.Fatal(err)
	}
	w := e.storage.Bucket(raw).Object("media/manifest.json").NewWriter(t.Context())
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) stageOf(t *testing.T, id string) lessonstate.Stage {
	t.Helper()
	l, err := e.store.Lesson(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l.Stages[lessonstate.StageDownload]
}

// A download whose owner died after the upload, before recording it, is
// re-driven by the sweeper once the lease ends; the attempt that event starts
// finds the object and downloads nothing again.
func TestDownloadSurvivesACrashThroughTheSweeper(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const n = 3<<20 + 17
	path := fmt.Sprintf("/synthetic/%d.mp4", n)
	e.detected(t, "lessonA", path, n, mediahost.SyntheticMD5(n))
	ev := events.LessonEvent{LessonID: "lessonA", Version: 1}

	// The first delivery claims the stage and crashes after the upload,
	// before Complete: claim, upload with the same copier, never complete.
	claim, err := e.store.Claim(ctx, "lessonA", lessonstate.StageDownload, 1, time.Minute)
	if err != nil || claim.Outcome != lessonstate.Claimed {
		t.Fatalf("claim: %v %v", claim.Outcome, err)
	}
	copier := transfer.New(e.storage, http.DefaultClient, transfer.Options{})
	if _, err := copier.FromURL(ctx, transfer.Source{URL: e.mediaURL + path, Size: n, MD5: mediahost.SyntheticMD5(n)},
		transfer.Dest{Bucket: raw, Object: download.ObjectName("lessonA", 1, "mp4"),
			Metadata: map[string]string{"lessonId": "lessonA", "version": "1", "courseId": "4100001"}}); err != nil {
		t.Fatal(err)
	}
	hits := e.media.Hits(path)

	// Pub/Sub's redelivery while the lease lives is acknowledged: busy.
	if err := e.stage.Handle(ctx, ev); err != nil {
		t.Fatalf("redelivery under a live lease: %v", err)
	}
	if got := e.stageOf(t, "lessonA").State; got != lessonstate.StateRunning {
		t.Fatalf("state %s, want still running under the first owner", got)
	}

	// The lease ends; the sweeper finds the lesson and re-emits its event.
	e.clock.Add(2 * time.Minute)
	ids, err := e.store.DueForSweep(ctx, 10)
	if err != nil || len(ids) != 1 {
		t.Fatalf("due for sweep: %v, %v", ids, err)
	}
	sw, err := e.store.Sweep(ctx, ids[0])
	if err != nil || sw == nil || sw.Action != lessonstate.SweepRedriven || sw.Entry.Topic != events.TopicLessonDiscovered {
		t.Fatalf("sweep: %+v, %v", sw, err)
	}
	redriven, err := events.ParseLessonEvent(sw.Entry.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stage.Handle(ctx, redriven); err != nil {
		t.Fatalf("re-driven delivery: %v", err)
	}
	st := e.stageOf(t, "lessonA")
	if st.State != lessonstate.StateDone || st.Attempts != 2 || st.Outputs[download.OutSize] != fmt.Sprint(n) || st.Outputs[download.OutMD5] != mediahost.SyntheticMD5(n) {
		t.Fatalf("stage %+v, want done at attempt 2 with the object's size and md5", st)
	}
	if e.media.Hits(path) != hits {
		t.Errorf("the re-driven attempt downloaded the media again (%d requests, want %d)", e.media.Hits(path), hits)
	}

	// Duplicates after completion change nothing.
	for range 3 {
		if err := e.stage.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if after := e.stageOf(t, "lessonA"); !after.FinishedAt.Equal(st.FinishedAt) || after.Attempts != st.Attempts {
		t.Errorf("duplicates changed the stage: %+v, was %+v", after, st)
	}
}

// The download asks the manifest for the current link: a link re-signed
// after detection is the one used, and a link the host refuses is asked
// for once more.
func TestDownloadUsesTheCurrentLink(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const n = 200_000
	e.detected(t, "lessonS", "/status/403", n, "")

	// Re-listed after detection: the download uses the new link only.
	e.list(t, "lessonS", fmt.Sprintf("%s/synthetic/%d.mp4?sig=new", e.mediaURL, n), n, "")
	if err := e.stage.Handle(ctx, events.LessonEvent{LessonID: "lessonS", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if st := e.stageOf(t, "lessonS"); st.State != lessonstate.StateDone {
		t.Fatalf("stage %+v, want done with the re-signed link", st)
	}
	if e.media.Hits("/status/403") != 0 {
		t.Fatal("the link stored at detection was used")
	}

	// A refused link that the manifest still lists fails with advice, after
	// asking once more.
	e.detected(t, "lessonT", "/status/403", n, "")
	if err := e.stage.Handle(ctx, events.LessonEvent{LessonID: "lessonT", Version: 1}); err != nil {
		t.Fatal(err)
	}
	st := e.stageOf(t, "lessonT")
	if st.State != lessonstate.StateFailed || !strings.Contains(st.Error, "still lists this link") {
		t.Fatalf("stage %+v, want failed saying the manifest still lists the refused link", st)
	}
	if hits := e.media.Hits("/status/403"); hits != 1 {
		t.Fatalf("%d requests for the refused link, want 1", hits)
	}
}

func TestDownloadFailures(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()

	t.Run("retryable until the attempts run out, then failed and announced", func(t *testing.T) {
		e.detected(t, "lessonB", "/status/503", 0, "")
		ev := events.LessonEvent{LessonID: "lessonB", Version: 1, RunID: "run-1"}
		err := e.stage.Handle(ctx, ev)
		if err == nil {
			t.Fatal("a 503 from the media host must be retried (error returned), got nil")
		}
		if st := e.stageOf(t, "lessonB"); st.State != lessonstate.StatePending || !strings.Contains(st.Error, "503") {
			t.Fatalf("after attempt 1: %+v, want pending with the reason", st)
		}
		if err := e.stage.Handle(ctx, ev); err != nil {
			t.Fatalf("last attempt must be acknowledged, got %v", err)
		}
		st := e.stageOf(t, "lessonB")
		if st.State != lessonstate.StateFailed || st.Attempts != 2 {
			t.Fatalf("after attempt 2: %+v, want failed after 2 attempts", st)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(e.failed()) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := e.failed()
		if len(got) != 1 || got[0].LessonID != "lessonB" || got[0].Kind != events.KindFailed || got[0].From != lessonstate.StageDownload || !strings.Contains(got[0].Reason, "503") {
			t.Errorf("lesson-events got %+v, want one failed event for lessonB naming the 503", got)
		}
	})

	t.Run("over the size limit fails at once and leaves no object", func(t *testing.T) {
		const n = 65 << 20
		e.detected(t, "lessonC", fmt.Sprintf("/synthetic/%d.mp4", n), 0, "")
		if err := e.stage.Handle(ctx, events.LessonEvent{LessonID: "lessonC", Version: 1}); err != nil {
			t.Fatalf("a permanent failure must be acknowledged, got %v", err)
		}
		st := e.stageOf(t, "lessonC")
		if st.State != lessonstate.StateFailed || st.Attempts != 1 {
			t.Errorf("stage %+v, want failed on the first attempt", st)
		}
		_, err := e.storage.Bucket(raw).Object(download.ObjectName("lessonC", 1, "mp4")).Attrs(ctx)
		if !errors.Is(err, storage.ErrObjectNotExist) {
			t.Errorf("object left behind: %v", err)
		}
	})

	t.Run("stale and unknown events are acknowledged and write nothing", func(t *testing.T) {
		for _, ev := range []events.LessonEvent{{LessonID: "lessonC", Version: 0}, {LessonID: "nobody", Version: 1}} {
			if err := e.stage.Handle(ctx, ev); err != nil {
				t.Errorf("%+v: %v", ev, err)
			}
		}
		if _, err := e.store.Lesson(ctx, "nobody"); !errors.Is(err, lessonstate.ErrNotFound) {
			t.Errorf("unknown lesson was written: %v", err)
		}
	})
}

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }
