// Package artifact defines the documents the stages leave in the artifacts
// bucket (DESIGN.md section 3) and where each one lives:
//
//	lessons/{lessonId}/v{version}/transcript.json   the transcribe stage
//	lessons/{lessonId}/v{version}/analysis.json     the analyze stage
//	lessons/{lessonId}/v{version}/enrichment.json   the enrich stage
//	lessons/{lessonId}/v{version}/chunks.json       the enrich stage
//	lessons/{lessonId}/v{version}/knowledge.md      the enrich stage; the sync stage uploads it
//
// Firestore documents hold only these objects' URIs and short summaries: a
// transcript of a long lesson is far larger than a document may be. Times are
// seconds from the start of the lesson's video, as float64.
package artifact

import (
	"fmt"
)

// Object names, relative to the lesson version's prefix.
const (
	TranscriptFile = "transcript.json"
	AnalysisFile   = "analysis.json"
	EnrichmentFile = "enrichment.json"
	ChunksFile     = "chunks.json"
	KnowledgeFile  = "knowledge.md"
)

// Prefix is the folder of one lesson version's artifacts (and, in the raw
// bucket, of its source video and derived audio).
func Prefix(lessonID string, version int) string {
	return fmt.Sprintf("lessons/%s/v%d/", lessonID, version)
}

// Name is the object name of one artifact of a lesson version.
func Name(lessonID string, version int, file string) string {
	return Prefix(lessonID, version) + file
}

// Transcript is transcript.json: what is said in the lesson, word by word,
// on one timeline.
type Transcript struct {
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
	// Language is the BCP-47 code recognized (es-ES).
	Language string `json:"language"`
	// Model is the Speech-to-Text model that produced the words (chirp_3).
	Model string `json:"model"`
	// Engine names what answered: "speech-to-text-v2", or the local engine
	// of the one-machine stack, which says so.
	Engine string `json:"engine"`
	// AudioSHA256 identifies the audio that was recognized: a new version
	// of a lesson whose audio has the same hash reuses this transcript.
	AudioSHA256 string `json:"audioSha256"`
	// DurationSeconds is the length of the recognized audio.
	DurationSeconds float64 `json:"durationSeconds"`
	// Text is every word, punctuated, in order.
	Text string `json:"text"`
	// Confidence is the mean word confidence, 0..1.
	Confidence float64     `json:"confidence"`
	Words      []Word      `json:"words"`
	Paragraphs []Paragraph `json:"paragraphs"`
}

// Word is one recognized word.
type Word struct {
	Text       string  `json:"text"`
	Start      float64 `json:"start"`
	End        float64 `json:"end"`
	Speaker    string  `json:"speaker,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
}

// Paragraph is a run of words by one speaker without a long pause: the unit
// the chunker prefers to keep whole. Words[FirstWord:LastWord+1] are its words.
type Paragraph struct {
	Start     float64 `json:"start"`
	End       float64 `json:"end"`
	Speaker   string  `json:"speaker,omitempty"`
	Text      string  `json:"text"`
	FirstWord int     `json:"firstWord"`
	LastWord  int     `json:"lastWord"`
}

// Kinds of visual element.
const (
	VisualSlide         = "slide"
	VisualCode          = "code"
	VisualDiagram       = "diagram"
	VisualDemonstration = "demonstration"
	VisualConcept       = "concept"
)

// VisualKinds lists every kind of visual element, in the order the analysis
// prompt names them.
var VisualKinds = []string{VisualSlide, VisualCode, VisualDiagram, VisualDemonstration, VisualConcept}

// Analysis is analysis.json: what the lesson's video shows.
type Analysis struct {
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
	// Model is the Gemini model and Engine what answered (see Transcript).
	Model  string `json:"model"`
	Engine string `json:"engine"`
	// Windows are the spans of video analyzed by one request each, in
	// order; one window for a lesson that fits a single request.
	Windows  []Window        `json:"windows"`
	Elements []VisualElement `json:"elements"`
}

// Window is a span of the video, [Start, End) in seconds.
type Window struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// VisualElement is one thing the video shows: a slide, code on screen, a
// diagram, a demonstration, or a concept presented visually, with the span of
// time it is on screen.
type VisualElement struct {
	Kind        string  `json:"kind"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Title       string  `json:"title,omitempty"`
	Text        string  `json:"text,omitempty"`
	Code        string  `json:"code,omitempty"`
	Language    string  `json:"language,omitempty"`
	Description string  `json:"description,omitempty"`
}

// Levels of a lesson.
const (
	LevelBasic        = "básico"
	LevelIntermediate = "intermedio"
	LevelAdvanced     = "avanzado"
)

// Levels lists the levels in order.
var Levels = []string{LevelBasic, LevelIntermediate, LevelAdvanced}

// Enrichment is enrichment.json: the lesson classified and described.
type Enrichment struct {
	LessonID      string     `json:"lessonId"`
	Version       int        `json:"version"`
	Categories    []Category `json:"categories"`
	Keywords      []string   `json:"keywords"`
	Level         string     `json:"level"`
	Summary       string     `json:"summary"`
	Objectives    []string   `json:"objectives"`
	Prerequisites []string   `json:"prerequisites"`
	// Model describes the text; EmbeddingModel classified it.
	Model          string `json:"model"`
	EmbeddingModel string `json:"embeddingModel"`
	// TaxonomyVersion is the taxonomy the categories come from.
	TaxonomyVersion string `json:"taxonomyVersion"`
}

// Category is a taxonomy category the lesson belongs to, with the cosine
// similarity that placed it there.
type Category struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Chunk is one retrieval chunk of chunks.json: a span of the lesson's
// transcript, with what was on screen meanwhile, and where it comes from.
type Chunk struct {
	// Index is the chunk's position in the lesson, from 0.
	Index int `json:"index"`
	// Start and End are the span of the lesson the chunk covers.
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	// Text is what retrieval sees: the spoken words, then the slide text
	// and code shown during the span.
	Text string `json:"text"`
	// Tokens is len(tokenize(Text)) in the embedding model's encoding.
	Tokens   int             `json:"tokens"`
	Speakers []string        `json:"speakers,omitempty"`
	Visuals  []VisualElement `json:"visuals,omitempty"`

	School   string `json:"school"`
	CourseID string `json:"courseId"`
	ModuleID string `json:"moduleId"`
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
}
