// Package load is the proof of issue 9: it runs a synthetic course of many
// lessons (local/sample's load course) through the whole one-machine stack
// from detection to synced, optionally under faults — refusals from every
// outside service, every delivery made three times and out of order, the
// functions process killed at random moments, a transfer cut mid-stream per
// lesson — and with poison inputs, then measures and checks what the
// pipeline claims: per stage throughput and latency, Firestore writes and
// Pub/Sub messages per lesson counted at the emulators' doors, the
// functions' peak memory and busy seconds, exactly-once effects (one
// vector-store file per lesson, one digest per detection run, no
// notification twice, no paid call repeated after success), nothing lost
// and nothing dead-lettered unexplained, and the cost.
//
// `pipeline load` and `make load` run it at full size; a test in this
// package runs it small with every fault on.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/meter"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/local/workflows"
	"github.com/coursekb/pipeline/shared/cost"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/sweep"
)

// Faults says which faults a run injects; each is switched on alone.
type Faults struct {
	// Errors: a share (Options.ErrorRate) of the answers of every outside
	// service's local server are 429 or 5xx with the service's headers.
	Errors bool
	// Duplicates: every Pub/Sub and Eventarc delivery is made three times,
	// each copy after a random delay, so some arrive out of order.
	Duplicates bool
	// Kills: the functions process is killed at random moments (at least
	// Options.MinKills times) and restarted, as Cloud Run replaces an
	// instance.
	Kills bool
	// Cuts: the media host cuts each lesson's first transfer mid-stream.
	Cuts bool
}

// Any reports whether any fault is on.
func (f Faults) Any() bool { return f.Errors || f.Duplicates || f.Kills || f.Cuts }

// String names the faults on ("none" when none is).
func (f Faults) String() string {
	var on []string
	for _, x := range []struct {
		on   bool
		name string
	}{{f.Errors, "errors"}, {f.Duplicates, "duplicates"}, {f.Kills, "kills"}, {f.Cuts, "cuts"}} {
		if x.on {
			on = append(on, x.name)
		}
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, ",")
}

// ParseFaults reads "all", "none", or a comma-separated list of errors,
// duplicates, kills and cuts.
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(part)) {
		case "", "none":
		case "all":
			f = Faults{Errors: true, Duplicates: true, Kills: true, Cuts: true}
		case "errors":
			f.Errors = true
		case "duplicates", "dups":
			f.Duplicates = true
		case "kills":
			f.Kills = true
		case "cuts":
			f.Cuts = true
		default:
			return f, fmt.Errorf("fault %q is not all, none, errors, duplicates, kills or cuts", part)
		}
	}
	return f, nil
}

// Options configure Run.
type Options struct {
	// Lessons is the load course's size (default 100); Seed makes it.
	Lessons int
	Seed    int64
	Faults  Faults
	// Poison adds the poison inputs: malformed events on every topic,
	// unknown and hostile lesson ids, and lessons that must fail (an
	// oversized video, a checksum mismatch, a video with no audio track,
	// an empty transcript, a Gemini answer that never fits the schema).
	Poison bool
	// ErrorRate is the share of refused answers with Faults.Errors
	// (default 0.2); Copies and Jitter shape Faults.Duplicates (defaults 3
	// and 1.5 s); MinKills is the least kills with Faults.Kills (default
	// 5), one every KillEvery on average (default 6 s) until MinKills, and
	// then more slowly.
	ErrorRate float64
	Copies    int
	Jitter    time.Duration
	MinKills  int
	KillEvery time.Duration
	// Lease is every stage's lease (default 30 s): how long a stage whose
	// owner died stays taken before the sweeper re-drives it.
	Lease time.Duration
	// MediaDir caches the videos (default <module>/.cache/load-media);
	// Dir holds the stack's files (default a new directory under .cache).
	MediaDir, Dir string
	// ProjectID names the emulators' project (default a fresh one).
	ProjectID string
	// Timeout bounds the wait for every lesson to settle (default 20 min).
	Timeout time.Duration
	// Logs receives the functions' and servers' logs; Progress a line now
	// and then (both default: discarded).
	Logs     io.Writer
	Progress io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if o.Lessons <= 0 {
		o.Lessons = 100
	}
	if o.ErrorRate <= 0 {
		o.ErrorRate = 0.2
	}
	if o.Copies <= 0 {
		o.Copies = 3
	}
	if o.Jitter <= 0 {
		o.Jitter = 1500 * time.Millisecond
	}
	if o.MinKills <= 0 {
		o.MinKills = 5
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 6 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Minute
	}
	if o.Logs == nil {
		o.Logs = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return o, err
	}
	if o.MediaDir == "" {
		o.MediaDir = filepath.Join(root, ".cache", "load-media")
	}
	if o.Dir == "" {
		if err := os.MkdirAll(filepath.Join(root, ".cache"), 0o755); err != nil {
			return o, err
		}
		if o.Dir, err = os.MkdirTemp(filepath.Join(root, ".cache"), "load-"); err != nil {
			return o, err
		}
	}
	return o, nil
}

