package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CollNotifications holds one idempotency record per notification, keyed by
// a hash of its key (the key itself is a field).
const CollNotifications = "notifications"

// Record and channel states.
const (
	StateClaimed = "claimed"
	StateSent    = "sent"
	// StateFailed: every channel refused it for good.
	StateFailed = "failed"
)

// Record is a document of the notifications collection.
type Record struct {
	Key        string             `firestore:"key"`
	Kind       string             `firestore:"kind"`
	Title      string             `firestore:"title"`
	LessonID   string             `firestore:"lessonId,omitempty"`
	RunID      string             `firestore:"runId,omitempty"`
	State      string             `firestore:"state"`
	Token      string             `firestore:"token,omitempty"`
	LeaseUntil time.Time          `firestore:"leaseUntil,omitempty"`
	Attempts   int                `firestore:"attempts"`
	Channels   map[string]Channel `firestore:"channels"`
	LastError  string             `firestore:"lastError,omitempty"`
	CreatedAt  time.Time          `firestore:"createdAt"`
	UpdatedAt  time.Time          `firestore:"updatedAt"`
	SentAt     time.Time          `firestore:"sentAt,omitempty"`
}

// Channel is what one channel did with a notification.
type Channel struct {
	// State is StateSent or StateFailed (for good); a channel not yet
	// answered has no entry.
	State string    `firestore:"state"`
	Error string    `firestore:"error,omitempty"`
	At    time.Time `firestore:"at"`
}

// Claim outcomes.
type ClaimOutcome int

const (
	// Claimed: the caller owns the notification until the lease ends and
	// sends on every channel Record.Channels does not settle.
	Claimed ClaimOutcome = iota
	// Done: it was sent (or refused for good) already: send nothing.
	Done
	// Busy: another delivery holds a live lease on it.
	Busy
)

func (o ClaimOutcome) String() string {
	switch o {
	case Claimed:
		return "claimed"
	case Done:
		return "done"
	case Busy:
		return "busy"
	}
	return "unknown"
}

// Claim is the result of Records.Claim.
type Claim struct {
	Outcome ClaimOutcome
	Token   string
	Record  Record
}

// txAttempts: concurrent deliveries of one notification contend for one
// document; the SDK's default of 5 attempts is too few under a burst.
const txAttempts = 30

// Records is the idempotency store of notifications, in Firestore. It is
// safe for concurrent use.
type Records struct {
	client *firestore.Client
	now    func() time.Time
}

// NewRecords returns the records kept through client; now is the clock
// (nil: time.Now).
func NewRecords(client *firestore.Client, now func() time.Time) (*Records, error) {
	if client == nil {
		return nil, errors.New("notify records: firestore client is nil")
	}
	if now == nil {
		now = time.Now
	}
	return &Records{client: client, now: now}, nil
}

func (r *Records) ref(key string) *firestore.DocumentRef {
	return r.client.Collection(CollNotifications).Doc(keyHash(key))
}

// Get returns the record of key; found is false when there is none.
func (r *Records) Get(ctx context.Context, key string) (rec Record, found bool, err error) {
	snap, err := r.ref(key).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read notification %s: %w", key, err)
	}
	if err := snap.DataTo(&rec); err != nil {
		return Record{}, false, fmt.Errorf("decode notification %s: %w", key, err)
	}
	return rec, true, nil
}

