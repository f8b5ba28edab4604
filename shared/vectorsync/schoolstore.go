package vectorsync

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// MetaSchool is the metadata key naming the school a vector store belongs
// to: how a store made by a creator that crashed before recording it is
// found again.
const MetaSchool = "coursekb_school"

// schoolStore returns the school's vector store id, creating the store the
// first time a lesson of the school is synced.
//
// Two lessons of a new school may arrive together. The school's Firestore
// document arbitrates: a transaction gives one delivery a creation lease and
// tells the others to wait for its record. The holder first looks for a
// store an earlier holder made and did not record (listed by MetaSchool),
// and creates one only if there is none; the first id recorded wins, and a
// creator that loses (its lease was taken over while it was slow) deletes
// its own store, which nothing uses yet. Listing alone could not do it: two
// creators that list at the same moment both find nothing.
//
// Once recorded, a school's store id never changes, so every sync after the
// first reads it with a plain read, outside any transaction: a hundred
// lessons of one school syncing together would otherwise all run a
// transaction on the one school document, and on the emulator (which locks
// what a transaction reads) they retried each other into a standstill.
// statsAt is when the school's store stats were last recorded (zero if
// unknown), for refreshStats.
func (s *Stage) schoolStore(ctx context.Context, log *slog.Logger, slug string) (id string, statsAt time.Time, err error) {
	if slug == "" {
		return "", time.Time{}, failure.Permanentf("lesson has no school: its knowledge has no vector store to go to")
	}
	sc, _, err := s.Store.School(ctx, slug)
	if err != nil {
		return "", time.Time{}, failure.Retryablef("%w", err)
	}
	if sc.VectorStoreID != "" {
		if sc.Stats != nil {
			statsAt = sc.Stats.At
		}
		return sc.VectorStoreID, statsAt, nil
	}
	id, err = s.createOrWait(ctx, log, slug)
	return id, time.Time{}, err
}

// createOrWait claims the creation of the school's store, or waits for the
// delivery that holds it to record one.
func (s *Stage) createOrWait(ctx context.Context, log *slog.Logger, slug string) (string, error) {
	// The wait for another creator is bounded by its lease as this process
	// measures time; a creator that died leaves a lease that the next
	// delivery, after it, takes over.
	giveUp := time.Now().Add(s.StoreCreationLease)
	delay := 100 * time.Millisecond
	for first := true; ; first = false {
		if !first {
			if time.Now().After(giveUp) {
				return "", failure.Retryablef("school %s: another delivery is creating its vector store", slug)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Second)
		}
		// A live creation is awaited with plain reads: a crowd of lessons
		// of a new school each running the claim's transaction would
		// contend with the holder's own transaction that records the
		// store, and delay it most (a hundred of them took 40 s on the
		// emulator).
		sc, _, err := s.Store.School(ctx, slug)
		if err != nil {
			return "", failure.Retryablef("%w", err)
		}
		if sc.VectorStoreID != "" {
			return sc.VectorStoreID, nil
		}
		if sc.StoreCreation != nil && time.Now().Before(sc.StoreCreation.LeaseUntil) {
			continue
		}
		c, err := s.Store.ClaimStoreCreation(ctx, slug, s.StoreCreationLease)
		if err != nil {
			return "", err
		}
		switch {
		case c.StoreID != "":
			return c.StoreID, nil
		case c.Token != "":
			return s.createStore(ctx, log, slug)
		}
	}
}

// createStore finds or makes the school's store while holding the creation
// lease, and records it.
func (s *Stage) createStore(ctx context.Context, log *slog.Logger, slug string) (string, error) {
	stores, err := s.OpenAI.Stores(ctx)
	if err != nil {
		return "", err
	}
	var mine []VectorStore
	for _, vs := range stores {
		if vs.Metadata[MetaSchool] == slug {
			mine = append(mine, vs)
		}
	}
	slices.SortFunc(mine, func(a, b VectorStore) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	id, created := "", false
	if len(mine) > 0 {
		id = mine[0].ID
		log.InfoContext(ctx, "found the school's vector store an earlier attempt made", "school", slug, "vectorStoreId", id)
	} else {
		vs, err := s.OpenAI.CreateStore(ctx, s.StoreNamePrefix+slug, map[string]string{MetaSchool: slug})
		if err != nil {
			return "", err
		}
		id, created = vs.ID, true
		log.InfoContext(ctx, "created the school's vector store", "school", slug, "vectorStoreId", id)
	}
	recorded, err := s.Store.RecordVectorStore(ctx, slug, id)
	if err != nil {
		// The store exists and carries the school's metadata: the next
		// creator finds it and records it.
		return "", err
	}
	if recorded != id && created {
		log.WarnContext(ctx, "another delivery recorded the school's vector store first; deleting ours",
			"school", slug, "ours", id, "recorded", recorded)
		if err := s.OpenAI.DeleteStore(ctx, id); err != nil {
			log.WarnContext(ctx, "could not delete the unused vector store", "vectorStoreId", id, "error", err.Error())
		}
	}
	return recorded, nil
}

// statsEvery is how often a school's store stats are recorded at most.
// They sit on the one document of the school, which every sync of the
// school would otherwise write (Firestore sustains about one write a
// second on a document); the cost report bills each lesson's own
// usageBytes, so stats a minute old lose nothing.
const statsEvery = time.Minute

// refreshStats records the store's counts and usage on the school's
// document, unless they were recorded less than statsEvery before lastAt's
// reading (zero: record now). It is informative: a failure is logged.
func (s *Stage) refreshStats(ctx context.Context, log *slog.Logger, slug, storeID string, lastAt time.Time) {
	if !lastAt.IsZero() && time.Since(lastAt) < statsEvery {
		return
	}
	vs, err := s.OpenAI.Store(ctx, storeID)
	if err == nil {
		err = s.Store.SetStoreStats(ctx, slug, storeStats(vs))
	}
	if err != nil {
		log.WarnContext(ctx, "vector store stats not recorded", "vectorStoreId", storeID, "error", fmt.Sprint(err))
	}
}

func storeStats(vs VectorStore) lessonstate.StoreStats {
	return lessonstate.StoreStats{
		Completed: vs.Completed, InProgress: vs.InProgress, Failed: vs.Failed, Total: vs.Total, UsageBytes: vs.UsageBytes,
	}
}
