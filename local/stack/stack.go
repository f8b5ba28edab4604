// Package stack runs the whole pipeline on one machine (DESIGN.md section 6):
// the official Firestore and Pub/Sub emulators, an in-process Cloud Storage
// server, the local Hotmart server and media host, the functions themselves
// served by functions-framework in their own process (the binary Cloud
// Functions would run), and the local Eventarc delivering CloudEvents to them.
// `pipeline run` and the end-to-end tests both use it: there is one stack.
package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coursekb/pipeline/functions/detector"
	"github.com/coursekb/pipeline/local/chaos"
	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/faultproxy"
	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/hotmart"
	"github.com/coursekb/pipeline/local/mediahost"
	"github.com/coursekb/pipeline/local/meter"
	"github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/local/proc"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/slack"
	"github.com/coursekb/pipeline/local/smtp"
	"github.com/coursekb/pipeline/local/speech"
	"github.com/coursekb/pipeline/local/workflows"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Names the stack gives the cloud resources, as Terraform does.
const (
	DefaultProjectID = "coursekb-local"
	RawBucket        = "coursekb-raw"
	ArtifactBucket   = "coursekb-artifacts"
	// FinalizeTopic carries the raw bucket's object notifications.
	FinalizeTopic = "raw-object-finalized"
	// ManifestObject is where the stack puts the media manifest, as a
	// producer would in production.
	ManifestObject = "media/manifest.json"
	// WorkflowLocation is the region of the local Workflows service.
	WorkflowLocation = "us-central1"
	// DefaultMaxDeliveryAttempts is Pub/Sub's delivery limit on the stack's
	// subscriptions, as terraform's max_delivery_attempts.
	DefaultMaxDeliveryAttempts = 15
)

// Options configure Start.
type Options struct {
	// Dir holds the stack's files (storage, binaries); required.
	Dir string
	// ProjectID names the project in the emulators (default
	// DefaultProjectID); tests sharing emulators use one each.
	ProjectID string
	// Catalog is the course the local Hotmart server serves.
	Catalog sample.Catalog
	// MediaDir is what the media host serves; Videos are listed in the
	// media manifest (the videos sample.Generate made there).
	MediaDir string
	Videos   []sample.Video
	// Logs receives the functions' and servers' logs (default: discarded).
	Logs io.Writer
	// Observer is told of every delivery the local Eventarc makes.
	Observer func(eventarc.Delivery)
	// MinBackoff and MaxBackoff bound redelivery waits (defaults 1 s, 10 s:
	// shorter than Pub/Sub's so a demo does not stall).
	MinBackoff, MaxBackoff time.Duration
	// MaxDeliveryAttempts before a message is dead-lettered (default
	// DefaultMaxDeliveryAttempts).
	MaxDeliveryAttempts int
	// AckDeadline bounds each delivery to a function (default 600 s, as in
	// Pub/Sub): a function that hangs gets the message again.
	AckDeadline time.Duration
	// Env adds or overrides variables of the functions' environment.
	Env map[string]string
	// FunctionTimeouts cut a function's request off after that long, by
	// entry point, as Cloud Run does at the function's timeout (default:
	// none).
	FunctionTimeouts map[string]time.Duration
	// SweepEvery is how often the local Cloud Scheduler calls the sweeper
	// (default 5 s; negative: never, the test sweeps by hand).
	SweepEvery time.Duration
	// Faults puts a fault proxy (local/faultproxy) between the functions
	// and Firestore, and one between them and Cloud Storage, so a test can
	// take either away for a while (Stack.FirestoreFaults, StorageFaults).
	Faults bool
	// WorkflowEnv adds or overrides the lesson-pipeline workflow's
	// environment (POLL_SECONDS, MAX_POLLS, ...).
	WorkflowEnv map[string]string
	// StepObserver is told of every step the local Workflows service runs.
	StepObserver func(workflows.StepEvent)
	// Meter puts counters at the doors (local/meter): a gRPC proxy in
	// front of each emulator, which everything in the stack reaches it
	// through (the functions, this process's clients, the local Workflows
	// service's Pub/Sub connector, the Cloud Storage notifications), and a
	// proxy in front of the functions that times their requests.
	// Stack.Meters has them; Stack.Watch reads without being counted.
	Meter bool
	// Chaos makes the outside services, the deliveries and the media host
	// misbehave (issue 9); the zero value changes nothing.
	Chaos Chaos
}

