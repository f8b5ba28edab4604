package transcribe

import (
	"strings"
	"testing"
	"time"
)

func base(extra map[string]string) map[string]string {
	vars := map[string]string{"GOOGLE_CLOUD_PROJECT": "p", "RAW_BUCKET": "raw", "ARTIFACTS_BUCKET": "art"}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

// The defaults are the design's: chirp_3 in us, chirp_2 in us-central1 as
// the fallback (it exists in no multi-region), 19-minute segments (chirp_3
// gives word timestamps for 20), es-ES, standard processing with a 2 h
// lease.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := LoadConfigFrom(base(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "chirp_3" || c.Location != "us" || c.FallbackModel != "chirp_2" || c.FallbackLocation != "us-central1" {
		t.Errorf("models %s@%s, fallback %s@%s", c.Model, c.Location, c.FallbackModel, c.FallbackLocation)
	}
	if c.Segment() != 19*60 || c.RecognitionLease() != 2*time.Hour || c.MinConfidence != 0.6 {
		t.Errorf("segment %v s, lease %s, min confidence %v", c.Segment(), c.RecognitionLease(), c.MinConfidence)
	}
	if c.LanguageOf("any") != "es-ES" {
		t.Errorf("language %q", c.LanguageOf("any"))
	}
}

func TestConfigDerivedSettings(t *testing.T) {
	t.Parallel()
	c, err := LoadConfigFrom(base(map[string]string{
		"PROCESSING_STRATEGY": "DYNAMIC_BATCHING", "SPEECH_MODEL": "chirp_2", "SPEECH_LOCATION": "us-central1",
		"SPEECH_FALLBACK_MODEL": "none", "COURSE_LANGUAGES": `{"4100002":"pt-br"}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RecognitionLease() != 25*time.Hour {
		t.Errorf("dynamic batching lease %s, want 25h (results within 24 h)", c.RecognitionLease())
	}
	if c.Segment() != (8*time.Hour - time.Minute).Seconds() {
		t.Errorf("chirp_2 alone: segment %v s, want just under 8 h", c.Segment())
	}
	if c.LanguageOf("4100002") != "pt-BR" || c.LanguageOf("4100001") != "es-ES" {
		t.Errorf("course languages %q %q", c.LanguageOf("4100002"), c.LanguageOf("4100001"))
	}
}

// Every wrong setting is named in one error.
func TestConfigNamesEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := LoadConfigFrom(base(map[string]string{
		"MIN_CONFIDENCE": "1.5", "SEGMENT_SECONDS": "1500", "PROCESSING_STRATEGY": "FAST",
		"LANGUAGE": "es ES", "COURSE_LANGUAGES": "{", "TRANSCRIBE_EXTRACT_LEASE": "0s",
	}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"MIN_CONFIDENCE", "SEGMENT_SECONDS 1500 is over what chirp_3", "PROCESSING_STRATEGY", "LANGUAGE", "COURSE_LANGUAGES", "TRANSCRIBE_EXTRACT_LEASE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if _, err := LoadConfigFrom(map[string]string{}); err == nil || !strings.Contains(err.Error(), "RAW_BUCKET") {
		t.Errorf("missing variables: %v", err)
	}
}

func TestRequestFeatures(t *testing.T) {
	t.Parallel()
	s := &Speech{project: "p"}
	req := s.request(job{model: "chirp_3", location: "us", language: "es-ES", output: "gs://a/x/"}, []string{"gs://r/1.flac"})
	f := req.GetConfig().GetFeatures()
	if req.GetRecognizer() != "projects/p/locations/us/recognizers/_" || !f.GetEnableWordTimeOffsets() || !f.GetEnableAutomaticPunctuation() || f.GetDiarizationConfig() == nil {
		t.Errorf("chirp_3 es-ES request %v", req)
	}
	if f.GetEnableWordConfidence() {
		t.Error("word confidence asked of a chirp model, which has none")
	}
	for _, j := range []job{{model: "chirp_2", language: "es-ES"}, {model: "chirp_3", language: "fr-FR"}} {
		if s.request(j, nil).GetConfig().GetFeatures().GetDiarizationConfig() != nil {
			t.Errorf("%s %s: diarization asked where the model has none", j.model, j.language)
		}
	}
}
