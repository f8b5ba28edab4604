package lessonstate

// Meters of the cost ledger (Lesson.Usage): one name per paid quantity, by
// model, so a cost report multiplies each by its list price.

// MeterSpeechSeconds is audio seconds recognized by a Speech-to-Text model.
func MeterSpeechSeconds(model string) string { return "speech." + model + ".seconds" }

// MeterGeminiInputTokens and MeterGeminiOutputTokens are a Gemini model's
// prompt and answer tokens.
func MeterGeminiInputTokens(model string) string  { return "gemini." + model + ".input_tokens" }
func MeterGeminiOutputTokens(model string) string { return "gemini." + model + ".output_tokens" }

// MeterEmbeddingTokens is tokens embedded by an OpenAI embedding model.
func MeterEmbeddingTokens(model string) string { return "openai." + model + ".embedding_tokens" }
