package openai_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	localopenai "github.com/coursekb/pipeline/local/openai"
)

func TestRateLimitThenSuccessThroughTheSDK(t *testing.T) {
	t.Parallel()
	srv, c := start(t, localopenai.Options{})
	ctx := t.Context()
	params := embedStrings(openai.EmbeddingModelTextEmbedding3Small, 0, "hola")

	// Two 429s are absorbed by the SDK's two default retries, waiting what
	// retry-after-ms says.
	srv.InjectFault(localopenai.Fault{Status: http.StatusTooManyRequests, PathPrefix: "/embeddings", Count: 2,
		RetryAfter: 20 * time.Millisecond})
	var raw *http.Response
	began := time.Now()
	res, err := c.Embeddings.New(ctx, params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatalf("after two 429s: %v", err)
	}
	if len(res.Data) != 1 || raw.Header.Get("x-request-id") == "" {
		t.Errorf("answer %v, request id %q", res.Data, raw.Header.Get("x-request-id"))
	}
	if elapsed := time.Since(began); elapsed < 40*time.Millisecond {
		t.Errorf("two retries took %v: retry-after-ms was not honoured", elapsed)
	}
	if n := srv.Requests("/embeddings"); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	if cn := srv.Counters(); cn.Faults != 2 || cn.EmbeddingCalls != 1 {
		t.Errorf("counters = %+v", cn)
	}

	// Three outlast them: the third 429 reaches the caller with OpenAI's
	// body and headers.
	srv.InjectFault(localopenai.Fault{Status: http.StatusTooManyRequests, PathPrefix: "/embeddings", Count: 3,
		RetryAfter: time.Millisecond})
	_, err = c.Embeddings.New(ctx, params)
	e := apiError(t, err)
	h := e.Response.Header
	if e.StatusCode != 429 || e.Code != "rate_limit_exceeded" || e.Type != "requests" ||
		h.Get("retry-after") != "1" || h.Get("retry-after-ms") != "1" ||
		h.Get("x-ratelimit-remaining-requests") != "0" || h.Get("x-ratelimit-reset-requests") == "" {
		t.Errorf("429 = %d %q %q, headers %v", e.StatusCode, e.Code, e.Type, h)
	}

	// A 500 on one path leaves the others alone; without retries it surfaces.
	srv.InjectFailures("/files", http.StatusInternalServerError, 1)
	if _, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{}); err != nil {
		t.Errorf("unfaulted path failed: %v", err)
	}
	_, err = c.Files.List(ctx, openai.FileListParams{}, option.WithMaxRetries(0))
	if e := apiError(t, err); e.StatusCode != 500 || e.Type != "server_error" {
		t.Errorf("500 = %d %q", e.StatusCode, e.Type)
	}
	if _, err := c.Files.List(ctx, openai.FileListParams{}); err != nil {
		t.Errorf("after the fault: %v", err)
	}

	// An answer lost after the upload was done: the SDK's retry uploads
	// again, and two files exist.
	srv.InjectFault(localopenai.Fault{Status: http.StatusBadGateway, PathPrefix: "/files", AfterServing: true,
		RetryAfter: time.Millisecond})
	f := upload(t, ctx, c, "lesson-lost-v1.md", lessonSEO)
	var named []string
	for _, g := range srv.Files() {
		if g.Filename == "lesson-lost-v1.md" {
			named = append(named, g.ID)
		}
	}
	if len(named) != 2 || named[1] != f.ID {
		t.Errorf("files after a lost answer = %v, want two, the second %s", named, f.ID)
	}
}

func TestWireErrors(t *testing.T) {
	t.Parallel()
	srv := localopenai.NewServer(localopenai.Options{APIKey: "sk-local"})
	base, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	cases := []struct {
		name, method, url, key string
		status                 int
		code                   string
	}{
		{"no key", http.MethodGet, base + "/files", "", 401, ""},
		{"wrong key", http.MethodGet, base + "/files", "sk-other", 401, "invalid_api_key"},
		{"unknown path", http.MethodGet, base + "/nothing", "sk-local", 404, ""},
		{"wrong method", http.MethodPut, base + "/files", "sk-local", 404, ""},
		{"outside /v1", http.MethodGet, strings.TrimSuffix(base, localopenai.APIPrefix) + "/files", "sk-local", 404, ""},
		{"ok", http.MethodGet, base + "/vector_stores", "sk-local", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, tc.url, nil)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || res.Header.Get("x-request-id") == "" {
				t.Fatalf("%d, request id %q: %s", res.StatusCode, res.Header.Get("x-request-id"), b)
			}
			if tc.status == 200 {
				return
			}
			var body struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(b, &body); err != nil || body.Error["message"] == "" || body.Error["type"] == nil {
				t.Fatalf("error body %s", b)
			}
			for _, k := range []string{"param", "code"} {
				if _, ok := body.Error[k]; !ok {
					t.Errorf("error body lacks %q: %s", k, b)
				}
			}
			if code, _ := body.Error["code"].(string); code != tc.code {
				t.Errorf("code = %v, want %q", body.Error["code"], tc.code)
			}
		})
	}
}