// run is one load run in progress.
type run struct {
	o     Options
	st    *stack.Stack
	cat   sample.Catalog
	good  []string          // lessons that must sync
	bad   map[string]poison // lessons that must fail, with why
	vids  []sample.Video
	since time.Time // when the first detection began
	log   func(format string, args ...any)

	deliveries  *deliveryLog
	steps       *stepLog
	kills       killLog
	poisonMsgs  map[string]string // message id → what it is
	costDynamic *cost.Report
	runs        []string // detection runs, in order
}

// Run runs the load course through the stack and returns what it measured
// and checked. The error is for a run that could not be made (the stack
// would not start, the videos could not be made); failed checks are in the
// report (Report.Passed).
func Run(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &run{o: o, bad: map[string]poison{}, deliveries: &deliveryLog{}, steps: &stepLog{}, poisonMsgs: map[string]string{}}
	r.log = func(format string, args ...any) {
		fmt.Fprintf(o.Progress, "  %6.1fs  %s\n", time.Since(r.start()).Seconds(), fmt.Sprintf(format, args...))
	}
	begun := time.Now()
	r.since = begun

	cat, specs := sample.LoadCourse(sample.LoadOptions{Lessons: o.Lessons, Seed: o.Seed})
	for _, s := range specs {
		r.good = append(r.good, s.Page.PageID)
	}
	if o.Poison {
		cat, specs = r.addPoisonLessons(cat, specs)
	}
	r.cat = cat
	fmt.Fprintf(o.Progress, "▶ load course: %d lessons (seed %d)%s; making the videos (cached in %s)\n",
		o.Lessons, o.Seed, map[bool]string{true: fmt.Sprintf(" + %d poison lessons", len(r.bad)), false: ""}[o.Poison], o.MediaDir)
	if r.vids, err = sample.GenerateLoad(ctx, specs, o.MediaDir, sample.GenerateOptions{}); err != nil {
		return nil, err
	}

	fmt.Fprintf(o.Progress, "▶ starting the stack with meters at the doors; faults: %s\n", o.Faults)
	if r.st, err = stack.Start(ctx, r.stackOptions()); err != nil {
		return nil, err
	}
	defer r.st.Stop()
	if err := r.putManifest(ctx); err != nil {
		return nil, err
	}
	rep := &Report{Lessons: o.Lessons, Seed: o.Seed, Faults: o.Faults, Poison: o.Poison, ErrorRate: o.ErrorRate, Copies: o.Copies}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var bg sync.WaitGroup
	bg.Go(func() { r.sweepEvery(runCtx, 2*time.Second) })
	if o.Faults.Kills {
		bg.Go(func() { r.killAtRandom(runCtx) })
	}
	r.st.Meters.Firestore.Reset()
	r.st.Meters.PubSub.Reset()
	r.since = time.Now()
	if o.Poison {
		if err := r.publishPoison(ctx); err != nil {
			return nil, err
		}
	}
	r.log("detection (as Cloud Scheduler calls it)")
	if err := r.detectUntilComplete(runCtx); err != nil {
		return nil, err
	}
	settled, err := r.waitSettled(runCtx)
	if err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(r.since)
	r.log("every lesson settled; waiting for the digests and for the deliveries to stop")
	r.waitDigests(runCtx)
	// A writer killed between its write and its publish leaves the event
	// in the lesson's outbox; the sweeper relays it once the outbox grace
	// has passed. Until then a message is still owed, and the idle
	// detection run below would be the one to send it.
	drained := r.waitOutboxDrained(runCtx, sweep.OutboxGrace+time.Minute)
	r.waitQuiet(runCtx, 3*time.Second, time.Minute)
	stopRun()
	bg.Wait()
	r.waitQuiet(ctx, 3*time.Second, time.Minute)

	fs, ps := r.st.Meters.Firestore.Counts(), r.st.Meters.PubSub.Counts()
	fn := r.st.Meters.Functions.Counts()
	lessons, err := r.st.Watch.Lessons(ctx)
	if err != nil {
		return nil, err
	}
	rep.Kills = r.kills.count()
	rep.PeakRSS = r.st.FunctionsPeakRSS()
	rep.Stages = stageStats(lessons, r.good, r.since)
	rep.Doors = doorStats(fs, ps, fn, len(r.good)+len(r.bad), r.deliveries)
	rep.Chaos = r.st.ChaosStats()
	rep.MediaCuts = r.st.Media.Cuts()
	rep.Deliveries = r.deliveries.summary()
	rep.WorkflowSteps = r.steps.count()
	rep.Checks = append(r.check(ctx, lessons, settled), drained)
	rep.PoisonResults = r.poisonResults(lessons)

	// What the pipeline costs while nothing changes: a detection run that
	// finds nothing, and a sweep.
	idle, idleCheck := r.measureIdle(ctx)
	rep.Checks = append(rep.Checks, idleCheck)
	if rep.Cost, rep.Platform, err = r.price(ctx, lessons, fs, ps, fn, idle); err != nil {
		rep.CostError = err.Error()
	}
	rep.Idle = idle
	rep.CostDynamic = r.costDynamic
	rep.Targets = targets(rep)
	return rep, nil
}

