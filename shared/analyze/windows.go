package analyze

import (
	"cmp"
	"math"
	"slices"
	"time"

	"google.golang.org/genai"

	"github.com/coursekb/pipeline/shared/artifact"
)

// planWindows cuts a video of duration seconds into windows of at most
// window seconds (a whole number), as few as will do and of even length,
// their edges on whole seconds (all the SDK can send). Even windows keep a
// video a little longer than one window from ending in a sliver that
// costs a request of its own. The last window ends at duration.
func planWindows(duration float64, window int) []artifact.Window {
	if duration <= 0 || window < 1 {
		return nil
	}
	n := int(math.Ceil(duration / float64(window)))
	size := math.Ceil(duration / float64(n))
	var ws []artifact.Window
	for start := 0.0; start < duration; start += size {
		end := start + size
		if end >= duration || len(ws) == n-1 {
			end = duration
		}
		ws = append(ws, artifact.Window{Start: start, End: end})
		if end == duration {
			break
		}
	}
	return ws
}

// mergeWindows puts the windows' elements on one timeline, in order of
// start (then of kind, as artifact.VisualKinds lists them). An element a
// window border cut in two — the same slide, code or concept ending at the
// border in one window and starting there in the next — becomes one again.
func mergeWindows(ws []artifact.Window, elements [][]artifact.VisualElement) []artifact.VisualElement {
	var merged []artifact.VisualElement
	var previous []int // indexes in merged of the previous window's elements
	for k, els := range elements {
		var current []int
		for _, e := range els {
			if k > 0 {
				if i, ok := continued(merged, previous, e, ws[k].Start); ok {
					merged[i].End = math.Max(merged[i].End, e.End)
					continue
				}
			}
			merged = append(merged, e)
			current = append(current, len(merged)-1)
		}
		previous = current
	}
	slices.SortStableFunc(merged, func(a, b artifact.VisualElement) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return slices.Index(artifact.VisualKinds, a.Kind) - slices.Index(artifact.VisualKinds, b.Kind)
	})
	return merged
}

// continued finds, among the previous window's elements, the one e
// continues across the border: same element, ending at the border where e
// starts (within the window's precision).
func continued(merged []artifact.VisualElement, previous []int, e artifact.VisualElement, border float64) (int, bool) {
	if math.Abs(e.Start-border) > windowSlack {
		return 0, false
	}
	for _, i := range previous {
		a := merged[i]
		if math.Abs(a.End-border) <= windowSlack && sameElement(a, e) {
			return i, true
		}
	}
	return 0, false
}

// sameElement compares what identifies an element on screen. Descriptions
// are the model's words and may differ between windows, so they identify
// only elements that have nothing else (a diagram, a demonstration).
func sameElement(a, b artifact.VisualElement) bool {
	if a.Kind != b.Kind || a.Title != b.Title || a.Text != b.Text || a.Code != b.Code {
		return false
	}
	if a.Title == "" && a.Text == "" && a.Code == "" {
		return a.Description == b.Description
	}
	return true
}

// Token costs of video on Vertex AI, the dearest frame a resolution may
// cost (258 at the older models' default and MEDIUM, 280 at Gemini 3's
// HIGH), and the input limit of the Gemini Flash models: a window must fit
// in it.
const (
	tokensPerFrame       = 258
	tokensPerHighFrame   = 280
	tokensPerAudioSecond = 32
	maxInputTokens       = 1_048_576
	// promptReserve is room for the prompt's text and the schema.
	promptReserve = 8192
)

// windowLimit is the longest window, in whole seconds, the stage plans:
// the configured one, shortened when the frame rate would make it exceed
// the model's input limit (at 2 fps, 45 minutes of video are about 1.5
// million tokens: Vertex would refuse every such request).
func windowLimit(window time.Duration, fps float64, res genai.MediaResolution) int {
	perFrame := float64(tokensPerFrame)
	if res == genai.MediaResolutionHigh {
		perFrame = tokensPerHighFrame
	}
	perSecond := perFrame*fps + tokensPerAudioSecond
	fits := int(math.Floor(float64(maxInputTokens-promptReserve) / perSecond))
	return max(1, min(int(window/time.Second), fits))
}

func roundMilli(x float64) float64 { return math.Round(x*1000) / 1000 }
