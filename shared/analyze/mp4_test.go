package analyze_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/analyze"
	"github.com/coursekb/pipeline/shared/failure"
)

// The length read from the header boxes is the one ffprobe reports, with
// the moov box after the media (as ffmpeg writes by default) or before it
// (faststart); a fragmented file without a declared length is refused,
// for good, saying why.
func TestMP4DurationOfRealVideos(t *testing.T) {
	t.Parallel()
	src := mustVideo(t).Path
	dir := t.TempDir()
	faststart := filepath.Join(dir, "faststart.mp4")
	fragmented := filepath.Join(dir, "fragmented.mp4")
	ffmpeg(t, "-i", src, "-c", "copy", "-movflags", "+faststart", faststart)
	ffmpeg(t, "-i", src, "-c", "copy", "-movflags", "frag_keyframe+empty_moov", fragmented)

	want := probe(t, src)
	for _, path := range []string{src, faststart} {
		got, err := analyze.MP4Duration(readerOf(t, path))
		if err != nil || math.Abs(got-want) > 0.001 {
			t.Errorf("%s: %g s, %v; ffprobe says %g s", filepath.Base(path), got, err, want)
		}
	}
	_, err := analyze.MP4Duration(readerOf(t, fragmented))
	if !errors.Is(err, analyze.ErrNotMP4) || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "fragmented MP4") {
		t.Errorf("fragmented: %v, want a permanent ErrNotMP4 naming the cause", err)
	}
	_, err = analyze.MP4Duration(bytes.NewReader([]byte("not a video at all, just text")), 29)
	if !errors.Is(err, analyze.ErrNotMP4) || !failure.IsPermanent(err) {
		t.Errorf("text: %v, want a permanent ErrNotMP4", err)
	}
}

func readerOf(t *testing.T, path string) (*bytes.Reader, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b), int64(len(b))
}

func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ffmpeg", append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

func probe(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
