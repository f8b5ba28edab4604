package speech

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/speech/apiv2/speechpb"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// An operation is done when three things hold: its files are processed, its
// Delay has passed, and it has been polled Polls times. Processing runs in
// the background from the start; a poll that finds the other two conditions
// met waits for it, so "done at the Nth poll" holds exactly however slow
// Cloud Storage is, and a test needs no sleeps.

// operation is one BatchRecognize operation.
type operation struct {
	name      string
	resource  string // the recognizer
	request   *speechpb.BatchRecognizeRequest
	uris      []string // input files, request order
	created   time.Time
	delay     time.Duration
	polls     int
	faults    []Fault // as they were when the operation started
	processed chan struct{}
	cancel    context.CancelFunc
	ctx       context.Context

	mu       sync.Mutex
	seen     int // GetOperation calls
	updated  time.Time
	files    map[string]*speechpb.BatchRecognizeTranscriptionMetadata
	response *speechpb.BatchRecognizeResponse
	failure  *spb.Status // the whole operation failed (or was cancelled)
	done     bool
}

// newOperation registers an operation for pl.
func (s *Server) newOperation(pl *plan, req *speechpb.BatchRecognizeRequest) *operation {
	now := s.now()
	ctx, cancel := context.WithCancel(s.ctx)
	op := &operation{
		name:      fmt.Sprintf("projects/%s/locations/%s/operations/%s", pl.project, pl.location, newID()),
		resource:  req.GetRecognizer(),
		request:   proto.Clone(req).(*speechpb.BatchRecognizeRequest),
		created:   now,
		processed: make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		updated:   now,
		files:     map[string]*speechpb.BatchRecognizeTranscriptionMetadata{},
	}
	for _, f := range req.GetFiles() {
		op.uris = append(op.uris, f.GetUri())
		op.files[f.GetUri()] = &speechpb.BatchRecognizeTranscriptionMetadata{}
	}
	s.mu.Lock()
	op.delay, op.polls, op.faults = s.delay, s.polls, slices.Clone(s.faults)
	s.ops[op.name] = op
	s.order = append(s.order, op.name)
	s.mu.Unlock()
	return op
}

// newID is a random UUID (version 4), as operation ids and output names use.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) operation(name string) (*operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op, ok := s.ops[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "local speech engine: operation %q not found (operations live in the server's memory: was it restarted?)", name)
	}
	return op, nil
}

// fileDone records one file's outcome in the operation's metadata.
func (op *operation) fileDone(uri string, res *speechpb.BatchRecognizeFileResult, now time.Time) {
	op.mu.Lock()
	defer op.mu.Unlock()
	m := &speechpb.BatchRecognizeTranscriptionMetadata{ProgressPercent: 100, Error: res.GetError()}
	m.Uri = res.GetCloudStorageResult().GetUri()
	op.files[uri] = m
	op.updated = now
}

// processedWith stores the outcome of processing: a response, or the whole
// operation's failure. A cancelled operation keeps its cancellation.
func (op *operation) processedWith(resp *speechpb.BatchRecognizeResponse, failure *spb.Status, now time.Time) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.done {
		return
	}
	op.response, op.failure, op.updated = resp, failure, now
}

// ready reports whether Delay and Polls allow the operation to be done.
func (op *operation) ready(now time.Time, countPolls bool) bool {
	return (!countPolls || op.seen >= op.polls) && !now.Before(op.created.Add(op.delay))
}

// settle waits for processing, if Delay and Polls allow the operation to be
// done, and marks it done.
func (op *operation) settle(ctx context.Context, now time.Time, countPolls bool) error {
	op.mu.Lock()
	due := !op.done && op.ready(now, countPolls)
	op.mu.Unlock()
	if !due {
		return nil
	}
	select {
	case <-op.processed:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	op.mu.Lock()
	if !op.done {
		op.done, op.updated = true, now
	}
	op.mu.Unlock()
	return nil
}

// proto renders the operation as the Operations service returns it.
func (op *operation) proto(now time.Time) (*longrunningpb.Operation, error) {
	op.mu.Lock()
	defer op.mu.Unlock()
	md := &speechpb.BatchRecognizeMetadata{TranscriptionMetadata: map[string]*speechpb.BatchRecognizeTranscriptionMetadata{}}
	processed := 0
	for uri, m := range op.files {
		md.TranscriptionMetadata[uri] = proto.Clone(m).(*speechpb.BatchRecognizeTranscriptionMetadata)
		if m.GetProgressPercent() == 100 {
			processed++
		}
	}
	meta := &speechpb.OperationMetadata{
		CreateTime:      timestamppb.New(op.created),
		UpdateTime:      timestamppb.New(op.updated),
		Resource:        op.resource,
		Method:          "google.cloud.speech.v2.Speech.BatchRecognize",
		Request:         &speechpb.OperationMetadata_BatchRecognizeRequest{BatchRecognizeRequest: op.request},
		ProgressPercent: op.progress(now, processed),
		Metadata:        &speechpb.OperationMetadata_BatchRecognizeMetadata{BatchRecognizeMetadata: md},
	}
	anyMeta, err := anypb.New(meta)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "local speech engine: operation metadata: %v", err)
	}
	out := &longrunningpb.Operation{Name: op.name, Metadata: anyMeta, Done: op.done}
	if !op.done {
		return out, nil
	}
	if op.failure != nil {
		out.Result = &longrunningpb.Operation_Error{Error: op.failure}
		return out, nil
	}
	anyResp, err := anypb.New(op.response)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "local speech engine: operation response: %v", err)
	}
	out.Result = &longrunningpb.Operation_Response{Response: anyResp}
	return out, nil
}

