package gemini

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
)

// classify checks the body's shape and tells an analysis from an enrichment
// by the response schema's properties.
func (s *Server) classify(c *call) error {
	if len(c.req.Contents) == 0 {
		return invalid("contents is not specified: a request needs at least one content with parts")
	}
	var texts []string
	if si := c.req.SystemInstruction; si != nil {
		for _, p := range si.Parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
	}
	var videos []part
	for i, ct := range c.req.Contents {
		if len(ct.Parts) == 0 {
			return invalid("contents[%d].parts is empty: a content needs at least one part", i)
		}
		for j, p := range ct.Parts {
			field := fmt.Sprintf("contents[%d].parts[%d]", i, j)
			switch {
			case p.InlineData != nil:
				return invalid("%s: inlineData is not supported by the local Gemini engine; send the video as fileData with a gs:// URI", field)
			case p.FileData != nil:
				if err := checkVideo(field, p); err != nil {
					return err
				}
				videos = append(videos, p)
			case p.Text != "":
				texts = append(texts, p.Text)
			case p.VideoMetadata != nil:
				return invalid("%s: videoMetadata without fileData: the offsets apply to the video of the same part", field)
			default:
				return invalid("%s: the part is empty: want text or fileData", field)
			}
		}
	}
	c.prompt = strings.Join(texts, "\n")

	kind, props, err := schemaKind(c.req.GenerationConfig)
	if err != nil {
		return err
	}
	c.kind = kind
	switch kind {
	case Analysis:
		if len(videos) != 1 {
			return invalid("video analysis needs exactly one fileData part with a gs:// video URI (mimeType video/*), got %d", len(videos))
		}
		c.kindsWanted = kindEnum(props)
		return c.parseVideo(videos[0])
	case Enrichment:
		if len(videos) > 0 {
			return invalid("text enrichment takes text only, got %d fileData part(s)", len(videos))
		}
		c.lesson = lessonMarker(c.prompt)
	}
	return nil
}

// checkVideo is what Vertex checks of a video part before fetching it.
func checkVideo(field string, p part) error {
	fd := p.FileData
	switch {
	case fd.FileURI == "":
		return invalid("%s.fileData.fileUri is empty: want gs://BUCKET/OBJECT", field)
	case !strings.HasPrefix(fd.FileURI, "gs://"):
		return invalid("%s.fileData.fileUri %q is not a Cloud Storage URI: want gs://BUCKET/OBJECT", field, fd.FileURI)
	case fd.MIMEType == "":
		return invalid("%s.fileData.mimeType is empty: want a video type such as video/mp4", field)
	case !strings.HasPrefix(fd.MIMEType, "video/"):
		return invalid("%s.fileData.mimeType %q is not a video type: the local Gemini engine analyzes video only", field, fd.MIMEType)
	}
	if vm := p.VideoMetadata; vm != nil && vm.FPS != nil {
		if f := *vm.FPS; !(f > 0 && f <= maxFPS) || math.IsNaN(f) {
			return invalid("%s.videoMetadata.fps is %g: it must be in (0, %d]", field, f, maxFPS)
		}
	}
	return nil
}

// videoURI is the raw bucket's layout (DESIGN.md section 3).
var videoURI = regexp.MustCompile(`^gs://[^/]+/lessons/([^/]+)/v[0-9]+/source\.[A-Za-z0-9]+$`)

func (c *call) parseVideo(p part) error {
	c.videoURI = p.FileData.FileURI
	m := videoURI.FindStringSubmatch(c.videoURI)
	if m == nil {
		return notFound("local Gemini engine: no video at %s: it knows the raw bucket's gs://BUCKET/lessons/{lessonId}/v{version}/source.{ext} only", c.videoURI)
	}
	c.lesson = m[1]
	c.fps = 1
	c.window.End = -1 // the video's end, once its length is known
	if vm := p.VideoMetadata; vm != nil {
		if vm.FPS != nil {
			c.fps = *vm.FPS
		}
		var err error
		if vm.StartOffset != "" {
			if c.window.Start, err = parseDuration("videoMetadata.start_offset", vm.StartOffset); err != nil {
				return err
			}
		}
		if vm.EndOffset != "" {
			if c.window.End, err = parseDuration("videoMetadata.end_offset", vm.EndOffset); err != nil {
				return err
			}
		}
	}
	return nil
}