// Stack is a running one-machine pipeline.
type Stack struct {
	opts      Options
	ProjectID string

	Firestore, PubSub *emulators.Emulator
	GCS               *gcs.Server
	Hotmart           *hotmart.Server
	HotmartURL        string
	Media             *mediahost.Host
	MediaURL          string
	FunctionsURL      string

	FS      *firestore.Client
	PS      *pubsub.Client
	Storage *storage.Client
	State   *lessonstate.Store
	// Watch reads the same lessons as State; with Options.Meter its reads
	// go through the meter's quiet door and are not counted.
	Watch *lessonstate.Store
	// Meters are the counters at the doors (Options.Meter); zero otherwise.
	Meters Doors

	// firestoreAddr and pubsubAddr are where the stack's clients and the
	// functions reach the emulators: the meters when they count.
	firestoreAddr, pubsubAddr string
	chaosHTTP                 map[string]*chaos.Handler
	chaosSpeech               *chaos.GRPC
	chaosMail                 *mailChaos

	// FirestoreFaults and StorageFaults stand between the functions and
	// those services when Options.Faults is set; nil otherwise.
	FirestoreFaults, StorageFaults *faultproxy.Proxy

	// The local stand-ins of Workflows, Speech-to-Text, Gemini and OpenAI,
	// with the addresses the functions' clients are pointed at.
	Workflows     *workflows.Service
	WorkflowsAddr string
	Speech        *speech.Server
	SpeechAddr    string
	Gemini        *gemini.Server
	GeminiURL     string
	OpenAI        *openai.Server
	OpenAIURL     string
	scripts       atomic.Value // speech.Scripts of the current catalog
	// Slack and Mail keep what the notifier sent.
	Slack    *slack.Server
	SlackURL string
	Mail     *smtp.Server
	MailAddr string

	root      string // the module's directory
	publisher *events.Publisher
	quietPub  *events.Publisher
	stops     []func()
	busCancel context.CancelFunc
	busDone   chan error
	mu        sync.Mutex

	// The functions process, which RestartFunctions replaces.
	fnBin, fnAddr string
	fnMu          sync.Mutex
	fn            *proc.Process
	fnPID         int
	fnPeak        int64 // the largest VmHWM of a killed functions process, bytes
	restarts      int
	sweeps        sweepLog
}

// Routes are the subscriptions of ours that feed the functions (DESIGN.md
// section 2), pointed at functionsURL.
func Routes(functionsURL string, o Options) []eventarc.Route {
	route := func(name, topic, entry string) eventarc.Route {
		return eventarc.Route{
			Name:                name,
			Topic:               topic,
			Subscription:        name + "-" + topic,
			Target:              functionsURL + "/" + entry,
			DeadLetterTopic:     topic + "-" + name + "-dlq",
			MaxDeliveryAttempts: o.MaxDeliveryAttempts,
			MinBackoff:          o.MinBackoff,
			MaxBackoff:          o.MaxBackoff,
			AckDeadline:         o.AckDeadline,
		}
	}
	// The starter's storage trigger: Eventarc makes that subscription
	// itself in the cloud, with no dead-letter policy; here the local
	// Eventarc reads the bucket's notifications.
	finalize := route("starter-finalize", FinalizeTopic, "Starter")
	finalize.Subscription, finalize.Storage = "starter-finalize", true
	// The syncer retires removed lessons: its subscription on
	// lesson-events takes removals only, as Terraform's filter does.
	removed := route("syncer-removed", events.TopicLessonEvents, "Syncer")
	removed.Filter = `attributes.kind = "removed"`
	routes := []eventarc.Route{
		route("downloader", events.TopicLessonDiscovered, "Downloader"),
		finalize,
		route("starter", events.TopicLessonDownloaded, "Starter"),
		route("enricher", events.TopicLessonProcessed, "Enricher"),
		route("syncer", events.TopicLessonEnriched, "Syncer"),
		removed,
		route("replayer", events.TopicLessonReplay, "Replayer"),
	}
	// The notifier reads lesson-events and every other route's dead
	// letters (its own dead letters would only loop back to it).
	notifier := route("notifier", events.TopicLessonEvents, "Notifier")
	for _, r := range routes {
		dl := route("notifier-"+r.Name+"-dead-letters", r.DeadLetterTopic, "Notifier")
		dl.Subscription = r.DeadLetterTopic + "-notifier"
		routes = append(routes, dl)
	}
	return append(routes, notifier)
}

