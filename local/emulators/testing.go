package emulators

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// ForTest starts an emulator for a test (or reuses the one named by the
// environment) and stops it when the test ends. It never skips: a test that
// needs an emulator fails, saying why, when the emulator cannot start.
func ForTest(tb testing.TB, kind Kind) *Emulator {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := Start(ctx, kind)
	if err != nil {
		tb.Fatalf("integration test needs the %s emulator and it could not start: %v", kind, err)
	}
	tb.Cleanup(e.Stop)
	tb.Setenv(kind.EnvVar(), e.Host)
	return e
}

var projectSeq atomic.Int64

// ProjectID returns a project id no other test in this process uses, so tests
// sharing one emulator do not see each other's data.
func ProjectID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, projectSeq.Add(1))
}
