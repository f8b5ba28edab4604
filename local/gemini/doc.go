// Package gemini is a local Gemini: it speaks the Vertex AI generateContent
// REST call that google.golang.org/genai sends (DESIGN.md section 5,
// "Gemini"), and answers for the lessons of the sample catalog, saying in
// every modelVersion that it is the local engine. The tests of the analyze
// and enrich stages and the one-machine stack point the real SDK at it with
// HTTPOptions.BaseURL; NewClient builds such a client with credentials that
// work offline.
//
// # The call
//
// genai v1.77.0 with BackendVertexAI sends
//
//	POST {BaseURL}/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent
//	Authorization: Bearer <token>
//	{"contents":[{"role":"user","parts":[
//	    {"fileData":{"fileUri":"gs://…/source.mp4","mimeType":"video/mp4"},
//	     "videoMetadata":{"startOffset":"0s","endOffset":"120s","fps":1}},
//	    {"text":"…"}]}],
//	 "generationConfig":{"responseMimeType":"application/json",
//	    "responseSchema":{"type":"OBJECT","properties":{…}}}}
//
// (responseJsonSchema instead of responseSchema when the caller gives a JSON
// Schema). The SDK writes video offsets with "%.0fs": they arrive in whole
// seconds, rounded, so a window end may overshoot the video by up to half a
// second (the server allows one second) and sub-second window edges are lost.
// The SDK retries nothing unless HTTPOptions.RetryOptions is set; with it, it
// retries 408, 429, 500, 502, 503 and 504 with exponential backoff.
//
// # What it answers
//
// The response schema's properties say what is asked:
//
//   - "elements": a video analysis. The video must be
//     gs://BUCKET/lessons/{lessonId}/v{version}/source.{ext} of a lesson with a
//     video (else 404 NOT_FOUND). Each slide of the lesson is a slide element
//     from its At to the next slide's At (or the video's end); a slide with
//     code adds a code element (language "python" when it looks like Python);
//     each slide's title adds a concept element, described by what the
//     narration says meanwhile. Elements are clipped to the requested window
//     [startOffset, endOffset) and keep times in seconds from the start of
//     the video, so windows analyzed in turn merge back into the whole. A
//     kind enum in the schema is respected. A lesson's video is as long as
//     Options.Durations says, else as long as EstimateDuration says its
//     narration takes to speak.
//   - "keywords": a text enrichment, derived from the prompt's sections (see
//     the Marker constants): keywords by weighted frequency (Spanish stop
//     words out, phrases that recur, code identifiers), the level from cue
//     words and the module's order, the transcript's first sentence or two as
//     summary, objectives from "vamos a…" sentences and slide titles,
//     prerequisites from "recuerda…"/"ya vimos…" and mentioned earlier
//     lessons.
//
// Both answer {"candidates":[{"content":{"role":"model","parts":[{"text":
// "<JSON>"}]},"finishReason":"STOP","index":0}],"usageMetadata":{…},
// "modelVersion":"<model> (local engine)"} with plausible token counts: a
// video window costs, per frame (fps frames a second), what the model
// charges at the request's mediaResolution (Gemini 3: 70 at LOW and MEDIUM,
// 280 at HIGH; unspecified: 258) plus 32 a second of audio, text a token per
// four bytes.
//
// # Errors
//
// Errors have Vertex's body, {"error":{"code":400,"message":"…","status":
// "INVALID_ARGUMENT"}}, which the SDK returns as a genai.APIError. A request
// is refused with 400 when contents are empty, a video part lacks a gs://
// URI or a video mime type, the window lies outside the video or exceeds
// Options.MaxWindow, fps is outside (0, 24], the input exceeds
// Options.MaxInputTokens, or the schema names neither kind; with 401 without
// a bearer token; with 404 for an unknown model or lesson.
//
// # Faults and inspection
//
// FailNext, NonJSONNext, BreakSchemaNext and BreakSchemaAlways spoil answers
// for tests (selected by lesson and kind with a Match); Received, Count and
// Windows tell what arrived, e.g. that a long lesson was analyzed in ordered
// windows.
package gemini