// schemaKind reads the response schema (OpenAPI-style responseSchema or
// responseJsonSchema; both keep their properties under "properties").
func schemaKind(gc *generationConfig) (RequestKind, map[string]any, error) {
	const want = `generationConfig.responseSchema (or responseJsonSchema) must be an object schema with property "elements" (video analysis) or "keywords" (text enrichment): the local Gemini engine answers nothing else`
	if gc == nil {
		return "", nil, invalid("%s; the request has no generationConfig", want)
	}
	raw := gc.ResponseSchema
	if len(raw) == 0 || string(raw) == "null" {
		raw = gc.ResponseJSONSchema
	}
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, invalid("%s; the request has no response schema", want)
	}
	if mt := gc.ResponseMIMEType; mt != "application/json" {
		return "", nil, invalid("Unable to submit request because setting a response schema requires responseMimeType to be application/json, got %q", mt)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		return "", nil, invalid("response schema is not a JSON object: %v", err)
	}
	props, _ := schema["properties"].(map[string]any)
	switch {
	case props["elements"] != nil:
		return Analysis, props, nil
	case props["keywords"] != nil:
		return Enrichment, props, nil
	}
	return "", nil, invalid("%s", want)
}

// kindEnum is the set of element kinds the schema allows, nil when it does
// not restrict them: the engine, like Gemini, keeps to the enum it is given.
func kindEnum(props map[string]any) map[string]bool {
	el, _ := props["elements"].(map[string]any)
	items, _ := el["items"].(map[string]any)
	ip, _ := items["properties"].(map[string]any)
	kind, _ := ip["kind"].(map[string]any)
	enum, _ := kind["enum"].([]any)
	if len(enum) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, v := range enum {
		if str, ok := v.(string); ok {
			set[str] = true
		}
	}
	return set
}

// roundingSlack is how far past the video an end offset may reach: the SDK
// sends offsets in whole seconds, so a window ending at the video's end may
// arrive up to half a second later.
const roundingSlack = 1.0

// resolve checks c against the catalog: the lesson exists, the window lies
// within its video and fits one request; it also counts the prompt's tokens.
func (s *Server) resolve(c *call) error {
	textTok := textTokens(c.prompt)
	switch c.kind {
	case Analysis:
		s.mu.Lock()
		pg, ok := s.pages[c.lesson]
		if ok && pg.HasVideo() {
			c.page, c.duration = pg, s.durationLocked(pg)
		}
		s.mu.Unlock()
		if !ok || !pg.HasVideo() {
			return notFound("local Gemini engine: no video for lesson %q (%s) in the sample catalog", c.lesson, c.videoURI)
		}
		if c.window.End < 0 {
			c.window.End = c.duration
		}
		w := c.window
		switch {
		case w.Start >= c.duration:
			return invalid("videoMetadata.start_offset %gs is at or past the end of the video (%.3fs)", w.Start, c.duration)
		case w.End <= w.Start:
			return invalid("videoMetadata.end_offset %gs must be after start_offset %gs", w.End, w.Start)
		case w.End > c.duration+roundingSlack:
			return invalid("videoMetadata.end_offset %gs is past the end of the video (%.3fs)", w.End, c.duration)
		}
		span := math.Min(w.End, c.duration) - w.Start
		if maxW := s.opts.MaxWindow.Seconds(); span > maxW {
			return invalid("the video window [%gs, %gs) holds %.0fs of video; one request holds at most %.0fs with audio: analyze the video in windows", w.Start, w.End, span, maxW)
		}
		resolution := ""
		if gc := c.req.GenerationConfig; gc != nil {
			resolution = gc.MediaResolution
		}
		video := int(math.Round(span * float64(framePrice(c.model, resolution)) * c.fps))
		audio := int(math.Round(span * tokensPerAudioSecond))
		c.promptTokens = textTok + video + audio
		c.promptDetails = []modalityCount{{"TEXT", textTok}, {"VIDEO", video}, {"AUDIO", audio}}
	case Enrichment:
		if c.lesson == "" {
			s.mu.Lock()
			c.lesson = s.titles[section(c.prompt, MarkerTitle)]
			s.mu.Unlock()
		}
		c.promptTokens = textTok
		c.promptDetails = []modalityCount{{"TEXT", textTok}}
	}
	if c.promptTokens > s.opts.MaxInputTokens {
		return invalid("The input token count (%d) exceeds the maximum number of tokens allowed (%d).", c.promptTokens, s.opts.MaxInputTokens)
	}
	return nil
}

// answer produces the JSON text of a valid request's answer.
func (s *Server) answer(c *call) (string, error) {
	var v any
	switch c.kind {
	case Analysis:
		w := c.window
		w.End = math.Min(w.End, c.duration)
		v = analysisAnswer{Elements: analyze(c.page, c.duration, w, c.kindsWanted)}
	case Enrichment:
		e, err := enrich(c.prompt)
		if err != nil {
			return "", err
		}
		v = e
	default:
		return "", invalid("the request is neither a video analysis nor a text enrichment")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", &badRequest{code: http.StatusInternalServerError, msg: fmt.Sprintf("local gemini: encode %s answer: %v", c.kind, err)}
	}
	return string(b), nil
}
