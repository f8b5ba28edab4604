package gemini_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/shared/artifact"
)

func TestEnrichSampleLessons(t *testing.T) {
	t.Parallel()
	cat := loadSample(t)
	f := start(t, gemini.Options{})
	tests := []struct {
		lesson        string
		earlier       []string
		keywords      []string
		level         string
		summary       string
		objectives    []string
		prerequisites []string
	}{
		{
			lesson:     "pyL1vars001",
			keywords:   []string{"variable", "tipos básicos", "valor"},
			level:      artifact.LevelBasic,
			summary:    "Bienvenidos al curso. En esta lección vamos a ver qué es una variable.",
			objectives: []string{"Ver qué es una variable", "Entender «Tipos básicos»"},
		},
		{
			lesson:        "pyL2cond002",
			earlier:       []string{"Variables y tipos de datos"},
			keywords:      []string{"if", "elif", "else", "condicionales"},
			level:         artifact.LevelBasic,
			summary:       "Ahora vamos a tomar decisiones en el código. La instrucción if ejecuta un bloque solo cuando la condición es verdadera.",
			objectives:    []string{"Tomar decisiones en el código"},
			prerequisites: []string{"En Python los bloques se marcan con la sangría, no con llaves"},
		},
		{
			lesson:     "mkL1pers005",
			keywords:   []string{"buyer persona", "cliente ideal"},
			level:      artifact.LevelBasic,
			summary:    "Antes de crear contenido necesitas saber para quién lo creas.",
			objectives: []string{"Entender «Qué incluye»"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.lesson, func(t *testing.T) {
			resp, err := enrichText(f, lessonPrompt(t, cat, tc.lesson, tc.earlier...))
			if err != nil {
				t.Fatal(err)
			}
			e, err := checkEnrichment(resp.Text())
			if err != nil {
				t.Fatalf("answer breaks the schema: %v\n%s", err, resp.Text())
			}
			for _, k := range tc.keywords {
				if !slices.Contains(e.Keywords, k) {
					t.Errorf("keywords %q lack %q", e.Keywords, k)
				}
			}
			if len(e.Keywords) > 8 {
				t.Errorf("%d keywords, want at most 8", len(e.Keywords))
			}
			if e.Level != tc.level {
				t.Errorf("level = %q, want %q", e.Level, tc.level)
			}
			if e.Summary != tc.summary {
				t.Errorf("summary = %q, want %q", e.Summary, tc.summary)
			}
			if !reflect.DeepEqual(e.Objectives, tc.objectives) {
				t.Errorf("objectives = %q, want %q", e.Objectives, tc.objectives)
			}
			if tc.prerequisites == nil {
				tc.prerequisites = []string{}
			}
			if !reflect.DeepEqual(e.Prerequisites, tc.prerequisites) {
				t.Errorf("prerequisites = %q, want %q", e.Prerequisites, tc.prerequisites)
			}
			if u := resp.UsageMetadata; u == nil || u.PromptTokenCount <= 0 || u.TotalTokenCount != u.PromptTokenCount+u.CandidatesTokenCount {
				t.Errorf("usage = %+v", u)
			}
		})
	}
	if n := f.srv.Count(gemini.Match{Lesson: "pyL2cond002", Kind: gemini.Enrichment}); n != 1 {
		t.Errorf("Count(pyL2cond002 enrichment) = %d, want 1 (named by %s)", n, gemini.MarkerLesson)
	}
}

// The answer comes from the prompt, not from the catalog: cues in the text
// decide it, and the same prompt always gets the same answer.
func TestEnrichFromPromptCues(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	prompt := func(module, transcript, visuals string, earlier ...string) string {
		var b strings.Builder
		// The instructions may quote a marker at the start of a line: the
		// section given later wins.
		fmt.Fprintf(&b, "Instrucciones: lee las secciones.\n%s aquí va el título\n\n", gemini.MarkerTitle)
		fmt.Fprintf(&b, "%s Diccionarios en Python\n%s %s\n", gemini.MarkerTitle, gemini.MarkerModule, module)
		if len(earlier) > 0 {
			fmt.Fprintf(&b, "%s\n- %s\n", gemini.MarkerEarlier, strings.Join(earlier, "\n- "))
		}
		fmt.Fprintf(&b, "%s %s\n%s\n%s\n", gemini.MarkerTranscript, transcript, gemini.MarkerVisuals, visuals)
		return b.String()
	}
	const plain = "Un diccionario guarda pares de clave y valor. Cada clave es única. Para leer un valor usamos la clave entre corchetes."
	lineVisuals := "- slide [0–12] Qué es un diccionario: pares clave-valor\n- code [12–30] Acceso por clave:\n    precios = {\"pan\": 1.2}\n    print(precios[\"pan\"])\n- slide [30–40] Resumen"
	tests := []struct {
		name         string
		prompt       string
		level        string
		keyword      string
		objective    string
		prerequisite string
		summary      string // how it starts
	}{
		{"first module", prompt("1 · Fundamentos", plain, lineVisuals), artifact.LevelBasic, "diccionario", "Entender «Qué es un diccionario»", "", "Un diccionario guarda"},
		{"third module", prompt("3 · Estructuras de datos", plain, lineVisuals), artifact.LevelIntermediate, "precios", "", "", "Un diccionario guarda"},
		{"sixth module", prompt("6 · Colecciones", plain, ""), artifact.LevelAdvanced, "clave", "", "", "Un diccionario guarda"},
		{"says advanced", prompt("1 · Fundamentos", "Este es un tema avanzado: diccionarios anidados. "+plain, ""), artifact.LevelAdvanced, "diccionario", "", "", "Este es un tema avanzado"},
		{"reminds", prompt("2 · Datos", "Ya vimos que una lista guarda valores en orden. "+plain, ""), artifact.LevelBasic, "", "", "Una lista guarda valores en orden", "Ya vimos que"},
		{"mentions an earlier lesson", prompt("2 · Datos", "Igual que con las variables, guardamos datos con un nombre. "+plain, "", "Variables y tipos de datos", "Condicionales"), artifact.LevelBasic, "", "", "Variables y tipos de datos", "Igual que con las variables"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var answers []string
			for range 2 {
				resp, err := enrichText(f, tc.prompt)
				if err != nil {
					t.Fatal(err)
				}
				answers = append(answers, resp.Text())
			}
			if answers[0] != answers[1] {
				t.Errorf("the same prompt got two answers:\n%s\n%s", answers[0], answers[1])
			}
			t.Logf("answer: %s", answers[0])
			e, err := checkEnrichment(answers[0])
			if err != nil {
				t.Fatal(err)
			}
			if e.Level != tc.level {
				t.Errorf("level = %q, want %q", e.Level, tc.level)
			}
			if tc.keyword != "" && !slices.Contains(e.Keywords, tc.keyword) {
				t.Errorf("keywords %q lack %q", e.Keywords, tc.keyword)
			}
			if tc.objective != "" && !slices.Contains(e.Objectives, tc.objective) {
				t.Errorf("objectives %q lack %q", e.Objectives, tc.objective)
			}
			if slices.Contains(e.Objectives, "Entender «Resumen»") {
				t.Errorf("objectives %q name a generic slide", e.Objectives)
			}
			if tc.prerequisite != "" && !slices.Contains(e.Prerequisites, tc.prerequisite) {
				t.Errorf("prerequisites %q lack %q", e.Prerequisites, tc.prerequisite)
			}
			// The first sentences are short: the second one joins them.
			if !strings.HasPrefix(e.Summary, tc.summary) || strings.Count(e.Summary, ". ") != 1 {
				t.Errorf("summary = %q, want the transcript's first two sentences", e.Summary)
			}
		})
	}
}

// The enricher may ask with a JSON Schema too.
func TestEnrichWithJSONSchema(t *testing.T) {
	t.Parallel()
	f := start(t, gemini.Options{})
	resp, err := f.client.Models.GenerateContent(t.Context(), model, genai.Text(lessonPrompt(t, loadSample(t), "mkL2cale006")), &genai.GenerateContentConfig{
		ResponseMIMEType: "application/json",
		ResponseJsonSchema: map[string]any{
			"type":     "object",
			"required": []string{"keywords", "level", "summary", "objectives", "prerequisites"},
			"properties": map[string]any{
				"keywords": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"level":    map[string]any{"type": "string", "enum": artifact.Levels},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := checkEnrichment(resp.Text())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.Keywords, "calendario editorial") {
		t.Errorf("keywords %q lack the lesson's subject", e.Keywords)
	}
}
