package enrich

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/genaiclient"
	"github.com/coursekb/pipeline/shared/notify"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

// Config is the enricher function's configuration, from environment
// variables (config.Load names every bad one at once). Variables another
// function reads for the same setting have the same name there: OPENAI_*
// and CHUNK_* as the syncer's, GEMINI_* and ANSWER_RETRIES as the
// analyzer's, HOTMART_CLUB_LESSON_URL as the notifier's.
type Config struct {
	config.Common
	// ArtifactsBucket holds the transcripts and analyses read, and receives
	// enrichment.json, chunks.json, knowledge.md and the paid answers kept
	// for retries (enrich/ under the lesson version's prefix).
	ArtifactsBucket string `env:"ARTIFACTS_BUCKET,required,notEmpty"`

	// OpenAIAPIKey is a secret (Secret Manager fills it in production);
	// OpenAIBaseURL points the client at the local OpenAI server and must
	// include /v1 as the real one does.
	OpenAIAPIKey         string        `env:"OPENAI_API_KEY,required"`
	OpenAIBaseURL        string        `env:"OPENAI_BASE_URL"`
	OpenAIMaxRetries     int           `env:"OPENAI_MAX_RETRIES" envDefault:"2"`
	OpenAIRequestTimeout time.Duration `env:"OPENAI_REQUEST_TIMEOUT" envDefault:"2m"`
	// EmbeddingModel and EmbeddingDimensions are the embedding space of
	// lessons and categories alike: changing either re-embeds the taxonomy
	// on the next event. At most 2048 dimensions (Firestore vector search).
	EmbeddingModel      string `env:"EMBEDDING_MODEL" envDefault:"text-embedding-3-small"`
	EmbeddingDimensions int    `env:"EMBEDDING_DIMENSIONS" envDefault:"1536"`
	// ClassifyThreshold is the least cosine similarity between a lesson and
	// a category that puts the lesson in it (at most three categories).
	// 0.3 sits above what unrelated texts score and below what a lesson
	// scores against its own subject, both with text-embedding-3 and with
	// the local OpenAI's hashed embeddings (where a sample lesson scores
	// 0.42–0.65 against its category and at most 0.29 against any other).
	ClassifyThreshold float64 `env:"CLASSIFY_THRESHOLD" envDefault:"0.3"`
	// TaxonomyLease is how long an instance storing the taxonomy's
	// embeddings keeps the others waiting if it dies.
	TaxonomyLease time.Duration `env:"TAXONOMY_SYNC_LEASE" envDefault:"2m"`

	// Model is the Gemini model that describes the lesson; usage is metered
	// by this id. Env holds the client's location, endpoint and retries.
	Model string `env:"GEMINI_MODEL" envDefault:"gemini-3.5-flash"`
	genaiclient.Env
	// AnswerRetries is how many more times Gemini is asked after an answer
	// that breaks the contract; then the stage fails with the reasons.
	AnswerRetries int `env:"ANSWER_RETRIES" envDefault:"1"`

	// ChunkMaxTokens and ChunkOverlapTokens size the chunks (chunk.Options);
	// the syncer derives the vector store's chunking from the same two,
	// and reads the values used from the stage's outputs.
	ChunkMaxTokens     int `env:"CHUNK_MAX_TOKENS" envDefault:"400"`
	ChunkOverlapTokens int `env:"CHUNK_OVERLAP_TOKENS" envDefault:"60"`
	// ClubLessonURL makes the lesson's link on Hotmart Club, written into
	// knowledge.md, from {subdomain}, {lessonId}, {courseId}, {moduleId}.
	ClubLessonURL string `env:"HOTMART_CLUB_LESSON_URL" envDefault:"https://{subdomain}.club.hotmart.com/lesson/{lessonId}"`
	// Lease is how long a claim on the stage lasts: well above one
	// embedding request and one Gemini answer or two.
	Lease time.Duration `env:"ENRICH_LEASE" envDefault:"10m"`
}

// LoadConfig reads and checks the configuration from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := config.Load(&c); err != nil {
		return c, fmt.Errorf("enricher: %w", err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("enricher: %w", err)
	}
	return c, nil
}

// Validate names every value out of range at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Embedder().Validate(); err != nil {
		errs = append(errs, err)
	}
	if !(c.ClassifyThreshold >= 0 && c.ClassifyThreshold <= 1) {
		errs = append(errs, fmt.Errorf("CLASSIFY_THRESHOLD is %g: want a cosine similarity in [0, 1]", c.ClassifyThreshold))
	}
	if c.TaxonomyLease <= 0 {
		errs = append(errs, fmt.Errorf("TAXONOMY_SYNC_LEASE is %s: want a positive duration", c.TaxonomyLease))
	}
	if strings.TrimSpace(c.Model) == "" {
		errs = append(errs, errors.New("GEMINI_MODEL is empty"))
	}
	if err := c.Env.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AnswerRetries < 0 {
		errs = append(errs, fmt.Errorf("ANSWER_RETRIES is %d: want 0 or more", c.AnswerRetries))
	}
	if err := c.Chunking().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("CHUNK_MAX_TOKENS %d and CHUNK_OVERLAP_TOKENS %d: %w", c.ChunkMaxTokens, c.ChunkOverlapTokens, err))
	}
	if err := checkLessonURL(c.ClubLessonURL); err != nil {
		errs = append(errs, err)
	}
	if c.Lease <= 0 {
		errs = append(errs, fmt.Errorf("ENRICH_LEASE is %s: want a positive duration", c.Lease))
	}
	return errors.Join(errs...)
}

// checkLessonURL checks the link template as the notifier does: it names
// the lesson and is an http(s) URL once its placeholders are filled.
func checkLessonURL(t string) error {
	if t == "" {
		return nil // no links
	}
	if !strings.Contains(t, "{lessonId}") {
		return errors.New("HOTMART_CLUB_LESSON_URL has no {lessonId}")
	}
	u, err := url.Parse(strings.NewReplacer("{", "", "}", "").Replace(t))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("HOTMART_CLUB_LESSON_URL is not an http(s) URL template")
	}
	return nil
}

// Embedder is the embedding client's configuration from c.
func (c Config) Embedder() taxonomy.EmbedderConfig {
	return taxonomy.EmbedderConfig{
		APIKey: c.OpenAIAPIKey, BaseURL: c.OpenAIBaseURL,
		MaxRetries: c.OpenAIMaxRetries, RequestTimeout: c.OpenAIRequestTimeout,
		Model: c.EmbeddingModel, Dimensions: c.EmbeddingDimensions,
	}
}

// Gemini is the Gemini client's configuration from c (genaiclient.New).
func (c Config) Gemini() genaiclient.Config { return c.Env.Config(c.ProjectID) }

// Chunking is the chunk options the configuration names.
func (c Config) Chunking() chunk.Options {
	return chunk.Options{MaxTokens: c.ChunkMaxTokens, OverlapTokens: c.ChunkOverlapTokens}
}

// Settings are the stage's own settings from c.
func (c Config) Settings() Settings {
	return Settings{
		ArtifactsBucket: c.ArtifactsBucket,
		Model:           c.Model,
		AnswerRetries:   c.AnswerRetries,
		Lease:           c.Lease,
		Links:           notify.Links{ClubLessonURL: c.ClubLessonURL},
	}
}
