package gemini

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/artifact"
)

// Engine is what every answer's modelVersion ends with, so that artifacts
// made offline say which engine made them.
const Engine = "local engine"

// Defaults of Options.
const (
	// DefaultMaxWindow is the longest span of video one request may hold:
	// about 45 minutes of video with audio (DESIGN.md section 5, "Gemini").
	DefaultMaxWindow = 45 * time.Minute
	// DefaultMaxInputTokens is the input limit of Gemini 2.x models.
	DefaultMaxInputTokens = 1_048_576
)

// Token costs of video: 32 a second of audio at every resolution, and per
// frame what framePrice says.
const (
	tokensPerAudioSecond = 32
	maxFPS               = 24
)

// framePrice is what one video frame costs in tokens, as Gemini counts
// it for generationConfig.mediaResolution. Gemini 3 models give a video
// frame 70 tokens at LOW and MEDIUM and 280 at HIGH; earlier models 66 at
// LOW and 258 otherwise. Left unspecified, the engine counts the older
// models' default, 258: the dearest reading of a setting the request did
// not make, so a cost report never flatters it.
func framePrice(model, resolution string) int {
	gemini3 := strings.HasPrefix(model, "gemini-3")
	switch resolution {
	case "MEDIA_RESOLUTION_LOW":
		if gemini3 {
			return 70
		}
		return 66
	case "MEDIA_RESOLUTION_MEDIUM":
		if gemini3 {
			return 70
		}
		return 258
	case "MEDIA_RESOLUTION_HIGH":
		if gemini3 {
			return 280
		}
		return 258
	}
	return 258
}

// RequestKind tells the two requests the engine answers apart.
type RequestKind string

// Request kinds; an empty kind is a request the server could not classify.
const (
	Analysis   RequestKind = "analysis"   // a video window to visual elements
	Enrichment RequestKind = "enrichment" // a lesson's text to keywords, level, summary...
)

// Options configures a Server; the zero value is fine.
type Options struct {
	// Durations gives lessons' video lengths in seconds by page id, e.g.
	// from the generated sample videos. A lesson without one is as long as
	// EstimateDuration says its narration is.
	Durations map[string]float64
	// Token, when set, is the only bearer token accepted. Unset, any bearer
	// token is (Vertex rejects a request with none, and so does this server).
	Token string
	// Models lists the model ids answered (e.g. "gemini-2.5-flash"); empty
	// means every id starting with "gemini-". Others get Vertex's 404.
	Models []string
	// MaxWindow is the longest span of video a request may hold (default
	// DefaultMaxWindow); MaxInputTokens the input token limit (default
	// DefaultMaxInputTokens). Either one exceeded is a 400.
	MaxWindow      time.Duration
	MaxInputTokens int
	// NeverFits lists lessons whose every answer breaks the response schema:
	// "a Gemini answer that never fits" (see BreakSchemaAlways).
	NeverFits []string
	// Logger receives one debug record per request (default slog.Default()).
	Logger *slog.Logger
	// Now stamps the answers' createTime (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxWindow <= 0 {
		o.MaxWindow = DefaultMaxWindow
	}
	if o.MaxInputTokens <= 0 {
		o.MaxInputTokens = DefaultMaxInputTokens
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server is the local Gemini engine, an http.Handler. It is safe for
// concurrent use, control and inspection methods included.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	pages     map[string]sample.Page
	titles    map[string]string // lesson title -> page id, for prompts without LECCIÓN:
	durations map[string]float64
	faults    []*fault
	neverFits map[string]int // lesson -> answers broken so far
	received  []Request
}

// Request is one request as the server received it, for tests to inspect.
type Request struct {
	Kind     RequestKind
	Lesson   string // page id; "" when the request names none
	Model    string
	Project  string
	Location string
	Version  string // the API version of the path: v1beta1 from genai
	// Window is the span of video asked for, in seconds from the start of
	// the video (an absent end offset reads as the video's end); FPS the
	// frame rate asked for (1 when absent). Analysis requests only.
	Window artifact.Window
	FPS    float64
	// Resolution is generationConfig.mediaResolution ("" when absent).
	Resolution string
	// Status is the HTTP status answered; Fault names the injected fault
	// that shaped the answer, if any ("status", "non-json", "schema").
	Status int
	Fault  string
	// At is when the request arrived (Options.Now).
	At time.Time
}

// NewServer answers for the lessons of cat with opts.
func NewServer(cat sample.Catalog, opts Options) *Server {
	s := &Server{opts: opts.withDefaults(), neverFits: map[string]int{}}
	s.log = s.opts.Logger.With("component", "local-gemini")
	s.durations = maps.Clone(opts.Durations)
	if s.durations == nil {
		s.durations = map[string]float64{}
	}
	for _, l := range opts.NeverFits {
		s.neverFits[l] = 0
	}
	s.SetCatalog(cat)
	return s
}

