package main

import (
	"context"
	"os"
	"path/filepath"

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
