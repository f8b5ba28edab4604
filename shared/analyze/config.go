package analyze

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/genaiclient"
)

// Config is the analyzer function's configuration, from environment
// variables (config.Load names every bad one at once).
type Config struct {
	config.Common
	// RawBucket holds the lessons' source videos (download.ObjectName);
	// ArtifactsBucket receives analysis.json and the windows paid so far.
	RawBucket       string `env:"RAW_BUCKET,required,notEmpty"`
	ArtifactsBucket string `env:"ARTIFACTS_BUCKET,required,notEmpty"`
	// Enabled switches the analysis off: the stage is then recorded
	// skipped, with the reason, and the process join goes on without it.
	Enabled bool `env:"ANALYSIS_ENABLED" envDefault:"true"`
	// Model is the Gemini model id. gemini-2.5-flash reaches its shutdown
	// in late 2026; gemini-3.5-flash is the generally available Flash model
	// that replaces it. Usage is metered by this id.
	Model string `env:"GEMINI_MODEL" envDefault:"gemini-3.5-flash"`
	// Env holds the Gemini client's location, endpoint and retries
	// (GEMINI_LOCATION, GEMINI_BASE_URL, GEMINI_API_*): what the SDK
	// retries inside one call; what outlasts them is answered 503 and the
	// workflow retries later.
	genaiclient.Env
	// WindowSeconds is the longest span of video one request holds: about
	// 45 minutes of video with audio fit one (DESIGN.md section 5). A
	// frame rate whose frames would overflow the model's input shortens it.
	WindowSeconds int `env:"WINDOW_SECONDS" envDefault:"2700"`
	// FPS is the frame rate the model samples the video at, in (0, 24]:
	// each frame costs tokens (258 at the default resolution).
	FPS float64 `env:"VIDEO_FPS" envDefault:"1"`
	// MediaResolution is how many tokens the model gives each frame: LOW,
	// MEDIUM or HIGH. On Gemini 3 models a video frame is 70 tokens at LOW
	// and MEDIUM and 280 at HIGH (older models: 66 at LOW, 258 otherwise).
	// MEDIUM keeps slide titles and on-screen code legible at a quarter of
	// the default frame's price: at 1 fps it is what keeps analysis near
	// $0.55 a video hour on gemini-3.5-flash instead of $1.57 (README, Cost).
	MediaResolution string `env:"MEDIA_RESOLUTION" envDefault:"MEDIUM"`
	// AnswerRetries is how many more times a window is asked after an
	// answer that is not valid JSON of the schema; then the stage fails.
	AnswerRetries int `env:"ANSWER_RETRIES" envDefault:"1"`
	// Lease is how long a claim on the stage lasts; each window paid for
	// extends it, so a long lesson keeps it while it makes progress.
	Lease time.Duration `env:"ANALYZE_LEASE" envDefault:"30m"`
}

// LoadConfig reads and checks the configuration from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := config.Load(&c); err != nil {
		return c, fmt.Errorf("analyzer: %w", err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("analyzer: %w", err)
	}
	return c, nil
}

// Validate names every value out of range at once.
func (c Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("GEMINI_MODEL is empty"))
	}
	if c.WindowSeconds < 1 {
		errs = append(errs, fmt.Errorf("WINDOW_SECONDS is %d: want a positive number of seconds", c.WindowSeconds))
	}
	if !(c.FPS > 0 && c.FPS <= maxFPS) {
		errs = append(errs, fmt.Errorf("VIDEO_FPS is %g: Gemini samples video at a rate in (0, %d]", c.FPS, maxFPS))
	}
	if _, ok := mediaResolutions[c.MediaResolution]; !ok {
		errs = append(errs, fmt.Errorf("MEDIA_RESOLUTION is %q: want LOW, MEDIUM or HIGH", c.MediaResolution))
	}
	if c.AnswerRetries < 0 {
		errs = append(errs, fmt.Errorf("ANSWER_RETRIES is %d: want 0 or more", c.AnswerRetries))
	}
	if c.Lease <= 0 {
		errs = append(errs, fmt.Errorf("ANALYZE_LEASE is %s: want a positive duration", c.Lease))
	}
	if err := c.Env.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mediaResolutions are the MEDIA_RESOLUTION values and what the SDK sends.
var mediaResolutions = map[string]genai.MediaResolution{
	"LOW":    genai.MediaResolutionLow,
	"MEDIUM": genai.MediaResolutionMedium,
	"HIGH":   genai.MediaResolutionHigh,
}

// maxFPS is the highest frame rate Gemini samples video at.
const maxFPS = 24

// Settings are the stage's own settings from c.
func (c Config) Settings() Settings {
	return Settings{
		RawBucket:       c.RawBucket,
		ArtifactsBucket: c.ArtifactsBucket,
		Enabled:         c.Enabled,
		Model:           c.Model,
		Window:          time.Duration(c.WindowSeconds) * time.Second,
		FPS:             c.FPS,
		Resolution:      mediaResolutions[c.MediaResolution],
		AnswerRetries:   c.AnswerRetries,
		Lease:           c.Lease,
	}
}

// Client is the Gemini client's configuration from c (genaiclient.New).
func (c Config) Client() genaiclient.Config { return c.Env.Config(c.ProjectID) }
