package gemini_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/artifact"
)

const (
	project  = "demo-project"
	location = "us-central1"
	model    = "gemini-2.5-flash"
)

func loadSample(t *testing.T) sample.Catalog {
	t.Helper()
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// page returns a sample page by id.
func page(t *testing.T, cat sample.Catalog, id string) (sample.Module, sample.Page) {
	t.Helper()
	var mod sample.Module
	var pg sample.Page
	cat.Pages(func(_ sample.Product, m sample.Module, p sample.Page) {
		if p.PageID == id {
			mod, pg = m, p
		}
	})
	if pg.PageID == "" {
		t.Fatalf("no page %s in the sample", id)
	}
	return mod, pg
}

// fixture is a server on a loopback port and the real SDK client on it.
type fixture struct {
	t      *testing.T
	srv    *gemini.Server
	url    string
	client *genai.Client
}

func start(t *testing.T, opts gemini.Options) fixture {
	t.Helper()
	srv := gemini.NewServer(loadSample(t), opts)
	url, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	client, err := gemini.NewClient(t.Context(), url, project, location)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{t: t, srv: srv, url: url, client: client}
}

func videoURI(lesson string) string {
	return "gs://demo-raw/" + artifact.Name(lesson, 1, "source.mp4")
}

// analysisSchema is the schema an analyzer would send, kinds as in artifact.
func analysisSchema(kinds ...string) *genai.Schema {
	if len(kinds) == 0 {
		kinds = artifact.VisualKinds
	}
	str := &genai.Schema{Type: genai.TypeString}
	num := &genai.Schema{Type: genai.TypeNumber}
	return &genai.Schema{
		Type: genai.TypeObject,
		Properties: map[string]*genai.Schema{
			"elements": {Type: genai.TypeArray, Items: &genai.Schema{
				Type: genai.TypeObject,
				Properties: map[string]*genai.Schema{
					"kind":  {Type: genai.TypeString, Enum: kinds},
					"start": num, "end": num,
					"title": str, "text": str, "code": str, "language": str, "description": str,
				},
				Required: []string{"kind", "start", "end"},
			}},
		},
		Required: []string{"elements"},
	}
}

// analyze asks for the window [from, to) of a lesson's video (to 0: to the
// end), as the analyze stage does.
func analyze(f fixture, lesson string, from, to time.Duration, cfg *genai.GenerateContentConfig) (*genai.GenerateContentResponse, error) {
	return analyzeOn(f, model, lesson, from, to, cfg)
}

// analyzeOn is analyze asking the named model.
func analyzeOn(f fixture, model, lesson string, from, to time.Duration, cfg *genai.GenerateContentConfig) (*genai.GenerateContentResponse, error) {
	video := genai.NewPartFromURI(videoURI(lesson), "video/mp4")
	fps := 1.0
	video.VideoMetadata = &genai.VideoMetadata{StartOffset: from, EndOffset: to, FPS: &fps}
	if cfg == nil {
		cfg = &genai.GenerateContentConfig{}
	}
	cfg.ResponseMIMEType = "application/json"
	if cfg.ResponseSchema == nil && cfg.ResponseJsonSchema == nil {
		cfg.ResponseSchema = analysisSchema()
	}
	contents := []*genai.Content{genai.NewContentFromParts([]*genai.Part{
		video, genai.NewPartFromText("Describe lo que muestra el vídeo: diapositivas, código, diagramas, demostraciones y conceptos, con sus tiempos."),
	}, genai.RoleUser)}
	return f.client.Models.GenerateContent(f.t.Context(), model, contents, cfg)
}

// checkAnalysis validates an analysis answer against its contract and
// returns its elements as artifact types.
func checkAnalysis(text string) ([]artifact.VisualElement, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, ok := raw["elements"]; !ok {
		return nil, errors.New(`no "elements"`)
	}
	var els []artifact.VisualElement
	if err := json.Unmarshal(raw["elements"], &els); err != nil {
		return nil, fmt.Errorf("elements: %w", err)
	}
	for i, e := range els {
		switch {
		case !slices.Contains(artifact.VisualKinds, e.Kind):
			return nil, fmt.Errorf("element %d: kind %q outside the enum", i, e.Kind)
		case e.End < e.Start:
			return nil, fmt.Errorf("element %d: end %g before start %g", i, e.End, e.Start)
		}
	}
	return els, nil
}

// checkEnrichment validates an enrichment answer against its contract.
func checkEnrichment(text string) (artifact.Enrichment, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return artifact.Enrichment{}, fmt.Errorf("not JSON: %w", err)
	}
	for _, k := range []string{"keywords", "level", "summary", "objectives", "prerequisites"} {
		if _, ok := raw[k]; !ok {
			return artifact.Enrichment{}, fmt.Errorf("no %q", k)
		}
	}
	var e artifact.Enrichment
	if err := json.Unmarshal([]byte(text), &e); err != nil {
		return e, fmt.Errorf("shape: %w", err)
	}
	if !slices.Contains(artifact.Levels, e.Level) {
		return e, fmt.Errorf("level %q outside the enum", e.Level)
	}
	return e, nil
}

