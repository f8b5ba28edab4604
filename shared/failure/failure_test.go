package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestIsPermanent(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain error is retryable", base, false},
		{"retryable", &Retryable{Err: base}, false},
		{"permanent", &Permanent{Err: base}, true},
		{"wrapped permanent", fmt.Errorf("download lesson x: %w", Permanentf("too big")), true},
		{"retryable wrapping permanent stays permanent inside", &Retryable{Err: Permanentf("x")}, true},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("%s: IsPermanent = %v, want %v", tt.name, got, tt.want)
		}
	}
}
