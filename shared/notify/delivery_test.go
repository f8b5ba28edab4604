package notify_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	localslack "github.com/coursekb/pipeline/local/slack"
	localsmtp "github.com/coursekb/pipeline/local/smtp"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/notify"
)

// failedLesson records a lesson of run-1 failed for good at enrich and
// returns the failed event's CloudEvent.
func (f *fixture) failedLesson(id string) event.Event {
	f.t.Helper()
	f.putCourse()
	f.saveRun(lessonstate.Run{ID: "run-1", StartedAt: t0})
	f.detect("run-1", id, "Interfaces", lessonstate.MediaReady, 1, 1)
	f.detect("run-1", id+"b", "Still running", lessonstate.MediaReady, 1, 2)
	return lessonEvent(f.t, "m-"+id, f.fail(id, lessonstate.StageEnrich, "gemini refused the schema"))
}

// Pub/Sub delivers at least once: the same failed event three times in a
// row alerts once, on each channel.
func TestRedeliveredEventSendsOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	for range 3 {
		f.mustHandle(ce)
	}
	if n, m := len(f.slack.Messages()), len(f.smtp.Messages()); n != 1 || m != 1 {
		t.Fatalf("%d Slack messages and %d e-mails for one event delivered 3 times, want 1 and 1", n, m)
	}
	contains(t, "failure alert", f.slack.Messages()[0].AllText(),
		"Lesson failed at enrich: Interfaces", "Reason: gemini refused the schema",
		"<https://goschool.club.hotmart.com/lesson/Ifaces|Interfaces>", "*Stage*\nenrich", "*Version*\n1",
		"jsonPayload.lessonId%3D%22Ifaces%22%0AjsonPayload.stage%3D%22enrich%22")
	rec := f.record(notify.FailureKey("Ifaces", 1, lessonstate.StageEnrich))
	if rec.State != notify.StateSent || rec.Attempts != 1 || rec.LessonID != "Ifaces" {
		t.Errorf("record %+v", rec)
	}
	if got := len(f.logs.lines(t, "notification already sent")); got != 2 {
		t.Errorf("%d 'already sent' log lines, want 2", got)
	}
	for _, l := range f.logs.lines(t, "notification sent") {
		if l[logging.KeyLessonID] != "Ifaces" || l[logging.KeyStage] != notify.Stage {
			t.Errorf("log line without lesson and stage: %v", l)
		}
	}
}

// Concurrent deliveries of one event (a push redelivered while the first
// request still runs) send once: one claims the record, the others find
// it busy and ask for a redelivery — or find it sent — and the redelivery
// sends nothing more.
func TestConcurrentDeliveriesSendOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f.handle(ce) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && (!errors.Is(err, notify.ErrBusy) || failure.IsPermanent(err)) {
			t.Errorf("delivery %d: %v, want nil or a retryable ErrBusy", i, err)
		}
	}
	// Pub/Sub redelivers the ones that asked for it.
	for i, err := range errs {
		if err != nil {
			if err := f.handle(ce); err != nil {
				t.Errorf("redelivery of %d: %v", i, err)
			}
		}
	}
	if n, m := len(f.slack.Messages()), len(f.smtp.Messages()); n != 1 || m != 1 {
		t.Fatalf("%d Slack messages and %d e-mails from concurrent deliveries, want 1 and 1", n, m)
	}
}

// A delivery that claimed a notification and died before sending leaves
// it claimed; deliveries meanwhile are asked to come back; once the lease
// ends the next one takes it over and sends it.
func TestClaimLeftByACrashIsTakenOverAfterItsLease(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	key := notify.FailureKey("Ifaces", 1, lessonstate.StageEnrich)
	if c, err := f.records.Claim(t.Context(), notify.Message{Key: key, Kind: notify.KindFailure}, 2*time.Minute); err != nil || c.Outcome != notify.Claimed {
		t.Fatalf("crashed delivery's claim: %v %v", c.Outcome, err)
	}
	if err := f.handle(ce); !errors.Is(err, notify.ErrBusy) {
		t.Fatalf("delivery under the crashed one's lease: %v, want ErrBusy", err)
	}
	if n := len(f.slack.Messages()); n != 0 {
		t.Fatalf("%d messages sent under another delivery's lease", n)
	}
	f.clock.Advance(2*time.Minute + time.Second)
	f.mustHandle(ce)
	if n := len(f.slack.Messages()); n != 1 {
		t.Fatalf("%d messages after the lease ended, want 1", n)
	}
	if rec := f.record(key); rec.Attempts != 2 || rec.State != notify.StateSent {
		t.Errorf("record %+v, want sent on the second claim", rec)
	}
}

