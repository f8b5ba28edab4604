package transcribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"cloud.google.com/go/speech/apiv2/speechpb"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// finish turns a done recognition into the transcript: stitched, checked
// for confidence (once falling back to the other model), written,
// remembered for its audio, and the stage completed.
func (s *Stage) finish(ctx context.Context, log *slog.Logger, h held, op string, files map[string]*speechpb.BatchRecognizeFileResult) (response, error) {
	id, v := h.lesson.ID, h.version
	a, ok := audioFromOutputs(h.rec.Outputs)
	if !ok {
		return s.fail(ctx, log, h, failure.Retryablef("the stage record does not describe the audio recognized"))
	}
	uris := s.segmentURIs(a, id, v)
	segs := make([]segmentResult, len(uris))
	for i, uri := range uris {
		fr, ok := files[uri]
		switch {
		case !ok:
			return s.recognitionFailed(ctx, log, h, failure.Retryablef("recognition %s gave no result for %s", op, uri))
		case fr.GetError() != nil:
			return s.recognitionFailed(ctx, log, h, fileError(uri, fr))
		}
		res, err := readResults(ctx, s.Storage, fr)
		switch {
		case failure.IsPermanent(err):
			return s.recognitionFailed(ctx, log, h, err)
		case err != nil:
			return response{}, failure.Retryablef("transcribe lesson %s v%d: %w", id, v, err)
		}
		segs[i] = segmentResult{offset: a.offsets[i], results: res, requestID: fr.GetMetadata().GetRequestId()}
	}
	lang := s.Config.LanguageOf(h.lesson.CourseID)
	model := h.rec.Outputs[OutModel]
	st := stitch(segs, lang)
	t := st.Transcript
	t.LessonID, t.Version, t.Model, t.AudioSHA256, t.DurationSeconds = id, v, model, a.sha256, a.duration

	// The recognition's seconds go to the ledger in the write that lists op
	// as billed (the fallback's note, or the completion): a poll repeated
	// after a crash or a lost write finds op listed, or bills it then.
	billed := h.rec.Outputs[OutBilled]
	var usage map[string]float64
	if !listed(billed, op) {
		usage = map[string]float64{lessonstate.MeterSpeechSeconds(model): a.duration}
		billed = with(billed, op)
	}
	log.InfoContext(ctx, "recognition done", "operation", op, "model", model, "words", len(t.Words),
		"confidence", t.Confidence, "confidenceReported", st.confidenceKnown, "engine", t.Engine)

	if s.Config.FallbackModel != "" && model == s.Config.Model && h.rec.Outputs[OutDraft] == "" &&
		st.confidenceKnown && t.Confidence < s.Config.MinConfidence {
		return s.fallback(ctx, log, h, a, lang, t, billed, usage)
	}
	if draftURI := h.rec.Outputs[OutDraft]; draftURI != "" {
		draft, err := s.readTranscript(ctx, draftURI)
		if err != nil {
			return response{}, failure.Retryablef("transcribe lesson %s v%d: %w", id, v, err)
		}
		if draft.Confidence > t.Confidence {
			log.InfoContext(ctx, "the fallback model did no better; keeping the first transcript",
				"fallbackConfidence", t.Confidence, "confidence", draft.Confidence)
			t = draft
		}
	}
	return s.conclude(ctx, log, h, a, lang, t, billed, usage)
}

