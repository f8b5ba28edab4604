package notify

import (
	"bytes"
	"fmt"
	"html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Email is a rendered e-mail: its envelope and the message as sent
// (RFC 5322, multipart/alternative with a text and an HTML part).
type Email struct {
	From string
	To   []string
	// MessageID is derived from the notification key, so every attempt of
	// one notification carries the same one.
	MessageID string
	Subject   string
	Text      string
	Raw       []byte
}

// EmailMessage renders m as an e-mail from from to to, dated now.
func EmailMessage(m Message, from *mail.Address, to []*mail.Address, now time.Time) (Email, error) {
	e := Email{From: from.Address, Subject: m.Title, Text: emailText(m)}
	for _, a := range to {
		e.To = append(e.To, a.Address)
	}
	domain := "coursekb.invalid"
	if _, d, ok := strings.Cut(from.Address, "@"); ok && d != "" {
		domain = d
	}
	e.MessageID = "<notify." + keyHash(m.Key) + "@" + domain + ">"
	htmlBody, err := emailHTML(m)
	if err != nil {
		return Email{}, err
	}

	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from.String())
	tos := make([]string, len(to))
	for i, a := range to {
		tos[i] = a.String()
	}
	h("To", strings.Join(tos, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", m.Title))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", e.MessageID)
	h("MIME-Version", "1.0")
	// RFC 3834: machines should not answer it (no vacation replies).
	h("Auto-Submitted", "auto-generated")
	h("X-Coursekb-Notification", m.Kind)
	mw := multipart.NewWriter(&b)
	// A boundary from the key keeps the rendering reproducible.
	if err := mw.SetBoundary("coursekb-" + keyHash(m.Key)); err != nil {
		return Email{}, fmt.Errorf("e-mail boundary: %w", err)
	}
	h("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", e.Text}, {"text/html", htmlBody}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return Email{}, fmt.Errorf("e-mail part: %w", err)
		}
		qw := quotedprintable.NewWriter(pw)
		if _, err := qw.Write([]byte(crlf(part.body))); err != nil {
			return Email{}, fmt.Errorf("e-mail part: %w", err)
		}
		if err := qw.Close(); err != nil {
			return Email{}, fmt.Errorf("e-mail part: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return Email{}, fmt.Errorf("e-mail: %w", err)
	}
	e.Raw = b.Bytes()
	return e, nil
}

// crlf makes every line end in CRLF, as SMTP wants.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// emailText is the plain-text part.
func emailText(m Message) string {
	var b strings.Builder
	b.WriteString(m.Summary + "\n\n")
	for _, f := range m.Fields {
		fmt.Fprintf(&b, "%s: %s", f.Label, f.Value)
		if f.URL != "" {
			fmt.Fprintf(&b, " <%s>", f.URL)
		}
		b.WriteString("\n")
	}
	if m.Body != "" {
		b.WriteString("\n" + m.Body + "\n")
	}
	for _, s := range m.Sections {
		b.WriteString("\n" + s.Title + "\n")
		for _, it := range s.Items {
			b.WriteString("  - " + it.Text)
			if it.Detail != "" {
				b.WriteString(" — " + it.Detail)
			}
			b.WriteString("\n")
			if it.URL != "" {
				b.WriteString("    " + it.URL + "\n")
			}
			for _, l := range it.Links {
				fmt.Fprintf(&b, "    %s: %s\n", l.Text, l.URL)
			}
		}
		if s.More > 0 {
			fmt.Fprintf(&b, "  …and %d more\n", s.More)
		}
	}
	if len(m.Links) > 0 {
		b.WriteString("\n")
		for _, l := range m.Links {
			fmt.Fprintf(&b, "%s: %s\n", l.Text, l.URL)
		}
	}
	if m.Footer != "" {
		b.WriteString("\n-- \n" + m.Footer + "\n")
	}
	return b.String()
}

var htmlTmpl = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><body style="font-family:sans-serif">
<h2>{{.Title}}</h2>
<p>{{.Summary}}</p>
{{- if .Fields}}
<table>{{range .Fields}}<tr><th align="left">{{.Label}}</th><td>{{if .URL}}<a href="{{.URL}}">{{.Value}}</a>{{else}}{{.Value}}{{end}}</td></tr>{{end}}</table>
{{- end}}
{{- if .Body}}
<pre>{{.Body}}</pre>
{{- end}}
{{- range .Sections}}
<h3>{{.Title}}</h3>
<ul>{{range .Items}}<li>{{if .URL}}<a href="{{.URL}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{if .Detail}} — {{.Detail}}{{end}}{{range .Links}} · <a href="{{.URL}}">{{.Text}}</a>{{end}}</li>{{end}}{{if .More}}<li><em>…and {{.More}} more</em></li>{{end}}</ul>
{{- end}}
{{- if .Links}}
<p>{{range $i, $l := .Links}}{{if $i}} · {{end}}<a href="{{$l.URL}}">{{$l.Text}}</a>{{end}}</p>
{{- end}}
{{- if .Footer}}
<p style="color:#666;font-size:small">{{.Footer}}</p>
{{- end}}
</body></html>
`))

// emailHTML is the HTML part; html/template escapes every value.
func emailHTML(m Message) (string, error) {
	var b strings.Builder
	if err := htmlTmpl.Execute(&b, m); err != nil {
		return "", fmt.Errorf("e-mail html: %w", err)
	}
	return b.String(), nil
}

// parseAddresses parses a list of addresses, naming each bad one.
func parseAddresses(list []string) ([]*mail.Address, []string) {
	var out []*mail.Address
	var bad []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := mail.ParseAddress(s)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", s))
			continue
		}
		out = append(out, a)
	}
	return out, bad
}
