package vectorsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/setup"
)

// Settings are the stage's own settings (Config.Settings).
type Settings struct {
	ArtifactsBucket string
	// Chunking is the chunk options knowledge.md was cut with, unless the
	// version's enrich stage recorded its own (OutChunkMaxTokens,
	// OutChunkOverlapTokens).
	Chunking           chunk.Options
	Lease              time.Duration
	IndexTimeout       time.Duration
	StoreNamePrefix    string
	StoreCreationLease time.Duration
}

// Deps are the stage's collaborators and settings.
type Deps struct {
	Store     *lessonstate.Store
	OpenAI    *OpenAI
	Storage   *storage.Client
	Announcer *relay.Relay
	// Outcome gives the context the final write is made on: detached from
	// the request's cancellation, with its own deadline.
	Outcome func(context.Context) (context.Context, context.CancelFunc)
	Settings
}

// Stage runs syncs and removals. It is safe for concurrent use.
type Stage struct {
	Deps
	// crash, in tests, makes an attempt stop dead at a named point, as a
	// process that dies there does: nothing more is written.
	crash func(point string) bool
}

// New returns the sync stage, or an error naming what is missing.
func New(d Deps) (*Stage, error) {
	if err := setup.Missing("vectorsync", map[string]any{
		"store": d.Store, "openai": d.OpenAI, "storage": d.Storage, "announcer": d.Announcer, "outcome": d.Outcome,
	}); err != nil {
		return nil, err
	}
	var errs []error
	if d.ArtifactsBucket == "" {
		errs = append(errs, errors.New("artifacts bucket is empty"))
	}
	if err := d.Chunking.Validate(); err != nil {
		errs = append(errs, err)
	}
	if d.IndexTimeout <= 0 || d.Lease <= d.IndexTimeout {
		errs = append(errs, fmt.Errorf("lease %s must outlast a positive index timeout %s", d.Lease, d.IndexTimeout))
	}
	if d.StoreCreationLease <= 0 {
		errs = append(errs, fmt.Errorf("store creation lease %s is not positive", d.StoreCreationLease))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("vectorsync: %w", err)
	}
	return &Stage{Deps: d}, nil
}

// Output keys of the sync stage record. fileId is noted right after the
// upload and storeId with attached right after the attach, so that the
// next attempt after a crash goes on from there.
const (
	OutStoreID    = "storeId"
	OutFileID     = "fileId"
	OutFilename   = "filename"
	OutAttached   = "attached"
	OutIndexed    = "indexed"
	OutUsageBytes = "usageBytes"
)

// Output keys the enrich stage may record: the chunk options it cut
// knowledge.md with. When both are there for the version, the store's
// chunking is derived from them rather than from this stage's
// configuration, so a configuration change between the two stages cannot
// make them disagree.
const (
	OutChunkMaxTokens     = "chunkMaxTokens"
	OutChunkOverlapTokens = "chunkOverlapTokens"
)

// Crash points, for tests (see Stage.crash).
const (
	crashUpload   = "upload"   // before the upload
	crashUploaded = "uploaded" // after the upload, before it is noted
	crashNoted    = "noted"    // after the upload is noted, before the attach
	crashAttached = "attached" // after the attach, before it is noted
	crashIndexed  = "indexed"  // after indexing completed, before anything else
	crashRetired  = "retired"  // after the previous files were retired, before the Firestore write
)

var errCrashed = errors.New("vectorsync: attempt stopped at a test crash point")

func (s *Stage) crashAt(point string) error {
	if s.crash != nil && s.crash(point) {
		return fmt.Errorf("%w %q", errCrashed, point)
	}
	return nil
}

// Handle processes one event: a lesson-enriched event syncs the version; a
// removed lesson event retires the lesson's files; other lesson-events
// kinds (the subscription's filter should keep them away) are ignored. It
// returns nil when the message must be acknowledged and an error only when
// a redelivery may succeed.
func (s *Stage) Handle(ctx context.Context, ev events.LessonEvent) error {
	switch ev.Kind {
	case "":
		return s.Sync(ctx, ev)
	case events.KindRemoved:
		return s.Retire(ctx, ev)
	}
	logging.Lesson(logging.FromContext(ctx), ev.LessonID, ev.Version, lessonstate.StageSync).
		InfoContext(ctx, "not an event for the syncer; acknowledged", "kind", ev.Kind)
	return nil
}

// attempt is one claimed sync of a lesson version.
type attempt struct {
	*Stage
	log     *slog.Logger
	claim   lessonstate.Claim
	lesson  lessonstate.Lesson
	version int
}

