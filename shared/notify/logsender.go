package notify

import (
	"context"
	"errors"
	"log/slog"
	"net/mail"
	"time"

	"github.com/coursekb/pipeline/shared/logging"
)

// LogSender stands in when neither Slack nor SMTP is configured: it logs,
// at INFO, exactly what each would have sent — the Slack payload and the
// e-mail's subject and text — so a deployment without channels still shows
// its notifications in Cloud Logging.
type LogSender struct {
	log *slog.Logger
	now func() time.Time
}

// NewLog returns a sender writing to log.
func NewLog(log *slog.Logger) (*LogSender, error) {
	if log == nil {
		return nil, errors.New("notify log sender: logger is nil")
	}
	return &LogSender{log: log, now: time.Now}, nil
}

// Channel is ChannelLog.
func (s *LogSender) Channel() string { return ChannelLog }

// logAddress stands for the absent sender and recipient in the logged
// e-mail.
var logAddress = &mail.Address{Name: "coursekb notifier", Address: "notifier@coursekb.invalid"}

// Send logs m.
func (s *LogSender) Send(ctx context.Context, m Message) error {
	e, err := EmailMessage(m, logAddress, []*mail.Address{logAddress}, s.now())
	if err != nil {
		return err
	}
	attrs := []any{
		"notification", m.Key, "kind", m.Kind,
		"slack", SlackMessage(m),
		"email", map[string]string{"subject": e.Subject, "messageId": e.MessageID, "text": e.Text},
	}
	if m.LessonID != "" {
		attrs = append(attrs, logging.KeyLessonID, m.LessonID)
	}
	if m.RunID != "" {
		attrs = append(attrs, "runId", m.RunID)
	}
	s.log.InfoContext(ctx, "notification (no Slack webhook or SMTP server configured: logged instead of sent)", attrs...)
	return nil
}
