package sample

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/coursekb/pipeline/shared/media"
)

// GeneratorVersion is part of every video's input hash: bump it whenever the
// way videos are drawn or encoded changes, so cached videos are rebuilt.
const GeneratorVersion = "sample-video/1"

// InstallHint is appended to every missing-tool error.
const InstallHint = "run scripts/install-deps.sh (installs ffmpeg, espeak-ng and fonts-dejavu-core)"

// DefaultFontDir is where Debian's fonts-dejavu-core puts DejaVu Sans.
const DefaultFontDir = "/usr/share/fonts/truetype/dejavu"

// Video geometry and encoding: small on purpose.
const (
	videoWidth  = 640
	videoHeight = 360
	videoFPS    = 12
	voice       = "es"
)

// Video is one generated lesson video.
type Video struct {
	PageID   string
	Path     string
	Size     int64
	MD5      string // hex
	Duration float64
}

// GenerateOptions tunes Generate. The zero value is fine.
type GenerateOptions struct {
	// Parallelism is how many lessons are generated at once; 0 means 2.
	Parallelism int
	// Force regenerates every video even when its cache entry matches.
	Force bool
	// FontDir holds DejaVuSans.ttf, DejaVuSans-Bold.ttf and
	// DejaVuSansMono.ttf; "" means DefaultFontDir.
	FontDir string
	// Logf, if set, receives one line per lesson (generated or cached).
	Logf func(format string, args ...any)
}

// CheckTools reports, in one error naming scripts/install-deps.sh, whatever
// Generate needs and this machine lacks: ffmpeg (with libx264, aac and
// drawtext), espeak-ng and the DejaVu fonts.
func CheckTools(ctx context.Context, fontDir string) error {
	if fontDir == "" {
		fontDir = DefaultFontDir
	}
	var missing []string
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		missing = append(missing, "espeak-ng not found in PATH")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missing = append(missing, "ffmpeg not found in PATH")
	} else {
		enc, err1 := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-encoders").Output()
		flt, err2 := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-filters").Output()
		switch {
		case err1 != nil || err2 != nil:
			missing = append(missing, fmt.Sprintf("ffmpeg does not run (%v)", errors.Join(err1, err2)))
		default:
			if !bytes.Contains(enc, []byte(" libx264 ")) {
				missing = append(missing, "ffmpeg lacks the libx264 encoder")
			}
			if !bytes.Contains(enc, []byte(" aac ")) {
				missing = append(missing, "ffmpeg lacks the aac encoder")
			}
			if !bytes.Contains(flt, []byte(" drawtext ")) {
				missing = append(missing, "ffmpeg lacks the drawtext filter")
			}
		}
	}
	for _, f := range []string{fontSans, fontBold, fontMono} {
		if _, err := os.Stat(filepath.Join(fontDir, f)); err != nil {
			missing = append(missing, "font "+filepath.Join(fontDir, f)+" not found")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sample videos: %s; %s", strings.Join(missing, "; "), InstallHint)
	}
	return nil
}

const (
	fontSans = "DejaVuSans.ttf"
	fontBold = "DejaVuSans-Bold.ttf"
	fontMono = "DejaVuSansMono.ttf"
)