func (r *run) start() time.Time { return r.since }

// ackDeadline is the run's Pub/Sub ack deadline: a delivery that hangs (its
// process killed under it) is tried again within it, as Pub/Sub would.
const ackDeadline = time.Minute

// stackOptions are the stack's options for the run: meters on, the
// pipeline's clocks shortened so that a lease left by a killed process
// ends in seconds, and the faults asked for.
func (r *run) stackOptions() stack.Options {
	o := r.o
	lease := o.Lease.String()
	opts := stack.Options{
		Dir: o.Dir, ProjectID: o.ProjectID, Catalog: r.cat, MediaDir: o.MediaDir, Videos: r.vids, Logs: o.Logs,
		Observer: r.deliveries.add, StepObserver: r.steps.add,
		// Pub/Sub's retry budget must outlast a lease, as in production
		// (10 s doubling to 600 s, 15 attempts, against 2-minute leases):
		// a notification claimed by a killed process is Busy until its
		// lease ends, and its redeliveries must not run out before.
		MinBackoff: time.Second, MaxBackoff: 10 * time.Second,
		// A delivery that hangs (its process killed under it) is tried
		// again within a minute, as Pub/Sub would at the ack deadline.
		AckDeadline: ackDeadline,
		SweepEvery:  -1, // the run sweeps itself, so it can stop before measuring an idle sweep
		Meter:       true,
		Env: map[string]string{
			"DOWNLOAD_LEASE": lease, "TRANSCRIBE_EXTRACT_LEASE": lease, "ANALYZE_LEASE": lease, "ENRICH_LEASE": lease,
			"SYNC_LEASE": lease, "START_LEASE": lease, "NOTIFY_LEASE": lease, "VECTOR_STORE_CREATION_LEASE": lease,
			// Longer than the ack deadline, as in production: an event
			// whose delivery hangs on a killed process is delivered again
			// at the deadline, and must not be counted lost before (five
			// such re-drives fail the stage as never taken).
			"TAXONOMY_SYNC_LEASE": lease, "PENDING_AFTER": (2 * ackDeadline).String(),
			// As in production, a stage that failed for now waits before
			// its next attempt (2 s doubling here, 15 s there): the three
			// copies of every delivery must not spend its attempts at once.
			"STAGE_RETRY_BACKOFF": "2s",
			// What must fit inside a lease.
			"SYNC_INDEX_TIMEOUT": (o.Lease / 2).String(), "NOTIFY_SEND_TIMEOUT": (o.Lease / 3).String(),
			"MAX_MEDIA_BYTES": fmt.Sprint(maxMediaBytes),
		},
	}
	if o.ProjectID == "" {
		opts.ProjectID = fmt.Sprintf("load-%d", time.Now().UnixNano()%1_000_000_000)
	}
	f := o.Faults
	if f.Errors {
		opts.Chaos.ErrorRate = o.ErrorRate
	}
	if f.Duplicates {
		opts.Chaos.Copies, opts.Chaos.Jitter = o.Copies, o.Jitter
	}
	opts.Chaos.CutTransfers = f.Cuts
	opts.Chaos.Seed = o.Seed
	return opts
}

