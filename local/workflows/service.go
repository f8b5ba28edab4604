package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"

	"cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service is the local Workflows Executions API: workflows are registered
// with their definition and user environment variables, and each
// CreateExecution runs one in the background with a Runner. Executions are
// kept in memory for the life of the Service.
type Service struct {
	executionspb.UnimplementedExecutionsServer

	runner *Runner
	log    *slog.Logger
	ctx    context.Context // parent of every run; cancelled by Close
	stop   context.CancelFunc

	mu        sync.Mutex
	workflows map[string]*registered
	execs     map[string]*record
	seq       int
}

type registered struct {
	def *Definition
	env map[string]string
}

// record is one execution. pb is guarded by Service.mu and replaced, never
// modified, once handed out.
type record struct {
	pb        *executionspb.Execution
	seq       int
	cancel    context.CancelFunc
	cancelled bool
	done      chan struct{}
	steps     []StepEvent
}

// NewService returns a Service whose runs use a Runner made with opts
// (its Observer is told about every execution's steps).
func NewService(opts Options) *Service {
	ctx, stop := context.WithCancel(context.Background())
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{
		runner:    NewRunner(opts),
		log:       log,
		ctx:       ctx,
		stop:      stop,
		workflows: map[string]*registered{},
		execs:     map[string]*record{},
	}
}

var workflowNameRE = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/workflows/[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// Register makes workflow (projects/P/locations/L/workflows/W) run def
// with env as its user-defined environment variables. Registering a name
// again replaces its definition for executions created afterwards.
func (s *Service) Register(workflow string, def *Definition, env map[string]string) error {
	if !workflowNameRE.MatchString(workflow) {
		return fmt.Errorf("local workflows: %q is not a workflow name (projects/P/locations/L/workflows/W)", workflow)
	}
	if def == nil {
		return fmt.Errorf("local workflows: register %s: no definition", workflow)
	}
	for k := range env {
		if k == "" || strings.HasPrefix(k, "GOOGLE_") || strings.HasPrefix(k, "WORKFLOWS_") {
			return fmt.Errorf("local workflows: register %s: environment variable %q: names must be non-empty and not start with GOOGLE_ or WORKFLOWS_", workflow, k)
		}
	}
	copied := make(map[string]string, len(env))
	for k, v := range env {
		copied[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workflows[workflow] = &registered{def: def, env: copied}
	return nil
}

// RegisterFile loads the definition at path and registers it.
func (s *Service) RegisterFile(workflow, path string, env map[string]string) error {
	def, err := Load(path)
	if err != nil {
		return fmt.Errorf("local workflows: register %s: %w", workflow, err)
	}
	return s.Register(workflow, def, env)
}

// Listen serves the Executions API over gRPC (plaintext) on addr ("" is
// 127.0.0.1 on a free port) and returns the address to give the client
// with option.WithEndpoint. stop ends the server; it does not stop the
// executions (Close does).
func (s *Service) Listen(addr string) (address string, stop func(), err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("local workflows: listen on %s: %w", addr, err)
	}
	srv := grpc.NewServer()
	executionspb.RegisterExecutionsServer(srv, s)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("local workflows: gRPC server stopped", "err", err)
		}
	}()
	return ln.Addr().String(), srv.Stop, nil
}

// Close cancels every active execution, waits for them to end and stops
// the runner's publishers.
func (s *Service) Close() {
	s.stop()
	s.mu.Lock()
	var pending []chan struct{}
	for _, r := range s.execs {
		pending = append(pending, r.done)
	}
	s.mu.Unlock()
	for _, d := range pending {
		<-d
	}
	s.runner.Close()
}

const maxArgument = 32 * 1024

