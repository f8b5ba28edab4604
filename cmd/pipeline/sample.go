package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/stack"
)

// sampleStack is what `run` and `up` share: the sample course with its
// videos (made once, then cached under .cache/sample-media) and a fresh
// working directory for a stack under .cache.
type sampleStack struct {
	catalog  sample.Catalog
	mediaDir string
	videos   []sample.Video
	dir      string
}

func prepareSample(ctx context.Context, dirPrefix string) (*sampleStack, error) {
	root, err := stack.ModuleRoot()
	if err != nil {
		return nil, err
	}
	cat, err := sample.Load()
	if err != nil {
		return nil, err
	}
	mediaDir := filepath.Join(root, ".cache", "sample-media")
	videos, err := sample.Generate(ctx, cat, mediaDir, sample.GenerateOptions{})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, ".cache"), 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), dirPrefix)
	if err != nil {
		return nil, err
	}
	return &sampleStack{catalog: cat, mediaDir: mediaDir, videos: videos, dir: dir}, nil
}

// options returns the stack options for this sample.
func (s *sampleStack) options() stack.Options {
	return stack.Options{Dir: s.dir, Catalog: s.catalog, MediaDir: s.mediaDir, Videos: s.videos}
}

// The outside services a local run uses for real when their variables are
// set in the environment (DESIGN.md section 6): the rest stays local. Cloud
// services (Firestore, Pub/Sub, Storage, Workflows, Speech-to-Text, Gemini)
// stay local in every case: a real recognition or analysis would need the
// video in a real bucket.
var realServices = []struct {
	name string
	vars []string // the first one switches the service to real
}{
	{"Hotmart API", []string{"HOTMART_BASE_URL", "HOTMART_TOKEN_URL", "HOTMART_CLIENT_ID", "HOTMART_CLIENT_SECRET", "HOTMART_BASIC_TOKEN", "HOTMART_REQUESTS_PER_MINUTE"}},
	{"course catalog", []string{"COURSE_CATALOG", "LESSON_PAGE_TYPES", "DETECTION_BUDGET"}},
	{"media source", []string{"MEDIA_MANIFEST_URI", "MEDIA_INGEST_PREFIX"}},
	{"OpenAI", []string{"OPENAI_API_KEY", "OPENAI_BASE_URL"}},
}

// withRealServices sets, in opts.Env, the variables of every service whose
// switch is in the environment, so the functions use what the user
// configured instead of the stack's local servers, and says which services
// are real and which are local.
func withRealServices(opts *stack.Options, getenv func(string) string) []string {
	if opts.Env == nil {
		opts.Env = map[string]string{}
	}
	var lines []string
	for _, s := range realServices {
		if getenv(s.vars[0]) == "" {
			lines = append(lines, fmt.Sprintf("%-15s local", s.name))
			continue
		}
		for _, v := range s.vars {
			if val := getenv(v); val != "" {
				opts.Env[v] = val
			}
		}
		shown := s.vars[0]
		if !strings.Contains(shown, "KEY") && !strings.Contains(shown, "SECRET") {
			shown += "=" + redactURL(getenv(s.vars[0]))
		}
		lines = append(lines, fmt.Sprintf("%-15s REAL (%s)", s.name, shown))
	}
	if getenv("HOTMART_BASE_URL") != "" && getenv("COURSE_CATALOG") == "" {
		lines = append(lines, "warning: a real Hotmart with the sample's course catalog: its product ids will not match the account; set COURSE_CATALOG")
	}
	return lines
}

// redactURL keeps a URL's host and path, not its query (a signed manifest).
func redactURL(v string) string {
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		return v[:i] + "?…"
	}
	if len(v) > 80 {
		return v[:77] + "…"
	}
	return v
}
