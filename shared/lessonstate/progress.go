package lessonstate

import (
	"slices"
	"time"

	"github.com/coursekb/pipeline/shared/events"
)

// DefaultPendingAfter is how long a step may wait pending, its event sent
// but nobody working on it, before the sweeper sends its event again.
const DefaultPendingAfter = 15 * time.Minute

// StepTopic is the topic whose event starts step: what the sweeper re-emits
// when the step stalls.
func StepTopic(step string) string {
	switch step {
	case StageDownload:
		return events.TopicLessonDiscovered
	case StepProcess:
		return events.TopicLessonDownloaded
	case StageEnrich:
		return events.TopicLessonProcessed
	case StageSync:
		return events.TopicLessonEnriched
	}
	return ""
}

// Due returns the step the lesson is waiting on at its version, with its
// record: the first of Steps not yet done or skipped. ok is false when the
// lesson waits on nothing: every step is finished, one has failed for good
// (a replay restarts it), or the lesson was removed.
//
// Every writer and the sweeper decide with this one function, so the time
// the sweeper looks at a lesson and what it finds there cannot disagree.
func (l Lesson) Due() (step string, rec Stage, ok bool) {
	if l.Removed {
		return "", Stage{}, false
	}
	for _, st := range Steps {
		rec := l.Stages[st]
		if rec.Version == l.Version && (rec.State == StateDone || rec.State == StateSkipped) {
			continue
		}
		if rec.Version == l.Version && rec.State == StateFailed {
			return "", Stage{}, false
		}
		if rec.Version != l.Version {
			// A record left behind by an older version: nothing of this
			// version has started it yet.
			rec = Stage{State: StatePending, Version: l.Version}
		}
		return st, rec, true
	}
	return "", Stage{}, false
}

// nextCheck is when the sweeper must look at l next, given that l was just
// written at now; zero when it need not. A running step is looked at when its
// lease ends; a pending one when it has waited pendingAfter from this write
// (every write that makes a step pending is one: the version's creation, the
// previous step's completion, a retryable failure, a re-drive).
func nextCheck(l Lesson, now time.Time, pendingAfter time.Duration) time.Time {
	_, rec, ok := l.Due()
	switch {
	case !ok:
		return time.Time{}
	case rec.State == StateRunning:
		return rec.LeaseUntil
	case rec.NotBefore.After(now):
		// Backing off after a failure: its event is sent again then.
		return rec.NotBefore
	}
	return now.Add(pendingAfter)
}

// finished reports whether a record is done or skipped at version.
func finished(rec Stage, version int) bool {
	return rec.Version == version && (rec.State == StateDone || rec.State == StateSkipped)
}

// processBranches are the stages the process step's workflow runs.
var processBranches = []string{StageTranscribe, StageAnalyze}

// isProcessBranch reports whether stage is run by the process step.
func isProcessBranch(stage string) bool { return slices.Contains(processBranches, stage) }
