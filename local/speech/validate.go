package speech

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/speech/apiv2/speechpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The rules below are the real service's as documented (DESIGN.md section 5
// lists the ones the pipeline relies on): a request the real service would
// refuse is refused here with InvalidArgument, so the transcriber cannot come
// to depend on something only the local engine accepts.

// MaxFiles is the most files one BatchRecognize request may name.
const MaxFiles = 15

// Per-file audio limits. A file over them fails on its own, in the
// operation's results, because only reading the audio tells its length.
const (
	MaxBatchAudio         = 8 * time.Hour    // any model, batch recognition
	MaxChirp3WordTimeSpan = 20 * time.Minute // chirp_3 with word time offsets
)

// model is what the engine knows of one recognition model.
type model struct {
	// locations where the model exists; nil means every location.
	locations []string
	// diarization: false if the model has none; diarizationLanguages, if
	// set, the only languages it has it for.
	diarization          bool
	diarizationLanguages []string
	// maxWordTimes, if set, caps the audio per file when word time offsets
	// are asked for.
	maxWordTimes time.Duration
	// autoLanguage: the model accepts "auto" as a language code.
	autoLanguage bool
}

// models are the Speech-to-Text v2 model identifiers. Regions from the
// models' pages (chirp_3: us and eu multi-regions GA, the single regions in
// preview; chirp_2 and chirp: us-central1, europe-west4, asia-southeast1).
var models = map[string]model{
	"chirp_3": {
		locations:            []string{"us", "eu", "asia-northeast1", "asia-southeast1", "asia-south1", "europe-west2", "europe-west3", "northamerica-northeast1"},
		diarization:          true,
		diarizationLanguages: []string{"es-ES", "es-US", "pt-BR"},
		maxWordTimes:         MaxChirp3WordTimeSpan,
		autoLanguage:         true,
	},
	"chirp_2":              {locations: []string{"us-central1", "europe-west4", "asia-southeast1"}},
	"chirp":                {locations: []string{"us-central1", "europe-west4", "asia-southeast1"}},
	"long":                 {diarization: true},
	"short":                {diarization: true},
	"telephony":            {diarization: true},
	"telephony_short":      {diarization: true},
	"medical_dictation":    {},
	"medical_conversation": {diarization: true},
}

var (
	recognizerName = regexp.MustCompile(`^projects/([^/]+)/locations/([^/]+)/recognizers/([^/]+)$`)
	locationName   = regexp.MustCompile(`^(global|us|eu|[a-z]+-[a-z]+[0-9]+)$`)
)

// problems collects what is wrong with a request, so one answer names all of
// it (as field violations in the status details too).
type problems []*errdetails.BadRequest_FieldViolation

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &errdetails.BadRequest_FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	msgs := make([]string, len(p))
	for i, v := range p {
		msgs[i] = v.Field + ": " + v.Description
	}
	st := status.New(codes.InvalidArgument, "local speech engine: invalid BatchRecognize request: "+strings.Join(msgs, "; "))
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: p}); err == nil {
		st = d
	}
	return st.Err()
}

// plan is a validated request: where it runs and each file's own config.
type plan struct {
	project, location string
	files             []plannedFile
	gcsOutput         string // gs:// prefix, or "" for inline results
}

type plannedFile struct {
	uri    string
	config *speechpb.RecognitionConfig // the request's, with the file's overrides
	model  model
}

