package notifier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/eventarc"
	localslack "github.com/coursekb/pipeline/local/slack"
	localsmtp "github.com/coursekb/pipeline/local/smtp"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub))
}

// serve is what functions-framework does with a CloudEvent function: read
// the binary-mode CloudEvent, call the function, answer 500 on an error so
// the push is retried.
func serve(h *Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ce, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := h.Handle(r.Context(), *ce); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// deliveries keeps the local Eventarc's reports.
type deliveries struct {
	mu sync.Mutex
	ds []eventarc.Delivery
}

func (d *deliveries) add(x eventarc.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ds = append(d.ds, x)
}

func (d *deliveries) find(route, messageID string) []eventarc.Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []eventarc.Delivery
	for _, x := range d.ds {
		if x.Route == route && (messageID == "" || x.MessageID == messageID) {
			out = append(out, x)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The notifier as the stack runs it: built from its environment through
// the one start-up path, fed by the local Eventarc from lesson-events and
// from a dead-letter topic, sending to the local Slack webhook and SMTP
// receiver. A failed lesson alerts and, being its run's last lesson, brings
// the run's digest; a message the downloader can never take is
// dead-lettered after 5 deliveries and alerts at once, JSON or not; a
// lesson-events message that is not a lesson event is acknowledged, not
// retried.
func TestNotifierEndToEnd(t *testing.T) {
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("notifier")

	slack := localslack.NewServer()
	hook, stopSlack, err := slack.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stopSlack()
	mail := localsmtp.New(localsmtp.Options{})
	smtpAddr, stopSMTP, err := mail.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stopSMTP()
	host, port, _ := strings.Cut(smtpAddr, ":")

	t.Setenv("GOOGLE_CLOUD_PROJECT", project)
	t.Setenv("SLACK_WEBHOOK_URL", hook)
	t.Setenv("SMTP_HOST", host)
	t.Setenv("SMTP_PORT", port)
	t.Setenv("MAIL_FROM", "Course KB <kb@coursekb.example>")
	t.Setenv("MAIL_TO", "ops@coursekb.example")
	// setup.New makes every shared client; the notifier never uses Cloud
	// Storage, but the client must not look for credentials.
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
	h, err := NewFromEnv(ctx)
	if err != nil {
		t.Fatalf("start-up: %v", err)
	}
	notifier := httptest.NewServer(serve(h))
	defer notifier.Close()
	downloader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "always failing", http.StatusInternalServerError)
	}))
	defer downloader.Close()

	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	fast := func(r eventarc.Route) eventarc.Route {
		r.MinBackoff, r.MaxBackoff, r.MaxDeliveryAttempts = 10*time.Millisecond, 50*time.Millisecond, 5
		return r
	}
	routes := []eventarc.Route{
		fast(eventarc.Route{Name: "notifier", Topic: events.TopicLessonEvents, Subscription: "lesson-events-notifier", Target: notifier.URL + "/"}),
		fast(eventarc.Route{Name: "downloader", Topic: events.TopicLessonDiscovered, Subscription: "downloader-sub", Target: downloader.URL + "/",
			DeadLetterTopic: "lesson-discovered-dlq"}),
		fast(eventarc.Route{Name: "notifier-dead-letters", Topic: "lesson-discovered-dlq", Subscription: "lesson-discovered-dlq-notifier", Target: notifier.URL + "/"}),
	}
	if err := eventarc.Setup(ctx, ps, project, routes); err != nil {
		t.Fatal(err)
	}
	seen := &deliveries{}
	busCtx, stopBus := context.WithCancel(context.Background())
	busDone := make(chan error, 1)
	go func() {
		busDone <- eventarc.New(ps, project, routes, eventarc.Options{Observer: seen.add}).Run(busCtx)
	}()
	defer func() { stopBus(); <-busDone }()

	// A run whose one lesson fails for good at enrich.
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	store := lessonstate.New(fs)
	if _, err := store.PutCourse(ctx, lessonstate.Course{ID: "4100001", Name: "Go", ClubSubdomain: "goschool"}); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveRun(ctx, lessonstate.Run{ID: "run-e2e", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	lesson := lessonstate.Lesson{CourseID: "4100001", CourseName: "Go", ModuleName: "Basics", Title: "Variables",
		Type: "CONTENT", HasMedia: true, MediaStatus: lessonstate.MediaReady, Fingerprint: "f1",
		Media: &lessonstate.Media{Kind: "url", Ref: "Vars", Ext: "mp4", Fingerprint: "m1"}}
	if _, _, err := store.ApplyDetected(ctx, "Vars", lessonstate.Observed{Lesson: lesson, RunID: "run-e2e"}); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveRun(ctx, lessonstate.Run{ID: "run-e2e", StartedAt: time.Now(), FinishedAt: time.Now(), Outcome: "complete", Counts: lessonstate.Counts{New: 1}}); err != nil {
		t.Fatal(err)
	}
	claim, err := store.Claim(ctx, "Vars", lessonstate.StageEnrich, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := store.Fail(ctx, "Vars", lessonstate.StageEnrich, 1, claim.Token, "taxonomy has no categories", false)
	if err != nil || failed.Announce == nil {
		t.Fatalf("fail: %+v %v", failed, err)
	}

	publisher := events.NewPublisher(ps)
	defer publisher.Close()
	if _, err := publisher.Publish(ctx, events.TopicLessonEvents, *failed.Announce); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the failure alert and the run's digest", func() bool { return len(slack.Messages()) == 2 })
	texts := []string{slack.Messages()[0].AllText(), slack.Messages()[1].AllText()}
	joined := strings.Join(texts, "\n---\n")
	for _, want := range []string{"Lesson failed at enrich: Variables", "Reason: taxonomy has no categories",
		"Course knowledge: 0 synced, 1 failed, 0 removed", "<https://goschool.club.hotmart.com/lesson/Vars|Variables>"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Slack messages lack %q:\n%s", want, joined)
		}
	}
	waitFor(t, 10*time.Second, "the two e-mails", func() bool { return len(mail.Messages()) == 2 })

	// The downloader never takes this message: 5 deliveries, then the
	// dead-letter topic, then the alarm.
	id, err := publisher.Publish(ctx, events.TopicLessonDiscovered, events.LessonEvent{LessonID: "Vars", Version: 1, CourseID: "4100001", RunID: "run-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the dead-letter alarm", func() bool { return len(slack.Messages()) == 3 })
	alarm := slack.Messages()[2].AllText()
	for _, want := range []string{"Dead letter on downloader-sub", "*Deliveries*\n5", "*Lesson*\nVariables (Vars v1)"} {
		if !strings.Contains(alarm, want) {
			t.Errorf("alarm lacks %q:\n%s", want, alarm)
		}
	}
	if n := len(seen.find("downloader", id)); n != 5 {
		t.Errorf("downloader saw the message %d times, want 5", n)
	}

	// Data that is not even JSON.
	if _, err := publisher.PublishRaw(ctx, events.TopicLessonDiscovered, []byte{0, 1, 2, 0xfe}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the alarm for binary data", func() bool { return len(slack.Messages()) == 4 })
	if alarm := slack.Messages()[3].AllText(); !strings.Contains(alarm, "Data: 4 bytes, not text") {
		t.Errorf("binary alarm:\n%s", alarm)
	}

	// Not a lesson event: acknowledged at once, never dead-lettered.
	junk, err := publisher.PublishRaw(ctx, events.TopicLessonEvents, []byte(`{"hello":"world"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the junk message's delivery", func() bool { return len(seen.find("notifier", junk)) > 0 })
	if ds := seen.find("notifier", junk); len(ds) != 1 || ds[0].Outcome != eventarc.Delivered {
		t.Errorf("junk on lesson-events: %+v, want one delivery, acknowledged", ds)
	}
	if n := len(slack.Messages()); n != 4 {
		t.Errorf("%d Slack messages, want 4", n)
	}
	waitFor(t, 10*time.Second, "four e-mails, one per Slack message", func() bool { return len(mail.Messages()) == 4 })
}

// The start-up names every configuration problem at once.
func TestStartupRefusesBadConfiguration(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "p")
	t.Setenv("SMTP_PORT", "not-a-port")
	t.Setenv("NOTIFY_LEASE", "soon")
	_, err := NewFromEnv(t.Context())
	if err == nil || !strings.Contains(err.Error(), "SMTP_PORT is malformed") || !strings.Contains(err.Error(), "NOTIFY_LEASE is malformed") {
		t.Errorf("start-up error %v, want both variables named", err)
	}
}
