package detect

import (
	"errors"
	"log/slog"
	"maps"
	"slices"
	"testing"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// ids lists the lesson ids of messages, sorted.
func ids(ms []message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Event.LessonID)
	}
	slices.Sort(out)
	return out
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// walked is the fixture's usual tally: both active courses walked, the quiz
// counted as a page that is not a lesson.
func walked(c lessonstate.Counts) lessonstate.Counts {
	c.CoursesWalked = 2
	if c.NotLessons == 0 {
		c.NotLessons = 1
	}
	return c
}

func TestFirstRunThenNothingChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	r := f.run(t, 0)
	if r.Outcome != OutcomeComplete || !r.Complete || r.Cursor != "" || len(r.Errors) > 0 {
		t.Fatalf("first run: outcome %q complete=%v cursor=%q errors=%v", r.Outcome, r.Complete, r.Cursor, r.Errors)
	}
	if want := walked(lessonstate.Counts{New: 4, AwaitingMedia: 1}); r.Counts != want {
		t.Errorf("first run counts = %+v, want %+v", r.Counts, want)
	}
	checkIDs(t, "awaiting media", r.AwaitingMedia, []string{"pyTypes"})
	if !maps.Equal(r.NotLessonTypes, map[string]int{"QUIZ": 1}) {
		t.Errorf("pages that are not lessons = %v, want the quiz", r.NotLessonTypes)
	}
	var outcomes []string
	for _, c := range r.Courses {
		outcomes = append(outcomes, c.CourseID+" "+c.Outcome)
	}
	checkIDs(t, "course outcomes", outcomes, []string{"4100001 walked", "4100002 walked", "4100003 inactive"})
	msgs := f.pub.take()
	checkIDs(t, "first run events", ids(msgs), []string{"mkFunnel", "pyIf", "pyVars"})
	for _, m := range msgs {
		if m.Topic != events.TopicLessonDiscovered || m.Attrs[events.AttrLessonID] != m.Event.LessonID || m.Attrs[events.AttrVersion] != "1" {
			t.Errorf("message %+v: want lesson-discovered with lessonId and version 1 attributes", m)
		}
	}
	if n := f.store.pendingCount(t); n != 0 {
		t.Errorf("%d outbox entries left after publishing", n)
	}
	// New courses have nothing to remove: their lessons are not listed
	// back.
	if calls := f.store.take(); calls["ActiveLessonIDPage"] != 0 || calls["ApplyDetected"] != 4 || calls["SetCourse"] != 4 {
		t.Errorf("first run's lesson store calls = %v, want 4 lessons recorded, 2 course documents written twice, no id listed", calls)
	}

	// What the store holds describes the page.
	l := f.store.lesson(t, "pyIf")
	if l.CourseID != "4100001" || l.CourseName != "Python desde cero" || l.School != "programacion" ||
		l.ModuleID != "pyM2" || l.ModuleName != "Control de flujo" || l.ModuleOrder != 2 || l.PageOrder != 1 ||
		l.Title != "Condicionales" || l.Type != "CONTENT" || !l.HasMedia || l.MediaStatus != lessonstate.MediaReady ||
		l.Media == nil || l.Media.Fingerprint != "fp-if" || l.Fingerprint != Fingerprint(l) {
		t.Errorf("stored lesson pyIf = %+v", l)
	}
	if aw := f.store.lesson(t, "pyTypes"); aw.MediaStatus != lessonstate.MediaAwaiting {
		t.Errorf("pyTypes media status %q, want awaiting", aw.MediaStatus)
	}
	for _, id := range []string{"pyDraft", "pyQuiz"} {
		if _, err := f.store.Lesson(t.Context(), id); !errors.Is(err, lessonstate.ErrNotFound) {
			t.Errorf("%s (unpublished, or not a lesson type) was stored: %v", id, err)
		}
	}
	c, ok := f.store.course(t, "4100001")
	if !ok || c.ClubSubdomain != "python-desde-cero" || c.School != "programacion" || c.Fingerprint == "" || c.LastRunID != "run-1" {
		t.Errorf("course 4100001 = %+v", c)
	}
	for _, id := range []string{"999", "4100003"} {
		if _, ok := f.store.course(t, id); ok {
			t.Errorf("course %s (not in catalog, or inactive) was walked", id)
		}
	}

	// A second run over the same structure reads each course document once
	// (one listing) and no lesson, and writes only its run record.
	f.store.take()
	r = f.run(t, 0)
	if msgs := f.pub.take(); len(msgs) > 0 {
		t.Errorf("second run published %v", ids(msgs))
	}
	if calls := f.store.take(); !maps.Equal(calls, map[string]int{"Courses": 1}) {
		t.Errorf("second run's lesson store calls = %v, want only the one course listing", calls)
	}
	if want := walked(lessonstate.Counts{Unchanged: 4, AwaitingMedia: 1}); r.Counts != want || r.Outcome != OutcomeComplete || len(r.Errors) > 0 {
		t.Errorf("second run: counts %+v outcome %q errors %v; want counts %+v", r.Counts, r.Outcome, r.Errors, want)
	}
	if c := courseRun(t, r, "4100001"); c.Changed || c.Lessons != 3 || c.Modules != 2 || c.NotLessons != 1 {
		t.Errorf("second run's Python = %+v, want unchanged with 2 modules, 3 lessons and the quiz", c)
	}
	saved, err := f.store.Run(t.Context(), "run-2")
	if err != nil || saved.FinishedAt.IsZero() || saved.Outcome != OutcomeComplete || len(saved.Courses) != 3 {
		t.Errorf("saved run = %+v, %v", saved, err)
	}
}

