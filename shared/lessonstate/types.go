// Package lessonstate keeps the pipeline's state in Firestore: courses,
// lessons with their per-stage records, and detection runs. It implements the
// stage claim rules of DESIGN.md section 4 as Firestore transactions, so that
// any number of concurrent or repeated deliveries leave exactly one owner and
// one result per stage and lesson version.
package lessonstate

import (
	"errors"
	"time"
)

// Collection names (DESIGN.md section 3).
const (
	CollCourses = "courses"
	CollLessons = "lessons"
	CollRuns    = "runs"
)

// Stage names, in pipeline order (DESIGN.md section 4).
const (
	StageDownload   = "download"
	StageTranscribe = "transcribe"
	StageAnalyze    = "analyze"
	StageEnrich     = "enrich"
	StageSync       = "sync"
)

// Stages lists every stage in pipeline order.
var Stages = []string{StageDownload, StageTranscribe, StageAnalyze, StageEnrich, StageSync}

// StepProcess is the record of the lesson-pipeline workflow execution that
// runs transcribe ∥ analyze for a version. The starter claims it; it is done
// when both branches are, and failed when either fails for good.
const StepProcess = "process"

// Steps are the records a trigger starts, in pipeline order: each is fed by
// one event (StepTopic), so a step that stalls can be re-driven by
// re-emitting that event. Transcribe and analyze are not among them: the
// workflow execution of the process step drives them.
var Steps = []string{StageDownload, StepProcess, StageEnrich, StageSync}

// records are every record a lesson document keeps under "stages".
var records = []string{StageDownload, StepProcess, StageTranscribe, StageAnalyze, StageEnrich, StageSync}

// MediaStages are the stages whose input is the lesson's media: a new video
// re-runs them; a change of title or order does not.
var MediaStages = []string{StageDownload, StageTranscribe, StageAnalyze}

// Stage states.
const (
	StatePending = "pending"
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
	StateSkipped = "skipped"
)

// Stage is one stage's record inside a lesson document.
type Stage struct {
	State      string            `firestore:"state"`
	Version    int               `firestore:"version"`
	Attempts   int               `firestore:"attempts"`
	Token      string            `firestore:"token,omitempty"`
	LeaseUntil time.Time         `firestore:"leaseUntil,omitempty"`
	StartedAt  time.Time         `firestore:"startedAt,omitempty"`
	FinishedAt time.Time         `firestore:"finishedAt,omitempty"`
	Error      string            `firestore:"error,omitempty"`
	Outputs    map[string]string `firestore:"outputs,omitempty"`
	// Redrives counts how often the sweeper re-emitted this record's event
	// for this version: work whose lease expired, or that waited pending
	// with no one to take it. Attempts counts claims; Redrives bounds the
	// work that never gets claimed at all.
	Redrives int `firestore:"redrives,omitempty"`
	// NotBefore holds a stage that failed for now (pending again) back
	// from its next attempt until then: a claim before it is answered
	// Busy, and the sweeper sends the stage's event again once it has
	// passed. Without it, the copies and redeliveries of one failing
	// message spent every attempt within seconds of a short outage.
	NotBefore time.Time `firestore:"notBefore,omitempty"`
}

// Media says where a lesson's video comes from, as the detector resolved it
// from the producer's media source. Hotmart itself gives no media URL.
//
// It names the media, never a download link: a manifest's links are often
// signed, expire, and carry credentials, so the downloader asks the media
// source for the current link when it downloads.
type Media struct {
	// Kind is "url" (manifest entry: download over HTTP) or "object" (a
	// master file in the raw bucket's ingest prefix: server-side copy).
	Kind string `firestore:"kind"`
	// Ref names the media in its source: the page id the manifest lists it
	// under (url), or gs://bucket/object (object).
	Ref string `firestore:"ref"`
	// Ext is the file extension of the source ("mp4", "mov", ...), which
	// names the raw object.
	Ext string `firestore:"ext"`
	// Size and MD5 (hex) are what the media source promises, when it does;
	// the download checks them.
	Size int64  `firestore:"size,omitempty"`
	MD5  string `firestore:"md5,omitempty"`
	// Fingerprint changes whenever the media itself changes (URL, size,
	// checksum, object generation).
	Fingerprint string `firestore:"fingerprint"`
}

