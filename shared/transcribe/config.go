package transcribe

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/coursekb/pipeline/shared/config"
)

// Config is the transcriber's configuration, from the environment.
type Config struct {
	config.Common
	RawBucket       string `env:"RAW_BUCKET,required"`
	ArtifactsBucket string `env:"ARTIFACTS_BUCKET,required"`
	// Location is where the primary model runs (chirp_3: us or eu);
	// FallbackLocation where the fallback model does (chirp_2 exists only
	// in us-central1, europe-west4 and asia-southeast1, not in us).
	Location         string `env:"SPEECH_LOCATION" envDefault:"us"`
	FallbackLocation string `env:"SPEECH_FALLBACK_LOCATION" envDefault:"us-central1"`
	// Endpoint overrides the regional endpoints ({location}-speech.googleapis.com:443)
	// for every location: host:port. A loopback host (the local speech
	// server) is spoken to over plain gRPC without credentials.
	Endpoint string `env:"SPEECH_ENDPOINT"`
	Model    string `env:"SPEECH_MODEL" envDefault:"chirp_3"`
	// FallbackModel "none" goes without a fallback (an empty variable
	// means the default).
	FallbackModel string `env:"SPEECH_FALLBACK_MODEL" envDefault:"chirp_2"`
	// MinConfidence: a transcript by the primary model below it is made
	// again, once, with the fallback model; the more confident one is kept.
	MinConfidence float64 `env:"MIN_CONFIDENCE" envDefault:"0.6"`
	// SegmentSeconds is the longest audio segment; 0 means the longest both
	// models give word timestamps for (chirp_3: 19 min, under its 20; chirp_2:
	// just under the 8 h batch limit).
	SegmentSeconds float64 `env:"SEGMENT_SECONDS" envDefault:"0"`
	// ProcessingStrategy is STANDARD or DYNAMIC_BATCHING (cheaper, done
	// within 24 h: the workflow's polling window must cover that).
	ProcessingStrategy string `env:"PROCESSING_STRATEGY" envDefault:"STANDARD"`
	// Language is the BCP-47 code of a course's speech unless
	// CourseLanguages ({"<courseId>":"pt-BR"}) names another.
	Language        string `env:"LANGUAGE" envDefault:"es-ES"`
	CourseLanguages string `env:"COURSE_LANGUAGES"`
	// ExtractLease holds the stage while a start extracts audio (it must
	// outlast the longest extraction: the function's timeout is a bound);
	// Lease once a recognition runs, renewed at each step. 0 means 2 h, or
	// 25 h with DYNAMIC_BATCHING. A start finding the lease live answers
	// the running recognition; one finding it expired resumes it if it
	// still runs.
	ExtractLease time.Duration `env:"TRANSCRIBE_EXTRACT_LEASE" envDefault:"30m"`
	Lease        time.Duration `env:"TRANSCRIBE_LEASE" envDefault:"0"`
}

// Strategies.
const (
	StrategyStandard = "STANDARD"
	StrategyDynamic  = "DYNAMIC_BATCHING"
)

// LoadConfig reads the configuration from the environment and checks it.
func LoadConfig() (Config, error) {
	var c Config
	if err := config.Load(&c); err != nil {
		return c, fmt.Errorf("transcriber: %w", err)
	}
	return c.settled()
}

// LoadConfigFrom is LoadConfig over vars instead of the environment.
func LoadConfigFrom(vars map[string]string) (Config, error) {
	var c Config
	if err := config.LoadFrom(&c, vars); err != nil {
		return c, fmt.Errorf("transcriber: %w", err)
	}
	return c.settled()
}

// NoFallback is SPEECH_FALLBACK_MODEL's value for no fallback.
const NoFallback = "none"

// settled reads the loaded values' special forms, and validates.
func (c Config) settled() (Config, error) {
	if strings.EqualFold(c.FallbackModel, NoFallback) {
		c.FallbackModel = ""
	}
	return c, c.Validate()
}

