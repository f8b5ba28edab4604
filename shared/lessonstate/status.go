package lessonstate

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// RecentRuns returns the last n detection runs, newest first.
func (s *Store) RecentRuns(ctx context.Context, n int) ([]Run, error) {
	snaps, err := s.client.Collection(CollRuns).OrderBy("startedAt", firestore.Desc).Limit(n).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read recent runs: %w", err)
	}
	runs := make([]Run, 0, len(snaps))
	for _, snap := range snaps {
		r, err := decodeRun(snap)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// Now is the store's clock, for reports that compare stored times with it.
func (s *Store) Now() time.Time { return s.now() }
