package smtp

import (
	"crypto/tls"
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
)

const plainMessage = "From: a@example.com\r\nTo: b@example.com\r\nSubject: =?utf-8?q?Ol=C3=A1?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 is ready.\r\n"

// The receiver keeps each accepted message parsed: envelope, decoded
// subject, decoded body.
func TestReceivesAndParses(t *testing.T) {
	s := New(Options{})
	addr, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := smtp.SendMail(addr, nil, "a@example.com", []string{"b@example.com", "c@example.com"}, []byte(plainMessage)); err != nil {
		t.Fatalf("send: %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.com" || strings.Join(m.To, ",") != "b@example.com,c@example.com" || m.Subject != "Olá" || m.Text != "Café is ready.\r\n" || m.TLS {
		t.Errorf("message %+v", m)
	}
}

// Injected failures answer the next messages' data with the code given;
// then mail is accepted again.
func TestFailNext(t *testing.T) {
	s := New(Options{})
	addr, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	s.FailNext(2, TempFailure())
	for i, want := range []int{451, 451, 0} {
		err := smtp.SendMail(addr, nil, "a@example.com", []string{"b@example.com"}, []byte(plainMessage))
		var te *textproto.Error
		switch {
		case want == 0 && err != nil:
			t.Errorf("message %d: %v", i, err)
		case want != 0 && (!errors.As(err, &te) || te.Code != want):
			t.Errorf("message %d: %v, want %d", i, err, want)
		}
	}
	if len(s.Messages()) != 1 || s.Refused() != 2 {
		t.Errorf("%d kept, %d refused", len(s.Messages()), s.Refused())
	}
}

// With users, mail needs AUTH PLAIN, offered after STARTTLS.
func TestStartTLSAndAuth(t *testing.T) {
	serverTLS, roots, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{TLS: serverTLS, Users: map[string]string{"u": "p"}})
	addr, stop, err := s.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	send := func(auth smtp.Auth, useTLS bool) error {
		c, err := smtp.Dial(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if useTLS {
			if err := c.StartTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err != nil {
				return err
			}
		}
		if auth != nil {
			if err := c.Auth(auth); err != nil {
				return err
			}
		}
		if err := c.Mail("a@example.com"); err != nil {
			return err
		}
		if err := c.Rcpt("b@example.com"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		w.Write([]byte(plainMessage))
		return w.Close()
	}
	if err := send(nil, true); err == nil {
		t.Error("mail accepted without AUTH")
	}
	if err := send(smtp.PlainAuth("", "u", "wrong", "127.0.0.1"), true); err == nil {
		t.Error("wrong password accepted")
	}
	if err := send(smtp.PlainAuth("", "u", "p", "127.0.0.1"), true); err != nil {
		t.Fatalf("authenticated send: %v", err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != "u" {
		t.Errorf("messages %+v", msgs)
	}
}
