package analyze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// result is what one analysis made.
type result struct {
	uri      string
	analysis artifact.Analysis
	// asked and reused count the windows this call paid for and those an
	// earlier call had stored.
	asked, reused int
}

// video is the lesson version's source video in the raw bucket.
type video struct {
	uri, mimeType string
	duration      float64
}

// analyze does the work of a claimed stage: the video's length, its
// windows (each asked for, or read back if an earlier call stored it),
// then analysis.json.
func (s *Stage) analyze(ctx context.Context, log *slog.Logger, claim *lessonstate.Claim) (result, error) {
	l, version := claim.Lesson, claim.Stage.Version
	v, err := s.video(ctx, l, version)
	if err != nil {
		return result{}, err
	}
	limit := windowLimit(s.Window, s.FPS, s.Resolution)
	windows := planWindows(v.duration, limit)
	log.InfoContext(ctx, "video to analyze", "uri", v.uri, "seconds", roundMilli(v.duration),
		"windows", len(windows), "windowSeconds", limit)

	res := result{}
	done := make([]storedWindow, len(windows))
	for i := range windows {
		w, reused, err := s.window(ctx, log, l, version, v, windows, i)
		if err != nil {
			return result{}, err
		}
		done[i] = w
		if reused {
			res.reused++
			continue
		}
		res.asked++
		// A paid window is progress: say so, with what it cost, and hold
		// the stage for another lease, so a long lesson keeps it while it
		// advances.
		progress := map[string]string{OutWindows: fmt.Sprintf("%d/%d", i+1, len(windows))}
		usage := s.meters(w.InputTokens, w.OutputTokens)
		if _, err := s.Store.NoteWithUsage(ctx, l.ID, lessonstate.StageAnalyze, version, claim.Token, progress, s.Lease, usage); err != nil {
			// The window is stored: whoever analyzes next reads it back
			// and pays nothing, so its cost is recorded now or never.
			s.recordUsage(ctx, log, l.ID, usage)
			if errors.Is(err, lessonstate.ErrLeaseLost) {
				return result{}, failure.Retryablef("after window %d of %d: %w", i+1, len(windows), err)
			}
			log.WarnContext(ctx, "progress not recorded; the lease was not extended", "error", err.Error())
		}
	}

	a := artifact.Analysis{LessonID: l.ID, Version: version, Model: s.Model, Windows: windows}
	parts := make([][]artifact.VisualElement, len(done))
	var engines []string
	for i, w := range done {
		parts[i] = w.Elements
		if w.ModelVersion != "" && !slices.Contains(engines, w.ModelVersion) {
			engines = append(engines, w.ModelVersion)
		}
	}
	a.Elements = mergeWindows(windows, parts)
	if a.Elements == nil {
		a.Elements = []artifact.VisualElement{}
	}
	a.Engine = strings.Join(engines, ", ")
	name := artifact.Name(l.ID, version, artifact.AnalysisFile)
	if err := s.writeJSON(ctx, name, a, l.ID, version); err != nil {
		return result{}, failure.Retryablef("write %s: %w", name, err)
	}
	res.uri = "gs://" + s.ArtifactsBucket + "/" + name
	res.analysis = a
	return res, nil
}

// video finds the lesson version's source video and reads its length
// from the object's header boxes, by range.
func (s *Stage) video(ctx context.Context, l lessonstate.Lesson, version int) (video, error) {
	m := l.Media
	if m == nil || l.MediaStatus != lessonstate.MediaReady {
		return video{}, failure.Permanentf("the lesson has no media to analyze (media status %q)", l.MediaStatus)
	}
	ext := strings.ToLower(m.Ext)
	if ext == "" {
		ext = "mp4" // as the download stage names it
	}
	mimeType, ok := mimeTypes[ext]
	if !ok {
		return video{}, failure.Permanentf("the source video is .%s: the analyzer reads the length of MP4 and QuickTime videos only", ext)
	}
	object := download.ObjectName(l.ID, version, ext)
	v := video{uri: "gs://" + s.RawBucket + "/" + object, mimeType: mimeType}
	obj := s.Storage.Bucket(s.RawBucket).Object(object)
	attrs, err := obj.Attrs(ctx)
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return v, failure.Permanentf("no video at %s: the download stage left none for this version", v.uri)
	case err != nil:
		return v, failure.Retryablef("read %s: %w", v.uri, err)
	}
	// Pinned to the generation whose attributes were read, so that every
	// range read sees the same bytes.
	obj = obj.Generation(attrs.Generation)
	if v.duration, err = MP4Duration(newObjectReader(ctx, obj, attrs.Size), attrs.Size); err != nil {
		return v, fmt.Errorf("length of %s: %w", v.uri, err)
	}
	return v, nil
}

