package lessonstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/events"
)

// What the sync stage (shared/vectorsync) and the ask command (shared/ask)
// keep in Firestore: each school's vector store, created once, and each
// lesson's live knowledge file (Lesson.VectorStore), written only by the
// sync stage and only as field updates.

// CollSchools holds one document per school, keyed by school slug
// (DESIGN.md section 3): its vector store id, the store's counts and usage,
// and the assistant's configuration.
const CollSchools = "schools"

// ErrLessonRemoved: the lesson was marked removed while its sync ran; the
// file the sync made must be retired, not recorded.
var ErrLessonRemoved = errors.New("lesson was removed")

// School is a document of the schools collection.
type School struct {
	Slug string `firestore:"-"`
	// VectorStoreID is the school's OpenAI vector store, once made. It is
	// written once, by the first creator to record one (RecordVectorStore).
	VectorStoreID string `firestore:"vectorStoreId,omitempty"`
	// StoreCreation is the lease of the delivery creating the store, so
	// that two lessons of a new school arriving together make one store.
	StoreCreation *StoreCreation `firestore:"storeCreation,omitempty"`
	// Stats are the store's counts and usage as the last sync saw them:
	// vector-store storage is billed per GB-day of what is stored, a
	// quantity the cost report reads here (and per lesson in
	// vectorStore.usageBytes), not a sum over calls.
	Stats *StoreStats `firestore:"stats,omitempty"`
	// Assistant overrides, for this school, the assistant configuration
	// the ask command has from its environment. Operators edit it; the
	// pipeline never writes it.
	Assistant *Assistant `firestore:"assistant,omitempty"`
}

// StoreCreation is a claim on creating a school's vector store.
type StoreCreation struct {
	Token      string    `firestore:"token"`
	LeaseUntil time.Time `firestore:"leaseUntil"`
}

// StoreStats are a vector store's file counts and usage.
type StoreStats struct {
	Completed  int64     `firestore:"completed"`
	InProgress int64     `firestore:"inProgress"`
	Failed     int64     `firestore:"failed"`
	Total      int64     `firestore:"total"`
	UsageBytes int64     `firestore:"usageBytes"`
	At         time.Time `firestore:"at"`
}

// Assistant is a school's assistant configuration: what the Responses API
// call is made with. Empty fields keep the environment's defaults.
type Assistant struct {
	Model        string `firestore:"model,omitempty"`
	Instructions string `firestore:"instructions,omitempty"`
	MaxResults   int    `firestore:"maxResults,omitempty"`
}

func (s *Store) schoolRef(slug string) *firestore.DocumentRef {
	return s.client.Collection(CollSchools).Doc(slug)
}

// School returns a school's document; ok is false when there is none.
func (s *Store) School(ctx context.Context, slug string) (School, bool, error) {
	if slug == "" {
		return School{}, false, errors.New("read school: empty slug")
	}
	snap, err := s.schoolRef(slug).Get(ctx)
	if isNotFound(err) {
		return School{Slug: slug}, false, nil
	}
	if err != nil {
		return School{}, false, fmt.Errorf("read school %s: %w", slug, err)
	}
	var sc School
	if err := snap.DataTo(&sc); err != nil {
		return School{}, false, fmt.Errorf("decode school %s: %w", slug, err)
	}
	sc.Slug = slug
	return sc, true, nil
}

// StoreClaim is what ClaimStoreCreation found.
type StoreClaim struct {
	// StoreID is set when the school already has a store: use it.
	StoreID string
	// Token is set when the caller now holds the creation: it must look
	// for a store an earlier holder made, else create one, and record it
	// with RecordVectorStore.
	Token string
	// BusyUntil is set when another delivery holds the creation: wait
	// for its record, at most until then.
	BusyUntil time.Time
}

