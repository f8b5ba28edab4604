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
	"github.com/coursekb/pipeline/shared/media"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/transfer"
)

// Store is the part of the lesson state store the stage uses.
type Store interface {
	Claim(ctx context.Context, lessonID, stage string, version int, lease time.Duration) (lessonstate.Claim, error)
	Complete(ctx context.Context, lessonID, stage string, version int, token string, outputs map[string]string) error
	Fail(ctx context.Context, lessonID, stage string, version int, token, reason string, retryable bool) (lessonstate.Failure, error)
}

// Copier moves media into Cloud Storage.
type Copier interface {
	FromURL(ctx context.Context, src transfer.Source, dst transfer.Dest) (transfer.Result, error)
	FromObject(ctx context.Context, srcBucket, srcObject string, dst transfer.Dest, expect transfer.Source) (transfer.Result, error)
}

// Links gives a page's current media link from the media manifest.
type Links interface {
	Entry(ctx context.Context, pageID string, fresh bool) (media.Entry, error)
}

// Announcer publishes an event the store queued in a lesson's outbox.
type Announcer interface {
	Event(ctx context.Context, lessonID string, ev events.LessonEvent) error
}

// Deps are the stage's collaborators and settings.
type Deps struct {
	Store     Store
	Copier    Copier
	Links     Links
	Announcer Announcer
	RawBucket string
	// Lease is how long a claimed download stays owned.
	Lease time.Duration
	// Outcome gives the context the final Complete or Fail is written on:
	// detached from the request's cancellation, with its own deadline.
	Outcome func(context.Context) (context.Context, context.CancelFunc)
}

// Stage runs downloads.
type Stage struct{ Deps }

