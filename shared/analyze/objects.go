package analyze

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"cloud.google.com/go/storage"
	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
)

// storedWindow is one window's checked answer, kept in the artifacts
// bucket at windowName as soon as it is made: a later call for the same
// lesson version reads it back instead of paying for it again. It is also
// the record of what each window cost.
type storedWindow struct {
	LessonID string          `json:"lessonId"`
	Version  int             `json:"version"`
	Index    int             `json:"index"` // from 1
	Window   artifact.Window `json:"window"`
	// Model, FPS and Prompt (PromptVersion) say how the window was asked:
	// a window asked another way is asked again.
	Model        string                `json:"model"`
	FPS          float64               `json:"fps"`
	Resolution   genai.MediaResolution `json:"mediaResolution,omitempty"`
	Prompt       string                `json:"prompt"`
	ModelVersion string                `json:"modelVersion"`
	// Answers is how many answers it took to get a valid one; the tokens
	// count them all.
	Answers      int                      `json:"answers"`
	InputTokens  int64                    `json:"inputTokens"`
	OutputTokens int64                    `json:"outputTokens"`
	Elements     []artifact.VisualElement `json:"elements"`
}

// sameRequest reports whether w answers the request want describes.
func (w storedWindow) sameRequest(want storedWindow) bool {
	return w.LessonID == want.LessonID && w.Version == want.Version && w.Index == want.Index &&
		w.Window == want.Window && w.Model == want.Model && w.FPS == want.FPS &&
		w.Resolution == want.Resolution && w.Prompt == want.Prompt
}

// windowName is where window index (from 1) of a lesson version is kept.
func windowName(lessonID string, version, index int) string {
	return artifact.Prefix(lessonID, version) + fmt.Sprintf("analysis/window-%03d.json", index)
}

// readWindow reads a stored window; found is false when there is none. A
// stored window that does not decode is treated as absent: it is asked
// for again and overwritten.
func (s *Stage) readWindow(ctx context.Context, name string) (storedWindow, bool, error) {
	r, err := s.Storage.Bucket(s.ArtifactsBucket).Object(name).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return storedWindow{}, false, nil
	}
	if err != nil {
		return storedWindow{}, false, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return storedWindow{}, false, err
	}
	var w storedWindow
	if err := json.Unmarshal(b, &w); err != nil {
		return storedWindow{}, false, nil
	}
	return w, true, nil
}

// writeJSON writes v as a JSON object of the artifacts bucket, whole, in
// one request. Writing the same name again replaces it with the same
// content, so the upload is safe to retry, and the client is told so.
func (s *Stage) writeJSON(ctx context.Context, name string, v any, lessonID string, version int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	obj := s.Storage.Bucket(s.ArtifactsBucket).Object(name).Retryer(storage.WithPolicy(storage.RetryAlways))
	w := obj.NewWriter(ctx)
	w.ContentType = "application/json"
	w.ChunkSize = 0 // small: a single request, no resumable session
	w.Metadata = map[string]string{"lessonId": lessonID, "version": strconv.Itoa(version)}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
