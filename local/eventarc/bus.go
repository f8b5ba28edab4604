package eventarc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/coursekb/pipeline/shared/events"
)

// Outcome is what became of one delivery attempt.
type Outcome string

const (
	// Delivered: the target answered 2xx; the message is acknowledged.
	Delivered Outcome = "delivered"
	// Retrying: the attempt failed; the message is nacked after the
	// backoff and will be redelivered.
	Retrying Outcome = "retrying"
	// Exhausted: the last allowed attempt failed; the message is nacked and
	// the dead-letter policy moves it to the dead-letter topic.
	Exhausted Outcome = "exhausted"
	// Ignored: the message is not an event for the target (a Cloud Storage
	// notification other than OBJECT_FINALIZE); it is acknowledged unsent.
	Ignored Outcome = "ignored"
	// DeadLettered: the message was read from the route's dead-letter
	// subscription (Options.ObserveDeadLetters) and acknowledged there.
	DeadLettered Outcome = "dead-lettered"
	// Duplicated: an extra copy of a delivery attempt (Options.Copies);
	// its answer settles nothing.
	Duplicated Outcome = "duplicated"
)

// Delivery reports one delivery attempt, or one dead letter read.
type Delivery struct {
	Route        string // Route.Name
	Subscription string // the subscription id the message came from
	MessageID    string
	LessonID     string // the lessonId attribute, or the object's lessonId metadata
	EventType    string // the CloudEvent type sent; empty for dead letters
	Attempt      int    // 1-based; for a dead letter, the attempts made before
	Status       int    // HTTP status; 0 when no answer came
	Err          error  // why the attempt failed; nil when delivered
	Outcome      Outcome
	Backoff      time.Duration // wait before the nack, for Retrying
	Duration     time.Duration // time the target took
	Copy         int           // 0 for the attempt itself; 1.. for its extra copies (Options.Copies)
}

// Options configure a Bus. The zero value works.
type Options struct {
	// HTTPClient sends events; default a client without timeout (the
	// subscriber extends the message's ack deadline while a function runs).
	HTTPClient *http.Client
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told of every delivery attempt. It is called
	// from many goroutines at once and should return quickly.
	Observer func(Delivery)
	// ObserveDeadLetters makes Run also receive each dead-letter
	// subscription Setup made, report every message there as DeadLettered
	// and acknowledge it. Leave it off to read dead letters yourself.
	ObserveDeadLetters bool
	// Copies makes every delivery attempt reach its target this many times
	// (0 or 1: once), as Pub/Sub's at-least-once delivery may: the extra
	// copies go beside the attempt, and their answers settle nothing (they
	// are reported as Duplicated).
	Copies int
	// Jitter delays every copy, the attempt itself included, by a random
	// time up to Jitter, so that copies and the messages after them arrive
	// out of order. Seed seeds the delays.
	Jitter time.Duration
	Seed   int64
}

// Bus delivers the messages of its routes' subscriptions to their targets.
type Bus struct {
	client    *pubsub.Client
	projectID string
	routes    []Route
	opts      Options

	mu       sync.Mutex
	attempts map[string]int // by subscription and message id, when the service does not count
	rnd      *rand.Rand     // jitter; guarded by mu
}

// New returns a Bus over client (connected to the Pub/Sub emulator) for
// routes in projectID. Routes are checked by Run.
func New(client *pubsub.Client, projectID string, routes []Route, opts Options) *Bus {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Bus{client: client, projectID: projectID, routes: routes, opts: opts, attempts: map[string]int{},
		rnd: rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed))}
}

// jitter is a random delay up to Options.Jitter.
func (b *Bus) jitter() time.Duration {
	if b.opts.Jitter <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(b.rnd.Int64N(int64(b.opts.Jitter)))
}

// wait sleeps d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// duplicate sends one extra copy of an attempt and reports it.
func (b *Bus) duplicate(ctx context.Context, r Route, m *pubsub.Message, attempt, copyNo int) {
	d := Delivery{Route: r.Name, Subscription: lastSegment(r.Subscription), MessageID: m.ID, LessonID: m.Attributes[events.AttrLessonID],
		Attempt: attempt, Copy: copyNo, Outcome: Duplicated}
	wait(ctx, b.jitter())
	req, err := b.request(ctx, r, m, &d)
	if req == nil || err != nil {
		return
	}
	start := time.Now()
	d.Status, d.Err = b.sendWithin(ctx, req, r.AckDeadline)
	d.Duration = time.Since(start)
	if b.opts.Observer != nil {
		b.opts.Observer(d)
	}
}

