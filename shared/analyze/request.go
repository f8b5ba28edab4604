package analyze

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
)

// PromptVersion names the prompt and schema below. A window stored by an
// earlier attempt is reused only if it was asked the same way (same model,
// frame rate and PromptVersion): change the prompt, bump it.
const PromptVersion = "analyze/1"

// prompt asks for one window's visual elements. It is Spanish, the
// courses' language, and asks for times on the whole video's clock: the
// windows are merged back onto it.
func prompt(title string, w artifact.Window) string {
	var b strings.Builder
	b.WriteString("Analiza este fragmento del vídeo de una lección de un curso en línea")
	if title != "" {
		fmt.Fprintf(&b, " («%s»)", title)
	}
	fmt.Fprintf(&b, ". El fragmento va del segundo %s al segundo %s del vídeo completo.\n\n", seconds(w.Start), seconds(w.End))
	b.WriteString(`Enumera, en orden de aparición, lo que se muestra en pantalla:
- slide: una diapositiva. title: su título; text: su texto, tal como se lee.
- code: código en pantalla. code: el código exacto, con sus saltos de línea y su sangría; language: el lenguaje en minúsculas (python, javascript, sql...).
- diagram: un diagrama o esquema. description: qué representa y cómo se relacionan sus partes.
- demonstration: una demostración (una herramienta en uso, un programa que se ejecuta, una navegación). description: qué se hace y qué resultado se ve.
- concept: un concepto que se presenta visualmente. title: el nombre del concepto; description: cómo se explica.

`)
	fmt.Fprintf(&b, "start y end son los segundos, contados desde el inicio del vídeo completo (no del fragmento), en que el elemento aparece y deja de verse; ambos entre %s y %s. ", seconds(w.Start), seconds(w.End))
	b.WriteString("Transcribe textos y código tal como se ven, sin traducirlos ni corregirlos, y no inventes nada que no aparezca. Si el fragmento no muestra nada de esto, devuelve una lista vacía.")
	return b.String()
}

// responseSchema is the answer's shape. The property "elements" is what
// the analysis is keyed on (the local Gemini tells requests apart by it).
func responseSchema() *genai.Schema {
	str := func(desc string) *genai.Schema { return &genai.Schema{Type: genai.TypeString, Description: desc} }
	num := func(desc string) *genai.Schema { return &genai.Schema{Type: genai.TypeNumber, Description: desc} }
	return &genai.Schema{
		Type: genai.TypeObject,
		Properties: map[string]*genai.Schema{
			"elements": {
				Type:        genai.TypeArray,
				Description: "Elementos visuales del fragmento, en orden de aparición.",
				Items: &genai.Schema{
					Type: genai.TypeObject,
					Properties: map[string]*genai.Schema{
						"kind":        {Type: genai.TypeString, Enum: artifact.VisualKinds, Description: "Tipo de elemento."},
						"start":       num("Segundo del vídeo completo en que aparece."),
						"end":         num("Segundo del vídeo completo en que deja de verse."),
						"title":       str("Título de la diapositiva o nombre del concepto."),
						"text":        str("Texto en pantalla, tal como se lee."),
						"code":        str("Código en pantalla, exacto."),
						"language":    str("Lenguaje del código, en minúsculas."),
						"description": str("Qué muestra o explica el elemento."),
					},
					Required:         []string{"kind", "start", "end"},
					PropertyOrdering: []string{"kind", "start", "end", "title", "text", "code", "language", "description"},
				},
			},
		},
		Required: []string{"elements"},
	}
}

// request is one window's contents and configuration.
func (s *Stage) request(videoURI, mimeType, title string, w artifact.Window, last bool) ([]*genai.Content, *genai.GenerateContentConfig) {
	fps := s.FPS
	video := genai.NewPartFromURI(videoURI, mimeType)
	video.VideoMetadata = &genai.VideoMetadata{
		// Window edges are whole seconds (planWindows), which is all the
		// SDK sends: it writes offsets with "%.0fs".
		StartOffset: time.Duration(w.Start * float64(time.Second)),
		FPS:         &fps,
	}
	if !last {
		// The last window runs to the end of the video: leaving its end
		// open cannot overshoot a video a fraction of a second shorter
		// than the length this stage read.
		video.VideoMetadata.EndOffset = time.Duration(w.End * float64(time.Second))
	}
	contents := []*genai.Content{genai.NewContentFromParts([]*genai.Part{
		video, genai.NewPartFromText(prompt(title, w)),
	}, genai.RoleUser)}
	temperature := float32(0.2)
	return contents, &genai.GenerateContentConfig{
		// A low temperature: the task is transcription and description,
		// not invention.
		Temperature:      &temperature,
		ResponseMIMEType: "application/json",
		ResponseSchema:   responseSchema(),
		MediaResolution:  s.Resolution,
	}
}

// seconds formats a time in seconds for prompts and reasons.
func seconds(x float64) string { return fmt.Sprintf("%g", roundMilli(x)) }

// mimeTypes maps the source's extension to the type Vertex AI is told.
// These are the ISO base media formats MP4Duration can read a length from.
var mimeTypes = map[string]string{
	"mp4": "video/mp4",
	"m4v": "video/mp4",
	"mov": "video/quicktime",
	"qt":  "video/quicktime",
	"3gp": "video/3gpp",
}
