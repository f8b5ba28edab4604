// Command audioextract runs the transcriber's audio extraction
// (shared/audio) once, in a process of its own, so that the benchmark in
// bench/audio_test.go measures its time and peak memory apart from the
// storage server's. It reads the source from Cloud Storage
// (STORAGE_EMULATOR_HOST points it at a local server) and prints one JSON
// line: seconds, segments, bytes, sha256, maxRssKiB (this process) and
// childMaxRssKiB (the largest ffmpeg or ffprobe it ran).
//
// Peaks are read from /proc (VmHWM), not getrusage: Linux carries the
// parent's peak into ru_maxrss across the exec of a process started with
// CLONE_VM (as Go starts them), so a child of a big test binary would report
// the test binary's memory.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/audio"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "audioextract:", err)
		os.Exit(1)
	}
}

func run() error {
	bucket := flag.String("bucket", "raw", "bucket of the source video and the segments")
	object := flag.String("object", "", "the source video's object name")
	prefix := flag.String("prefix", "", "where the segments go (default: next to the source, audio/)")
	segment := flag.Float64("segment", 19*60, "longest segment, seconds")
	flag.Parse()
	if *object == "" {
		return errors.New("--object is required")
	}
	if *prefix == "" {
		*prefix = *object + ".audio/"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := storage.NewClient(ctx) // honours STORAGE_EMULATOR_HOST
	if err != nil {
		return fmt.Errorf("storage client: %w", err)
	}
	defer st.Close()
	x, err := audio.New(st, audio.Options{SegmentSeconds: *segment})
	if err != nil {
		return err
	}
	children := watchChildren(ctx)
	start := time.Now()
	res, err := x.Extract(ctx, audio.Source{Bucket: *bucket, Object: *object},
		audio.Dest{Bucket: *bucket, Prefix: *prefix, Metadata: map[string]string{audio.MetaLessonID: "bench", audio.MetaVersion: "1"}})
	out := map[string]any{
		"seconds":         time.Since(start).Seconds(),
		"segments":        len(res.Segments),
		"bytes":           res.Bytes,
		"sha256":          res.SHA256,
		"durationSeconds": res.DurationSeconds,
		"maxRssKiB":       hwmKiB("self"),
		"childMaxRssKiB":  children(),
	}
	if err != nil {
		out["error"] = err.Error()
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	return err
}

// hwmKiB is a process's peak resident set since its exec (VmHWM), KiB.
func hwmKiB(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// watchChildren samples the peak RSS of this process's children (the
// ffmpeg and ffprobe runs) every 20 ms until ctx ends, and returns a
// function giving the largest seen.
func watchChildren(ctx context.Context) func() int64 {
	var mu sync.Mutex
	var peak int64
	self := strconv.Itoa(os.Getpid())
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
				if err != nil {
					continue
				}
				// pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
				rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
				f := strings.Fields(rest)
				if len(f) < 2 || f[1] != self {
					continue
				}
				if kib := hwmKiB(e.Name()); kib > 0 {
					mu.Lock()
					peak = max(peak, kib)
					mu.Unlock()
				}
			}
		}
	}()
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