// Generate makes <dir>/<pageId>.mp4 for every page of cat with HasVideo: the
// page's slides drawn by ffmpeg over its narration spoken by espeak-ng (the
// Spanish voice), H.264 + AAC, as long as the narration. A video whose
// sidecar (<dir>/<pageId>.gen.json) records the same input hash and MD5 is
// kept as is. Videos come back in catalog order.
func Generate(ctx context.Context, cat Catalog, dir string, opts GenerateOptions) ([]Video, error) {
	if opts.FontDir == "" {
		opts.FontDir = DefaultFontDir
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 2
	}
	if err := CheckTools(ctx, opts.FontDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sample videos: %w", err)
	}
	var pages []Page
	seen := map[string]bool{}
	var bad []string
	cat.Pages(func(_ Product, _ Module, pg Page) {
		if !pg.HasVideo() {
			return
		}
		switch {
		case pg.PageID == "" || strings.ContainsAny(pg.PageID, `/\`) || strings.HasPrefix(pg.PageID, "."):
			bad = append(bad, fmt.Sprintf("page id %q cannot be a file name", pg.PageID))
		case seen[pg.PageID]:
			bad = append(bad, fmt.Sprintf("page %s appears twice", pg.PageID))
		case strings.TrimSpace(pg.Narration) == "":
			bad = append(bad, fmt.Sprintf("page %s has media but no narration", pg.PageID))
		}
		seen[pg.PageID] = true
		pages = append(pages, pg)
	})
	if len(bad) > 0 {
		return nil, fmt.Errorf("sample videos: %s", strings.Join(bad, "; "))
	}

	// errgroup cancels the rest at the first failure and reports that one,
	// not the cancellations it caused.
	videos := make([]Video, len(pages))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallelism)
	for i, pg := range pages {
		g.Go(func() (err error) {
			if videos[i], err = generateOne(gctx, pg, dir, opts); err != nil {
				return fmt.Errorf("page %s: %w", pg.PageID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("sample videos: %w", err)
	}
	return videos, nil
}

// sidecar is what <pageId>.gen.json records about a generated video.
type sidecar struct {
	Inputs   string  `json:"inputs"` // hex SHA-256 of the inputs
	MD5      string  `json:"md5"`
	Size     int64   `json:"size"`
	Duration float64 `json:"duration"`
}

// inputHash covers everything that decides a video's content.
func inputHash(pg Page) string {
	b, _ := json.Marshal(struct {
		Version, Voice string
		W, H, FPS      int
		Narration      string
		Slides         []Slide
	}{GeneratorVersion, voice, videoWidth, videoHeight, videoFPS, pg.Narration, pg.Slides})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func generateOne(ctx context.Context, pg Page, dir string, opts GenerateOptions) (Video, error) {
	out := filepath.Join(dir, pg.PageID+".mp4")
	side := filepath.Join(dir, pg.PageID+".gen.json")
	hash := inputHash(pg)
	v := Video{PageID: pg.PageID, Path: out}

	if !opts.Force {
		if b, err := os.ReadFile(side); err == nil {
			var sc sidecar
			if json.Unmarshal(b, &sc) == nil && sc.Inputs == hash {
				if size, sum, err := fileMD5(out); err == nil && size == sc.Size && sum == sc.MD5 {
					v.Size, v.MD5, v.Duration = size, sum, sc.Duration
					logf(opts, "sample video %s: cached (%.1fs, %d bytes)", pg.PageID, v.Duration, v.Size)
					return v, nil
				}
			}
		}
	}

	work, err := os.MkdirTemp("", "sample-video-")
	if err != nil {
		return v, err
	}
	defer os.RemoveAll(work)

	// Narration: espeak-ng reads UTF-8 text from a file (no shell, no
	// argument quoting) and writes a WAV.
	txt := filepath.Join(work, "narration.txt")
	wav := filepath.Join(work, "narration.wav")
	if err := os.WriteFile(txt, []byte(strings.TrimSpace(pg.Narration)), 0o644); err != nil {
		return v, err
	}
	if err := run(ctx, "espeak-ng", "-v", voice, "-b", "1", "-f", txt, "-w", wav); err != nil {
		return v, err
	}
	dur, err := wavDuration(wav)
	if err != nil {
		return v, fmt.Errorf("narration: %w", err)
	}

	graph, err := slideFilter(pg.Slides, dur, work, opts.FontDir)
	if err != nil {
		return v, err
	}
	script := filepath.Join(work, "filter.txt")
	if err := os.WriteFile(script, []byte(graph), 0o644); err != nil {
		return v, err
	}

	tmp := filepath.Join(dir, "."+pg.PageID+".tmp.mp4")
	defer os.Remove(tmp)
	src := fmt.Sprintf("color=c=0x1e293b:s=%dx%d:r=%d:d=%.3f", videoWidth, videoHeight, videoFPS, dur)
	args := []string{
		"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", src,
		"-i", wav,
		"-filter_complex_script", script,
		"-map", "[v]", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "26",
		"-pix_fmt", "yuv420p", "-g", fmt.Sprint(videoFPS * 10), "-threads", "1",
		"-c:a", "aac", "-b:a", "48k", "-ac", "1",
		"-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
		"-movflags", "+faststart", "-shortest",
		"-f", "mp4", tmp,
	}
	if err := run(ctx, "ffmpeg", args...); err != nil {
		return v, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return v, err
	}
	size, sum, err := fileMD5(out)
	if err != nil {
		return v, err
	}
	v.Size, v.MD5, v.Duration = size, sum, dur
	b, _ := json.MarshalIndent(sidecar{Inputs: hash, MD5: sum, Size: size, Duration: dur}, "", "  ")
	if err := os.WriteFile(side, append(b, '\n'), 0o644); err != nil {
		return v, err
	}
	logf(opts, "sample video %s: generated (%.1fs, %d bytes)", pg.PageID, v.Duration, v.Size)
	return v, nil
}

func logf(opts GenerateOptions, format string, args ...any) {
	if opts.Logf != nil {
		opts.Logf(format, args...)
	}
}

// run runs a tool and folds its stderr into the error.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return nil
}

func fileMD5(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// wavDuration reads a PCM WAV's length in seconds from its header.
func wavDuration(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, fmt.Errorf("%s is not a WAV file", path)
	}
	var byteRate uint32
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		switch id {
		case "fmt ":
			if body+12 > len(b) {
				return 0, fmt.Errorf("%s: short fmt chunk", path)
			}
			byteRate = binary.LittleEndian.Uint32(b[body+8 : body+12])
		case "data":
			if byteRate == 0 {
				return 0, fmt.Errorf("%s: data before fmt", path)
			}
			// A streamed WAV may leave the size unset: use what is there.
			if size <= 0 || body+size > len(b) {
				size = len(b) - body
			}
			if size == 0 {
				return 0, fmt.Errorf("%s: no audio", path)
			}
			return float64(size) / float64(byteRate), nil
		}
		off = body + size + size%2
	}
	return 0, fmt.Errorf("%s: no data chunk", path)
}

// Slide layout, in pixels.
const (
	marginX      = 40
	titleSize    = 30
	textSize     = 22
	codeSize     = 18
	titleWrap    = 34 // characters per line
	textWrap     = 46
	codeMaxLines = 10
)

// slideFilter writes every slide's texts to files in work and returns the
// filtergraph that draws them on input 0 over time, labelled [v].
func slideFilter(slides []Slide, dur float64, work, fontDir string) (string, error) {
	var chain []string
	for i, s := range slides {
		start := s.At
		enable := fmt.Sprintf("gte(t,%g)", start)
		if i+1 < len(slides) {
			enable = fmt.Sprintf("gte(t,%g)*lt(t,%g)", start, slides[i+1].At)
		}
		y := 28
		add := func(kind, text, font string, size int, color string, box bool) error {
			if text == "" {
				return nil
			}
			file := filepath.Join(work, fmt.Sprintf("slide%d-%s.txt", i, kind))
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				return err
			}
			opts := [][2]string{
				{"fontfile", filepath.Join(fontDir, font)},
				{"textfile", file},
				{"expansion", "none"},
				{"fontsize", fmt.Sprint(size)},
				{"fontcolor", color},
				{"x", fmt.Sprint(marginX)},
				{"y", fmt.Sprint(y)},
				{"line_spacing", fmt.Sprint(size / 3)},
				{"enable", enable},
			}
			if box {
				opts = append(opts, [2]string{"box", "1"}, [2]string{"boxcolor", "0x0f172a"}, [2]string{"boxborderw", "12"})
			}
			var kv []string
			for _, o := range opts {
				kv = append(kv, o[0]+"="+escapeFilter(escapeOption(o[1])))
			}
			chain = append(chain, "drawtext="+strings.Join(kv, ":"))
			lines := strings.Count(text, "\n") + 1
			y += lines*(size+size/3) + size
			if box {
				y += 24
			}
			return nil
		}
		if err := add("title", wrap(s.Title, titleWrap), fontBold, titleSize, "white", false); err != nil {
			return "", err
		}
		if err := add("text", wrap(s.Text, textWrap), fontSans, textSize, "0xcbd5e1", false); err != nil {
			return "", err
		}
		if err := add("code", codeBlock(s.Code), fontMono, codeSize, "0x86efac", true); err != nil {
			return "", err
		}
	}
	if len(chain) == 0 {
		return "[0:v]null[v]", nil
	}
	return "[0:v]" + strings.Join(chain, ",") + "[v]", nil
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var lines []string
	for _, para := range strings.Split(strings.TrimSpace(text), "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			switch {
			case line == "":
				line = w
			case len([]rune(line))+1+len([]rune(w)) <= width:
				line += " " + w
			default:
				lines = append(lines, line)
				line = w
			}
		}
		lines = append(lines, line)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// codeBlock keeps code as written (tabs as 4 spaces), without trailing blank
// lines, and at most codeMaxLines lines.
func codeBlock(code string) string {
	code = strings.TrimRight(strings.ReplaceAll(code, "\t", "    "), " \n\r")
	lines := strings.Split(code, "\n")
	if len(lines) > codeMaxLines {
		lines = append(lines[:codeMaxLines-1], "…")
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \r")
	}
	return strings.Join(lines, "\n")
}

// escapeOption escapes a value for a filter's option list (key=value:...).
func escapeOption(s string) string {
	return escapeChars(s, `\':`)
}

// escapeFilter escapes a filter's arguments for the filtergraph description.
func escapeFilter(s string) string {
	return escapeChars(s, `\'[],;`)
}

func escapeChars(s, special string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(special, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriteManifest writes the media manifest (the format shared/media reads) for
// videos, each listed at the link link(pageID, fileName) gives: the media
// host's URL for it, signed when the host requires signatures.
func WriteManifest(videos []Video, link func(pageID, file string) string, w io.Writer) error {
	m := media.Manifest{Pages: make(map[string]media.Entry, len(videos))}
	for _, v := range videos {
		m.Pages[v.PageID] = media.Entry{URL: link(v.PageID, v.PageID+".mp4"), Size: v.Size, MD5: v.MD5}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("write media manifest: %w", err)
	}
	return nil
}