// New returns the download stage, or an error naming what is missing.
func New(d Deps) (*Stage, error) {
	if err := setup.Missing("download", map[string]any{
		"store": d.Store, "copier": d.Copier, "links": d.Links, "announcer": d.Announcer, "outcome": d.Outcome,
	}); err != nil {
		return nil, err
	}
	if d.RawBucket == "" || d.Lease <= 0 {
		return nil, fmt.Errorf("download: raw bucket %q and lease %s must be set", d.RawBucket, d.Lease)
	}
	return &Stage{d}, nil
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
// message must be acknowledged (done, duplicate, stale, busy elsewhere, or
// failed for good) and an error only when a redelivery may succeed.
func (s *Stage) Handle(ctx context.Context, ev events.LessonEvent) error {
	log := logging.Lesson(logging.FromContext(ctx), ev.LessonID, ev.Version, lessonstate.StageDownload)
	claim, err := s.Store.Claim(ctx, ev.LessonID, lessonstate.StageDownload, ev.Version, s.Lease)
	if errors.Is(err, lessonstate.ErrNotFound) {
		log.ErrorContext(ctx, "event names an unknown lesson; acknowledged, nothing written")
		return nil
	}
	if err != nil {
		return fmt.Errorf("download lesson %s v%d: %w", ev.LessonID, ev.Version, err)
	}
	if claim.Outcome != lessonstate.Claimed {
		// Busy included: the owner's lease ends, and the sweeper re-sends
		// the work if the owner dies holding it.
		log.InfoContext(ctx, "nothing to do", "claim", claim.Outcome.String())
		return nil
	}
	log.InfoContext(ctx, "download started", "attempt", claim.Stage.Attempts)
	res, err := s.transfer(ctx, log, claim.Lesson, ev.Version)

	// The outcome is written even when the request was cut off meanwhile.
	octx, cancel := s.Outcome(ctx)
	defer cancel()
	if err != nil {
		return s.fail(octx, log, ev, claim, err)
	}
	outputs := map[string]string{
		OutURI:         "gs://" + s.RawBucket + "/" + ObjectName(ev.LessonID, ev.Version, extOf(claim.Lesson.Media)),
		OutSize:        strconv.FormatInt(res.Size, 10),
		OutMD5:         res.MD5,
		OutContentType: res.ContentType,
		OutGeneration:  strconv.FormatInt(res.Generation, 10),
	}
	if err := s.Store.Complete(octx, ev.LessonID, lessonstate.StageDownload, ev.Version, claim.Token, outputs); err != nil {
		if errors.Is(err, lessonstate.ErrLeaseLost) {
			// Another delivery took over after our lease ran out; the object
			// is the same either way, and that owner will record it.
			log.WarnContext(ctx, "lease lost before completion; the new owner completes the stage")
			return nil
		}
		// The stage stays running under our lease: a redelivery finds it
		// busy, and the sweeper re-drives it once the lease ends; the next
		// attempt finds the object and reuses it.
		return fmt.Errorf("download lesson %s v%d: complete: %w", ev.LessonID, ev.Version, err)
	}
	log.InfoContext(ctx, "download done", "bytes", res.Size, "reused", res.Reused, "uri", outputs[OutURI])
	return nil
}

func (s *Stage) transfer(ctx context.Context, log *slog.Logger, l lessonstate.Lesson, version int) (transfer.Result, error) {
	m := l.Media
	if m == nil || l.MediaStatus != lessonstate.MediaReady {
		return transfer.Result{}, failure.Permanentf("lesson has no media to download (media status %q)", l.MediaStatus)
	}
	dst := transfer.Dest{
		Bucket: s.RawBucket,
		Object: ObjectName(l.ID, version, extOf(m)),
		Metadata: map[string]string{
			"lessonId": l.ID,
			"version":  strconv.Itoa(version),
			"courseId": l.CourseID,
		},
	}
	switch m.Kind {
	case media.KindURL:
		return s.fromLink(ctx, log, m, dst)
	case media.KindObject:
		bucket, object, ok := strings.Cut(strings.TrimPrefix(m.Ref, "gs://"), "/")
		if !strings.HasPrefix(m.Ref, "gs://") || !ok {
			return transfer.Result{}, failure.Permanentf("media object %q is not gs://bucket/object", m.Ref)
		}
		return s.Copier.FromObject(ctx, bucket, object, dst, transfer.Source{URL: m.Ref, Size: m.Size, MD5: m.MD5})
	}
	return transfer.Result{}, failure.Permanentf("unknown media kind %q", m.Kind)
}

// fromLink downloads the media the manifest lists for the lesson, asking it
// for the current link. A link the host refuses (an expired signature) is
// asked for once more, fresh: the producer may have re-signed the manifest
// since detection or since this instance last read it.
func (s *Stage) fromLink(ctx context.Context, log *slog.Logger, m *lessonstate.Media, dst transfer.Dest) (transfer.Result, error) {
	e, err := s.Links.Entry(ctx, m.Ref, false)
	if err != nil {
		return transfer.Result{}, err
	}
	src := transfer.Source{URL: e.URL, Size: m.Size, MD5: m.MD5}
	res, err := s.Copier.FromURL(ctx, src, dst)
	if !errors.Is(err, transfer.ErrLinkRefused) {
		return res, err
	}
	log.WarnContext(ctx, "media host refused the link; asking the media source for a current one", "error", err.Error())
	fresh, ferr := s.Links.Entry(ctx, m.Ref, true)
	if ferr != nil {
		return transfer.Result{}, fmt.Errorf("%w; and asking again: %w", err, ferr)
	}
	if fresh.URL == e.URL {
		return transfer.Result{}, fmt.Errorf("%w (the media manifest still lists this link: re-sign it)", err)
	}
	src.URL = fresh.URL
	return s.Copier.FromURL(ctx, src, dst)
}

// fail records the failure. Permanent failures, and retryable ones that have
// used up their attempts, mark the stage failed and are announced once on
// lesson-events (queued in the same write, relayed here); the message is then
// acknowledged.
func (s *Stage) fail(ctx context.Context, log *slog.Logger, ev events.LessonEvent, claim lessonstate.Claim, cause error) error {
	retryable := !failure.IsPermanent(cause)
	reason := cause.Error()
	f, err := s.Store.Fail(ctx, ev.LessonID, lessonstate.StageDownload, ev.Version, claim.Token, reason, retryable)
	switch {
	case errors.Is(err, lessonstate.ErrLeaseLost):
		log.WarnContext(ctx, "download failed after its lease was taken over; the new owner decides", "error", reason)
		return nil
	case err != nil:
		// Still running under our lease: the sweeper re-drives it after.
		return fmt.Errorf("download lesson %s v%d: record failure %q: %w", ev.LessonID, ev.Version, reason, err)
	case f.State != lessonstate.StateFailed:
		log.WarnContext(ctx, "download failed; will retry", "error", reason, "attempt", claim.Stage.Attempts)
		return fmt.Errorf("download lesson %s v%d: %w", ev.LessonID, ev.Version, cause)
	}
	log.ErrorContext(ctx, "download failed", "error", reason, "attempts", claim.Stage.Attempts)
	if err := s.Announcer.Event(ctx, ev.LessonID, *f.Announce); err != nil {
		// Queued in the outbox with the failure: the sweeper's next flush
		// announces it.
		log.WarnContext(ctx, "failure announcement left in the outbox", "error", err.Error())
	}
	return nil
}

// extOf is the source object's extension, as detection recorded it.
func extOf(m *lessonstate.Media) string {
	if m == nil || m.Ext == "" {
		return "mp4"
	}
	return m.Ext
}
