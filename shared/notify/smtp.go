package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
)

// SMTPOptions configure an SMTPSender.
type SMTPOptions struct {
	Host string
	// Port 465 speaks TLS from the first byte (RFC 8314); any other port
	// starts in clear and upgrades with STARTTLS when the server offers it.
	Port           int
	User, Password string
	From           string
	To             []string
	// TLSConfig verifies the server (nil: the system's roots, ServerName
	// Host); tests pass their own roots.
	TLSConfig *tls.Config
	// Now dates the messages (nil: time.Now).
	Now func() time.Time
}

// SMTPSender sends e-mail through an SMTP server (submission), with
// STARTTLS when offered and AUTH PLAIN when credentials are set.
type SMTPSender struct {
	o    SMTPOptions
	from *mail.Address
	to   []*mail.Address
}

// NewSMTP checks o and returns a sender, naming every problem at once.
func NewSMTP(o SMTPOptions) (*SMTPSender, error) {
	var problems []error
	if o.Host == "" {
		problems = append(problems, errors.New("host is empty"))
	}
	if o.Port <= 0 || o.Port > 65535 {
		problems = append(problems, fmt.Errorf("port %d is not 1..65535", o.Port))
	}
	if (o.User == "") != (o.Password == "") {
		problems = append(problems, errors.New("user and password go together"))
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		problems = append(problems, fmt.Errorf("from address %q: %w", o.From, err))
	}
	to, bad := parseAddresses(o.To)
	for _, b := range bad {
		problems = append(problems, fmt.Errorf("recipient %s is not an address", b))
	}
	if len(to) == 0 && len(bad) == 0 {
		problems = append(problems, errors.New("no recipient"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{ServerName: o.Host, MinVersion: tls.VersionTLS12}
	}
	return &SMTPSender{o: o, from: from, to: to}, nil
}

// Channel is ChannelEmail.
func (s *SMTPSender) Channel() string { return ChannelEmail }

// Send renders m and sends it in one SMTP session. A 4xx reply
// (greylisting, a full queue, 451 local error) or a broken connection is
// retryable; a 5xx reply (bad recipient, refused sender, failed
// authentication) or a certificate that does not verify is permanent. A
// recipient refused for good is skipped when another one is accepted.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	e, err := EmailMessage(m, s.from, s.to, s.o.Now())
	if err != nil {
		return failure.Permanentf("smtp: %w", err)
	}
	if err := s.send(ctx, e); err != nil {
		return classifySMTP(err)
	}
	return nil
}

func (s *SMTPSender) send(ctx context.Context, e Email) error {
	addr := net.JoinHostPort(s.o.Host, strconv.Itoa(s.o.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	// net/smtp has no context: the connection's deadline stands for it,
	// and closing the connection when ctx ends unblocks any read.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	tlsOn := false
	if s.o.Port == 465 {
		tc := tls.Client(conn, s.o.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls with %s: %w", addr, err)
		}
		conn, tlsOn = tc, true
	}
	c, err := smtp.NewClient(conn, s.o.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting from %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello(helloName(s.from)); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && !tlsOn {
		if err := c.StartTLS(s.o.TLSConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.o.User != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return failure.Permanentf("credentials are set but %s offers no AUTH", addr)
		}
		// PlainAuth refuses to send the password over a connection that
		// is not encrypted, unless the server is on this machine.
		if err := c.Auth(smtp.PlainAuth("", s.o.User, s.o.Password, s.o.Host)); err != nil {
			return fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	accepted := 0
	var refused error
	for _, to := range e.To {
		err := c.Rcpt(to)
		var te *textproto.Error
		switch {
		case err == nil:
			accepted++
		case errors.As(err, &te) && te.Code >= 500:
			refused = errors.Join(refused, fmt.Errorf("RCPT TO %s: %w", to, err))
		default:
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	if accepted == 0 {
		return refused
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(e.Raw); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of message: %w", err)
	}
	// The message is accepted once DATA's reply is 250; a failed QUIT
	// changes nothing.
	_ = c.Quit()
	return nil
}

// classifySMTP marks an SMTP failure permanent or retryable.
func classifySMTP(err error) error {
	var te *textproto.Error
	var cert *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case failure.IsPermanent(err):
		return err
	case errors.As(err, &te) && te.Code >= 500:
		return failure.Permanentf("smtp: %w", err)
	case errors.As(err, &te):
		return failure.Retryablef("smtp: %w", err)
	case errors.As(err, &cert), errors.As(err, &unknownAuth), errors.As(err, &hostname):
		return failure.Permanentf("smtp: %w", err)
	case err.Error() == "unencrypted connection":
		// net/smtp's PlainAuth refusing to send a password in clear.
		return failure.Permanentf("smtp: the server offers no TLS and credentials must not travel in clear: %w", err)
	}
	return failure.Retryablef("smtp: %w", err)
}

// helloName is the name the client gives in EHLO: the sender's domain.
func helloName(from *mail.Address) string {
	for i := len(from.Address) - 1; i >= 0; i-- {
		if from.Address[i] == '@' {
			return from.Address[i+1:]
		}
	}
	return "localhost"
}
