package lessonstate

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxAttempts is how many times a stage is tried for one lesson
// version before a retryable failure becomes a permanent one.
const DefaultMaxAttempts = 5

// txAttempts bounds how often one Firestore transaction is retried when it
// loses a conflict. Many deliveries of one message may race for one stage, so
// this is well above the SDK's default of 5.
const txAttempts = 30

var (
	// ErrVersionAhead: an event names a newer version than the lesson
	// document holds (Pub/Sub reordered it ahead of the detection write's
	// visibility). Retryable: a later delivery finds the document caught up.
	ErrVersionAhead = errors.New("event version is ahead of the lesson document")
	// ErrRunNotFound: no such detection run.
	ErrRunNotFound = errors.New("run not found")
)

// Store reads and writes courses, lessons and runs in Firestore. It is safe
// for concurrent use; create one per instance.
type Store struct {
	client       *firestore.Client
	now          func() time.Time
	maxAttempts  int
	pendingAfter time.Duration
	retryBackoff time.Duration
	token        func() string
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now, for tests that move time (lease expiry).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithMaxAttempts sets how many attempts a stage gets for one lesson version
// before Fail records it as failed even when the failure is retryable.
func WithMaxAttempts(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxAttempts = n
		}
	}
}

// WithPendingAfter sets how long a step may wait pending before the sweeper
// re-emits its event (default DefaultPendingAfter).
func WithPendingAfter(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.pendingAfter = d
		}
	}
}

// WithRetryBackoff sets the wait after a stage's first retryable failure
// before its next attempt; it doubles with each attempt, up to
// maxRetryBackoff. Zero (the default) retries at once.
func WithRetryBackoff(d time.Duration) Option {
	return func(s *Store) {
		if d >= 0 {
			s.retryBackoff = d
		}
	}
}

// maxRetryBackoff bounds the wait between two attempts of a stage.
const maxRetryBackoff = 10 * time.Minute

// backoff is the wait before the attempt after attempt n failed for now.
func (s *Store) backoff(n int) time.Duration {
	if s.retryBackoff <= 0 {
		return 0
	}
	d := s.retryBackoff
	for i := 1; i < n && d < maxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, maxRetryBackoff)
}

// WithTokenSource replaces the random claim token generator.
func WithTokenSource(f func() string) Option { return func(s *Store) { s.token = f } }

// New returns a Store over client.
func New(client *firestore.Client, opts ...Option) *Store {
	s := &Store{client: client, now: time.Now, maxAttempts: DefaultMaxAttempts, pendingAfter: DefaultPendingAfter, token: rand.Text}
	for _, o := range opts {
		o(s)
	}
	return s
}

// MaxAttempts is the number of attempts a stage gets per lesson version.
func (s *Store) MaxAttempts() int { return s.maxAttempts }

func (s *Store) lessonRef(id string) *firestore.DocumentRef {
	return s.client.Collection(CollLessons).Doc(id)
}

// runTx runs f in a read-write transaction with generous conflict retries.
func (s *Store) runTx(ctx context.Context, f func(context.Context, *firestore.Transaction) error) error {
	return s.client.RunTransaction(ctx, f, firestore.MaxAttempts(txAttempts))
}

// txLesson reads a lesson inside a transaction. It returns ErrNotFound when
// the document does not exist, and Firestore errors unwrapped so the
// transaction can tell a conflict (Aborted) from a failure.
func txLesson(tx *firestore.Transaction, ref *firestore.DocumentRef) (Lesson, error) {
	snap, err := tx.Get(ref)
	if isNotFound(err) {
		return Lesson{}, ErrNotFound
	}
	if err != nil {
		return Lesson{}, err
	}
	return decodeLesson(snap)
}

func decodeLesson(snap *firestore.DocumentSnapshot) (Lesson, error) {
	var l Lesson
	if err := snap.DataTo(&l); err != nil {
		return Lesson{}, fmt.Errorf("decode lesson %s: %w", snap.Ref.ID, err)
	}
	l.ID = snap.Ref.ID
	return l, nil
}

func isNotFound(err error) bool { return err != nil && status.Code(err) == codes.NotFound }

// Lesson returns one lesson, or ErrNotFound.
func (s *Store) Lesson(ctx context.Context, id string) (Lesson, error) {
	snap, err := s.lessonRef(id).Get(ctx)
	if isNotFound(err) {
		return Lesson{}, fmt.Errorf("read lesson %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Lesson{}, fmt.Errorf("read lesson %s: %w", id, err)
	}
	return decodeLesson(snap)
}

// Lessons returns every lesson, removed ones included, ordered by course,
// module order and page order. The ordering is done here rather than by the
// query so that no composite index is needed.
func (s *Store) Lessons(ctx context.Context) ([]Lesson, error) {
	ls, err := s.queryLessons(ctx, s.client.Collection(CollLessons).Query)
	if err != nil {
		return nil, fmt.Errorf("list lessons: %w", err)
	}
	slices.SortFunc(ls, func(a, b Lesson) int {
		return cmp.Or(
			cmp.Compare(a.CourseID, b.CourseID),
			cmp.Compare(a.ModuleOrder, b.ModuleOrder),
			cmp.Compare(a.PageOrder, b.PageOrder),
			cmp.Compare(a.ID, b.ID),
		)
	})
	return ls, nil
}

// ActiveLessonIDs returns the ids of a course's lessons that are not removed,
// sorted.
func (s *Store) ActiveLessonIDs(ctx context.Context, courseID string) ([]string, error) {
	q := s.client.Collection(CollLessons).
		Where("courseId", "==", courseID).
		Where("removed", "==", false).
		Select()
	snaps, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list active lessons of course %s: %w", courseID, err)
	}
	ids := make([]string, 0, len(snaps))
	for _, snap := range snaps {
		ids = append(ids, snap.Ref.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

func (s *Store) queryLessons(ctx context.Context, q firestore.Query) ([]Lesson, error) {
	snaps, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, err
	}
	ls := make([]Lesson, 0, len(snaps))
	for _, snap := range snaps {
		l, err := decodeLesson(snap)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// validStage reports whether stage names a record of the lesson document.
func validStage(stage string) bool { return slices.Contains(records, stage) }

// RecordUsage adds what a paid call used to the lesson's cost ledger
// (Lesson.Usage), by meter, in a write of its own. A stage that can should
// pass its usage to the write that records its progress instead
// (CompleteWithUsage, NoteWithUsage, FailWithUsage): a crash between two
// separate writes, and the retry after it, would count the call twice.
// Increments commute, so concurrent stages and retries need no transaction.
func (s *Store) RecordUsage(ctx context.Context, lessonID string, meters map[string]float64) error {
	ups := usageUpdates(meters)
	if len(ups) == 0 {
		return nil
	}
	if _, err := s.lessonRef(lessonID).Update(ctx, ups); err != nil {
		return fmt.Errorf("record usage of lesson %s: %w", lessonID, err)
	}
	return nil
}

// usageUpdates are the increments of the cost ledger that add meters. A
// zero meter is left out: a call that used nothing writes nothing.
func usageUpdates(meters map[string]float64) []firestore.Update {
	ups := make([]firestore.Update, 0, len(meters))
	for name, v := range meters {
		if v != 0 {
			ups = append(ups, firestore.Update{FieldPath: firestore.FieldPath{"usage", name}, Value: firestore.Increment(v)})
		}
	}
	return ups
}
