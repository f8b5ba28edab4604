package enrich

import (
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
)

// Section markers of the enrichment prompt. Each starts a line; the section
// is the rest of that line and the lines after it, up to the next line that
// starts with a marker. Text before the first marker (the instructions) is
// not part of any section, and a marker repeated later wins, so the
// instructions may quote the markers at the start of a line. The local
// Gemini (local/gemini) reads the prompt by these same constants, so the
// two cannot drift apart.
const (
	// MarkerLesson is followed by the lesson's page id (optionally " v" and
	// its version): it names the lesson for counters and faults. Without
	// it the local server finds the lesson by its title.
	MarkerLesson = "LECCIÓN:"
	// MarkerTitle is followed by the lesson's title.
	MarkerTitle = "TÍTULO:"
	// MarkerCourse is followed by the course's name.
	MarkerCourse = "CURSO:"
	// MarkerModule is followed by the module's order and name, order first
	// ("2 · Funciones"); the order is one of the level's cues.
	MarkerModule = "MÓDULO:"
	// MarkerEarlier is followed by the titles of the course's earlier
	// lessons, one a line: those the transcript mentions are prerequisites.
	MarkerEarlier = "LECCIONES ANTERIORES:"
	// MarkerTranscript is followed by the transcript's text.
	MarkerTranscript = "TRANSCRIPCIÓN:"
	// MarkerVisuals is followed by the lesson's visual elements: best as the
	// JSON array of artifact.VisualElement that analysis.json holds, or one
	// element a line as "kind [start–end] Title: text", code on the
	// indented or fenced lines after a code element's line.
	MarkerVisuals = "ELEMENTOS VISUALES:"
)

// Markers lists every section marker, in the order a prompt gives them.
var Markers = []string{MarkerLesson, MarkerTitle, MarkerCourse, MarkerModule, MarkerEarlier, MarkerTranscript, MarkerVisuals}

// PromptVersion names the prompt, the schema and the checks of the answer.
// A stored answer is reused only if it was asked the same way: change any
// of them, bump it.
const PromptVersion = "enrich/1"

// Limits of a valid answer (checkAnswer).
const (
	MinKeywords      = 3
	MaxKeywords      = 15
	MaxObjectives    = 10
	MaxPrerequisites = 10
	// maxEarlier bounds the earlier lessons named in the prompt: the
	// nearest ones are those a lesson builds on.
	maxEarlier = 40
)

// promptInput is everything the prompt says about a lesson.
type promptInput struct {
	LessonID    string
	Version     int
	Title       string
	Course      string
	ModuleOrder int
	Module      string
	Earlier     []string
	Transcript  string
	Visuals     []artifact.VisualElement
}

// instructions open every prompt. Spanish, the courses' language; they
// never start a line with a marker.
const instructions = `Eres un experto en diseño instruccional. Describe la lección de un curso en línea que se da más abajo, por secciones: su título, el curso y el módulo al que pertenece, los títulos de las lecciones anteriores del curso, la transcripción de lo que se dice y los elementos visuales que muestra el vídeo (diapositivas, código, diagramas).

Devuelve, en español:
- keywords: entre 3 y 15 palabras clave o términos breves por los que un estudiante buscaría esta lección, los más importantes primero;
- level: el nivel de la lección, uno de «básico», «intermedio» o «avanzado», según lo que exige saber de antemano;
- summary: un resumen de dos a cuatro frases de lo que enseña;
- objectives: de 1 a 10 objetivos de aprendizaje, cada uno una frase que empieza con un verbo en infinitivo;
- prerequisites: de 0 a 10 conocimientos previos que la lección da por sabidos (puedes nombrar lecciones anteriores); una lista vacía si no supone ninguno.

Básate solo en el contenido de la lección; no inventes temas que no trata.`

// prompt is the enrichment prompt: instructions, then one section per
// marker.
func prompt(in promptInput) (string, error) {
	var b strings.Builder
	b.WriteString(instructions)
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "%s %s v%d\n", MarkerLesson, in.LessonID, in.Version)
	fmt.Fprintf(&b, "%s %s\n", MarkerTitle, oneLine(in.Title))
	if c := oneLine(in.Course); c != "" {
		fmt.Fprintf(&b, "%s %s\n", MarkerCourse, c)
	}
	if m := oneLine(in.Module); m != "" || in.ModuleOrder > 0 {
		fmt.Fprintf(&b, "%s %d · %s\n", MarkerModule, in.ModuleOrder, m)
	}
	if len(in.Earlier) > 0 {
		fmt.Fprintf(&b, "%s\n", MarkerEarlier)
		for _, t := range in.Earlier {
			fmt.Fprintf(&b, "- %s\n", oneLine(t))
		}
	}
	fmt.Fprintf(&b, "%s\n%s\n", MarkerTranscript, strings.TrimSpace(in.Transcript))
	visuals := in.Visuals
	if visuals == nil {
		visuals = []artifact.VisualElement{}
	}
	// Code on screen is shown as written: no \u003e for ">".
	var vj strings.Builder
	enc := json.NewEncoder(&vj)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(visuals); err != nil {
		return "", fmt.Errorf("encode the visual elements: %w", err)
	}
	fmt.Fprintf(&b, "%s\n%s", MarkerVisuals, vj.String())
	return b.String(), nil
}

// responseSchema is the answer's shape. The property "keywords" is what the
// local Gemini tells an enrichment from a video analysis by.
func responseSchema() *genai.Schema {
	list := func(desc string, minItems, maxItems int64) *genai.Schema {
		return &genai.Schema{
			Type: genai.TypeArray, Description: desc,
			Items:    &genai.Schema{Type: genai.TypeString},
			MinItems: &minItems, MaxItems: &maxItems,
		}
	}
	return &genai.Schema{
		Type: genai.TypeObject,
		Properties: map[string]*genai.Schema{
			"keywords": list("Palabras clave de la lección, las más importantes primero.", MinKeywords, MaxKeywords),
			"level":    {Type: genai.TypeString, Enum: artifact.Levels, Description: "Nivel de la lección."},
			"summary":  {Type: genai.TypeString, Description: "Resumen de dos a cuatro frases."},
			"objectives": list("Objetivos de aprendizaje, cada uno empezando con un verbo en infinitivo.",
				1, MaxObjectives),
			"prerequisites": list("Conocimientos previos que la lección da por sabidos.", 0, MaxPrerequisites),
		},
		Required:         []string{"keywords", "level", "summary", "objectives", "prerequisites"},
		PropertyOrdering: []string{"keywords", "level", "summary", "objectives", "prerequisites"},
	}
}

// generation is the request's generation configuration.
func generation() *genai.GenerateContentConfig {
	// A low temperature: describing, not inventing; and the same lesson
	// described again should read the same.
	temperature := float32(0.2)
	return &genai.GenerateContentConfig{
		Temperature:      &temperature,
		ResponseMIMEType: "application/json",
		ResponseSchema:   responseSchema(),
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
