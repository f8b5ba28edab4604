// Package transcribe is the transcribe stage (DESIGN.md sections 4 and 5):
// the lesson-pipeline workflow drives it over HTTP (shared/workflowcall)
// with three actions.
//
//   - start claims the stage for the version, extracts the lesson's audio
//     into segments (shared/audio), and either reuses the transcript already
//     made of the same audio (same hash and language: nothing is recognized
//     twice) or starts one Speech-to-Text v2 BatchRecognize over the
//     segments, notes its operation on the stage and answers it.
//   - poll asks for that operation; once it is done, it stitches the
//     segments' words onto one timeline and writes transcript.json to the
//     artifacts bucket. A transcript under the minimum confidence is made
//     again, once, by the fallback model (the poll answers the new
//     operation), and the more confident of the two is kept.
//   - fail records that the workflow gave up (it timed out, or its calls
//     kept failing) and announces it.
//
// The workflow is the only driver of a version's transcription: a start
// repeated while the recognition runs answers that recognition instead of
// starting another; a start after the lease ended resumes it when it still
// runs. A failure the caller can retry answers 503 after the stage records
// it (back to pending: the workflow's next call starts over); a permanent
// one, or the last attempt, answers 422 once the stage is failed and the
// failure announced. Trouble that leaves the recognition intact (a poll
// that could not reach the service, a results object that could not be
// read yet) answers 503 without touching the stage.
package transcribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/audio"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/workflowcall"
)

// Deps are the stage's collaborators and settings.
type Deps struct {
	Config    Config
	Store     *lessonstate.Store
	Announcer *relay.Relay
	// Storage reads source videos and recognition results and writes
	// transcripts.
	Storage *storage.Client
	Audio   *audio.Extractor
	Speech  *Speech
	// Outcome gives the context the final Complete or Fail is written on:
	// detached from the request's cancellation, with its own deadline.
	Outcome func(context.Context) (context.Context, context.CancelFunc)
}

// Stage runs transcriptions.
type Stage struct{ Deps }

// New returns the stage, or an error naming what is missing or wrong.
func New(d Deps) (*Stage, error) {
	if err := setup.Missing("transcribe", map[string]any{
		"store": d.Store, "announcer": d.Announcer, "storage": d.Storage, "audio": d.Audio, "speech": d.Speech, "outcome": d.Outcome,
	}); err != nil {
		return nil, err
	}
	if err := d.Config.Validate(); err != nil {
		return nil, err
	}
	return &Stage{d}, nil
}

type response = workflowcall.Response

// Handle runs one request of the workflow. Its error is what
// workflowcall.Write maps to a status.
func (s *Stage) Handle(ctx context.Context, req workflowcall.Request) (response, error) {
	log := logging.Lesson(logging.FromContext(ctx), req.LessonID, req.Version, lessonstate.StageTranscribe).With("action", req.Action)
	if req.Execution != "" {
		log = log.With("execution", req.Execution)
	}
	ctx = logging.WithLogger(ctx, log)
	switch req.Action {
	case workflowcall.ActionStart:
		return s.start(ctx, log, req)
	case workflowcall.ActionPoll:
		return s.poll(ctx, log, req)
	case workflowcall.ActionFail:
		return s.giveUp(ctx, log, req)
	}
	return response{}, &failure.Permanent{Err: &workflowcall.BadRequestError{Err: fmt.Errorf("action %q is not start, poll or fail", req.Action)}}
}

// held is the stage as its current owner holds it.
type held struct {
	lesson  lessonstate.Lesson
	version int
	token   string
	rec     lessonstate.Stage
}

