package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/coursekb/pipeline/local/emulators"
	localslack "github.com/coursekb/pipeline/local/slack"
	localsmtp "github.com/coursekb/pipeline/local/smtp"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/notify"
)

// TestMain shares one Firestore and one Pub/Sub emulator among the
// package's tests; a test whose emulator cannot start fails, saying why.
func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

// clock is a settable clock shared by the store, the records and the
// notifier.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log records whose message contains substr.
func (l *logBuffer) lines(t *testing.T, substr string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if msg, _ := rec["message"].(string); strings.Contains(msg, substr) {
			out = append(out, rec)
		}
	}
	return out
}

// fixture is a notifier wired as in production — the real lesson store and
// idempotency records on the Firestore emulator, the real Slack and SMTP
// senders — talking to the local Slack webhook and SMTP receiver.
type fixture struct {
	t       *testing.T
	fs      *firestore.Client
	store   *lessonstate.Store
	records *notify.Records
	clock   *clock
	slack   *localslack.Server
	smtp    *localsmtp.Server
	logs    *logBuffer
	n       *notify.Notifier
	project string
}

type fixtureOpts struct {
	senders func(f *fixture, slackURL, smtpAddr string) []notify.Sender
	runWait time.Duration
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	f := &fixture{t: t, clock: &clock{now: t0}, logs: &logBuffer{}, project: emulators.ProjectID("notify")}
	var err error
	if f.fs, err = firestore.NewClient(t.Context(), f.project); err != nil {
		t.Fatalf("firestore client: %v", err)
	}
	t.Cleanup(func() { f.fs.Close() })
	f.store = lessonstate.New(f.fs, lessonstate.WithClock(f.clock.Now))
	if f.records, err = notify.NewRecords(f.fs, f.clock.Now); err != nil {
		t.Fatal(err)
	}

	f.slack = localslack.NewServer()
	slackURL, stopSlack, err := f.slack.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopSlack() })
	f.smtp = localsmtp.New(localsmtp.Options{})
	smtpAddr, stopSMTP, err := f.smtp.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopSMTP() })

	if o.senders == nil {
		o.senders = func(f *fixture, slackURL, smtpAddr string) []notify.Sender {
			return []notify.Sender{f.slackSender(slackURL), f.smtpSender(smtpAddr, nil)}
		}
	}
	log := logging.New(f.logs, "debug", f.project)
	f.n, err = notify.New(notify.Deps{
		Store: f.store, Records: f.records, Senders: o.senders(f, slackURL, smtpAddr), Log: log,
		Links:   notify.Links{ClubLessonURL: notify.DefaultClubLessonURL, ConsoleURL: "https://console.cloud.google.com", ProjectID: "coursekb-prod"},
		Lease:   2 * time.Minute,
		RunWait: o.runWait,
		Now:     f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) slackSender(url string) notify.Sender {
	s, err := notify.NewSlack(url, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) smtpSender(addr string, mutate func(*notify.SMTPOptions)) notify.Sender {
	host, port := splitHostPort(f.t, addr)
	o := notify.SMTPOptions{Host: host, Port: port, From: "Course KB <notifier@coursekb.example>",
		To: []string{"ops@school.example", "Producer <producer@school.example>"}, Now: f.clock.Now}
	if mutate != nil {
		mutate(&o)
	}
	s, err := notify.NewSMTP(o)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	var port int
	if _, err := fmt.Sscan(addr[i+1:], &port); err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return addr[:i], port
}

// handle decodes ce as the function does and hands it to the notifier.
func (f *fixture) handle(ce event.Event) error {
	f.t.Helper()
	in, err := notify.Decode(ce)
	if err != nil {
		f.t.Fatalf("decode: %v", err)
	}
	return f.n.Handle(context.Background(), in)
}

// mustHandle handles ce and fails on any error.
func (f *fixture) mustHandle(ce event.Event) {
	f.t.Helper()
	if err := f.handle(ce); err != nil {
		f.t.Fatalf("handle %s: %v", ce.ID(), err)
	}
}

// pushEvent is the messagePublished CloudEvent Eventarc delivers for a
// Pub/Sub message on topic.
func pushEvent(t *testing.T, topic, messageID string, data []byte, attrs map[string]string) event.Event {
	t.Helper()
	body := map[string]any{
		"message": map[string]any{
			"data": data, "attributes": attrs, "messageId": messageID,
			"publishTime": "2026-03-02T09:00:00Z",
		},
		"subscription": "projects/coursekb-prod/subscriptions/" + topic + "-notifier",
	}
	ce := event.New()
	ce.SetID(messageID)
	ce.SetType(events.TypePubSubPublished)
	ce.SetSource("//pubsub.googleapis.com/projects/coursekb-prod/topics/" + topic)
	if err := ce.SetData("application/json", body); err != nil {
		t.Fatal(err)
	}
	return ce
}

// lessonEvent is a lesson-events message as the outbox relay publishes it.
func lessonEvent(t *testing.T, messageID string, ev events.LessonEvent) event.Event {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return pushEvent(t, events.TopicLessonEvents, messageID, data, ev.Attributes())
}

// course and lessons of the digest scenario.
const (
	courseID  = "4100001"
	subdomain = "goschool"
)

func (f *fixture) putCourse() {
	f.t.Helper()
	if _, err := f.store.PutCourse(f.t.Context(), lessonstate.Course{ID: courseID, Name: "Go from zero", School: "programming", ClubSubdomain: subdomain}); err != nil {
		f.t.Fatal(err)
	}
}

// detect records a lesson as detection run runID saw it: media "ready",
// "awaiting" or "none".
func (f *fixture) detect(runID, id, title, media string, module, order int) {
	f.t.Helper()
	l := lessonstate.Lesson{
		CourseID: courseID, CourseName: "Go from zero", School: "programming",
		ModuleID: fmt.Sprintf("m%d", module), ModuleName: fmt.Sprintf("Module %d", module), ModuleOrder: module, PageOrder: order,
		Title: title, Type: "CONTENT", HasMedia: media != lessonstate.MediaNone, MediaStatus: media,
	}
	if media == lessonstate.MediaReady {
		l.Media = &lessonstate.Media{Kind: "url", Ref: id, Ext: "mp4", Fingerprint: "fp-" + id}
	}
	l.Fingerprint = title + "|" + media
	if _, _, err := f.store.ApplyDetected(f.t.Context(), id, lessonstate.Observed{Lesson: l, RunID: runID}); err != nil {
		f.t.Fatal(err)
	}
}

// runSteps claims and completes steps of a lesson's current version, as
// the stages do.
func (f *fixture) runSteps(id string, steps ...string) {
	f.t.Helper()
	ctx := f.t.Context()
	l, err := f.store.Lesson(ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, st := range steps {
		c, err := f.store.Claim(ctx, id, st, l.Version, time.Minute)
		if err != nil || c.Outcome != lessonstate.Claimed {
			f.t.Fatalf("claim %s of %s: %v %v", st, id, c.Outcome, err)
		}
		if err := f.store.Complete(ctx, id, st, l.Version, c.Token, nil); err != nil {
			f.t.Fatal(err)
		}
	}
}

// sync runs a lesson through every stage and returns the synced event the
// syncer publishes.
func (f *fixture) sync(id string) events.LessonEvent {
	f.t.Helper()
	f.runSteps(id, lessonstate.StageDownload, lessonstate.StageTranscribe, lessonstate.StageAnalyze,
		lessonstate.StageEnrich, lessonstate.StageSync)
	l, err := f.store.Lesson(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: l.LastRunID, Kind: events.KindSynced}
}

// fail fails stage of a lesson for good and returns the failed event it
// announces.
func (f *fixture) fail(id, stage, reason string) events.LessonEvent {
	f.t.Helper()
	ctx := f.t.Context()
	l, err := f.store.Lesson(ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.store.Claim(ctx, id, stage, l.Version, time.Minute)
	if err != nil || c.Outcome != lessonstate.Claimed {
		f.t.Fatalf("claim %s of %s: %v %v", stage, id, c.Outcome, err)
	}
	res, err := f.store.Fail(ctx, id, stage, l.Version, c.Token, reason, false)
	if err != nil || res.Announce == nil {
		f.t.Fatalf("fail %s of %s: %+v %v", stage, id, res, err)
	}
	return *res.Announce
}

func (f *fixture) remove(id, runID string) events.LessonEvent {
	f.t.Helper()
	ev, err := f.store.MarkRemoved(f.t.Context(), id, runID)
	if err != nil || ev == nil {
		f.t.Fatalf("mark %s removed: %v %v", id, ev, err)
	}
	return *ev
}

func (f *fixture) saveRun(r lessonstate.Run) {
	f.t.Helper()
	if err := f.store.SaveRun(f.t.Context(), r); err != nil {
		f.t.Fatal(err)
	}
}

// record returns a notification's idempotency record.
func (f *fixture) record(key string) notify.Record {
	f.t.Helper()
	rec, found, err := f.records.Get(f.t.Context(), key)
	if err != nil || !found {
		f.t.Fatalf("record %s: found %v, %v", key, found, err)
	}
	return rec
}

// contains fails the test for each want missing from got.
func contains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}
