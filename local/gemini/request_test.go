package gemini_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/gemini"
)

// Requests the SDK sends but Vertex refuses, and the refusal names the
// problem.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	fps := func(v float64) *float64 { return &v }
	videoPart := func(uri, mime string, vm *genai.VideoMetadata) *genai.Part {
		p := genai.NewPartFromURI(uri, mime)
		p.VideoMetadata = vm
		return p
	}
	asJSON := func(schema *genai.Schema) *genai.GenerateContentConfig {
		return &genai.GenerateContentConfig{ResponseMIMEType: "application/json", ResponseSchema: schema}
	}
	prompt := genai.NewPartFromText("Describe el vídeo.")
	tests := []struct {
		name   string
		model  string
		parts  []*genai.Part
		config *genai.GenerateContentConfig
		code   int
		status string
		says   string
	}{
		{"no video URI", model, []*genai.Part{prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "gs:// video URI"},
		{"not a gs URI", model, []*genai.Part{videoPart("https://example.com/v.mp4", "video/mp4", nil), prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "not a Cloud Storage URI"},
		{"not a video", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "image/png", nil), prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "not a video type"},
		{"fps over 24", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", &genai.VideoMetadata{FPS: fps(30)}), prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "fps"},
		{"window past the end", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", &genai.VideoMetadata{StartOffset: 100 * time.Second}), prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "past the end"},
		{"end past the end", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", &genai.VideoMetadata{EndOffset: 100 * time.Second}), prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "end_offset 100s is past the end"},
		{"end before start", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", &genai.VideoMetadata{StartOffset: 10 * time.Second, EndOffset: 5 * time.Second}), prompt}, asJSON(analysisSchema()), 400, "INVALID_ARGUMENT", "must be after start_offset"},
		{"no schema", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", nil), prompt}, nil, 400, "INVALID_ARGUMENT", "responseSchema"},
		{"schema without JSON", model, []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", nil), prompt}, &genai.GenerateContentConfig{ResponseSchema: analysisSchema()}, 400, "INVALID_ARGUMENT", "application/json"},
		{"schema of neither kind", model, []*genai.Part{prompt}, asJSON(&genai.Schema{Type: genai.TypeObject, Properties: map[string]*genai.Schema{"answer": {Type: genai.TypeString}}}), 400, "INVALID_ARGUMENT", `"elements"`},
		{"unknown lesson", model, []*genai.Part{videoPart(videoURI("nope"), "video/mp4", nil), prompt}, asJSON(analysisSchema()), 404, "NOT_FOUND", `"nope"`},
		{"lesson without video", model, []*genai.Part{videoPart(videoURI("pyQ1quiz003"), "video/mp4", nil), prompt}, asJSON(analysisSchema()), 404, "NOT_FOUND", "pyQ1quiz003"},
		{"not the raw bucket's layout", model, []*genai.Part{videoPart("gs://elsewhere/video.mp4", "video/mp4", nil), prompt}, asJSON(analysisSchema()), 404, "NOT_FOUND", "lessons/{lessonId}"},
		{"unknown model", "text-bison", []*genai.Part{videoPart(videoURI("pyL1vars001"), "video/mp4", nil), prompt}, asJSON(analysisSchema()), 404, "NOT_FOUND", "Publisher Model"},
		{"enrichment without sections", model, []*genai.Part{genai.NewPartFromText("Describe la lección de variables.")}, asJSON(enrichmentSchema()), 400, "INVALID_ARGUMENT", gemini.MarkerTitle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			contents := []*genai.Content{genai.NewContentFromParts(tc.parts, genai.RoleUser)}
			resp, err := f.client.Models.GenerateContent(t.Context(), tc.model, contents, tc.config)
			if err == nil {
				t.Fatalf("answered %s, want an error", resp.Text())
			}
			ae := apiError(t, err)
			if ae.Code != tc.code || ae.Status != tc.status || !strings.Contains(ae.Message, tc.says) {
				t.Errorf("error = %d %s %q, want %d %s naming %q", ae.Code, ae.Status, ae.Message, tc.code, tc.status, tc.says)
			}
		})
	}
}

// What the SDK would never send: the server still answers it as Vertex.
func TestBadRawRequests(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	bearer := "Bearer " + gemini.LocalToken
	okBody := map[string]any{
		"contents":         []any{map[string]any{"role": "user", "parts": []any{map[string]any{"text": gemini.MarkerTitle + " Variables"}}}},
		"generationConfig": map[string]any{"responseMimeType": "application/json", "responseJsonSchema": map[string]any{"type": "object", "properties": map[string]any{"keywords": map[string]any{"type": "array"}}}},
	}
	tests := []struct {
		name, path, authz string
		body              any
		code              int
		status, says      string
	}{
		{"empty contents", generatePath(model), bearer, map[string]any{"contents": []any{}}, 400, "INVALID_ARGUMENT", "contents"},
		{"empty parts", generatePath(model), bearer, map[string]any{"contents": []any{map[string]any{"role": "user", "parts": []any{}}}}, 400, "INVALID_ARGUMENT", "parts is empty"},
		{"bad duration", generatePath(model), bearer, map[string]any{
			"contents": []any{map[string]any{"role": "user", "parts": []any{map[string]any{
				"fileData":      map[string]any{"fileUri": videoURI("pyL1vars001"), "mimeType": "video/mp4"},
				"videoMetadata": map[string]any{"startOffset": "two minutes"},
			}}}},
			"generationConfig": map[string]any{"responseMimeType": "application/json", "responseSchema": analysisSchema()},
		}, 400, "INVALID_ARGUMENT", "start_offset"},
		{"no credentials", generatePath(model), "", okBody, 401, "UNAUTHENTICATED", "authentication credential"},
		{"no model", generatePath(""), bearer, okBody, 400, "INVALID_ARGUMENT", "model name is empty"},
		{"unknown path", "/v1beta1/models/" + model + ":generateContent", bearer, okBody, 404, "NOT_FOUND", "no route"},
		{"streaming", strings.Replace(generatePath(model), ":generateContent", ":streamGenerateContent", 1), bearer, okBody, 501, "UNIMPLEMENTED", "stream"},
		{"fine", generatePath(model), bearer, okBody, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, raw := post(t, f, tc.path, tc.authz, tc.body)
			if code != tc.code {
				t.Fatalf("status = %d, want %d: %s", code, tc.code, raw)
			}
			if code == 200 {
				return
			}
			var body struct {
				Error struct {
					Code    int
					Message string
					Status  string
				}
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("error body %q is not Vertex's JSON: %v", raw, err)
			}
			if body.Error.Code != tc.code || body.Error.Status != tc.status || !strings.Contains(body.Error.Message, tc.says) {
				t.Errorf("error = %+v, want %d %s naming %q", body.Error, tc.code, tc.status, tc.says)
			}
		})
	}
}

// NewClient's credentials are what the server expects when Options.Token
// is set; another token is refused.
func TestClientCredentials(t *testing.T) {
	t.Parallel()
	srv := gemini.NewServer(loadSample(t), gemini.Options{Token: gemini.LocalToken})
	url, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	client, err := gemini.NewClient(t.Context(), url, project, location)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{t: t, srv: srv, url: url, client: client}
	if _, err := analyze(f, "pyL1vars001", 0, 0, nil); err != nil {
		t.Fatalf("with NewClient's credentials: %v", err)
	}
	rq := srv.Received()[0]
	if rq.Project != project || rq.Location != location || rq.Model != model || rq.Kind != gemini.Analysis || rq.Version != "v1beta1" {
		t.Errorf("received %+v, want v1beta1, project %s, location %s, model %s, an analysis", rq, project, location, model)
	}
	if code, _, _ := post(t, f, generatePath(model), "Bearer someone-else", map[string]any{}); code != http.StatusUnauthorized {
		t.Errorf("another token: status %d, want 401", code)
	}
}

// Concurrent requests are each answered and counted.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	lessons := []string{"pyL1vars001", "pyL2cond002", "pyL3func004", "mkL1pers005", "mkL2cale006"}
	errs := make(chan error, 2*len(lessons))
	for _, l := range lessons {
		for range 2 {
			go func() {
				resp, err := analyze(f, l, 0, 0, nil)
				if err == nil {
					_, err = checkAnalysis(resp.Text())
				}
				errs <- err
			}()
		}
	}
	for range 2 * len(lessons) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, l := range lessons {
		if n := f.srv.Count(gemini.Match{Lesson: l, Kind: gemini.Analysis}); n != 2 {
			t.Errorf("Count(%s) = %d, want 2", l, n)
		}
	}
	if n := f.srv.Count(gemini.Match{Kind: gemini.Enrichment}); n != 0 {
		t.Errorf("Count(enrichment) = %d, want 0", n)
	}
}
