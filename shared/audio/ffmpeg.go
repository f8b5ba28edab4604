package audio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
)

// CheckTools reports, in one error, which of ffmpeg (with its FLAC encoder)
// and ffprobe this machine lacks. Functions check at start-up: the
// transcriber needs the google-24-full base image, which has both.
func CheckTools(ctx context.Context) error {
	var missing []string
	if _, err := exec.LookPath("ffprobe"); err != nil {
		missing = append(missing, "ffprobe is not in PATH")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missing = append(missing, "ffmpeg is not in PATH")
	} else {
		out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-encoders").Output()
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("ffmpeg does not run (%v)", err))
		case !bytes.Contains(out, []byte(" flac ")):
			missing = append(missing, "ffmpeg lacks the flac encoder")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("audio extraction: %s (the function needs the google-24-full base image)", strings.Join(missing, "; "))
	}
	return nil
}

// stderrKeep bounds how much of a tool's stderr is kept for its error
// message: the end, where the reason is.
const stderrKeep = 4 << 10

// waitDelay bounds the wait for a killed tool's pipes to close.
const waitDelay = 5 * time.Second

// run runs a tool whose stdout consume reads to the end. The tool is killed
// when ctx ends or consume fails. Its failure is retryable when the source
// server met a Cloud Storage error or ctx ended (the tool could not read, or
// was stopped), and permanent otherwise: the tool read what it asked for and
// could not make sense of it.
func (x *Extractor) run(ctx context.Context, srv *objectServer, tool string, args []string, consume func(io.Reader) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, tool, args...)
	cmd.WaitDelay = waitDelay
	stderr := &tail{max: stderrKeep}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%s: %w", tool, err)
	}
	if err := cmd.Start(); err != nil {
		return failure.Retryablef("start %s: %w", tool, err)
	}
	cerr := consume(stdout)
	if cerr != nil {
		cancel() // the tool would block on a full pipe
	} else {
		// Drain: a tool that writes more than consume reads must not block.
		_, _ = io.Copy(io.Discard, stdout)
	}
	werr := cmd.Wait()
	switch {
	case cerr != nil:
		return cerr
	case werr == nil:
		return nil
	case ctx.Err() != nil:
		return failure.Retryablef("%s stopped: %w", tool, ctx.Err())
	}
	msg := stderr.String()
	if srv.url != "" {
		msg = strings.ReplaceAll(msg, srv.url, srv.name)
	}
	if serr := srv.failure(); serr != nil {
		return failure.Retryablef("%s could not read the source video: %w (%s)", tool, serr, msg)
	}
	var exit *exec.ExitError
	if errors.As(werr, &exit) && !exit.Exited() {
		// Killed by a signal we did not send (out of memory, the
		// instance shutting down): another attempt may pass.
		return failure.Retryablef("%s: %v: %s", tool, werr, msg)
	}
	return failure.Permanentf("%s: %v: %s", tool, werr, msg)
}

// mediaInfo is what probing a source found.
type mediaInfo struct {
	duration float64
}

// probeTimeout bounds reading a source's headers: ffprobe reads little,
// and a source that does not answer should fail the attempt, not hold it.
const probeTimeout = 2 * time.Minute

// probe reads the source's duration and whether it has audio.
func (x *Extractor) probe(ctx context.Context, srv *objectServer) (mediaInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var out bytes.Buffer
	args := []string{
		"-hide_banner", "-v", "error", "-print_format", "json",
		"-show_entries", "format=duration,format_name:stream=index,codec_type,duration",
		"-i", srv.url,
	}
	err := x.run(ctx, srv, x.opts.FFprobe, args, func(r io.Reader) error {
		_, err := io.Copy(&out, io.LimitReader(r, 1<<20))
		return err
	})
	if err != nil {
		if failure.IsPermanent(err) {
			return mediaInfo{}, failure.Permanentf("the source video cannot be read as media: %w", err)
		}
		return mediaInfo{}, err
	}
	var probed struct {
		Format struct {
			Duration string `json:"duration"`
			Name     string `json:"format_name"`
		} `json:"format"`
		Streams []struct {
			CodecType string `json:"codec_type"`
			Duration  string `json:"duration"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out.Bytes(), &probed); err != nil {
		return mediaInfo{}, failure.Permanentf("ffprobe output is not JSON: %w", err)
	}
	audio := false
	var d float64
	for _, s := range probed.Streams {
		if s.CodecType == "audio" {
			audio = true
			d, _ = strconv.ParseFloat(s.Duration, 64)
			break
		}
	}
	if !audio {
		return mediaInfo{}, &failure.Permanent{Err: fmt.Errorf("%w (ffprobe found %d stream(s) in %s, none audio)", ErrNoAudio, len(probed.Streams), probed.Format.Name)}
	}
	if !(d > 0) {
		d, _ = strconv.ParseFloat(probed.Format.Duration, 64)
	}
	if !(d > 0) {
		return mediaInfo{}, failure.Permanentf("the source video's duration is unknown (%s)", probed.Format.Name)
	}
	return mediaInfo{duration: d}, nil
}

// tail keeps the last max bytes written to it, trimmed, for error messages.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "no message"
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
