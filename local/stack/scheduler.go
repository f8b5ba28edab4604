package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coursekb/pipeline/shared/sweep"
)

// sweepLog keeps what the local Cloud Scheduler's sweeps reported.
type sweepLog struct {
	mu      sync.Mutex
	reports []sweep.Report
}

func (l *sweepLog) add(r sweep.Report) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, r)
}

// Sweeps returns the reports of every sweep the stack has run so far.
func (s *Stack) Sweeps() []sweep.Report {
	s.sweeps.mu.Lock()
	defer s.sweeps.mu.Unlock()
	return append([]sweep.Report(nil), s.sweeps.reports...)
}

// schedule is the local Cloud Scheduler job of the sweeper: it calls the
// function every interval until ctx ends.
func (s *Stack) schedule(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Sweep(ctx) // a failed call is retried at the next tick, as the scheduler would
		}
	}
}

// Sweep runs one sweep, as Cloud Scheduler does: an HTTP POST to the
// sweeper function. Its report is kept (Sweeps).
func (s *Stack) Sweep(ctx context.Context) (sweep.Report, error) {
	var rep sweep.Report
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.FunctionsURL+"/Sweeper", nil)
	if err != nil {
		return rep, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rep, fmt.Errorf("call sweeper: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("sweeper answered %s: %s", resp.Status, body)
	}
	s.sweeps.add(rep)
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("sweeper answered %s: %v", resp.Status, rep.Errors)
	}
	return rep, nil
}
