// Package enrich is the enrich stage (DESIGN.md sections 1, 4 and 5): fed by
// lesson-processed, it turns a lesson version's transcript and video
// analysis into what retrieval needs, and announces it on lesson-enriched
// for the sync stage.
//
//   - The lesson's text (title, transcript, the visual elements' text and
//     code) is embedded with OpenAI (long text in parts, pooled) and
//     classified against its school's taxonomy by Firestore vector search
//     (shared/taxonomy): up to three categories, with their similarity.
//   - Gemini describes the lesson — keywords, level, summary, learning
//     objectives, prerequisites — as JSON under a response schema; an answer
//     that breaks the contract is asked again once, then the stage fails
//     with the reasons.
//   - The lesson is cut into chunks aligned to the transcript's times
//     (shared/chunk), rendered with a header into knowledge.md.
//
// It writes enrichment.json, chunks.json and knowledge.md under the lesson
// version's prefix in the artifacts bucket. A lesson version whose title
// alone changed carries its transcript and analysis over from the version
// before (the records' outputs name the old artifacts) and is enriched
// again from them, with no transcription or analysis.
//
// The two paid calls, the embedding and Gemini's answer, are kept under
// lessons/{id}/v{n}/enrich/ with a hash of what was asked, as soon as they
// are paid: a delivery that redoes the work after a crash or a failure
// reads them back instead of paying again. Every paid call goes to the
// lesson's cost ledger, bad answers included.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/notify"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

// Deps are the stage's collaborators: the real clients, which tests point
// at the emulators, the local Cloud Storage, the local OpenAI and the local
// Gemini.
type Deps struct {
	Store *lessonstate.Store
	// Firestore reads the lesson's course (its Club subdomain, for the
	// link) and the titles of the course's earlier lessons.
	Firestore *firestore.Client
	Storage   *storage.Client
	Gemini    *genai.Client
	// Taxonomy is the file this instance was built with; Syncer stores its
	// embeddings once per version; Embedder embeds lessons in the same
	// space; Classifier searches it.
	Taxonomy   *taxonomy.Taxonomy
	Syncer     *taxonomy.Syncer
	Embedder   *taxonomy.Embedder
	Classifier *taxonomy.Classifier
	Splitter   *chunk.Splitter
	// Publisher sends lesson-enriched; Announcer publishes the failed
	// announcement the store queues with a failure (the outbox relay).
	Publisher *events.Publisher
	Announcer *relay.Relay
	// Outcome gives the context the final Complete or Fail is written on:
	// detached from the request's cancellation (setup.Env.Outcome).
	Outcome func(context.Context) (context.Context, context.CancelFunc)
	Settings
}

// Settings are the stage's settings (Config.Settings).
type Settings struct {
	ArtifactsBucket string
	// Model is the Gemini model.
	Model         string
	AnswerRetries int
	Lease         time.Duration
	// Links makes the lesson's Hotmart Club link (the notifier's template).
	Links notify.Links
}

// Stage runs the enrich stage. It is safe for concurrent use.
type Stage struct{ Deps }

// New returns the stage, or an error naming every missing dependency or
// setting.
func New(d Deps) (*Stage, error) {
	if err := setup.Missing("enrich", map[string]any{
		"store": d.Store, "firestore": d.Firestore, "storage": d.Storage, "gemini": d.Gemini,
		"taxonomy": d.Taxonomy, "syncer": d.Syncer, "embedder": d.Embedder, "classifier": d.Classifier,
		"splitter": d.Splitter, "publisher": d.Publisher, "announcer": d.Announcer, "outcome": d.Outcome,
	}); err != nil {
		return nil, err
	}
	var errs []error
	if d.ArtifactsBucket == "" {
		errs = append(errs, errors.New("artifacts bucket must be set"))
	}
	if d.Model == "" {
		errs = append(errs, errors.New("Gemini model must be set"))
	}
	if d.AnswerRetries < 0 || d.Lease <= 0 {
		errs = append(errs, fmt.Errorf("answer retries %d must be ≥ 0 and lease %s positive", d.AnswerRetries, d.Lease))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}
	return &Stage{d}, nil
}