// Topics the functions publish to that no route of this stage reads yet;
// they must exist for publishing to succeed.
var publishedTopics = []string{
	events.TopicLessonProcessed, events.TopicLessonEnriched, events.TopicLessonEvents, events.TopicLessonReplay,
	events.TopicLessonDownloaded, FinalizeTopic,
}

// Start brings the stack up. On error everything started so far is stopped.
// It sets the emulator variables in this process's environment, so clients
// made afterwards (and the Cloud Storage server's notifier) find them.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Dir == "" {
		return nil, errors.New("stack: Options.Dir is required")
	}
	if opts.Logs == nil {
		opts.Logs = io.Discard
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.MaxDeliveryAttempts == 0 {
		// Well above the stages' attempts (MAX_ATTEMPTS, 5), as in
		// Terraform: a lesson fails by its stage's count, with its reason,
		// and a dead letter is an alarm.
		opts.MaxDeliveryAttempts = DefaultMaxDeliveryAttempts
	}
	if opts.ProjectID == "" {
		opts.ProjectID = DefaultProjectID
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = 5 * time.Second
	}
	s := &Stack{opts: opts, ProjectID: opts.ProjectID}
	if s.root, err = ModuleRoot(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	// Build the functions while the emulators start: both take seconds.
	type built struct {
		path string
		err  error
	}
	binc := make(chan built, 1)
	go func() {
		p, err := Build(ctx, "./cmd/functions", filepath.Join(opts.Dir, "bin"))
		binc <- built{p, err}
	}()

	if s.Firestore, err = emulators.Start(ctx, emulators.Firestore); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, s.Firestore.Stop)
	if s.PubSub, err = emulators.Start(ctx, emulators.PubSub); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, s.PubSub.Stop)
	s.firestoreAddr, s.pubsubAddr = s.Firestore.Host, s.PubSub.Host
	if opts.Meter {
		if err := s.startMeters(); err != nil {
			return nil, err
		}
	}
	s.setenv(emulators.Firestore.EnvVar(), s.firestoreAddr)
	s.setenv(emulators.PubSub.EnvVar(), s.pubsubAddr)

	if s.PS, err = pubsub.NewClient(ctx, s.ProjectID); err != nil {
		return nil, fmt.Errorf("stack: pubsub client: %w", err)
	}
	s.stops = append(s.stops, func() { s.PS.Close() })
	s.publisher = events.NewPublisher(s.PS)
	s.stops = append(s.stops, s.publisher.Close)
	if err := s.startQuietPublisher(ctx); err != nil {
		return nil, err
	}
	for _, t := range publishedTopics {
		if err := createTopic(ctx, s.PS, s.ProjectID, t); err != nil {
			return nil, err
		}
	}

	if s.GCS, err = gcs.Start(gcs.Options{
		Root: filepath.Join(opts.Dir, "gcs"), Buckets: []string{RawBucket, ArtifactBucket},
		NotifyProjectID: s.ProjectID, NotifyTopic: FinalizeTopic, NotifyBucket: RawBucket, NotifyPrefix: "lessons/",
	}); err != nil {
		return nil, fmt.Errorf("stack: storage server: %w", err)
	}
	s.stops = append(s.stops, s.GCS.Stop)
	s.setenv("STORAGE_EMULATOR_HOST", s.GCS.Host())
	s.Storage = s.GCS.Client()

	if s.FS, err = firestore.NewClient(ctx, s.ProjectID); err != nil {
		return nil, fmt.Errorf("stack: firestore client: %w", err)
	}
	s.stops = append(s.stops, func() { s.FS.Close() })
	s.State, s.Watch = lessonstate.New(s.FS), lessonstate.New(s.FS)
	if opts.Meter {
		if s.Watch, err = s.quietStore(ctx); err != nil {
			return nil, err
		}
	}

	s.Hotmart = hotmart.NewServer(opts.Catalog, hotmart.Options{})
	if s.Media, err = mediahost.New(opts.MediaDir); err != nil {
		return nil, err
	}
	if err := s.startOutsideServers(); err != nil {
		return nil, err
	}
	if err := s.PutManifest(ctx, opts.Videos); err != nil {
		return nil, err
	}

	if opts.Faults {
		if s.FirestoreFaults, err = faultproxy.Start(s.firestoreAddr); err != nil {
			return nil, err
		}
		s.stops = append(s.stops, s.FirestoreFaults.Close)
		if s.StorageFaults, err = faultproxy.Start(s.GCS.Host()); err != nil {
			return nil, err
		}
		s.stops = append(s.stops, s.StorageFaults.Close)
	}

	if err := s.startEngines(opts); err != nil {
		return nil, err
	}

	b := <-binc
	if b.err != nil {
		return nil, fmt.Errorf("stack: %w", b.err)
	}
	if s.fnAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	s.fnBin = b.path
	s.FunctionsURL = "http://" + s.fnAddr
	if opts.Meter {
		if s.Meters.Functions, err = meter.StartFunctions(s.FunctionsURL); err != nil {
			return nil, err
		}
		s.stops = append(s.stops, s.Meters.Functions.Close)
		s.FunctionsURL = s.Meters.Functions.URL()
	}
	s.stops = append(s.stops, func() {
		s.fnMu.Lock()
		defer s.fnMu.Unlock()
		s.fn.Stop()
	})
	if err := s.startFunctions(ctx); err != nil {
		return nil, err
	}

	if err := s.Workflows.RegisterFile(s.WorkflowName(), filepath.Join(s.root, "workflows", "lesson-pipeline.yaml"), s.workflowEnv()); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	routes := Routes(s.FunctionsURL, opts)
	if err := eventarc.Setup(ctx, s.PS, s.ProjectID, routes); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	busLog := slog.New(slog.NewJSONHandler(opts.Logs, nil))
	bus := eventarc.New(s.PS, s.ProjectID, routes, eventarc.Options{
		Observer: opts.Observer, ObserveDeadLetters: true, Logger: busLog,
		Copies: opts.Chaos.Copies, Jitter: opts.Chaos.Jitter, Seed: opts.Chaos.Seed,
	})
	busCtx, cancel := context.WithCancel(context.Background())
	s.busCancel, s.busDone = cancel, make(chan error, 1)
	go func() { s.busDone <- superviseBus(busCtx, bus, busLog) }()
	if opts.SweepEvery > 0 {
		go s.schedule(busCtx, opts.SweepEvery)
	}
	return s, nil
}

