// Package smtp is a local SMTP receiver for the one-machine stack and the
// tests: it accepts mail as a submission server does (optionally STARTTLS
// and AUTH PLAIN), keeps every message it accepted, parsed (envelope,
// headers, text and HTML bodies), and can be told to answer the next
// messages with a temporary failure (451) or a permanent one (550).
//
// The protocol is github.com/emersion/go-smtp's server: a maintained,
// widely used implementation of RFC 5321 with ESMTP extensions, STARTTLS
// and SASL, so the notifier's client is tested against a real protocol
// implementation, not one written to agree with it.
package smtp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// Options configure a Server.
type Options struct {
	// Domain is the name the server greets with (default "localhost").
	Domain string
	// Users, when set, are the only user/password pairs AUTH PLAIN
	// accepts, and mail is refused until a client authenticates.
	Users map[string]string
	// TLS, when set, offers STARTTLS with this configuration
	// (SelfSigned makes one).
	TLS *tls.Config
	// Refuse, when set, is asked for every message whose data arrives
	// (after any FailNext): a non-nil answer refuses the message with it,
	// as a busy server answers 451 (local/chaos refuses a share of them).
	Refuse func() *gosmtp.SMTPError
}

// Message is a message the server accepted.
type Message struct {
	From     string
	To       []string
	AuthUser string
	TLS      bool
	Header   mail.Header
	// Subject is the decoded subject.
	Subject string
	// Text and HTML are the decoded bodies of a text/plain or
	// multipart/alternative message.
	Text, HTML string
	Raw        []byte
	Received   time.Time
}

// Server is the local SMTP receiver. It is safe for concurrent use.
type Server struct {
	opts Options

	mu       sync.Mutex
	messages []Message
	faults   []*gosmtp.SMTPError
	refused  int
}

// New returns a server with opts.
func New(opts Options) *Server {
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	return &Server{opts: opts}
}

// TempFailure is 451, a local error in processing: the client must try
// again later.
func TempFailure() *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Requested action aborted: local error in processing"}
}

// PermFailure is 550, the mailbox refused: the client must not try again.
func PermFailure() *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "Mailbox unavailable"}
}

// FailNext makes the next n messages end with err (TempFailure,
// PermFailure) when their data is sent, instead of being accepted.
func (s *Server) FailNext(n int, err *gosmtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, err)
	}
}

// Messages returns the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Refused counts the messages answered with an injected failure.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Listen serves on addr (default "127.0.0.1:0") and returns the address
// clients connect to (host:port). stop closes the server.
func (s *Server) Listen(addr string) (hostport string, stop func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local smtp: listen on %s: %w", addr, err)
	}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = s.opts.Domain
	srv.TLSConfig = s.opts.TLS
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	// A loopback receiver may take a password in clear; the client decides
	// whether it sends one (net/smtp does only to localhost).
	srv.AllowInsecureAuth = true
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), srv.Close, nil
}

// session is one SMTP connection's transaction.
type session struct {
	s        *Server
	conn     *gosmtp.Conn
	authUser string
	from     string
	to       []string
}

var _ gosmtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if len(ss.s.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || len(ss.s.opts.Users) == 0 {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if want, ok := ss.s.opts.Users[user]; !ok || want != pass {
			return gosmtp.ErrAuthFailed
		}
		ss.authUser = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if len(ss.s.opts.Users) > 0 && ss.authUser == "" {
		return gosmtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		s.refused++
		return f
	}
	if s.opts.Refuse != nil {
		if f := s.opts.Refuse(); f != nil {
			s.refused++
			return f
		}
	}
	m, err := parse(raw)
	if err != nil {
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Message not readable: " + err.Error()}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	m.From, m.To, m.AuthUser, m.TLS, m.Received = ss.from, slices.Clone(ss.to), ss.authUser, isTLS, time.Now()
	s.messages = append(s.messages, m)
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// parse reads a message's headers and its text and HTML bodies.
func parse(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, err
	}
	m := Message{Header: msg.Header, Raw: raw}
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Message{}, fmt.Errorf("subject: %w", err)
	}
	mt, params, err := mime.ParseMediaType(cmpOr(msg.Header.Get("Content-Type"), "text/plain"))
	if err != nil {
		return Message{}, fmt.Errorf("content type: %w", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decodeBody(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return Message{}, err
		}
		if mt == "text/html" {
			m.HTML = body
		} else {
			m.Text = body
		}
		return m, nil
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		// NextPart decodes quoted-printable parts itself.
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return Message{}, fmt.Errorf("multipart: %w", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return Message{}, fmt.Errorf("part: %w", err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			m.Text = string(b)
		case "text/html":
			m.HTML = string(b)
		}
	}
}

func decodeBody(r io.Reader, encoding string) (string, error) {
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// SelfSigned makes a certificate for 127.0.0.1 and localhost: the server's
// TLS configuration, and the pool a client trusts it with.
func SelfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "local smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, pool, nil
}