// Outbox holds an event that must be published after the write that caused
// it. It is written in the same transaction as the change, as a document of
// the lesson's outbox subcollection (CollOutbox), and deleted once published,
// so a crash between the two loses nothing: the next detection run publishes
// what the outbox still holds.
type Outbox struct {
	Topic string `firestore:"topic"`
	Data  []byte `firestore:"data"`
	// QueuedAt is when the write that queued it committed; only
	// PendingOutbox fills it.
	QueuedAt time.Time `firestore:"-"`
}

// Lesson is a document of the lessons collection, keyed by Hotmart page id.
type Lesson struct {
	ID          string `firestore:"-"`
	CourseID    string `firestore:"courseId"`
	CourseName  string `firestore:"courseName"`
	School      string `firestore:"school"`
	ModuleID    string `firestore:"moduleId"`
	ModuleName  string `firestore:"moduleName"`
	ModuleOrder int    `firestore:"moduleOrder"`
	PageOrder   int    `firestore:"pageOrder"`
	Title       string `firestore:"title"`
	Type        string `firestore:"type"`
	HasMedia    bool   `firestore:"hasMedia"`
	Media       *Media `firestore:"media,omitempty"`
	// MediaStatus is "ready", "awaiting" (has_media but the media source has
	// no file yet: reported, not failed) or "none" (no media on the page).
	MediaStatus string `firestore:"mediaStatus"`
	Version     int    `firestore:"version"`
	// Fingerprint covers everything detection sees of the lesson.
	Fingerprint string           `firestore:"fingerprint"`
	Removed     bool             `firestore:"removed" json:"removed"`
	Stages      map[string]Stage `firestore:"stages"`
	// NextCheckAt is when the sweeper must look at the lesson: the lease end
	// of its running step, or when its pending step has waited too long.
	// It is absent when nothing is in flight, so the sweeper's one query
	// (nextCheckAt <= now, a single-field index) finds exactly the lessons
	// that may be stuck.
	NextCheckAt time.Time `firestore:"nextCheckAt,omitempty"`

	// Fields the later stages own. Detection never writes them, so a
	// rename, a new video or a removal leaves them as they were.

	// Usage is the lesson's cost ledger: what every paid call used, summed
	// over versions and attempts, by meter (see Meter*).
	Usage map[string]float64 `firestore:"usage,omitempty"`
	// VectorStore is the knowledge file live in the school's vector store.
	VectorStore *VectorFile `firestore:"vectorStore,omitempty"`
	// Outbox is not stored in the lesson document but in its outbox
	// subcollection; only PendingOutbox fills it.
	Outbox []Outbox `firestore:"-"`
	// OutboxPending is len(Outbox) > 0, as PendingOutbox fills it.
	OutboxPending bool      `firestore:"-"`
	LastRunID     string    `firestore:"lastRunId"`
	UpdatedAt     time.Time `firestore:"updatedAt"`
}

// VectorFile is a lesson's knowledge file in its school's OpenAI vector
// store, as the sync stage left it.
type VectorFile struct {
	StoreID  string    `firestore:"storeId"`
	FileID   string    `firestore:"fileId"`
	Version  int       `firestore:"version"`
	School   string    `firestore:"school"`
	SyncedAt time.Time `firestore:"syncedAt"`
}

// Course is a document of the courses collection, keyed by Hotmart product id.
type Course struct {
	ID            string `firestore:"-"`
	Name          string `firestore:"name"`
	School        string `firestore:"school"`
	ClubSubdomain string `firestore:"clubSubdomain"`
	// Fingerprint stands for the course's whole structure as its last
	// complete walk recorded it: a walk that finds the same one has nothing
	// to write. Empty means no complete walk stands behind the stored
	// lessons (the course is new, a walk is under way, or the last one was
	// partial): the next walk records every lesson again.
	Fingerprint  string    `firestore:"fingerprint"`
	LastRunID    string    `firestore:"lastRunId"`
	LastWalkedAt time.Time `firestore:"lastWalkedAt"`
	// Removed is set once the course left the product list or the catalog
	// and every lesson of it was marked removed.
	Removed bool `firestore:"removed,omitempty"`
}

