package lessonstate

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
)

func TestCoursesAndSetCourse(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	if cs, err := s.Courses(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("courses of an empty store: %v, %v", cs, err)
	}
	b := Course{ID: "4100002", Name: "Marketing", School: "marketing", ClubSubdomain: "mk", Fingerprint: "f2", LastRunID: "run-1", LastWalkedAt: t0}
	a := Course{ID: "4100001", Name: "Go", School: "programming", ClubSubdomain: "go", Fingerprint: "", LastRunID: "run-1", LastWalkedAt: t0}
	for _, c := range []Course{b, a} {
		if err := s.SetCourse(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	b.Removed, b.Fingerprint = true, ""
	if err := s.SetCourse(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Courses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Course{a, b}) {
		t.Fatalf("courses = %+v, want %+v in id order", got, []Course{a, b})
	}
	if err := s.SetCourse(ctx, Course{Name: "no id"}); err == nil {
		t.Error("a course without an id was written")
	}
}

func TestActiveLessonIDPage(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("L%d", i)
		create(t, s, id)
		want = append(want, id)
	}
	other := observed("Elsewhere", "")
	other.Lesson.CourseID = "c2"
	if _, _, err := s.ApplyDetected(ctx, "X1", other); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkRemoved(ctx, "L2", "run-2"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(id string) bool { return id == "L2" })

	var got []string
	pages := 0
	for after := ""; ; pages++ {
		ids, err := s.ActiveLessonIDPage(ctx, "c1", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids...)
		if len(ids) < 2 {
			break
		}
		after = ids[len(ids)-1]
	}
	if !slices.Equal(got, want) || pages != 2 {
		t.Errorf("active ids of c1 = %v in %d full pages, want %v in 2", got, pages, want)
	}
	if _, err := s.ActiveLessonIDPage(ctx, "c1", "", 0); err == nil {
		t.Error("a page of 0 ids was accepted")
	}
}
