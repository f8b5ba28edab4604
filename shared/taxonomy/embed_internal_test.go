package taxonomy

import (
	"slices"
	"testing"
)

func TestBatchesKeepToTheRequestLimits(t *testing.T) {
	many := make([]int, 2*MaxInputs+5)
	for i := range many {
		many[i] = 1
	}
	if got := batches(many); !slices.Equal(got, [][2]int{{0, MaxInputs}, {MaxInputs, 2 * MaxInputs}, {2 * MaxInputs, 2*MaxInputs + 5}}) {
		t.Errorf("by count: %v", got)
	}
	big := []int{8000, 8000, 8000}
	for range 40 {
		big = append(big, 8000)
	}
	for _, b := range batches(big) {
		sum := 0
		for _, n := range big[b[0]:b[1]] {
			sum += n
		}
		if sum > MaxRequestTokens || b[1] <= b[0] {
			t.Errorf("batch %v holds %d tokens", b, sum)
		}
	}
	if got := batches(nil); len(got) != 0 {
		t.Errorf("no inputs: %v", got)
	}
}