// result is what an attempt leaves live.
type result struct {
	storeID, fileID string
	usageBytes      int64
	// statsAt is when the school's store stats were last recorded.
	statsAt time.Time
	reused  bool
}

// Sync claims the sync stage of the event's version and publishes the
// version's knowledge document into its school's vector store.
func (s *Stage) Sync(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(logging.FromContext(ctx), ev.LessonID, ev.Version, lessonstate.StageSync)
	claim, err := s.Store.Claim(ctx, ev.LessonID, lessonstate.StageSync, ev.Version, s.Lease)
	if errors.Is(err, lessonstate.ErrNotFound) {
		log.ErrorContext(ctx, "event names an unknown lesson; acknowledged, nothing written")
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync lesson %s v%d: %w", ev.LessonID, ev.Version, err)
	}
	if claim.Outcome != lessonstate.Claimed {
		// Busy included: the owner's lease ends, and the sweeper re-sends
		// the work if the owner dies holding it.
		log.InfoContext(ctx, "nothing to do", "claim", claim.Outcome.String())
		return nil
	}
	log.InfoContext(ctx, "sync started", "attempt", claim.Stage.Attempts)
	a := &attempt{Stage: s, log: log, claim: claim, lesson: claim.Lesson, version: ev.Version}
	res, err := a.run(ctx)
	if errors.Is(err, errCrashed) {
		return err
	}

	// The outcome is written even when the request was cut off meanwhile.
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if errors.Is(err, lessonstate.ErrLeaseLost) {
		log.WarnContext(ctx, "lease lost during the sync; the new owner goes on from what exists", "error", err.Error())
		return nil
	}
	if err != nil {
		return a.fail(octx, ev, err)
	}
	return a.complete(octx, ev, res)
}

// run makes the version's file live in the school's store: it finds what
// an earlier attempt made before making anything, uploads and attaches only
// what is missing, waits for the indexing, and retires the files of earlier
// versions only once the new one is indexed.
func (a *attempt) run(ctx context.Context) (result, error) {
	l := a.lesson
	storeID, statsAt, err := a.schoolStore(ctx, a.log, l.School)
	if err != nil {
		return result{}, err
	}
	inv, err := a.takeInventory(ctx, storeID, l.ID)
	if err != nil {
		return result{}, err
	}
	c, dups := inv.choose(a.version, a.claim.Stage.Outputs[OutFileID])
	if len(dups) > 0 {
		a.log.WarnContext(ctx, "retiring duplicate files of this version an earlier attempt left", "files", dups, "keeping", c.fileID)
		if err := a.retire(ctx, storeID, dups); err != nil {
			return result{}, err
		}
	}
	res := result{storeID: storeID, statsAt: statsAt, fileID: c.fileID, reused: c.fileID != ""}

	if c.fileID == "" {
		content, err := a.knowledge(ctx, l.ID, a.version)
		if err != nil {
			return result{}, err
		}
		if err := a.crashAt(crashUpload); err != nil {
			return result{}, err
		}
		f, err := a.OpenAI.Upload(ctx, FileName(l.ID, a.version), content)
		if err != nil {
			return result{}, err
		}
		res.fileID = f.ID
		a.log.InfoContext(ctx, "knowledge document uploaded", "fileId", f.ID, "bytes", f.Bytes)
		if err := a.crashAt(crashUploaded); err != nil {
			return result{}, err
		}
		if err := a.note(ctx, map[string]string{OutFileID: f.ID, OutStoreID: storeID}); err != nil {
			return result{}, err
		}
		if err := a.crashAt(crashNoted); err != nil {
			return result{}, err
		}
	} else {
		a.log.InfoContext(ctx, "going on with the file an earlier attempt made", "fileId", c.fileID, "attached", c.attached != nil)
	}

	sf := c.attached
	if sf == nil {
		e, err := a.enrichment(ctx, l.ID, a.version)
		if err != nil {
			return result{}, err
		}
		attrs, err := Attributes(l, a.version, e)
		if err != nil {
			return result{}, failure.Permanentf("%w", err)
		}
		maxTokens, overlap := chunk.StoreChunking(a.chunking())
		att, err := a.OpenAI.Attach(ctx, storeID, res.fileID, attrs, maxTokens, overlap)
		if err != nil {
			return result{}, err
		}
		sf = &att
		if err := a.crashAt(crashAttached); err != nil {
			return result{}, err
		}
		if err := a.note(ctx, map[string]string{OutFileID: res.fileID, OutStoreID: storeID, OutAttached: "true"}); err != nil {
			return result{}, err
		}
		a.log.InfoContext(ctx, "knowledge file attached", "fileId", res.fileID, "vectorStoreId", storeID,
			"maxChunkTokens", maxTokens, "overlapTokens", overlap)
	}

	done, err := a.wait(ctx, storeID, *sf)
	if err != nil {
		return result{}, err
	}
	if done.Status != StatusCompleted {
		// Nothing half-made stays behind: the failed file goes, and a replay
		// starts from a fresh upload.
		if err := a.retire(ctx, storeID, []string{res.fileID}); err != nil {
			a.log.WarnContext(ctx, "could not retire the file whose indexing failed", "fileId", res.fileID, "error", err.Error())
		}
		return result{}, failure.Permanentf("vector store indexing of %s %s: %s", FileName(l.ID, a.version), done.Status, done.LastError)
	}
	res.usageBytes = done.UsageBytes
	if err := a.crashAt(crashIndexed); err != nil {
		return result{}, err
	}
	if err := a.retireOlder(ctx, storeID, res.fileID, done); err != nil {
		return result{}, err
	}
	if err := a.crashAt(crashRetired); err != nil {
		return result{}, err
	}
	return res, nil
}

