package lessonstate

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/local/emulators"
)

// TestMain starts one Firestore emulator for the whole package, so each
// test's emulators.ForTest reuses it instead of starting its own. If it cannot
// start, every test fails through ForTest, saying why.
func TestMain(m *testing.M) {
	var emu *emulators.Emulator
	if os.Getenv(emulators.Firestore.EnvVar()) == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		e, err := emulators.Start(ctx, emulators.Firestore)
		cancel()
		if err == nil {
			emu = e
			os.Setenv(emulators.Firestore.EnvVar(), e.Host)
		}
	}
	code := m.Run()
	emu.Stop()
	os.Exit(code)
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// clock is a settable clock for WithClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newStore returns a Store over a project no other test uses, with a clock
// starting at t0.
func newStore(t *testing.T, opts ...Option) (*Store, *firestore.Client, *clock) {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	client, err := firestore.NewClient(t.Context(), emulators.ProjectID("t"))
	if err != nil {
		t.Fatalf("firestore client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	clk := &clock{now: t0}
	return New(client, append([]Option{WithClock(clk.Now)}, opts...)...), client, clk
}

// observed is a lesson as detection sees it; mediaFP "" means no media.
func observed(title, mediaFP string) Observed {
	l := Lesson{
		CourseID: "c1", CourseName: "Go", School: "programming",
		ModuleID: "m1", ModuleName: "Basics", ModuleOrder: 1, PageOrder: 1,
		Title: title, Type: "CONTENT", HasMedia: mediaFP != "", MediaStatus: MediaNone,
	}
	if mediaFP != "" {
		l.MediaStatus = MediaReady
		l.Media = &Media{Kind: "url", Ref: "page-" + mediaFP, Ext: "mp4", Size: 42, Fingerprint: mediaFP}
	}
	l.Fingerprint = fmt.Sprintf("%s|%s|%s|%d|%d", l.Title, l.MediaStatus, mediaFP, l.ModuleOrder, l.PageOrder)
	return Observed{Lesson: l, RunID: "run-1"}
}

// create makes lesson id at version 1 with ready media.
func create(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, _, err := s.ApplyDetected(t.Context(), id, observed("Intro", "video-1")); err != nil {
		t.Fatalf("create lesson: %v", err)
	}
}

func mustLesson(t *testing.T, s *Store, id string) Lesson {
	t.Helper()
	l, err := s.Lesson(t.Context(), id)
	if err != nil {
		t.Fatalf("read lesson: %v", err)
	}
	return l
}

// updateTime is the document's last write time as Firestore records it.
func updateTime(t *testing.T, c *firestore.Client, coll, id string) time.Time {
	t.Helper()
	snap, err := c.Collection(coll).Doc(id).Get(t.Context())
	if err != nil {
		t.Fatalf("get %s/%s: %v", coll, id, err)
	}
	return snap.UpdateTime
}

// runStage claims stage at version and completes it.
func runStage(t *testing.T, s *Store, id, stage string, version int) {
	t.Helper()
	c, err := s.Claim(t.Context(), id, stage, version, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Fatalf("claim %s v%d: %v, %v", stage, version, c.Outcome, err)
	}
	if err := s.Complete(t.Context(), id, stage, version, c.Token, map[string]string{"uri": stage}); err != nil {
		t.Fatalf("complete %s: %v", stage, err)
	}
}