// window returns window i's elements: read back if an earlier call stored
// them asked the same way, else asked for, checked, asked again while the
// answers are bad and retries are left, and stored.
func (s *Stage) window(ctx context.Context, log *slog.Logger, l lessonstate.Lesson, version int, v video, ws []artifact.Window, i int) (storedWindow, bool, error) {
	w, last := ws[i], i == len(ws)-1
	label := fmt.Sprintf("window %d of %d [%s s, %s s)", i+1, len(ws), seconds(w.Start), seconds(w.End))
	name := windowName(l.ID, version, i+1)
	want := storedWindow{
		LessonID: l.ID, Version: version, Index: i + 1, Window: w,
		Model: s.Model, FPS: s.FPS, Resolution: s.Resolution, Prompt: PromptVersion,
	}
	stored, found, err := s.readWindow(ctx, name)
	if err != nil {
		return storedWindow{}, false, failure.Retryablef("%s: read %s: %w", label, name, err)
	}
	if found && stored.sameRequest(want) {
		log.InfoContext(ctx, "window reused: an earlier call paid for it", "window", i+1, "of", len(ws))
		return stored, true, nil
	}

	// A window that fails after paid answers records them here: the
	// failure is not written in this package, and no later call reads
	// them back. One that succeeds carries them (InputTokens,
	// OutputTokens) to the note of its progress.
	paidFailure := func(err error) (storedWindow, bool, error) {
		s.recordUsage(ctx, log, l.ID, s.meters(want.InputTokens, want.OutputTokens))
		return storedWindow{}, false, err
	}
	contents, cfg := s.request(v.uri, v.mimeType, l.Title, w, last)
	var problems []string
	for answer := 1; answer <= 1+s.AnswerRetries; answer++ {
		resp, err := s.Gemini.Models.GenerateContent(ctx, s.Model, contents, cfg)
		if err != nil {
			return paidFailure(apiFailure(label, err))
		}
		in, out := tokens(ctx, log, resp)
		want.InputTokens += in
		want.OutputTokens += out
		els, err := readAnswer(resp, w)
		if err != nil {
			log.WarnContext(ctx, "bad answer", "window", i+1, "of", len(ws), "answer", answer, "error", err.Error())
			problems = append(problems, fmt.Sprintf("answer %d: %v", answer, err))
			continue
		}
		want.Elements, want.ModelVersion, want.Answers = els, resp.ModelVersion, answer
		if err := s.writeJSON(ctx, name, want, l.ID, version); err != nil {
			return paidFailure(failure.Retryablef("%s: store the answer in %s: %w", label, name, err))
		}
		log.InfoContext(ctx, "window analyzed", "window", i+1, "of", len(ws), "elements", len(els),
			"answers", answer, "inputTokens", want.InputTokens, "outputTokens", want.OutputTokens)
		return want, false, nil
	}
	return paidFailure(failure.Permanentf("%s: Gemini gave %d answer(s), none valid: %s",
		label, len(problems), strings.Join(problems, "; ")))
}

// tokens are what a call is billed for: the prompt (video, audio, text) as
// input, the answer and the model's thinking (billed as output) as output.
func tokens(ctx context.Context, log *slog.Logger, resp *genai.GenerateContentResponse) (in, out int64) {
	u := resp.UsageMetadata
	if u == nil {
		log.WarnContext(ctx, "the answer carries no usage metadata; its tokens are not in the ledger")
		return 0, 0
	}
	in = int64(u.PromptTokenCount) + int64(u.ToolUsePromptTokenCount)
	out = int64(u.CandidatesTokenCount) + int64(u.ThoughtsTokenCount)
	return in, out
}

// meters are tokens as the cost ledger counts them, by model.
func (s *Stage) meters(in, out int64) map[string]float64 {
	return map[string]float64{
		lessonstate.MeterGeminiInputTokens(s.Model):  float64(in),
		lessonstate.MeterGeminiOutputTokens(s.Model): float64(out),
	}
}

// recordUsage adds usage to the lesson's cost ledger in a write of its own,
// for paid calls no progress write carries. It writes on a detached
// context: a call that was paid is recorded even if the request is cut off
// now. A failed write is logged, not returned: failing the stage for it
// would make the workflow pay for the window again.
func (s *Stage) recordUsage(ctx context.Context, log *slog.Logger, lessonID string, usage map[string]float64) {
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if err := s.Store.RecordUsage(octx, lessonID, usage); err != nil {
		log.ErrorContext(ctx, "usage not recorded", "meters", usage, "error", err.Error())
	}
}

// apiFailure classifies a failed GenerateContent. The SDK has already
// retried 408, 429 and 5xx (ClientConfig.Attempts): what is left of those,
// a 401 (credentials the next call may refresh) and transport errors are
// retryable; a 400, 403, 404 or another refusal will be refused again.
func apiFailure(label string, err error) error {
	var ae genai.APIError
	var pae *genai.APIError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &pae) && pae != nil:
		ae = *pae
	default:
		return failure.Retryablef("%s: Gemini call: %w", label, err)
	}
	if ae.Code == 0 || ae.Code == 401 || ae.Code == 408 || ae.Code == 429 || ae.Code >= 500 {
		return failure.Retryablef("%s: Gemini answered %d %s: %s", label, ae.Code, ae.Status, ae.Message)
	}
	return failure.Permanentf("%s: Gemini refused the request: %d %s: %s", label, ae.Code, ae.Status, ae.Message)
}
