// Package chaos makes the one-machine stack's stand-ins for outside
// services misbehave as the real ones do on a bad day (issue 9): a seeded
// share of their answers are refusals — 429 or 5xx with the headers and
// body each real service sends — instead of the real answer. It wraps a
// local server from outside (an http.Handler, a gRPC server's unary calls,
// an SMTP receiver's messages), so no server needs to know about it, and
// the pipeline's clients, retries and idempotency are what is tested.
//
// A refusal is given before the request is served, as a front end or a
// rate limiter would, unless Options.AfterServing says otherwise: then the
// request is carried out and its answer replaced by a 5xx, an answer lost
// on the way back — the case that makes a client that retries blindly do
// the work twice.
package chaos

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Dice decides, with a seeded generator, which requests are refused. It is
// safe for concurrent use.
type Dice struct {
	rate float64
	mu   sync.Mutex
	rnd  *rand.Rand
}

// NewDice returns dice that come up true for rate of the rolls.
func NewDice(rate float64, seed int64) *Dice {
	return &Dice{rate: rate, rnd: rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))}
}

// Roll reports whether this request is refused.
func (d *Dice) Roll() bool {
	if d == nil || d.rate <= 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rnd.Float64() < d.rate
}

// Intn returns a number in [0, n).
func (d *Dice) Intn(n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rnd.IntN(n)
}

// Float returns a number in [0, 1).
func (d *Dice) Float() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rnd.Float64()
}

// DefaultStatuses are the refusals given when Options names none: rate
// limited, and the three server errors clients see most.
var DefaultStatuses = []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}

// Options configure Wrap.
type Options struct {
	// Rate is the share of requests refused, in [0, 1]; 0 refuses none.
	Rate float64
	// Seed makes the choice repeatable for a given order of requests.
	Seed int64
	// Statuses are picked from at random (default DefaultStatuses).
	Statuses []int
	// Refuse writes the service's own refusal for a status: its headers
	// (Retry-After, rate-limit headers) and its error body. Required.
	Refuse func(w http.ResponseWriter, r *http.Request, status int)
	// AfterServing is the share, in [0, 1], of 5xx refusals given after
	// the request was served (the real answer discarded). Requests
	// AfterServingOK rejects are always refused before serving.
	AfterServing   float64
	AfterServingOK func(r *http.Request) bool
	// Skip exempts requests from refusal (nil: none is exempt).
	Skip func(r *http.Request) bool
}

// Handler refuses a share of requests and serves the rest with the
// wrapped handler.
type Handler struct {
	next http.Handler
	o    Options
	dice *Dice

	mu      sync.Mutex
	refused map[int]int
	after   int
	served  int
}

// Wrap returns next with refusals as o says.
func Wrap(next http.Handler, o Options) *Handler {
	if len(o.Statuses) == 0 {
		o.Statuses = DefaultStatuses
	}
	return &Handler{next: next, o: o, dice: NewDice(o.Rate, o.Seed), refused: map[int]int{}}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (h.o.Skip != nil && h.o.Skip(r)) || !h.dice.Roll() {
		h.count(func() { h.served++ })
		h.next.ServeHTTP(w, r)
		return
	}
	code := h.o.Statuses[h.dice.Intn(len(h.o.Statuses))]
	if code >= 500 && h.o.AfterServing > 0 && (h.o.AfterServingOK == nil || h.o.AfterServingOK(r)) && h.dice.Float() < h.o.AfterServing {
		h.next.ServeHTTP(&discard{}, r)
		h.count(func() { h.after++; h.refused[code]++ })
		h.o.Refuse(w, r, code)
		return
	}
	h.count(func() { h.refused[code]++ })
	h.o.Refuse(w, r, code)
}

func (h *Handler) count(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn()
}

// Stats is what a Handler did.
type Stats struct {
	Served  int         // requests passed on with their real answer
	Refused map[int]int // refusals by status
	// AfterServing counts the refusals given after serving the request.
	AfterServing int
}

// Total is every request the handler saw.
func (s Stats) Total() int {
	n := s.Served
	for _, v := range s.Refused {
		n += v
	}
	return n
}

// Refusals is every refusal given.
func (s Stats) Refusals() int { return s.Total() - s.Served }

// Stats returns what the handler did so far.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{Served: h.served, AfterServing: h.after, Refused: map[int]int{}}
	for k, v := range h.refused {
		st.Refused[k] = v
	}
	return st
}

// discard is where a request served before its refusal writes its answer.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// GRPC refuses a share of a gRPC server's unary calls with the codes a
// Google API answers under load: RESOURCE_EXHAUSTED (its 429) and
// UNAVAILABLE (its 503), each with the service's message.
type GRPC struct {
	dice    *Dice
	message map[codes.Code]string

	mu      sync.Mutex
	refused map[codes.Code]int
	served  int
}

// NewGRPC refuses rate of the calls; messages gives the text per code
// (ResourceExhausted and Unavailable are the codes used).
func NewGRPC(rate float64, seed int64, messages map[codes.Code]string) *GRPC {
	return &GRPC{dice: NewDice(rate, seed), message: messages, refused: map[codes.Code]int{}}
}

// Interceptor is the unary server interceptor to install.
func (g *GRPC) Interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !g.dice.Roll() {
			g.mu.Lock()
			g.served++
			g.mu.Unlock()
			return handler(ctx, req)
		}
		code := codes.ResourceExhausted
		if g.dice.Intn(2) == 1 {
			code = codes.Unavailable
		}
		g.mu.Lock()
		g.refused[code]++
		g.mu.Unlock()
		return nil, status.Error(code, g.message[code])
	}
}

// Stats returns what the interceptor did, refusals by HTTP-like status
// (429 for RESOURCE_EXHAUSTED, 503 for UNAVAILABLE).
func (g *GRPC) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := Stats{Served: g.served, Refused: map[int]int{}}
	for c, n := range g.refused {
		switch c {
		case codes.ResourceExhausted:
			st.Refused[http.StatusTooManyRequests] += n
		default:
			st.Refused[http.StatusServiceUnavailable] += n
		}
	}
	return st
}
