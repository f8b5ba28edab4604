package enrich_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/shared/analyze"
	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/enrich"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/taxonomy"
	"github.com/coursekb/pipeline/shared/transcribe"
)

// A processed sample lesson is classified, described and chunked:
// enrichment.json, chunks.json and knowledge.md are written, the stage is
// done with their URIs, lesson-enriched is published, and every paid call
// is in the ledger. A redelivery of the message then does nothing.
func TestEnrichSampleLessonEndToEnd(t *testing.T) {
	h := newHarness(t)
	const id = "pyL3func004"
	h.processSample(id, 1)

	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}

	rec := h.record(id)
	if rec.State != lessonstate.StateDone || rec.Version != 1 {
		t.Fatalf("enrich record: %+v", rec)
	}
	for key, file := range map[string]string{
		enrich.OutURI: artifact.EnrichmentFile, enrich.OutChunks: artifact.ChunksFile, enrich.OutKnowledge: artifact.KnowledgeFile,
	} {
		if want := h.uri(id, 1, file); rec.Outputs[key] != want {
			t.Errorf("output %s = %q, want %q", key, rec.Outputs[key], want)
		}
	}
	if rec.Outputs[enrich.OutChunkMaxTokens] != "400" || rec.Outputs[enrich.OutChunkOverlapTokens] != "60" {
		t.Errorf("chunk options recorded: %v", rec.Outputs)
	}

	var e artifact.Enrichment
	h.readJSON(artifact.Name(id, 1, artifact.EnrichmentFile), &e)
	if e.LessonID != id || e.Version != 1 || e.Model != model || e.EmbeddingModel != embeddingModel || e.TaxonomyVersion != "1" {
		t.Errorf("enrichment identity: %+v", e)
	}
	if len(e.Categories) == 0 || len(e.Categories) > 3 || e.Categories[0].ID != "programacion-funciones" ||
		e.Categories[0].Name != "Funciones y modularidad" || e.Categories[0].Score < taxonomy.DefaultThreshold {
		t.Errorf("categories: %+v", e.Categories)
	}
	if rec.Outputs[enrich.OutCategories] == "" || !strings.HasPrefix(rec.Outputs[enrich.OutCategories], "programacion-funciones") {
		t.Errorf("categories output %q", rec.Outputs[enrich.OutCategories])
	}
	if n := len(e.Keywords); n < enrich.MinKeywords || n > enrich.MaxKeywords || !slices.Contains(artifact.Levels, e.Level) ||
		e.Summary == "" || len(e.Objectives) == 0 || e.Prerequisites == nil {
		t.Errorf("description: %+v", e)
	}
	if rec.Outputs[enrich.OutLevel] != e.Level {
		t.Errorf("level output %q, enrichment %q", rec.Outputs[enrich.OutLevel], e.Level)
	}

	var chunks []artifact.Chunk
	h.readJSON(artifact.Name(id, 1, artifact.ChunksFile), &chunks)
	if len(chunks) == 0 || rec.Outputs[enrich.OutChunkCount] != strconv.Itoa(len(chunks)) {
		t.Fatalf("%d chunks, output says %s", len(chunks), rec.Outputs[enrich.OutChunkCount])
	}
	for _, c := range chunks {
		if c.LessonID != id || c.Version != 1 || c.School != "programacion" || c.CourseID != courseID || c.ModuleID != "pyM2func01" || c.Tokens > 400 {
			t.Errorf("chunk %d: %+v", c.Index, c)
		}
	}

	md, _ := h.object(artifact.Name(id, 1, artifact.KnowledgeFile))
	doc := string(md)
	for _, want := range []string{
		"# Definir funciones\n", "- Curso: Python desde cero\n", "- Módulo: Funciones\n", "- Lección: Definir funciones\n",
		"- Nivel: " + e.Level + "\n", "- Categorías: Funciones y modularidad", "## Objetivos de aprendizaje",
		"- Enlace: https://python-desde-cero.club.hotmart.com/lesson/pyL3func004\n",
		"- " + e.Objectives[0] + "\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("knowledge.md lacks %q:\n%s", want, doc)
		}
	}
	last := -1
	for _, c := range chunks {
		i := strings.Index(doc, chunk.Heading(c.Start, c.End))
		if i < 0 || i < last {
			t.Errorf("knowledge.md lacks chunk %d's heading %q in order", c.Index, chunk.Heading(c.Start, c.End))
		}
		last = i
	}

	// The prompt names the course, the module and the earlier lessons.
	prompts := h.prompts()
	if len(prompts) != 1 {
		t.Fatalf("%d prompts", len(prompts))
	}
	for _, want := range []string{
		enrich.MarkerLesson + " pyL3func004 v1\n", enrich.MarkerTitle + " Definir funciones\n", enrich.MarkerCourse + " Python desde cero\n",
		enrich.MarkerModule + " 2 · Funciones\n", enrich.MarkerEarlier + "\n- Variables y tipos de datos\n- Condicionales\n" + enrich.MarkerTranscript,
		enrich.MarkerVisuals + "\n[{",
	} {
		if !strings.Contains(prompts[0], want) {
			t.Errorf("the prompt lacks %q:\n%s", want, prompts[0])
		}
	}

	ev := h.waitFor("lesson-enriched", h.enriched, func(ev events.LessonEvent) bool { return ev.LessonID == id })
	if ev != (events.LessonEvent{LessonID: id, Version: 1, CourseID: courseID, RunID: "run-1"}) {
		t.Errorf("lesson-enriched = %+v", ev)
	}

	u := h.lesson(id).Usage
	if u[lessonstate.MeterEmbeddingTokens(embeddingModel)] <= 0 || u[lessonstate.MeterGeminiInputTokens(model)] <= 0 ||
		u[lessonstate.MeterGeminiOutputTokens(model)] <= 0 {
		t.Errorf("usage: %v", u)
	}

	embeddings, answers := h.paid(id)
	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}
	if e2, a2 := h.paid(id); e2 != embeddings || a2 != answers {
		t.Errorf("a redelivery after completion paid again: embeddings %d → %d, answers %d → %d", embeddings, e2, answers, a2)
	}
	if r := h.record(id); r.Attempts != 1 || r.State != lessonstate.StateDone {
		t.Errorf("after a redelivery: %+v", r)
	}
}

