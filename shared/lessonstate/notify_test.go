package lessonstate

import (
	"slices"
	"testing"
)

// The notifier's reads: a run's lessons by lastRunId, in id order, with an
// early stop; lessons by id, missing ones left out.
func TestLessonsOfRunAndByID(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"C", "A", "B"} {
		if _, _, err := s.ApplyDetected(ctx, id, Observed{Lesson: observed("t-"+id, "fp").Lesson, RunID: "run-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.ApplyDetected(ctx, "D", Observed{Lesson: observed("t-D", "fp").Lesson, RunID: "run-2"}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := s.EachLessonOfRun(ctx, "run-1", func(l Lesson) bool { seen = append(seen, l.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"A", "B", "C"}) {
		t.Errorf("run-1's lessons %v, want A B C", seen)
	}
	seen = nil
	if err := s.EachLessonOfRun(ctx, "run-1", func(l Lesson) bool { seen = append(seen, l.ID); return l.ID != "B" }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"A", "B"}) {
		t.Errorf("stopped at B: saw %v", seen)
	}
	ls, err := s.LessonsByID(ctx, []string{"D", "nope", "A"})
	if err != nil || len(ls) != 2 || ls[0].ID != "D" || ls[1].ID != "A" || ls[0].Title != "t-D" {
		t.Errorf("by id: %+v %v", ls, err)
	}
}
