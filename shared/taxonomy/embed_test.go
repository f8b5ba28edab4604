package taxonomy_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

func TestSplitPartsKeepsEveryWordWithinTheLimit(t *testing.T) {
	long := strings.Repeat("Una variable guarda un valor en la memoria del programa. ", 40) // one long line
	text := "Título\n\n" + long + "\n" + strings.Repeat("x", 300) + "\nfin"
	const limit = 50
	parts := taxonomy.SplitParts(tokenizer, text, limit)
	if len(parts) < 10 {
		t.Fatalf("%d parts for a text of %d tokens at %d a part", len(parts), tokenizer.Count(text), limit)
	}
	var words []string
	for i, p := range parts {
		if p.Tokens > limit || p.Tokens != tokenizer.Count(p.Text) {
			t.Errorf("part %d: %d tokens (counted %d), limit %d", i, p.Tokens, tokenizer.Count(p.Text), limit)
		}
		words = append(words, strings.Fields(p.Text)...)
	}
	want := strings.Fields(text)
	// The 300-letter word is the one cut between runes.
	if got := strings.Join(words, ""); got != strings.Join(want, "") {
		t.Errorf("parts lose or reorder text:\n got %.200q\nwant %.200q", got, strings.Join(want, ""))
	}
	if got := taxonomy.SplitParts(tokenizer, " \n\n ", limit); len(got) != 0 {
		t.Errorf("blank text gave parts %+v", got)
	}
}

func TestPoolIsTheTokenWeightedMeanNormalized(t *testing.T) {
	v, err := taxonomy.Pool([][]float32{{1, 0}, {0, 1}}, []float64{3, 1})
	if err != nil {
		t.Fatal(err)
	}
	// (3, 1) normalized.
	want := []float64{3 / math.Sqrt(10), 1 / math.Sqrt(10)}
	for i := range v {
		if math.Abs(float64(v[i])-want[i]) > 1e-6 {
			t.Fatalf("pooled = %v, want %v", v, want)
		}
	}
	if _, err := taxonomy.Pool([][]float32{{1, 0}, {-1, 0}}, []float64{1, 1}); err == nil {
		t.Error("opposite vectors pooled into a direction")
	}
	if _, err := taxonomy.Pool([][]float32{{1, 0}, {1}}, []float64{1, 1}); err == nil {
		t.Error("vectors of different sizes pooled")
	}
}

// A text longer than one input is embedded in parts, in one request, each
// part within the model's input limit, pooled into one unit vector of the
// dimensions asked; OpenAI's billed tokens are reported.
func TestEmbedLongEmbedsPartsAndPools(t *testing.T) {
	ai, emb := localOpenAI(t, 256)
	sentence := "Las funciones agrupan código que queremos reutilizar y devuelven un resultado con return. "
	text := "Definir funciones\n" + strings.Repeat(sentence+"\n", 700) // about 13k tokens
	p, err := emb.EmbedLong(t.Context(), text)
	if err != nil {
		t.Fatal(err)
	}
	if p.Parts < 2 || len(p.Vector) != 256 || math.Abs(norm(p.Vector)-1) > 1e-5 {
		t.Fatalf("parts %d, dimensions %d, norm %g", p.Parts, len(p.Vector), norm(p.Vector))
	}
	if p.BilledTokens != int64(p.TextTokens) || p.TextTokens <= taxonomy.MaxInputTokens {
		t.Errorf("billed %d tokens for a text of %d", p.BilledTokens, p.TextTokens)
	}
	if c := ai.Counters(); c.EmbeddingCalls != 1 || c.EmbeddingInputs != p.Parts {
		t.Errorf("%d calls with %d inputs, want 1 with %d", c.EmbeddingCalls, c.EmbeddingInputs, p.Parts)
	}
	// The pooled text is still about functions: closer to a sentence on
	// functions than to one on marketing.
	e, err := emb.EmbedTexts(t.Context(), []string{"funciones que devuelven un resultado", "calendario editorial de publicaciones"})
	if err != nil {
		t.Fatal(err)
	}
	if dot(p.Vector, e.Vectors[0]) <= dot(p.Vector, e.Vectors[1]) {
		t.Errorf("pooled vector is no closer to its subject (%g) than to another (%g)", dot(p.Vector, e.Vectors[0]), dot(p.Vector, e.Vectors[1]))
	}
}

func TestEmbedderFailuresAreClassified(t *testing.T) {
	ai, emb := localOpenAI(t, 64)
	ai.InjectFailures("/embeddings", 503, 1)
	_, err := emb.EmbedTexts(t.Context(), []string{"hola"})
	if err == nil || failure.IsPermanent(err) {
		t.Errorf("a 503 OpenAI kept answering is %v, want retryable", err)
	}
	ai.InjectFailures("/embeddings", 400, 1)
	_, err = emb.EmbedTexts(t.Context(), []string{"hola"})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "400") {
		t.Errorf("a 400 is %v, want permanent naming it", err)
	}
	if _, err := emb.EmbedTexts(t.Context(), []string{""}); !failure.IsPermanent(err) {
		t.Errorf("an empty input is %v, want permanent before any call", err)
	}
}

func TestEmbedderConfigRefusesWhatFirestoreCannotSearch(t *testing.T) {
	base := taxonomy.EmbedderConfig{APIKey: "k", RequestTimeout: time.Second, Model: embeddingModel, Dimensions: 1536}
	for _, c := range []struct {
		name string
		edit func(*taxonomy.EmbedderConfig)
		want string
	}{
		{"large at 3072", func(c *taxonomy.EmbedderConfig) { c.Model, c.Dimensions = "text-embedding-3-large", 3072 }, "2048"},
		{"small at 2048", func(c *taxonomy.EmbedderConfig) { c.Dimensions = 2048 }, "1536"},
		{"ada", func(c *taxonomy.EmbedderConfig) { c.Model = "text-embedding-ada-002" }, "EMBEDDING_MODEL"},
		{"no key", func(c *taxonomy.EmbedderConfig) { c.APIKey = "" }, "OPENAI_API_KEY"},
		{"base URL", func(c *taxonomy.EmbedderConfig) { c.BaseURL = "localhost:8080" }, "OPENAI_BASE_URL"},
	} {
		cfg := base
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
	large := base
	large.Model, large.Dimensions = "text-embedding-3-large", 2048
	if err := large.Validate(); err != nil {
		t.Errorf("text-embedding-3-large at 2048: %v", err)
	}
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
