package transcribe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	speech "cloud.google.com/go/speech/apiv2"
	"cloud.google.com/go/speech/apiv2/speechpb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/coursekb/pipeline/shared/failure"
)

// MaxFiles is the most files one BatchRecognize request may name. A lesson
// cut into more segments (over 4 h 45 min with chirp_3) is recognized by
// several operations, started together and named by one handle.
const MaxFiles = 15

// callTimeout bounds one call to the service (the client retries
// UNAVAILABLE by itself, with backoff, for as long as it is let): a call
// that cannot get through answers retryable well within the function's
// timeout and the workflow's.
const callTimeout = 2 * time.Minute

// handleSep joins the operation names of one recognition into the handle
// the workflow polls (operation names hold no commas).
const handleSep = ","

// Speech starts, polls and cancels Speech-to-Text v2 batch recognitions,
// with one client per location (each location has its own endpoint, and an
// operation is polled where it runs).
type Speech struct {
	project  string
	strategy speechpb.BatchRecognizeRequest_ProcessingStrategy
	override *speech.Client // SPEECH_ENDPOINT: one client for every location
	clients  map[string]*speech.Client
}

// DialSpeech creates the clients cfg needs: the regional endpoints of the
// primary and fallback locations, or cfg.Endpoint for both.
func DialSpeech(ctx context.Context, cfg Config) (_ *Speech, err error) {
	s := &Speech{project: cfg.ProjectID, clients: map[string]*speech.Client{}}
	if cfg.ProcessingStrategy == StrategyDynamic {
		s.strategy = speechpb.BatchRecognizeRequest_DYNAMIC_BATCHING
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if cfg.Endpoint != "" {
		opts := []option.ClientOption{option.WithEndpoint(cfg.Endpoint)}
		if loopback(cfg.Endpoint) {
			// The local speech server: plain gRPC, no credentials.
			opts = append(opts, option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		}
		if s.override, err = speech.NewClient(ctx, opts...); err != nil {
			return nil, fmt.Errorf("speech client for %s: %w", cfg.Endpoint, err)
		}
		return s, nil
	}
	locations := []string{cfg.Location}
	if cfg.FallbackModel != "" && cfg.FallbackLocation != cfg.Location {
		locations = append(locations, cfg.FallbackLocation)
	}
	for _, loc := range locations {
		c, err := speech.NewClient(ctx, option.WithEndpoint(regionalEndpoint(loc)))
		if err != nil {
			return nil, fmt.Errorf("speech client for %s: %w", loc, err)
		}
		s.clients[loc] = c
	}
	return s, nil
}

// Close closes every client.
func (s *Speech) Close() error {
	var errs []error
	if s.override != nil {
		errs = append(errs, s.override.Close())
	}
	for _, c := range s.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// regionalEndpoint is a location's Speech-to-Text endpoint: a model of a
// location other than global is served only there.
func regionalEndpoint(location string) string {
	if location == "global" {
		return "speech.googleapis.com:443"
	}
	return location + "-speech.googleapis.com:443"
}

func loopback(endpoint string) bool {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		host = endpoint
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Speech) client(location string) (*speech.Client, error) {
	if s.override != nil {
		return s.override, nil
	}
	if c, ok := s.clients[location]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("no speech client for location %q", location)
}

// job is one recognition of a lesson's segments by one model.
type job struct {
	model, location, language string
	files                     []string // gs:// URIs, in order
	output                    string   // gs:// prefix results are written under
}

// request is the BatchRecognize request for files of j.
func (s *Speech) request(j job, files []string) *speechpb.BatchRecognizeRequest {
	features := &speechpb.RecognitionFeatures{
		EnableWordTimeOffsets:      true,
		EnableAutomaticPunctuation: true,
	}
	if diarizes(j.model, j.language) {
		// The counts are hints the service does not use yet; a lesson has
		// one speaker or a few.
		features.DiarizationConfig = &speechpb.SpeakerDiarizationConfig{MinSpeakerCount: 1, MaxSpeakerCount: 6}
	}
	req := &speechpb.BatchRecognizeRequest{
		Recognizer: fmt.Sprintf("projects/%s/locations/%s/recognizers/_", s.project, j.location),
		Config: &speechpb.RecognitionConfig{
			DecodingConfig: &speechpb.RecognitionConfig_AutoDecodingConfig{AutoDecodingConfig: &speechpb.AutoDetectDecodingConfig{}},
			Model:          j.model,
			LanguageCodes:  []string{j.language},
			Features:       features,
		},
		RecognitionOutputConfig: &speechpb.RecognitionOutputConfig{
			Output: &speechpb.RecognitionOutputConfig_GcsOutputConfig{GcsOutputConfig: &speechpb.GcsOutputConfig{Uri: j.output}},
		},
		ProcessingStrategy: s.strategy,
	}
	for _, f := range files {
		req.Files = append(req.Files, &speechpb.BatchRecognizeFileMetadata{AudioSource: &speechpb.BatchRecognizeFileMetadata_Uri{Uri: f}})
	}
	return req
}

// start starts j: one operation per MaxFiles files. It returns the handle
// naming them all. If one cannot start, those started are cancelled.
func (s *Speech) start(ctx context.Context, j job) (string, error) {
	c, err := s.client(j.location)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var names []string
	for files := range slices.Chunk(j.files, MaxFiles) {
		op, err := c.BatchRecognize(ctx, s.request(j, files))
		if err != nil {
			s.cancel(context.WithoutCancel(ctx), strings.Join(names, handleSep))
			return "", classify(fmt.Errorf("Speech-to-Text did not start the recognition (%s, %s, %d file(s)): %w", j.model, j.language, len(files), err), status.Code(err))
		}
		names = append(names, op.Name())
	}
	return strings.Join(names, handleSep), nil
}

// OperationError is a recognition that ended without results, or was lost.
type OperationError struct {
	Operation string
	Code      codes.Code
	Message   string
}

func (e *OperationError) Error() string {
	return fmt.Sprintf("recognition %s failed: %s: %s", e.Operation, e.Code, e.Message)
}

// poll asks for every operation of handle. done is true when all are; then
// files holds every file's result. An *OperationError (wrapped as
// permanent or retryable) means the recognition failed; any other error
// that its state could not be read.
func (s *Speech) poll(ctx context.Context, handle string) (done bool, files map[string]*speechpb.BatchRecognizeFileResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	files = map[string]*speechpb.BatchRecognizeFileResult{}
	done = true
	for _, name := range strings.Split(handle, handleSep) {
		c, err := s.client(locationOf(name))
		if err != nil {
			return false, nil, err
		}
		op := c.BatchRecognizeOperation(name)
		resp, err := op.Poll(ctx)
		switch {
		case err != nil && op.Done():
			code := status.Code(err)
			return false, nil, classify(&OperationError{Operation: name, Code: code, Message: status.Convert(err).Message()}, code)
		case status.Code(err) == codes.NotFound:
			// The service forgot the operation: the recognition is lost,
			// not wrong; another attempt starts it again.
			return false, nil, &failure.Retryable{Err: &OperationError{Operation: name, Code: codes.NotFound, Message: "the operation is unknown to Speech-to-Text (expired or lost)"}}
		case err != nil:
			return false, nil, fmt.Errorf("poll recognition %s: %w", name, err)
		case !op.Done():
			done = false
			continue
		}
		for uri, fr := range resp.GetResults() {
			files[uri] = fr
		}
	}
	if !done {
		return false, nil, nil
	}
	return true, files, nil
}

// cancel asks for every operation of handle to stop, as best it can: a
// recognition whose result nobody will read need not be paid for.
func (s *Speech) cancel(ctx context.Context, handle string) {
	if handle == "" {
		return
	}
	for _, name := range strings.Split(handle, handleSep) {
		if c, err := s.client(locationOf(name)); err == nil {
			_ = c.CancelOperation(ctx, &longrunningpb.CancelOperationRequest{Name: name})
		}
	}
}

// locationOf reads the location of projects/P/locations/L/operations/ID.
func locationOf(operation string) string {
	parts := strings.Split(operation, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "locations" {
			return parts[i+1]
		}
	}
	return ""
}

// classify marks err permanent for the codes no retry changes (the request
// or the audio is wrong), retryable otherwise.
func classify(err error, code codes.Code) error {
	switch code {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		return &failure.Permanent{Err: err}
	}
	return &failure.Retryable{Err: err}
}

// fileError is a file's failure in a finished recognition.
func fileError(uri string, fr *speechpb.BatchRecognizeFileResult) error {
	e := fr.GetError()
	code := codes.Code(e.GetCode())
	return classify(fmt.Errorf("Speech-to-Text could not recognize %s: %s: %s", uri, code, e.GetMessage()), code)
}

// readResults returns one file's results: inline, or read from the Cloud
// Storage object the service wrote them to. A read that fails is retryable
// and not a failed recognition: the results stay where they are.
func readResults(ctx context.Context, st *storage.Client, fr *speechpb.BatchRecognizeFileResult) (*speechpb.BatchRecognizeResults, error) {
	if t := fr.GetInlineResult().GetTranscript(); t != nil {
		return t, nil
	}
	// The deprecated fields still carry results from older service
	// versions.
	if t := fr.GetTranscript(); t != nil {
		return t, nil
	}
	uri := fr.GetCloudStorageResult().GetUri()
	if uri == "" {
		uri = fr.GetUri()
	}
	bucket, object, ok := splitGCS(uri)
	if !ok {
		return nil, failure.Permanentf("a file's results name no Cloud Storage object (%q)", uri)
	}
	r, err := st.Bucket(bucket).Object(object).NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("read results %s: %w", uri, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read results %s: %w", uri, err)
	}
	var res speechpb.BatchRecognizeResults
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &res); err != nil {
		return nil, failure.Permanentf("results %s are not BatchRecognizeResults JSON: %w", uri, err)
	}
	return &res, nil
}

// splitGCS splits gs://bucket/object.
func splitGCS(uri string) (bucket, object string, ok bool) {
	rest, found := strings.CutPrefix(uri, "gs://")
	if !found {
		return "", "", false
	}
	bucket, object, _ = strings.Cut(rest, "/")
	return bucket, object, bucket != "" && object != ""
}
