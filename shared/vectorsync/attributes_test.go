package vectorsync_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// Attributes stay within OpenAI's limits whatever the lesson holds: a title
// is cut at a character, categories are kept whole, as many as fit, best
// first, and empty values are left out.
func TestAttributesStayWithinOpenAIsLimits(t *testing.T) {
	t.Parallel()
	l := lessonstate.Lesson{ID: "RE4zW6m6el", School: "diseño", CourseID: "4100001", ModuleID: "2z7ramxejw",
		Title: strings.Repeat("á", 600)}
	var cats []artifact.Category
	for i := range 100 {
		cats = append(cats, artifact.Category{ID: fmt.Sprintf("categoría-%02d", i)})
	}
	cats = append([]artifact.Category{{ID: "con,coma"}, {ID: ""}, {ID: "categoría-00"}}, cats...)
	a, err := vectorsync.Attributes(l, 3, artifact.Enrichment{Categories: cats})
	if err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(a["title"].(string)); n != 512 {
		t.Errorf("title has %d characters", n)
	}
	got := a["categories"].(string)
	if n := utf8.RuneCountInString(got); n > 512 || !strings.HasPrefix(got, "categoría-00,categoría-01,") || strings.Contains(got, "coma") {
		t.Errorf("categories (%d characters) = %q", n, got)
	}
	if ids := strings.Split(got, ","); ids[len(ids)-1] != fmt.Sprintf("categoría-%02d", len(ids)-1) {
		t.Errorf("a category was cut: %q", ids[len(ids)-1])
	}
	if a["version"] != float64(3) || a["lesson"] != "RE4zW6m6el" || a["school"] != "diseño" {
		t.Errorf("attributes = %v", a)
	}
	if _, ok := a["level"]; ok {
		t.Errorf("an empty level was sent: %v", a)
	}
}

func TestValidateAttributesNamesEveryProblem(t *testing.T) {
	t.Parallel()
	a := map[string]any{strings.Repeat("k", 65): "v", "long": strings.Repeat("x", 513), "list": []string{"a"}}
	for i := range 14 {
		a[fmt.Sprintf("k%d", i)] = float64(i)
	}
	err := vectorsync.ValidateAttributes(a)
	for _, want := range []string{"17 keys", "longer than 64", "long is 513 characters", "list is a []string"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if err := vectorsync.ValidateAttributes(map[string]any{"ok": true, "n": 1.5, "s": "x"}); err != nil {
		t.Error(err)
	}
}

func TestFileNames(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"RE4zW6m6el", "a-v2", "x_y-z"} {
		name := vectorsync.FileName(id, 12)
		got, v, ok := vectorsync.ParseFileName(name)
		if !ok || got != id || v != 12 {
			t.Errorf("%s read back as %q v%d %v", name, got, v, ok)
		}
	}
	for _, name := range []string{"lesson-a-v0.md", "lesson-a.md", "x-lesson-a-v1.md", "lesson-a-v1.jsonl", "lesson-a/b-v1.md", "lesson--v1.md"} {
		if id, v, ok := vectorsync.ParseFileName(name); ok {
			t.Errorf("%s read as %q v%d", name, id, v)
		}
	}
}

// The chunk options' defaults are chunk.DefaultOptions, and the
// configuration names every bad variable at once.
func TestConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"GOOGLE_CLOUD_PROJECT": "p", "ARTIFACTS_BUCKET": "a", "OPENAI_API_KEY": "k"}
	var c vectorsync.Config
	if err := config.LoadFrom(&c, base); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Chunking() != chunk.DefaultOptions() || c.IndexTimeout != 10*time.Minute || c.Lease != 15*time.Minute {
		t.Errorf("defaults = %+v", c)
	}
	bad := map[string]string{"CHUNK_MAX_TOKENS": "50", "SYNC_LEASE": "1m", "OPENAI_BASE_URL": "localhost:8080"}
	for k, v := range base {
		bad[k] = v
	}
	c = vectorsync.Config{}
	if err := config.LoadFrom(&c, bad); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	for _, want := range []string{"CHUNK_MAX_TOKENS 50", "SYNC_LEASE 1m0s must outlast", "OPENAI_BASE_URL \"localhost:8080\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if err := config.LoadFrom(&vectorsync.Config{}, map[string]string{"GOOGLE_CLOUD_PROJECT": "p"}); err == nil ||
		!strings.Contains(err.Error(), "ARTIFACTS_BUCKET is not set") || !strings.Contains(err.Error(), "OPENAI_API_KEY is not set") {
		t.Errorf("missing variables: %v", err)
	}
}
