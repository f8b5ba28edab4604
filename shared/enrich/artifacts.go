package enrich

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/failure"
)

// writeArtifacts writes enrichment.json, chunks.json and knowledge.md of
// the lesson version, and notes their URIs in res. Each write replaces the
// object whole with the same content on a retry.
func (s *Stage) writeArtifacts(ctx context.Context, res *result, l chunk.Lesson) error {
	id, v := l.LessonID, l.Version
	uri := func(file string) string { return "gs://" + s.ArtifactsBucket + "/" + artifact.Name(id, v, file) }

	chunks := res.chunks
	if chunks == nil {
		chunks = []artifact.Chunk{}
	}
	if err := s.writeJSON(ctx, artifact.Name(id, v, artifact.EnrichmentFile), res.enrichment, id, v); err != nil {
		return failure.Retryablef("write %s: %w", uri(artifact.EnrichmentFile), err)
	}
	if err := s.writeJSON(ctx, artifact.Name(id, v, artifact.ChunksFile), chunks, id, v); err != nil {
		return failure.Retryablef("write %s: %w", uri(artifact.ChunksFile), err)
	}
	md := chunk.Knowledge(l, res.enrichment, chunks)
	if err := s.write(ctx, artifact.Name(id, v, artifact.KnowledgeFile), md, "text/markdown; charset=utf-8", id, v); err != nil {
		return failure.Retryablef("write %s: %w", uri(artifact.KnowledgeFile), err)
	}
	res.enrichmentURI, res.chunksURI, res.knowledgeURI = uri(artifact.EnrichmentFile), uri(artifact.ChunksFile), uri(artifact.KnowledgeFile)
	return nil
}

// readCache reads a kept answer into v; found is false when there is none.
// One that does not decode is treated as absent: it is asked for again and
// overwritten.
func (s *Stage) readCache(ctx context.Context, name string, v any) (bool, error) {
	r, err := s.Storage.Bucket(s.ArtifactsBucket).Object(name).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return false, nil
	}
	if err != nil {
		return false, failure.Retryablef("read %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxArtifactBytes))
	if err != nil {
		return false, failure.Retryablef("read %s: %w", name, err)
	}
	if json.Unmarshal(b, v) != nil {
		return false, nil
	}
	return true, nil
}

// writeJSON writes v as a JSON object of the artifacts bucket.
func (s *Stage) writeJSON(ctx context.Context, name string, v any, lessonID string, version int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return s.write(ctx, name, b, "application/json", lessonID, version)
}

// write writes an object of the artifacts bucket whole, in one request.
// Writing the same name again replaces it with the same content, so the
// upload is safe to retry, and the client is told so.
func (s *Stage) write(ctx context.Context, name string, b []byte, contentType, lessonID string, version int) error {
	obj := s.Storage.Bucket(s.ArtifactsBucket).Object(name).Retryer(storage.WithPolicy(storage.RetryAlways))
	w := obj.NewWriter(ctx)
	w.ContentType = contentType
	w.ChunkSize = 0 // small: a single request, no resumable session
	w.Metadata = map[string]string{"lessonId": lessonID, "version": strconv.Itoa(version)}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
