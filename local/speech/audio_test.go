package speech

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Durations come from the audio itself, for files ffmpeg writes the way the
// transcriber may: to a file, or to a pipe (no totals in the headers).
func TestProbeAudio(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tone := []string{"-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000", "-ac", "1"}
	cases := []struct {
		name   string
		args   []string // ffmpeg output arguments; "-" means stdout
		format string
		want   time.Duration
		tol    time.Duration
	}{
		{"flac file", []string{"-t", "2.5", "-c:a", "flac", "a.flac"}, "flac", 2500 * time.Millisecond, time.Millisecond},
		{"flac pipe", []string{"-t", "2.5", "-c:a", "flac", "-f", "flac", "-"}, "flac", 2500 * time.Millisecond, time.Millisecond},
		{"long flac pipe", []string{"-t", "95.3", "-c:a", "flac", "-f", "flac", "-"}, "flac", 95300 * time.Millisecond, time.Millisecond},
		{"flac 44.1k pipe", []string{"-t", "3.2", "-ar", "44100", "-c:a", "flac", "-f", "flac", "-"}, "flac", 3200 * time.Millisecond, time.Millisecond},
		{"ogg opus", []string{"-t", "2.5", "-c:a", "libopus", "a.ogg"}, "ogg-opus", 2500 * time.Millisecond, 25 * time.Millisecond},
		{"long ogg opus pipe", []string{"-t", "80", "-c:a", "libopus", "-b:a", "64k", "-f", "ogg", "-"}, "ogg-opus", 80 * time.Second, 25 * time.Millisecond},
		{"wav file", []string{"-t", "1.75", "a.wav"}, "wav", 1750 * time.Millisecond, time.Millisecond},
		{"wav pipe", []string{"-t", "1.75", "-f", "wav", "-"}, "wav", 1750 * time.Millisecond, time.Millisecond},
	}
	for _, c := range cases {
		args := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, tone...)
		args = append(args, c.args...)
		cmd := exec.Command("ffmpeg", args...)
		cmd.Dir = dir
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: ffmpeg: %v: %s", c.name, err, stderr.Bytes())
		}
		data := out.Bytes()
		if last := c.args[len(c.args)-1]; last != "-" {
			var err error
			if data, err = os.ReadFile(filepath.Join(dir, last)); err != nil {
				t.Fatal(err)
			}
		}
		head, tail := data, data
		if len(data) > 2*probeBytes {
			head, tail = data[:probeBytes], data[len(data)-probeBytes:]
		}
		info, err := probeAudio(head, tail, int64(len(data)))
		if err != nil {
			t.Errorf("%s (%d bytes): %v", c.name, len(data), err)
			continue
		}
		if info.Format != c.format || (info.Duration-c.want).Abs() > c.tol {
			t.Errorf("%s: %s %v, want %s %v", c.name, info.Format, info.Duration, c.format, c.want)
		}
	}
}

func TestProbeAudioRefuses(t *testing.T) {
	t.Parallel()
	for name, b := range map[string][]byte{
		"text":             []byte("hello, this is not audio at all"),
		"empty":            nil,
		"flac header only": []byte("fLaC\x00\x00\x00\x22"),
		"ogg not opus":     append([]byte("OggS"), make([]byte, 40)...),
		"riff not wave":    []byte("RIFF\x00\x00\x00\x00AVI LIST"),
	} {
		if info, err := probeAudio(b, b, int64(len(b))); err == nil {
			t.Errorf("%s: read as %v", name, info)
		}
	}
}