// validate checks req as the real service does before it starts an
// operation, and returns what the operation is to do.
func validate(req *speechpb.BatchRecognizeRequest) (*plan, error) {
	var p problems
	pl := &plan{}
	m := recognizerName.FindStringSubmatch(req.GetRecognizer())
	switch {
	case m == nil:
		p.add("recognizer", "%q is not projects/{project}/locations/{location}/recognizers/{recognizer}", req.GetRecognizer())
	default:
		pl.project, pl.location = m[1], m[2]
		if !locationName.MatchString(pl.location) {
			p.add("recognizer", "location %q is not global, us, eu or a region", pl.location)
		}
		if m[3] != "_" {
			// Saved recognizers are not modelled: the pipeline uses the
			// implicit one and puts the whole config in the request.
			return nil, status.Errorf(codes.NotFound, "local speech engine: recognizer %q not found (only the implicit recognizer \"_\" exists here)", req.GetRecognizer())
		}
	}
	switch s := req.GetProcessingStrategy(); s {
	case speechpb.BatchRecognizeRequest_PROCESSING_STRATEGY_UNSPECIFIED, speechpb.BatchRecognizeRequest_DYNAMIC_BATCHING:
	default:
		p.add("processing_strategy", "unknown value %d", int32(s))
	}
	// The request's config_mask says which of its config's fields override
	// the recognizer's defaults; "_" has none, so a masked-out field is
	// simply unset.
	base := req.GetConfig()
	if mask := req.GetConfigMask().GetPaths(); len(mask) > 0 && base != nil {
		base = overlay(nil, base, mask)
	}

	files := req.GetFiles()
	switch {
	case len(files) == 0:
		p.add("files", "at least one file is required")
	case len(files) > MaxFiles:
		p.add("files", "%d files given; the maximum number of files allowed is %d", len(files), MaxFiles)
	}
	// The request's config is checked once if some file uses it as it is;
	// a file with its own config is checked with its overrides applied.
	usesBase := len(files) == 0
	for _, f := range files {
		usesBase = usesBase || f.GetConfig() == nil
	}
	var baseModel model
	baseOK := true
	if usesBase {
		baseModel, baseOK = checkConfig(&p, "config", base, pl.location)
	}
	seen := map[string]bool{}
	for i, f := range files {
		field := fmt.Sprintf("files[%d]", i)
		uri := f.GetUri()
		if _, _, err := splitGCS(uri); err != nil {
			p.add(field+".uri", "%v", err)
		} else if seen[uri] {
			p.add(field+".uri", "%s is named twice (results are keyed by URI)", uri)
		}
		seen[uri] = true
		cfg, mdl, ok := base, baseModel, baseOK
		if f.GetConfig() != nil {
			cfg = overlay(base, f.GetConfig(), f.GetConfigMask().GetPaths())
			mdl, ok = checkConfig(&p, field+".config", cfg, pl.location)
		}
		if ok {
			pl.files = append(pl.files, plannedFile{uri: uri, config: cfg, model: mdl})
		}
	}

	out := req.GetRecognitionOutputConfig()
	switch {
	case out == nil || (out.GetGcsOutputConfig() == nil && out.GetInlineResponseConfig() == nil):
		p.add("recognition_output_config", "Recognition output configuration must be specified (gcs_output_config or inline_response_config)")
	case out.GetGcsOutputConfig() != nil:
		pl.gcsOutput = out.GetGcsOutputConfig().GetUri()
		if rest, ok := strings.CutPrefix(pl.gcsOutput, "gs://"); !ok || strings.HasPrefix(rest, "/") || rest == "" {
			p.add("recognition_output_config.gcs_output_config.uri", "%q is not a gs://bucket/prefix URI", pl.gcsOutput)
		}
	case len(files) > 1:
		p.add("recognition_output_config.inline_response_config", "inline results are supported only for a request with just one audio file (%d given); write to Cloud Storage instead", len(files))
	}
	if f := out.GetOutputFormatConfig(); f.GetVtt() != nil || f.GetSrt() != nil {
		p.add("recognition_output_config.output_format_config", "the local engine writes the native JSON format only")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return pl, nil
}

// checkConfig checks one effective recognition config, adding what is wrong
// with it to p; ok is false if anything is.
func checkConfig(p *problems, field string, cfg *speechpb.RecognitionConfig, location string) (model, bool) {
	var q problems
	mdl, known := models[cfg.GetModel()]
	switch {
	case cfg == nil:
		q.add(field, "a recognition config is required with the implicit recognizer \"_\"")
	case cfg.GetModel() == "":
		q.add(field+".model", "a model is required with the implicit recognizer \"_\"")
	case !known:
		q.add(field+".model", "The model %q does not exist (known models: %s)", cfg.GetModel(), strings.Join(modelNames(), ", "))
	case mdl.locations != nil && location != "" && !slices.Contains(mdl.locations, location):
		q.add(field+".model", "The model %q does not exist in the location named %q (it exists in %s)", cfg.GetModel(), location, strings.Join(mdl.locations, ", "))
	}
	if cfg != nil && cfg.GetAutoDecodingConfig() == nil && cfg.GetExplicitDecodingConfig() == nil {
		q.add(field+".decoding_config", "one of auto_decoding_config or explicit_decoding_config is required")
	}
	langs := cfg.GetLanguageCodes()
	if cfg != nil && len(langs) == 0 {
		q.add(field+".language_codes", "at least one language code is required")
	}
	for _, l := range langs {
		if l == "auto" && known && !mdl.autoLanguage {
			q.add(field+".language_codes", "the model %q does not detect the language: give a language code, not \"auto\"", cfg.GetModel())
		}
	}
	if known && cfg.GetFeatures().GetDiarizationConfig() != nil {
		switch {
		case !mdl.diarization:
			q.add(field+".features.diarization_config", "The model %q does not support speaker diarization", cfg.GetModel())
		case mdl.diarizationLanguages != nil:
			for _, l := range langs {
				if !slices.ContainsFunc(mdl.diarizationLanguages, func(d string) bool { return strings.EqualFold(d, l) }) {
					q.add(field+".features.diarization_config", "The model %q supports speaker diarization only for %s, not for %q", cfg.GetModel(), strings.Join(mdl.diarizationLanguages, ", "), l)
				}
			}
		}
	}
	*p = append(*p, q...)
	return mdl, len(q) == 0
}

func modelNames() []string {
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// splitGCS splits gs://bucket/object.
func splitGCS(uri string) (bucket, object string, err error) {
	rest, ok := strings.CutPrefix(uri, "gs://")
	if !ok {
		return "", "", fmt.Errorf("%q is not a gs:// URI: batch recognition reads Cloud Storage only", uri)
	}
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" || object == "" {
		return bucket, object, fmt.Errorf("%q names no object (want gs://bucket/object)", uri)
	}
	return bucket, object, nil
}

// overlay applies a file's config over the request's: with no mask, every
// field the file sets replaces the request's (messages field by field); with
// "*", the file's config replaces the request's whole; otherwise only the
// listed field paths are taken from the file's.
func overlay(base, file *speechpb.RecognitionConfig, mask []string) *speechpb.RecognitionConfig {
	if slices.Contains(mask, "*") {
		return proto.Clone(file).(*speechpb.RecognitionConfig)
	}
	out := &speechpb.RecognitionConfig{}
	if base != nil {
		out = proto.Clone(base).(*speechpb.RecognitionConfig)
	}
	if len(mask) == 0 {
		override(out.ProtoReflect(), file.ProtoReflect())
		return out
	}
	for _, path := range mask {
		copyPath(out.ProtoReflect(), file.ProtoReflect(), strings.Split(path, "."))
	}
	return out
}

func override(dst, src protoreflect.Message) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && dst.Has(fd) {
			override(dst.Mutable(fd).Message(), v.Message())
			return true
		}
		dst.Set(fd, v)
		return true
	})
}

func copyPath(dst, src protoreflect.Message, path []string) {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if fd == nil {
		return
	}
	if len(path) == 1 || fd.Message() == nil || fd.IsList() || fd.IsMap() {
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
		return
	}
	if !src.Has(fd) {
		return
	}
	copyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), path[1:])
}
