package speech_test

import (
	"fmt"
	"strings"
	"testing"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localspeech "github.com/coursekb/pipeline/local/speech"
)

// Requests the real service refuses are refused with InvalidArgument naming
// the problem, before any operation starts.
func TestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	uri := "gs://raw/lessons/" + lesson1 + "/v1/audio/seg-000.flac"
	many := make([]string, 16)
	for i := range many {
		many[i] = fmt.Sprintf("gs://raw/lessons/%s/v1/audio/seg-%03d.flac", lesson1, i)
	}
	cases := []struct {
		name  string
		req   *speechpb.BatchRecognizeRequest
		field string
		want  string
	}{
		{"16 files", request(many...), "files", "maximum number of files allowed is 15"},
		{"no files", request(), "files", "at least one file"},
		{"chirp_3 diarization en-US", with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
			r.Config.LanguageCodes = []string{"en-US"}
			r.Config.Features.DiarizationConfig = &speechpb.SpeakerDiarizationConfig{}
		}), "config.features.diarization_config", `only for es-ES, es-US, pt-BR, not for "en-US"`},
		{"chirp_2 diarization", with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
			r.Recognizer = chirp2
			r.Config.Model = "chirp_2"
			r.Config.Features.DiarizationConfig = &speechpb.SpeakerDiarizationConfig{}
		}), "config.features.diarization_config", `"chirp_2" does not support speaker diarization`},
		{"file config overrides into chirp_2 diarization", with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
			r.Recognizer = chirp2
			r.Config.Model = "chirp_2"
			r.Files[0].Config = &speechpb.RecognitionConfig{Features: &speechpb.RecognitionFeatures{DiarizationConfig: &speechpb.SpeakerDiarizationConfig{}}}
		}), "files[0].config.features.diarization_config", "does not support speaker diarization"},
		{"unknown model", with(request(uri), func(r *speechpb.BatchRecognizeRequest) { r.Config.Model = "chirp_9" }),
			"config.model", `The model "chirp_9" does not exist`},
		{"chirp_3 in global", with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
			r.Recognizer = "projects/demo/locations/global/recognizers/_"
		}), "config.model", `does not exist in the location named "global"`},
		{"bad location", with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
			r.Recognizer = "projects/demo/locations/Mars/recognizers/_"
		}), "recognizer", `location "Mars"`},
		{"bad recognizer", with(request(uri), func(r *speechpb.BatchRecognizeRequest) { r.Recognizer = "recognizers/_" }),
			"recognizer", "is not projects/{project}/locations/{location}/recognizers/{recognizer}"},
		{"http URI", request("https://example.com/a.flac"), "files[0].uri", "is not a gs:// URI"},
		{"no model", with(request(uri), func(r *speechpb.BatchRecognizeRequest) { r.Config.Model = "" }), "config.model", "a model is required"},
		{"no language", with(request(uri), func(r *speechpb.BatchRecognizeRequest) { r.Config.LanguageCodes = nil }),
			"config.language_codes", "at least one language code"},
		{"no decoding config", with(request(uri), func(r *speechpb.BatchRecognizeRequest) { r.Config.DecodingConfig = nil }),
			"config.decoding_config", "auto_decoding_config"},
		{"inline with two files", inline(request(uri, uri+"x")), "recognition_output_config.inline_response_config", "just one audio file"},
		{"no output config", with(request(uri), func(r *speechpb.BatchRecognizeRequest) { r.RecognitionOutputConfig = nil }),
			"recognition_output_config", "Recognition output configuration must be specified"},
		{"same file twice", request(uri, uri), "files[1].uri", "named twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client.BatchRecognize(t.Context(), c.req)
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), c.want) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, c.want)
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if !contains(fields, c.field) {
				t.Errorf("field violations %v, want %s", fields, c.field)
			}
		})
	}
	// A saved recognizer does not exist here.
	_, err := e.client.BatchRecognize(t.Context(), with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
		r.Recognizer = "projects/demo/locations/us/recognizers/mine"
	}))
	if status.Code(err) != codes.NotFound {
		t.Errorf("named recognizer: %v, want NotFound", err)
	}
	// Dynamic batching, chirp_3 auto language and a good chirp_3 diarization
	// request are accepted.
	ok := with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
		r.Config.LanguageCodes = []string{"pt-BR"}
		r.Config.Features.DiarizationConfig = &speechpb.SpeakerDiarizationConfig{}
	})
	if _, err := e.client.BatchRecognize(t.Context(), ok); err != nil {
		t.Errorf("pt-BR diarization refused: %v", err)
	}
	if _, err := e.client.BatchRecognize(t.Context(), with(request(uri), func(r *speechpb.BatchRecognizeRequest) {
		r.Config.LanguageCodes = []string{"auto"}
	})); err != nil {
		t.Errorf("chirp_3 auto language refused: %v", err)
	}
}

func with(r *speechpb.BatchRecognizeRequest, f func(*speechpb.BatchRecognizeRequest)) *speechpb.BatchRecognizeRequest {
	f(r)
	return r
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestNewNeedsScripts(t *testing.T) {
	t.Parallel()
	if _, err := localspeech.New(nil, localspeech.Options{}); err == nil || !strings.Contains(err.Error(), "Scripts") {
		t.Fatalf("New(nil) = %v, want an error naming Scripts", err)
	}
}