// Run receives every route's subscription (and, with ObserveDeadLetters,
// every dead-letter subscription) until ctx ends, then returns nil once the
// messages in hand are settled. It returns an error at once for invalid
// routes, and when a subscription cannot be received (for example it does
// not exist: run Setup first), after stopping the other receivers.
func (b *Bus) Run(ctx context.Context) error {
	routes, err := prepare(b.routes)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	receive := func(name string, handle func(context.Context, *pubsub.Message)) {
		wg.Go(func() {
			sub := b.client.Subscriber(name)
			sub.ReceiveSettings.MaxOutstandingMessages = 100
			if err := sub.Receive(ctx, handle); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("eventarc: receive %s: %w", name, err))
				mu.Unlock()
				cancel()
			}
		})
	}
	dlqs := map[string][]Route{}
	for _, r := range routes {
		receive(resourceName(b.projectID, "subscriptions", r.Subscription), func(ctx context.Context, m *pubsub.Message) {
			b.deliver(ctx, r, m)
		})
		dl := deadLetterSubscription(b.projectID, r)
		dlqs[dl] = append(dlqs[dl], r)
	}
	if b.opts.ObserveDeadLetters {
		for name, rs := range dlqs {
			receive(name, func(_ context.Context, m *pubsub.Message) { b.deadLetter(rs, m) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deliver makes one delivery attempt of m to r's target and settles m.
func (b *Bus) deliver(ctx context.Context, r Route, m *pubsub.Message) {
	d := Delivery{Route: r.Name, Subscription: lastSegment(r.Subscription), MessageID: m.ID, LessonID: m.Attributes[events.AttrLessonID]}
	d.Attempt = b.attempt(d.Subscription, m)
	log := b.opts.Logger.With("route", r.Name, "messageId", m.ID, "lessonId", d.LessonID, "attempt", d.Attempt)

	// The request runs on the bus's context, which only shutdown cancels:
	// at the ack deadline a push subscription stops waiting and redelivers,
	// but the function's request goes on (DESIGN.md section 6 assumes Cloud
	// Run does not cancel it), so the redelivery may run beside it.
	req, err := b.request(ctx, r, m, &d)
	if req == nil && err == nil {
		d.Outcome = Ignored
		log.Debug("eventarc: message ignored", "eventType", m.Attributes["eventType"])
		b.settle(d, m, true)
		return
	}
	if err == nil {
		for i := 1; i < b.opts.Copies; i++ {
			go b.duplicate(ctx, r, m, d.Attempt, i)
		}
		wait(ctx, b.jitter())
		start := time.Now()
		d.Status, err = b.sendWithin(ctx, req, r.AckDeadline)
		d.Duration = time.Since(start)
	}
	if err == nil {
		d.Outcome = Delivered
		log.Debug("eventarc: delivered", "status", d.Status, "duration", d.Duration)
		b.settle(d, m, true)
		return
	}
	d.Err = err
	d.Outcome = Exhausted
	if d.Attempt < r.MaxDeliveryAttempts {
		d.Outcome, d.Backoff = Retrying, r.backoff(d.Attempt)
	}
	log.Warn("eventarc: delivery failed", "status", d.Status, "error", err, "outcome", d.Outcome, "backoff", d.Backoff)
	if d.Outcome == Retrying {
		t := time.NewTimer(d.Backoff)
		select {
		case <-t.C:
		case <-ctx.Done(): // shutting down: hand the message back now
			t.Stop()
		}
	}
	b.settle(d, m, false)
}

// sendWithin sends req and waits for its answer at most deadline. Past it the
// attempt has failed, as with a push subscription; the request is left
// running and its late answer ignored.
func (b *Bus) sendWithin(ctx context.Context, req *http.Request, deadline time.Duration) (int, error) {
	type answer struct {
		status int
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, err := b.send(req)
		answered <- answer{status, err}
	}()
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case a := <-answered:
		return a.status, a.err
	case <-t.C:
		return 0, fmt.Errorf("%s gave no answer within the ack deadline (%s); the request is left running", req.URL.Redacted(), deadline)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// send POSTs req and returns the status; any answer but 2xx is an error.
func (b *Bus) send(req *http.Request) (int, error) {
	resp, err := b.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return resp.StatusCode, fmt.Errorf("%s answered %s: %s", req.URL.Redacted(), resp.Status, msg)
}

// attempt returns m's 1-based delivery attempt: the service's count when the
// subscription has a dead-letter policy (Setup gives it one), else ours.
func (b *Bus) attempt(sub string, m *pubsub.Message) int {
	if m.DeliveryAttempt != nil {
		return *m.DeliveryAttempt
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts[sub+"/"+m.ID]++
	return b.attempts[sub+"/"+m.ID]
}

// settle acks or nacks m and reports d.
func (b *Bus) settle(d Delivery, m *pubsub.Message, ack bool) {
	if ack {
		m.Ack()
	} else {
		m.Nack()
	}
	if d.Outcome != Retrying {
		b.mu.Lock()
		delete(b.attempts, d.Subscription+"/"+m.ID)
		b.mu.Unlock()
	}
	if b.opts.Observer != nil {
		b.opts.Observer(d)
	}
}

// deadLetter reports and acknowledges a message read from a dead-letter
// subscription shared by routes.
func (b *Bus) deadLetter(routes []Route, m *pubsub.Message) {
	source := m.Attributes["CloudPubSubDeadLetterSourceSubscription"]
	d := Delivery{Route: routes[0].Name, Subscription: source, MessageID: m.ID, LessonID: m.Attributes[events.AttrLessonID], Outcome: DeadLettered}
	for _, r := range routes {
		if lastSegment(r.Subscription) == lastSegment(source) {
			d.Route = r.Name
		}
	}
	d.Attempt, _ = strconv.Atoi(m.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"])
	b.opts.Logger.Warn("eventarc: dead letter", "route", d.Route, "messageId", m.ID, "lessonId", d.LessonID, "attempts", d.Attempt)
	m.Ack()
	if b.opts.Observer != nil {
		b.opts.Observer(d)
	}
}