func (s *Stage) start(ctx context.Context, log *slog.Logger, req workflowcall.Request) (response, error) {
	c, err := s.Store.Claim(ctx, req.LessonID, lessonstate.StageTranscribe, req.Version, s.Config.ExtractLease)
	switch {
	case errors.Is(err, lessonstate.ErrNotFound):
		return response{}, failure.Permanentf("transcribe lesson %s v%d: no such lesson", req.LessonID, req.Version)
	case err != nil:
		return response{}, failure.Retryablef("transcribe lesson %s v%d: %w", req.LessonID, req.Version, err)
	}
	switch c.Outcome {
	case lessonstate.Claimed:
		return s.begin(ctx, log, held{lesson: c.Lesson, version: req.Version, token: c.Token, rec: c.Stage})
	case lessonstate.Busy:
		op, ok := currentOperation(c.Stage)
		if !ok {
			op = OperationStarting
		}
		log.InfoContext(ctx, "start repeated while the transcription runs; answering the recognition in flight", "operation", op)
		return response{Operation: op}, nil
	}
	log.InfoContext(ctx, "nothing to start", "claim", c.Outcome.String())
	return settled(c.Outcome, c.Stage)
}

// settled answers for a stage that is finished, or no longer this version's.
func settled(o lessonstate.ClaimOutcome, rec lessonstate.Stage) (response, error) {
	switch o {
	case lessonstate.AlreadyDone:
		return response{Done: true, URI: rec.Outputs[OutURI]}, nil
	case lessonstate.Skipped:
		return response{Done: true, Skipped: true, Reason: rec.Error}, nil
	case lessonstate.AlreadyFailed:
		return response{}, failure.Permanentf("transcription failed: %s", rec.Error)
	}
	return response{Stale: true}, nil
}

// standing says how the stage stands for version v, when that decides the
// answer by itself (stale, done, skipped, failed).
func standing(l lessonstate.Lesson, rec lessonstate.Stage, v int) (lessonstate.ClaimOutcome, bool) {
	switch {
	case l.Removed || l.Version > v || rec.Version > v:
		return lessonstate.Stale, true
	case rec.Version != v:
		return 0, false
	case rec.State == lessonstate.StateDone:
		return lessonstate.AlreadyDone, true
	case rec.State == lessonstate.StateSkipped:
		return lessonstate.Skipped, true
	case rec.State == lessonstate.StateFailed:
		return lessonstate.AlreadyFailed, true
	}
	return 0, false
}

// begin is a claimed start: resume the recognition an earlier attempt
// started if it can still give results, else extract (or find) the audio,
// reuse a transcript of the same audio, or start recognizing it.
func (s *Stage) begin(ctx context.Context, log *slog.Logger, h held) (response, error) {
	log.InfoContext(ctx, "transcription claimed", "attempt", h.rec.Attempts)
	if op := h.rec.Outputs[OutOperation]; op != "" && op != OperationStarting {
		ok, err := s.resumable(ctx, op)
		if err != nil {
			return s.fail(ctx, log, h, failure.Retryablef("look at the recognition %s an earlier attempt started: %w", op, err))
		}
		if ok {
			if _, err := s.note(ctx, h, map[string]string{OutOperationAttempt: strconv.Itoa(h.rec.Attempts)}, s.Config.RecognitionLease()); err != nil {
				return s.fail(ctx, log, h, err)
			}
			log.InfoContext(ctx, "resuming the recognition an earlier attempt started", "operation", op)
			return response{Operation: op}, nil
		}
		log.InfoContext(ctx, "the recognition an earlier attempt started cannot give results; starting again", "operation", op)
	}
	lang := s.Config.LanguageOf(h.lesson.CourseID)
	a, reused, err := s.audioOf(ctx, h)
	if err != nil {
		return s.fail(ctx, log, h, err)
	}
	log.InfoContext(ctx, "audio ready", "audioSha256", a.sha256, "durationSeconds", a.duration,
		"segments", len(a.offsets), "reused", reused)
	known, ok, err := s.Store.TranscriptOf(ctx, a.sha256, lang)
	if err != nil {
		return s.fail(ctx, log, h, failure.Retryablef("look up transcripts of the same audio: %w", err))
	}
	if ok {
		if resp, done, err := s.reuse(ctx, log, h, a, known); done || err != nil {
			return resp, err
		}
	}
	if !reused {
		// Noted before recognizing: an attempt after a failed start finds
		// the segments and does not cut them again.
		if h.rec, err = s.note(ctx, h, a.outputs(), 0); err != nil {
			return s.fail(ctx, log, h, err)
		}
	}
	// A draft an earlier attempt kept belongs to its recognitions, not to
	// the one starting now.
	restart := map[string]string{OutRecognitions: s.Config.Model, OutDraft: "", OutDraftConfidence: ""}
	h.rec.Outputs = merged(h.rec.Outputs, restart)
	return s.recognize(ctx, log, h, a, lang, s.Config.Model, s.Config.Location, restart)
}