// startFunctions starts the functions process on the stack's address and
// waits until it answers.
func (s *Stack) startFunctions(ctx context.Context) error {
	cmd := exec.Command(s.fnBin)
	cmd.Env = append(os.Environ(), s.functionsEnv(s.fnAddr)...)
	cmd.Stdout, cmd.Stderr = s.opts.Logs, s.opts.Logs
	fn, err := proc.Start("functions", cmd)
	if err != nil {
		return err
	}
	s.fnMu.Lock()
	s.fn, s.fnPID = fn, cmd.Process.Pid
	s.fnMu.Unlock()
	if err := waitHTTP(ctx, fn, "http://"+s.fnAddr+"/", 60*time.Second); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	return nil
}

// SetFunctionEnv changes variables of the functions' environment; they take
// effect at the next RestartFunctions, as a redeploy's would.
func (s *Stack) SetFunctionEnv(vars map[string]string) {
	s.fnMu.Lock()
	defer s.fnMu.Unlock()
	if s.opts.Env == nil {
		s.opts.Env = map[string]string{}
	}
	maps.Copy(s.opts.Env, vars)
}

// KillFunctions kills the functions process at once, requests in flight
// included, as when Cloud Run loses an instance.
func (s *Stack) KillFunctions() {
	s.fnMu.Lock()
	defer s.fnMu.Unlock()
	s.fnPeak = max(s.fnPeak, vmHWM(s.fnPID))
	s.fn.Kill()
}

// RestartFunctions kills the functions process and starts a new one on the
// same address, as Cloud Run replaces a crashed instance: what the old one
// was doing is lost; Pub/Sub, the leases and the sweeper must recover it.
func (s *Stack) RestartFunctions(ctx context.Context) error {
	s.KillFunctions()
	s.fnMu.Lock()
	s.restarts++
	s.fnMu.Unlock()
	return s.startFunctions(ctx)
}