// retireOlder retires, once the version's file is indexed, every other file
// of the lesson up to this version: the previous live file (which may sit in
// another school's store, if the course moved), and anything a crashed or
// superseded attempt left. The inventory is taken again: the SDK's retry of
// an upload whose answer was lost, during this very attempt, makes a file
// the first inventory could not see.
//
// Before anything is retired, a note checks that the lease is still ours:
// an owner that lost it must not delete what the new owner may be using.
// A lesson's first version has nothing to retire and skips that write (the
// completion records the same outputs).
func (a *attempt) retireOlder(ctx context.Context, storeID, keep string, done StoreFile) error {
	inv, err := a.takeInventory(ctx, storeID, a.lesson.ID)
	if err != nil {
		return err
	}
	old := inv.upTo(a.version, keep)
	lv := a.lesson.VectorStore
	previous := lv != nil && lv.FileID != keep && lv.Version <= a.version && !slices.Contains(old, lv.FileID)
	if len(old) == 0 && !previous {
		return nil
	}
	if err := a.note(ctx, map[string]string{OutIndexed: done.Status, OutUsageBytes: strconv.FormatInt(done.UsageBytes, 10)}); err != nil {
		return err
	}
	if len(old) > 0 {
		a.log.InfoContext(ctx, "retiring the lesson's earlier files", "files", old)
		if err := a.retire(ctx, storeID, old); err != nil {
			return err
		}
	}
	if previous {
		a.log.InfoContext(ctx, "retiring the previous live file", "fileId", lv.FileID, "vectorStoreId", lv.StoreID, "liveVersion", lv.Version)
		if err := a.retire(ctx, lv.StoreID, []string{lv.FileID}); err != nil {
			return err
		}
	}
	return nil
}

// note records outputs on the held stage and extends its lease: a
// redelivery after a crash goes on from them, and ErrLeaseLost says another
// delivery owns the stage now.
func (a *attempt) note(ctx context.Context, outputs map[string]string) error {
	_, err := a.Store.Note(ctx, a.lesson.ID, lessonstate.StageSync, a.version, a.claim.Token, outputs, a.Lease)
	return err
}

// chunking is the chunk options knowledge.md was cut with: the enrich
// stage's record of them for this version, else the configuration's.
func (a *attempt) chunking() chunk.Options {
	if rec := a.lesson.Stages[lessonstate.StageEnrich]; rec.Version == a.version {
		m, err1 := strconv.Atoi(rec.Outputs[OutChunkMaxTokens])
		o, err2 := strconv.Atoi(rec.Outputs[OutChunkOverlapTokens])
		if c := (chunk.Options{MaxTokens: m, OverlapTokens: o}); err1 == nil && err2 == nil && c.Validate() == nil {
			return c
		}
	}
	return a.Chunking
}

