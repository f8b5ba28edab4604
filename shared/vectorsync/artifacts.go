package vectorsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/failure"
)

// maxKnowledgeBytes bounds what is read of a knowledge document: far above
// any lesson's (a three-hour lesson renders to well under a megabyte), far
// below OpenAI's 512 MB file limit.
const maxKnowledgeBytes = 64 << 20

// readArtifact reads one artifact of a lesson version from the artifacts
// bucket. A missing object is permanent: the enrich stage completed without
// it, and only a replay from enrich makes it.
func (s *Stage) readArtifact(ctx context.Context, lessonID string, version int, file string) ([]byte, error) {
	name := artifact.Name(lessonID, version, file)
	uri := "gs://" + s.ArtifactsBucket + "/" + name
	r, err := s.Storage.Bucket(s.ArtifactsBucket).Object(name).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, failure.Permanentf("%s is missing: the enrich stage of this version did not leave it (replay from enrich)", uri)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxKnowledgeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	if len(b) > maxKnowledgeBytes {
		return nil, failure.Permanentf("%s is over %d bytes", uri, maxKnowledgeBytes)
	}
	return b, nil
}

// enrichment reads the version's enrichment.json (level and categories
// become attributes).
func (s *Stage) enrichment(ctx context.Context, lessonID string, version int) (artifact.Enrichment, error) {
	b, err := s.readArtifact(ctx, lessonID, version, artifact.EnrichmentFile)
	if err != nil {
		return artifact.Enrichment{}, err
	}
	var e artifact.Enrichment
	if err := json.Unmarshal(b, &e); err != nil {
		return artifact.Enrichment{}, failure.Permanentf("%s of lesson %s v%d is not an enrichment document: %v", artifact.EnrichmentFile, lessonID, version, err)
	}
	if (e.LessonID != "" && e.LessonID != lessonID) || (e.Version != 0 && e.Version != version) {
		return artifact.Enrichment{}, failure.Permanentf("%s of lesson %s v%d describes lesson %s v%d", artifact.EnrichmentFile, lessonID, version, e.LessonID, e.Version)
	}
	return e, nil
}

// knowledge reads the version's knowledge.md, the document uploaded.
func (s *Stage) knowledge(ctx context.Context, lessonID string, version int) ([]byte, error) {
	b, err := s.readArtifact(ctx, lessonID, version, artifact.KnowledgeFile)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, failure.Permanentf("%s of lesson %s v%d is empty", artifact.KnowledgeFile, lessonID, version)
	}
	return b, nil
}
