package notify_test

import (
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/notify"
)

// The notifier's variables load through config.Load like every function's,
// with defaults for everything but the project.
func TestNotifierConfigDefaults(t *testing.T) {
	var cfg config.Notifier
	err := config.LoadFrom(&cfg, map[string]string{
		"GOOGLE_CLOUD_PROJECT": "p", "SMTP_HOST": "smtp.example", "MAIL_FROM": "kb@example.com",
		"MAIL_TO": "a@example.com, b@example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPPort != 587 || cfg.Lease != 2*time.Minute || cfg.RunWait != 15*time.Minute || cfg.MaxListed != 15 ||
		cfg.ClubLessonURL != notify.DefaultClubLessonURL || len(cfg.MailTo) != 2 {
		t.Errorf("defaults: %+v", cfg)
	}
	senders, err := notify.SendersFromConfig(cfg, logging.New(&logBuffer{}, "info", "p"), nil)
	if err != nil || len(senders) != 1 || senders[0].Channel() != notify.ChannelEmail {
		t.Errorf("senders %v, %v; want e-mail alone", senders, err)
	}
}

// Every problem of a notifier's configuration is named in one error, and
// the secrets in it are never repeated.
func TestSendersFromConfigNamesEveryProblem(t *testing.T) {
	const secret = "XXXXsecretXXXX"
	cfg := config.Notifier{
		Common:          config.Common{ProjectID: "p"},
		SlackWebhookURL: "http://hooks.slack.com/services/T/B/" + secret,
		SMTPPort:        587, MailTo: []string{"ops@example.com"}, SMTPPassword: secret,
		ClubLessonURL: "https://{subdomain}.club.hotmart.com/lesson/",
		Lease:         time.Minute, SendTimeout: time.Minute, RunWait: time.Minute, MaxListed: 5,
	}
	_, err := notify.SendersFromConfig(cfg, logging.New(&logBuffer{}, "info", "p"), nil)
	if err == nil {
		t.Fatal("accepted a broken configuration")
	}
	for _, want := range []string{
		"SLACK_WEBHOOK_URL must be https",
		"MAIL_TO is set but SMTP_HOST is not",
		"SMTP_PASSWORD is set but SMTP_HOST is not",
		"HOTMART_CLUB_LESSON_URL has no {lessonId}",
		"NOTIFY_LEASE (1m0s) must exceed twice NOTIFY_SEND_TIMEOUT (1m0s)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error repeats a secret: %v", err)
	}

	cfg = config.Notifier{Common: config.Common{ProjectID: "p"}, SMTPHost: "smtp.example", SMTPPort: 587,
		MailFrom: "not an address", MailTo: []string{"ops@example.com", "nope"}, SMTPUser: "u",
		Lease: time.Minute, SendTimeout: time.Second, RunWait: time.Minute, MaxListed: 5}
	_, err = notify.SendersFromConfig(cfg, logging.New(&logBuffer{}, "info", "p"), nil)
	for _, want := range []string{`from address "not an address"`, `recipient "nope" is not an address`, "user and password go together"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// Every attempt of one notification carries the same Message-ID, whenever
// it is made; another notification has another.
func TestMessageIDIsDeterministic(t *testing.T) {
	from := &mail.Address{Address: "kb@school.example"}
	to := []*mail.Address{{Address: "ops@school.example"}}
	m := notify.Message{Key: notify.DigestKey("run-1"), Kind: notify.KindDigest, Title: "Résumé de l'exécution"}
	a, err := notify.EmailMessage(m, from, to, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := notify.EmailMessage(m, from, to, t0.Add(time.Hour))
	m.Key = notify.DigestKey("run-2")
	c, _ := notify.EmailMessage(m, from, to, t0)
	if a.MessageID != b.MessageID || a.MessageID == c.MessageID || !strings.HasSuffix(a.MessageID, "@school.example>") {
		t.Errorf("Message-IDs %s %s %s", a.MessageID, b.MessageID, c.MessageID)
	}
	if !strings.Contains(string(a.Raw), "Subject: =?utf-8?q?R=C3=A9sum=C3=A9_de_l'ex=C3=A9cution?=\r\n") {
		t.Errorf("subject not encoded as UTF-8:\n%s", a.Raw)
	}
}