// resumable reports whether a recognition an earlier attempt started may
// still give results: it runs, or it is done and every file succeeded.
func (s *Stage) resumable(ctx context.Context, handle string) (bool, error) {
	done, files, err := s.Speech.poll(ctx, handle)
	var oe *OperationError
	switch {
	case errors.As(err, &oe):
		return false, nil
	case err != nil:
		return false, err
	case !done:
		return true, nil
	}
	for _, fr := range files {
		if fr.GetError() != nil {
			return false, nil
		}
	}
	return true, nil
}

// audioOf is the version's audio: the segments an earlier attempt of this
// version extracted, if they are all still there, or new ones.
func (s *Stage) audioOf(ctx context.Context, h held) (audioInfo, bool, error) {
	id, v := h.lesson.ID, h.version
	if a, ok := audioFromOutputs(h.rec.Outputs); ok && s.segmentsExist(ctx, a, id, v) {
		return a, true, nil
	}
	ext := "mp4"
	if m := h.lesson.Media; m != nil && m.Ext != "" {
		ext = m.Ext
	}
	res, err := s.Audio.Extract(ctx,
		audio.Source{Bucket: s.Config.RawBucket, Object: download.ObjectName(id, v, ext)},
		audio.Dest{Bucket: s.Config.ArtifactsBucket, Prefix: audioPrefix(id, v), Metadata: map[string]string{
			audio.MetaLessonID: id, audio.MetaVersion: strconv.Itoa(v),
		}})
	if err != nil {
		return audioInfo{}, false, fmt.Errorf("extract audio: %w", err)
	}
	return fromExtraction(res), false, nil
}

func (s *Stage) segmentsExist(ctx context.Context, a audioInfo, id string, v int) bool {
	for _, obj := range a.segmentObjects(id, v) {
		if _, err := s.Storage.Bucket(s.Config.ArtifactsBucket).Object(obj).Attrs(ctx); err != nil {
			return false
		}
	}
	return true
}

func (s *Stage) segmentURIs(a audioInfo, id string, v int) []string {
	objs := a.segmentObjects(id, v)
	for i, o := range objs {
		objs[i] = "gs://" + s.Config.ArtifactsBucket + "/" + o
	}
	return objs
}

// reuse completes the stage with a copy of the transcript made of the same
// audio before (a new version of a lesson whose video did not change).
// done is false when that transcript is gone: the audio is recognized.
func (s *Stage) reuse(ctx context.Context, log *slog.Logger, h held, a audioInfo, known lessonstate.KnownTranscript) (_ response, done bool, _ error) {
	t, err := s.readTranscript(ctx, known.URI)
	if errors.Is(err, storage.ErrObjectNotExist) {
		log.WarnContext(ctx, "the transcript of the same audio is gone; recognizing again", "known", known.URI)
		return response{}, false, nil
	}
	if err != nil {
		resp, err := s.fail(ctx, log, h, failure.Retryablef("read the transcript of the same audio: %w", err))
		return resp, true, err
	}
	t.LessonID, t.Version = h.lesson.ID, h.version
	uri, err := s.writeTranscript(ctx, t)
	if err != nil {
		resp, err := s.fail(ctx, log, h, err)
		return resp, true, err
	}
	out := a.outputs()
	out[OutURI] = uri
	out[OutModel] = t.Model
	out[OutEngine] = t.Engine
	out[OutLanguage] = t.Language
	out[OutConfidence] = formatConfidence(t.Confidence)
	out[OutReusedFrom] = known.URI
	log.InfoContext(ctx, "audio unchanged: transcript reused, nothing recognized", "from", known.URI, "uri", uri)
	resp, err := s.complete(ctx, log, h, out)
	return resp, true, err
}