// fallback keeps the primary model's transcript as a draft and starts the
// fallback model's recognition of the same segments. The draft is noted,
// with the primary recognition's usage, before the fallback starts: from
// then on that recognition is billed and its transcript kept whatever
// becomes of the fallback.
func (s *Stage) fallback(ctx context.Context, log *slog.Logger, h held, a audioInfo, lang string, t artifact.Transcript, billed string, usage map[string]float64) (response, error) {
	id, v := h.lesson.ID, h.version
	draft := artifact.Prefix(id, v) + "speech/" + t.Model + "/" + artifact.TranscriptFile
	uri, err := s.writeJSON(ctx, draft, t)
	if err != nil {
		return response{}, fmt.Errorf("transcribe lesson %s v%d: keep the first transcript: %w", id, v, err)
	}
	log.InfoContext(ctx, "confidence under the minimum; recognizing again with the fallback model",
		"confidence", t.Confidence, "minConfidence", s.Config.MinConfidence, "fallback", s.Config.FallbackModel)
	extra := map[string]string{
		OutDraft: uri, OutDraftConfidence: formatConfidence(t.Confidence), OutBilled: billed,
		OutRecognitions: h.rec.Outputs[OutRecognitions] + "," + s.Config.FallbackModel,
	}
	if h.rec, err = s.Store.NoteWithUsage(ctx, id, lessonstate.StageTranscribe, v, h.token, extra, 0, usage); err != nil {
		// Nothing billed nor kept: the next poll finishes the recognition again.
		return response{}, failure.Retryablef("transcribe lesson %s v%d: keep the first transcript: %w", id, v, err)
	}
	// A fallback that cannot even start leaves the first transcript.
	return s.recognize(ctx, log, h, a, lang, s.Config.FallbackModel, s.Config.FallbackLocation, extra)
}

// recognitionFailed records a recognition that gave no usable result. A
// fallback's failure is no failure of the stage: the first transcript,
// kept as a draft, is the transcript.
func (s *Stage) recognitionFailed(ctx context.Context, log *slog.Logger, h held, cause error) (response, error) {
	draftURI := h.rec.Outputs[OutDraft]
	if draftURI == "" {
		return s.fail(ctx, log, h, cause)
	}
	log.WarnContext(ctx, "the fallback recognition failed; keeping the first transcript", "error", cause.Error())
	t, err := s.readTranscript(ctx, draftURI)
	if err != nil {
		return s.fail(ctx, log, h, fmt.Errorf("%w; and the first transcript cannot be read: %w", cause, err))
	}
	a, _ := audioFromOutputs(h.rec.Outputs)
	return s.conclude(ctx, log, h, a, s.Config.LanguageOf(h.lesson.CourseID), t, h.rec.Outputs[OutBilled], nil)
}

// conclude writes t as the version's transcript, remembers it for its
// audio, and completes the stage, adding usage (what the recognition just
// finished used, if not billed yet) to the ledger in the same write.
func (s *Stage) conclude(ctx context.Context, log *slog.Logger, h held, a audioInfo, lang string, t artifact.Transcript, billed string, usage map[string]float64) (response, error) {
	id, v := h.lesson.ID, h.version
	t.LessonID, t.Version = id, v
	uri, err := s.writeTranscript(ctx, t)
	if err != nil {
		return response{}, fmt.Errorf("transcribe lesson %s v%d: %w", id, v, err)
	}
	err = s.Store.RememberTranscript(ctx, lessonstate.KnownTranscript{
		AudioSHA256: a.sha256, URI: uri, Model: t.Model, Language: lang, LessonID: id, Version: v,
	})
	if err != nil {
		// Only a later version's reuse is lost: it would recognize again.
		log.WarnContext(ctx, "transcript not remembered for its audio", "error", err.Error())
	}
	out := a.outputs()
	out[OutURI] = uri
	out[OutModel] = t.Model
	out[OutEngine] = t.Engine
	out[OutLanguage] = t.Language
	out[OutRecognitions] = h.rec.Outputs[OutRecognitions]
	out[OutBilled] = billed
	if t.Confidence > 0 {
		out[OutConfidence] = formatConfidence(t.Confidence)
	}
	return s.completeWithUsage(ctx, log, h, out, usage)
}

// complete records the stage done, on a context the request's end does
// not cancel.
func (s *Stage) complete(ctx context.Context, log *slog.Logger, h held, out map[string]string) (response, error) {
	return s.completeWithUsage(ctx, log, h, out, nil)
}

