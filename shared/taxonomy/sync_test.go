package taxonomy_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

const taxV1 = `
version: 1
schools:
  - slug: programacion
    name: Programación
    categories:
      - id: programacion-fundamentos
        name: Fundamentos
        description: Variables, tipos de datos y operadores.
      - id: programacion-funciones
        name: Funciones
        description: Definir funciones con def, parámetros y return.
      - id: programacion-bucles
        name: Bucles
        description: Repetir con for y while.
  - slug: marketing
    name: Marketing
    categories:
      - id: marketing-audiencia
        name: Audiencia
        description: El buyer persona y el cliente ideal.
`

// v2 re-describes one category, drops another and adds one.
const taxV2 = `
version: 2
schools:
  - slug: programacion
    name: Programación
    categories:
      - id: programacion-fundamentos
        name: Fundamentos
        description: Variables, tipos de datos, operadores y conversión de tipos.
      - id: programacion-funciones
        name: Funciones
        description: Definir funciones con def, parámetros y return.
      - id: programacion-clases
        name: Clases
        description: Clases, objetos, atributos y métodos.
  - slug: marketing
    name: Marketing
    categories:
      - id: marketing-audiencia
        name: Audiencia
        description: El buyer persona y el cliente ideal.
`

type storedCategory struct {
	School          string             `firestore:"school"`
	Name            string             `firestore:"name"`
	Description     string             `firestore:"description"`
	TaxonomyVersion int                `firestore:"taxonomyVersion"`
	EmbeddingModel  string             `firestore:"embeddingModel"`
	Embedding       firestore.Vector32 `firestore:"embedding"`
}

// stored reads every category document (the marker left out).
func stored(t *testing.T, fs *firestore.Client) map[string]storedCategory {
	t.Helper()
	snaps, err := fs.Collection(taxonomy.Collection).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]storedCategory{}
	for _, s := range snaps {
		if s.Ref.ID == taxonomy.MarkerID {
			continue
		}
		var c storedCategory
		if err := s.DataTo(&c); err != nil {
			t.Fatal(err)
		}
		out[s.Ref.ID] = c
	}
	return out
}

