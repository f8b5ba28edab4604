package vectorsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
)

// retire takes files out of the store and deletes them from Files. Deleting
// a file removes it from every store too; detaching first says so at the
// store itself, and costs nothing when it is already gone. Either already
// gone is not an error, so retiring is idempotent.
func (s *Stage) retire(ctx context.Context, storeID string, fileIDs []string) error {
	for _, id := range fileIDs {
		if storeID != "" {
			if err := s.OpenAI.Detach(ctx, storeID, id); err != nil {
				return err
			}
		}
		if err := s.OpenAI.DeleteFile(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Retire handles a removed lesson event: every file of the lesson — the
// live one its document names, those its school's store holds for it, and
// any upload named after it — is retired, and the live-file record cleared.
// It claims nothing: each step is idempotent, so repeated and concurrent
// deliveries end the same way. A lesson that came back since (at a newer
// version) is left to its own sync, which retires the older files once its
// new one is indexed; and only files up to the removed version are touched,
// so a returning lesson's new upload is never caught by a late removal.
func (s *Stage) Retire(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(logging.FromContext(ctx), ev.LessonID, ev.Version, lessonstate.StageSync).With("kind", ev.Kind)
	l, err := s.Store.Lesson(ctx, ev.LessonID)
	if errors.Is(err, lessonstate.ErrNotFound) {
		log.ErrorContext(ctx, "removal names an unknown lesson; acknowledged, nothing retired")
		return nil
	}
	if err != nil {
		return fmt.Errorf("retire lesson %s: %w", ev.LessonID, err)
	}
	if !l.Removed {
		log.InfoContext(ctx, "the lesson is back; its own sync retires the older files", "lessonVersion", l.Version)
		return nil
	}
	storeID := ""
	if l.School != "" {
		sc, _, err := s.Store.School(ctx, l.School)
		if err != nil {
			return fmt.Errorf("retire lesson %s: %w", ev.LessonID, err)
		}
		storeID = sc.VectorStoreID
	}
	inv, err := s.takeInventory(ctx, storeID, l.ID)
	if err != nil {
		return fmt.Errorf("retire lesson %s: %w", ev.LessonID, err)
	}
	ids := inv.upTo(l.Version, "")
	if err := s.retire(ctx, storeID, ids); err != nil {
		return fmt.Errorf("retire lesson %s: %w", ev.LessonID, err)
	}
	if lv := l.VectorStore; lv != nil {
		if err := s.retire(ctx, lv.StoreID, []string{lv.FileID}); err != nil {
			return fmt.Errorf("retire lesson %s: %w", ev.LessonID, err)
		}
		ids = append(ids, lv.FileID)
	}
	cleared, err := s.Store.ClearVectorFile(ctx, l.ID, ids)
	if err != nil {
		return fmt.Errorf("retire lesson %s: %w", ev.LessonID, err)
	}
	log.InfoContext(ctx, "removed lesson retired", "files", len(ids), "recordCleared", cleared)
	if storeID != "" && len(ids) > 0 {
		s.refreshStats(ctx, log, l.School, storeID, time.Time{})
	}
	return nil
}