// progress is 100 when done, else the least advanced of processing, Delay
// and Polls, never 100.
func (op *operation) progress(now time.Time, processed int) int32 {
	if op.done {
		return 100
	}
	frac := 1.0
	if n := len(op.uris); n > 0 {
		frac = min(frac, float64(processed)/float64(n))
	}
	if op.delay > 0 {
		frac = min(frac, float64(now.Sub(op.created))/float64(op.delay))
	}
	if op.polls > 0 {
		frac = min(frac, float64(op.seen)/float64(op.polls))
	}
	return int32(min(99, max(0, frac*100)))
}

// cancelNow cancels an operation that is not done: it is done at once with
// CANCELLED, as google.longrunning prescribes.
func (op *operation) cancelNow(now time.Time) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.done {
		return
	}
	op.cancel()
	op.done, op.updated, op.response = true, now, nil
	op.failure = status.New(codes.Canceled, "local speech engine: operation cancelled").Proto()
}

// operationsService is google.longrunning.Operations for the server's
// operations.
type operationsService struct {
	longrunningpb.UnimplementedOperationsServer
	s *Server
}

func (o operationsService) GetOperation(ctx context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	op, err := o.s.operation(req.GetName())
	if err != nil {
		return nil, err
	}
	op.mu.Lock()
	op.seen++
	op.mu.Unlock()
	if err := op.settle(ctx, o.s.now(), true); err != nil {
		return nil, err
	}
	return op.proto(o.s.now())
}

// WaitOperation waits for processing and Delay (a wait is not counted
// against Polls: the caller asked to wait), at most the request's timeout.
func (o operationsService) WaitOperation(ctx context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	op, err := o.s.operation(req.GetName())
	if err != nil {
		return nil, err
	}
	if t := req.GetTimeout(); t != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.AsDuration())
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-o.s.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		op.mu.Lock()
		until := op.created.Add(op.delay).Sub(o.s.now())
		done := op.done
		op.mu.Unlock()
		if done || until <= 0 {
			break
		}
		select {
		case <-time.After(until):
		case <-ctx.Done():
			return op.proto(o.s.now()) // the latest state, as the method promises
		}
	}
	if err := op.settle(ctx, o.s.now(), false); err != nil && ctx.Err() == nil {
		return nil, err
	}
	return op.proto(o.s.now())
}

func (o operationsService) CancelOperation(_ context.Context, req *longrunningpb.CancelOperationRequest) (*emptypb.Empty, error) {
	op, err := o.s.operation(req.GetName())
	if err != nil {
		return nil, err
	}
	op.cancelNow(o.s.now())
	o.s.log.Info("operation cancelled", "operation", op.name)
	return &emptypb.Empty{}, nil
}

// DeleteOperation forgets an operation; it does not cancel it, as the method
// says (its processing runs to the end unseen).
func (o operationsService) DeleteOperation(_ context.Context, req *longrunningpb.DeleteOperationRequest) (*emptypb.Empty, error) {
	if _, err := o.s.operation(req.GetName()); err != nil {
		return nil, err
	}
	o.s.mu.Lock()
	delete(o.s.ops, req.GetName())
	o.s.order = slices.DeleteFunc(o.s.order, func(n string) bool { return n == req.GetName() })
	o.s.mu.Unlock()
	return &emptypb.Empty{}, nil
}

// ListOperations lists the operations under req.Name (e.g.
// projects/P/locations/L), oldest first. Filters are not supported: one is
// refused rather than ignored, so no caller depends on a filter that does
// nothing.
func (o operationsService) ListOperations(_ context.Context, req *longrunningpb.ListOperationsRequest) (*longrunningpb.ListOperationsResponse, error) {
	if req.GetFilter() != "" {
		return nil, status.Errorf(codes.InvalidArgument, "local speech engine: ListOperations filters are not supported (got %q)", req.GetFilter())
	}
	start := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "local speech engine: bad page token %q", t)
		}
		start = n
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > 100 {
		size = 100
	}
	prefix := strings.TrimSuffix(req.GetName(), "/operations")
	if prefix != "" {
		prefix += "/operations/"
	}
	o.s.mu.Lock()
	var ops []*operation
	for _, n := range o.s.order {
		if strings.HasPrefix(n, prefix) {
			ops = append(ops, o.s.ops[n])
		}
	}
	o.s.mu.Unlock()
	resp := &longrunningpb.ListOperationsResponse{}
	now := o.s.now()
	for i := start; i < len(ops) && i < start+size; i++ {
		p, err := ops[i].proto(now)
		if err != nil {
			return nil, err
		}
		resp.Operations = append(resp.Operations, p)
	}
	if start+size < len(ops) {
		resp.NextPageToken = strconv.Itoa(start + size)
	}
	return resp, nil
}
