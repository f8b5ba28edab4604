package emulators

import (
	"context"
	"fmt"
	"os"
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

// RunTests runs a package's tests with one shared emulator of each kind, for
// use from TestMain: starting a JVM per test costs seconds each. Tests still
// call ForTest, which then reuses the shared emulator (and fails, saying why,
// if it could not start).
func RunTests(m *testing.M, kinds ...Kind) int {
	var started []*Emulator
	for _, kind := range kinds {
		if os.Getenv(kind.EnvVar()) != "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		e, err := Start(ctx, kind)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "shared %s emulator did not start (each test will try, and fail, on its own): %v\n", kind, err)
			continue
		}
		os.Setenv(kind.EnvVar(), e.Host)
		started = append(started, e)
	}
	code := m.Run()
	for _, e := range started {
		os.Unsetenv(e.Kind.EnvVar())
		e.Stop()
	}
	return code
}
