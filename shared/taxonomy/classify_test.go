package taxonomy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

// classifierFor stores tax's embeddings in a fresh project and returns a
// classifier over them with threshold, and the embedder of the same space.
func classifierFor(t *testing.T, tax *taxonomy.Taxonomy, threshold float64) (*taxonomy.Classifier, *taxonomy.Embedder) {
	t.Helper()
	fs := newFirestore(t)
	_, emb := localOpenAI(t, 512)
	if _, err := newSyncer(t, fs, emb, tax).Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, err := taxonomy.NewClassifier(fs, taxonomy.DefaultTop, threshold)
	if err != nil {
		t.Fatal(err)
	}
	return c, emb
}

func embedOne(t *testing.T, emb *taxonomy.Embedder, text string) []float32 {
	t.Helper()
	p, err := emb.EmbedLong(t.Context(), text)
	if err != nil {
		t.Fatal(err)
	}
	return p.Vector
}

// Firestore's vector search (the emulator's) returns the school's nearest
// categories, at most three, nearest first, each scored by its cosine
// similarity; those under the threshold are left out of Categories but
// reported in Nearest.
func TestClassifyTopThreeAboveThresholdWithScores(t *testing.T) {
	tax := mustParse(t, `
version: 1
schools:
  - slug: programacion
    name: Programación
    categories:
      - id: programacion-fundamentos
        name: Fundamentos
        description: Variables que guardan valores y tipos de datos básicos, enteros y cadenas de texto.
      - id: programacion-funciones
        name: Funciones
        description: Definir funciones con def, parámetros, valores por defecto y return.
      - id: programacion-bucles
        name: Bucles
        description: Repetir instrucciones con for y while.
      - id: programacion-web
        name: Web
        description: Peticiones HTTP, servidores y APIs REST.
  - slug: marketing
    name: Marketing
    categories:
      - id: marketing-audiencia
        name: Audiencia
        description: Variables y tipos de datos del buyer persona y del cliente ideal.
`)
	c, emb := classifierFor(t, tax, 0.3)
	// A category's own text is its nearest, at similarity 1.
	self := embedOne(t, emb, tax.Schools[0].Categories[1].EmbeddingText())
	got, err := c.Classify(t.Context(), "programacion", self)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nearest) != 3 || got.Nearest[0].ID != "programacion-funciones" || got.Nearest[0].Score < 0.999 || got.Nearest[0].Name != "Funciones" {
		t.Fatalf("nearest = %+v", got.Nearest)
	}
	if got.TaxonomyVersion != "1" {
		t.Errorf("taxonomy version %q", got.TaxonomyVersion)
	}
	for i, cat := range got.Nearest {
		if i > 0 && cat.Score > got.Nearest[i-1].Score {
			t.Errorf("not nearest first: %+v", got.Nearest)
		}
		if i < len(got.Categories) != (cat.Score >= 0.3) {
			t.Errorf("category %s scored %g: kept=%v at threshold 0.3 (%+v)", cat.ID, cat.Score, i < len(got.Categories), got.Categories)
		}
	}

	// A lesson about variables: fundamentals first, and only this
	// school's categories, though marketing's describes "variables" too.
	lesson := embedOne(t, emb, "Variables y tipos de datos. Una variable es un nombre que guarda un valor. Los tipos básicos son los enteros y las cadenas de texto.")
	got, err = c.Classify(t.Context(), "programacion", lesson)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Categories) == 0 || got.Categories[0].ID != "programacion-fundamentos" || got.Categories[0].Score < 0.3 {
		t.Fatalf("a lesson on variables: %+v (nearest %+v)", got.Categories, got.Nearest)
	}
	// Three results, all of the school: the school is a pre-filter of the
	// search, not a filter of its three nearest overall (marketing's
	// category, worded like this lesson, would then take a place).
	if len(got.Nearest) != 3 {
		t.Errorf("the search for programacion found %d categories: %+v", len(got.Nearest), got.Nearest)
	}
	for _, cat := range got.Nearest {
		if !strings.HasPrefix(cat.ID, "programacion-") {
			t.Errorf("the search for programacion found %s", cat.ID)
		}
	}
	mk, err := c.Classify(t.Context(), "marketing", lesson)
	if err != nil {
		t.Fatal(err)
	}
	if len(mk.Nearest) != 1 || mk.Nearest[0].ID != "marketing-audiencia" {
		t.Errorf("the search for marketing found %+v", mk.Nearest)
	}
}

// A school with no categories stored is a permanent failure naming it.
func TestClassifySchoolWithoutCategories(t *testing.T) {
	c, emb := classifierFor(t, mustParse(t, taxV1), taxonomy.DefaultThreshold)
	_, err := c.Classify(t.Context(), "diseno", embedOne(t, emb, "Teoría del color"))
	if !errors.Is(err, taxonomy.ErrNoCategories) || !failure.IsPermanent(err) || !strings.Contains(err.Error(), `"diseno"`) {
		t.Errorf("classify for a school without categories: %v", err)
	}
	if _, err := c.Classify(t.Context(), "", embedOne(t, emb, "Teoría del color")); !errors.Is(err, taxonomy.ErrNoCategories) || !failure.IsPermanent(err) {
		t.Errorf("classify for a lesson without school: %v", err)
	}
}

// With the taxonomy file as shipped, the default threshold and the local
// OpenAI's embeddings, every sample lesson lands in the category a person
// would put it in, and in no category of the other school.
func TestSampleLessonsGetTheirCategories(t *testing.T) {
	tax, err := taxonomy.Default()
	if err != nil {
		t.Fatal(err)
	}
	c, emb := classifierFor(t, tax, taxonomy.DefaultThreshold)
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"pyL1vars001": "programacion-fundamentos",
		"pyL2cond002": "programacion-control-flujo",
		"pyL3func004": "programacion-funciones",
		"mkL1pers005": "marketing-audiencia",
		"mkL2cale006": "marketing-contenidos",
	}
	seen := 0
	cat.Pages(func(p sample.Product, _ sample.Module, pg sample.Page) {
		w, ok := want[pg.PageID]
		if !ok {
			return
		}
		seen++
		text := []string{pg.Name, pg.Narration}
		for _, s := range pg.Slides {
			text = append(text, s.Title, s.Text, s.Code)
		}
		got, err := c.Classify(t.Context(), p.School, embedOne(t, emb, strings.Join(text, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(got.Categories))
		for i, c := range got.Categories {
			ids[i] = c.ID
		}
		if len(ids) == 0 || ids[0] != w || slices.ContainsFunc(ids, func(id string) bool { return !strings.HasPrefix(id, p.School+"-") }) {
			t.Errorf("%s (%q): categories %v, nearest %+v; want %s first", pg.PageID, pg.Name, ids, got.Nearest, w)
		}
	})
	if seen != len(want) {
		t.Errorf("found %d of the %d sample lessons", seen, len(want))
	}
}
