package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	gosmtp "github.com/emersion/go-smtp"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coursekb/pipeline/local/chaos"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/mediahost"
	"github.com/coursekb/pipeline/local/meter"
	"github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/local/slack"
	"github.com/coursekb/pipeline/local/smtp"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Chaos makes the stack misbehave as production does on a bad day (issue
// 9). The zero value changes nothing; each part is switched on alone.
type Chaos struct {
	// ErrorRate is the share of answers from every outside service's
	// local server (Hotmart, the media host, Speech-to-Text, Gemini,
	// OpenAI, Slack, SMTP) that are refusals: 429 or 5xx with the
	// headers each real service sends (local/chaos), 451 for SMTP.
	ErrorRate float64
	// Seed makes the refusals and the delivery jitter repeatable for one
	// order of requests.
	Seed int64
	// Copies makes the local Eventarc deliver every message this many
	// times, each copy after a random delay up to Jitter, so that some
	// arrive out of order (0 or 1: once, at once).
	Copies int
	Jitter time.Duration
	// CutTransfers makes the media host cut the first transfer of every
	// file mid-stream.
	CutTransfers bool
}

// on reports whether any fault is on.
func (c Chaos) on() bool {
	return c.ErrorRate > 0 || c.Copies > 1 || c.Jitter > 0 || c.CutTransfers
}

// Doors are the counters the stack puts at the emulators' and the
// functions' doors when Options.Meter is set.
type Doors struct {
	Firestore, PubSub *meter.Proxy
	Functions         *meter.Functions
}

// ChaosStats is what the fault layers did, by service.
func (s *Stack) ChaosStats() map[string]chaos.Stats {
	out := map[string]chaos.Stats{}
	for name, h := range s.chaosHTTP {
		out[name] = h.Stats()
	}
	if s.chaosSpeech != nil {
		out["speech"] = s.chaosSpeech.Stats()
	}
	if s.chaosMail != nil {
		out["smtp"] = s.chaosMail.stats()
	}
	return out
}

// startMeters puts a meter proxy in front of each emulator; the stack's
// clients, the functions and the local Workflows service's connector all
// reach the emulators through them.
func (s *Stack) startMeters() error {
	var err error
	if s.Meters.Firestore, err = meter.Start(s.Firestore.Host); err != nil {
		return err
	}
	s.stops = append(s.stops, s.Meters.Firestore.Close)
	if s.Meters.PubSub, err = meter.Start(s.PubSub.Host); err != nil {
		return err
	}
	s.stops = append(s.stops, s.Meters.PubSub.Close)
	s.firestoreAddr, s.pubsubAddr = s.Meters.Firestore.Addr(), s.Meters.PubSub.Addr()
	return nil
}

// ownerCreds are the credentials the Firestore client gives the emulator:
// "Bearer owner" makes a caller an admin there.
type ownerCreds struct{}

func (ownerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}
func (ownerCreds) RequireTransportSecurity() bool { return false }

// quietStore is a lesson store that reads through the Firestore meter's
// quiet address: what a harness watching a run reads is not counted.
func (s *Stack) quietStore(ctx context.Context) (*lessonstate.Store, error) {
	conn, err := grpc.NewClient(s.Meters.Firestore.QuietAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(ownerCreds{}))
	if err != nil {
		return nil, fmt.Errorf("stack: quiet firestore connection: %w", err)
	}
	c, err := firestore.NewClient(ctx, s.ProjectID, option.WithGRPCConn(conn))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("stack: quiet firestore client: %w", err)
	}
	s.stops = append(s.stops, func() { c.Close(); conn.Close() })
	return lessonstate.New(c), nil
}