// Claim takes m's notification for lease, in a transaction: a new one is
// created claimed; one sent or refused for good is Done; one under a live
// lease is Busy; one whose lease ended (its owner crashed or gave up) is
// taken over, keeping what its channels already did.
func (r *Records) Claim(ctx context.Context, m Message, lease time.Duration) (Claim, error) {
	ref := r.ref(m.Key)
	var c Claim
	err := r.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		c = Claim{}
		now := r.now()
		snap, err := tx.Get(ref)
		var rec Record
		switch {
		case status.Code(err) == codes.NotFound:
			rec = Record{Key: m.Key, Kind: m.Kind, Title: m.Title, LessonID: m.LessonID, RunID: m.RunID,
				Channels: map[string]Channel{}, CreatedAt: now}
		case err != nil:
			return err
		default:
			if err := snap.DataTo(&rec); err != nil {
				return fmt.Errorf("decode: %w", err)
			}
			if rec.State == StateSent || rec.State == StateFailed {
				c.Outcome, c.Record = Done, rec
				return nil
			}
			if rec.Token != "" && rec.LeaseUntil.After(now) {
				c.Outcome, c.Record = Busy, rec
				return nil
			}
		}
		if rec.Channels == nil {
			rec.Channels = map[string]Channel{}
		}
		rec.State = StateClaimed
		rec.Token = rand.Text()
		rec.LeaseUntil = now.Add(lease)
		rec.Attempts++
		rec.UpdatedAt = now
		c.Outcome, c.Token, c.Record = Claimed, rec.Token, rec
		return tx.Set(ref, rec)
	}, firestore.MaxAttempts(txAttempts))
	if err != nil {
		return Claim{}, fmt.Errorf("claim notification %s: %w", m.Key, err)
	}
	return c, nil
}

// MarkChannel records what channel did with key's notification — a fact,
// recorded whoever holds the claim now — and, when every channel in
// channels has an outcome, settles the record: sent if any channel sent it,
// failed if all refused it. It reports whether the record is settled.
func (r *Records) MarkChannel(ctx context.Context, key, channel string, out Channel, channels []string) (bool, error) {
	ref := r.ref(key)
	var settled bool
	err := r.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		settled = false
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		var rec Record
		if err := snap.DataTo(&rec); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		now := r.now()
		out.At = now
		if rec.Channels == nil {
			rec.Channels = map[string]Channel{}
		}
		rec.Channels[channel] = out
		ups := []firestore.Update{
			{FieldPath: firestore.FieldPath{"channels", channel}, Value: out},
			{Path: "updatedAt", Value: now},
		}
		if st, ok := settle(rec, channels); ok && rec.State == StateClaimed {
			settled = true
			ups = append(ups,
				firestore.Update{Path: "state", Value: st},
				firestore.Update{Path: "token", Value: firestore.Delete},
				firestore.Update{Path: "leaseUntil", Value: firestore.Delete},
			)
			if st == StateSent {
				ups = append(ups, firestore.Update{Path: "sentAt", Value: now})
			}
		}
		return tx.Update(ref, ups)
	}, firestore.MaxAttempts(txAttempts))
	if err != nil {
		return false, fmt.Errorf("record %s outcome of notification %s: %w", channel, key, err)
	}
	return settled, nil
}

// settle returns the state a record ends in when every channel answered.
func settle(rec Record, channels []string) (string, bool) {
	sent := false
	for _, ch := range channels {
		out, ok := rec.Channels[ch]
		if !ok {
			return "", false
		}
		sent = sent || out.State == StateSent
	}
	if sent {
		return StateSent, true
	}
	return StateFailed, true
}

// Release gives up the claim token holds after a retryable failure, with its
// reason, so the redelivery Pub/Sub is about to make claims it at once
// instead of waiting for the lease. A claim lost to another delivery is left
// alone.
func (r *Records) Release(ctx context.Context, key, token, reason string) error {
	ref := r.ref(key)
	err := r.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		var rec Record
		if err := snap.DataTo(&rec); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if rec.State != StateClaimed || rec.Token != token {
			return nil
		}
		return tx.Update(ref, []firestore.Update{
			{Path: "token", Value: firestore.Delete},
			{Path: "leaseUntil", Value: firestore.Delete},
			{Path: "lastError", Value: reason},
			{Path: "updatedAt", Value: r.now()},
		})
	}, firestore.MaxAttempts(txAttempts))
	if err != nil {
		return fmt.Errorf("release notification %s: %w", key, err)
	}
	return nil
}
