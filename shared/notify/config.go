package notify

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coursekb/pipeline/shared/config"
)

// SendersFromConfig builds the channels cfg configures — Slack, e-mail, or
// the log sender when it configures neither — and names every problem with
// cfg in one error. Secret values never appear in it.
func SendersFromConfig(cfg config.Notifier, log *slog.Logger, client *http.Client) ([]Sender, error) {
	var problems []string
	var senders []Sender
	if cfg.SlackWebhookURL != "" {
		if p := checkWebhook(cfg.SlackWebhookURL); p != "" {
			problems = append(problems, p)
		} else if s, err := NewSlack(cfg.SlackWebhookURL, client); err != nil {
			problems = append(problems, "SLACK_WEBHOOK_URL: "+err.Error())
		} else {
			senders = append(senders, s)
		}
	}
	if cfg.SMTPHost != "" {
		s, err := NewSMTP(SMTPOptions{
			Host: cfg.SMTPHost, Port: cfg.SMTPPort, User: cfg.SMTPUser, Password: cfg.SMTPPassword,
			From: cfg.MailFrom, To: cfg.MailTo,
		})
		if err != nil {
			problems = append(problems, "SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, MAIL_FROM, MAIL_TO: "+err.Error())
		} else {
			senders = append(senders, s)
		}
	} else {
		// Half an e-mail configuration is a mistake worth naming: silence
		// would look like a quiet pipeline.
		for name, set := range map[string]bool{
			"MAIL_FROM": cfg.MailFrom != "", "MAIL_TO": len(cfg.MailTo) > 0,
			"SMTP_USER": cfg.SMTPUser != "", "SMTP_PASSWORD": cfg.SMTPPassword != "",
		} {
			if set {
				problems = append(problems, name+" is set but SMTP_HOST is not")
			}
		}
	}
	problems = append(problems, LinksFromConfig(cfg).check()...)
	switch {
	case cfg.Lease <= 0:
		problems = append(problems, "NOTIFY_LEASE must be positive")
	case cfg.SendTimeout <= 0:
		problems = append(problems, "NOTIFY_SEND_TIMEOUT must be positive")
	case cfg.Lease <= 2*cfg.SendTimeout:
		// A lease that ends while its owner still sends lets a second
		// delivery send the same notification.
		problems = append(problems, fmt.Sprintf("NOTIFY_LEASE (%s) must exceed twice NOTIFY_SEND_TIMEOUT (%s)", cfg.Lease, cfg.SendTimeout))
	}
	if cfg.RunWait <= 0 {
		problems = append(problems, "NOTIFY_RUN_WAIT must be positive")
	}
	if cfg.MaxListed <= 0 {
		problems = append(problems, "NOTIFY_MAX_LISTED must be positive")
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("notifier configuration: %d problem(s): %s", len(problems), strings.Join(problems, "; "))
	}
	if len(senders) == 0 {
		s, err := NewLog(log)
		if err != nil {
			return nil, err
		}
		senders = append(senders, s)
	}
	return senders, nil
}

// checkWebhook names what is wrong with a webhook URL without repeating
// it: https, or http to this machine (the local Slack).
func checkWebhook(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "SLACK_WEBHOOK_URL is not a URL"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			return ""
		}
	}
	return "SLACK_WEBHOOK_URL must be https (http only to this machine)"
}

// LinksFromConfig returns the link templates cfg sets.
func LinksFromConfig(cfg config.Notifier) Links {
	return Links{ClubLessonURL: cfg.ClubLessonURL, ConsoleURL: cfg.ConsoleURL, ProjectID: cfg.ProjectID}
}

// DepsFromConfig fills the tunables of Deps from cfg.
func DepsFromConfig(cfg config.Notifier, d Deps) Deps {
	d.Links = LinksFromConfig(cfg)
	d.Lease, d.SendTimeout, d.RunWait, d.MaxListed = cfg.Lease, cfg.SendTimeout, cfg.RunWait, cfg.MaxListed
	return d
}