// recognize starts a recognition of the version's segments by model and
// notes it on the stage, with extra outputs.
func (s *Stage) recognize(ctx context.Context, log *slog.Logger, h held, a audioInfo, lang, model, location string, extra map[string]string) (response, error) {
	id, v := h.lesson.ID, h.version
	handle, err := s.Speech.start(ctx, job{
		model: model, location: location, language: lang,
		files:  s.segmentURIs(a, id, v),
		output: speechPrefix(s.Config.ArtifactsBucket, id, v, model),
	})
	if err != nil {
		return s.recognitionFailed(ctx, log, h, err)
	}
	out := map[string]string{OutOperation: handle, OutOperationAttempt: strconv.Itoa(h.rec.Attempts), OutModel: model}
	for k, val := range extra {
		out[k] = val
	}
	if _, err := s.note(ctx, h, out, s.Config.RecognitionLease()); err != nil {
		// Nobody would ever poll it.
		s.Speech.cancel(context.WithoutCancel(ctx), handle)
		return s.fail(ctx, log, h, err)
	}
	log.InfoContext(ctx, "recognition started", "operation", handle, "model", model, "location", location,
		"language", lang, "segments", len(a.offsets), "durationSeconds", a.duration)
	return response{Operation: handle}, nil
}

func (s *Stage) note(ctx context.Context, h held, out map[string]string, lease time.Duration) (lessonstate.Stage, error) {
	rec, err := s.Store.Note(ctx, h.lesson.ID, lessonstate.StageTranscribe, h.version, h.token, out, lease)
	if err != nil {
		return h.rec, failure.Retryablef("%w", err)
	}
	return rec, nil
}

func (s *Stage) poll(ctx context.Context, log *slog.Logger, req workflowcall.Request) (response, error) {
	l, rec, err := s.read(ctx, req)
	if err != nil {
		return response{}, err
	}
	if o, ok := standing(l, rec, req.Version); ok {
		if o == lessonstate.Stale {
			s.cancelStale(ctx, log, req.Operation)
		}
		return settled(o, rec)
	}
	if l.Version < req.Version {
		return response{}, failure.Retryablef("transcribe lesson %s: the document is at v%d, behind the poll's v%d", req.LessonID, l.Version, req.Version)
	}
	if rec.Version != req.Version || rec.State != lessonstate.StateRunning {
		// Never started at this version, or put back to pending by a
		// retryable failure: this call (the workflow retrying) starts over.
		log.InfoContext(ctx, "poll finds no transcription running; starting one", "state", rec.State)
		return s.start(ctx, log, req)
	}
	h := held{lesson: l, version: req.Version, token: rec.Token, rec: rec}
	op, ok := currentOperation(rec)
	if !ok {
		if rec.LeaseUntil.After(time.Now()) {
			return response{Operation: OperationStarting}, nil
		}
		log.WarnContext(ctx, "the start that held the stage ended before starting a recognition; starting again")
		return s.start(ctx, log, req)
	}
	if req.Operation != op && req.Operation != OperationStarting {
		log.InfoContext(ctx, "poll names another recognition than the one in flight; answering the one in flight", "asked", req.Operation, "operation", op)
	}
	done, files, err := s.Speech.poll(ctx, op)
	var oe *OperationError
	switch {
	case errors.As(err, &oe):
		return s.recognitionFailed(ctx, log, h, err)
	case err != nil:
		return response{}, failure.Retryablef("transcribe lesson %s v%d: %w", req.LessonID, req.Version, err)
	case !done:
		log.DebugContext(ctx, "recognition running", "operation", op)
		return response{Operation: op}, nil
	}
	return s.finish(ctx, log, h, op, files)
}