// Slack over its rate answers 429 with Retry-After; the sender waits that
// long and posts again, within the same delivery.
func TestSlackRateLimitedThenAccepted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	f.slack.FailNext(localslack.RateLimited(time.Second))
	start := time.Now()
	f.mustHandle(ce)
	if took := time.Since(start); took < time.Second {
		t.Errorf("posted again after %s, before Retry-After", took)
	}
	reqs := f.slack.Requests()
	if len(reqs) != 2 || reqs[0].Status != 429 || reqs[1].Status != 200 || reqs[1].Answer != "ok" {
		t.Errorf("Slack saw %+v, want 429 then 200 ok", reqs)
	}
	if n := len(f.slack.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// A Retry-After longer than the sender waits inline, or 5xx answers on
// every attempt, leave the channel to Pub/Sub's redelivery: a retryable
// error, the claim released, and the redelivery sends.
func TestSlackUnavailableIsRetriedByRedelivery(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	f.slack.FailNext(localslack.ServerError(), localslack.ServerError(), localslack.ServerError())
	err := f.handle(ce)
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "rollup_error") {
		t.Fatalf("Slack down: err = %v, want a retryable error naming Slack's answer", err)
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Fatalf("e-mail not sent while Slack was down (%d)", n)
	}
	f.slack.FailNext(localslack.RateLimited(time.Minute))
	if err := f.handle(ce); err == nil || failure.IsPermanent(err) {
		t.Fatalf("Slack asking to wait a minute: err = %v, want a retryable error", err)
	}
	f.mustHandle(ce)
	if n, m := len(f.slack.Messages()), len(f.smtp.Messages()); n != 1 || m != 1 {
		t.Errorf("%d Slack messages and %d e-mails after recovery, want 1 and 1 (e-mail not resent)", n, m)
	}
}

// Slack's 4xx answers are permanent: the channel is recorded failed with
// Slack's reason, the delivery is acknowledged (nil), the other channel
// still sends, and a redelivery does not post again.
func TestSlackInvalidPayloadIsPermanent(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	f.slack.FailNext(localslack.InvalidPayload())
	f.mustHandle(ce)
	f.mustHandle(ce)
	if reqs := f.slack.Requests(); len(reqs) != 1 || reqs[0].Answer != "invalid_payload" {
		t.Errorf("Slack saw %+v, want one invalid_payload and no retry", reqs)
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Errorf("%d e-mails, want 1", n)
	}
	rec := f.record(notify.FailureKey("Ifaces", 1, lessonstate.StageEnrich))
	slack := rec.Channels[notify.ChannelSlack]
	if rec.State != notify.StateSent || slack.State != notify.StateFailed || !strings.Contains(slack.Error, "400 invalid_payload") {
		t.Errorf("record %+v", rec)
	}
	if lines := f.logs.lines(t, "refused the notification for good"); len(lines) != 1 || lines[0]["severity"] != "ERROR" {
		t.Errorf("permanent refusal logged as %v", lines)
	}
}

// When every channel refuses for good the record says failed, and nothing
// is tried again.
func TestEveryChannelRefusingEndsFailed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	f.slack.FailNext(localslack.ChannelNotFound())
	f.smtp.FailNext(1, localsmtp.PermFailure())
	f.mustHandle(ce)
	f.mustHandle(ce)
	rec := f.record(notify.FailureKey("Ifaces", 1, lessonstate.StageEnrich))
	if rec.State != notify.StateFailed || !strings.Contains(rec.Channels[notify.ChannelEmail].Error, "550") {
		t.Errorf("record %+v", rec)
	}
	if len(f.slack.Requests()) != 1 || f.smtp.Refused() != 1 || len(f.smtp.Messages()) != 0 {
		t.Errorf("tried again after permanent refusals: slack %d requests, smtp %d refused", len(f.slack.Requests()), f.smtp.Refused())
	}
}

// An SMTP 451 is temporary: the delivery asks to be redelivered, and the
// redelivery sends the e-mail — without posting to Slack a second time.
func TestSMTPTemporaryFailureIsRetried(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ce := f.failedLesson("Ifaces")
	f.smtp.FailNext(1, localsmtp.TempFailure())
	err := f.handle(ce)
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "451") {
		t.Fatalf("451: err = %v, want a retryable error naming it", err)
	}
	if rec := f.record(notify.FailureKey("Ifaces", 1, lessonstate.StageEnrich)); rec.State != notify.StateClaimed || rec.Token != "" || !strings.Contains(rec.LastError, "451") {
		t.Errorf("after a 451 the record is %+v, want claimed, released, with the reason", rec)
	}
	f.mustHandle(ce)
	if n, m := len(f.slack.Messages()), len(f.smtp.Messages()); n != 1 || m != 1 {
		t.Fatalf("%d Slack messages and %d e-mails, want 1 and 1", n, m)
	}
	if f.smtp.Refused() != 1 {
		t.Errorf("%d refused, want 1", f.smtp.Refused())
	}
}

