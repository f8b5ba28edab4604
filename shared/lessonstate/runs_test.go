package lessonstate

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestPutCourseWritesOnlyOnChange(t *testing.T) {
	s, client, _ := newStore(t)
	ctx := t.Context()
	c := Course{ID: "1117869", Name: "Go", School: "programming", ClubSubdomain: "goclub", Fingerprint: "f1", LastRunID: "run-1", LastWalkedAt: t0}
	tests := []struct {
		name   string
		mutate func(*Course)
		want   bool
	}{
		{"new", func(*Course) {}, true},
		{"same", func(*Course) {}, false},
		{"only run and walk time differ", func(c *Course) { c.LastRunID, c.LastWalkedAt = "run-2", t0.Add(time.Hour) }, false},
		{"structure changed", func(c *Course) { c.Fingerprint = "f2" }, true},
		{"renamed", func(c *Course) { c.Name = "Go, 2nd edition" }, true},
	}
	for _, tt := range tests {
		tt.mutate(&c)
		var before time.Time
		if tt.name != "new" {
			before = updateTime(t, client, CollCourses, c.ID)
		}
		changed, err := s.PutCourse(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		after := updateTime(t, client, CollCourses, c.ID)
		if changed != tt.want || after.Equal(before) == tt.want {
			t.Fatalf("%s: changed %v (written %v), want %v", tt.name, changed, !after.Equal(before), tt.want)
		}
	}
	got, err := s.Course(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The last write was the rename, which carried run-2.
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("stored course %+v, want %+v", got, c)
	}
}

func TestRuns(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	if _, ok, err := s.LatestRun(ctx); err != nil || ok {
		t.Fatalf("latest run of an empty store: %v, %v", ok, err)
	}
	r1 := Run{ID: "r1", StartedAt: t0, FinishedAt: t0.Add(time.Minute), Counts: Counts{New: 2, Unchanged: 3, CoursesWalked: 1, CoursesPartial: 1, SkippedModules: 1},
		Outcome: "partial", Errors: []string{"product list: 429"}, AwaitingMedia: []string{"L9"},
		Courses: []CourseRun{
			{CourseID: "c1", Outcome: "walked", Modules: 2, Lessons: 5},
			{CourseID: "c2", Outcome: "partial", Changed: true, Modules: 3, Lessons: 4, NotLessons: 1,
				Problems: []string{"module m2 skipped"}, Warnings: []string{"page p1 has no name"}, MoreProblems: 2},
		},
		MoreCourses: 1, NotLessonTypes: map[string]int{"QUIZ": 2}}
	r2 := Run{ID: "r2", StartedAt: t0.Add(time.Hour)} // still running: no finish time
	for _, r := range []Run{r2, r1} {
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []Run{r1, r2} {
		got, err := s.Run(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("run round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	latest, ok, err := s.LatestRun(ctx)
	if err != nil || !ok || latest.ID != "r2" {
		t.Fatalf("latest run %+v, %v, %v; want r2", latest, ok, err)
	}
	if _, err := s.Run(ctx, "r3"); !errors.Is(err, ErrRunNotFound) {
		t.Fatalf("missing run: %v, want ErrRunNotFound", err)
	}
}
