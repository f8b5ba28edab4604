package gemini

import (
	"context"
	"fmt"

	"cloud.google.com/go/auth"
	"google.golang.org/genai"
)

// LocalToken is the bearer token the credentials of NewClient present.
const LocalToken = "local-gemini-token"

// staticToken is a token provider that never expires and never calls out.
type staticToken struct{}

func (staticToken) Token(context.Context) (*auth.Token, error) {
	return &auth.Token{Value: LocalToken, Type: "Bearer"}, nil
}

// Credentials returns credentials that work offline: LocalToken, with no
// expiry, no quota project and no metadata server. Given to genai with a
// project and location they keep it from looking for Application Default
// Credentials, and they exercise the SDK's real authenticated transport.
func Credentials() *auth.Credentials {
	return auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: staticToken{}})
}

// ClientConfig is the genai configuration of a Vertex AI client talking to
// the server at baseURL (Listen's URL) as project and location, with
// Credentials. Callers may set more (retry options, timeouts) before
// genai.NewClient.
func ClientConfig(baseURL, project, location string) *genai.ClientConfig {
	return &genai.ClientConfig{
		Backend:     genai.BackendVertexAI,
		Project:     project,
		Location:    location,
		Credentials: Credentials(),
		HTTPOptions: genai.HTTPOptions{BaseURL: baseURL},
	}
}

// NewClient builds the real genai client against the server at baseURL:
// every user of the server, tests and the stack alike, needs one.
func NewClient(ctx context.Context, baseURL, project, location string) (*genai.Client, error) {
	c, err := genai.NewClient(ctx, ClientConfig(baseURL, project, location))
	if err != nil {
		return nil, fmt.Errorf("local gemini: client for %s: %w", baseURL, err)
	}
	return c, nil
}