// maxMediaBytes is the load run's MAX_MEDIA_BYTES: far above any load
// video, below the oversized poison's.
const maxMediaBytes = 32 << 20

// detectUntilComplete runs detection as Cloud Scheduler does, again while a
// run does not complete (a refused Hotmart call, a killed process), until
// one run walked every course completely.
func (r *run) detectUntilComplete(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		sum, err := r.st.Detect(ctx)
		if sum.RunID != "" {
			r.runs = append(r.runs, sum.RunID)
		}
		switch {
		case err == nil && sum.Complete:
			r.log("detection run %s complete: %d new, %d changed", sum.RunID, sum.Counts.New, sum.Counts.Changed)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case attempt >= 30:
			return fmt.Errorf("detection never completed in %d runs: %v %v", attempt, err, sum.Errors)
		}
		r.log("detection run %q did not complete (%s%v); the scheduler runs it again", sum.RunID, sum.Outcome, errOr(err, sum.Errors))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func errOr(err error, errs []string) string {
	if err != nil {
		return ": " + err.Error()
	}
	if len(errs) > 0 {
		return ": " + strings.Join(errs, "; ")
	}
	return ""
}

// sweepEvery is the run's Cloud Scheduler job for the sweeper.
func (r *run) sweepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = r.st.Sweep(ctx)
		}
	}
}

// killAtRandom kills and restarts the functions process at random moments:
// one every KillEvery on average until MinKills, then one every four.
func (r *run) killAtRandom(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(uint64(r.o.Seed), 0x4b111))
	for {
		every := r.o.KillEvery
		if r.kills.count() >= r.o.MinKills {
			every *= 4
		}
		wait := time.Duration(float64(every) * (0.3 + 1.4*rnd.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		at := time.Now()
		if err := r.st.RestartFunctions(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log("restart after a kill failed: %v", err)
			continue
		}
		r.kills.add(at)
		r.log("killed the functions process (%d); Cloud Run started a new one in %s", r.kills.count(), time.Since(at).Round(10*time.Millisecond))
	}
}

type killLog struct {
	mu sync.Mutex
	at []time.Time
}

func (k *killLog) add(t time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.at = append(k.at, t)
}

func (k *killLog) times() []time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]time.Time(nil), k.at...)
}

