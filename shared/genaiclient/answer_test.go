package genaiclient_test

import (
	"strings"
	"testing"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/genaiclient"
)

func answerOf(text string) *genai.GenerateContentResponse {
	return &genai.GenerateContentResponse{Candidates: []*genai.Candidate{{
		Content:      genai.NewContentFromText(text, genai.RoleModel),
		FinishReason: genai.FinishReasonStop,
	}}}
}

// Only a candidate that stopped on its own is an answer; thoughts are not
// part of it.
func TestAnswerText(t *testing.T) {
	cut := answerOf(`{"elements":[`)
	cut.Candidates[0].FinishReason = genai.FinishReasonMaxTokens
	safety := answerOf(`{"elements":[]}`)
	safety.Candidates[0].FinishReason = genai.FinishReasonSafety
	blocked := &genai.GenerateContentResponse{PromptFeedback: &genai.GenerateContentResponsePromptFeedback{BlockReason: genai.BlockedReasonProhibitedContent}}
	for name, tc := range map[string]struct {
		resp *genai.GenerateContentResponse
		says string
	}{
		"cut":     {cut, "output token limit (MAX_TOKENS)"},
		"safety":  {safety, "the model stopped with SAFETY"},
		"blocked": {blocked, "the prompt was blocked (PROHIBITED_CONTENT)"},
		"none":    {&genai.GenerateContentResponse{}, "no candidate"},
		"empty":   {answerOf("  "), "empty answer"},
	} {
		if _, err := genaiclient.AnswerText(tc.resp); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %q", name, err, tc.says)
		}
	}
	thinking := answerOf(`{"elements":[]}`)
	thinking.Candidates[0].Content.Parts = append([]*genai.Part{{Text: "Pienso que…", Thought: true}}, thinking.Candidates[0].Content.Parts...)
	if text, err := genaiclient.AnswerText(thinking); err != nil || text != `{"elements":[]}` {
		t.Errorf("with a thought part: %q, %v", text, err)
	}
}
