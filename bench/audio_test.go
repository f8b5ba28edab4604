package bench

// BenchmarkAudioExtraction measures the transcriber's audio extraction and
// segmentation (shared/audio) of a 60-minute lesson video:
// bench/audioextract runs it in a process of its own against a local Cloud
// Storage server in this process (memory-backed), and `ffmpeg -i <file> -f
// null -` decoding the same video from local disk is the baseline, in the
// same run.
//
// Run: go test -run '^$' -bench AudioExtraction -benchtime 1x -timeout 30m ./bench/
//
// Metrics:
//
//	baseline_s, extract_s   median of 3 alternating rounds
//	extract_ratio           median of the rounds' extract / baseline (the
//	                        extraction decodes the audio only, but reads
//	                        the video over HTTP range reads and encodes and
//	                        uploads FLAC)
//	rss_MiB                 the extraction process's peak RSS: it must hold
//	                        neither the video nor the audio (video_MiB,
//	                        audio_MiB)
//	ffmpeg_rss_MiB          the largest ffmpeg it ran (sampled every 20 ms)
//
// The video (320x180 test pattern at 10 fps, H.264, and 48 kHz stereo AAC
// of tone and pink noise, its index at the end as a plain ffmpeg write
// leaves it) is made once and kept in .cache/bench-audio.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/gcs"
)

const (
	audioBenchMinutes = 60
	audioBenchObject  = "lessons/bench/v1/source.mp4"
	audioBenchRounds  = 3
)

// extraction is what bench/audioextract reports.
type extraction struct {
	Seconds         float64 `json:"seconds"`
	Segments        int     `json:"segments"`
	Bytes           int64   `json:"bytes"`
	SHA256          string  `json:"sha256"`
	DurationSeconds float64 `json:"durationSeconds"`
	MaxRssKiB       int64   `json:"maxRssKiB"`
	ChildMaxRssKiB  int64   `json:"childMaxRssKiB"`
	Error           string  `json:"error"`
}

func BenchmarkAudioExtraction(b *testing.B) {
	video := benchVideo(b)
	st, err := os.Stat(video)
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "audioextract")
	build := exec.Command("go", "build", "-o", bin, "github.com/coursekb/pipeline/bench/audioextract")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("build audioextract: %v", err)
	}
	srv, err := gcs.Start(gcs.Options{Buckets: []string{"raw"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	client := srv.Client()
	b.Cleanup(func() { client.Close() })
	f, err := os.Open(video)
	if err != nil {
		b.Fatal(err)
	}
	w := client.Bucket("raw").Object(audioBenchObject).NewWriter(context.Background())
	w.ContentType = "video/mp4"
	w.ChunkSize = 8 << 20
	if _, err := io.Copy(w, f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if err := w.Close(); err != nil {
		b.Fatalf("upload the video: %v", err)
	}

	extract := func(round int) extraction {
		start := time.Now()
		cmd := exec.Command(bin, "--bucket", "raw", "--object", audioBenchObject,
			"--prefix", fmt.Sprintf("lessons/bench/v1/audio-%d/", round))
		cmd.Env = append(os.Environ(), "STORAGE_EMULATOR_HOST="+srv.Host())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		wall := time.Since(start).Seconds()
		var res extraction
		if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); jerr != nil || err != nil || res.Error != "" {
			b.Fatalf("extraction: %v %s\nstdout: %s\nstderr: %s", err, res.Error, stdout.Bytes(), stderr.Bytes())
		}
		res.Seconds = wall // the whole process, start-up included
		return res
	}
	baseline := func() float64 {
		start := time.Now()
		out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", video, "-f", "null", "-").CombinedOutput()
		if err != nil {
			b.Fatalf("baseline: %v: %s", err, out)
		}
		return time.Since(start).Seconds()
	}

	// Warm up: the page cache holds the video for both, and the server's
	// heap has grown once.
	baseline()
	b.ResetTimer()
	for range b.N {
		var bases, extracts, ratios []float64
		var last extraction
		var rss, childRSS float64
		b.Logf("%-6s %11s %10s %7s %9s %10s", "round", "baseline s", "extract s", "ratio", "rss MiB", "ffmpeg MiB")
		for i := range audioBenchRounds {
			base := baseline()
			ex := extract(i)
			if last.SHA256 != "" && ex.SHA256 != last.SHA256 {
				b.Errorf("round %d hashed the same audio %s, before %s", i+1, ex.SHA256, last.SHA256)
			}
			last = ex
			bases, extracts, ratios = append(bases, base), append(extracts, ex.Seconds), append(ratios, ex.Seconds/base)
			rss = max(rss, float64(ex.MaxRssKiB)/1024)
			childRSS = max(childRSS, float64(ex.ChildMaxRssKiB)/1024)
			b.Logf("%-6d %11.2f %10.2f %7.2f %9.1f %10.1f", i+1, base, ex.Seconds, ex.Seconds/base,
				float64(ex.MaxRssKiB)/1024, float64(ex.ChildMaxRssKiB)/1024)
		}
		videoMiB, audioMiB := float64(st.Size())/(1<<20), float64(last.Bytes)/(1<<20)
		b.Logf("median %11.2f %10.2f %7.2f   (%d segments, %.0f s of audio; video %.1f MiB, audio %.1f MiB)",
			audioMedian(bases), audioMedian(extracts), audioMedian(ratios), last.Segments, last.DurationSeconds, videoMiB, audioMiB)
		if rss >= audioMiB || rss >= videoMiB {
			b.Errorf("peak RSS %.1f MiB: the extraction holds the video (%.1f MiB) or the audio (%.1f MiB)", rss, videoMiB, audioMiB)
		}
		b.ReportMetric(audioMedian(bases), "baseline_s")
		b.ReportMetric(audioMedian(extracts), "extract_s")
		b.ReportMetric(audioMedian(ratios), "extract_ratio")
		b.ReportMetric(rss, "rss_MiB")
		b.ReportMetric(childRSS, "ffmpeg_rss_MiB")
		b.ReportMetric(videoMiB, "video_MiB")
		b.ReportMetric(audioMiB, "audio_MiB")
	}
}

// benchVideo makes the 60-minute video once and keeps it in .cache.
func benchVideo(b *testing.B) string {
	b.Helper()
	root, err := audioModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, ".cache", "bench-audio")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, fmt.Sprintf("lesson-%dmin.mp4", audioBenchMinutes))
	if d, err := probeDuration(out); err == nil && d > audioBenchMinutes*60-1 {
		return out
	}
	b.Logf("making a %d-minute test video in %s (once)", audioBenchMinutes, dir)
	tmp := out + ".tmp"
	defer os.Remove(tmp)
	secs := strconv.Itoa(audioBenchMinutes * 60)
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size=320x180:rate=10:duration="+secs,
		"-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000:duration="+secs,
		"-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.05:sample_rate=48000:duration="+secs,
		"-filter_complex", "[1:a][2:a]amix=inputs=2,aformat=channel_layouts=stereo[a]",
		"-map", "0:v", "-map", "[a]",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "100",
		"-c:a", "aac", "-b:a", "96k", "-f", "mp4", tmp)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("make the test video: %v: %s", err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		b.Fatal(err)
	}
	return out
}

func probeDuration(path string) (float64, error) {
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func audioModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/coursekb/pipeline\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the pipeline module")
		}
		dir = parent
	}
}

func audioMedian(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