func newSyncer(t *testing.T, fs *firestore.Client, emb *taxonomy.Embedder, tax *taxonomy.Taxonomy) *taxonomy.Syncer {
	t.Helper()
	s, err := taxonomy.NewSyncer(fs, emb, tax, discard(), taxonomy.SyncerOptions{Lease: 5 * time.Second, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The first instance to see a taxonomy version embeds its categories and
// stores them; a second instance of the same version embeds nothing.
func TestSyncStoresEachVersionOnce(t *testing.T) {
	fs := newFirestore(t)
	ai, emb := localOpenAI(t, 64)
	tax := mustParse(t, taxV1)

	res, err := newSyncer(t, fs, emb, tax).Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stored || res.Version != 1 || res.Categories != 4 || res.EmbeddingTokens == 0 {
		t.Fatalf("first instance: %+v", res)
	}
	got := stored(t, fs)
	if len(got) != 4 {
		t.Fatalf("stored %d categories, want 4: %v", len(got), got)
	}
	f := got["programacion-funciones"]
	if f.School != "programacion" || f.Name != "Funciones" || f.Description != "Definir funciones con def, parámetros y return." ||
		f.TaxonomyVersion != 1 || f.EmbeddingModel != embeddingModel || len(f.Embedding) != 64 {
		t.Errorf("programacion-funciones = %+v", f)
	}
	if v, err := taxonomy.StoredVersion(t.Context(), fs); err != nil || v != 1 {
		t.Errorf("stored version %d (%v), want 1", v, err)
	}
	calls := ai.Counters().EmbeddingCalls

	second := newSyncer(t, fs, emb, tax)
	res, err = second.Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored || res.Version != 1 || ai.Counters().EmbeddingCalls != calls {
		t.Errorf("second instance: %+v, embedding calls %d → %d", res, calls, ai.Counters().EmbeddingCalls)
	}
	// And once done, an instance does not even read Firestore again.
	if _, err := second.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Instances starting together agree: one embeds, the others wait for it.
func TestSyncConcurrentFirstInstancesEmbedOnce(t *testing.T) {
	fs := newFirestore(t)
	ai, emb := localOpenAI(t, 64)
	tax := mustParse(t, taxV1)

	const n = 3
	results := make([]taxonomy.SyncResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = newSyncer(t, fs, emb, tax).Ensure(t.Context())
		}()
	}
	wg.Wait()
	storedBy := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		if results[i].Stored {
			storedBy++
		}
	}
	if c := ai.Counters(); storedBy != 1 || c.EmbeddingCalls != 1 {
		t.Errorf("%d instances stored, %d embedding calls; want one of each", storedBy, c.EmbeddingCalls)
	}
	if got := stored(t, fs); len(got) != 4 {
		t.Errorf("stored %d categories, want 4", len(got))
	}
}

// A new version re-embeds: changed categories are updated, dropped ones
// deleted, new ones added. An instance still on the old file changes
// nothing afterwards.
func TestSyncNewVersionUpdatesAndRemoves(t *testing.T) {
	fs := newFirestore(t)
	ai, emb := localOpenAI(t, 64)
	v1, v2 := mustParse(t, taxV1), mustParse(t, taxV2)
	if _, err := newSyncer(t, fs, emb, v1).Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := stored(t, fs)

	res, err := newSyncer(t, fs, emb, v2).Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stored || res.Version != 2 || res.Removed != 1 {
		t.Fatalf("v2: %+v", res)
	}
	after := stored(t, fs)
	if _, ok := after["programacion-bucles"]; ok {
		t.Error("the category v2 dropped is still stored")
	}
	if c, ok := after["programacion-clases"]; !ok || c.TaxonomyVersion != 2 || c.School != "programacion" {
		t.Errorf("the category v2 added: %+v (stored %v)", c, ok)
	}
	fund := after["programacion-fundamentos"]
	if fund.TaxonomyVersion != 2 || fund.Description != "Variables, tipos de datos, operadores y conversión de tipos." ||
		dot(fund.Embedding, before["programacion-fundamentos"].Embedding) > 0.9999 {
		t.Errorf("the re-described category was not re-embedded: %+v", fund)
	}
	for id, c := range after {
		if c.TaxonomyVersion != 2 {
			t.Errorf("%s is at version %d", id, c.TaxonomyVersion)
		}
	}

	calls := ai.Counters().EmbeddingCalls
	res, err = newSyncer(t, fs, emb, v1).Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored || res.Version != 2 || ai.Counters().EmbeddingCalls != calls {
		t.Errorf("an old instance after v2: %+v", res)
	}
	if _, ok := stored(t, fs)["programacion-bucles"]; ok {
		t.Error("an old instance brought back a dropped category")
	}
}

// A lease left by an instance that died is taken over when it lapses; a
// live one is waited on, and a request that cannot wait gets a retryable
// error.
func TestSyncTakesOverALapsedLease(t *testing.T) {
	fs := newFirestore(t)
	ai, emb := localOpenAI(t, 64)
	tax := mustParse(t, taxV1)
	marker := fs.Collection(taxonomy.Collection).Doc(taxonomy.MarkerID)
	live := map[string]any{"lease": map[string]any{"version": 1, "holder": "dead-instance", "until": time.Now().Add(time.Hour)}}
	if _, err := marker.Set(t.Context(), live); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := newSyncer(t, fs, emb, tax).Ensure(ctx); err == nil {
		t.Fatal("Ensure returned while another instance held a live lease")
	}
	if ai.Counters().EmbeddingCalls != 0 {
		t.Fatal("embedded under another instance's lease")
	}

	lapsed := map[string]any{"lease": map[string]any{"version": 1, "holder": "dead-instance", "until": time.Now().Add(-time.Second)}}
	if _, err := marker.Set(t.Context(), lapsed); err != nil {
		t.Fatal(err)
	}
	res, err := newSyncer(t, fs, emb, tax).Ensure(t.Context())
	if err != nil || !res.Stored {
		t.Fatalf("after the lease lapsed: %+v, %v", res, err)
	}
}

// An instance that fails to store a version gives its lease up at once:
// the next instance need not wait for it to lapse. A refusal by OpenAI is
// permanent, and says so.
func TestSyncFailureReleasesTheLease(t *testing.T) {
	fs := newFirestore(t)
	ai, emb := localOpenAI(t, 64)
	tax := mustParse(t, taxV1)
	ai.InjectFailures("/embeddings", 400, 1)
	if _, err := newSyncer(t, fs, emb, tax).Ensure(t.Context()); err == nil || !failure.IsPermanent(err) {
		t.Fatalf("a refused embedding request: %v, want a permanent error", err)
	}
	// Shorter than the 5 s lease: only a released lease lets it through.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	res, err := newSyncer(t, fs, emb, tax).Ensure(ctx)
	if err != nil || !res.Stored {
		t.Fatalf("the next instance: %+v, %v", res, err)
	}
}