// Output keys the stage records in the lesson's stage outputs.
const (
	OutURI        = "uri"        // gs:// URI of enrichment.json
	OutChunks     = "chunks"     // gs:// URI of chunks.json
	OutKnowledge  = "knowledge"  // gs:// URI of knowledge.md
	OutCategories = "categories" // category ids, nearest first, comma-separated
	OutLevel      = "level"      // básico, intermedio or avanzado
	OutChunkCount = "chunkCount" // how many chunks
	// OutChunkMaxTokens and OutChunkOverlapTokens are the chunk options
	// knowledge.md was cut with: the sync stage attaches it to the vector
	// store with the chunking they call for (chunk.StoreChunking), even
	// after CHUNK_* changed.
	OutChunkMaxTokens     = "chunkMaxTokens"
	OutChunkOverlapTokens = "chunkOverlapTokens"
	OutTaxonomyVersion    = "taxonomyVersion"
	// OutBilled lists the kept paid answers (cache name and hash of what
	// was asked) whose usage is in the lesson's cost ledger: an attempt
	// that reads back one not listed adds its usage (see tally).
	OutBilled = "usageRecorded"
)

// recordURI is the output key under which the transcribe and analyze
// stages record their artifact's gs:// URI (transcribe.OutURI,
// analyze.OutURI).
const recordURI = "uri"

// Handle processes one lesson-processed event. It returns nil when the
// message must be acknowledged (done, duplicate, stale, busy elsewhere, or
// failed for good) and an error only when a redelivery may succeed.
func (s *Stage) Handle(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(logging.FromContext(ctx), ev.LessonID, ev.Version, lessonstate.StageEnrich)
	claim, err := s.Store.Claim(ctx, ev.LessonID, lessonstate.StageEnrich, ev.Version, s.Lease)
	if errors.Is(err, lessonstate.ErrNotFound) {
		log.ErrorContext(ctx, "event names an unknown lesson; acknowledged, nothing written")
		return nil
	}
	if err != nil {
		return fmt.Errorf("enrich lesson %s v%d: %w", ev.LessonID, ev.Version, err)
	}
	if claim.Outcome != lessonstate.Claimed {
		// AlreadyDone included: a redelivery after Complete does nothing,
		// lesson-enriched was sent (or the sweeper re-sends it). Busy: the
		// owner's lease ends, and the sweeper re-drives the work if the
		// owner dies holding it.
		log.InfoContext(ctx, "nothing to do", "claim", claim.Outcome.String())
		return nil
	}
	log.InfoContext(ctx, "enrichment started", "attempt", claim.Stage.Attempts, "from", ev.From)
	paid := newTally(claim.Stage.Outputs[OutBilled])
	res, err := s.enrich(ctx, log, paid, &claim)

	// The outcome is written even when the request was cut off meanwhile.
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if err != nil {
		return s.fail(octx, log, ev, claim, paid, err)
	}
	out := res.outputs()
	out[OutBilled] = paid.list
	if err := s.Store.CompleteWithUsage(octx, ev.LessonID, lessonstate.StageEnrich, ev.Version, claim.Token, out, paid.usage); err != nil {
		if errors.Is(err, lessonstate.ErrLeaseLost) {
			// Another delivery took over after our lease ran out; it
			// finds our paid answers, makes the same artifacts, and puts
			// their usage in the ledger.
			log.WarnContext(ctx, "lease lost before completion; the new owner completes the stage")
			return nil
		}
		// Still running under our lease: a redelivery finds it busy, and
		// the sweeper re-drives it once the lease ends; that attempt reads
		// the paid answers back and records their usage.
		return fmt.Errorf("enrich lesson %s v%d: complete: %w", ev.LessonID, ev.Version, err)
	}
	log.InfoContext(ctx, "enrichment done", "categories", res.outputs()[OutCategories], "lessonLevel", res.enrichment.Level,
		"chunks", len(res.chunks), "embeddingReused", res.embeddingReused, "answerReused", res.answerReused)

	next := events.LessonEvent{LessonID: ev.LessonID, Version: ev.Version, CourseID: claim.Lesson.CourseID, RunID: ev.RunID}
	if next.RunID == "" {
		next.RunID = claim.Lesson.LastRunID
	}
	if _, err := s.Publisher.Publish(octx, events.TopicLessonEnriched, next); err != nil {
		// The stage is done; a redelivery of this message would find it
		// so and send nothing. The sync step is now pending with no event
		// on its way: the sweeper re-sends lesson-enriched after its
		// pending wait (PENDING_AFTER), so the message is acknowledged.
		log.ErrorContext(ctx, "lesson-enriched not published; the sweeper re-drives the sync step after its pending wait",
			"error", err.Error())
	}
	return nil
}

