package transcribe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/audio"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Output keys the stage keeps in its record. While it runs they say what
// the work in flight is (so a retried call resumes it and a poll finishes
// it); once done, what was made.
const (
	OutURI         = "uri"             // gs:// of transcript.json
	OutAudioSHA256 = "audioSha256"     // the audio's hash (audio.Result.SHA256)
	OutModel       = "model"           // the model of the recognition in flight, or of the transcript
	OutConfidence  = "confidence"      // the transcript's confidence, when reported
	OutEngine      = "engine"          // what answered (EngineSpeechV2, EngineLocal)
	OutLanguage    = "language"        // the language recognized
	OutDuration    = "durationSeconds" // the audio's length
	OutSegments    = "segments"        // how many segments
	OutOffsets     = "segmentOffsets"  // each segment's start, seconds, comma-separated
	OutReusedFrom  = "reusedFrom"      // the transcript of the same audio this one copies

	// OutOperation is the handle of the recognition in flight (operation
	// names joined by commas), valid only for the claim attempt
	// OutOperationAttempt names: one noted by an earlier attempt may have
	// failed, and is resumed only after a look at it.
	OutOperation        = "operation"
	OutOperationAttempt = "operationAttempt"
	// OutRecognitions lists the models that recognized this audio, in
	// order; OutBilled the operation handles whose audio seconds are in the
	// lesson's usage ledger (so a repeated poll does not count them twice).
	OutRecognitions = "recognitions"
	OutBilled       = "usageRecorded"
	// OutDraft is the primary model's transcript kept while the fallback
	// model tries to do better, with its confidence.
	OutDraft           = "draftUri"
	OutDraftConfidence = "draftConfidence"
)

// OperationStarting is the handle answered while another request of this
// version is still extracting the audio: polls keep asking until the
// recognition it starts has a name. The workflow polls whatever handle the
// last answer gave.
const OperationStarting = "starting"

// audioInfo is a version's extracted audio.
type audioInfo struct {
	sha256   string
	duration float64
	offsets  []float64
}

func fromExtraction(r audio.Result) audioInfo {
	a := audioInfo{sha256: r.SHA256, duration: r.DurationSeconds}
	for _, s := range r.Segments {
		a.offsets = append(a.offsets, s.Offset)
	}
	return a
}

// audioFromOutputs reads what an earlier step of this version noted.
func audioFromOutputs(out map[string]string) (audioInfo, bool) {
	a := audioInfo{sha256: out[OutAudioSHA256]}
	d, err := strconv.ParseFloat(out[OutDuration], 64)
	if a.sha256 == "" || err != nil || out[OutOffsets] == "" {
		return audioInfo{}, false
	}
	a.duration = d
	for _, f := range strings.Split(out[OutOffsets], ",") {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return audioInfo{}, false
		}
		a.offsets = append(a.offsets, v)
	}
	return a, true
}

func (a audioInfo) outputs() map[string]string {
	offs := make([]string, len(a.offsets))
	for i, o := range a.offsets {
		offs[i] = strconv.FormatFloat(o, 'f', 3, 64)
	}
	return map[string]string{
		OutAudioSHA256: a.sha256,
		OutDuration:    strconv.FormatFloat(a.duration, 'f', 3, 64),
		OutSegments:    strconv.Itoa(len(a.offsets)),
		OutOffsets:     strings.Join(offs, ","),
	}
}

// audioPrefix is where a version's segments live in the artifacts bucket,
// beside its transcript. Not in the raw bucket: every object finalized
// there is an event for the starter, which would be woken for nothing once
// per segment.
func audioPrefix(lessonID string, version int) string {
	return artifact.Prefix(lessonID, version) + "audio/"
}

// segmentObjects are the objects of a version's segments, in order.
func (a audioInfo) segmentObjects(lessonID string, version int) []string {
	objs := make([]string, len(a.offsets))
	for i := range a.offsets {
		objs[i] = audio.SegmentObject(audioPrefix(lessonID, version), i)
	}
	return objs
}

// currentOperation is the recognition the record's claim started, if any.
func currentOperation(rec lessonstate.Stage) (string, bool) {
	op := rec.Outputs[OutOperation]
	return op, op != "" && rec.Outputs[OutOperationAttempt] == strconv.Itoa(rec.Attempts)
}

// listed reports whether item is in a list of handles (semicolon-separated:
// a handle may hold commas); with appends it.
func listed(list, item string) bool { return slices.Contains(strings.Split(list, ";"), item) }

func with(list, item string) string {
	if list == "" {
		return item
	}
	return list + ";" + item
}

func formatConfidence(c float64) string { return strconv.FormatFloat(c, 'f', 4, 64) }

// speechPrefix is where a recognition by model writes its results.
func speechPrefix(bucket, lessonID string, version int, model string) string {
	return fmt.Sprintf("gs://%s/%sspeech/%s/", bucket, artifact.Prefix(lessonID, version), model)
}
