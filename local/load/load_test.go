package load

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/emulators"
)

// lockedBuffer collects the functions' logs from other goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Issue 9 in small: ten lessons through the whole stack with every fault
// on at once — a fifth of every outside service's answers refused, every
// delivery made three times out of order, the functions process killed at
// least five times, each lesson's first transfer cut — and the poison
// inputs. Every lesson syncs once, every poison lesson fails with its
// reason, and nothing is done twice that must be done once. (`make load`
// runs the same at a hundred lessons.)
func TestLoadUnderEveryFault(t *testing.T) {
	faults, err := ParseFaults("all")
	if err != nil {
		t.Fatal(err)
	}
	var progress, logs lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	started := time.Now()
	rep, err := Run(ctx, Options{
		Lessons: 10, Seed: 9, Faults: faults, Poison: true, Lease: 20 * time.Second,
		Dir: t.TempDir(), ProjectID: emulators.ProjectID("load"), Timeout: 5 * time.Minute,
		Logs: &logs, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("load run: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Logf("load run in %s:\n%s%s", time.Since(started).Round(time.Second), progress.String(), out.String())
	for _, c := range rep.Checks {
		if !c.Passed {
			t.Errorf("%s: target %s, measured %s\n  %s", c.Name, c.Target, c.Figure, strings.Join(c.Detail, "\n  "))
		}
	}
	if rep.Kills < 5 || rep.MediaCuts < 10 {
		t.Errorf("%d kills and %d cut transfers: the faults did not all happen", rep.Kills, rep.MediaCuts)
	}
	// Hotmart, Slack and SMTP get a handful of requests in a run this
	// small: their refusals are reported, not required.
	for _, name := range []string{"media host", "speech", "gemini", "openai"} {
		if s := rep.Chaos[name]; s.Refusals() == 0 {
			t.Errorf("%s refused none of its %d answers: the error fault did not reach it", name, s.Total())
		}
	}
	if rep.Deliveries.ByOutcome["duplicated"] == 0 {
		t.Error("no delivery was duplicated")
	}
	if rep.Cost == nil || rep.Cost.PerHourTotal <= 0 {
		t.Errorf("no cost per video hour: %s", rep.CostError)
	}
	if t.Failed() {
		t.Logf("function logs (tail):\n%s", tail(logs.String(), 20000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Faults parse by name, alone or together.
func TestParseFaults(t *testing.T) {
	for in, want := range map[string]Faults{
		"all":               {Errors: true, Duplicates: true, Kills: true, Cuts: true},
		"none":              {},
		"":                  {},
		"errors,kills":      {Errors: true, Kills: true},
		"Duplicates , cuts": {Duplicates: true, Cuts: true},
	} {
		got, err := ParseFaults(in)
		if err != nil || got != want {
			t.Errorf("ParseFaults(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseFaults("errors,meteors"); err == nil {
		t.Error("an unknown fault was accepted")
	}
}

// One pair of emulators serves the package's runs.
func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }
