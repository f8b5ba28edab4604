package enrich_test

import (
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/enrich"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

func TestConfigDefaults(t *testing.T) {
	var c enrich.Config
	if err := config.LoadFrom(&c, map[string]string{
		"GOOGLE_CLOUD_PROJECT": "p", "ARTIFACTS_BUCKET": "a", "OPENAI_API_KEY": "k",
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.EmbeddingModel != "text-embedding-3-small" || c.EmbeddingDimensions != 1536 || c.ClassifyThreshold != taxonomy.DefaultThreshold ||
		c.ChunkMaxTokens != 400 || c.ChunkOverlapTokens != 60 || c.Location != "global" || c.AnswerRetries != 1 ||
		c.ClubLessonURL != "https://{subdomain}.club.hotmart.com/lesson/{lessonId}" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigNamesEveryBadValue(t *testing.T) {
	var c enrich.Config
	if err := config.LoadFrom(&c, map[string]string{
		"GOOGLE_CLOUD_PROJECT": "p", "ARTIFACTS_BUCKET": "a", "OPENAI_API_KEY": "k",
		"EMBEDDING_DIMENSIONS": "3072", "CLASSIFY_THRESHOLD": "1.5", "CHUNK_OVERLAP_TOKENS": "300",
		"HOTMART_CLUB_LESSON_URL": "https://club.example/lesson", "GEMINI_API_ATTEMPTS": "0", "OPENAI_BASE_URL": "localhost:1/v1",
	}); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"EMBEDDING_DIMENSIONS", "CLASSIFY_THRESHOLD", "CHUNK_OVERLAP_TOKENS", "HOTMART_CLUB_LESSON_URL", "GEMINI_API_ATTEMPTS", "OPENAI_BASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}
