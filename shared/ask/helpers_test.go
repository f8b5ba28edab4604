package ask_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/local/emulators"
	localopenai "github.com/coursekb/pipeline/local/openai"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/ask"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore))
}

const school = "programacion"

// lesson is a lesson as the sync stage publishes it: its knowledge document
// rendered by the real renderer from timed chunks.
type lesson struct {
	id, course, level, title string
	chunks                   []artifact.Chunk
}

var lessons = []lesson{
	{id: "vars1", course: "c1", level: artifact.LevelBasic, title: "Variables en Python", chunks: []artifact.Chunk{
		{Start: 0, End: 62.5, Text: "Bienvenidos al curso. En esta lección vemos qué es una variable y para qué sirve en un programa."},
		{Start: 62.5, End: 130.2, Text: "En Python una variable se declara asignándole un valor con el signo igual, por ejemplo edad = 30. " +
			"No hace falta indicar el tipo: el intérprete lo deduce del valor asignado."},
		{Start: 130.2, End: 201, Text: "Los tipos básicos son int, float, str y bool. La función type() muestra el tipo de un valor."},
		{Start: 201, End: 260, Text: "Python no tiene constantes verdaderas; por convención se escriben en mayúsculas, como PI."},
	}},
	{id: "func2", course: "c2", level: artifact.LevelIntermediate, title: "Funciones en Python", chunks: []artifact.Chunk{
		{Start: 0, End: 95, Text: "Una función se define con la palabra def, un nombre y sus parámetros entre paréntesis."},
		{Start: 95, End: 180.4, Text: "La instrucción return devuelve un valor y termina la ejecución de la función. " +
			"Sin return, la función devuelve None."},
		{Start: 180.4, End: 240, Text: "Los parámetros con valor por defecto se escriben nombre=valor en la definición."},
	}},
}

// chunking is small, so that the store's chunks hold several sections and a
// citation must be matched to the right one.
var chunking = chunk.Options{MaxTokens: 100, OverlapTokens: 20}

type env struct {
	asker *ask.Asker
	store *lessonstate.Store
	fs    *firestore.Client
	ai    *localopenai.Server
	cfg   ask.Config
	// storeID is the school's vector store.
	storeID string
}

// newEnv publishes the lessons into the school's store on the local OpenAI
// server as the sync stage does (same attributes, same chunking), records
// the store and the lessons in the Firestore emulator, and returns an Asker.
func newEnv(t *testing.T) *env {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	ctx := t.Context()
	fs, err := firestore.NewClient(ctx, emulators.ProjectID("ask"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	store := lessonstate.New(fs)

	ai := localopenai.NewServer(localopenai.Options{IndexingDelay: -1, Logger: slog.New(slog.DiscardHandler)})
	base, stop, err := ai.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	oc := vectorsync.OpenAIConfig{APIKey: "local", BaseURL: base, MaxRetries: 2, RequestTimeout: 30 * time.Second}
	client, err := vectorsync.NewOpenAI(oc)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := client.CreateStore(ctx, "coursekb-"+school, map[string]string{vectorsync.MetaSchool: school})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.RecordVectorStore(ctx, school, vs.ID); err != nil {
		t.Fatal(err)
	}
	maxTokens, overlap := chunk.StoreChunking(chunking)
	for _, l := range lessons {
		ls := lessonstate.Lesson{ID: l.id, School: school, CourseID: l.course, ModuleID: "m1", Title: l.title}
		if _, _, err := store.ApplyDetected(ctx, l.id, lessonstate.Observed{RunID: "r1", Lesson: lessonstate.Lesson{
			CourseID: l.course, School: school, ModuleID: "m1", Title: l.title, Type: "CONTENT", Fingerprint: l.id,
		}}); err != nil {
			t.Fatal(err)
		}
		en := artifact.Enrichment{LessonID: l.id, Version: 1, Level: l.level}
		doc := chunk.Knowledge(chunk.Lesson{School: school, CourseID: l.course, ModuleID: "m1", LessonID: l.id, Version: 1,
			CourseTitle: "Python", ModuleTitle: "Fundamentos", Title: l.title}, en, l.chunks)
		f, err := client.Upload(ctx, vectorsync.FileName(l.id, 1), doc)
		if err != nil {
			t.Fatal(err)
		}
		attrs, err := vectorsync.Attributes(ls, 1, en)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Attach(ctx, vs.ID, f.ID, attrs, maxTokens, overlap); err != nil {
			t.Fatal(err)
		}
	}
	cfg := ask.Config{OpenAIConfig: oc, Model: "gpt-5-mini", MaxResults: 8}
	a, err := ask.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{asker: a, store: store, fs: fs, ai: ai, cfg: cfg, storeID: vs.ID}
}

func seconds(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}
