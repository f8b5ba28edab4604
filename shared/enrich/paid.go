package enrich

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
func (s *Stage) embedding(ctx context.Context, log *slog.Logger, paid *tally, lessonID string, version int, text string) (storedEmbedding, error) {
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
		paid.reuse(embeddingCache+":"+stored.InputsSHA256, stored.meters())
		stored.reused = true
		return stored, nil
	}
	p, err := s.Embedder.EmbedLong(ctx, text)
	paid.add(map[string]float64{lessonstate.MeterEmbeddingTokens(model): float64(p.BilledTokens)})
	if err != nil {
		return want, err
	}
	want.Parts, want.TextTokens, want.BilledTokens, want.Vector = p.Parts, p.TextTokens, p.BilledTokens, p.Vector
	if err := s.writeJSON(ctx, name, want, lessonID, version); err != nil {
		return want, failure.Retryablef("keep the embedding in %s: %w", name, err)
	}
	paid.billed(embeddingCache + ":" + want.InputsSHA256)
	log.InfoContext(ctx, "lesson embedded", "model", model, "dimensions", dims, "parts", p.Parts,
		"textTokens", p.TextTokens, "billedTokens", p.BilledTokens)
	return want, nil
}

// describe returns Gemini's checked description of the lesson: read back
// if an earlier attempt paid for it asked the same way, else asked for,
// asked again while the answers are bad and retries are left, and kept.
func (s *Stage) describe(ctx context.Context, log *slog.Logger, paid *tally, lessonID string, version int, prompt string) (storedAnswer, error) {
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
		paid.reuse(answerCache+":"+stored.InputsSHA256, s.geminiMeters(stored.InputTokens, stored.OutputTokens))
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
		in, out := geminiTokens(ctx, log, resp)
		paid.add(s.geminiMeters(in, out))
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
		paid.billed(answerCache + ":" + want.InputsSHA256)
		log.InfoContext(ctx, "lesson described", "answers", n, "lessonLevel", a.Level, "keywords", len(a.Keywords),
			"inputTokens", want.InputTokens, "outputTokens", want.OutputTokens)
		return want, nil
	}
	return want, failure.Permanentf("Gemini gave %d answer(s), none valid: %s", len(problems), strings.Join(problems, "; "))
}

// geminiTokens are what a call is billed for: the prompt as input, the
// answer and the model's thinking (billed as output) as output.
func geminiTokens(ctx context.Context, log *slog.Logger, resp *genai.GenerateContentResponse) (in, out int64) {
	u := resp.UsageMetadata
	if u == nil {
		log.WarnContext(ctx, "the answer carries no usage metadata; its tokens are not in the ledger")
		return 0, 0
	}
	in = int64(u.PromptTokenCount) + int64(u.ToolUsePromptTokenCount)
	out = int64(u.CandidatesTokenCount) + int64(u.ThoughtsTokenCount)
	return in, out
}

// geminiMeters are Gemini tokens as the cost ledger counts them.
func (s *Stage) geminiMeters(in, out int64) map[string]float64 {
	return map[string]float64{
		lessonstate.MeterGeminiInputTokens(s.Model):  float64(in),
		lessonstate.MeterGeminiOutputTokens(s.Model): float64(out),
	}
}

// meters are what the embedding cost, as the cost ledger counts it.
func (e storedEmbedding) meters() map[string]float64 {
	return map[string]float64{lessonstate.MeterEmbeddingTokens(e.Model): float64(e.BilledTokens)}
}

// tally is what one attempt owes the lesson's cost ledger. It is written
// with the attempt's outcome (the completion, or a note just before the
// failure) rather than call by call, so that the stage writes the document
// once; with it goes the list of kept answers the ledger now holds
// (OutBilled). An attempt that dies before writing its outcome leaves its
// answers kept but not in that list: the attempt that reads them back
// adds their usage then, so a crash neither loses nor doubles it.
//
// The attempt's calls are made one after the other, so it needs no lock.
type tally struct {
	usage map[string]float64
	// list is OutBilled: what the stage record said, then what this
	// attempt paid for and kept.
	list string
}

// newTally returns the tally of an attempt whose stage record lists billed
// (OutBilled).
func newTally(billed string) *tally {
	return &tally{usage: map[string]float64{}, list: billed}
}

// add counts what a call just paid for.
func (t *tally) add(meters map[string]float64) {
	for m, v := range meters {
		if v != 0 {
			t.usage[m] += v
		}
	}
}

// billed records that the answer kept under key is paid for by this
// attempt, whose outcome carries its usage.
func (t *tally) billed(key string) {
	if !listed(t.list, key) {
		t.list = strings.Trim(t.list+";"+key, ";")
	}
}

// reuse counts the usage of an answer kept under key by an earlier attempt
// that died before writing it to the ledger, and nothing if it did.
func (t *tally) reuse(key string, meters map[string]float64) {
	if !listed(t.list, key) {
		t.add(meters)
		t.billed(key)
	}
}

// owes reports whether the attempt has anything to write to the ledger or
// to the list of what it holds.
func (t *tally) owes(recorded string) bool { return len(t.usage) > 0 || t.list != recorded }

func listed(list, item string) bool { return slices.Contains(strings.Split(list, ";"), item) }

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
