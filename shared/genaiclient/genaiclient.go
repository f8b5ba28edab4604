// Package genaiclient builds the google.golang.org/genai client every stage
// that calls Gemini uses (the analyzer, the enricher): the Vertex AI backend
// with the function's own credentials in production, or a local base URL —
// the local Gemini of tests and the one-machine stack — with a static token,
// so that nothing looks for credentials offline. One constructor, so that
// the stages cannot differ in how they reach Gemini or retry it.
package genaiclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"cloud.google.com/go/auth"
	"google.golang.org/genai"
)

// Env holds the client's environment variables, the same names in every
// function that calls Gemini. Embed them in a function's configuration.
type Env struct {
	// Location is the Vertex AI location; "global" serves every current
	// Gemini model. A region keeps the processing in it.
	Location string `env:"GEMINI_LOCATION" envDefault:"global"`
	// BaseURL points the client at another endpoint: the local Gemini of
	// the one-machine stack (http://…, offline credentials), or a private
	// endpoint (https://…, default credentials).
	BaseURL string `env:"GEMINI_BASE_URL"`
	// APIAttempts, APIRetryDelay and APIRetryMaxDelay make the SDK retry
	// 408, 429 and 5xx itself, with exponential backoff, inside one call.
	APIAttempts      int           `env:"GEMINI_API_ATTEMPTS" envDefault:"4"`
	APIRetryDelay    time.Duration `env:"GEMINI_API_RETRY_DELAY" envDefault:"2s"`
	APIRetryMaxDelay time.Duration `env:"GEMINI_API_RETRY_MAX_DELAY" envDefault:"30s"`
}

// Validate names every value out of range at once.
func (s Env) Validate() error {
	var errs []error
	if s.Location == "" {
		errs = append(errs, errors.New("GEMINI_LOCATION is empty"))
	}
	if s.APIAttempts < 1 {
		errs = append(errs, fmt.Errorf("GEMINI_API_ATTEMPTS is %d: want 1 or more (1: no retries)", s.APIAttempts))
	}
	if s.APIRetryDelay < 0 || s.APIRetryMaxDelay < s.APIRetryDelay {
		errs = append(errs, fmt.Errorf("GEMINI_API_RETRY_DELAY %s and GEMINI_API_RETRY_MAX_DELAY %s: want 0 ≤ delay ≤ max delay", s.APIRetryDelay, s.APIRetryMaxDelay))
	}
	if s.BaseURL != "" {
		if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("GEMINI_BASE_URL %q is not an http(s) URL", s.BaseURL))
		}
	}
	return errors.Join(errs...)
}

// Config is the client's configuration in project.
func (s Env) Config(project string) Config {
	return Config{
		Project:       project,
		Location:      s.Location,
		BaseURL:       s.BaseURL,
		Attempts:      s.APIAttempts,
		RetryDelay:    s.APIRetryDelay,
		RetryMaxDelay: s.APIRetryMaxDelay,
	}
}

// Config says how to reach Gemini on Vertex AI.
type Config struct {
	Project  string
	Location string
	// BaseURL, when set, replaces Vertex AI's endpoint. A plain-HTTP one
	// is the local Gemini of tests and the one-machine stack, given a
	// static token so that no credentials are looked for; an HTTPS one
	// (a private endpoint) gets the default credentials like Vertex AI.
	BaseURL string
	// Attempts is how many times the SDK sends a request that failed with
	// 408, 429 or 5xx (1: once), waiting RetryDelay, doubling up to
	// RetryMaxDelay, in between.
	Attempts      int
	RetryDelay    time.Duration
	RetryMaxDelay time.Duration
}

// New builds the genai client of an instance: the Vertex AI backend with
// Application Default Credentials (the function's service account), and
// the SDK's own retries of transient errors, which it does not do unless
// told to.
func New(ctx context.Context, c Config) (*genai.Client, error) {
	if c.Project == "" || c.Location == "" {
		return nil, errors.New("gemini client: project and location must be set")
	}
	cfg := &genai.ClientConfig{
		Backend:     genai.BackendVertexAI,
		Project:     c.Project,
		Location:    c.Location,
		HTTPOptions: genai.HTTPOptions{RetryOptions: retryOptions(c)},
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("gemini client: base URL %q: %w", c.BaseURL, err)
		}
		cfg.HTTPOptions.BaseURL = c.BaseURL
		if u.Scheme == "http" {
			cfg.Credentials = auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: staticToken{}})
		}
	}
	client, err := genai.NewClient(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("gemini client (project %s, location %s): %w", c.Project, c.Location, err)
	}
	return client, nil
}

func retryOptions(c Config) *genai.HTTPRetryOptions {
	attempts := int32(max(c.Attempts, 1))
	initial := c.RetryDelay.Seconds()
	maxDelay := max(c.RetryMaxDelay.Seconds(), initial)
	// The SDK adds up to Jitter seconds to every wait (1 s by default):
	// scale it with the delay so that short test delays stay short.
	jitter := initial
	return &genai.HTTPRetryOptions{Attempts: &attempts, InitialDelay: &initial, MaxDelay: &maxDelay, Jitter: &jitter}
}

// staticToken is the bearer token given to a plain-HTTP endpoint: the
// local Gemini wants one, and must not send the caller looking for real
// credentials offline.
type staticToken struct{}

func (staticToken) Token(context.Context) (*auth.Token, error) {
	return &auth.Token{Value: "local-gemini-caller", Type: "Bearer"}, nil
}