func (k *killLog) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.at)
}

// deliveryLog keeps what the local Eventarc reports.
type deliveryLog struct {
	mu   sync.Mutex
	all  []eventarc.Delivery
	last time.Time
}

func (d *deliveryLog) add(x eventarc.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, x)
	d.last = time.Now()
}

func (d *deliveryLog) snapshot() ([]eventarc.Delivery, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]eventarc.Delivery(nil), d.all...), d.last
}

// DeliverySummary counts deliveries by outcome.
type DeliverySummary struct {
	ByOutcome map[string]int `json:"byOutcome"`
	// DeadLetters lists every dead letter seen (route, lesson, message).
	DeadLetters []string `json:"deadLetters,omitempty"`
}

func (d *deliveryLog) summary() DeliverySummary {
	all, _ := d.snapshot()
	s := DeliverySummary{ByOutcome: map[string]int{}}
	for _, x := range all {
		s.ByOutcome[string(x.Outcome)]++
		if x.Outcome == eventarc.DeadLettered {
			s.DeadLetters = append(s.DeadLetters, fmt.Sprintf("%s lesson %q message %s after %d attempts", x.Route, x.LessonID, x.MessageID, x.Attempt))
		}
	}
	return s
}

// stepLog counts the workflow's finished steps.
type stepLog struct {
	mu sync.Mutex
	n  int
}

func (s *stepLog) add(e workflows.StepEvent) {
	if e.State != workflows.StepFinished {
		return
	}
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
}

