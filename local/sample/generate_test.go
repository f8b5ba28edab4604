package sample

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/media"
)

// requireTools fails (never skips) when the machine lacks what the videos
// need: the fix is one script away.
func requireTools(t *testing.T) {
	t.Helper()
	if err := CheckTools(context.Background(), ""); err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe not found in PATH; %s", InstallHint)
	}
}

func TestLoadBundledCourse(t *testing.T) {
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Products) != 2 {
		t.Fatalf("products = %d, want 2", len(cat.Products))
	}
	var modules, videos, quizzes, missing int
	schools := map[string]bool{}
	for _, p := range cat.Products {
		schools[p.School] = true
		modules += len(p.Modules)
	}
	ids := map[string]bool{}
	cat.Pages(func(_ Product, _ Module, pg Page) {
		if ids[pg.PageID] {
			t.Errorf("page id %s appears twice", pg.PageID)
		}
		ids[pg.PageID] = true
		switch {
		case pg.HasVideo():
			videos++
			if pg.Narration == "" || len(pg.Slides) == 0 {
				t.Errorf("lesson %s: no narration or no slides", pg.PageID)
			}
			for i := 1; i < len(pg.Slides); i++ {
				if pg.Slides[i].At <= pg.Slides[i-1].At {
					t.Errorf("lesson %s: slide %d does not start after slide %d", pg.PageID, i, i-1)
				}
			}
		case pg.Type == "QUIZ":
			quizzes++
		case pg.HasMedia && pg.Media == "missing":
			missing++
		}
	})
	if modules < 2 || videos != 5 || quizzes != 1 || missing != 1 {
		t.Fatalf("modules=%d videos=%d quizzes=%d missing=%d; want >=2, 5, 1, 1", modules, videos, quizzes, missing)
	}
	if !schools["programacion"] || !schools["marketing"] {
		t.Fatalf("schools = %v", schools)
	}
}

// oneLesson is a catalog with only the first lesson of the bundled course.
func oneLesson(t *testing.T) (Catalog, Page) {
	t.Helper()
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	p := cat.Products[0]
	m := p.Modules[0]
	pg := m.Pages[0]
	if !pg.HasVideo() {
		t.Fatalf("first page %s has no video", pg.PageID)
	}
	m.Pages = []Page{pg}
	p.Modules = []Module{m}
	return Catalog{Producer: cat.Producer, Products: []Product{p}}, pg
}

type probe struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return p
}

