// Package download is the download stage: it claims a lesson version's
// download, streams the lesson's media into the raw bucket at
// lessons/{id}/v{version}/source.{ext}, and completes the stage. The object's
// finalize event starts the next stage, so a failed download must never leave
// an object behind.
package download

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/transfer"
)

// Store is the part of the lesson state store the stage uses.
type Store interface {
	Claim(ctx context.Context, lessonID, stage string, version int, lease time.Duration) (lessonstate.Claim, error)
	Complete(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string) error
	Fail(ctx context.Context, lessonID, stage string, version int, token, reason string, retryable bool) (string, error)
}

// Copier moves media into Cloud Storage.
type Copier interface {
	FromURL(ctx context.Context, src transfer.Source, dst transfer.Dest) (transfer.Result, error)
	FromObject(ctx context.Context, srcBucket, srcObject string, dst transfer.Dest, expect transfer.Source) (transfer.Result, error)
}

// Publisher announces failures on the lesson-events topic.
type Publisher interface {
	Publish(ctx context.Context, topic string, ev events.LessonEvent) (string, error)
}

// Stage runs downloads.
type Stage struct {
	store     Store
	copier    Copier
	publisher Publisher
	rawBucket string
	lease     time.Duration
}

// New returns the download stage writing into rawBucket.
func New(store Store, copier Copier, publisher Publisher, rawBucket string, lease time.Duration) *Stage {
	return &Stage{store: store, copier: copier, publisher: publisher, rawBucket: rawBucket, lease: lease}
}

// Output keys the stage records in the lesson's stage outputs.
const (
	OutURI         = "uri"
	OutSize        = "size"
	OutMD5         = "md5"
	OutContentType = "contentType"
	OutGeneration  = "generation"
)

// ObjectName is where a lesson version's source video lives in the raw bucket.
func ObjectName(lessonID string, version int, ext string) string {
	return fmt.Sprintf("lessons/%s/v%d/source.%s", lessonID, version, ext)
}

// Handle processes one lesson-discovered event. It returns nil when the
// message must be acknowledged (done, duplicate, stale, or failed for good)
// and an error only when a redelivery may succeed.
func (s *Stage) Handle(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(logging.FromContext(ctx), ev.LessonID, ev.Version, lessonstate.StageDownload)
	claim, err := s.store.Claim(ctx, ev.LessonID, lessonstate.StageDownload, ev.Version, s.lease)
	if errors.Is(err, lessonstate.ErrNotFound) {
		log.ErrorContext(ctx, "event names an unknown lesson; acknowledged, nothing written")
		return nil
	}
	if err != nil {
		return fmt.Errorf("download lesson %s v%d: %w", ev.LessonID, ev.Version, err)
	}
	if claim.Outcome != lessonstate.Claimed {
		log.InfoContext(ctx, "nothing to do", "claim", claim.Outcome.String())
		return nil
	}
	log.InfoContext(ctx, "download started", "attempt", claim.Stage.Attempts)
	res, err := s.transfer(ctx, claim.Lesson, ev.Version)
	if err != nil {
		return s.fail(ctx, log, ev, claim, err)
	}
	outputs := map[string]string{
		OutURI:         "gs://" + s.rawBucket + "/" + ObjectName(ev.LessonID, ev.Version, extOf(claim.Lesson.Media)),
		OutSize:        strconv.FormatInt(res.Size, 10),
		OutMD5:         res.MD5,
		OutContentType: res.ContentType,
		OutGeneration:  strconv.FormatInt(res.Generation, 10),
	}
	if err := s.store.Complete(ctx, ev.LessonID, lessonstate.StageDownload, ev.Version, claim.Token, outputs); err != nil {
		if errors.Is(err, lessonstate.ErrLeaseLost) {
			// Another delivery took over after our lease ran out; the object
			// is the same either way, and that owner will record it.
			log.WarnContext(ctx, "lease lost before completion; the new owner completes the stage")
			return nil
		}
		return fmt.Errorf("download lesson %s v%d: complete: %w", ev.LessonID, ev.Version, err)
	}
	log.InfoContext(ctx, "download done", "bytes", res.Size, "reused", res.Reused, "uri", outputs[OutURI])
	return nil
}

func (s *Stage) transfer(ctx context.Context, l lessonstate.Lesson, version int) (transfer.Result, error) {
	m := l.Media
	if m == nil || l.MediaStatus != "ready" {
		return transfer.Result{}, failure.Permanentf("lesson has no media to download (media status %q)", l.MediaStatus)
	}
	dst := transfer.Dest{
		Bucket: s.rawBucket,
		Object: ObjectName(l.ID, version, extOf(m)),
		Metadata: map[string]string{
			"lessonId": l.ID,
			"version":  strconv.Itoa(version),
			"courseId": l.CourseID,
		},
	}
	expect := transfer.Source{URL: m.URI, Size: m.Size, MD5: m.MD5}
	switch m.Kind {
	case "url":
		return s.copier.FromURL(ctx, expect, dst)
	case "object":
		bucket, object, ok := strings.Cut(strings.TrimPrefix(m.URI, "gs://"), "/")
		if !strings.HasPrefix(m.URI, "gs://") || !ok {
			return transfer.Result{}, failure.Permanentf("media object URI %q is not gs://bucket/object", m.URI)
		}
		return s.copier.FromObject(ctx, bucket, object, dst, expect)
	}
	return transfer.Result{}, failure.Permanentf("unknown media kind %q", m.Kind)
}

// fail records the failure. Permanent failures, and retryable ones that have
// used up their attempts, mark the stage failed and are announced on
// lesson-events; the message is then acknowledged.
func (s *Stage) fail(ctx context.Context, log *slog.Logger, ev events.LessonEvent, claim lessonstate.Claim, cause error) error {
	retryable := !failure.IsPermanent(cause)
	reason := cause.Error()
	state, err := s.store.Fail(ctx, ev.LessonID, lessonstate.StageDownload, ev.Version, claim.Token, reason, retryable)
	if err != nil && !errors.Is(err, lessonstate.ErrLeaseLost) {
		return fmt.Errorf("download lesson %s v%d: record failure %q: %w", ev.LessonID, ev.Version, reason, err)
	}
	if state != lessonstate.StateFailed {
		log.WarnContext(ctx, "download failed; will retry", "error", reason, "attempt", claim.Stage.Attempts)
		return fmt.Errorf("download lesson %s v%d: %w", ev.LessonID, ev.Version, cause)
	}
	log.ErrorContext(ctx, "download failed", "error", reason, "attempts", claim.Stage.Attempts)
	failed := events.LessonEvent{
		LessonID: ev.LessonID, Version: ev.Version, CourseID: claim.Lesson.CourseID, RunID: ev.RunID,
		From: lessonstate.StageDownload, Kind: events.KindFailed, Reason: reason,
	}
	if _, err := s.publisher.Publish(ctx, events.TopicLessonEvents, failed); err != nil {
		// The failure is recorded in Firestore, which the notifier's digest
		// reads too; losing the push notification is not worth a redelivery
		// that would find the stage already failed.
		log.ErrorContext(ctx, "could not announce the failure", "error", err)
	}
	return nil
}

// extOf picks the source object's extension from the media location.
func extOf(m *lessonstate.Media) string {
	if m == nil {
		return "mp4"
	}
	return transfer.Ext(m.URI, "")
}