// ClaimStoreCreation returns the school's vector store id or, when it has
// none, a claim on creating it for lease. Concurrent callers for one school
// get one claim; the others are told to wait (BusyUntil). A claim whose
// lease ended is taken over: its holder may have died.
func (s *Store) ClaimStoreCreation(ctx context.Context, slug string, lease time.Duration) (StoreClaim, error) {
	if slug == "" || lease <= 0 {
		return StoreClaim{}, fmt.Errorf("claim vector store creation of school %q for %s: want a slug and a positive lease", slug, lease)
	}
	ref := s.schoolRef(slug)
	var c StoreClaim
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		c = StoreClaim{}
		snap, err := tx.Get(ref)
		exists := err == nil
		if err != nil && !isNotFound(err) {
			return err
		}
		var sc School
		if exists {
			if err := snap.DataTo(&sc); err != nil {
				return fmt.Errorf("decode school %s: %w", slug, err)
			}
		}
		now := s.now()
		switch {
		case sc.VectorStoreID != "":
			c.StoreID = sc.VectorStoreID
			return nil
		case sc.StoreCreation != nil && sc.StoreCreation.LeaseUntil.After(now):
			c.BusyUntil = sc.StoreCreation.LeaseUntil
			return nil
		}
		claim := StoreCreation{Token: s.token(), LeaseUntil: now.Add(lease)}
		c.Token = claim.Token
		if !exists {
			return tx.Create(ref, map[string]any{"storeCreation": claim})
		}
		return tx.Update(ref, []firestore.Update{{Path: "storeCreation", Value: claim}})
	})
	if err != nil {
		return StoreClaim{}, fmt.Errorf("claim vector store creation of school %s: %w", slug, err)
	}
	return c, nil
}

// RecordVectorStore records storeID as the school's vector store unless one
// is recorded already, and returns the one recorded: the first writer wins,
// whether or not its creation lease was still live, so a slow creator whose
// lease was taken over and the one that took it agree on one store (the
// loser deletes its own, which nothing uses yet).
func (s *Store) RecordVectorStore(ctx context.Context, slug, storeID string) (string, error) {
	if slug == "" || storeID == "" {
		return "", fmt.Errorf("record vector store %q of school %q: empty", storeID, slug)
	}
	ref := s.schoolRef(slug)
	var recorded string
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		recorded = ""
		snap, err := tx.Get(ref)
		if isNotFound(err) {
			recorded = storeID
			return tx.Create(ref, map[string]any{"vectorStoreId": storeID})
		}
		if err != nil {
			return err
		}
		var sc School
		if err := snap.DataTo(&sc); err != nil {
			return fmt.Errorf("decode school %s: %w", slug, err)
		}
		if sc.VectorStoreID != "" {
			recorded = sc.VectorStoreID
			return nil
		}
		recorded = storeID
		return tx.Update(ref, []firestore.Update{
			{Path: "vectorStoreId", Value: storeID},
			{Path: "storeCreation", Value: firestore.Delete},
		})
	})
	if err != nil {
		return "", fmt.Errorf("record vector store %s of school %s: %w", storeID, slug, err)
	}
	return recorded, nil
}

// SetStoreStats records the store's counts and usage on the school's
// document (that field only).
func (s *Store) SetStoreStats(ctx context.Context, slug string, st StoreStats) error {
	if st.At.IsZero() {
		st.At = s.now()
	}
	_, err := s.schoolRef(slug).Set(ctx, map[string]any{"stats": st}, firestore.Merge([]string{"stats"}))
	if err != nil {
		return fmt.Errorf("record vector store stats of school %s: %w", slug, err)
	}
	return nil
}

// LiveFile is what CompleteSync records as a lesson's live knowledge file:
// Lesson.VectorStore's fields, and the bytes the file takes in the store.
type LiveFile struct {
	VectorFile
	// UsageBytes is the store's usage_bytes for the file: what its
	// storage is billed on, per day, for as long as it is live.
	UsageBytes int64
}

