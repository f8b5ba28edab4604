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

// fingerprints records, by version, what taxonomy/taxonomy.yaml said when
// that version was released. A change to the file without a version bump
// fails here: the enricher embeds the categories once per version, so an
// unbumped change would never reach Firestore.
var fingerprints = map[int]string{
	1: "4c3b10a8eb43f566ef4dbefc3a71a961dd49d8b06ec68d2485cf3273ad3b6d0a",
}

func TestDefaultTaxonomyIsValidAndVersioned(t *testing.T) {
	tax, err := taxonomy.Default()
	if err != nil {
		t.Fatal(err)
	}
	want, ok := fingerprints[tax.Version]
	if !ok {
		t.Fatalf("taxonomy version %d has no recorded fingerprint: add %d: %q to fingerprints", tax.Version, tax.Version, tax.Fingerprint())
	}
	if got := tax.Fingerprint(); got != want {
		t.Fatalf("taxonomy/taxonomy.yaml changed under version %d (fingerprint %s, recorded %s): bump its version and record the new fingerprint",
			tax.Version, got, want)
	}
	for _, s := range tax.Schools {
		if n := len(s.Categories); n < 8 || n > 12 {
			t.Errorf("school %s has %d categories: the file keeps 8 to 12 a school", s.Slug, n)
		}
	}
}

// Every school of the bundled sample catalog (COURSE_CATALOG's schools in
// the one-machine stack) has categories, so every sample lesson can be
// classified.
func TestDefaultTaxonomyCoversTheSampleSchools(t *testing.T) {
	tax, err := taxonomy.Default()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cat.Products {
		s, ok := tax.School(p.School)
		if !ok || len(s.Categories) == 0 {
			t.Errorf("product %d's school %q has no categories in taxonomy/taxonomy.yaml (schools: %v)", p.ID, p.School, tax.Slugs())
		}
	}
}

func TestParseReadsSchoolsCategoriesAndAssistant(t *testing.T) {
	tax := mustParse(t, `
version: 3
schools:
  - slug: diseno
    name: Diseño
    assistant:
      model: gpt-5-mini
      instructions: Responde sobre diseño.
    categories:
      - id: diseno-color
        name: "  Color "
        description: Teoría del color, paletas y contraste.
  - slug: cocina
    name: Cocina
    categories:
      - id: cocina-panes
        name: Panes
        description: Masas, fermentación y horneado.
`)
	if tax.Version != 3 || !slices.Equal(tax.Slugs(), []string{"diseno", "cocina"}) {
		t.Fatalf("version %d, schools %v", tax.Version, tax.Slugs())
	}
	d, _ := tax.School("diseno")
	if d.Assistant == nil || d.Assistant.Model != "gpt-5-mini" || d.Assistant.Instructions != "Responde sobre diseño." {
		t.Errorf("assistant = %+v", d.Assistant)
	}
	if c, _ := tax.School("cocina"); c.Assistant != nil {
		t.Errorf("a school without assistant got %+v", c.Assistant)
	}
	cats := tax.Categories()
	if len(cats) != 2 || cats[0].School != "diseno" || cats[0].Name != "Color" || cats[1].School != "cocina" {
		t.Fatalf("categories = %+v", cats)
	}
	if got := cats[0].EmbeddingText(); got != "Color. Teoría del color, paletas y contraste." {
		t.Errorf("embedding text = %q", got)
	}
}

func TestParseNamesEveryProblem(t *testing.T) {
	_, err := taxonomy.Parse([]byte(`
version: 0
schools:
  - slug: Diseño
    name: ""
    categories:
      - id: color
        name: Color
        description: ""
  - slug: cocina
    name: Cocina
    categories:
      - id: cocina-panes
        name: Panes
        description: Masas.
      - id: cocina-panes
        name: Panes otra vez
        description: Masas.
  - slug: vacia
    name: Vacía
    categories: []
`))
	if err == nil {
		t.Fatal("a broken file parsed")
	}
	for _, want := range []string{
		"version 0", `slug "Diseño"`, "name is empty", `id "color" must start with the school's slug`,
		"description must have", `id "cocina-panes" is already used`, "schools[2] (vacia): no categories",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestParseRefusesUnknownKeys(t *testing.T) {
	_, err := taxonomy.Parse([]byte(`
version: 1
schools:
  - slug: cocina
    name: Cocina
    categories:
      - id: cocina-panes
        name: Panes
        descripton: Masas.
`))
	if err == nil || !strings.Contains(err.Error(), "descripton") {
		t.Fatalf("a misspelt key was accepted: %v", err)
	}
}

func TestNoCategoriesErrorNamesTheSchool(t *testing.T) {
	err := taxonomy.NoCategoriesError("diseno", 4)
	if !errors.Is(err, taxonomy.ErrNoCategories) || !strings.Contains(err.Error(), `"diseno"`) || !strings.Contains(err.Error(), "COURSE_CATALOG") {
		t.Errorf("error = %v", err)
	}
	if failure.IsPermanent(err) {
		t.Errorf("NoCategoriesError is a plain error; the caller decides it is permanent")
	}
}