func (s *Stage) read(ctx context.Context, req workflowcall.Request) (lessonstate.Lesson, lessonstate.Stage, error) {
	l, err := s.Store.Lesson(ctx, req.LessonID)
	switch {
	case errors.Is(err, lessonstate.ErrNotFound):
		return l, lessonstate.Stage{}, failure.Permanentf("transcribe lesson %s v%d: no such lesson", req.LessonID, req.Version)
	case err != nil:
		return l, lessonstate.Stage{}, failure.Retryablef("transcribe lesson %s v%d: %w", req.LessonID, req.Version, err)
	}
	return l, l.Stages[lessonstate.StageTranscribe], nil
}

// cancelStale stops a recognition of a version the lesson moved past: its
// words would never be read. Only this project's operations are touched.
func (s *Stage) cancelStale(ctx context.Context, log *slog.Logger, handle string) {
	if handle == "" || handle == OperationStarting {
		return
	}
	for _, name := range strings.Split(handle, handleSep) {
		if !strings.HasPrefix(name, "projects/"+s.Config.ProjectID+"/") {
			return
		}
	}
	s.Speech.cancel(ctx, handle)
	log.InfoContext(ctx, "lesson moved on; recognition of this version cancelled", "operation", handle)
}

// giveUp records that the workflow gave up on the version's transcription:
// the stage fails with the reason (announced once), and the recognition in
// flight, if any, is cancelled.
func (s *Stage) giveUp(ctx context.Context, log *slog.Logger, req workflowcall.Request) (response, error) {
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "the workflow gave up on the transcription"
	}
	l, rec, err := s.read(ctx, req)
	if err != nil {
		return response{}, err
	}
	if o, ok := standing(l, rec, req.Version); ok {
		switch o {
		case lessonstate.AlreadyFailed:
			return response{Reason: rec.Error}, nil // recorded and announced before
		case lessonstate.Stale:
			s.cancelStale(ctx, log, req.Operation)
		}
		return settled(o, rec)
	}
	if l.Version < req.Version {
		return response{}, failure.Retryablef("transcribe lesson %s: the document is at v%d, behind the request's v%d", req.LessonID, l.Version, req.Version)
	}
	h := held{lesson: l, version: req.Version, token: rec.Token, rec: rec}
	if rec.Version != req.Version || rec.State != lessonstate.StateRunning {
		// Nobody holds it (pending): take it, to fail it.
		c, err := s.Store.Claim(ctx, req.LessonID, lessonstate.StageTranscribe, req.Version, s.Config.ExtractLease)
		switch {
		case err != nil:
			return response{}, failure.Retryablef("transcribe lesson %s v%d: %w", req.LessonID, req.Version, err)
		case c.Outcome == lessonstate.AlreadyFailed:
			return response{Reason: c.Stage.Error}, nil
		case c.Outcome == lessonstate.Busy:
			return response{}, failure.Retryablef("transcribe lesson %s v%d: the stage changed meanwhile", req.LessonID, req.Version)
		case c.Outcome != lessonstate.Claimed:
			return settled(c.Outcome, c.Stage)
		}
		h = held{lesson: c.Lesson, version: req.Version, token: c.Token, rec: c.Stage}
	}
	if op, ok := currentOperation(h.rec); ok {
		s.Speech.cancel(ctx, op)
	}
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	// A workflow that gave up on calls that kept failing for now (a
	// quota, an instance replaced) costs the stage an attempt, not the
	// lesson: with attempts left the stage and the process step go back
	// to pending and the sweeper starts a new execution.
	f, err := s.Store.Fail(octx, req.LessonID, lessonstate.StageTranscribe, req.Version, h.token, reason, req.Transient)
	if err != nil {
		return response{}, failure.Retryablef("transcribe lesson %s v%d: record that the workflow gave up: %w", req.LessonID, req.Version, err)
	}
	if f.State != lessonstate.StateFailed {
		log.WarnContext(ctx, "the workflow gave up on calls that failed for now; the sweeper starts the process step again",
			"error", reason, "attempt", h.rec.Attempts)
		return response{Reason: reason}, nil
	}
	log.ErrorContext(ctx, "transcription failed: the workflow gave up", "error", reason)
	s.announce(octx, log, req.LessonID, f)
	return response{Reason: reason}, nil
}
