package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// syncBuffer collects the functions' logs from another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// deliveries records what the local Eventarc reports.
type deliveries struct {
	mu  sync.Mutex
	all []eventarc.Delivery
}

func (d *deliveries) add(x eventarc.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, x)
}

func (d *deliveries) count(match func(eventarc.Delivery) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, x := range d.all {
		if match(x) {
			n++
		}
	}
	return n
}

type harness struct {
	*Stack
	logs       *syncBuffer
	deliveries *deliveries
	videos     []sample.Video
	catalog    sample.Catalog
}

// videosOnce makes the sample videos once per test binary.
var videosOnce = sync.OnceValues(func() ([]sample.Video, error) {
	cat, err := sample.Load()
	if err != nil {
		return nil, err
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	return sample.Generate(context.Background(), cat, filepath.Join(root, ".cache", "sample-media"), sample.GenerateOptions{})
})

func startStack(t *testing.T, mods ...func(*Options)) *harness {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	videos, err := videosOnce()
	if err != nil {
		t.Fatalf("sample videos: %v", err)
	}
	// Each stack serves its own copy of the videos, so a test can add some.
	mediaDir := t.TempDir()
	videos = slices.Clone(videos)
	for i, v := range videos {
		b, err := os.ReadFile(v.Path)
		if err != nil {
			t.Fatal(err)
		}
		videos[i].Path = filepath.Join(mediaDir, filepath.Base(v.Path))
		if err := os.WriteFile(videos[i].Path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{logs: &syncBuffer{}, deliveries: &deliveries{}, videos: videos, catalog: cat}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := Options{
		Dir: t.TempDir(), ProjectID: emulators.ProjectID("stack"), Catalog: cat,
		MediaDir: mediaDir, Videos: videos, Logs: h.logs, Observer: h.deliveries.add,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		// A delivery that hangs (seen once on a loaded CI machine) is tried
		// again well within the tests' waits, as Pub/Sub would after the
		// ack deadline.
		AckDeadline: 10 * time.Second,
	}
	for _, mod := range mods {
		mod(&opts)
	}
	st, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("stack did not start: %v", err)
	}
	h.Stack = st
	t.Cleanup(func() {
		st.Stop()
		if t.Failed() {
			t.Logf("function logs:\n%s", h.logs.String())
		}
	})
	return h
}

// waitFor polls cond until it holds or the limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) lesson(t *testing.T, id string) lessonstate.Lesson {
	t.Helper()
	l, err := h.State.Lesson(context.Background(), id)
	if err != nil {
		t.Fatalf("lesson %s: %v", id, err)
	}
	return l
}

func (h *harness) downloadState(t *testing.T, id string) string {
	return h.lesson(t, id).Stages[lessonstate.StageDownload].State
}

func (h *harness) detect(t *testing.T) {
	t.Helper()
	if _, err := h.Detect(context.Background()); err != nil {
		t.Fatalf("detect: %v", err)
	}
}

// detected drops the synced announcements the rest of the pipeline makes as
// the lessons go through: what is left is what detection (removals) or a
// failure announced.
func detected(evs []events.LessonEvent) []events.LessonEvent {
	var out []events.LessonEvent
	for _, e := range evs {
		if e.Kind != events.KindSynced {
			out = append(out, e)
		}
	}
	return out
}

// fromEnrich keeps the lesson-processed messages detection published (a
// change that re-runs enrich and sync only).
func fromEnrich(evs []events.LessonEvent) []events.LessonEvent {
	var out []events.LessonEvent
	for _, e := range evs {
		if e.From == lessonstate.StageEnrich {
			out = append(out, e)
		}
	}
	return out
}

func ids(evs []events.LessonEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.LessonID+"@"+e.Kind)
	}
	slices.Sort(out)
	return out
}

