package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/taxonomy"
)

// result is what one enrichment made.
type result struct {
	enrichment                             artifact.Enrichment
	chunks                                 []artifact.Chunk
	chunking                               chunk.Options
	enrichmentURI, chunksURI, knowledgeURI string
	embeddingReused, answerReused          bool
}

// enrich does the work of a claimed stage. The order puts what costs
// nothing first: a lesson that cannot be enriched (no school in the
// taxonomy, nothing to chunk) fails before anything is paid for.
func (s *Stage) enrich(ctx context.Context, log *slog.Logger, paid *tally, claim *lessonstate.Claim) (result, error) {
	l, version := claim.Lesson, claim.Stage.Version
	if _, ok := s.Taxonomy.School(l.School); !ok {
		return result{}, &failure.Permanent{Err: taxonomy.NoCategoriesError(l.School, s.Taxonomy.Version)}
	}
	in, err := s.inputs(ctx, l, version)
	if err != nil {
		return result{}, err
	}
	course, err := s.courseContext(ctx, l)
	if err != nil {
		return result{}, err
	}
	cl := chunk.Lesson{
		School: l.School, CourseID: l.CourseID, ModuleID: l.ModuleID, LessonID: l.ID, Version: version,
		CourseTitle: l.CourseName, ModuleTitle: l.ModuleName, Title: l.Title,
		URL: s.Links.Lesson(course.subdomain, l.CourseID, l.ModuleID, l.ID),
	}
	chunks, err := s.Splitter.Split(cl, in.transcript, in.analysis)
	switch {
	case errors.Is(err, chunk.ErrNothingToChunk):
		return result{}, failure.Permanentf("lesson %s v%d (%q) has nothing to enrich: its transcript has no words and its video no visual content (%s)",
			l.ID, version, l.Title, in.sources())
	case err != nil:
		return result{}, failure.Permanentf("chunk the lesson (%s): %w", in.sources(), err)
	}

	if _, err := s.Syncer.Ensure(ctx); err != nil {
		return result{}, err
	}
	emb, err := s.embedding(ctx, log, paid, l.ID, version, lessonText(l.Title, in))
	if err != nil {
		return result{}, fmt.Errorf("embed the lesson: %w", err)
	}
	cls, err := s.Classifier.Classify(ctx, l.School, emb.Vector)
	if err != nil {
		return result{}, fmt.Errorf("classify the lesson: %w", err)
	}
	if len(cls.Categories) == 0 {
		log.WarnContext(ctx, "no category reaches the threshold", "threshold", s.Classifier.Threshold(),
			"nearest", scores(cls.Nearest))
	}

	p, err := prompt(promptInput{
		LessonID: l.ID, Version: version, Title: l.Title, Course: l.CourseName,
		ModuleOrder: l.ModuleOrder, Module: l.ModuleName, Earlier: course.earlier,
		Transcript: in.transcript.Text, Visuals: in.analysis.Elements,
	})
	if err != nil {
		return result{}, failure.Permanentf("write the prompt: %w", err)
	}
	ans, err := s.describe(ctx, log, paid, l.ID, version, p)
	if err != nil {
		return result{}, err
	}

	e := artifact.Enrichment{
		LessonID: l.ID, Version: version,
		Categories: cls.Categories, Keywords: ans.Answer.Keywords, Level: ans.Answer.Level,
		Summary: ans.Answer.Summary, Objectives: ans.Answer.Objectives, Prerequisites: ans.Answer.Prerequisites,
		Model: s.Model, EmbeddingModel: s.Embedder.Model(), TaxonomyVersion: cls.TaxonomyVersion,
	}
	if e.Categories == nil {
		e.Categories = []artifact.Category{}
	}
	res := result{enrichment: e, chunks: chunks, chunking: s.Splitter.Options(),
		embeddingReused: emb.reused, answerReused: ans.reused}
	if err := s.writeArtifacts(ctx, &res, cl); err != nil {
		return result{}, err
	}
	return res, nil
}

// lessonText is what the lesson's embedding is made of: its title, what
// is said, and what is written on screen (slide text, code).
func lessonText(title string, in inputs) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(title))
	if t := strings.TrimSpace(in.transcript.Text); t != "" {
		b.WriteString("\n\n" + t)
	}
	for _, v := range in.analysis.Elements {
		for _, s := range []string{v.Title, v.Text, v.Code} {
			if s = strings.TrimSpace(s); s != "" {
				b.WriteString("\n" + s)
			}
		}
	}
	return b.String()
}

// scores formats categories with their scores for logs.
func scores(cs []artifact.Category) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s=%.3f", c.ID, c.Score)
	}
	return strings.Join(parts, " ")
}
