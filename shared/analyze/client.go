package analyze

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"cloud.google.com/go/auth"
	"google.golang.org/genai"
)

// ClientConfig says how to reach Gemini on Vertex AI.
type ClientConfig struct {
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

// NewClient builds the genai client of an instance: the Vertex AI backend
// with Application Default Credentials (the function's service account),
// and the SDK's own retries of transient errors, which it does not do
// unless told to.
func NewClient(ctx context.Context, c ClientConfig) (*genai.Client, error) {
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

func retryOptions(c ClientConfig) *genai.HTTPRetryOptions {
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
	return &auth.Token{Value: "local-analyzer", Type: "Bearer"}, nil
}