// The detector's contract, run through the real functions process: what each
// run publishes, and that a run with nothing changed publishes nothing.
func TestDetectorPublishesExactlyTheChanges(t *testing.T) {
	h := startStack(t)
	ctx := context.Background()
	discovered, err := h.Tap(ctx, events.TopicLessonDiscovered, "tap-discovered")
	if err != nil {
		t.Fatal(err)
	}
	lessonEvents, err := h.Tap(ctx, events.TopicLessonEvents, "tap-events")
	if err != nil {
		t.Fatal(err)
	}
	processed, err := h.Tap(ctx, events.TopicLessonProcessed, "tap-processed")
	if err != nil {
		t.Fatal(err)
	}
	settle := func() { time.Sleep(1500 * time.Millisecond) } // let the taps receive what was published

	// Run 1: one lesson-discovered per lesson with media.
	h.detect(t)
	settle()
	var withVideo []string
	h.catalog.Pages(func(_ sample.Product, _ sample.Module, pg sample.Page) {
		if pg.HasVideo() {
			withVideo = append(withVideo, pg.PageID+"@")
		}
	})
	slices.Sort(withVideo)
	if got := ids(discovered.Events()); !slices.Equal(got, withVideo) {
		t.Fatalf("first run published %v, want one event per lesson with media %v", got, withVideo)
	}

	// Run 2: nothing changed, nothing published.
	h.detect(t)
	settle()
	if n := len(discovered.Events()) + len(detected(lessonEvents.Events())) + len(fromEnrich(processed.Events())); n != len(withVideo) {
		t.Fatalf("second run published %d more messages, want none", n-len(withVideo))
	}

	// Run 3: a renamed page and a new page publish exactly those two.
	cat := h.catalog
	cat.Products[0].Modules[0].Pages[0].Name = "Variables, tipos y valores"
	newPage := cat.Products[1].Modules[0].Pages[0]
	newPage.PageID, newPage.Name, newPage.PageOrder = "mkL9nuevo09", "Entrevistas a clientes", 2
	cat.Products[1].Modules[0].Pages = append(slices.Clone(cat.Products[1].Modules[0].Pages), newPage)
	h.SetCatalog(cat)
	src := h.videos[3]
	newVideo := sample.Video{PageID: newPage.PageID, Path: filepath.Join(filepath.Dir(src.Path), newPage.PageID+".mp4"), Size: src.Size, MD5: src.MD5, Duration: src.Duration}
	if b, err := os.ReadFile(src.Path); err != nil || os.WriteFile(newVideo.Path, b, 0o644) != nil {
		t.Fatalf("copy video: %v", err)
	}
	if err := h.PutManifest(ctx, append(slices.Clone(h.videos), newVideo)); err != nil {
		t.Fatal(err)
	}
	before := len(discovered.Events())
	h.detect(t)
	settle()
	// A title change re-runs only the stages after the media ones when those
	// are all done (lesson-processed from enrich), else it starts over at
	// download. Either way: one event. (The workflow's own lesson-processed
	// messages, once a version is processed, carry no "from".)
	third := append(slices.Clone(discovered.Events()[before:]), fromEnrich(processed.Events())...)
	var got []string
	for _, e := range third {
		got = append(got, fmt.Sprintf("%s v%d", e.LessonID, e.Version))
	}
	slices.Sort(got)
	if want := []string{"mkL9nuevo09 v1", "pyL1vars001 v2"}; !slices.Equal(got, want) {
		t.Errorf("rename + new page published %v, want exactly %v", got, want)
	}
	if got := detected(lessonEvents.Events()); len(got) != 0 {
		t.Errorf("nothing was removed or failed, but lesson-events got %+v", got)
	}

	// Run 4: a removed page publishes a removal, once.
	cat.Products[0].Modules[1].Pages = nil // pyL3func004 disappears
	h.SetCatalog(cat)
	h.detect(t)
	h.detect(t)
	settle()
	if got := ids(detected(lessonEvents.Events())); !slices.Equal(got, []string{"pyL3func004@removed"}) {
		t.Errorf("removal published %v, want exactly [pyL3func004@removed]", got)
	}
	if !h.lesson(t, "pyL3func004").Removed {
		t.Error("removed lesson not marked removed")
	}
}