// SetCatalog replaces the lessons the server knows.
func (s *Server) SetCatalog(cat sample.Catalog) {
	pages := map[string]sample.Page{}
	titles := map[string]string{}
	ambiguous := map[string]bool{}
	cat.Pages(func(_ sample.Product, _ sample.Module, pg sample.Page) {
		pages[pg.PageID] = pg
		if _, dup := titles[pg.Name]; dup {
			ambiguous[pg.Name] = true
		}
		titles[pg.Name] = pg.PageID
	})
	for t := range ambiguous {
		delete(titles, t) // a title two lessons share names neither
	}
	s.mu.Lock()
	s.pages, s.titles = pages, titles
	s.mu.Unlock()
}

// SetDuration sets the video length of a lesson, in seconds, as
// Options.Durations does: the stack calls it once the sample videos exist.
func (s *Server) SetDuration(lessonID string, seconds float64) {
	s.mu.Lock()
	s.durations[lessonID] = seconds
	s.mu.Unlock()
}

// Duration returns the video length the server assumes for a lesson, and
// whether it knows a video for it.
func (s *Server) Duration(lessonID string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pg, ok := s.pages[lessonID]
	if !ok || !pg.HasVideo() {
		return 0, false
	}
	return s.durationLocked(pg), true
}

func (s *Server) durationLocked(pg sample.Page) float64 {
	if d, ok := s.durations[pg.PageID]; ok && d > 0 {
		return d
	}
	d := EstimateDuration(pg.Narration)
	// A video is at least as long as its slides reach.
	if n := len(pg.Slides); n > 0 && d < pg.Slides[n-1].At+1 {
		d = pg.Slides[n-1].At + 1
	}
	return d
}

// Listen serves on addr (default "127.0.0.1:0", a free loopback port) and
// returns the base URL to give genai as HTTPOptions.BaseURL (or to
// NewClient); close stops it.
func (s *Server) Listen(addr string) (url string, close func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local gemini: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), srv.Close, nil
}

// maxBody bounds a request body: prompts are text, videos go by URI.
const maxBody = 32 << 20

// ServeHTTP answers generateContent: it parses and records the request,
// applies an injected status if one matches, validates, answers from the
// catalog or the prompt, and lets an injected answer fault spoil the answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := s.parse(r)
	if err == nil {
		err = s.resolve(c)
	}
	idx := s.record(c)
	fail := func(err error) {
		code := http.StatusBadRequest
		var br *badRequest
		if errors.As(err, &br) {
			code = br.code
		}
		s.finish(r, idx, c, code, "")
		writeError(w, code, err.Error())
	}

	if f := s.takeFault(c, faultStatus); f != nil {
		s.finish(r, idx, c, f.status, "status")
		writeError(w, f.status, defaultMessage(f.status))
		return
	}
	if err != nil {
		fail(err)
		return
	}
	text, err := s.answer(c)
	if err != nil {
		fail(err)
		return
	}
	faultName := ""
	if f := s.takeFault(c, faultNonJSON); f != nil {
		text, faultName = nonJSON(c), "non-json"
	} else if b, ok := s.schemaBreak(c); ok {
		text, faultName = breakSchema(c.kind, text, b), "schema"
	}

	candTokens := textTokens(text)
	resp := generateResponse{
		Candidates: []candidate{{
			Content:      content{Role: "model", Parts: []part{{Text: text}}},
			FinishReason: "STOP",
		}},
		UsageMetadata: usageMetadata{
			PromptTokenCount:        c.promptTokens,
			CandidatesTokenCount:    candTokens,
			TotalTokenCount:         c.promptTokens + candTokens,
			TrafficType:             "ON_DEMAND",
			PromptTokensDetails:     c.promptDetails,
			CandidatesTokensDetails: []modalityCount{{Modality: "TEXT", TokenCount: candTokens}},
		},
		ModelVersion: c.model + " (" + Engine + ")",
		CreateTime:   s.opts.Now().UTC().Format(time.RFC3339Nano),
		ResponseID:   fmt.Sprintf("local-%06d", idx+1),
	}
	b, err := json.Marshal(resp)
	if err != nil {
		fail(&badRequest{code: http.StatusInternalServerError, msg: fmt.Sprintf("local gemini: encode response: %v", err)})
		return
	}
	s.finish(r, idx, c, http.StatusOK, faultName)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Write(b)
}

// call is one request as parsed: what the route says, what the body asks.
type call struct {
	version, project, location, model string

	req    generateRequest
	kind   RequestKind
	lesson string
	prompt string // every text part, in order

	// Analysis only.
	videoURI    string
	page        sample.Page
	duration    float64
	window      artifact.Window
	fps         float64
	kindsWanted map[string]bool // the schema's enum of kinds, nil if none

	promptTokens  int
	promptDetails []modalityCount
}