func TestGenerateOneLesson(t *testing.T) {
	requireTools(t)
	cat, pg := oneLesson(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	videos, err := Generate(ctx, cat, dir, GenerateOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(videos) != 1 {
		t.Fatalf("videos = %d, want 1", len(videos))
	}
	v := videos[0]
	if v.PageID != pg.PageID || v.Path != filepath.Join(dir, pg.PageID+".mp4") {
		t.Fatalf("video = %+v", v)
	}
	st, err := os.Stat(v.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != v.Size || v.Size == 0 || v.Size > 2<<20 {
		t.Fatalf("size = %d (file %d), want a small non-empty file", v.Size, st.Size())
	}
	if _, sum, _ := fileMD5(v.Path); sum != v.MD5 || len(v.MD5) != 32 {
		t.Fatalf("md5 = %q, file has %q", v.MD5, sum)
	}

	// The narration on its own, as Generate speaks it.
	wav := filepath.Join(t.TempDir(), "n.wav")
	txt := filepath.Join(t.TempDir(), "n.txt")
	if err := os.WriteFile(txt, []byte(pg.Narration), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("espeak-ng", "-v", "es", "-b", "1", "-f", txt, "-w", wav).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v %s", err, out)
	}
	wavDur, err := strconv.ParseFloat(ffprobe(t, wav).Format.Duration, 64)
	if err != nil {
		t.Fatal(err)
	}
	if wavDur < 10 || wavDur > 60 {
		t.Fatalf("narration lasts %.2fs, want a lesson of 10-60s", wavDur)
	}
	if math.Abs(v.Duration-wavDur) > 0.05 {
		t.Fatalf("Video.Duration = %.3f, narration WAV %.3f", v.Duration, wavDur)
	}

	p := ffprobe(t, v.Path)
	var audio, video int
	for _, s := range p.Streams {
		switch s.CodecType {
		case "audio":
			audio++
			if s.CodecName != "aac" {
				t.Errorf("audio codec %s, want aac", s.CodecName)
			}
		case "video":
			video++
			if s.CodecName != "h264" || s.Width != 640 || s.Height != 360 {
				t.Errorf("video stream %s %dx%d, want h264 640x360", s.CodecName, s.Width, s.Height)
			}
		}
	}
	if audio != 1 || video != 1 || len(p.Streams) != 2 {
		t.Fatalf("streams: %d audio, %d video, %d total; want 1, 1, 2", audio, video, len(p.Streams))
	}
	mp4Dur, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(mp4Dur-wavDur) > 0.3 {
		t.Fatalf("mp4 lasts %.3fs, narration %.3fs", mp4Dur, wavDur)
	}

	// Same course again: a cache hit, the file is not rewritten.
	before := st.ModTime()
	again, err := Generate(ctx, cat, dir, GenerateOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(v.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.ModTime().Equal(before) {
		t.Fatalf("second Generate rewrote %s", v.Path)
	}
	if len(again) != 1 || again[0] != v {
		t.Fatalf("cached video = %+v, want %+v", again, v)
	}

	// A changed slide changes the input hash: the video is regenerated.
	cat.Products[0].Modules[0].Pages[0].Slides[0].Title += " (2)"
	changed, err := Generate(ctx, cat, dir, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if changed[0].MD5 == v.MD5 {
		t.Fatalf("changed slide, same video md5 %s", v.MD5)
	}
}

func TestGenerateRejectsLessonWithoutNarration(t *testing.T) {
	requireTools(t)
	cat, _ := oneLesson(t)
	cat.Products[0].Modules[0].Pages[0].Narration = " "
	if _, err := Generate(context.Background(), cat, t.TempDir(), GenerateOptions{}); err == nil {
		t.Fatal("Generate accepted a lesson without narration")
	}
}

func TestWriteManifestRoundTrip(t *testing.T) {
	videos := []Video{
		{PageID: "pyL1vars001", Path: "/x/pyL1vars001.mp4", Size: 123456, MD5: "0123456789abcdef0123456789abcdef", Duration: 21.5},
		{PageID: "mkL1pers005", Path: "/x/mkL1pers005.mp4", Size: 42, MD5: "fedcba9876543210fedcba9876543210", Duration: 12},
	}
	var buf bytes.Buffer
	link := func(_, file string) string { return "http://127.0.0.1:8089/media/" + file }
	if err := WriteManifest(videos, link, &buf); err != nil {
		t.Fatal(err)
	}
	var m media.Manifest
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("manifest is not JSON: %v\n%s", err, buf.String())
	}
	want := map[string]media.Entry{
		"pyL1vars001": {URL: "http://127.0.0.1:8089/media/pyL1vars001.mp4", Size: 123456, MD5: "0123456789abcdef0123456789abcdef"},
		"mkL1pers005": {URL: "http://127.0.0.1:8089/media/mkL1pers005.mp4", Size: 42, MD5: "fedcba9876543210fedcba9876543210"},
	}
	if len(m.Pages) != len(want) {
		t.Fatalf("pages = %v", m.Pages)
	}
	for id, e := range want {
		if m.Pages[id] != e {
			t.Errorf("page %s = %+v, want %+v", id, m.Pages[id], e)
		}
	}
	// The raw shape the pipeline's manifest reader expects.
	var raw map[string]map[string]map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if got := raw["pages"]["mkL1pers005"]; got["url"] == nil || got["size"] != float64(42) || got["md5"] == nil || len(got) != 3 {
		t.Fatalf("raw entry = %v", got)
	}
}

func TestWavDuration(t *testing.T) {
	// 0.5 s of 16-bit mono silence at 22050 Hz.
	var b bytes.Buffer
	data := make([]byte, 22050)
	b.WriteString("RIFF")
	b.Write(le32(uint32(36 + len(data))))
	b.WriteString("WAVEfmt ")
	b.Write(le32(16))
	b.Write([]byte{1, 0, 1, 0})
	b.Write(le32(22050))
	b.Write(le32(44100))
	b.Write([]byte{2, 0, 16, 0})
	b.WriteString("data")
	b.Write(le32(uint32(len(data))))
	b.Write(data)
	path := filepath.Join(t.TempDir(), "s.wav")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := wavDuration(path)
	if err != nil || math.Abs(d-0.5) > 1e-9 {
		t.Fatalf("wavDuration = %v, %v; want 0.5", d, err)
	}
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func TestFilterEscaping(t *testing.T) {
	got := escapeFilter(escapeOption(`/tmp/a:b'c,d[e];f\g`))
	want := `/tmp/a\\:b\\\'c\,d\[e\]\;f\\\\g`
	if got != want {
		t.Fatalf("escaped = %s, want %s", got, want)
	}
}