func (s *stepLog) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// waitSettled waits until every lesson is synced or failed, printing
// progress now and then. It returns the lessons not settled at the
// timeout (the run goes on to report them).
func (r *run) waitSettled(ctx context.Context) (map[string]bool, error) {
	want := append(append([]string(nil), r.good...), keys(r.bad)...)
	deadline := time.Now().Add(r.o.Timeout)
	lastLine := time.Now()
	for {
		lessons, err := r.st.Watch.Lessons(ctx)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		byID := map[string]lessonstate.Lesson{}
		for _, l := range lessons {
			byID[l.ID] = l
		}
		settled := map[string]bool{}
		var synced, failed int
		for _, id := range want {
			l, ok := byID[id]
			if !ok {
				continue
			}
			switch outcome(l) {
			case outcomeSynced:
				synced++
				settled[id] = true
			case outcomeFailed:
				failed++
				settled[id] = true
			}
		}
		if len(settled) == len(want) {
			r.log("settled: %d synced, %d failed", synced, failed)
			return settled, nil
		}
		if time.Since(lastLine) > 10*time.Second {
			lastLine = time.Now()
			all, _ := r.deliveries.snapshot()
			r.log("%d synced, %d failed, %d on their way (of %d); %d deliveries, %d kills", synced, failed,
				len(want)-len(settled), len(want), len(all), r.kills.count())
		}
		if time.Now().After(deadline) {
			r.log("timed out after %s with %d lessons unsettled", r.o.Timeout, len(want)-len(settled))
			return settled, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Outcomes of a lesson.
const (
	outcomeSynced  = "synced"
	outcomeFailed  = "failed"
	outcomeRunning = "in flight"
)

// outcome is where a lesson came to rest: synced at its version, failed
// for good at its version (nothing left in flight), or still on its way.
func outcome(l lessonstate.Lesson) string {
	if _, _, inFlight := l.Due(); inFlight {
		return outcomeRunning
	}
	if sy := l.Stages[lessonstate.StageSync]; sy.State == lessonstate.StateDone && sy.Version == l.Version && l.VectorStore != nil && l.VectorStore.Version == l.Version {
		return outcomeSynced
	}
	for _, rec := range l.Stages {
		if rec.State == lessonstate.StateFailed && rec.Version == l.Version {
			return outcomeFailed
		}
	}
	return outcomeRunning
}

// waitDigests waits, up to two minutes, until every detection run that
// changed lessons has its digest on Slack.
func (r *run) waitDigests(ctx context.Context) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		missing := 0
		for _, id := range r.changedRuns(ctx) {
			if len(digestsOf(r.st, id)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// changedRuns are the detection runs that created, changed or removed a
// lesson: each owes exactly one digest. A run the process was killed under
// never recorded its counts, but the lessons it wrote carry its id.
func (r *run) changedRuns(ctx context.Context) []string {
	seen := map[string]bool{}
	if runs, err := r.st.Watch.RecentRuns(ctx, 100); err == nil {
		for _, run := range runs {
			if c := run.Counts; c.New+c.Changed+c.Removed > 0 {
				seen[run.ID] = true
			}
		}
	}
	if lessons, err := r.st.Watch.Lessons(ctx); err == nil {
		for _, l := range lessons {
			if l.LastRunID != "" {
				seen[l.LastRunID] = true
			}
		}
	}
	return sortedKeys(seen)
}

// waitOutboxDrained waits, at most limit, until no lesson's outbox holds an
// event: everything the pipeline owes has been published.
func (r *run) waitOutboxDrained(ctx context.Context, limit time.Duration) Check {
	c := Check{Name: "nothing owed left in an outbox", Target: fmt.Sprintf("0 events queued within %s of settling", limit)}
	deadline := time.Now().Add(limit)
	for {
		pending, err := r.st.Watch.PendingOutbox(ctx)
		if err != nil {
			c.Figure = "outbox unreadable: " + err.Error()
			return c
		}
		n := 0
		for _, l := range pending {
			n += len(l.Outbox)
		}
		if n == 0 {
			c.Figure, c.Passed = "0 events queued", true
			return c
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.Figure = fmt.Sprintf("%d events still queued", n)
			for _, l := range pending {
				for _, o := range l.Outbox {
					c.detail("%s: %s queued at %s", l.ID, o.Topic, o.QueuedAt.Format(time.RFC3339))
				}
			}
			return c
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// waitQuiet waits until no delivery was reported for quiet, at most limit:
// late copies and redeliveries have landed.
func (r *run) waitQuiet(ctx context.Context, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		_, last := r.deliveries.snapshot()
		if time.Since(last) >= quiet {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// measureIdle measures one detection run that finds nothing new and one
// sweep, each alone: what the pipeline costs while nothing changes. The
// detection must publish nothing.
func (r *run) measureIdle(ctx context.Context) (cost.Idle, Check) {
	var idle cost.Idle
	c := Check{Name: "a detection run with nothing changed publishes nothing", Target: "0 messages"}
	measure := func(what string, fn func() error) (cost.Platform, meter.Counts, error) {
		fs0, ps0, fn0 := r.st.Meters.Firestore.Counts(), r.st.Meters.PubSub.Counts(), r.st.Meters.Functions.Counts()
		err := fn()
		r.waitQuiet(ctx, 2*time.Second, 30*time.Second)
		fs, ps, f := r.st.Meters.Firestore.Counts().Sub(fs0), r.st.Meters.PubSub.Counts().Sub(ps0), r.st.Meters.Functions.Counts().Sub(fn0)
		return platformOf(fs, ps, f, 1, "one idle "+what+", measured"), ps, err
	}
	var ps meter.Counts
	var err error
	idle.Detection, ps, err = measure("detection run", func() error { _, err := r.st.Detect(ctx); return err })
	c.Figure = fmt.Sprintf("%d messages", ps.TotalPublished())
	c.Passed = err == nil && ps.TotalPublished() == 0
	if err != nil {
		c.Figure += " (detection failed: " + err.Error() + ")"
	}
	idle.Sweep, _, _ = measure("sweep", func() error { _, err := r.st.Sweep(ctx); return err })
	return idle, c
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ErrChecksFailed is what a caller returns when a report's checks failed.
var ErrChecksFailed = errors.New("load run: checks failed")