// The downloader through the local stack: objects land with their metadata;
// duplicates upload nothing; a source that contradicts the manifest fails the
// stage with a reason a person can act on, and leaves no object behind.
func TestDownloaderThroughTheStack(t *testing.T) {
	h := startStack(t)
	ctx := context.Background()
	h.detect(t)
	var ready []string
	h.catalog.Pages(func(_ sample.Product, _ sample.Module, pg sample.Page) {
		if pg.HasVideo() {
			ready = append(ready, pg.PageID)
		}
	})
	for _, id := range ready {
		waitFor(t, 60*time.Second, id+" downloaded", func() bool { return h.downloadState(t, id) == lessonstate.StateDone })
	}

	t.Run("object lands with its metadata", func(t *testing.T) {
		for _, v := range h.videos {
			obj := h.Storage.Bucket(RawBucket).Object(download.ObjectName(v.PageID, 1, "mp4"))
			attrs, err := obj.Attrs(ctx)
			if err != nil {
				t.Fatalf("%s: %v", v.PageID, err)
			}
			if attrs.Size != v.Size || fmt.Sprintf("%x", attrs.MD5) != v.MD5 {
				t.Errorf("%s: object has %d bytes md5 %x, video has %d bytes md5 %s", v.PageID, attrs.Size, attrs.MD5, v.Size, v.MD5)
			}
			if attrs.Metadata["lessonId"] != v.PageID || attrs.Metadata["version"] != "1" {
				t.Errorf("%s: metadata %v", v.PageID, attrs.Metadata)
			}
			if attrs.ContentType != "video/mp4" {
				t.Errorf("%s: content type %q", v.PageID, attrs.ContentType)
			}
			out := h.lesson(t, v.PageID).Stages[lessonstate.StageDownload].Outputs
			if out[download.OutURI] != "gs://"+RawBucket+"/"+download.ObjectName(v.PageID, 1, "mp4") || out[download.OutMD5] != v.MD5 {
				t.Errorf("%s: stage outputs %v", v.PageID, out)
			}
		}
	})

	t.Run("the same event three times uploads once", func(t *testing.T) {
		id := "pyL2cond002"
		path := "/" + id + ".mp4"
		hitsBefore := h.Media.Hits(path)
		gen := objectGeneration(t, h.Storage, download.ObjectName(id, 1, "mp4"))
		body, _ := json.Marshal(events.LessonEvent{LessonID: id, Version: 1})
		for range 3 {
			if err := h.Publish(ctx, events.TopicLessonDiscovered, body, map[string]string{"lessonId": id, "version": "1"}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 20*time.Second, "three deliveries acknowledged", func() bool {
			return h.deliveries.count(func(d eventarc.Delivery) bool {
				return d.LessonID == id && d.Outcome == eventarc.Delivered
			}) >= 4 // the detector's event and our three
		})
		if hits := h.Media.Hits(path) - hitsBefore; hits != 0 {
			t.Errorf("media host served %d more downloads, want 0", hits)
		}
		if g := objectGeneration(t, h.Storage, download.ObjectName(id, 1, "mp4")); g != gen {
			t.Errorf("object rewritten: generation %d, was %d", g, gen)
		}
	})

	t.Run("a raw Pub/Sub push body reaches the function as a CloudEvent", func(t *testing.T) {
		// In production our push subscriptions (with dead letters) POST the
		// raw push format; functions-framework turns it into the same
		// messagePublished CloudEvent the local Eventarc sends.
		id := "pyL1vars001"
		data, _ := json.Marshal(events.LessonEvent{LessonID: id, Version: 1})
		push, _ := json.Marshal(map[string]any{
			"message":      map[string]any{"data": data, "attributes": map[string]string{"lessonId": id, "version": "1"}, "messageId": "push-1", "publishTime": time.Now().UTC().Format(time.RFC3339Nano)},
			"subscription": "projects/" + h.ProjectID + "/subscriptions/downloader-push",
		})
		before := strings.Count(h.logs.String(), `"lessonId":"`+id+`","version":1,"stage":"download","claim":"already-done"`)
		resp, err := http.Post(h.FunctionsURL+"/Downloader", "application/json", bytes.NewReader(push))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("push answered %s, want 200", resp.Status)
		}
		waitFor(t, 5*time.Second, "the push handled as a duplicate", func() bool {
			return strings.Count(h.logs.String(), `"lessonId":"`+id+`","version":1,"stage":"download","claim":"already-done"`) > before
		})
	})

	t.Run("length and checksum mismatches fail the stage with a reason", func(t *testing.T) {
		tests := []struct {
			id     string
			mangle func(v *sample.Video)
			reason string
		}{
			{"mkL1pers005", func(v *sample.Video) { v.Size += 1000 }, "bytes"},
			{"mkL2cale006", func(v *sample.Video) { v.MD5 = strings.Repeat("0", 32) }, "MD5"},
		}
		videos := slices.Clone(h.videos)
		for i := range videos {
			for _, tt := range tests {
				if videos[i].PageID == tt.id {
					tt.mangle(&videos[i])
				}
			}
		}
		if err := h.PutManifest(ctx, videos); err != nil {
			t.Fatal(err)
		}
		h.detect(t) // the manifest's promise changed: a new version of both lessons
		for _, tt := range tests {
			waitFor(t, 30*time.Second, tt.id+" failed", func() bool { return h.downloadState(t, tt.id) == lessonstate.StateFailed })
			l := h.lesson(t, tt.id)
			st := l.Stages[lessonstate.StageDownload]
			if l.Version != 2 || st.Version != 2 {
				t.Errorf("%s: lesson v%d stage v%d, want the new version 2", tt.id, l.Version, st.Version)
			}
			if !strings.Contains(st.Error, tt.reason) {
				t.Errorf("%s: failure reason %q does not mention %q", tt.id, st.Error, tt.reason)
			}
			if st.Attempts != 1 {
				t.Errorf("%s: a permanent failure was attempted %d times", tt.id, st.Attempts)
			}
			_, err := h.Storage.Bucket(RawBucket).Object(download.ObjectName(tt.id, 2, "mp4")).Attrs(ctx)
			if !errors.Is(err, storage.ErrObjectNotExist) {
				t.Errorf("%s: a failed download left an object behind (err %v)", tt.id, err)
			}
		}
	})
}

