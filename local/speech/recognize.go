package speech

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/speech/apiv2/speechpb"
	"cloud.google.com/go/storage"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// filesAtOnce bounds how many files of one operation are read at once.
const filesAtOnce = 4

// speechService is google.cloud.speech.v2.Speech with BatchRecognize only.
type speechService struct {
	speechpb.UnimplementedSpeechServer
	s *Server
}

// BatchRecognize counts the call, answers an injected rejection, validates
// the request, and starts an operation whose files are processed in the
// background. The operation returned is not done yet, as on the real
// service.
func (h speechService) BatchRecognize(ctx context.Context, req *speechpb.BatchRecognizeRequest) (*longrunningpb.Operation, error) {
	s := h.s
	if err := s.countCall(req); err != nil {
		s.log.WarnContext(ctx, "batch recognize rejected (injected)", "code", status.Code(err).String(), "files", len(req.GetFiles()))
		return nil, err
	}
	pl, err := validate(req)
	if err != nil {
		s.log.WarnContext(ctx, "batch recognize refused", "error", err)
		return nil, err
	}
	// Checked and counted under the lock Close takes to stop, so no
	// processing starts after Close began waiting for it.
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "local speech engine: shutting down")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	op := s.newOperation(pl, req)
	go func() {
		defer s.wg.Done()
		s.process(op, pl)
	}()
	s.log.InfoContext(ctx, "batch recognize started", "operation", op.name, "files", len(pl.files), "lessons", lessonsOf(req),
		"strategy", req.GetProcessingStrategy().String(), "output", outputOr(pl.gcsOutput))
	return op.proto(s.now())
}

