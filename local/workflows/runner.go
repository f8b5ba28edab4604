package workflows

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// Options configure a Runner. The zero value works for workflows that
// neither publish nor call HTTP endpoints needing special clients.
type Options struct {
	// HTTPClient makes http.* calls; default a client without timeout
	// (each call has its own, from its timeout argument).
	HTTPClient *http.Client
	// PubSub publishes for googleapis.pubsub.v1.projects.topics.publish;
	// point it at the Pub/Sub emulator. Publish, when set, is used instead.
	PubSub  *pubsub.Client
	Publish PublishFunc
	// TimeScale multiplies every sys.sleep and every retry backoff: 0.001
	// turns a 30 s poll into 30 ms. 0 means 1 (real time). HTTP timeouts
	// are not scaled.
	TimeScale float64
	// Token returns the bearer token an http.* call with auth gets;
	// default an unsigned local JWT naming the audience.
	Token TokenFunc
	// Logger receives sys.log output and the runner's own records;
	// default slog.Default().
	Logger *slog.Logger
	// Observer is told about every step started, finished, failed or
	// retried. It is called from the run's goroutines (several at once in
	// parallel steps) and must not block.
	Observer func(StepEvent)
}

// PublishFunc publishes messages to a topic (projects/P/topics/T) and
// returns their message ids.
type PublishFunc func(ctx context.Context, topic string, msgs []PubSubMessage) ([]string, error)

// PubSubMessage is one message of a publish call.
type PubSubMessage struct {
	Data       []byte
	Attributes map[string]string
}

// TokenFunc makes the token of an authenticated HTTP call. authType is
// OIDC or OAuth2; audience is the OIDC audience (the URL by default).
type TokenFunc func(ctx context.Context, authType, audience string) (string, error)

// StepState is what happened to a step.
type StepState string

const (
	StepStarted  StepState = "started"
	StepFinished StepState = "finished"
	// StepFailed: the step raised an exception (it may be caught above).
	StepFailed StepState = "failed"
	// StepRetrying: a try step's body failed and is retried after Delay.
	StepRetrying StepState = "retrying"
)

// StepEvent reports one step of one run.
type StepEvent struct {
	Execution string // RunParams.Execution
	Routine   string // the subworkflow the step belongs to
	Step      string
	// Branch is the path of parallel branches the step runs in, such as
	// "process/transcribe" (iterations of a parallel for are numbered);
	// empty outside parallel steps.
	Branch string
	State  StepState
	// Error is the exception, for StepFailed and StepRetrying.
	Error any
	// Attempt (1-based) and Delay (scaled) describe a retry.
	Attempt int
	Delay   time.Duration
	Time    time.Time
}

// RunParams describe one run.
type RunParams struct {
	// Workflow is projects/P/locations/L/workflows/W; it gives the
	// built-in variables GOOGLE_CLOUD_PROJECT_ID, GOOGLE_CLOUD_LOCATION
	// and GOOGLE_CLOUD_WORKFLOW_ID.
	Workflow string
	// Execution is the execution's name (or id): its last path element is
	// GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID, and StepEvents carry it.
	Execution string
	// Env are the workflow's user-defined environment variables.
	Env map[string]string
	// Observer, when set, is told about this run's steps too.
	Observer func(StepEvent)
}

// StackElement is one frame of an exception's stack: the step it passed
// through in a routine (subworkflow).
type StackElement struct {
	Step    string
	Routine string
	Line    int
}

// ExecutionError is an exception no step caught: it fails the run.
type ExecutionError struct {
	// Payload is the raised value: a string or a map such as
	// {"message": ..., "tags": ["HttpError"], "code": 503, ...}.
	Payload any
	// Stack lists the steps the exception passed through, innermost first.
	Stack []StackElement
}

func (e *ExecutionError) Error() string {
	where := ""
	if len(e.Stack) > 0 {
		where = fmt.Sprintf(" in step %q, routine %q", e.Stack[0].Step, e.Stack[0].Routine)
	}
	return "workflow execution failed" + where + ": " + e.PayloadJSON()
}

// PayloadJSON is the payload as the Executions API shows it.
func (e *ExecutionError) PayloadJSON() string {
	b, err := encodeJSON(e.Payload, false)
	if err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(e.Payload))
	}
	return string(b)
}

// Context is the human-readable trace the Executions API shows.
func (e *ExecutionError) Context() string {
	var b strings.Builder
	b.WriteString("RuntimeError: ")
	b.WriteString(e.PayloadJSON())
	for _, s := range e.Stack {
		fmt.Fprintf(&b, "\nin step %q, routine %q, line: %d", s.Step, s.Routine, s.Line)
	}
	return b.String()
}

// Runner runs workflow definitions. It is safe for concurrent use; Close
// it to stop the Pub/Sub publishers it made.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu         sync.Mutex
	publishers map[string]*pubsub.Publisher
	closed     bool
}

// NewRunner returns a Runner with opts.
func NewRunner(opts Options) *Runner {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if opts.Token == nil {
		opts.Token = localToken
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Runner{opts: opts, log: log, publishers: map[string]*pubsub.Publisher{}}
}

// Close stops the runner's publishers. Runs still going fail to publish.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	pubs := r.publishers
	r.publishers = map[string]*pubsub.Publisher{}
	r.mu.Unlock()
	for _, p := range pubs {
		p.Stop()
	}
}

// Run executes def's main workflow with argument (the value main's single
// parameter receives; nil for none) and returns what main returns. An
// uncaught exception is an *ExecutionError; something the runner refuses at
// run time a *RefusalError; cancelling ctx stops the run with ctx's error.
func (r *Runner) Run(ctx context.Context, def *Definition, argument any, p RunParams) (any, error) {
	arg, err := fromGo(argument)
	if err != nil {
		return nil, fmt.Errorf("workflows: argument: %w", err)
	}
	x := &run{r: r, def: def, params: p, lib: library(runEnv(p))}
	main := def.subs["main"]
	f := &frame{x: x, sub: main}
	sc := f.newScope()
	if len(main.params) == 1 {
		sc.vars[main.params[0].name] = arg
	}
	fl, err := f.runSteps(ctx, main.steps, sc)
	if err != nil {
		if rz, ok := asRaised(err); ok {
			return nil, &ExecutionError{Payload: rz.value, Stack: rz.trace}
		}
		return nil, err
	}
	return fl.value, nil
}

// runEnv is what sys.get_env sees: the user's variables and the built-in
// ones.
func runEnv(p RunParams) map[string]string {
	env := map[string]string{}
	for k, v := range p.Env {
		env[k] = v
	}
	parts := strings.Split(p.Workflow, "/")
	if len(parts) == 6 && parts[0] == "projects" && parts[2] == "locations" && parts[4] == "workflows" {
		env["GOOGLE_CLOUD_PROJECT_ID"] = parts[1]
		env["GOOGLE_CLOUD_LOCATION"] = parts[3]
		env["GOOGLE_CLOUD_WORKFLOW_ID"] = parts[5]
		env["GOOGLE_CLOUD_WORKFLOW_REVISION_ID"] = "000001-local"
		env["GOOGLE_CLOUD_PROJECT_NUMBER"] = "0"
		env["GOOGLE_CLOUD_SERVICE_ACCOUNT_NAME"] = "workflows@" + parts[1] + ".iam.gserviceaccount.com"
	}
	if p.Execution != "" {
		env["GOOGLE_CLOUD_WORKFLOW_EXECUTION_ID"] = p.Execution[strings.LastIndex(p.Execution, "/")+1:]
	}
	return env
}