// fail records the failure. Permanent failures, and retryable ones that
// have used up their attempts, mark the stage failed and are announced once
// on lesson-events; the message is then acknowledged. Otherwise the stage
// is pending again and the error makes Pub/Sub redeliver.
//
// What the attempt paid for is noted first, with the kept answers it
// bills, in a write of its own: the failure is rare and keeps the stage's
// outputs as they were.
func (s *Stage) fail(ctx context.Context, log *slog.Logger, ev events.LessonEvent, claim lessonstate.Claim, paid *tally, cause error) error {
	retryable := !failure.IsPermanent(cause)
	reason := cause.Error()
	var err error
	if paid.owes(claim.Stage.Outputs[OutBilled]) {
		_, err = s.Store.NoteWithUsage(ctx, ev.LessonID, lessonstate.StageEnrich, ev.Version, claim.Token,
			map[string]string{OutBilled: paid.list}, 0, paid.usage)
	}
	var f lessonstate.Failure
	if err == nil {
		f, err = s.Store.Fail(ctx, ev.LessonID, lessonstate.StageEnrich, ev.Version, claim.Token, reason, retryable)
	}
	switch {
	case errors.Is(err, lessonstate.ErrLeaseLost):
		log.WarnContext(ctx, "enrichment failed after its lease was taken over; the new owner decides", "error", reason)
		return nil
	case err != nil:
		// Still running under our lease: the sweeper re-drives it after.
		return fmt.Errorf("enrich lesson %s v%d: record failure %q: %w", ev.LessonID, ev.Version, reason, err)
	case f.State != lessonstate.StateFailed:
		log.WarnContext(ctx, "enrichment failed; will retry", "error", reason, "attempt", claim.Stage.Attempts)
		return fmt.Errorf("enrich lesson %s v%d: %w", ev.LessonID, ev.Version, cause)
	}
	log.ErrorContext(ctx, "enrichment failed", "error", reason, "attempts", claim.Stage.Attempts)
	if f.Announce != nil {
		if err := s.Announcer.Event(ctx, ev.LessonID, *f.Announce); err != nil {
			// Queued in the outbox with the failure: the sweeper's next
			// flush announces it.
			log.WarnContext(ctx, "failure announcement left in the outbox", "error", err.Error())
		}
	}
	return nil
}

// outputs are the stage record's outputs for a finished enrichment.
func (r result) outputs() map[string]string {
	ids := make([]string, len(r.enrichment.Categories))
	for i, c := range r.enrichment.Categories {
		ids[i] = c.ID
	}
	return map[string]string{
		OutURI:                r.enrichmentURI,
		OutChunks:             r.chunksURI,
		OutKnowledge:          r.knowledgeURI,
		OutCategories:         strings.Join(ids, ","),
		OutLevel:              r.enrichment.Level,
		OutChunkCount:         strconv.Itoa(len(r.chunks)),
		OutChunkMaxTokens:     strconv.Itoa(r.chunking.MaxTokens),
		OutChunkOverlapTokens: strconv.Itoa(r.chunking.OverlapTokens),
		OutTaxonomyVersion:    r.enrichment.TaxonomyVersion,
	}
}