// Input that can never succeed is logged, acknowledged and writes nothing.
func TestDownloaderRejectsBadInput(t *testing.T) {
	h := startStack(t)
	ctx := context.Background()
	tests := []struct {
		name string
		data string
		log  string
	}{
		{"not JSON", `{{{`, "not a lesson event JSON object"},
		{"missing fields", `{"courseId":"4100001"}`, "lessonId is missing"},
		{"missing version", `{"lessonId":"pyL1vars001"}`, "version 0 is missing"},
		{"unknown lesson", `{"lessonId":"nope0000000","version":1}`, "unknown lesson"},
		{"slash in id", `{"lessonId":"a/b","version":1}`, `lessonId \"a/b\" is not a page id`},
		{"dot-dot in id", `{"lessonId":"..","version":1}`, `lessonId \"..\" is not a page id`},
	}
	for _, tt := range tests {
		if err := h.Publish(ctx, events.TopicLessonDiscovered, []byte(tt.data), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every bad message acknowledged", func() bool {
		return h.deliveries.count(func(d eventarc.Delivery) bool { return d.Outcome == eventarc.Delivered }) >= len(tests)
	})
	if n := h.deliveries.count(func(d eventarc.Delivery) bool { return d.Outcome != eventarc.Delivered }); n != 0 {
		t.Errorf("%d deliveries were not acknowledged at once", n)
	}
	for _, tt := range tests {
		if !strings.Contains(h.logs.String(), tt.log) {
			t.Errorf("%s: no log line says %q", tt.name, tt.log)
		}
	}
	lessons, err := h.State.Lessons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(lessons) != 0 {
		t.Errorf("bad input wrote %d lessons", len(lessons))
	}
	it := h.Storage.Bucket(RawBucket).Objects(ctx, &storage.Query{Prefix: "lessons/"})
	if o, err := it.Next(); err == nil {
		t.Errorf("bad input wrote object %s", o.Name)
	}
}

func objectGeneration(t *testing.T, st *storage.Client, name string) int64 {
	t.Helper()
	a, err := st.Bucket(RawBucket).Object(name).Attrs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return a.Generation
}

// One pair of emulators serves every stack of this package; each stack has a
// project of its own.
func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }
