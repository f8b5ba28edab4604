package genaiclient_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/genaiclient"
)

// A plain-HTTP base URL is the local Gemini: the client reaches it with a
// static token, looking for no credentials, and retries what it is told to.
func TestNewReachesTheLocalGeminiOffline(t *testing.T) {
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	srv := gemini.NewServer(cat, gemini.Options{Logger: slog.New(slog.DiscardHandler)})
	url, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	env := genaiclient.Env{Location: "us-central1", BaseURL: url, APIAttempts: 2, APIRetryDelay: time.Millisecond, APIRetryMaxDelay: time.Millisecond}
	if err := env.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := genaiclient.New(t.Context(), env.Config("p"))
	if err != nil {
		t.Fatal(err)
	}
	srv.FailNext(gemini.Match{}, 503, 1) // absorbed by the second attempt
	schema := &genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{
		"keywords": {Type: genai.TypeArray, Items: &genai.Schema{Type: genai.TypeString}},
	}}
	resp, err := c.Models.GenerateContent(t.Context(), "gemini-3.5-flash",
		genai.Text(gemini.MarkerTitle+" Condicionales\n"+gemini.MarkerTranscript+" La instrucción if decide."),
		&genai.GenerateContentConfig{ResponseMIMEType: "application/json", ResponseSchema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Text(), "keywords") || srv.Count(gemini.Match{}) != 2 {
		t.Errorf("answer %q after %d requests", resp.Text(), srv.Count(gemini.Match{}))
	}
}

func TestConfigurationIsChecked(t *testing.T) {
	if _, err := genaiclient.New(t.Context(), genaiclient.Config{Location: "global"}); err == nil {
		t.Error("a client without project was built")
	}
	err := genaiclient.Env{Location: "", BaseURL: "localhost:1", APIAttempts: 0, APIRetryDelay: time.Second}.Validate()
	for _, want := range []string{"GEMINI_LOCATION", "GEMINI_BASE_URL", "GEMINI_API_ATTEMPTS", "GEMINI_API_RETRY_MAX_DELAY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not name %s: %v", want, err)
		}
	}
}
