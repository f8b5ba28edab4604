// Package speech is the local Speech-to-Text v2: a gRPC server that the real
// client (cloud.google.com/go/speech/apiv2) talks to through its endpoint
// option, for the tests and the one-machine stack (DESIGN.md sections 5 and
// 6). It serves BatchRecognize as a long-running operation and the
// google.longrunning.Operations service to poll it, so a caller can keep an
// operation's name, resume it from another client or process with
// BatchRecognizeOperation(name), and poll until it is done.
//
// It validates requests by the real service's rules (implicit recognizer,
// at most 15 gs:// files, models and their locations, chirp_3's diarization
// languages and 20-minute word-timestamp limit, chirp_2's lack of
// diarization), reads each file from Cloud Storage to learn its duration
// from the audio itself (FLAC, Ogg Opus, WAV), and answers what the sample
// course says: the lesson's narration laid out as timed words over the
// lesson's audio, the words of each file's window with offsets relative to
// the file, as the real service gives them. Results go to Cloud Storage as
// the real service writes them, or inline. Every file result says it came
// from the local engine (request id "local-speech-engine/<n>").
//
// Tests and the stack shape it with options and control methods: how soon
// operations finish, per-file and whole-operation failures, rejected calls,
// and counters of BatchRecognize calls per lesson.
package speech

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/speech/apiv2/speechpb"
	"cloud.google.com/go/storage"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RequestIDPrefix starts every request id the engine puts in a file's result
// metadata, so anyone reading a transcript can tell it was not the real
// service.
const RequestIDPrefix = "local-speech-engine/"

// Segment object metadata: the contract with the transcriber, which writes
// a lesson's audio as segments lessons/{lessonId}/v{version}/audio/seg-NNN.flac
// (or .ogg) in the raw bucket. Values are decimal strings; seconds may have
// a fraction.
const (
	MetaLessonID = "lessonId"      // the lesson (Hotmart page id)
	MetaVersion  = "version"       // the lesson version the audio belongs to
	MetaOffset   = "offsetSeconds" // where this segment starts in the lesson's audio
	MetaTotal    = "totalSeconds"  // the lesson audio's whole duration
)

// Fault makes matching files, or the operations that contain them, fail.
type Fault struct {
	// Match selects input files by their gs:// URI.
	Match func(uri string) bool
	// WholeOperation fails the whole operation (its error, no response)
	// instead of only the matching file's result.
	WholeOperation bool
	// Code and Message are the google.rpc.Status given (OK means
	// Internal; "" a default message).
	Code    codes.Code
	Message string
}

// Options configures a Server; the zero value is usable.
type Options struct {
	// Storage reads audio and writes results. Nil means a client made by
	// storage.NewClient, which talks to STORAGE_EMULATOR_HOST when set;
	// the Server then closes it on Close.
	Storage *storage.Client
	// Logger receives one line per call and per file; nil means
	// slog.Default().
	Logger *slog.Logger
	// Delay is how long after it starts an operation is done at the
	// earliest; Polls how many GetOperation calls it takes (the Polls-th
	// call sees it done). Both zero: done at the first poll after its
	// files are processed (milliseconds).
	Delay time.Duration
	Polls int
	// Faults apply from the start; AddFault adds more later.
	Faults []Fault
	// Now is the clock for operation times and Delay; nil means time.Now.
	Now func() time.Time
	// Interceptor, when set, sees every unary call Listen's server gets
	// before the service does (local/chaos refuses a share of them).
	Interceptor grpc.UnaryServerInterceptor
}

// Server is the local Speech-to-Text v2. It is safe for concurrent use,
// control methods included.
type Server struct {
	scripts    Scripts
	intercept  grpc.UnaryServerInterceptor
	storage    *storage.Client
	ownStorage bool
	log        *slog.Logger
	now        func() time.Time

	ctx  context.Context // cancelled by Close: ends processing and waits
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu          sync.Mutex
	delay       time.Duration
	polls       int
	faults      []Fault
	rejectLeft  int
	rejectCode  codes.Code
	rejectMsg   string
	calls       int
	lessonCalls map[string]int
	callTimes   map[string][]time.Time // by lesson
	requests    int
	ops         map[string]*operation
	order       []string // operation names, oldest first
}

// New returns a server that answers from scripts (FromCatalog(sample.Load())
// for the bundled sample).
func New(scripts Scripts, opts Options) (*Server, error) {
	if scripts == nil {
		return nil, errors.New("local speech: New needs Scripts (e.g. speech.FromCatalog(catalog))")
	}
	s := &Server{
		scripts:     scripts,
		intercept:   opts.Interceptor,
		storage:     opts.Storage,
		log:         opts.Logger,
		now:         opts.Now,
		delay:       opts.Delay,
		polls:       opts.Polls,
		faults:      slices.Clone(opts.Faults),
		lessonCalls: map[string]int{},
		callTimes:   map[string][]time.Time{},
		ops:         map[string]*operation{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "local-speech")
	if s.now == nil {
		s.now = time.Now
	}
	if s.storage == nil {
		c, err := storage.NewClient(context.Background())
		if err != nil {
			return nil, fmt.Errorf("local speech: storage client: %w", err)
		}
		s.storage, s.ownStorage = c, true
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Register adds the Speech and Operations services to g, for a caller that
// serves other services on the same gRPC server.
func (s *Server) Register(g *grpc.Server) {
	speechpb.RegisterSpeechServer(g, speechService{s: s})
	longrunningpb.RegisterOperationsServer(g, operationsService{s: s})
}

// Listen serves on addr ("" or "127.0.0.1:0" picks a free port) over plain
// gRPC and returns host:port, the value for option.WithEndpoint, and a
// function that stops serving and closes the Server.
func (s *Server) Listen(addr string) (endpoint string, stop func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local speech: listen on %s: %w", addr, err)
	}
	var gopts []grpc.ServerOption
	if s.intercept != nil {
		gopts = append(gopts, grpc.UnaryInterceptor(s.intercept))
	}
	g := grpc.NewServer(gopts...)
	s.Register(g)
	go func() { _ = g.Serve(ln) }()
	s.log.Info("local speech engine listening", "addr", ln.Addr().String())
	return ln.Addr().String(), func() error {
		s.stop() // first, so WaitOperation calls return and GracefulStop does not wait on them
		g.GracefulStop()
		return s.Close()
	}, nil
}

// Close stops processing, waits for it to end, and closes the storage
// client if the Server made it. Operations not done by then never will be.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()
	s.wg.Wait()
	if s.ownStorage {
		s.ownStorage = false
		if err := s.storage.Close(); err != nil {
			return fmt.Errorf("local speech: close storage client: %w", err)
		}
	}
	return nil
}

// SetTiming changes Delay and Polls for operations started from now on.
func (s *Server) SetTiming(delay time.Duration, polls int) {
	s.mu.Lock()
	s.delay, s.polls = delay, polls
	s.mu.Unlock()
}

// AddFault adds a fault for operations started from now on.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// ClearFaults removes every fault, those of Options included.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// RejectNext makes the next n BatchRecognize calls fail with code (e.g.
// codes.Unavailable, codes.ResourceExhausted; OK means Unavailable) before
// anything else is looked at; message "" gives a default. Note that the Go
// client retries Unavailable (and DeadlineExceeded) by itself, with backoff.
func (s *Server) RejectNext(n int, code codes.Code, message string) {
	if code == codes.OK {
		code = codes.Unavailable
	}
	if message == "" {
		message = fmt.Sprintf("local speech engine: %s (injected)", code)
	}
	s.mu.Lock()
	s.rejectLeft, s.rejectCode, s.rejectMsg = n, code, message
	s.mu.Unlock()
}

// Calls returns how many BatchRecognize calls the server has received,
// rejected and invalid ones included.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// LessonCalls returns how many BatchRecognize calls named at least one file
// of the lesson, told by the object name lessons/{lessonId}/..., rejected
// and invalid calls included: what a test checks to see that unchanged audio
// was not sent again.
func (s *Server) LessonCalls(lessonID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lessonCalls[lessonID]
}

// LessonCallTimes returns when each call LessonCalls counts arrived, in
// order: what a check compares with the moment the lesson's transcription
// was recorded done.
func (s *Server) LessonCallTimes(lessonID string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.callTimes[lessonID])
}

var lessonPath = regexp.MustCompile(`^lessons/([^/]+)/(?:v([0-9]+)/)?`)

// lessonFromObject reads lesson id and version from an object name that
// follows the raw bucket's layout; "" when it does not.
func lessonFromObject(object string) (lessonID, version string) {
	m := lessonPath.FindStringSubmatch(object)
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

// lessonsOf lists the lessons a request names files of, by object name,
// each once.
func lessonsOf(req *speechpb.BatchRecognizeRequest) []string {
	var ids []string
	for _, f := range req.GetFiles() {
		if _, obj, err := splitGCS(f.GetUri()); err == nil {
			if id, _ := lessonFromObject(obj); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// countCall counts a call and answers an injected rejection, if one is due.
func (s *Server) countCall(req *speechpb.BatchRecognizeRequest) error {
	lessons := lessonsOf(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	now := s.now()
	for _, id := range lessons {
		s.lessonCalls[id]++
		s.callTimes[id] = append(s.callTimes[id], now)
	}
	if s.rejectLeft > 0 {
		s.rejectLeft--
		return status.Error(s.rejectCode, s.rejectMsg)
	}
	return nil
}

// nextRequestID numbers the files the engine recognizes.
func (s *Server) nextRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	return fmt.Sprintf("%s%d", RequestIDPrefix, s.requests)
}

// status is the google.rpc.Status the fault gives (OK means Internal).
func (f *Fault) status() *spb.Status {
	code, msg := f.Code, f.Message
	if code == codes.OK {
		code = codes.Internal
	}
	if msg == "" {
		msg = fmt.Sprintf("local speech engine: %s (injected)", code)
	}
	return &spb.Status{Code: int32(code), Message: msg}
}

// faultFor returns the first fault among faults matching uri with the given
// scope.
func faultFor(faults []Fault, uri string, whole bool) *Fault {
	for i := range faults {
		if f := &faults[i]; f.WholeOperation == whole && f.Match != nil && f.Match(uri) {
			return f
		}
	}
	return nil
}