// generateMethod is the only method answered, on the only path:
// /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent
const generateMethod = "generateContent"

func (s *Server) parse(r *http.Request) (*call, error) {
	c := &call{}
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(segs) != 9 || segs[1] != "projects" || segs[3] != "locations" || segs[5] != "publishers" || segs[7] != "models" ||
		(segs[0] != "v1" && segs[0] != "v1beta1") {
		return c, notFound("local Gemini engine: no route for %s %s; it answers POST /v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent", r.Method, r.URL.Path)
	}
	c.version, c.project, c.location = segs[0], segs[2], segs[4]
	model, method, _ := strings.Cut(segs[8], ":")
	c.model = model
	switch {
	case method == "streamGenerateContent":
		return c, &badRequest{code: http.StatusNotImplemented, msg: "local Gemini engine: streamGenerateContent is not implemented; use generateContent"}
	case method != generateMethod:
		return c, notFound("local Gemini engine: no method %q on models; it answers %s", method, generateMethod)
	case r.Method != http.MethodPost:
		return c, &badRequest{code: http.StatusMethodNotAllowed, msg: fmt.Sprintf("%s is not allowed on %s; use POST", r.Method, generateMethod)}
	case model == "":
		return c, invalid("the model name is empty: want .../publishers/google/models/{model}:generateContent")
	}
	if err := s.authorize(r); err != nil {
		return c, err
	}
	if !s.knownModel(model) {
		return c, notFound("Publisher Model `projects/%s/locations/%s/publishers/%s/models/%s` was not found or your project does not have access to it. Please ensure you are using a valid model version.", c.project, c.location, segs[6], model)
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return c, invalid("read request body: %v", err)
	}
	if len(body) > maxBody {
		return c, invalid("request body exceeds %d bytes; send videos by gs:// URI", maxBody)
	}
	if err := json.Unmarshal(body, &c.req); err != nil {
		return c, invalid("Invalid JSON payload received: %v", err)
	}
	return c, s.classify(c)
}

func (s *Server) authorize(r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return &badRequest{code: http.StatusUnauthorized, msg: "Request is missing required authentication credential. Expected OAuth 2 access token (gemini.NewClient gives the SDK one that works offline)."}
	}
	if s.opts.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) != 1 {
		return &badRequest{code: http.StatusUnauthorized, msg: "Request had invalid authentication credentials. Expected OAuth 2 access token."}
	}
	return nil
}

func (s *Server) knownModel(m string) bool {
	if len(s.opts.Models) == 0 {
		return strings.HasPrefix(m, "gemini-")
	}
	for _, x := range s.opts.Models {
		if x == m {
			return true
		}
	}
	return false
}

// record appends c to what the server received and returns its index.
func (s *Server) record(c *call) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	rq := Request{Kind: c.kind, Lesson: c.lesson, Model: c.model, Project: c.project, Location: c.location, Version: c.version, At: s.opts.Now()}
	if c.kind == Analysis {
		rq.Window, rq.FPS = c.window, c.fps
		if gc := c.req.GenerationConfig; gc != nil {
			rq.Resolution = gc.MediaResolution
		}
		if rq.Window.End < 0 {
			rq.Window.End = 0 // absent, and the video's length unknown
		}
	}
	s.received = append(s.received, rq)
	return len(s.received) - 1
}

// finish notes how request idx was answered, and logs it.
func (s *Server) finish(r *http.Request, idx int, c *call, status int, faultName string) {
	s.mu.Lock()
	s.received[idx].Status, s.received[idx].Fault = status, faultName
	s.mu.Unlock()
	attrs := []any{"lessonId", c.lesson, "kind", string(c.kind), "model", c.model, "status", status}
	if c.kind == Analysis {
		attrs = append(attrs, "windowStart", c.window.Start, "windowEnd", c.window.End)
	}
	if faultName != "" {
		attrs = append(attrs, "fault", faultName)
	}
	s.log.DebugContext(r.Context(), "generateContent", attrs...)
}

// Received returns every request received so far, in arrival order.
func (s *Server) Received() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.received...)
}

// Count returns how many requests matching m were received, whatever they
// were answered.
func (s *Server) Count(m Match) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rq := range s.received {
		if m.matches(rq.Kind, rq.Lesson) {
			n++
		}
	}
	return n
}

// Windows returns the windows of the analysis requests received for a
// lesson, in arrival order, retries included.
func (s *Server) Windows(lessonID string) []artifact.Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ws []artifact.Window
	for _, rq := range s.received {
		if rq.Kind == Analysis && rq.Lesson == lessonID {
			ws = append(ws, rq.Window)
		}
	}
	return ws
}