func (s *Stack) functionsEnv(addr string) []string {
	catalog := map[string]map[string]string{}
	for _, p := range s.opts.Catalog.Products {
		catalog[strconv.FormatInt(p.ID, 10)] = map[string]string{"subdomain": p.ClubSubdomain, "school": p.School}
	}
	cj, _ := json.Marshal(catalog)
	ho := s.Hotmart.Options()
	env := map[string]string{
		"PORT":                    portOf(addr),
		"HOST":                    "127.0.0.1",
		"GOOGLE_CLOUD_PROJECT":    s.ProjectID,
		"FIRESTORE_EMULATOR_HOST": s.firestoreAddr,
		"PUBSUB_EMULATOR_HOST":    s.pubsubAddr,
		"STORAGE_EMULATOR_HOST":   s.GCS.Host(),
		"RAW_BUCKET":              RawBucket,
		"ARTIFACTS_BUCKET":        ArtifactBucket,
		"HOTMART_BASE_URL":        s.HotmartURL,
		"HOTMART_TOKEN_URL":       s.HotmartURL + "/security/oauth/token",
		"HOTMART_CLIENT_ID":       ho.ClientID,
		"HOTMART_CLIENT_SECRET":   ho.ClientSecret,
		"HOTMART_BASIC_TOKEN":     ho.BasicToken,
		"COURSE_CATALOG":          string(cj),
		"MEDIA_MANIFEST_URI":      "gs://" + RawBucket + "/" + ManifestObject,
		"MEDIA_INGEST_PREFIX":     "ingest",
		"DETECTION_BUDGET":        "2m",
		"DOWNLOAD_LEASE":          "2m",
		"PENDING_AFTER":           "1m",
		// Stages retry at once here (tests drive retries through
		// redeliveries); the load run sets a backoff.
		"STAGE_RETRY_BACKOFF": "0s",
		"LOG_LEVEL":           "info",
		// The process step: the starter starts executions on the local
		// Workflows service; the branches' functions talk to the local
		// engines through their SDKs' endpoint options.
		"WORKFLOW":           s.WorkflowName(),
		"WORKFLOWS_ENDPOINT": s.WorkflowsAddr,
		"SPEECH_ENDPOINT":    s.SpeechAddr,
		"SPEECH_LOCATION":    "us",
		"GEMINI_BASE_URL":    s.GeminiURL,
		"GEMINI_LOCATION":    WorkflowLocation,
		// The knowledge stages talk to the local OpenAI server.
		"OPENAI_API_KEY":  "local",
		"OPENAI_BASE_URL": s.OpenAIURL,
		// The notifier's channels: the local Slack webhook and SMTP
		// receiver. A run's digest waits for the run's record to end.
		"SLACK_WEBHOOK_URL": s.SlackURL,
		"SMTP_HOST":         hostOf(s.MailAddr),
		"SMTP_PORT":         portOf(s.MailAddr),
		"MAIL_FROM":         "Course KB <notifier@coursekb.local>",
		"MAIL_TO":           "producer@coursekb.local",
		"NOTIFY_RUN_WAIT":   "100s",
	}
	if s.FirestoreFaults != nil {
		env["FIRESTORE_EMULATOR_HOST"] = s.FirestoreFaults.Addr()
	}
	if s.StorageFaults != nil {
		env["STORAGE_EMULATOR_HOST"] = s.StorageFaults.Addr()
	}
	if len(s.opts.FunctionTimeouts) > 0 {
		var parts []string
		for name, d := range s.opts.FunctionTimeouts {
			parts = append(parts, name+"="+d.String())
		}
		env["FUNCTION_TIMEOUTS"] = strings.Join(parts, ",")
	}
	for k, v := range s.opts.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// PutManifest writes the media manifest listing videos, served by the media
// host, into the raw bucket, where the detector reads it.
func (s *Stack) PutManifest(ctx context.Context, videos []sample.Video) error {
	var buf bytes.Buffer
	// Links are signed when the media host requires it, as a producer's
	// host does: valid for an hour, until the host's key changes.
	link := func(_, file string) string { return s.MediaURL + s.Media.Sign(file, time.Hour) }
	for _, v := range videos {
		if v.Duration > 0 && s.Gemini != nil { // at start-up the engines get them from Options
			s.Gemini.SetDuration(v.PageID, v.Duration)
		}
	}
	if err := sample.WriteManifest(videos, link, &buf); err != nil {
		return err
	}
	return s.PutObject(ctx, RawBucket, ManifestObject, buf.Bytes(), nil)
}

// PutObject writes an object, as a producer or an earlier stage would.
func (s *Stack) PutObject(ctx context.Context, bucket, name string, data []byte, md map[string]string) error {
	w := s.Storage.Bucket(bucket).Object(name).NewWriter(ctx)
	w.Metadata = md
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("stack: write gs://%s/%s: %w", bucket, name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("stack: write gs://%s/%s: %w", bucket, name, err)
	}
	return nil
}

// Detect runs one detection, as Cloud Scheduler does: an HTTP call to the
// detector function.
func (s *Stack) Detect(ctx context.Context) (detector.Summary, error) {
	var sum detector.Summary
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.FunctionsURL+"/Detector", nil)
	if err != nil {
		return sum, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sum, fmt.Errorf("call detector: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &sum); err != nil {
		return sum, fmt.Errorf("detector answered %s: %s", resp.Status, body)
	}
	// 2xx is a run that ended (complete, stopped at its budget, partial):
	// its summary says how. Anything else is a run a retry may fix.
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return sum, fmt.Errorf("detector answered %s: %v", resp.Status, sum.Errors)
	}
	return sum, nil
}

