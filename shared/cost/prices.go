// Package cost turns what the pipeline used into money (issue 9): the cost
// ledger each stage records on its lessons (audio seconds per
// Speech-to-Text model, Gemini tokens in and out, embedding tokens), the
// knowledge files' vector-store bytes, and the platform's own usage per
// lesson (function seconds, Firestore documents, Pub/Sub bytes, workflow
// steps) as a load run measured it at the doors, multiplied by the list
// prices of one dated table (prices.yaml). It reports per lesson, per
// course, per month and per video hour, with every assumption named.
package cost

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
)

//go:embed prices.yaml
var pricesYAML []byte

// Prices is the price table.
type Prices struct {
	AsOf     string `yaml:"as_of"`
	Currency string `yaml:"currency"`
	// Speech by model.
	Speech map[string]SpeechPrice `yaml:"speech"`
	// Gemini by model.
	Gemini map[string]TokenPrice `yaml:"gemini"`
	OpenAI struct {
		Embeddings        map[string]EmbeddingPrice `yaml:"embeddings"`
		VectorStoreGBDay  float64                   `yaml:"vector_store_gb_day"`
		VectorStoreFreeGB float64                   `yaml:"vector_store_free_gb"`
	} `yaml:"openai"`
	CloudRun struct {
		VCPUSecond         float64 `yaml:"vcpu_second"`
		GiBSecond          float64 `yaml:"gib_second"`
		PerMillionRequests float64 `yaml:"per_million_requests"`
	} `yaml:"cloud_run"`
	PubSub struct {
		PerTiB             float64 `yaml:"per_tib"`
		MinBytesPerRequest float64 `yaml:"min_bytes_per_request"`
	} `yaml:"pubsub"`
	Firestore struct {
		ReadsPer100k    float64 `yaml:"reads_per_100k"`
		WritesPer100k   float64 `yaml:"writes_per_100k"`
		DeletesPer100k  float64 `yaml:"deletes_per_100k"`
		StorageGiBMonth float64 `yaml:"storage_gib_month"`
	} `yaml:"firestore"`
	Storage struct {
		StandardGBMonth float64 `yaml:"standard_gb_month"`
	} `yaml:"storage"`
	Workflows struct {
		InternalPer1000 float64 `yaml:"internal_steps_per_1000"`
		ExternalPer1000 float64 `yaml:"external_steps_per_1000"`
	} `yaml:"workflows"`
	// Functions by entry point.
	Functions map[string]FunctionSize `yaml:"functions"`
}

// SpeechPrice is a Speech-to-Text model's price per audio minute.
type SpeechPrice struct {
	Standard float64 `yaml:"standard_per_minute"`
	Dynamic  float64 `yaml:"dynamic_batching_per_minute"`
	Sureness string  `yaml:"sureness"`
}

// TokenPrice is a Gemini model's price per million tokens.
type TokenPrice struct {
	Input    float64 `yaml:"input_per_million"`
	Output   float64 `yaml:"output_per_million"`
	Sureness string  `yaml:"sureness"`
}

// EmbeddingPrice is an embedding model's price per million tokens.
type EmbeddingPrice struct {
	PerMillion float64 `yaml:"per_million"`
	Sureness   string  `yaml:"sureness"`
}

// FunctionSize is what a function is given: a busy second costs
// vcpu × the vCPU-second price + memory × the GiB-second price.
type FunctionSize struct {
	MemoryGiB float64 `yaml:"memory_gib"`
	VCPU      float64 `yaml:"vcpu"`
}

// DefaultPrices is the repository's table (prices.yaml).
func DefaultPrices() (Prices, error) { return ParsePrices(pricesYAML) }

// ParsePrices reads a table in the prices.yaml format and checks it.
func ParsePrices(b []byte) (Prices, error) {
	var p Prices
	if err := yaml.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("cost: price table: %w", err)
	}
	var problems []string
	if p.AsOf == "" {
		problems = append(problems, "as_of is missing: a price table without its date cannot be trusted")
	}
	if len(p.Speech) == 0 || len(p.Gemini) == 0 || len(p.OpenAI.Embeddings) == 0 || len(p.Functions) == 0 {
		problems = append(problems, "speech, gemini, openai.embeddings and functions must each list at least one entry")
	}
	if p.CloudRun.VCPUSecond <= 0 || p.CloudRun.GiBSecond <= 0 || p.Firestore.WritesPer100k <= 0 || p.PubSub.PerTiB <= 0 {
		problems = append(problems, "cloud_run, firestore and pubsub prices must be positive")
	}
	if len(problems) > 0 {
		return p, fmt.Errorf("cost: price table: %s", strings.Join(problems, "; "))
	}
	return p, nil
}

// Speech strategies (shared/transcribe's PROCESSING_STRATEGY).
const (
	StrategyStandard = "STANDARD"
	StrategyDynamic  = "DYNAMIC_BATCHING"
)

// ErrUnpriced marks a meter the table has no price for.
var ErrUnpriced = errors.New("no price in the table")

// meterLine prices one ledger meter: its quantity in the priced unit, the
// unit, the unit price and the cost. Meters are lessonstate's:
// speech.<model>.seconds, gemini.<model>.input_tokens and .output_tokens,
// openai.<model>.embedding_tokens.
func (p Prices) meterLine(meter string, qty float64, strategy string) (Line, error) {
	kind, rest, _ := strings.Cut(meter, ".")
	i := strings.LastIndex(rest, ".")
	if i < 0 {
		return Line{}, fmt.Errorf("meter %q: %w", meter, ErrUnpriced)
	}
	model, what := rest[:i], rest[i+1:]
	switch {
	case kind == "speech" && what == "seconds":
		sp, ok := p.Speech[model]
		if !ok {
			break
		}
		price, label := sp.Standard, "standard"
		if strategy == StrategyDynamic {
			price, label = sp.Dynamic, "dynamic batching"
		}
		return Line{Item: "Speech-to-Text " + model + " (" + label + ")", Usage: qty / 60, Unit: "audio min", UnitPrice: price}.priced(), nil
	case kind == "gemini" && (what == "input_tokens" || what == "output_tokens"):
		tp, ok := p.Gemini[model]
		if !ok {
			break
		}
		price, label := tp.Input, "input"
		if what == "output_tokens" {
			price, label = tp.Output, "output"
		}
		return Line{Item: "Gemini " + model + " " + label, Usage: qty / 1e6, Unit: "M tokens", UnitPrice: price}.priced(), nil
	case kind == "openai" && what == "embedding_tokens":
		ep, ok := p.OpenAI.Embeddings[model]
		if !ok {
			break
		}
		return Line{Item: "OpenAI " + model, Usage: qty / 1e6, Unit: "M tokens", UnitPrice: ep.PerMillion}.priced(), nil
	}
	return Line{}, fmt.Errorf("meter %q: %w", meter, ErrUnpriced)
}

// functionSecond is what one busy second of a function costs.
func (p Prices) functionSecond(entry string) (float64, bool) {
	f, ok := p.Functions[entry]
	if !ok {
		return 0, false
	}
	return f.VCPU*p.CloudRun.VCPUSecond + f.MemoryGiB*p.CloudRun.GiBSecond, true
}
