// Package status is what an operator asks first: how many lessons are in
// each state of each stage, which failed and why, which are stuck past the
// sweeper's threshold, and how the last detection runs went. `pipeline
// status` prints it, against the emulators or a real project alike.
package status

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Store is what the report reads.
type Store interface {
	Lessons(ctx context.Context) ([]lessonstate.Lesson, error)
	RecentRuns(ctx context.Context, n int) ([]lessonstate.Run, error)
	Now() time.Time
}

// Report is the status of the pipeline.
type Report struct {
	At      time.Time `json:"at"`
	Lessons int       `json:"lessons"`
	Removed int       `json:"removed"`
	// Stages counts, per stage, the lessons in each state at their current
	// version.
	Stages map[string]map[string]int `json:"stages"`
	// Failures are the lessons failed for good, with the reason.
	Failures []Failure `json:"failures,omitempty"`
	// Stuck are lessons whose check time passed more than the grace ago: the
	// sweeper should have acted and has not (is it scheduled?).
	Stuck []Stuck            `json:"stuck,omitempty"`
	Runs  []lessonstate.Run  `json:"runs,omitempty"`
	Usage map[string]float64 `json:"usage,omitempty"`
}

// Failure is a lesson failed for good.
type Failure struct {
	LessonID string `json:"lessonId"`
	Title    string `json:"title"`
	Version  int    `json:"version"`
	Stage    string `json:"stage"`
	Attempts int    `json:"attempts"`
	Reason   string `json:"reason"`
}

// Stuck is a lesson the sweeper should have looked at.
type Stuck struct {
	LessonID string    `json:"lessonId"`
	Version  int       `json:"version"`
	Step     string    `json:"step"`
	State    string    `json:"state"`
	Since    time.Time `json:"checkDueSince"`
}

// Build reads the store and makes the report; grace is how late a check may
// be before the lesson counts as stuck (a few sweeper intervals).
func Build(ctx context.Context, st Store, grace time.Duration, runs int) (Report, error) {
	lessons, err := st.Lessons(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("status: %w", err)
	}
	now := st.Now()
	r := Report{At: now, Stages: map[string]map[string]int{}, Usage: map[string]float64{}}
	for _, name := range lessonstate.Stages {
		r.Stages[name] = map[string]int{}
	}
	for _, l := range lessons {
		r.Lessons++
		for k, v := range l.Usage {
			r.Usage[k] += v
		}
		if l.Removed {
			r.Removed++
			continue
		}
		for _, name := range lessonstate.Stages {
			rec := l.Stages[name]
			state := rec.State
			if rec.Version != l.Version {
				state = lessonstate.StatePending
			}
			r.Stages[name][state]++
			if state == lessonstate.StateFailed {
				r.Failures = append(r.Failures, Failure{LessonID: l.ID, Title: l.Title, Version: l.Version, Stage: name, Attempts: rec.Attempts, Reason: rec.Error})
			}
		}
		if step, rec, ok := l.Due(); ok && !l.NextCheckAt.IsZero() && now.Sub(l.NextCheckAt) > grace {
			r.Stuck = append(r.Stuck, Stuck{LessonID: l.ID, Version: l.Version, Step: step, State: rec.State, Since: l.NextCheckAt})
		}
	}
	slices.SortFunc(r.Stuck, func(a, b Stuck) int { return a.Since.Compare(b.Since) })
	slices.SortFunc(r.Failures, func(a, b Failure) int { return cmp.Compare(a.LessonID, b.LessonID) })
	if runs > 0 {
		if r.Runs, err = st.RecentRuns(ctx, runs); err != nil {
			return r, fmt.Errorf("status: %w", err)
		}
	}
	return r, nil
}
