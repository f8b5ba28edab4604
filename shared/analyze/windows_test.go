package analyze

import (
	"reflect"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/artifact"
)

// Windows are as few as fit, of even whole-second length, none longer
// than the limit, and the last ends with the video.
func TestPlanWindows(t *testing.T) {
	t.Parallel()
	w := func(start, end float64) artifact.Window { return artifact.Window{Start: start, End: end} }
	for _, tc := range []struct {
		duration float64
		window   int
		want     []artifact.Window
	}{
		{22.167, 10, []artifact.Window{w(0, 8), w(8, 16), w(16, 22.167)}},
		{22.167, 2700, []artifact.Window{w(0, 22.167)}},
		{2700, 2700, []artifact.Window{w(0, 2700)}},
		// 45 min and a sliver: two even halves, not 45 min and 0.4 s.
		{2700.4, 2700, []artifact.Window{w(0, 1351), w(1351, 2700.4)}},
		// Three hours: four windows of 45 min.
		{10800, 2700, []artifact.Window{w(0, 2700), w(2700, 5400), w(5400, 8100), w(8100, 10800)}},
		{4.2, 2, []artifact.Window{w(0, 2), w(2, 4), w(4, 4.2)}},
		{0.5, 10, []artifact.Window{w(0, 0.5)}},
		{0, 10, nil},
	} {
		got := planWindows(tc.duration, tc.window)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("planWindows(%g, %d) = %v, want %v", tc.duration, tc.window, got, tc.want)
		}
		for _, x := range got {
			if x.End-x.Start > float64(tc.window) {
				t.Errorf("planWindows(%g, %d): window %v is longer than %d s", tc.duration, tc.window, x, tc.window)
			}
		}
	}
}

func TestMergeWindows(t *testing.T) {
	t.Parallel()
	ws := []artifact.Window{{Start: 0, End: 10}, {Start: 10, End: 20}}
	slideA := artifact.VisualElement{Kind: artifact.VisualSlide, Title: "A", Text: "texto"}
	code := artifact.VisualElement{Kind: artifact.VisualCode, Code: "x = 1", Language: "python"}
	diagram := artifact.VisualElement{Kind: artifact.VisualDiagram, Description: "un flujo"}
	at := func(e artifact.VisualElement, start, end float64, desc ...string) artifact.VisualElement {
		e.Start, e.End = start, end
		if len(desc) > 0 {
			e.Description = desc[0]
		}
		return e
	}
	got := mergeWindows(ws, [][]artifact.VisualElement{
		{at(slideA, 2, 10, "primera"), at(code, 5, 9.6), at(diagram, 1, 10)},
		// The slide goes on across the border (its description worded
		// anew); the code too, within the second either side of the border
		// the windows' precision allows; a diagram described otherwise is
		// another diagram; a concept starts at 12.
		{at(slideA, 10, 15, "segunda"), at(code, 10.4, 18), at(diagram, 10, 11, "otro flujo"),
			{Kind: artifact.VisualConcept, Title: "C", Start: 12, End: 14}},
	})
	want := []artifact.VisualElement{
		at(diagram, 1, 10),
		at(slideA, 2, 15, "primera"),
		at(code, 5, 18),
		at(diagram, 10, 11, "otro flujo"),
		{Kind: artifact.VisualConcept, Title: "C", Start: 12, End: 14},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged =\n%+v\nwant\n%+v", got, want)
	}

	// An element far from the border is not joined, even if the same.
	got = mergeWindows(ws, [][]artifact.VisualElement{{at(slideA, 0, 4)}, {at(slideA, 14, 20)}})
	if len(got) != 2 {
		t.Errorf("a slide shown twice became %+v", got)
	}
	// Elements of the same start keep the kinds' order.
	got = mergeWindows(ws[:1], [][]artifact.VisualElement{{at(code, 0, 3), at(slideA, 0, 3)}})
	if got[0].Kind != artifact.VisualSlide {
		t.Errorf("order %+v, want the slide before its code", got)
	}
}

// A window never holds more tokens than the model takes.
func TestWindowLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		window time.Duration
		fps    float64
		want   int
	}{
		{45 * time.Minute, 1, 2700}, // 783,000 tokens: fits
		{45 * time.Minute, 2, 1898}, // 1.5 M would not: 548 tokens a second
		{45 * time.Minute, 24, 167},
		{10 * time.Second, 24, 10},
	} {
		got := windowLimit(tc.window, tc.fps, "")
		if got != tc.want {
			t.Errorf("windowLimit(%s, %g) = %d, want %d", tc.window, tc.fps, got, tc.want)
		}
		if tokens := float64(got) * (tokensPerFrame*tc.fps + tokensPerAudioSecond); tokens > maxInputTokens {
			t.Errorf("windowLimit(%s, %g): %g tokens a window", tc.window, tc.fps, tokens)
		}
	}
}
