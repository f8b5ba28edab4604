package vectorsync

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/coursekb/pipeline/shared/chunk"
	"github.com/coursekb/pipeline/shared/config"
)

// Config is the syncer function's configuration, from environment variables
// (config.Load names every bad one at once).
type Config struct {
	config.Common
	// ArtifactsBucket holds each lesson version's knowledge.md and
	// enrichment.json (shared/artifact), which the stage uploads and reads.
	ArtifactsBucket string `env:"ARTIFACTS_BUCKET,required"`
	OpenAIConfig
	// ChunkMaxTokens and ChunkOverlapTokens are the chunk options the
	// enricher cut knowledge.md with (chunk.Options); the enricher reads the
	// same two variables, and the store's static chunking is derived from
	// them (chunk.StoreChunking). A version whose enrich stage recorded the
	// options it used (OutChunkMaxTokens, OutChunkOverlapTokens) is
	// attached with those instead. Defaults are chunk.DefaultOptions().
	ChunkMaxTokens     int `env:"CHUNK_MAX_TOKENS" envDefault:"400"`
	ChunkOverlapTokens int `env:"CHUNK_OVERLAP_TOKENS" envDefault:"60"`
	// Lease is how long a claimed sync stays owned from the claim; each
	// step that hands work to OpenAI extends it (the attach, by
	// IndexTimeout and a margin). It must outlast IndexTimeout.
	Lease time.Duration `env:"SYNC_LEASE" envDefault:"15m"`
	// IndexTimeout bounds the wait for an attached file to be indexed;
	// past it the attempt fails retryably and the next one waits again on
	// the same attachment.
	IndexTimeout time.Duration `env:"SYNC_INDEX_TIMEOUT" envDefault:"10m"`
	// StoreNamePrefix names a school's vector store (prefix + slug) in the
	// OpenAI dashboard; the store is found by its metadata, not its name.
	StoreNamePrefix string `env:"VECTOR_STORE_NAME_PREFIX" envDefault:"coursekb-"`
	// StoreCreationLease is how long one delivery may take to create a
	// school's store while the school's other lessons wait for it.
	StoreCreationLease time.Duration `env:"VECTOR_STORE_CREATION_LEASE" envDefault:"1m"`
}

// OpenAIConfig is how the stage reaches OpenAI. The key is a secret (Secret
// Manager fills OPENAI_API_KEY in production); BaseURL points the client at
// the local OpenAI server of the one-machine stack, and must include /v1 as
// the real one does.
type OpenAIConfig struct {
	APIKey  string `env:"OPENAI_API_KEY,required"`
	BaseURL string `env:"OPENAI_BASE_URL"`
	// MaxRetries is how often the SDK retries 408, 409, 429 and 5xx answers
	// and dropped connections within one call, honouring Retry-After.
	MaxRetries int `env:"OPENAI_MAX_RETRIES" envDefault:"2"`
	// RequestTimeout bounds each HTTP request (each retry its own).
	RequestTimeout time.Duration `env:"OPENAI_REQUEST_TIMEOUT" envDefault:"2m"`
}

// LoadConfig reads and checks the configuration from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := config.Load(&c); err != nil {
		return c, fmt.Errorf("syncer: %w", err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("syncer: %w", err)
	}
	return c, nil
}

// Validate names every value out of range at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Chunking().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("CHUNK_MAX_TOKENS %d and CHUNK_OVERLAP_TOKENS %d: %w", c.ChunkMaxTokens, c.ChunkOverlapTokens, err))
	}
	if c.IndexTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SYNC_INDEX_TIMEOUT is %s: want a positive duration", c.IndexTimeout))
	}
	if c.Lease <= c.IndexTimeout {
		errs = append(errs, fmt.Errorf("SYNC_LEASE %s must outlast SYNC_INDEX_TIMEOUT %s", c.Lease, c.IndexTimeout))
	}
	if c.StoreCreationLease <= 0 {
		errs = append(errs, fmt.Errorf("VECTOR_STORE_CREATION_LEASE is %s: want a positive duration", c.StoreCreationLease))
	}
	if err := c.OpenAIConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate names every bad OpenAI setting.
func (c OpenAIConfig) Validate() error {
	var errs []error
	if c.APIKey == "" {
		errs = append(errs, errors.New("OPENAI_API_KEY is empty"))
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("OPENAI_BASE_URL %q is not an http(s) URL", c.BaseURL))
		}
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("OPENAI_MAX_RETRIES is %d: want 0 or more", c.MaxRetries))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("OPENAI_REQUEST_TIMEOUT is %s: want a positive duration", c.RequestTimeout))
	}
	return errors.Join(errs...)
}

// Chunking is the chunk options the configuration names.
func (c Config) Chunking() chunk.Options {
	return chunk.Options{MaxTokens: c.ChunkMaxTokens, OverlapTokens: c.ChunkOverlapTokens}
}

// Settings are the stage's own settings from c.
func (c Config) Settings() Settings {
	return Settings{
		ArtifactsBucket:    c.ArtifactsBucket,
		Chunking:           c.Chunking(),
		Lease:              c.Lease,
		IndexTimeout:       c.IndexTimeout,
		StoreNamePrefix:    c.StoreNamePrefix,
		StoreCreationLease: c.StoreCreationLease,
	}
}