// Publish publishes a message the way `gcloud pubsub topics publish` does:
// any bytes, valid or not.
func (s *Stack) Publish(ctx context.Context, topic string, data []byte, attrs map[string]string) error {
	_, err := s.publisher.PublishRaw(ctx, topic, data, attrs)
	return err
}

// Tap creates a subscription on topic that records what is published there
// from now on, for tests and the demo's summary.
func (s *Stack) Tap(ctx context.Context, topic, name string) (*Tap, error) {
	sub := "projects/" + s.ProjectID + "/subscriptions/" + name
	if _, err := s.PS.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: "projects/" + s.ProjectID + "/topics/" + topic,
	}); err != nil && status.Code(err) != codes.AlreadyExists {
		return nil, fmt.Errorf("stack: tap %s: %w", topic, err)
	}
	t := &Tap{}
	tctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.PS.Subscriber(name).Receive(tctx, func(_ context.Context, m *pubsub.Message) {
			t.mu.Lock()
			t.msgs = append(t.msgs, m)
			t.mu.Unlock()
			m.Ack()
		})
	}()
	s.mu.Lock()
	s.stops = append(s.stops, func() { cancel(); <-done })
	s.mu.Unlock()
	return t, nil
}

// Tap holds the messages a tapped topic received.
type Tap struct {
	mu   sync.Mutex
	msgs []*pubsub.Message
}

// Events decodes what the tap has received so far.
func (t *Tap) Events() []events.LessonEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]events.LessonEvent, 0, len(t.msgs))
	for _, m := range t.msgs {
		var ev events.LessonEvent
		if json.Unmarshal(m.Data, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// Messages returns the raw messages received so far.
func (t *Tap) Messages() []*pubsub.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*pubsub.Message(nil), t.msgs...)
}

// Stop shuts the stack down: the bus first (so nothing is delivered to a
// stopped function), then everything else in reverse start order.
func (s *Stack) Stop() {
	if s.busCancel != nil {
		s.busCancel()
		select {
		case <-s.busDone:
		case <-time.After(10 * time.Second):
		}
		s.busCancel = nil
	}
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// setenv sets a variable for this process until Stop, which restores it: a
// later stack must not find the address of an emulator this one stopped.
func (s *Stack) setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	s.stops = append(s.stops, func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

// superviseBus keeps the local Eventarc receiving until ctx ends, as the
// real one would: a receive that fails (the emulator refusing a streaming
// pull for a moment, say) is logged and restarted instead of leaving the
// stack silently delivering nothing.
func superviseBus(ctx context.Context, bus *eventarc.Bus, log *slog.Logger) error {
	for {
		err := bus.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		log.Error("local eventarc stopped receiving; restarting", "error", fmt.Sprint(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func createTopic(ctx context.Context, ps *pubsub.Client, projectID, topic string) error {
	_, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + projectID + "/topics/" + topic})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("stack: create topic %s: %w", topic, err)
	}
	return nil
}
