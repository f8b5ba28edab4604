package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Settlement is where a lesson of a run stands, for the run's digest.
type Settlement string

const (
	// InFlight: work of the lesson's version is still to come.
	InFlight        Settlement = ""
	SettledSynced   Settlement = "synced"
	SettledFailed   Settlement = "failed"
	SettledRemoved  Settlement = "removed"
	SettledAwaiting Settlement = "awaiting-media"
	// SettledNoMedia: the page has no media; detection sent it nowhere.
	SettledNoMedia Settlement = "no-media"
	// SettledSkipped: its sync was skipped.
	SettledSkipped Settlement = "skipped"
)

// failOrder is where a failure is looked for: the branches before the
// process step that joins them, so the stage named is the one that failed.
var failOrder = append(slices.Clone(lessonstate.Stages), lessonstate.StepProcess)

// Settle says whether a lesson has settled for the digest of the run that
// last changed it, and how; stage names the step that failed.
func Settle(l lessonstate.Lesson) (s Settlement, stage string) {
	if l.Removed {
		return SettledRemoved, ""
	}
	for _, st := range failOrder {
		if rec := l.Stages[st]; rec.Version == l.Version && rec.State == lessonstate.StateFailed {
			return SettledFailed, st
		}
	}
	sync := l.Stages[lessonstate.StageSync]
	if sync.Version == l.Version && sync.State == lessonstate.StateDone {
		return SettledSynced, ""
	}
	// Detection sends a lesson without media ready nowhere (its records
	// are skipped, or left pending for no one): whatever its records say,
	// nothing of this run will move it.
	switch l.MediaStatus {
	case lessonstate.MediaAwaiting:
		return SettledAwaiting, ""
	case lessonstate.MediaNone, "":
		return SettledNoMedia, ""
	}
	if sync.Version == l.Version && sync.State == lessonstate.StateSkipped {
		return SettledSkipped, ""
	}
	return InFlight, ""
}

// Digest is what a settled run did, lesson by lesson.
type Digest struct {
	Run lessonstate.Run
	// Synced, Failed, Removed and NotSynced are the run's lessons by
	// settlement; AwaitingMedia adds the lessons the run found still
	// waiting for media whatever run last changed them.
	Synced, Failed, Removed, AwaitingMedia, NotSynced []DigestLesson
	// Unfinished: the run recorded no end within RunWait of its start.
	Unfinished bool
}

// DigestLesson is one lesson in a digest.
type DigestLesson struct {
	Lesson lessonstate.Lesson
	// Stage and Reason say why it failed.
	Stage, Reason string
	Club, Logs    string
}

// empty reports whether the run changed nothing anyone needs to hear of.
func (d Digest) empty() bool {
	return len(d.Synced)+len(d.Failed)+len(d.Removed)+len(d.NotSynced) == 0 &&
		!slices.ContainsFunc(d.AwaitingMedia, func(l DigestLesson) bool { return l.Lesson.LastRunID == d.Run.ID })
}

// errRunInProgress: every lesson of the run settled before the run recorded
// its end; lessons may still join it.
var errRunInProgress = errors.New("detection run has not recorded its end")

// firstInFlight returns the first lesson of the run not settled yet.
func (n *Notifier) firstInFlight(ctx context.Context, runID string) (*lessonstate.Lesson, error) {
	var found *lessonstate.Lesson
	err := n.store.EachLessonOfRun(ctx, runID, func(l lessonstate.Lesson) bool {
		if s, _ := Settle(l); s == InFlight {
			found = &l
			return false
		}
		return true
	})
	return found, err
}

