package enrich

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// The paid calls' answers, kept in the artifacts bucket as soon as they are
// paid, under the lesson version's prefix. Each records a hash of what was
// asked (InputsSHA256): a later attempt that asks the same reads it back;
// one that asks otherwise (another title, model, prompt) asks again and
// replaces it.
const (
	embeddingCache = "enrich/embedding.json"
	answerCache    = "enrich/answer.json"
)

// storedEmbedding is the lesson's pooled embedding and what it cost.
type storedEmbedding struct {
	LessonID     string    `json:"lessonId"`
	Version      int       `json:"version"`
	InputsSHA256 string    `json:"inputsSha256"`
	Model        string    `json:"model"`
	Dimensions   int       `json:"dimensions"`
	Parts        int       `json:"parts"`
	TextTokens   int       `json:"textTokens"`
	BilledTokens int64     `json:"billedTokens"`
	Vector       []float32 `json:"vector"`

	reused bool
}

// storedAnswer is Gemini's checked description and what it cost.
type storedAnswer struct {
	LessonID     string `json:"lessonId"`
	Version      int    `json:"version"`
	InputsSHA256 string `json:"inputsSha256"`
	Model        string `json:"model"`
	Prompt       string `json:"prompt"` // PromptVersion
	ModelVersion string `json:"modelVersion"`
	// Answers is how many answers it took to get a valid one; the tokens
	// count them all.
	Answers      int    `json:"answers"`
	InputTokens  int64  `json:"inputTokens"`
	OutputTokens int64  `json:"outputTokens"`
	Answer       Answer `json:"answer"`

	reused bool
}

// hashOf is the hex SHA-256 of parts, each length-prefixed so that no two
// lists of parts hash alike.
func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// embedding returns the lesson text's pooled embedding: read back if an
// earlier attempt paid for it, else asked for, recorded in the ledger and
// kept.
func (s *Stage) embedding(ctx context.Context, log *slog.Logger, lessonID string, version int, text string) (storedEmbedding, error) {
	model, dims := s.Embedder.Model(), s.Embedder.Dimensions()
	want := storedEmbedding{
		LessonID: lessonID, Version: version, Model: model, Dimensions: dims,
		InputsSHA256: hashOf(model, strconv.Itoa(dims), text),
	}
	name := artifact.Prefix(lessonID, version) + embeddingCache
	var stored storedEmbedding
	found, err := s.readCache(ctx, name, &stored)
	if err != nil {
		return want, err
	}
	if found && stored.InputsSHA256 == want.InputsSHA256 && len(stored.Vector) == dims {
		log.InfoContext(ctx, "embedding reused: an earlier attempt paid for it", "parts", stored.Parts)
		stored.reused = true
		return stored, nil
	}
	p, err := s.Embedder.EmbedLong(ctx, text)
	if p.BilledTokens > 0 {
		s.recordUsage(ctx, log, lessonID, map[string]float64{lessonstate.MeterEmbeddingTokens(model): float64(p.BilledTokens)})
	}
	if err != nil {
		return want, err
	}
	want.Parts, want.TextTokens, want.BilledTokens, want.Vector = p.Parts, p.TextTokens, p.BilledTokens, p.Vector
	if err := s.writeJSON(ctx, name, want, lessonID, version); err != nil {
		return want, failure.Retryablef("keep the embedding in %s: %w", name, err)
	}
	log.InfoContext(ctx, "lesson embedded", "model", model, "dimensions", dims, "parts", p.Parts,
		"textTokens", p.TextTokens, "billedTokens", p.BilledTokens)
	return want, nil
}

