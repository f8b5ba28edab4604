package stack

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// recoveryOptions shrink every clock of the pipeline so that what takes
// minutes in production (an ack deadline, a lease, the pending wait, a
// function's timeout, the sweeper's schedule) takes seconds here.
func recoveryOptions(o *Options) {
	o.AckDeadline = 2 * time.Second
	o.FunctionTimeouts = map[string]time.Duration{"Downloader": 5 * time.Second}
	o.SweepEvery = 500 * time.Millisecond
	o.Faults = true
	o.Env = map[string]string{
		"DOWNLOAD_LEASE":  "6s",
		"PENDING_AFTER":   "2s",
		"OUTCOME_TIMEOUT": "2s",
		"MAX_ATTEMPTS":    "3",
	}
}

// addLesson adds a page with a copy of a sample video to the second course,
// lists it in the manifest and detects it; it returns the page id and the
// name of its video on the media host.
func (h *harness) addLesson(t *testing.T, id string) string {
	t.Helper()
	cat := h.catalog
	page := cat.Products[1].Modules[0].Pages[0]
	page.PageID, page.Name, page.PageOrder = id, "Lección "+id, 10+len(h.videos)
	cat.Products[1].Modules[0].Pages = append(slices.Clone(cat.Products[1].Modules[0].Pages), page)
	h.catalog = cat
	h.SetCatalog(cat)
	src := h.videos[0]
	v := sample.Video{PageID: id, Path: filepath.Join(filepath.Dir(src.Path), id+".mp4"), Size: src.Size, MD5: src.MD5, Duration: src.Duration}
	b, err := os.ReadFile(src.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h.videos = append(h.videos, v)
	if err := h.PutManifest(context.Background(), h.videos); err != nil {
		t.Fatal(err)
	}
	return id + ".mp4"
}

func (h *harness) download(t *testing.T, id string) lessonstate.Stage {
	t.Helper()
	return h.lesson(t, id).Stages[lessonstate.StageDownload]
}

func (h *harness) waitDownload(t *testing.T, id, state string, limit time.Duration) lessonstate.Stage {
	t.Helper()
	waitFor(t, limit, id+" download "+state, func() bool { return h.download(t, id).State == state })
	return h.download(t, id)
}

func (h *harness) deadLetters() int {
	return h.deliveries.count(func(d eventarc.Delivery) bool { return d.Outcome == eventarc.DeadLettered })
}

// finalizedOnce waits for the raw bucket's finalize notification of an
// object (it is asynchronous) and checks there was exactly one.
func finalizedOnce(t *testing.T, tap *Tap, object string) {
	t.Helper()
	waitFor(t, 20*time.Second, object+" finalized", func() bool { return finalized(tap, object) >= 1 })
	if n := finalized(tap, object); n != 1 {
		t.Errorf("%s finalized %d times, want 1", object, n)
	}
}

// finalized counts the raw bucket's finalize notifications for an object.
func finalized(tap *Tap, object string) int {
	n := 0
	for _, m := range tap.Messages() {
		if m.Attributes["objectId"] == object && m.Attributes["eventType"] == "OBJECT_FINALIZE" {
			n++
		}
	}
	return n
}

// The ways a lesson used to stay running forever, each driven through the
// real functions process, Eventarc and the scheduled sweeper.
func TestEveryLessonReachesAnEndState(t *testing.T) {
	h := startStack(t, recoveryOptions)
	ctx := context.Background()
	fin, err := h.Tap(ctx, FinalizeTopic, "tap-finalized")
	if err != nil {
		t.Fatal(err)
	}
	lessonEvents, err := h.Tap(ctx, events.TopicLessonEvents, "tap-lesson-events")
	if err != nil {
		t.Fatal(err)
	}
	h.detect(t)
	for _, v := range h.videos {
		h.waitDownload(t, v.PageID, lessonstate.StateDone, time.Minute)
	}

	// The function's timeout cuts the request off mid-download; the ack
	// deadline has passed before, so Pub/Sub's redelivery found the lesson
	// busy and was acknowledged: no message is left. The outcome is still
	// written (a detached context), and the sweeper sends the work again.
	t.Run("request cut off: outcome recorded, sweeper re-drives, done", func(t *testing.T) {
		file := h.addLesson(t, "rcCutoff001")
		h.Media.Slow(file, 10*time.Second, 1)
		h.detect(t)
		st := h.waitDownload(t, "rcCutoff001", lessonstate.StateDone, time.Minute)
		// Attempt 2 usually finishes it; on a loaded machine its outcome
		// write can itself outlast OUTCOME_TIMEOUT, and the sweeper
		// re-drives once more.
		if st.Attempts < 2 || st.Redrives < 1 {
			t.Errorf("stage %+v, want done after at least one re-drive", st)
		}
		if !strings.Contains(h.logs.String(), `"lessonId":"rcCutoff001","version":1,"stage":"download","error":`) {
			t.Error("the cut-off attempt's failure was not recorded")
		}
		finalizedOnce(t, fin, download.ObjectName("rcCutoff001", 1, "mp4"))
	})

	// Longer than the ack deadline, shorter than the function's timeout:
	// Pub/Sub redelivers while the first request runs; the redelivery finds
	// the lease live and is acknowledged. One transfer, no dead letter.
	t.Run("download longer than the ack deadline runs once", func(t *testing.T) {
		file := h.addLesson(t, "rcLongDl002")
		h.Media.Slow(file, 3*time.Second, 1)
		h.detect(t)
		st := h.waitDownload(t, "rcLongDl002", lessonstate.StateDone, time.Minute)
		if hits := h.Media.Hits("/" + file); hits != 1 || st.Attempts != 1 {
			t.Errorf("media served %d times, stage %+v: want one transfer, attempt 1", hits, st)
		}
		redelivered := h.deliveries.count(func(d eventarc.Delivery) bool {
			return d.LessonID == "rcLongDl002" && d.Route == "downloader" && d.Outcome == eventarc.Retrying
		})
		if redelivered < 1 {
			t.Error("the ack deadline never passed: the test did not make the download long enough")
		}
	})

	// The functions process dies mid-download (Cloud Run loses the
	// instance). The redeliveries find the lease live; when it ends, the
	// sweeper re-drives, and the new attempt lands the one object.
	t.Run("process killed mid-download: lease expires, sweeper re-drives", func(t *testing.T) {
		file := h.addLesson(t, "rcKilled003")
		h.Media.Slow(file, 4*time.Second, 1)
		h.detect(t)
		h.waitDownload(t, "rcKilled003", lessonstate.StateRunning, 30*time.Second)
		if err := h.RestartFunctions(ctx); err != nil {
			t.Fatal(err)
		}
		st := h.waitDownload(t, "rcKilled003", lessonstate.StateDone, time.Minute)
		if st.Attempts < 2 || st.Redrives < 1 {
			t.Errorf("stage %+v, want done after a re-drive", st)
		}
		finalizedOnce(t, fin, download.ObjectName("rcKilled003", 1, "mp4"))
	})

	// Firestore goes away just as the bytes are in: Complete fails. The
	// redeliveries find the lease live; the sweeper re-drives after it, and
	// the new attempt finds the object: no second transfer.
	t.Run("Complete fails transiently: re-driven without a second transfer", func(t *testing.T) {
		file := h.addLesson(t, "rcNoComp004")
		h.Media.OnServed(func(name string) {
			if name == file {
				h.FirestoreFaults.Break()
				time.AfterFunc(3*time.Second, h.FirestoreFaults.Heal)
			}
		})
		t.Cleanup(func() { h.Media.OnServed(nil); h.FirestoreFaults.Heal() })
		h.detect(t)
		st := h.waitDownload(t, "rcNoComp004", lessonstate.StateDone, time.Minute)
		if hits := h.Media.Hits("/" + file); hits != 1 {
			t.Errorf("media served %d times, want 1: the re-driven attempt must reuse the object", hits)
		}
		if st.Attempts < 2 || h.FirestoreFaults.Cuts() == 0 {
			t.Errorf("stage %+v after %d cut connections, want done after a re-drive", st, h.FirestoreFaults.Cuts())
		}
	})

	// A source that keeps failing: attempts run out, the lesson fails with
	// the reason and is announced once; Pub/Sub's own limit, well above the
	// stage's, is never reached.
	t.Run("attempts exhausted: failed with the reason, announced once", func(t *testing.T) {
		h.addLesson(t, "rcBroken005")
		videos := slices.Clone(h.videos)
		if err := h.putManifestLinking(ctx, videos, "rcBroken005", h.MediaURL+"/status/503"); err != nil {
			t.Fatal(err)
		}
		h.detect(t)
		st := h.waitDownload(t, "rcBroken005", lessonstate.StateFailed, time.Minute)
		if st.Attempts != 3 || !strings.Contains(st.Error, "503") {
			t.Errorf("stage %+v, want failed after 3 attempts naming the 503", st)
		}
		waitFor(t, 20*time.Second, "the failure announced", func() bool {
			return slices.Contains(ids(lessonEvents.Events()), "rcBroken005@failed")
		})
	})

	if n := h.deadLetters(); n != 0 {
		t.Errorf("%d messages were dead-lettered; a lesson must fail by its stage's attempts, not by Pub/Sub's", n)
	}
	announced := map[string]int{}
	for _, e := range lessonEvents.Events() {
		announced[e.LessonID+"@"+e.Kind]++
	}
	for k, n := range announced {
		if n != 1 {
			t.Errorf("%s announced %d times, want once", k, n)
		}
	}
}

// putManifestLinking writes the manifest with one page pointing at url.
func (h *harness) putManifestLinking(ctx context.Context, videos []sample.Video, id, url string) error {
	var m struct {
		Pages map[string]map[string]any `json:"pages"`
	}
	m.Pages = map[string]map[string]any{}
	for _, v := range videos {
		m.Pages[v.PageID] = map[string]any{"url": h.MediaURL + h.Media.Sign(v.PageID+".mp4", time.Hour), "size": v.Size, "md5": v.MD5}
	}
	m.Pages[id] = map[string]any{"url": url}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return h.PutObject(ctx, RawBucket, ManifestObject, b, nil)
}

// A signed link that expires is asked for again, and a manifest re-signed
// after detection is what the download uses; Firestore never holds a link.
func TestSignedLinksAreResolvedWhenUsed(t *testing.T) {
	// The downloader's manifest cache outlives the key rotation below, so
	// its link is certainly refused once.
	h := startStack(t, func(o *Options) { o.Env = map[string]string{"MEDIA_LINKS_MAX_AGE": "1h"} })
	ctx := context.Background()
	h.Media.RequireSignatures()
	if err := h.PutManifest(ctx, h.videos); err != nil {
		t.Fatal(err)
	}
	h.detect(t)
	for _, v := range h.videos {
		h.waitDownload(t, v.PageID, lessonstate.StateDone, time.Minute)
	}
	refusedBefore := h.Media.Refused()

	// The host rotates its key: every link the downloader read is dead. The
	// producer re-signs the manifest, and a lesson gets a new video.
	h.Media.RequireSignatures()
	if err := h.PutManifest(ctx, h.videos); err != nil {
		t.Fatal(err)
	}
	id := h.videos[1].PageID
	videos := slices.Clone(h.videos)
	videos[1].Size, videos[1].MD5 = h.videos[2].Size, h.videos[2].MD5
	b, err := os.ReadFile(h.videos[2].Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.videos[1].Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.PutManifest(ctx, videos); err != nil {
		t.Fatal(err)
	}
	h.detect(t)
	waitFor(t, time.Minute, id+" v2 downloaded", func() bool {
		l := h.lesson(t, id)
		return l.Version == 2 && l.Stages[lessonstate.StageDownload].State == lessonstate.StateDone
	})
	if st := h.download(t, id); st.Attempts != 1 {
		t.Errorf("stage %+v, want done on its first attempt", st)
	}
	if n := h.Media.Refused() - refusedBefore; n != 1 {
		t.Errorf("%d links refused, want exactly the one the cache held, then the re-signed one used", n)
	}
	l := h.lesson(t, id)
	if l.Media == nil || strings.Contains(l.Media.Ref, "sig=") || strings.Contains(l.Media.Ref, "http") {
		t.Errorf("lesson media %+v: Firestore must hold no link", l.Media)
	}
}

// A start-up that fails (Cloud Storage unreachable at the instance's first
// request) is tried again by the next request on the same instance.
func TestFailedStartUpIsRetriedOnTheSameInstance(t *testing.T) {
	h := startStack(t, func(o *Options) { o.Faults = true; o.SweepEvery = -1 })
	ctx := context.Background()
	h.StorageFaults.Break()
	body, _ := json.Marshal(events.LessonEvent{LessonID: "nobody00001", Version: 1})
	if err := h.Publish(ctx, events.TopicLessonDiscovered, body, map[string]string{"lessonId": "nobody00001", "version": "1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a delivery refused by the failed start-up", func() bool {
		return h.deliveries.count(func(d eventarc.Delivery) bool { return d.Route == "downloader" && d.Status >= 500 }) >= 1
	})
	if !strings.Contains(h.logs.String(), "downloader cannot start") {
		t.Fatal("the failed start-up was not logged")
	}
	h.StorageFaults.Heal()
	waitFor(t, 30*time.Second, "the message acknowledged by a good start-up", func() bool {
		return h.deliveries.count(func(d eventarc.Delivery) bool {
			return d.Route == "downloader" && d.LessonID == "nobody00001" && d.Outcome == eventarc.Delivered
		}) == 1
	})
	if !strings.Contains(h.logs.String(), "event names an unknown lesson") {
		t.Error("the good start-up did not handle the event")
	}
}