// fail records the failure. Permanent failures, and retryable ones that
// have used up their attempts, mark the stage failed and are announced once
// on lesson-events (queued in the same write, relayed here); the message is
// then acknowledged.
func (a *attempt) fail(ctx context.Context, ev events.LessonEvent, cause error) error {
	retryable := !failure.IsPermanent(cause)
	reason := cause.Error()
	f, err := a.Store.Fail(ctx, ev.LessonID, lessonstate.StageSync, ev.Version, a.claim.Token, reason, retryable)
	switch {
	case errors.Is(err, lessonstate.ErrLeaseLost):
		a.log.WarnContext(ctx, "sync failed after its lease was taken over; the new owner decides", "error", reason)
		return nil
	case err != nil:
		// Still running under our lease: the sweeper re-drives it after.
		return fmt.Errorf("sync lesson %s v%d: record failure %q: %w", ev.LessonID, ev.Version, reason, err)
	case f.State != lessonstate.StateFailed:
		a.log.WarnContext(ctx, "sync failed; will retry", "error", reason, "attempt", a.claim.Stage.Attempts)
		return fmt.Errorf("sync lesson %s v%d: %w", ev.LessonID, ev.Version, cause)
	}
	a.log.ErrorContext(ctx, "sync failed", "error", reason, "attempts", a.claim.Stage.Attempts)
	if err := a.Announcer.Event(ctx, ev.LessonID, *f.Announce); err != nil {
		a.log.WarnContext(ctx, "failure announcement left in the outbox", "error", err.Error())
	}
	return nil
}

// complete records the live file, the stage done and the synced
// announcement in one write, then publishes the announcement.
func (a *attempt) complete(ctx context.Context, ev events.LessonEvent, res result) error {
	l := a.lesson
	live := lessonstate.LiveFile{
		VectorFile: lessonstate.VectorFile{StoreID: res.storeID, FileID: res.fileID, Version: a.version, School: l.School},
		UsageBytes: res.usageBytes,
	}
	outputs := map[string]string{
		OutStoreID: res.storeID, OutFileID: res.fileID, OutFilename: FileName(l.ID, a.version),
		OutAttached: "true", OutIndexed: StatusCompleted, OutUsageBytes: strconv.FormatInt(res.usageBytes, 10),
	}
	synced, err := a.Store.CompleteSync(ctx, ev.LessonID, a.version, a.claim.Token, live, outputs)
	switch {
	case errors.Is(err, lessonstate.ErrLessonRemoved):
		// The removal's own retirement may have run before this file was
		// attached: this one is retired here.
		a.log.InfoContext(ctx, "lesson removed while it synced; retiring its new file", "fileId", res.fileID)
		if err := a.retire(ctx, res.storeID, []string{res.fileID}); err != nil {
			return fmt.Errorf("sync lesson %s v%d: retire the file of a removed lesson: %w", ev.LessonID, ev.Version, err)
		}
		if err := a.Store.Skip(ctx, ev.LessonID, lessonstate.StageSync, a.version, a.claim.Token, "lesson removed while it synced"); err != nil && !errors.Is(err, lessonstate.ErrLeaseLost) {
			return fmt.Errorf("sync lesson %s v%d: %w", ev.LessonID, ev.Version, err)
		}
		return nil
	case errors.Is(err, lessonstate.ErrLeaseLost):
		return a.leaseLost(ctx, ev, res)
	case err != nil:
		// Still running under our lease: a redelivery finds it busy, the
		// sweeper re-drives it after, and that attempt finds the indexed
		// file and only records it.
		return fmt.Errorf("sync lesson %s v%d: %w", ev.LessonID, ev.Version, err)
	}
	a.log.InfoContext(ctx, "sync done", "fileId", res.fileID, "vectorStoreId", res.storeID,
		"usageBytes", res.usageBytes, "reused", res.reused)
	if err := a.Announcer.Event(ctx, ev.LessonID, synced); err != nil {
		// Queued in the outbox with the completion: the next flush sends it.
		a.log.WarnContext(ctx, "synced announcement left in the outbox", "error", err.Error())
	}
	a.refreshStats(ctx, a.log, l.School, res.storeID, res.statsAt)
	return nil
}

// leaseLost handles a completion refused because another delivery owns the
// stage. One of the same version goes on with this very file (it finds it
// attached), so it stays. One of a newer version retires every older file
// only once its own is indexed, and it may have looked before this file was
// attached: this file, which nothing will record, is retired here.
func (a *attempt) leaseLost(ctx context.Context, ev events.LessonEvent, res result) error {
	l, err := a.Store.Lesson(ctx, ev.LessonID)
	if err == nil && l.Version > a.version {
		a.log.WarnContext(ctx, "a newer version took the stage over; retiring this version's file", "fileId", res.fileID, "lessonVersion", l.Version)
		if err := a.retire(ctx, res.storeID, []string{res.fileID}); err != nil {
			return fmt.Errorf("sync lesson %s v%d: retire a superseded file: %w", ev.LessonID, ev.Version, err)
		}
		return nil
	}
	a.log.WarnContext(ctx, "lease lost before completion; the new owner records the file", "fileId", res.fileID)
	return nil
}
