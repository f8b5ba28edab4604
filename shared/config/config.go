// Package config loads each function's configuration from environment
// variables into a typed struct, and reports every missing or malformed
// variable in one error, so a deployment is fixed in one pass rather than one
// variable per crash. Secrets (Hotmart credentials) arrive as environment
// variables too: in production Cloud Functions fills them from Secret Manager
// (terraform/secrets.tf).
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Common is what every function reads.
type Common struct {
	ProjectID string `env:"GOOGLE_CLOUD_PROJECT,required"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	// TraceExporter is "cloudtrace" in production, "none" on one machine.
	TraceExporter    string  `env:"TRACE_EXPORTER" envDefault:"none"`
	TraceSampleRatio float64 `env:"TRACE_SAMPLE_RATIO" envDefault:"1"`
	// MaxAttempts is how many times a stage is tried for one lesson version
	// before it fails for good. Pub/Sub's maximum delivery attempts sit
	// well above it (terraform: max_delivery_attempts), so a stage fails
	// with its reason before a message is ever dead-lettered.
	MaxAttempts int `env:"MAX_ATTEMPTS" envDefault:"5"`
	// PendingAfter is how long a step may wait pending, its event sent and
	// nobody working on it, before the sweeper sends it again. It exceeds
	// the longest push ack deadline (600 s): a delivery hanging on an
	// instance that died is Pub/Sub's to send again first.
	PendingAfter time.Duration `env:"PENDING_AFTER" envDefault:"15m"`
	// RetryBackoff is the wait after a stage's first failure that may pass
	// (a 429, a 5xx, a cut transfer) before its next attempt, doubling with
	// each attempt up to 10 minutes; the sweeper sends the event again when
	// it is over. It keeps a short outage from using up every attempt
	// within seconds. 0: retry at once.
	RetryBackoff time.Duration `env:"STAGE_RETRY_BACKOFF" envDefault:"15s"`
	// OutcomeTimeout bounds the final write of a stage's outcome, which is
	// made on a context detached from the request's: a request cancelled by
	// its deadline still records how it ended.
	OutcomeTimeout time.Duration `env:"OUTCOME_TIMEOUT" envDefault:"20s"`
}

// Hotmart is the Hotmart API endpoint and credentials.
type Hotmart struct {
	BaseURL      string `env:"HOTMART_BASE_URL" envDefault:"https://developers.hotmart.com"`
	TokenURL     string `env:"HOTMART_TOKEN_URL" envDefault:"https://api-sec-vlc.hotmart.com/security/oauth/token"`
	ClientID     string `env:"HOTMART_CLIENT_ID,required"`
	ClientSecret string `env:"HOTMART_CLIENT_SECRET,required"`
	BasicToken   string `env:"HOTMART_BASIC_TOKEN,required"`
	// RequestsPerMinute stays under Hotmart's 500 per application, leaving
	// room for other tools of the producer sharing the credentials.
	RequestsPerMinute int `env:"HOTMART_REQUESTS_PER_MINUTE" envDefault:"450"`
}

// Detector configures the detector function.
type Detector struct {
	Common
	Hotmart
	// CourseCatalog maps Hotmart product ids to their Club subdomain and
	// school: JSON {"4100001":{"subdomain":"..","school":".."}}.
	CourseCatalog     string        `env:"COURSE_CATALOG,required"`
	RawBucket         string        `env:"RAW_BUCKET,required"`
	MediaManifestURI  string        `env:"MEDIA_MANIFEST_URI"`
	MediaIngestPrefix string        `env:"MEDIA_INGEST_PREFIX" envDefault:"ingest"`
	Budget            time.Duration `env:"DETECTION_BUDGET" envDefault:"8m"`
	// LessonPageTypes are the Hotmart page types that become lessons,
	// comma-separated; pages of other types (ADVERTISEMENT, QUIZ, ...) are
	// counted and reported, never recorded.
	LessonPageTypes []string `env:"LESSON_PAGE_TYPES" envSeparator:"," envDefault:"CONTENT,WEBINAR"`
}

// Downloader configures the downloader function.
type Downloader struct {
	Common
	RawBucket string `env:"RAW_BUCKET,required"`
	// MaxMediaBytes refuses videos larger than this (default 20 GiB).
	MaxMediaBytes int64 `env:"MAX_MEDIA_BYTES" envDefault:"21474836480"`
	// Lease is how long a claimed download stays owned; it must outlast the
	// longest download, or a redelivery would start a second copy.
	Lease time.Duration `env:"DOWNLOAD_LEASE" envDefault:"30m"`
	// ChunkSize is the resumable upload chunk (16 MiB, the storage client's
	// own default): a download holds two (the upload's buffer and the
	// read-ahead), and each chunk is one request round trip. Measured (make
	// bench, BenchmarkFetch): peak RSS 89 MiB for a 256 MiB video and 91 MiB
	// for 1 GiB, against 77/83 MiB at 8 MiB chunks without the read-ahead.
	ChunkSize int `env:"UPLOAD_CHUNK_BYTES" envDefault:"16777216"`
	// MediaManifestURI is read at download time for a lesson's current
	// media link (see DETECTOR's variable of the same name).
	MediaManifestURI string `env:"MEDIA_MANIFEST_URI"`
	// MediaLinksMaxAge is how long one read of the manifest serves the
	// instance's downloads; a refused link is asked for again at once.
	MediaLinksMaxAge time.Duration `env:"MEDIA_LINKS_MAX_AGE" envDefault:"30s"`
}

// Sweeper configures the sweeper function.
type Sweeper struct {
	Common
	// Batch bounds the lessons one sweep looks at, so a sweep fits its
	// function timeout however much is stuck; the next sweep goes on.
	Batch int `env:"SWEEP_BATCH" envDefault:"200"`
}

// Notifier configures the notifier function. Every channel is optional:
// with neither Slack nor SMTP set it logs what it would have sent. The
// webhook URL and the SMTP password are secrets (Secret Manager fills them
// in production). shared/notify checks how the values fit together and
// names every problem in one error.
type Notifier struct {
	Common
	// SlackWebhookURL is a Slack incoming webhook
	// (https://hooks.slack.com/services/...).
	SlackWebhookURL string `env:"SLACK_WEBHOOK_URL"`
	// SMTPHost enables e-mail; MailFrom and MailTo are then required.
	// Port 465 speaks TLS from the start; any other port upgrades with
	// STARTTLS when the server offers it.
	SMTPHost     string   `env:"SMTP_HOST"`
	SMTPPort     int      `env:"SMTP_PORT" envDefault:"587"`
	SMTPUser     string   `env:"SMTP_USER"`
	SMTPPassword string   `env:"SMTP_PASSWORD"`
	MailFrom     string   `env:"MAIL_FROM"`
	MailTo       []string `env:"MAIL_TO" envSeparator:","`
	// ClubLessonURL makes a lesson's link on Hotmart Club from
	// {subdomain}, {lessonId}, {courseId} and {moduleId}.
	ClubLessonURL string `env:"HOTMART_CLUB_LESSON_URL" envDefault:"https://{subdomain}.club.hotmart.com/lesson/{lessonId}"`
	// ConsoleURL is the Google Cloud console, for links to a lesson's logs.
	ConsoleURL string `env:"CLOUD_CONSOLE_URL" envDefault:"https://console.cloud.google.com"`
	// Lease is how long a claimed notification is owned by the delivery
	// sending it: longer than the sends take, short enough that a crash
	// between claim and send is retried soon.
	Lease time.Duration `env:"NOTIFY_LEASE" envDefault:"2m"`
	// SendTimeout bounds each channel's send.
	SendTimeout time.Duration `env:"NOTIFY_SEND_TIMEOUT" envDefault:"30s"`
	// RunWait is how long after its start a detection run that recorded
	// no end is waited for before its digest goes out anyway; it must
	// exceed DETECTION_BUDGET.
	RunWait time.Duration `env:"NOTIFY_RUN_WAIT" envDefault:"15m"`
	// MaxListed bounds the lessons a digest names per section; the rest
	// are counted.
	MaxListed int `env:"NOTIFY_MAX_LISTED" envDefault:"15"`
}

// Load fills cfg (a pointer to one of the structs above) from the process
// environment.
func Load(cfg any) error { return LoadFrom(cfg, environ()) }

// LoadFrom fills cfg from vars, naming every problem at once.
func LoadFrom(cfg any, vars map[string]string) error {
	err := env.ParseWithOptions(cfg, env.Options{Environment: vars})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	keys := envKeys(reflect.TypeOf(cfg).Elem(), map[string]string{})
	problems := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		problems = append(problems, describe(e, keys))
	}
	sort.Strings(problems)
	return fmt.Errorf("configuration: %d problem(s): %s", len(problems), strings.Join(problems, "; "))
}

// envKeys maps struct field names to their variables: the library reports
// parse errors by field name, but operators know the variable.
func envKeys(t reflect.Type, into map[string]string) map[string]string {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			envKeys(f.Type, into)
			continue
		}
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			into[f.Name] = key
		}
	}
	return into
}

func describe(err error, keys map[string]string) string {
	var missing env.VarIsNotSetError
	var empty env.EmptyVarError
	var parse env.ParseError
	switch {
	case errors.As(err, &missing):
		return missing.Key + " is not set"
	case errors.As(err, &empty):
		return empty.Key + " is empty"
	case errors.As(err, &parse):
		name := parse.Name
		if key, ok := keys[name]; ok {
			name = key
		}
		return fmt.Sprintf("%s is malformed: %v", name, parse.Err)
	}
	return err.Error()
}

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
