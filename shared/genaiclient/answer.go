package genaiclient

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genai"
)

// AnswerText is the first candidate's answer text, thoughts left out. A
// candidate that did not stop on its own (cut at the token limit, blocked
// for safety) is not an answer, even when it holds some text.
func AnswerText(resp *genai.GenerateContentResponse) (string, error) {
	if resp == nil || len(resp.Candidates) == 0 {
		if resp != nil && resp.PromptFeedback != nil && resp.PromptFeedback.BlockReason != "" {
			return "", fmt.Errorf("no answer: the prompt was blocked (%s) %s", resp.PromptFeedback.BlockReason, resp.PromptFeedback.BlockReasonMessage)
		}
		return "", errors.New("no answer: the response has no candidate")
	}
	c := resp.Candidates[0]
	switch c.FinishReason {
	case genai.FinishReasonStop, genai.FinishReasonUnspecified, "":
	case genai.FinishReasonMaxTokens:
		return "", errors.New("the answer was cut off at the output token limit (MAX_TOKENS)")
	default:
		return "", fmt.Errorf("the model stopped with %s %s", c.FinishReason, c.FinishMessage)
	}
	var b strings.Builder
	if c.Content != nil {
		for _, p := range c.Content.Parts {
			if p != nil && !p.Thought {
				b.WriteString(p.Text)
			}
		}
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", errors.New("empty answer")
	}
	return b.String(), nil
}