// assemble reads what a run's digest says: every lesson the run changed,
// sorted into its settlement, the lessons it found awaiting media, and the
// links to each. It fails if a lesson is still in flight (a delivery that
// read the run a moment too early).
func (n *Notifier) assemble(ctx context.Context, run lessonstate.Run) (Digest, error) {
	d := Digest{Run: run}
	var inFlight []string
	awaiting := map[string]bool{}
	err := n.store.EachLessonOfRun(ctx, run.ID, func(l lessonstate.Lesson) bool {
		s, stage := Settle(l)
		dl := DigestLesson{Lesson: l}
		switch s {
		case InFlight:
			inFlight = append(inFlight, l.ID)
		case SettledSynced:
			d.Synced = append(d.Synced, dl)
		case SettledFailed:
			dl.Stage, dl.Reason = stage, l.Stages[stage].Error
			d.Failed = append(d.Failed, dl)
		case SettledRemoved:
			d.Removed = append(d.Removed, dl)
		case SettledAwaiting:
			awaiting[l.ID] = true
			d.AwaitingMedia = append(d.AwaitingMedia, dl)
		default:
			d.NotSynced = append(d.NotSynced, dl)
		}
		return true
	})
	if err != nil {
		return Digest{}, err
	}
	if len(inFlight) > 0 {
		return Digest{}, fmt.Errorf("digest of run %s: lesson %s is still in flight", run.ID, inFlight[0])
	}
	var more []string
	for _, id := range run.AwaitingMedia {
		if !awaiting[id] && events.ValidLessonID(id) {
			more = append(more, id)
		}
	}
	if len(more) > 0 {
		ls, err := n.store.LessonsByID(ctx, more)
		if err != nil {
			return Digest{}, fmt.Errorf("digest of run %s: %w", run.ID, err)
		}
		for _, l := range ls {
			if l.MediaStatus == lessonstate.MediaAwaiting && !l.Removed {
				d.AwaitingMedia = append(d.AwaitingMedia, DigestLesson{Lesson: l})
			}
		}
	}
	courses := map[string]lessonstate.Course{}
	for _, group := range [][]DigestLesson{d.Synced, d.Failed, d.Removed, d.AwaitingMedia, d.NotSynced} {
		for i := range group {
			n.link(ctx, &group[i], courses)
		}
		slices.SortFunc(group, byPlace)
	}
	return d, nil
}

// link fills a digest lesson's links, reading its course once per digest.
// A course that cannot be read costs only the Club link.
func (n *Notifier) link(ctx context.Context, dl *DigestLesson, courses map[string]lessonstate.Course) {
	l := dl.Lesson
	c, ok := courses[l.CourseID]
	if !ok && l.CourseID != "" {
		var err error
		if c, err = n.store.Course(ctx, l.CourseID); err != nil {
			n.log.WarnContext(ctx, "course unreadable; its lessons go without a Club link",
				"courseId", l.CourseID, "error", err.Error())
		}
		courses[l.CourseID] = c
	}
	dl.Club = n.links.Lesson(c.ClubSubdomain, l.CourseID, l.ModuleID, l.ID)
	if dl.Stage != "" {
		dl.Logs = n.links.LessonLogs(l.ID, dl.Stage)
	}
}

// byPlace orders lessons as the course does.
func byPlace(a, b DigestLesson) int {
	return cmp.Or(
		cmp.Compare(a.Lesson.CourseName, b.Lesson.CourseName),
		cmp.Compare(a.Lesson.CourseID, b.Lesson.CourseID),
		cmp.Compare(a.Lesson.ModuleOrder, b.Lesson.ModuleOrder),
		cmp.Compare(a.Lesson.PageOrder, b.Lesson.PageOrder),
		cmp.Compare(a.Lesson.ID, b.Lesson.ID),
	)
}

// runEnded reports whether the digest may go out as far as the run is
// concerned: it recorded its end, or it has had RunWait since its start
// (the detector must have died; the digest says so).
func (n *Notifier) runEnded(run lessonstate.Run) (ended, unfinished bool) {
	if !run.FinishedAt.IsZero() || run.Outcome != "" {
		return true, false
	}
	if !run.StartedAt.IsZero() && n.now().Sub(run.StartedAt) >= n.runWait {
		return true, true
	}
	return false, false
}

// sinceStart is how long ago the run started, for log lines.
func (n *Notifier) sinceStart(run lessonstate.Run) time.Duration {
	if run.StartedAt.IsZero() {
		return 0
	}
	return n.now().Sub(run.StartedAt).Round(time.Second)
}