// Validate names every setting that is wrong, in one error.
func (c Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("SPEECH_MODEL is empty"))
	}
	if c.Model == c.FallbackModel && c.Location == c.FallbackLocation {
		errs = append(errs, fmt.Errorf("SPEECH_FALLBACK_MODEL is SPEECH_MODEL (%s) in the same location: set it to %q to go without a fallback", c.Model, NoFallback))
	}
	if !(c.MinConfidence >= 0 && c.MinConfidence <= 1) {
		errs = append(errs, fmt.Errorf("MIN_CONFIDENCE %v is not within 0..1", c.MinConfidence))
	}
	if c.SegmentSeconds < 0 || math.IsNaN(c.SegmentSeconds) {
		errs = append(errs, fmt.Errorf("SEGMENT_SECONDS %v is negative", c.SegmentSeconds))
	}
	for _, m := range c.models() {
		if lim := maxSegment(m); c.SegmentSeconds > lim.Seconds() {
			errs = append(errs, fmt.Errorf("SEGMENT_SECONDS %v is over what %s takes with word timestamps (%s)", c.SegmentSeconds, m, lim))
		}
	}
	if c.SegmentSeconds > 0 && c.SegmentSeconds < 1 {
		errs = append(errs, fmt.Errorf("SEGMENT_SECONDS %v is under a second", c.SegmentSeconds))
	}
	switch c.ProcessingStrategy {
	case StrategyStandard, StrategyDynamic:
	default:
		errs = append(errs, fmt.Errorf("PROCESSING_STRATEGY %q is not %s or %s", c.ProcessingStrategy, StrategyStandard, StrategyDynamic))
	}
	if !validLanguage(c.Language) {
		errs = append(errs, fmt.Errorf("LANGUAGE %q is not a BCP-47 code like es-ES", c.Language))
	}
	if _, err := c.courseLanguages(); err != nil {
		errs = append(errs, err)
	}
	if c.ExtractLease <= 0 || c.Lease < 0 {
		errs = append(errs, fmt.Errorf("TRANSCRIBE_EXTRACT_LEASE %s must be positive and TRANSCRIBE_LEASE %s not negative", c.ExtractLease, c.Lease))
	}
	if c.Location == "" || (c.FallbackModel != "" && c.FallbackLocation == "") {
		errs = append(errs, errors.New("SPEECH_LOCATION and SPEECH_FALLBACK_LOCATION (with a fallback model) must be set"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transcriber configuration: %w", err)
	}
	return nil
}

// models are the models a recognition may use, primary first.
func (c Config) models() []string {
	if c.FallbackModel == "" {
		return []string{c.Model}
	}
	return []string{c.Model, c.FallbackModel}
}

// Segment is the longest segment to cut: what every model in use takes.
func (c Config) Segment() float64 {
	if c.SegmentSeconds > 0 {
		return c.SegmentSeconds
	}
	s := math.Inf(1)
	for _, m := range c.models() {
		s = math.Min(s, maxSegment(m).Seconds())
	}
	return s
}

// RecognitionLease is how long the stage is held while a recognition runs.
func (c Config) RecognitionLease() time.Duration {
	switch {
	case c.Lease > 0:
		return c.Lease
	case c.ProcessingStrategy == StrategyDynamic:
		return 25 * time.Hour // dynamic batching answers within 24 h
	}
	return 2 * time.Hour
}

// LanguageOf is the language a course's lessons are recognized in.
func (c Config) LanguageOf(courseID string) string {
	m, _ := c.courseLanguages()
	if l, ok := m[courseID]; ok {
		return NormalizeLanguage(l)
	}
	return NormalizeLanguage(c.Language)
}

func (c Config) courseLanguages() (map[string]string, error) {
	if strings.TrimSpace(c.CourseLanguages) == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(c.CourseLanguages), &m); err != nil {
		return nil, fmt.Errorf(`COURSE_LANGUAGES is not a JSON object {"<courseId>":"pt-BR"}: %w`, err)
	}
	var bad []string
	for course, l := range m {
		if !validLanguage(l) {
			bad = append(bad, fmt.Sprintf("%s: %q", course, l))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("COURSE_LANGUAGES has codes that are not BCP-47: %s", strings.Join(bad, ", "))
	}
	return m, nil
}

// Model limits (DESIGN.md section 5). chirp_3 gives word timestamps for at
// most 20 minutes of audio a file; a minute's margin covers the difference
// between the cut asked of ffmpeg and the audio it writes.
const (
	chirp3WordTimes = 19 * time.Minute
	batchMaxFile    = 8*time.Hour - time.Minute
)

// maxSegment is the longest file a model gives word timestamps for.
func maxSegment(model string) time.Duration {
	if model == "chirp_3" {
		return chirp3WordTimes
	}
	return batchMaxFile
}

// diarizationLanguages are the languages chirp_3 tells speakers apart in;
// chirp_2 has no diarization.
var diarizationLanguages = []string{"es-ES", "es-US", "pt-BR"}

// diarizes reports whether model separates speakers in language.
func diarizes(model, language string) bool {
	if model != "chirp_3" {
		return false
	}
	for _, l := range diarizationLanguages {
		if strings.EqualFold(l, language) {
			return true
		}
	}
	return false
}

// validLanguage accepts BCP-47 shaped codes: letters and digits in parts
// of 1 to 8, separated by hyphens.
func validLanguage(l string) bool {
	if l == "" {
		return false
	}
	for _, part := range strings.Split(l, "-") {
		if len(part) == 0 || len(part) > 8 {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

// NormalizeLanguage writes a BCP-47 code in its usual case: the service
// answers "es-es"; transcripts and keys say "es-ES" (cmn-Hans-CN for a
// script).
func NormalizeLanguage(l string) string {
	parts := strings.Split(strings.TrimSpace(l), "-")
	for i, p := range parts {
		switch {
		case i == 0:
			parts[i] = strings.ToLower(p)
		case len(p) == 4:
			parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
		case len(p) == 2 || len(p) == 3 && p[0] >= '0' && p[0] <= '9':
			parts[i] = strings.ToUpper(p)
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-")
}