// A Gemini answer that breaks the schema, asked again and broken again,
// fails the stage for good with the reasons, announced on lesson-events.
// Both answers were paid, and are in the ledger.
func TestEnrichAnswerBreakingTheSchemaTwiceFails(t *testing.T) {
	h := newHarness(t)
	const id = "pyL1vars001"
	h.processSample(id, 1)
	h.gemini.BreakSchemaNext(gemini.Match{Lesson: id, Kind: gemini.Enrichment}, gemini.BreakEnum, 2)

	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatalf("a permanent failure is acknowledged, got %v", err)
	}
	rec := h.record(id)
	if rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, "Gemini gave 2 answer(s), none valid") ||
		!strings.Contains(rec.Error, `level "experto" is not one of básico, intermedio, avanzado`) {
		t.Fatalf("enrich record: %+v", rec)
	}
	ev := h.waitFor("the failed announcement", h.failed, func(ev events.LessonEvent) bool {
		return ev.LessonID == id && ev.Kind == events.KindFailed && ev.From == lessonstate.StageEnrich
	})
	if !strings.Contains(ev.Reason, "none valid") {
		t.Errorf("announced reason %q", ev.Reason)
	}
	if _, answers := h.paid(id); answers != 2 {
		t.Errorf("%d answers asked, want 2", answers)
	}
	if u := h.lesson(id).Usage; u[lessonstate.MeterGeminiOutputTokens(model)] <= 0 {
		t.Errorf("the bad answers are not in the ledger: %v", u)
	}
	if _, ok := h.object(artifact.Name(id, 1, artifact.EnrichmentFile)); ok {
		t.Error("enrichment.json written for a failed stage")
	}
	if got := h.enriched(); len(got) != 0 {
		t.Errorf("lesson-enriched published for a failed stage: %+v", got)
	}
}

// One bad answer is asked again; the second, valid, is used.
func TestEnrichAsksAgainAfterOneBadAnswer(t *testing.T) {
	h := newHarness(t)
	const id = "pyL1vars001"
	h.processSample(id, 1)
	h.gemini.BreakSchemaNext(gemini.Match{Lesson: id, Kind: gemini.Enrichment}, gemini.BreakMissing, 1)
	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}
	if rec := h.record(id); rec.State != lessonstate.StateDone {
		t.Fatalf("enrich record: %+v", rec)
	}
	if _, answers := h.paid(id); answers != 2 {
		t.Errorf("%d answers asked, want 2", answers)
	}
}

// A lesson with no words in its transcript and no visual content fails
// for good, naming the lesson, before anything is paid for.
func TestEnrichNothingToEnrichFailsNamingTheLesson(t *testing.T) {
	h := newHarness(t)
	const id = "pyL2cond002"
	empty := transcriptOf(id, 1, "")
	h.process(id, 1, empty, nil)
	embeddings, _ := h.paid(id)

	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatalf("a permanent failure is acknowledged, got %v", err)
	}
	rec := h.record(id)
	if rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, "lesson pyL2cond002 v1 (\"Condicionales\") has nothing to enrich") ||
		!strings.Contains(rec.Error, "analysis skipped") {
		t.Fatalf("enrich record: %+v", rec)
	}
	h.waitFor("the failed announcement", h.failed, func(ev events.LessonEvent) bool {
		return ev.LessonID == id && ev.Kind == events.KindFailed && ev.From == lessonstate.StageEnrich
	})
	if e, a := h.paid(id); e != embeddings || a != 0 {
		t.Errorf("paid for a lesson with nothing in it: embeddings %d → %d, answers %d", embeddings, e, a)
	}
}

// A lesson whose school the taxonomy does not list fails for good, naming
// the school, before anything is paid for.
func TestEnrichSchoolWithoutCategoriesFails(t *testing.T) {
	h := newHarness(t)
	const id = "pyL1vars001"
	h.processSample(id, 1)
	if _, err := h.fs.Collection(lessonstate.CollLessons).Doc(id).Update(t.Context(),
		[]firestore.Update{{Path: "school", Value: "diseno"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}
	if rec := h.record(id); rec.State != lessonstate.StateFailed || !strings.Contains(rec.Error, `"diseno"`) ||
		!strings.Contains(rec.Error, "COURSE_CATALOG") {
		t.Fatalf("enrich record: %+v", rec)
	}
	if e, a := h.paid(id); e != 0 || a != 0 {
		t.Errorf("paid %d embedding and %d Gemini calls", e, a)
	}
}

// A change of title alone makes version 2, whose transcribe and analyze
// records are carried over from version 1 with its artifacts: enrich runs
// again from them, with the new title, and nothing is transcribed again.
func TestEnrichTitleOnlyChangeReusesTheTranscript(t *testing.T) {
	h := newHarness(t)
	const id = "pyL1vars001"
	h.processSample(id, 1)
	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}
	v1 := h.lesson(id)

	ev := h.detect(id, "Variables, tipos y valores")
	if ev == nil || ev.Version != 2 || ev.From != lessonstate.StageEnrich {
		t.Fatalf("the title change's event: %+v", ev)
	}
	if topic := lessonstate.TopicFor(*ev); topic != events.TopicLessonProcessed {
		t.Fatalf("the title change's event goes to %s", topic)
	}
	if err := h.stage.Handle(t.Context(), *ev); err != nil {
		t.Fatal(err)
	}

	l := h.lesson(id)
	if rec := l.Stages[lessonstate.StageEnrich]; rec.State != lessonstate.StateDone || rec.Version != 2 || rec.Outputs[enrich.OutURI] != h.uri(id, 2, artifact.EnrichmentFile) {
		t.Fatalf("enrich record at v2: %+v", rec)
	}
	for _, st := range []string{lessonstate.StageTranscribe, lessonstate.StageAnalyze} {
		before, after := v1.Stages[st], l.Stages[st]
		if after.Version != 2 || after.State != lessonstate.StateDone || after.Outputs["uri"] != before.Outputs["uri"] || after.Attempts != before.Attempts {
			t.Errorf("%s at v2 is not v1's carried over: %+v (v1 %+v)", st, after, before)
		}
	}
	if _, ok := h.object(artifact.Name(id, 2, artifact.TranscriptFile)); ok {
		t.Error("a transcript was made for v2")
	}
	var e artifact.Enrichment
	h.readJSON(artifact.Name(id, 2, artifact.EnrichmentFile), &e)
	if e.Version != 2 || len(e.Categories) == 0 || e.Categories[0].ID != "programacion-fundamentos" {
		t.Errorf("v2 enrichment: %+v", e)
	}
	var chunks []artifact.Chunk
	h.readJSON(artifact.Name(id, 2, artifact.ChunksFile), &chunks)
	if len(chunks) == 0 || chunks[0].Version != 2 {
		t.Errorf("v2 chunks: %+v", chunks)
	}
	md, _ := h.object(artifact.Name(id, 2, artifact.KnowledgeFile))
	if !strings.HasPrefix(string(md), "# Variables, tipos y valores\n") {
		t.Errorf("v2 knowledge.md:\n%s", md)
	}
	h.waitFor("lesson-enriched v2", h.enriched, func(ev events.LessonEvent) bool { return ev.LessonID == id && ev.Version == 2 })
}

// A delivery that dies after paying — once on a failure of Gemini, once
// after every artifact was written but before recording its outcome — is
// redone by the next delivery without paying twice: the embedding and
// Gemini's answer are read back, and the ledger counts each once — the
// answer the dead delivery paid for but could not record included.
func TestEnrichRedeliveryAfterACrashPaysNothingTwice(t *testing.T) {
	h := newHarness(t)
	const id = "pyL3func004"
	h.processSample(id, 1)
	e0, _ := h.paid(id)

	// Gemini unavailable: a retryable failure after the embedding was paid.
	h.gemini.FailNext(gemini.Match{Lesson: id, Kind: gemini.Enrichment}, 503, 1)
	if err := h.stage.Handle(t.Context(), event(id, 1)); err == nil {
		t.Fatal("a retryable failure must be returned, for Pub/Sub to redeliver")
	}
	if rec := h.record(id); rec.State != lessonstate.StatePending {
		t.Fatalf("after a retryable failure: %+v", rec)
	}
	e1, a1 := h.paid(id)
	if e1 == e0 || a1 != 1 {
		t.Fatalf("first delivery: embeddings %d → %d, answers %d", e0, e1, a1)
	}

	// The redelivery pays Gemini, writes the artifacts but dies writing
	// knowledge.md, before it can record anything: the stage stays
	// running under its lease.
	h.breakUpload.Store(artifact.KnowledgeFile)
	if err := h.stage.Handle(t.Context(), event(id, 1)); err == nil {
		t.Fatal("the dead delivery returned no error")
	}
	if rec := h.record(id); rec.State != lessonstate.StateRunning || rec.Attempts != 2 {
		t.Fatalf("after the crash: %+v", rec)
	}
	e2, a2 := h.paid(id)
	if e2 != e1 || a2 != 2 {
		t.Fatalf("second delivery: embeddings %d → %d (want reused), answers %d → %d", e1, e2, a1, a2)
	}
	usage := h.lesson(id).Usage

	// A redelivery while the lease holds does nothing; once it lapses,
	// the sweeper's re-drive claims the stage and finishes it for free.
	h.breakUpload.Store("")
	h.dead.Store(false)
	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}
	if rec := h.record(id); rec.State != lessonstate.StateRunning || rec.Attempts != 2 {
		t.Fatalf("a delivery under a live lease changed the record: %+v", rec)
	}
	h.skew.Store(int64(2 * lease))
	if err := h.stage.Handle(t.Context(), event(id, 1)); err != nil {
		t.Fatal(err)
	}
	if rec := h.record(id); rec.State != lessonstate.StateDone || rec.Attempts != 3 {
		t.Fatalf("after the re-drive: %+v", rec)
	}
	if e3, a3 := h.paid(id); e3 != e2 || a3 != a2 {
		t.Errorf("the re-drive paid again: embeddings %d → %d, answers %d → %d", e2, e3, a2, a3)
	}
	var emb struct {
		BilledTokens float64 `json:"billedTokens"`
	}
	var ans struct {
		InputTokens  float64 `json:"inputTokens"`
		OutputTokens float64 `json:"outputTokens"`
	}
	h.readJSON(artifact.Prefix(id, 1)+"enrich/embedding.json", &emb)
	h.readJSON(artifact.Prefix(id, 1)+"enrich/answer.json", &ans)
	after := h.lesson(id).Usage
	for meter, want := range map[string]float64{
		lessonstate.MeterEmbeddingTokens(embeddingModel): emb.BilledTokens,
		lessonstate.MeterGeminiInputTokens(model):        ans.InputTokens,
		lessonstate.MeterGeminiOutputTokens(model):       ans.OutputTokens,
	} {
		if want <= 0 || after[meter] != want {
			t.Errorf("ledger %s = %g (%g after the crash), want the %g paid once", meter, after[meter], usage[meter], want)
		}
	}
	if _, ok := h.object(artifact.Name(id, 1, artifact.KnowledgeFile)); !ok {
		t.Error("no knowledge.md after the re-drive")
	}
	h.waitFor("lesson-enriched", h.enriched, func(ev events.LessonEvent) bool { return ev.LessonID == id })
}

// The output key the enricher reads the process step's artifacts by is the
// one the transcribe and analyze stages write them under.
func TestOutputKeysMatchTheProcessStages(t *testing.T) {
	if transcribe.OutURI != "uri" || analyze.OutURI != "uri" {
		t.Errorf("transcribe.OutURI %q and analyze.OutURI %q: the enricher reads %q", transcribe.OutURI, analyze.OutURI, "uri")
	}
}