// completeWithUsage is complete that also adds usage to the ledger: only if
// the stage completes, so that the poll that retries a failed completion
// bills the recognition once.
func (s *Stage) completeWithUsage(ctx context.Context, log *slog.Logger, h held, out map[string]string, usage map[string]float64) (response, error) {
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	err := s.Store.CompleteWithUsage(octx, h.lesson.ID, lessonstate.StageTranscribe, h.version, h.token, out, usage)
	if err != nil {
		// Still running under our claim (or taken over): the next call
		// finishes again, or finds how it stands.
		return response{}, failure.Retryablef("transcribe lesson %s v%d: complete: %w", h.lesson.ID, h.version, err)
	}
	log.InfoContext(ctx, "transcription done", "uri", out[OutURI], "model", out[OutModel], "confidence", out[OutConfidence])
	return response{Done: true, URI: out[OutURI]}, nil
}

// fail records a failed attempt. A retryable failure with attempts left
// puts the stage back to pending and answers 503: the workflow's retry
// starts over. A permanent failure, or the last attempt, fails the stage,
// announces it, and answers 422.
func (s *Stage) fail(ctx context.Context, log *slog.Logger, h held, cause error) (response, error) {
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	reason := cause.Error()
	f, err := s.Store.Fail(octx, h.lesson.ID, lessonstate.StageTranscribe, h.version, h.token, reason, !failure.IsPermanent(cause))
	switch {
	case errors.Is(err, lessonstate.ErrLeaseLost):
		log.WarnContext(ctx, "transcription failed after the stage changed hands; the next call finds how it stands", "error", reason)
		return response{}, failure.Retryablef("%w (the stage changed hands meanwhile)", cause)
	case err != nil:
		return response{}, failure.Retryablef("%w; and recording the failure: %w", cause, err)
	case f.State != lessonstate.StateFailed:
		log.WarnContext(ctx, "transcription failed; the workflow's retry starts over", "error", reason, "attempt", h.rec.Attempts)
		return response{}, &failure.Retryable{Err: cause}
	}
	log.ErrorContext(ctx, "transcription failed", "error", reason, "attempts", h.rec.Attempts)
	s.announce(octx, log, h.lesson.ID, f)
	return response{}, &failure.Permanent{Err: cause}
}

func (s *Stage) announce(ctx context.Context, log *slog.Logger, id string, f lessonstate.Failure) {
	if f.Announce == nil {
		return
	}
	if err := s.Announcer.Event(ctx, id, *f.Announce); err != nil {
		// Queued in the outbox with the failure: the sweeper's next flush
		// announces it.
		log.WarnContext(ctx, "failure announcement left in the outbox", "error", err.Error())
	}
}

func (s *Stage) writeTranscript(ctx context.Context, t artifact.Transcript) (string, error) {
	uri, err := s.writeJSON(ctx, artifact.Name(t.LessonID, t.Version, artifact.TranscriptFile), t)
	if err != nil {
		return "", fmt.Errorf("write transcript: %w", err)
	}
	return uri, nil
}

// writeJSON writes v as an object of the artifacts bucket; its failure is
// retryable.
func (s *Stage) writeJSON(ctx context.Context, object string, v any) (string, error) {
	w := s.Storage.Bucket(s.Config.ArtifactsBucket).Object(object).NewWriter(ctx)
	w.ContentType = "application/json"
	if err := json.NewEncoder(w).Encode(v); err != nil {
		_ = w.Close()
		return "", failure.Retryablef("write gs://%s/%s: %w", s.Config.ArtifactsBucket, object, err)
	}
	if err := w.Close(); err != nil {
		return "", failure.Retryablef("write gs://%s/%s: %w", s.Config.ArtifactsBucket, object, err)
	}
	return "gs://" + s.Config.ArtifactsBucket + "/" + object, nil
}

func (s *Stage) readTranscript(ctx context.Context, uri string) (artifact.Transcript, error) {
	var t artifact.Transcript
	bucket, object, ok := splitGCS(uri)
	if !ok {
		return t, failure.Permanentf("transcript %q is not a gs:// object", uri)
	}
	r, err := s.Storage.Bucket(bucket).Object(object).NewReader(ctx)
	if err != nil {
		return t, fmt.Errorf("read %s: %w", uri, err)
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&t); err != nil {
		return t, fmt.Errorf("read %s: %w", uri, err)
	}
	return t, nil
}

func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