// Submission with STARTTLS and AUTH PLAIN: the client upgrades when the
// server offers it, authenticates, and a wrong password is permanent.
func TestSMTPStartTLSAndAuth(t *testing.T) {
	serverTLS, roots, err := localsmtp.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, password string
		wantSent       bool
	}{{"right password", "s3cret", true}, {"wrong password", "guess", false}} {
		t.Run(c.name, func(t *testing.T) {
			var srv *localsmtp.Server
			f := newFixture(t, fixtureOpts{senders: func(f *fixture, _, _ string) []notify.Sender {
				srv = localsmtp.New(localsmtp.Options{TLS: serverTLS, Users: map[string]string{"notifier": "s3cret"}})
				addr, stop, err := srv.Listen("")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { stop() })
				return []notify.Sender{f.smtpSender(addr, func(o *notify.SMTPOptions) {
					o.User, o.Password = "notifier", c.password
					o.TLSConfig = &tls.Config{RootCAs: roots, ServerName: o.Host, MinVersion: tls.VersionTLS12}
				})}
			}})
			f.mustHandle(f.failedLesson("Ifaces"))
			msgs := srv.Messages()
			if !c.wantSent {
				rec := f.record(notify.FailureKey("Ifaces", 1, lessonstate.StageEnrich))
				if len(msgs) != 0 || rec.State != notify.StateFailed || !strings.Contains(rec.Channels[notify.ChannelEmail].Error, "535") {
					t.Errorf("wrong password: %d messages, record %+v", len(msgs), rec)
				}
				return
			}
			if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != "notifier" {
				t.Fatalf("messages %+v, want one over TLS from user notifier", msgs)
			}
		})
	}
}

// With neither Slack nor SMTP configured, the notifier logs at INFO exactly
// what it would have sent — the Slack payload and the e-mail — once.
func TestNothingConfiguredLogsWhatWouldBeSent(t *testing.T) {
	var senders []notify.Sender
	f := newFixture(t, fixtureOpts{senders: func(f *fixture, _, _ string) []notify.Sender {
		var err error
		senders, err = notify.SendersFromConfig(config.Notifier{
			Common: config.Common{ProjectID: "p"}, SMTPPort: 587, Lease: time.Minute, SendTimeout: 10 * time.Second,
			RunWait: time.Minute, MaxListed: 5,
		}, logging.New(f.logs, "info", "p"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return senders
	}})
	if len(senders) != 1 || senders[0].Channel() != notify.ChannelLog {
		t.Fatalf("senders %v, want the log sender alone", senders)
	}
	ce := f.failedLesson("Ifaces")
	f.mustHandle(ce)
	f.mustHandle(ce)
	lines := f.logs.lines(t, "logged instead of sent")
	if len(lines) != 1 {
		t.Fatalf("%d notification log lines, want 1", len(lines))
	}
	l := lines[0]
	if l["severity"] != "INFO" || l[logging.KeyLessonID] != "Ifaces" || l["kind"] != notify.KindFailure {
		t.Errorf("log line %v", l)
	}
	slack, _ := l["slack"].(map[string]any)
	blocks, _ := slack["blocks"].([]any)
	email, _ := l["email"].(map[string]any)
	if len(blocks) == 0 || !strings.Contains(slack["text"].(string), "Lesson failed at enrich: Interfaces") {
		t.Errorf("logged Slack payload %v", slack)
	}
	if email["subject"] != "Lesson failed at enrich: Interfaces" || !strings.Contains(email["text"].(string), "Reason: gemini refused the schema") {
		t.Errorf("logged e-mail %v", email)
	}
	if len(f.slack.Requests()) != 0 || len(f.smtp.Messages()) != 0 {
		t.Error("something was sent with no channel configured")
	}
}

// A notifier's constructor names what is missing.
func TestNewRefusesMissingDependencies(t *testing.T) {
	_, err := notify.New(notify.Deps{})
	if err == nil {
		t.Fatal("New with nothing succeeded")
	}
	for _, want := range []string{"store is nil", "records is nil", "senders is nil", "logger is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