// process recognizes an operation's files and stores the outcome.
func (s *Server) process(op *operation, pl *plan) {
	defer close(op.processed)
	for _, f := range pl.files {
		if fl := faultFor(op.faults, f.uri, true); fl != nil {
			s.log.Warn("operation failed (injected)", "operation", op.name, "uri", f.uri, "code", fl.Code.String())
			op.processedWith(nil, fl.status(), s.now())
			return
		}
	}
	var (
		mu      sync.Mutex
		results = map[string]*speechpb.BatchRecognizeFileResult{}
		billed  time.Duration
		wg      sync.WaitGroup
		sem     = make(chan struct{}, filesAtOnce)
	)
	for _, f := range pl.files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res := s.recognizeFile(op, pl, f)
			op.fileDone(f.uri, res, s.now())
			mu.Lock()
			results[f.uri] = res
			if res.GetError() == nil {
				billed += res.GetMetadata().GetTotalBilledDuration().AsDuration()
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	op.processedWith(&speechpb.BatchRecognizeResponse{Results: results, TotalBilledDuration: durationpb.New(billed)}, nil, s.now())
}

// fileError is a per-file failure: its code and message go in the file's
// result, the operation goes on.
type fileError struct {
	code codes.Code
	msg  string
}

func (e *fileError) Error() string { return e.msg }

func failf(code codes.Code, format string, args ...any) *fileError {
	return &fileError{code: code, msg: fmt.Sprintf(format, args...)}
}

// recognizeFile produces one file's result; a failure is the result's error.
func (s *Server) recognizeFile(op *operation, pl *plan, f plannedFile) *speechpb.BatchRecognizeFileResult {
	requestID := s.nextRequestID()
	res := &speechpb.BatchRecognizeFileResult{Metadata: &speechpb.RecognitionResponseMetadata{RequestId: requestID}}
	log := s.log.With("operation", op.name, "requestId", requestID, "uri", f.uri)
	if fl := faultFor(op.faults, f.uri, false); fl != nil {
		log.Warn("file failed (injected)", "code", fl.Code.String())
		res.Error = fl.status()
		return res
	}
	transcript, outURI, err := s.transcribe(op.ctx, pl, f, requestID, log)
	if err != nil {
		var fe *fileError
		if !errors.As(err, &fe) {
			fe = &fileError{code: codes.Internal, msg: err.Error()}
			if op.ctx.Err() != nil {
				fe.code = codes.Canceled
			}
		}
		log.Warn("file failed", "code", fe.code.String(), "error", fe.msg)
		res.Error = &spb.Status{Code: int32(fe.code), Message: fe.msg}
		return res
	}
	res.Metadata = transcript.GetMetadata()
	if outURI != "" {
		res.Result = &speechpb.BatchRecognizeFileResult_CloudStorageResult{CloudStorageResult: &speechpb.CloudStorageResult{Uri: outURI}}
		res.Uri = outURI // deprecated field, still filled for older readers
	} else {
		res.Result = &speechpb.BatchRecognizeFileResult_InlineResult{InlineResult: &speechpb.InlineResult{Transcript: transcript}}
	}
	return res
}

// transcribe reads the file's audio, works out which part of which lesson it
// is, and writes (or returns) its results.
func (s *Server) transcribe(ctx context.Context, pl *plan, f plannedFile, requestID string, log *slog.Logger) (*speechpb.BatchRecognizeResults, string, error) {
	bucket, object, _ := splitGCS(f.uri) // validated
	obj := s.storage.Bucket(bucket).Object(object)
	attrs, err := obj.Attrs(ctx)
	if err != nil {
		return nil, "", storageFailure(f.uri, "read", err)
	}
	info, err := s.probe(ctx, obj, attrs.Size)
	if err != nil {
		var fe *fileError
		if errors.As(err, &fe) {
			return nil, "", err
		}
		return nil, "", failf(codes.InvalidArgument, "%s: the audio cannot be read: %v", f.uri, err)
	}
	secs := info.Duration.Seconds()
	cfg := f.config
	switch {
	case info.Duration > MaxBatchAudio:
		return nil, "", failf(codes.InvalidArgument, "%s: %s of audio is over the batch limit of %s", f.uri, info.Duration.Round(time.Second), MaxBatchAudio)
	case f.model.maxWordTimes > 0 && cfg.GetFeatures().GetEnableWordTimeOffsets() && info.Duration > f.model.maxWordTimes:
		return nil, "", failf(codes.InvalidArgument, "%s: %s of audio: the model %q gives word time offsets for at most %s of audio per file",
			f.uri, info.Duration.Round(time.Second), cfg.GetModel(), f.model.maxWordTimes)
	}

	w, lessonID, version, err := windowOf(attrs, object, secs)
	if err != nil {
		return nil, "", err
	}
	script, ok := s.scripts.Script(lessonID)
	if !ok {
		return nil, "", failf(codes.NotFound, "%s: lesson %q is not in the local engine's catalog, so it does not know what the audio says", f.uri, lessonID)
	}
	lang := strings.ToLower(cfg.GetLanguageCodes()[0])
	if lang == "auto" {
		lang = strings.ToLower(script.Language)
	}
	feats := features{
		punctuation: cfg.GetFeatures().GetEnableAutomaticPunctuation(),
		wordTimes:   cfg.GetFeatures().GetEnableWordTimeOffsets(),
		wordConf:    cfg.GetFeatures().GetEnableWordConfidence(),
		diarization: cfg.GetFeatures().GetDiarizationConfig() != nil,
		language:    lang,
	}
	out := &speechpb.BatchRecognizeResults{
		Results: results(layout(lessonID, script.Narration, w.total), w, feats),
		Metadata: &speechpb.RecognitionResponseMetadata{
			RequestId: requestID,
			// Billed by the second, rounded up, per file.
			TotalBilledDuration: durationpb.New(time.Duration(math.Ceil(secs)) * time.Second),
		},
	}
	nWords := 0
	for _, r := range out.Results {
		nWords += len(strings.Fields(r.GetAlternatives()[0].GetTranscript()))
	}
	var outURI string
	if pl.gcsOutput != "" {
		if outURI, err = s.writeResults(ctx, pl.gcsOutput, object, out); err != nil {
			return nil, "", err
		}
	}
	log.InfoContext(ctx, "recognized", "lessonId", lessonID, "version", version, "format", info.Format,
		"offsetSeconds", w.offset, "durationSeconds", secs, "totalSeconds", w.total,
		"results", len(out.Results), "words", nWords, "output", outputOr(outURI))
	return out, outURI, nil
}

func outputOr(uri string) string {
	if uri == "" {
		return "inline"
	}
	return uri
}

// probe reads the head and the tail of an object and determines its audio's
// format and duration.
func (s *Server) probe(ctx context.Context, obj *storage.ObjectHandle, size int64) (audioInfo, error) {
	read := func(off, n int64) ([]byte, error) {
		r, err := obj.NewRangeReader(ctx, off, n)
		if err != nil {
			return nil, storageFailure("gs://"+obj.BucketName()+"/"+obj.ObjectName(), "read", err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, storageFailure("gs://"+obj.BucketName()+"/"+obj.ObjectName(), "read", err)
		}
		return b, nil
	}
	if size <= 2*probeBytes {
		all, err := read(0, size)
		if err != nil {
			return audioInfo{}, err
		}
		return probeAudio(all, all, size)
	}
	head, err := read(0, probeBytes)
	if err != nil {
		return audioInfo{}, err
	}
	tail, err := read(size-probeBytes, probeBytes)
	if err != nil {
		return audioInfo{}, err
	}
	return probeAudio(head, tail, size)
}

// windowOf tells which lesson the file belongs to and which part of its
// audio it holds: from the segment metadata when present, else from the
// object name (lessons/{lessonId}/...), the file then being the lesson's
// whole audio.
func windowOf(attrs *storage.ObjectAttrs, object string, secs float64) (window, string, string, error) {
	meta := func(key string) string {
		for k, v := range attrs.Metadata {
			if strings.EqualFold(k, key) {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	lessonID, version := lessonFromObject(object)
	if v := meta(MetaLessonID); v != "" {
		lessonID = v
	}
	if v := meta(MetaVersion); v != "" {
		version = v
	}
	if lessonID == "" {
		return window{}, "", "", failf(codes.NotFound, "gs://%s/%s: no lesson: the object has no %q metadata and its name is not lessons/{lessonId}/...",
			attrs.Bucket, object, MetaLessonID)
	}
	w := window{duration: secs}
	num := func(key string) (float64, bool, error) {
		v := meta(key)
		if v == "" {
			return 0, false, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false, failf(codes.InvalidArgument, "gs://%s/%s: metadata %s=%q is not a number of seconds", attrs.Bucket, object, key, v)
		}
		return f, true, nil
	}
	var err error
	var ok bool
	if w.offset, _, err = num(MetaOffset); err != nil {
		return window{}, "", "", err
	}
	if w.total, ok, err = num(MetaTotal); err != nil {
		return window{}, "", "", err
	}
	if !ok {
		w.total = w.offset + secs
	}
	return w, lessonID, version, nil
}

// storageFailure maps a Cloud Storage error to a per-file error.
func storageFailure(uri, what string, err error) *fileError {
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return failf(codes.NotFound, "%s: object not found", uri)
	case errors.Is(err, storage.ErrBucketNotExist):
		return failf(codes.NotFound, "%s: bucket not found", uri)
	case errors.Is(err, context.Canceled):
		return failf(codes.Canceled, "%s: %s cancelled", uri, what)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return failf(st.Code(), "%s: %s: %v", uri, what, err)
	}
	return failf(codes.Unavailable, "%s: %s: %v", uri, what, err)
}
