package taxonomy_test

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

const embeddingModel = "text-embedding-3-small"

// tokenizer is built once: building one compiles the encoding's pattern.
var tokenizer = func() *chunk.Tokenizer {
	tok, err := chunk.NewTokenizer(embeddingModel)
	if err != nil {
		panic(err)
	}
	return tok
}()

// localOpenAI starts the local OpenAI server and returns it with a real
// openai-go embedder talking to it, asking for dims dimensions.
func localOpenAI(t *testing.T, dims int) (*openai.Server, *taxonomy.Embedder) {
	t.Helper()
	srv := openai.NewServer(openai.Options{Logger: slog.New(slog.DiscardHandler)})
	url, stop, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	emb, err := taxonomy.NewEmbedder(taxonomy.EmbedderConfig{
		APIKey: "sk-test", BaseURL: url, MaxRetries: 0, RequestTimeout: 30 * time.Second,
		Model: embeddingModel, Dimensions: dims,
	}, tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	return srv, emb
}

// newFirestore is a client of the emulator in a project no other test uses.
func newFirestore(t *testing.T) *firestore.Client {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	fs, err := firestore.NewClient(t.Context(), emulators.ProjectID("tax"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

func mustParse(t *testing.T, yaml string) *taxonomy.Taxonomy {
	t.Helper()
	tax, err := taxonomy.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return tax
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
