package lessonstate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/events"
)

// CollOutbox is the subcollection of a lesson document that holds its
// outbox: lessons/{id}/outbox/{entryId}, one document per unpublished event.
//
// The entries live apart from the lesson document so that acknowledging them
// (a delete of the entry documents) never touches the lesson document: a
// stage claimed on the lesson by the consumer of the very event being
// acknowledged does not contend with the acknowledgement.
const CollOutbox = "outbox"

// outboxDoc is an outbox entry document.
type outboxDoc struct {
	Topic string `firestore:"topic"`
	Data  []byte `firestore:"data"`
	// Seq orders a lesson's entries: see entrySeq.
	Seq       int64     `firestore:"seq"`
	CreatedAt time.Time `firestore:"createdAt"`
}

// entryID is an entry's document id, derived from its content, so that
// AckOutbox finds the document of a published entry from its topic and data.
func entryID(o Outbox) string {
	h := sha256.New()
	h.Write([]byte(o.Topic))
	h.Write([]byte{0})
	h.Write(o.Data)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// entrySeq orders a lesson's outbox entries in the order they were queued.
// A lesson queues at most one detection event per version (its version is
// bumped by every detected change) and then at most one removal event at
// that same version (a removed lesson queues nothing until it is back, at a
// new version), so (version, removal) orders them.
func entrySeq(o Outbox) int64 {
	e, err := o.Event()
	if err != nil {
		return 0
	}
	seq := int64(e.Version) * 2
	if e.Kind == events.KindRemoved {
		seq++
	}
	return seq
}

func (s *Store) outboxRef(lessonID string, o Outbox) *firestore.DocumentRef {
	return s.lessonRef(lessonID).Collection(CollOutbox).Doc(entryID(o))
}

// txQueueOutbox writes entries as documents of the lesson's outbox
// subcollection, in the transaction that makes the change they announce: the
// change and its announcement land together or not at all.
func (s *Store) txQueueOutbox(tx *firestore.Transaction, ref *firestore.DocumentRef, entries []Outbox, now time.Time) error {
	for _, o := range entries {
		doc := outboxDoc{Topic: o.Topic, Data: o.Data, Seq: entrySeq(o), CreatedAt: now}
		if err := tx.Set(s.outboxRef(ref.ID, o), doc); err != nil {
			return err
		}
	}
	return nil
}

// PendingOutbox returns the lessons whose outbox holds unpublished events,
// ordered by id, each with its Outbox in the order the entries were queued
// and OutboxPending set.
func (s *Store) PendingOutbox(ctx context.Context) ([]Lesson, error) {
	snaps, err := s.client.CollectionGroup(CollOutbox).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list pending outboxes: %w", err)
	}
	type entry struct {
		id  string
		doc outboxDoc
	}
	byLesson := map[string][]entry{}
	for _, snap := range snaps {
		lesson := snap.Ref.Parent.Parent
		if lesson == nil || lesson.Parent.ID != CollLessons || lesson.Parent.Parent != nil {
			continue // an "outbox" subcollection of something else
		}
		var d outboxDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, fmt.Errorf("list pending outboxes: decode %s: %w", snap.Ref.Path, err)
		}
		byLesson[lesson.ID] = append(byLesson[lesson.ID], entry{snap.Ref.ID, d})
	}
	if len(byLesson) == 0 {
		return nil, nil
	}

	ids := make([]string, 0, len(byLesson))
	refs := make([]*firestore.DocumentRef, 0, len(byLesson))
	for id := range byLesson {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		refs = append(refs, s.lessonRef(id))
	}
	lessonSnaps, err := s.client.GetAll(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("list pending outboxes: read lessons: %w", err)
	}
	ls := make([]Lesson, 0, len(ids))
	for i, id := range ids {
		l := Lesson{ID: id}
		if snap := lessonSnaps[i]; snap.Exists() {
			if l, err = decodeLesson(snap); err != nil {
				return nil, fmt.Errorf("list pending outboxes: %w", err)
			}
		}
		entries := byLesson[id]
		slices.SortFunc(entries, func(a, b entry) int {
			return cmp.Or(cmp.Compare(a.doc.Seq, b.doc.Seq), a.doc.CreatedAt.Compare(b.doc.CreatedAt), strings.Compare(a.id, b.id))
		})
		for _, e := range entries {
			l.Outbox = append(l.Outbox, Outbox{Topic: e.doc.Topic, Data: e.doc.Data, QueuedAt: e.doc.CreatedAt})
		}
		l.OutboxPending = true
		ls = append(ls, l)
	}
	return ls, nil
}

// AckOutbox removes from lesson id's outbox the entries that were published
// (matched by topic and data), leaving any queued since. It deletes the
// entry documents only: the lesson document is neither read nor written.
// Acknowledging an entry that is already gone is not an error.
func (s *Store) AckOutbox(ctx context.Context, id string, published []Outbox) error {
	if !events.ValidLessonID(id) {
		return fmt.Errorf("acknowledge outbox of lesson %q: not a page id", id)
	}
	var errs []error
	done := map[string]bool{}
	for _, p := range published {
		ref := s.outboxRef(id, p)
		if done[ref.ID] {
			continue
		}
		done[ref.ID] = true
		if _, err := ref.Delete(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("acknowledge outbox of lesson %s: %w", id, err)
	}
	return nil
}

// Event decodes an outbox entry's data.
func (o Outbox) Event() (events.LessonEvent, error) {
	var e events.LessonEvent
	if err := json.Unmarshal(o.Data, &e); err != nil {
		return e, fmt.Errorf("decode outbox event for %s: %w", o.Topic, err)
	}
	return e, nil
}

func (l *Lesson) queue(e events.LessonEvent) error {
	o, err := OutboxEntry(e)
	if err != nil {
		return err
	}
	l.Outbox = append(l.Outbox, o)
	return nil
}

// OutboxEntry is the outbox entry for a lesson event: its JSON body, on the
// topic TopicFor names. The detector, the sweeper and the stages publish the
// events the store returns through this, so what they acknowledge is exactly
// what the store queued.
func OutboxEntry(e events.LessonEvent) (Outbox, error) {
	topic := TopicFor(e)
	data, err := json.Marshal(e)
	if err != nil {
		return Outbox{}, fmt.Errorf("encode %s event: %w", topic, err)
	}
	return Outbox{Topic: topic, Data: data}, nil
}

// TopicFor is the topic a lesson event goes to: lesson-events for an
// announcement (synced, failed, removed), else the topic that feeds the
// step its From names (empty: download). A replay or a re-drive from
// transcribe or analyze starts the process step, which runs both.
func TopicFor(e events.LessonEvent) string {
	if e.Kind != "" {
		return events.TopicLessonEvents
	}
	switch e.From {
	case "":
		return StepTopic(StageDownload)
	case StageTranscribe, StageAnalyze:
		return StepTopic(StepProcess)
	}
	return StepTopic(e.From)
}
