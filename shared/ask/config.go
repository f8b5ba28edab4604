package ask

import (
	"errors"
	"fmt"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// Config is the ask and eval commands' configuration, from environment
// variables. The assistant's settings here are every school's defaults; a
// school's document (schools/{slug}.assistant) overrides any of them, so a
// producer can give one school another model or voice without a redeploy,
// and nothing of the assistant is stored at OpenAI (DESIGN.md section 1).
type Config struct {
	config.Common
	// OPENAI_API_KEY, OPENAI_BASE_URL, ...: as the syncer's.
	vectorsync.OpenAIConfig
	// Model is the Responses API model.
	Model string `env:"ASSISTANT_MODEL" envDefault:"gpt-5-mini"`
	// Instructions are the assistant's instructions; empty means
	// DefaultInstructions.
	Instructions string `env:"ASSISTANT_INSTRUCTIONS"`
	// MaxResults is file_search's max_num_results (1..50): how many chunks
	// the model reads.
	MaxResults int `env:"ASSISTANT_MAX_RESULTS" envDefault:"8"`
}

// DefaultInstructions keep the assistant to the school's lessons.
const DefaultInstructions = "Eres el asistente de una escuela online. Responde solo con lo que enseñan las lecciones " +
	"que encuentra la búsqueda de archivos; si la respuesta no está en ellas, dilo. Cita la lección de la que sale " +
	"cada afirmación. Responde en el idioma de la pregunta, de forma breve y concreta."

// LoadConfig reads and checks the configuration from the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := config.Load(&c); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// Validate names every bad value at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.OpenAIConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Model == "" {
		errs = append(errs, errors.New("ASSISTANT_MODEL is empty"))
	}
	if c.MaxResults < 1 || c.MaxResults > 50 {
		errs = append(errs, fmt.Errorf("ASSISTANT_MAX_RESULTS is %d: file_search returns 1 to 50 results", c.MaxResults))
	}
	return errors.Join(errs...)
}

// Assistant is the configuration one question is asked with.
type Assistant struct {
	Model        string
	Instructions string
	MaxResults   int
}

// defaults are the configuration's assistant settings.
func (c Config) defaults() Assistant {
	a := Assistant{Model: c.Model, Instructions: c.Instructions, MaxResults: c.MaxResults}
	if a.Instructions == "" {
		a.Instructions = DefaultInstructions
	}
	return a
}