// Counts are a detection run's tallies.
type Counts struct {
	New           int `firestore:"new" json:"new"`
	Changed       int `firestore:"changed" json:"changed"`
	Removed       int `firestore:"removed" json:"removed"`
	Unchanged     int `firestore:"unchanged" json:"unchanged"`
	AwaitingMedia int `firestore:"awaitingMedia" json:"awaitingMedia"`
	NoMedia       int `firestore:"noMedia" json:"noMedia"`
	// NotLessons counts published pages whose type is not a lesson type
	// (Run.NotLessonTypes has them by type).
	NotLessons int `firestore:"notLessons" json:"notLessons"`
	// SkippedPages and SkippedModules count what could not be decoded or
	// used, each named in its course's problems.
	SkippedPages   int `firestore:"skippedPages" json:"skippedPages"`
	SkippedModules int `firestore:"skippedModules" json:"skippedModules"`
	// Courses by outcome (CourseRun.Outcome).
	CoursesWalked  int `firestore:"coursesWalked" json:"coursesWalked"`
	CoursesPartial int `firestore:"coursesPartial" json:"coursesPartial"`
	CoursesFailed  int `firestore:"coursesFailed" json:"coursesFailed"`
}

// Run is a document of the runs collection: one detection run.
type Run struct {
	ID         string    `firestore:"-"`
	StartedAt  time.Time `firestore:"startedAt"`
	FinishedAt time.Time `firestore:"finishedAt,omitempty"`
	Counts     Counts    `firestore:"counts"`
	// Errors are the run's own failures (the product list, the outbox, the
	// run record, vanished courses); a course's are in its CourseRun.
	Errors []string `firestore:"errors,omitempty"`
	// AwaitingMedia lists lessons whose page has media the media source
	// does not provide yet.
	AwaitingMedia []string `firestore:"awaitingMedia,omitempty"`
	// Outcome is how the run ended: "complete", "budget", "partial" or
	// "failed" (shared/detect names them). Empty while it runs.
	Outcome string `firestore:"outcome,omitempty"`
	// Transient is set on a failed run whose failures a retry soon may
	// fix (Hotmart or Firestore unavailable), not on one that meets the
	// same fault whenever it runs.
	Transient bool `firestore:"transient,omitempty"`
	// Complete is true when the outcome is "complete": the sweep reached
	// the end of the product list and every course was walked completely.
	Complete bool `firestore:"complete"`
	// Cursor, when set, names the first product the next run must walk:
	// the run stopped at its time budget.
	Cursor string `firestore:"cursor,omitempty"`
	// Courses says what the run did with each course it looked at, in walk
	// order; MoreCourses counts those left out to keep the document small.
	Courses     []CourseRun `firestore:"courses,omitempty"`
	MoreCourses int         `firestore:"moreCourses,omitempty"`
	// NotLessonTypes counts the published pages that are not lessons, by
	// page type.
	NotLessonTypes map[string]int `firestore:"notLessonTypes,omitempty"`
}

// ClaimOutcome is what a claim attempt found.
type ClaimOutcome int

const (
	// Claimed: the caller owns the stage until its lease ends.
	Claimed ClaimOutcome = iota
	// AlreadyDone: this version's stage is finished; acknowledge and stop.
	AlreadyDone
	// Busy: another delivery holds a live lease; acknowledge and stop.
	Busy
	// Stale: the event's version is older than the lesson's; drop it.
	Stale
	// AlreadyFailed: this version's stage failed permanently; a replay resets it.
	AlreadyFailed
	// Skipped: the stage does not apply to this lesson (e.g. no media).
	Skipped
)

func (o ClaimOutcome) String() string {
	switch o {
	case Claimed:
		return "claimed"
	case AlreadyDone:
		return "already-done"
	case Busy:
		return "busy"
	case Stale:
		return "stale"
	case AlreadyFailed:
		return "already-failed"
	case Skipped:
		return "skipped"
	}
	return "unknown"
}

// Claim is the result of Store.Claim.
type Claim struct {
	Outcome ClaimOutcome
	// Token identifies this claim; Complete and Fail must present it, so an
	// owner whose lease was taken over cannot overwrite the new owner's work.
	Token  string
	Lesson Lesson
	Stage  Stage
}

var (
	// ErrNotFound: no such lesson.
	ErrNotFound = errors.New("lesson not found")
	// ErrLeaseLost: the stage is no longer held by the presented token.
	ErrLeaseLost = errors.New("stage lease lost to another owner")
)
