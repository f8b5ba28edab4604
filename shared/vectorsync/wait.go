package vectorsync

import (
	"context"
	"errors"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
)

// Polling of an attachment being indexed: the server's openai-poll-after-ms
// when it sends one, else from firstPoll doubling up to maxPoll.
const (
	firstPoll = 250 * time.Millisecond
	maxPoll   = 5 * time.Second
)

// wait polls an attachment until it leaves in_progress, for at most
// IndexTimeout. A failed or cancelled file is returned as it is: the SDK's
// own poll helper does the same, so the caller must look at the status. The
// deadline passing is retryable: the next attempt finds the attachment and
// waits on it again, uploading nothing.
func (a *attempt) wait(ctx context.Context, storeID string, sf StoreFile) (StoreFile, error) {
	if sf.Status != StatusInProgress {
		return sf, nil
	}
	wctx, cancel := context.WithTimeout(ctx, a.IndexTimeout)
	defer cancel()
	timedOut := func() error {
		return failure.Retryablef("%s is still indexing in vector store %s after %s; the next attempt waits on the same attachment",
			sf.FileID, storeID, a.IndexTimeout)
	}
	delay := firstPoll
	for {
		got, hint, err := a.OpenAI.StoreFile(wctx, storeID, sf.FileID)
		switch {
		case err != nil && ctx.Err() == nil && wctx.Err() != nil:
			return StoreFile{}, timedOut()
		case errors.Is(err, ErrNotFound):
			return StoreFile{}, failure.Retryablef("%s left vector store %s while it was indexing (retired by a removal or by hand): %w", sf.FileID, storeID, err)
		case err != nil:
			return StoreFile{}, err
		case got.Status != StatusInProgress:
			return got, nil
		}
		pause := delay
		if hint > 0 {
			pause = min(hint, maxPoll)
		}
		delay = min(2*delay, maxPoll)
		t := time.NewTimer(pause)
		select {
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return StoreFile{}, ctx.Err()
			}
			return StoreFile{}, timedOut()
		case <-t.C:
		}
	}
}