// describe returns Gemini's checked description of the lesson: read back
// if an earlier attempt paid for it asked the same way, else asked for,
// asked again while the answers are bad and retries are left, and kept.
func (s *Stage) describe(ctx context.Context, log *slog.Logger, lessonID string, version int, prompt string) (storedAnswer, error) {
	want := storedAnswer{
		LessonID: lessonID, Version: version, Model: s.Model, Prompt: PromptVersion,
		InputsSHA256: hashOf(s.Model, PromptVersion, prompt),
	}
	name := artifact.Prefix(lessonID, version) + answerCache
	var stored storedAnswer
	found, err := s.readCache(ctx, name, &stored)
	if err != nil {
		return want, err
	}
	if found && stored.InputsSHA256 == want.InputsSHA256 && stored.Answers > 0 {
		log.InfoContext(ctx, "description reused: an earlier attempt paid for it")
		stored.reused = true
		return stored, nil
	}

	contents := genai.Text(prompt)
	var problems []string
	for n := 1; n <= 1+s.AnswerRetries; n++ {
		resp, err := s.Gemini.Models.GenerateContent(ctx, s.Model, contents, generation())
		if err != nil {
			return want, apiFailure(err)
		}
		in, out := s.geminiUsage(ctx, log, lessonID, resp)
		want.InputTokens += in
		want.OutputTokens += out
		a, err := readAnswer(resp)
		if err != nil {
			log.WarnContext(ctx, "bad answer", "answer", n, "error", err.Error())
			problems = append(problems, fmt.Sprintf("answer %d: %v", n, oneLine(err.Error())))
			continue
		}
		want.Answer, want.ModelVersion, want.Answers = a, resp.ModelVersion, n
		if err := s.writeJSON(ctx, name, want, lessonID, version); err != nil {
			return want, failure.Retryablef("keep the description in %s: %w", name, err)
		}
		log.InfoContext(ctx, "lesson described", "answers", n, "lessonLevel", a.Level, "keywords", len(a.Keywords),
			"inputTokens", want.InputTokens, "outputTokens", want.OutputTokens)
		return want, nil
	}
	return want, failure.Permanentf("Gemini gave %d answer(s), none valid: %s", len(problems), strings.Join(problems, "; "))
}

// geminiUsage adds a call's tokens to the lesson's ledger: the prompt as
// input, the answer and the model's thinking (billed as output) as output.
func (s *Stage) geminiUsage(ctx context.Context, log *slog.Logger, lessonID string, resp *genai.GenerateContentResponse) (in, out int64) {
	u := resp.UsageMetadata
	if u == nil {
		log.WarnContext(ctx, "the answer carries no usage metadata; its tokens are not in the ledger")
		return 0, 0
	}
	in = int64(u.PromptTokenCount) + int64(u.ToolUsePromptTokenCount)
	out = int64(u.CandidatesTokenCount) + int64(u.ThoughtsTokenCount)
	s.recordUsage(ctx, log, lessonID, map[string]float64{
		lessonstate.MeterGeminiInputTokens(s.Model):  float64(in),
		lessonstate.MeterGeminiOutputTokens(s.Model): float64(out),
	})
	return in, out
}

// recordUsage writes to the ledger on a detached context: a call that was
// paid is recorded even if the request is cut off now. A failed write is
// logged, not returned: failing the stage for it would pay again.
func (s *Stage) recordUsage(ctx context.Context, log *slog.Logger, lessonID string, meters map[string]float64) {
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if err := s.Store.RecordUsage(octx, lessonID, meters); err != nil {
		log.ErrorContext(ctx, "usage not recorded", "meters", meters, "error", err.Error())
	}
}

// apiFailure classifies a failed GenerateContent. The SDK has already
// retried 408, 429 and 5xx: what is left of those, a 401 (credentials the
// next call may refresh) and transport errors are retryable; a 400, 403,
// 404 or another refusal will be refused again.
func apiFailure(err error) error {
	var ae genai.APIError
	var pae *genai.APIError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &pae) && pae != nil:
		ae = *pae
	default:
		return failure.Retryablef("Gemini call: %w", err)
	}
	if ae.Code == 0 || ae.Code == 401 || ae.Code == 408 || ae.Code == 429 || ae.Code >= 500 {
		return failure.Retryablef("Gemini answered %d %s: %s", ae.Code, ae.Status, ae.Message)
	}
	return failure.Permanentf("Gemini refused the request: %d %s: %s", ae.Code, ae.Status, ae.Message)
}