// enrichmentSchema is the schema an enricher would send.
func enrichmentSchema() *genai.Schema {
	list := &genai.Schema{Type: genai.TypeArray, Items: &genai.Schema{Type: genai.TypeString}}
	return &genai.Schema{
		Type: genai.TypeObject,
		Properties: map[string]*genai.Schema{
			"keywords":      list,
			"level":         {Type: genai.TypeString, Enum: artifact.Levels},
			"summary":       {Type: genai.TypeString},
			"objectives":    list,
			"prerequisites": list,
		},
		Required: []string{"keywords", "level", "summary", "objectives", "prerequisites"},
	}
}

// lessonPrompt writes the enrichment prompt of a sample lesson as an
// enricher would: instructions, then the sections the markers open.
func lessonPrompt(t *testing.T, cat sample.Catalog, lesson string, earlier ...string) string {
	t.Helper()
	mod, pg := page(t, cat, lesson)
	var visuals []artifact.VisualElement
	for i, s := range pg.Slides {
		end := s.At + 10
		if i+1 < len(pg.Slides) {
			end = pg.Slides[i+1].At
		}
		visuals = append(visuals, artifact.VisualElement{Kind: artifact.VisualSlide, Start: s.At, End: end, Title: s.Title, Text: s.Text})
		if s.Code != "" {
			visuals = append(visuals, artifact.VisualElement{Kind: artifact.VisualCode, Start: s.At, End: end, Code: s.Code, Language: "python"})
		}
	}
	vj, err := json.Marshal(visuals)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("Eres un asistente que describe lecciones de un curso. Devuelve palabras clave, nivel, resumen, objetivos y requisitos previos.\n\n")
	fmt.Fprintf(&b, "%s %s v1\n", gemini.MarkerLesson, pg.PageID)
	fmt.Fprintf(&b, "%s %s\n", gemini.MarkerTitle, pg.Name)
	fmt.Fprintf(&b, "%s %d · %s\n", gemini.MarkerModule, mod.Sequence, mod.Name)
	if len(earlier) > 0 {
		fmt.Fprintf(&b, "%s\n%s\n", gemini.MarkerEarlier, strings.Join(earlier, "\n"))
	}
	fmt.Fprintf(&b, "%s\n%s\n", gemini.MarkerTranscript, pg.Narration)
	fmt.Fprintf(&b, "%s\n%s\n", gemini.MarkerVisuals, vj)
	return b.String()
}

func enrichText(f fixture, prompt string) (*genai.GenerateContentResponse, error) {
	return f.client.Models.GenerateContent(f.t.Context(), model, genai.Text(prompt), &genai.GenerateContentConfig{
		ResponseMIMEType: "application/json",
		ResponseSchema:   enrichmentSchema(),
	})
}

// apiError unwraps the SDK's error for a non-2xx answer.
func apiError(t *testing.T, err error) genai.APIError {
	t.Helper()
	var ae genai.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want a genai.APIError, got %T: %v", err, err)
	}
	return ae
}

// post sends a raw body to the generateContent path, for what the SDK
// would refuse to send.
func post(t *testing.T, f fixture, path, authz string, body any) (int, http.Header, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

func generatePath(m string) string {
	return "/v1beta1/projects/" + project + "/locations/" + location + "/publishers/google/models/" + m + ":generateContent"
}