// serve serves h on a free loopback port until the stack stops and returns
// its base URL.
func (s *Stack) serve(name string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("stack: %s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.stops = append(s.stops, func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

// withChaos wraps a local server's handler in the fault layer when
// Options.Chaos.ErrorRate is set; n numbers the service so each has its own
// seeded sequence.
func (s *Stack) withChaos(name string, n int64, h http.Handler, o chaos.Options) http.Handler {
	c := s.opts.Chaos
	if c.ErrorRate <= 0 {
		return h
	}
	o.Rate, o.Seed = c.ErrorRate, c.Seed*100+n
	w := chaos.Wrap(h, o)
	if s.chaosHTTP == nil {
		s.chaosHTTP = map[string]*chaos.Handler{}
	}
	s.chaosHTTP[name] = w
	return w
}

// hotmartRefusal is Hotmart's answer over its rate limit (429 with the
// RateLimit-* headers, the window reset in a second) or on a server error:
// its JSON error body. The local Hotmart server is wrapped from outside.
func hotmartRefusal(w http.ResponseWriter, _ *http.Request, status int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("RateLimit-Limit", "500")
	code := "internal_server_error"
	msg := "An unexpected error occurred, try again later"
	switch status {
	case http.StatusTooManyRequests:
		h.Set("RateLimit-Remaining", "0")
		h.Set("RateLimit-Reset", "1")
		code, msg = "too_many_requests", "rate limit of 500 requests per minute exceeded"
	case http.StatusBadGateway:
		code = "bad_gateway"
	case http.StatusServiceUnavailable:
		code = "service_unavailable"
	default:
		h.Set("RateLimit-Remaining", "250")
		h.Set("RateLimit-Reset", "30")
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": msg + " (local chaos)"})
	_, _ = w.Write(b)
}

// speechChaos refuses a share of the local Speech-to-Text's calls with
// the codes and messages of the real service under load.
func speechChaos(c Chaos) *chaos.GRPC {
	if c.ErrorRate <= 0 {
		return nil
	}
	return chaos.NewGRPC(c.ErrorRate, c.Seed*100+3, map[codes.Code]string{
		codes.ResourceExhausted: "Quota exceeded for quota metric 'Recognize requests' and limit 'Recognize requests per minute per region' of service 'speech.googleapis.com' (local chaos).",
		codes.Unavailable:       "The service is currently unavailable. (local chaos)",
	})
}

// mailChaos refuses a share of the messages the SMTP receiver gets with
// 451, as a busy server does.
type mailChaos struct {
	dice    *chaos.Dice
	refused func() int
	total   func() int
}

func (m *mailChaos) refuse() *gosmtp.SMTPError {
	if m.dice.Roll() {
		return smtp.TempFailure()
	}
	return nil
}

func (m *mailChaos) stats() chaos.Stats {
	r := m.refused()
	return chaos.Stats{Served: m.total(), Refused: map[int]int{451: r}}
}

// startOutsideServers serves the local Hotmart, media host, Gemini, OpenAI
// and Slack servers, each behind the fault layer when chaos is on.
func (s *Stack) startOutsideServers() error {
	var err error
	if s.HotmartURL, err = s.serve("hotmart server", s.withChaos("hotmart", 1, s.Hotmart, chaos.Options{
		Refuse: hotmartRefusal,
	})); err != nil {
		return err
	}
	if s.opts.Chaos.CutTransfers {
		s.Media.CutFirstTransfers()
	}
	if s.MediaURL, err = s.serve("media host", s.withChaos("media host", 2, s.Media, chaos.Options{
		Statuses: []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway},
		Refuse:   func(w http.ResponseWriter, _ *http.Request, st int) { mediahost.Refuse(w, st) },
	})); err != nil {
		return err
	}
	return nil
}

// startAIServers serves the local Gemini and OpenAI servers and the Slack
// webhook, behind the fault layer when chaos is on. OpenAI's 5xx refusals
// are, half of the time, given after the request was carried out: an
// upload or an attachment whose answer is lost is what makes a retrying
// client create a second file, which the syncer must not.
func (s *Stack) startAIServers() error {
	u, err := s.serve("gemini server", s.withChaos("gemini", 4, s.Gemini, chaos.Options{
		Refuse: func(w http.ResponseWriter, _ *http.Request, st int) { gemini.Refuse(w, st) },
	}))
	if err != nil {
		return err
	}
	s.GeminiURL = u
	if u, err = s.serve("openai server", s.withChaos("openai", 5, s.OpenAI, chaos.Options{
		Refuse:         func(w http.ResponseWriter, _ *http.Request, st int) { openai.Refuse(w, st, time.Second) },
		AfterServing:   0.5,
		AfterServingOK: func(r *http.Request) bool { return r.Method == http.MethodPost || r.Method == http.MethodDelete },
	})); err != nil {
		return err
	}
	s.OpenAIURL = u + openai.APIPrefix
	if u, err = s.serve("slack webhook", s.withChaos("slack", 6, s.Slack, chaos.Options{
		Refuse: func(w http.ResponseWriter, _ *http.Request, st int) { slack.Refuse(w, st) },
	})); err != nil {
		return err
	}
	s.SlackURL = u + slack.HookPath
	return nil
}

// FunctionsPeakRSS is the largest peak resident memory (VmHWM) any
// functions process of this stack reached so far, in bytes: each process's
// own peak, read from /proc before it is killed and now. (A Go parent's
// getrusage maxrss is inherited through exec; VmHWM belongs to the
// process's own memory map, so it is the child's alone.)
func (s *Stack) FunctionsPeakRSS() int64 {
	s.fnMu.Lock()
	defer s.fnMu.Unlock()
	return max(s.fnPeak, vmHWM(s.fnPID))
}

// Restarts counts how often RestartFunctions replaced the process.
func (s *Stack) Restarts() int {
	s.fnMu.Lock()
	defer s.fnMu.Unlock()
	return s.restarts
}

// vmHWM reads a process's peak resident set size, in bytes; 0 when it
// cannot be read.
func vmHWM(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// startQuietPublisher makes the publisher QuietPublish uses: through the
// Pub/Sub meter's quiet door when the stack meters, else the stack's own.
func (s *Stack) startQuietPublisher(ctx context.Context) error {
	if s.Meters.PubSub == nil {
		s.quietPub = s.publisher
		return nil
	}
	conn, err := grpc.NewClient(s.Meters.PubSub.QuietAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("stack: quiet pubsub connection: %w", err)
	}
	c, err := pubsub.NewClient(ctx, s.ProjectID, option.WithGRPCConn(conn))
	if err != nil {
		conn.Close()
		return fmt.Errorf("stack: quiet pubsub client: %w", err)
	}
	s.quietPub = events.NewPublisher(c)
	s.stops = append(s.stops, func() { s.quietPub.Close(); c.Close(); conn.Close() })
	return nil
}

// QuietPublish publishes as Publish does, but through the Pub/Sub meter's
// quiet door when the stack meters: what a harness injects (poison inputs)
// is not counted as the pipeline's own messages. It returns the message id.
func (s *Stack) QuietPublish(ctx context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	return s.quietPub.PublishRaw(ctx, topic, data, attrs)
}