func TestChangesBetweenRuns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(f *fixture)
		counts lessonstate.Counts // without the courses and the quiz: see walked
		topic  string
		events []string
		// pyCourse: whether Python's course fingerprint must change.
		pyCourse bool
	}{
		{
			name: "renamed page and new page",
			change: func(f *fixture) {
				f.hotmart.setPage(pyID, "pyM1", hotmart.Page{ID: "pyVars", Name: "Variables (2026)", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
				f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyLoops", Name: "Bucles", Type: "CONTENT", PageOrder: 2, Published: true, HasMedia: true})
				f.media.media["pyLoops"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-loops"}
			},
			counts:   lessonstate.Counts{New: 1, Changed: 1, Unchanged: 3, AwaitingMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyLoops", "pyVars"},
			pyCourse: true,
		},
		{
			name:     "removed page",
			change:   func(f *fixture) { f.hotmart.deletePage(pyID, "pyM2", "pyIf") },
			counts:   lessonstate.Counts{Removed: 1, Unchanged: 3, AwaitingMedia: 1},
			topic:    events.TopicLessonEvents,
			events:   []string{"pyIf"},
			pyCourse: true,
		},
		{
			name: "unpublished page",
			change: func(f *fixture) {
				f.hotmart.setPage(mkID, "mkM1", hotmart.Page{ID: "mkFunnel", Name: "Embudos", Type: "CONTENT", PageOrder: 1, Published: false, HasMedia: true})
			},
			counts: lessonstate.Counts{Removed: 1, Unchanged: 3, AwaitingMedia: 1},
			topic:  events.TopicLessonEvents,
			events: []string{"mkFunnel"},
		},
		{
			name: "page becomes an advertisement",
			change: func(f *fixture) {
				f.hotmart.setPage(pyID, "pyM1", hotmart.Page{ID: "pyVars", Name: "Variables", Type: "ADVERTISEMENT", PageOrder: 1, Published: true, HasMedia: true})
			},
			counts:   lessonstate.Counts{Removed: 1, Unchanged: 3, AwaitingMedia: 1, NotLessons: 2},
			topic:    events.TopicLessonEvents,
			events:   []string{"pyVars"},
			pyCourse: true,
		},
		{
			name: "media arrives",
			change: func(f *fixture) {
				f.media.media["pyTypes"] = &lessonstate.Media{Kind: "object", Ref: "gs://raw/ingest/types.mp4", Ext: "mp4", Fingerprint: "fp-types"}
			},
			counts:   lessonstate.Counts{Changed: 1, Unchanged: 3},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyTypes"},
			pyCourse: true,
		},
		{
			name: "new video",
			change: func(f *fixture) {
				f.media.media["pyIf"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-if-v2"}
			},
			counts:   lessonstate.Counts{Changed: 1, Unchanged: 3, AwaitingMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyIf"},
			pyCourse: true,
		},
		{
			name: "media re-resolved, same video",
			change: func(f *fixture) {
				f.media.media["pyIf"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-if"}
			},
			counts: lessonstate.Counts{Unchanged: 4, AwaitingMedia: 1},
		},
		{
			name: "modules reordered",
			change: func(f *fixture) {
				f.hotmart.modules["python-desde-cero"] = []hotmart.Module{
					{ID: "pyM2", Name: "Control de flujo", Sequence: 1},
					{ID: "pyM1", Name: "Fundamentos", Sequence: 2},
				}
			},
			counts:   lessonstate.Counts{Changed: 3, Unchanged: 1, AwaitingMedia: 1},
			topic:    events.TopicLessonDiscovered,
			events:   []string{"pyIf", "pyVars"}, // the awaiting lesson changes without an event
			pyCourse: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.run(t, 0)
			f.pub.take()
			before, _ := f.store.course(t, "4100001")

			tt.change(f)
			r := f.run(t, 0)
			if r.Outcome != OutcomeComplete || len(r.Errors) > 0 {
				t.Fatalf("run: outcome %q errors %v", r.Outcome, r.Errors)
			}
			if want := walked(tt.counts); r.Counts != want {
				t.Errorf("counts = %+v, want %+v", r.Counts, want)
			}
			msgs := f.pub.take()
			checkIDs(t, "events", ids(msgs), tt.events)
			for _, m := range msgs {
				if m.Topic != tt.topic {
					t.Errorf("event for %s on %s, want %s", m.Event.LessonID, m.Topic, tt.topic)
				}
				if tt.topic == events.TopicLessonEvents && (m.Event.Kind != events.KindRemoved || m.Attrs[events.AttrKind] != events.KindRemoved) {
					t.Errorf("removal message %+v lacks kind removed", m)
				}
			}
			if n := f.store.pendingCount(t); n != 0 {
				t.Errorf("%d outbox entries left", n)
			}
			after, _ := f.store.course(t, "4100001")
			if changed := after.Fingerprint != before.Fingerprint; changed != tt.pyCourse || after.Fingerprint == "" {
				t.Errorf("Python course fingerprint %q -> %q: changed = %v, want %v", before.Fingerprint, after.Fingerprint, changed, tt.pyCourse)
			}
			if c := courseRun(t, r, "4100001"); c.Changed != tt.pyCourse {
				t.Errorf("run says Python changed = %v, want %v", c.Changed, tt.pyCourse)
			}
		})
	}
}

func TestRemovedPageReappears(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, 0)
	f.pub.take()
	f.hotmart.deletePage(pyID, "pyM2", "pyIf")
	f.run(t, 0)
	f.pub.take()
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyIf", Name: "Condicionales", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true})
	r := f.run(t, 0)
	msgs := f.pub.take()
	checkIDs(t, "events", ids(msgs), []string{"pyIf"})
	if r.Counts.New != 1 || msgs[0].Event.Version != 2 || msgs[0].Topic != events.TopicLessonDiscovered {
		t.Errorf("reappeared lesson: counts %+v message %+v", r.Counts, msgs[0])
	}
}

// Which page types are lessons is configuration. Pages of other types are
// counted by type and never recorded, whatever media they have; a lesson
// whose type stops being a lesson type is removed.
func TestLessonTypesAreConfiguration(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.hotmart.setPage(pyID, "pyM2", hotmart.Page{ID: "pyAd", Name: "Oferta", Type: "ADVERTISEMENT", PageOrder: 2, Published: true, HasMedia: true})
	f.media.media["pyAd"] = &lessonstate.Media{Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-ad"}

	f.opts = []Option{WithLessonTypes("content", " Quiz ")}
	r := f.run(t, 0)
	if r.Counts.New != 5 || r.Counts.NoMedia != 1 || r.Counts.NotLessons != 1 || !maps.Equal(r.NotLessonTypes, map[string]int{"ADVERTISEMENT": 1}) {
		t.Errorf("with quizzes as lessons: counts %+v, not lessons %v", r.Counts, r.NotLessonTypes)
	}
	if q := f.store.lesson(t, "pyQuiz"); q.Type != "QUIZ" || q.MediaStatus != lessonstate.MediaNone {
		t.Errorf("quiz recorded as %+v", q)
	}
	checkIDs(t, "events", ids(f.pub.take()), []string{"mkFunnel", "pyIf", "pyVars"})

	f.opts = nil // the default: CONTENT and WEBINAR
	r = f.run(t, 0)
	if r.Counts.Removed != 1 || !maps.Equal(r.NotLessonTypes, map[string]int{"ADVERTISEMENT": 1, "QUIZ": 1}) {
		t.Errorf("default types: counts %+v, not lessons %v", r.Counts, r.NotLessonTypes)
	}
	if !f.store.lesson(t, "pyQuiz").Removed {
		t.Error("the quiz is still a lesson")
	}
	if _, err := f.store.Lesson(t.Context(), "pyAd"); !errors.Is(err, lessonstate.ErrNotFound) {
		t.Errorf("the advertisement was recorded: %v", err)
	}

	for _, bad := range [][]string{{}, {""}, {"CONTENT", "con tent"}} {
		if _, err := New(f.hotmart, f.media, f.store, f.pub, f.catalog, slog.New(slog.DiscardHandler), WithLessonTypes(bad...)); err == nil {
			t.Errorf("lesson types %q accepted", bad)
		}
	}
}
