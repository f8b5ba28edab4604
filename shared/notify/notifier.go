package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/setup"
)

// Stage is the notifier's name in log lines (logging.KeyStage).
const Stage = "notify"

// ErrBusy: another delivery holds the notification's lease and is sending
// it. Retryable: by the redelivery it is sent, or the lease has ended.
var ErrBusy = errors.New("notification is being sent by another delivery")

// Defaults of Deps.
const (
	DefaultLease       = 2 * time.Minute
	DefaultSendTimeout = 30 * time.Second
	DefaultRunWait     = 15 * time.Minute
	DefaultMaxListed   = 15
)

// Deps are what a Notifier needs.
type Deps struct {
	Store   *lessonstate.Store
	Records *Records
	// Senders are tried in order; each records its own outcome.
	Senders []Sender
	Links   Links
	Log     *slog.Logger
	// Outcome returns the context outcomes are recorded on: detached from
	// the request's cancellation, so a send that went out is recorded even
	// when the request was cut off (setup.Env.Outcome).
	Outcome func(context.Context) (context.Context, context.CancelFunc)
	// Lease, SendTimeout, RunWait and MaxListed: zero means the default.
	Lease, SendTimeout, RunWait time.Duration
	MaxListed                   int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Notifier decides what to send for each input and sends it once.
type Notifier struct {
	store       *lessonstate.Store
	records     *Records
	senders     []Sender
	channels    []string
	links       Links
	log         *slog.Logger
	outcome     func(context.Context) (context.Context, context.CancelFunc)
	lease       time.Duration
	sendTimeout time.Duration
	runWait     time.Duration
	maxListed   int
	now         func() time.Time
}

// New returns a Notifier, refusing missing dependencies.
func New(d Deps) (*Notifier, error) {
	if err := setup.Missing("notify", map[string]any{
		"store": d.Store, "records": d.Records, "senders": d.Senders, "logger": d.Log,
	}); err != nil {
		return nil, err
	}
	n := &Notifier{
		store: d.Store, records: d.Records, senders: d.Senders, links: d.Links, log: d.Log,
		outcome: d.Outcome, lease: d.Lease, sendTimeout: d.SendTimeout, runWait: d.RunWait,
		maxListed: d.MaxListed, now: d.Now,
	}
	seen := map[string]bool{}
	for i, s := range d.Senders {
		if s == nil {
			return nil, fmt.Errorf("notify: sender %d is nil", i)
		}
		if seen[s.Channel()] {
			return nil, fmt.Errorf("notify: two senders for channel %s", s.Channel())
		}
		seen[s.Channel()] = true
		n.channels = append(n.channels, s.Channel())
	}
	if len(n.senders) == 0 {
		return nil, errors.New("notify: no sender (the log sender stands in when no channel is configured)")
	}
	if n.outcome == nil {
		n.outcome = func(ctx context.Context) (context.Context, context.CancelFunc) {
			return setup.Detached(ctx, 20*time.Second)
		}
	}
	if n.lease <= 0 {
		n.lease = DefaultLease
	}
	if n.sendTimeout <= 0 {
		n.sendTimeout = DefaultSendTimeout
	}
	if n.runWait <= 0 {
		n.runWait = DefaultRunWait
	}
	if n.maxListed <= 0 {
		n.maxListed = DefaultMaxListed
	}
	if n.now == nil {
		n.now = time.Now
	}
	return n, nil
}

// Channels names the channels in use, in sending order.
func (n *Notifier) Channels() []string { return n.channels }

// Handle acts on one input: a failure alert for a failed event, a digest
// check for every lesson event of a run, an alarm for a dead letter. It
// returns an error only when a redelivery may do better (a channel or
// Firestore that failed for now, a notification another delivery is
// sending, a run still detecting); a channel's permanent refusal is
// recorded and logged, not returned.
func (n *Notifier) Handle(ctx context.Context, in Input) error {
	switch {
	case in.DeadLetter != nil:
		return n.deadLetter(ctx, *in.DeadLetter)
	case in.Lesson != nil:
		return n.lessonEvent(ctx, *in.Lesson)
	}
	n.log.ErrorContext(ctx, "input carries neither a lesson event nor a dead letter; acknowledged",
		"eventId", in.EventID, logging.KeyStage, Stage)
	return nil
}

func (n *Notifier) lessonEvent(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(n.log, ev.LessonID, ev.Version, Stage).With("kind", ev.Kind, "runId", ev.RunID)
	var errs []error
	if ev.Kind == events.KindFailed {
		if err := n.alertFailure(ctx, ev, log); err != nil {
			errs = append(errs, err)
		}
	}
	if ev.RunID != "" {
		if err := n.checkDigest(ctx, ev.RunID, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// alertFailure sends the alert for a lesson version that failed for good.
// The lesson and its course are read for the title and links; the alert
// goes out without them when they cannot be read.
func (n *Notifier) alertFailure(ctx context.Context, ev events.LessonEvent, log *slog.Logger) error {
	lesson, err := n.store.Lesson(ctx, ev.LessonID)
	if err != nil {
		log.WarnContext(ctx, "failed lesson unreadable; alerting with what the event says", "error", err.Error())
		lesson = lessonstate.Lesson{}
	}
	var course lessonstate.Course
	if id := firstNonEmpty(lesson.CourseID, ev.CourseID); id != "" {
		if course, err = n.store.Course(ctx, id); err != nil {
			log.WarnContext(ctx, "course unreadable; alerting without the Club link", "courseId", id, "error", err.Error())
		}
	}
	return n.deliver(ctx, failureMessage(ev, lesson, course, n.links), log.With("failedStage", ev.From))
}

// deadLetter sends the alarm for a dead letter at once.
func (n *Notifier) deadLetter(ctx context.Context, dl DeadLetter) error {
	log := n.log.With(logging.KeyStage, Stage, "kind", KindDeadLetter,
		"sourceSubscription", dl.SourceSubscription, "deliveryCount", dl.DeliveryCount, "messageId", dl.MessageID)
	var lesson lessonstate.Lesson
	if dl.LessonID != "" {
		log = log.With(logging.KeyLessonID, dl.LessonID, logging.KeyVersion, dl.Version)
		if l, err := n.store.Lesson(ctx, dl.LessonID); err == nil {
			lesson = l
		} else {
			log.WarnContext(ctx, "dead letter's lesson unreadable; alerting without its title", "error", err.Error())
		}
	}
	log.WarnContext(ctx, "dead letter received; alerting")
	return n.deliver(ctx, deadLetterMessage(dl, lesson, n.links), log)
}

// checkDigest sends the run's digest if this is the event that finds the
// run settled (see the package comment).
func (n *Notifier) checkDigest(ctx context.Context, runID string, log *slog.Logger) error {
	key := DigestKey(runID)
	if rec, found, err := n.records.Get(ctx, key); err != nil {
		return err
	} else if found && (rec.State == StateSent || rec.State == StateFailed) {
		log.DebugContext(ctx, "run's digest already sent", "notification", key)
		return nil
	}
	run, err := n.store.Run(ctx, runID)
	if errors.Is(err, lessonstate.ErrRunNotFound) {
		log.WarnContext(ctx, "event names a run with no record; no digest for it")
		return nil
	}
	if err != nil {
		return fmt.Errorf("digest of run %s: %w", runID, err)
	}
	waiting, err := n.firstInFlight(ctx, runID)
	if err != nil {
		return err
	}
	if waiting != nil {
		step, rec, _ := waiting.Due()
		log.DebugContext(ctx, "run not settled; its digest waits", "waitingOn", waiting.ID, "step", step, "state", rec.State)
		return nil
	}
	d, err := n.assemble(ctx, run)
	if err != nil {
		return err
	}
	if d.empty() {
		log.InfoContext(ctx, "run changed no lesson; no digest")
		return nil
	}
	ended, unfinished := n.runEnded(run)
	if !ended {
		log.InfoContext(ctx, "every lesson of the run settled before the run recorded its end; asking for a redelivery",
			"runStartedAgo", n.sinceStart(run).String(), "runWait", n.runWait.String())
		return failure.Retryablef("digest of run %s: %w (started %s ago)", runID, errRunInProgress, n.sinceStart(run))
	}
	d.Unfinished = unfinished
	return n.deliver(ctx, digestMessage(d, n.maxListed, n.links), log)
}

// deliver sends m on every channel that has not had it yet, once: see
// the package comment for the claim, the per-channel records and the
// window a crash leaves.
func (n *Notifier) deliver(ctx context.Context, m Message, log *slog.Logger) error {
	log = log.With("notification", m.Key)
	c, err := n.records.Claim(ctx, m, n.lease)
	if err != nil {
		return err
	}
	switch c.Outcome {
	case Done:
		log.InfoContext(ctx, "notification already sent; nothing sent again", "state", c.Record.State)
		return nil
	case Busy:
		log.InfoContext(ctx, "another delivery is sending this notification; asking for a redelivery",
			"leaseUntil", c.Record.LeaseUntil)
		return failure.Retryablef("notify %s: %w (lease until %s)", m.Key, ErrBusy, c.Record.LeaseUntil.UTC().Format(time.RFC3339))
	}
	var retry []error
	for _, s := range n.senders {
		ch := s.Channel()
		if _, done := c.Record.Channels[ch]; done {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, n.sendTimeout)
		err := s.Send(sctx, m)
		cancel()
		out := Channel{State: StateSent}
		switch {
		case err == nil:
			log.InfoContext(ctx, "notification sent", "channel", ch, "attempt", c.Record.Attempts)
		case failure.IsPermanent(err):
			out = Channel{State: StateFailed, Error: err.Error()}
			log.ErrorContext(ctx, "channel refused the notification for good; recorded, not tried again",
				"channel", ch, "error", err.Error())
		default:
			log.WarnContext(ctx, "channel failed for now; the redelivery tries again", "channel", ch, "error", err.Error())
			retry = append(retry, fmt.Errorf("%s: %w", ch, err))
			continue
		}
		octx, ocancel := n.outcome(ctx)
		_, err = n.records.MarkChannel(octx, m.Key, ch, out, n.channels)
		ocancel()
		if err != nil {
			// Sent but not recorded: the redelivery sends on this channel
			// again (the window the package comment names).
			log.ErrorContext(ctx, "channel's outcome not recorded", "channel", ch, "error", err.Error())
			retry = append(retry, err)
		}
	}
	if len(retry) == 0 {
		return nil
	}
	err = errors.Join(retry...)
	octx, ocancel := n.outcome(ctx)
	defer ocancel()
	if rerr := n.records.Release(octx, m.Key, c.Token, err.Error()); rerr != nil {
		log.WarnContext(ctx, "claim not released; the redelivery waits for the lease", "error", rerr.Error())
	}
	return failure.Retryablef("notify %s: %w", m.Key, err)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