var labelKeyRE = regexp.MustCompile(`^\p{Ll}[\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
var labelValueRE = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)

func validateLabels(labels map[string]string) error {
	if len(labels) > 64 {
		return status.Errorf(codes.InvalidArgument, "execution has %d labels, at most 64 are allowed", len(labels))
	}
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) {
			return status.Errorf(codes.InvalidArgument, "label key %q: keys are 1 to 63 lowercase letters, digits, underscores or dashes, starting with a letter", k)
		}
		if !labelValueRE.MatchString(v) {
			return status.Errorf(codes.InvalidArgument, "label %q value %q: values are at most 63 lowercase letters, digits, underscores or dashes", k, v)
		}
	}
	return nil
}

// CreateExecution starts an execution of the parent workflow and returns
// it ACTIVE; the run goes on in the background.
func (s *Service) CreateExecution(_ context.Context, req *executionspb.CreateExecutionRequest) (*executionspb.Execution, error) {
	s.mu.Lock()
	wf, ok := s.workflows[req.GetParent()]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "workflow %q not found (the local Workflows service knows only registered workflows)", req.GetParent())
	}
	in := req.GetExecution()
	argument := in.GetArgument()
	if len(argument) > maxArgument {
		return nil, status.Errorf(codes.InvalidArgument, "argument is %d bytes, at most %d are allowed", len(argument), maxArgument)
	}
	var arg any
	if strings.TrimSpace(argument) != "" {
		var err error
		if arg, err = decodeJSON([]byte(argument)); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "argument is not valid JSON: %v", err)
		}
	}
	if err := validateLabels(in.GetLabels()); err != nil {
		return nil, err
	}
	labels := make(map[string]string, len(in.GetLabels()))
	for k, v := range in.GetLabels() {
		labels[k] = v
	}
	name := req.GetParent() + "/executions/" + uuid.NewString()
	pb := &executionspb.Execution{
		Name:               name,
		StartTime:          timestamppb.Now(),
		State:              executionspb.Execution_ACTIVE,
		Argument:           argument,
		WorkflowRevisionId: "000001-local",
		CallLogLevel:       in.GetCallLogLevel(),
		Labels:             labels,
		Status:             &executionspb.Execution_Status{},
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	s.seq++
	rec := &record{pb: pb, seq: s.seq, cancel: cancel, done: make(chan struct{})}
	s.execs[name] = rec
	out := proto.Clone(pb).(*executionspb.Execution)
	s.mu.Unlock()
	s.log.Info("local workflows: execution started", "execution", name)

	go s.execute(ctx, name, rec, wf, arg)
	return out, nil
}

func (s *Service) execute(ctx context.Context, name string, rec *record, wf *registered, arg any) {
	defer close(rec.done)
	defer rec.cancel()
	result, err := s.runner.Run(ctx, wf.def, arg, RunParams{
		Workflow:  strings.SplitN(name, "/executions/", 2)[0],
		Execution: name,
		Env:       wf.env,
		Observer:  func(e StepEvent) { s.observe(rec, e) },
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	pb := proto.Clone(rec.pb).(*executionspb.Execution)
	pb.EndTime = timestamppb.Now()
	pb.Duration = durationpb.New(pb.EndTime.AsTime().Sub(pb.StartTime.AsTime()))
	var ee *ExecutionError
	var refusal *RefusalError
	switch {
	case rec.cancelled:
		pb.State = executionspb.Execution_CANCELLED
		pb.Error = &executionspb.Execution_Error{Payload: `"Execution cancelled"`, Context: "Execution cancelled by CancelExecution"}
	case err == nil:
		b, jerr := encodeJSON(result, false)
		if jerr != nil {
			pb.State = executionspb.Execution_FAILED
			pb.Error = &executionspb.Execution_Error{Payload: describeValue(errorMap("TypeError", "the result cannot be returned: %v", jerr))}
			break
		}
		pb.State = executionspb.Execution_SUCCEEDED
		pb.Result = string(b)
	case errors.As(err, &ee):
		pb.State = executionspb.Execution_FAILED
		pb.Error = &executionspb.Execution_Error{Payload: ee.PayloadJSON(), Context: ee.Context(), StackTrace: stackTrace(ee.Stack)}
	case errors.As(err, &refusal):
		pb.State = executionspb.Execution_FAILED
		pb.Error = &executionspb.Execution_Error{
			Payload: describeValue(map[string]any{"message": refusal.Error(), "tags": []any{"LocalRunnerRefusal"}}),
			Context: refusal.Error(),
		}
	default:
		pb.State = executionspb.Execution_FAILED
		pb.Error = &executionspb.Execution_Error{Payload: describeValue(err.Error()), Context: err.Error()}
	}
	rec.pb = pb
	attrs := []any{"execution", name, "state", pb.State.String(), "duration", pb.Duration.AsDuration()}
	if pb.Error != nil {
		attrs = append(attrs, "error", pb.Error.GetContext())
	}
	if refusal != nil {
		s.log.Error("local workflows: execution refused", attrs...)
	} else {
		s.log.Info("local workflows: execution ended", attrs...)
	}
}

func stackTrace(stack []StackElement) *executionspb.Execution_StackTrace {
	st := &executionspb.Execution_StackTrace{}
	for _, e := range stack {
		st.Elements = append(st.Elements, &executionspb.Execution_StackTraceElement{
			Step:     e.Step,
			Routine:  e.Routine,
			Position: &executionspb.Execution_StackTraceElement_Position{Line: int64(e.Line)},
		})
	}
	return st
}

// observe records a step of rec and keeps its status current.
func (s *Service) observe(rec *record, e StepEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.steps = append(rec.steps, e)
	if e.State == StepStarted && rec.pb.GetState() == executionspb.Execution_ACTIVE {
		pb := proto.Clone(rec.pb).(*executionspb.Execution)
		pb.Status = &executionspb.Execution_Status{CurrentSteps: []*executionspb.Execution_Status_Step{{Routine: e.Routine, Step: e.Step}}}
		rec.pb = pb
	}
}

// GetExecution returns an execution (FULL view unless BASIC is asked).
func (s *Service) GetExecution(_ context.Context, req *executionspb.GetExecutionRequest) (*executionspb.Execution, error) {
	s.mu.Lock()
	rec, ok := s.execs[req.GetName()]
	var pb *executionspb.Execution
	if ok {
		pb = rec.pb
	}
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "execution %q not found", req.GetName())
	}
	return view(pb, req.GetView(), executionspb.ExecutionView_FULL), nil
}

// CancelExecution cancels an ACTIVE execution: its run's context is
// cancelled and it ends CANCELLED.
func (s *Service) CancelExecution(_ context.Context, req *executionspb.CancelExecutionRequest) (*executionspb.Execution, error) {
	s.mu.Lock()
	rec, ok := s.execs[req.GetName()]
	if !ok {
		s.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "execution %q not found", req.GetName())
	}
	if rec.pb.GetState() != executionspb.Execution_ACTIVE || rec.cancelled {
		st := rec.pb.GetState()
		s.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "execution %q is %s, only an ACTIVE execution can be cancelled", req.GetName(), st)
	}
	rec.cancelled = true
	s.mu.Unlock()
	rec.cancel()
	<-rec.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(rec.pb).(*executionspb.Execution), nil
}

// view applies an ExecutionView to a copy of pb.
func view(pb *executionspb.Execution, v, def executionspb.ExecutionView) *executionspb.Execution {
	if v == executionspb.ExecutionView_EXECUTION_VIEW_UNSPECIFIED {
		v = def
	}
	if v == executionspb.ExecutionView_BASIC {
		return &executionspb.Execution{
			Name:               pb.GetName(),
			StartTime:          pb.GetStartTime(),
			EndTime:            pb.GetEndTime(),
			Duration:           pb.GetDuration(),
			State:              pb.GetState(),
			WorkflowRevisionId: pb.GetWorkflowRevisionId(),
		}
	}
	return proto.Clone(pb).(*executionspb.Execution)
}

// Executions returns workflow's executions (every workflow's when
// workflow is empty), newest first, in the FULL view.
func (s *Service) Executions(workflow string) []*executionspb.Execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*executionspb.Execution
	for _, rec := range s.sorted(workflow) {
		out = append(out, proto.Clone(rec.pb).(*executionspb.Execution))
	}
	return out
}

// sorted returns the records of workflow, newest first. s.mu is held.
func (s *Service) sorted(workflow string) []*record {
	var recs []*record
	for name, rec := range s.execs {
		if workflow == "" || strings.HasPrefix(name, workflow+"/executions/") {
			recs = append(recs, rec)
		}
	}
	sortRecords(recs, orderSpec{field: "startTime", desc: true})
	return recs
}

// Wait blocks until the named execution has ended (or ctx is done) and
// returns it.
func (s *Service) Wait(ctx context.Context, name string) (*executionspb.Execution, error) {
	s.mu.Lock()
	rec, ok := s.execs[name]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("local workflows: execution %q not found", name)
	}
	select {
	case <-rec.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("local workflows: wait for %s: %w", name, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(rec.pb).(*executionspb.Execution), nil
}

// Steps returns the step events of the named execution so far, in order.
func (s *Service) Steps(name string) []StepEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.execs[name]
	if !ok {
		return nil
	}
	return append([]StepEvent(nil), rec.steps...)
}

// ListExecutions lists a workflow's executions with the API's filter,
// ordering and paging.
func (s *Service) ListExecutions(_ context.Context, req *executionspb.ListExecutionsRequest) (*executionspb.ListExecutionsResponse, error) {
	s.mu.Lock()
	_, known := s.workflows[req.GetParent()]
	s.mu.Unlock()
	if !known {
		return nil, status.Errorf(codes.NotFound, "workflow %q not found (the local Workflows service knows only registered workflows)", req.GetParent())
	}
	filter, err := parseFilter(req.GetFilter())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "filter %q: %v", req.GetFilter(), err)
	}
	order, err := parseOrderBy(req.GetOrderBy())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "order_by %q: %v", req.GetOrderBy(), err)
	}
	v := req.GetView()
	if v == executionspb.ExecutionView_EXECUTION_VIEW_UNSPECIFIED {
		v = executionspb.ExecutionView_BASIC
	}
	size := int(req.GetPageSize())
	maxSize := 1000
	if v == executionspb.ExecutionView_FULL {
		maxSize = 100
	}
	if size <= 0 {
		size = 100
	}
	size = min(size, maxSize)
	offset, err := parsePageToken(req.GetPageToken())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "page_token: %v", err)
	}

	s.mu.Lock()
	var matched []*record
	for _, rec := range s.sorted(req.GetParent()) {
		if filter.match(rec.pb) {
			matched = append(matched, rec)
		}
	}
	sortRecords(matched, order)
	resp := &executionspb.ListExecutionsResponse{}
	for i := offset; i < len(matched) && i < offset+size; i++ {
		resp.Executions = append(resp.Executions, view(matched[i].pb, v, v))
	}
	if offset+size < len(matched) {
		resp.NextPageToken = pageToken(offset + size)
	}
	s.mu.Unlock()
	return resp, nil
}