// CompleteSync ends a sync attempt in one transaction: the lesson's live
// file (vectorStore, a field update), the sync stage done with its outputs,
// and the synced announcement queued in the lesson's outbox. So the live
// file, the stage and the announcement can never disagree: a crash before it
// changes nothing, and a crash after it leaves the announcement for the
// relay (the caller's, or the next flush).
//
// The caller must hold the claim (else ErrLeaseLost); a lesson removed
// meanwhile gives ErrLessonRemoved, and nothing is written. A repeat after a
// lost reply (same token, stage done) returns the event again and writes
// nothing.
func (s *Store) CompleteSync(ctx context.Context, lessonID string, version int, token string, live LiveFile, outputs map[string]string) (events.LessonEvent, error) {
	if live.StoreID == "" || live.FileID == "" || live.Version != version {
		return events.LessonEvent{}, fmt.Errorf("complete sync of lesson %s v%d: live file %+v does not name a store and a file of this version", lessonID, version, live.VectorFile)
	}
	ref := s.lessonRef(lessonID)
	var ev events.LessonEvent
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		ev = l.syncedEvent(version)
		rec := l.Stages[StageSync]
		if rec.State == StateDone && rec.Token == token && rec.Version == version && token != "" {
			return nil // a repeated CompleteSync after a lost reply
		}
		if err := holds(rec, version, token); err != nil {
			return err
		}
		if l.Removed {
			return ErrLessonRemoved
		}
		now := s.now()
		if live.SyncedAt.IsZero() {
			live.SyncedAt = now
		}
		rec.State = StateDone
		rec.FinishedAt = now
		rec.LeaseUntil = time.Time{}
		rec.Error = ""
		rec.Outputs = outputs
		l.setRecord(StageSync, rec)
		if err := l.queue(ev); err != nil {
			return err
		}
		// writeRecords' writes and the live file in one update: one write
		// per document per transaction.
		if err := tx.Update(ref, []firestore.Update{
			{FieldPath: firestore.FieldPath{"stages", StageSync}, Value: rec},
			{Path: "updatedAt", Value: now},
			s.nextCheckUpdate(l, now),
			{Path: "vectorStore", Value: live.doc()},
		}); err != nil {
			return err
		}
		return s.txQueueOutbox(tx, ref, l.Outbox, now)
	})
	if err != nil {
		return events.LessonEvent{}, fmt.Errorf("complete sync of lesson %s v%d: %w", lessonID, version, err)
	}
	return ev, nil
}

// doc is the vectorStore field as written: VectorFile's fields, which
// Lesson.VectorStore reads back, and usageBytes, which readers of
// VectorFile ignore.
func (f LiveFile) doc() map[string]any {
	return map[string]any{
		"storeId":    f.StoreID,
		"fileId":     f.FileID,
		"version":    f.Version,
		"school":     f.School,
		"syncedAt":   f.SyncedAt,
		"usageBytes": f.UsageBytes,
	}
}

// syncedEvent is the lesson-events message announcing version synced. Its
// content is fixed by the lesson and version, so a repeat queues the same
// outbox entry (entries are keyed by content).
func (l Lesson) syncedEvent(version int) events.LessonEvent {
	return events.LessonEvent{
		LessonID: l.ID, Version: version, CourseID: l.CourseID, RunID: l.LastRunID,
		From: StageSync, Kind: events.KindSynced,
	}
}

// ClearVectorFile removes the lesson's live-file record when it names one
// of the retired file ids: a removal retired it. A record naming another
// file (the lesson came back and synced anew meanwhile) is left alone. It
// reports whether it cleared the record.
func (s *Store) ClearVectorFile(ctx context.Context, lessonID string, retired []string) (bool, error) {
	ref := s.lessonRef(lessonID)
	var cleared bool
	err := s.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		cleared = false
		l, err := txLesson(tx, ref)
		if err != nil {
			return err
		}
		if l.VectorStore == nil {
			return nil
		}
		for _, id := range retired {
			if id == l.VectorStore.FileID {
				cleared = true
				return tx.Update(ref, []firestore.Update{{Path: "vectorStore", Value: firestore.Delete}})
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("clear live vector file of lesson %s: %w", lessonID, err)
	}
	return cleared, nil
}
