package enrich

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// maxArtifactBytes bounds what is read of a transcript or an analysis: a
// three-hour lesson's transcript is a few megabytes.
const maxArtifactBytes = 128 << 20

// inputs are the lesson version's transcript and analysis, as the process
// step left them, and where they were read from.
type inputs struct {
	transcript    artifact.Transcript
	analysis      artifact.Analysis
	transcriptURI string
	// analysisURI is empty when the analysis was skipped.
	analysisURI    string
	analysisReason string
}

// sources names the inputs for reasons.
func (in inputs) sources() string {
	a := in.analysisURI
	if a == "" {
		a = "analysis skipped"
		if in.analysisReason != "" {
			a += ": " + in.analysisReason
		}
	}
	return "transcript " + in.transcriptURI + ", " + a
}

// inputs reads what the transcribe and analyze records of this version
// name. After a change of title alone, those records were carried over
// from the version before, with that version's artifact URIs: the
// transcript and analysis are read from there, and taken as this
// version's (the chunks and knowledge.md are this version's).
func (s *Stage) inputs(ctx context.Context, l lessonstate.Lesson, version int) (inputs, error) {
	var in inputs
	tr := l.Stages[lessonstate.StageTranscribe]
	if tr.Version != version || tr.State != lessonstate.StateDone {
		return in, failure.Permanentf("the transcribe stage is %s at v%d, not done at v%d: there is no transcript to enrich (replay the lesson from transcribe)",
			orNone(tr.State), tr.Version, version)
	}
	if in.transcriptURI = tr.Outputs[recordURI]; in.transcriptURI == "" {
		return in, failure.Permanentf("the transcribe stage of v%d is done but names no transcript (outputs %q)", version, recordURI)
	}
	if err := s.readArtifact(ctx, in.transcriptURI, &in.transcript); err != nil {
		return in, fmt.Errorf("transcript: %w", err)
	}
	if err := sameLesson("transcript", in.transcriptURI, in.transcript.LessonID, in.transcript.Version, l.ID, version); err != nil {
		return in, err
	}

	an := l.Stages[lessonstate.StageAnalyze]
	switch {
	case an.Version == version && an.State == lessonstate.StateSkipped:
		in.analysisReason = an.Error
	case an.Version == version && an.State == lessonstate.StateDone:
		if in.analysisURI = an.Outputs[recordURI]; in.analysisURI == "" {
			return in, failure.Permanentf("the analyze stage of v%d is done but names no analysis (outputs %q)", version, recordURI)
		}
		if err := s.readArtifact(ctx, in.analysisURI, &in.analysis); err != nil {
			return in, fmt.Errorf("analysis: %w", err)
		}
		if err := sameLesson("analysis", in.analysisURI, in.analysis.LessonID, in.analysis.Version, l.ID, version); err != nil {
			return in, err
		}
	default:
		return in, failure.Permanentf("the analyze stage is %s at v%d, neither done nor skipped at v%d (replay the lesson from analyze)",
			orNone(an.State), an.Version, version)
	}
	// The chunker checks that what it cuts belongs to the version it
	// labels: a carried-over artifact is this version's input.
	in.transcript.LessonID, in.transcript.Version = l.ID, version
	in.analysis.LessonID, in.analysis.Version = l.ID, version
	return in, nil
}

// sameLesson checks that an artifact is of the lesson, and of this version
// or an earlier one (carried over).
func sameLesson(what, uri, gotID string, gotVersion int, id string, version int) error {
	if (gotID != "" && gotID != id) || gotVersion > version {
		return failure.Permanentf("the %s at %s is of lesson %s v%d, not of %s v%d or earlier", what, uri, gotID, gotVersion, id, version)
	}
	return nil
}

func orNone(state string) string {
	if state == "" {
		return "not started"
	}
	return state
}

// readArtifact reads a JSON artifact by its gs:// URI. A missing or
// unreadable object is permanent: only a replay of the stage that makes it
// can help.
func (s *Stage) readArtifact(ctx context.Context, uri string, v any) error {
	bucket, name, ok := strings.Cut(strings.TrimPrefix(uri, "gs://"), "/")
	if !strings.HasPrefix(uri, "gs://") || !ok || bucket == "" || name == "" {
		return failure.Permanentf("%q is not a gs://bucket/object URI", uri)
	}
	r, err := s.Storage.Bucket(bucket).Object(name).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return failure.Permanentf("%s is missing", uri)
	}
	if err != nil {
		return failure.Retryablef("read %s: %w", uri, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxArtifactBytes+1))
	if err != nil {
		return failure.Retryablef("read %s: %w", uri, err)
	}
	if len(b) > maxArtifactBytes {
		return failure.Permanentf("%s is over %d bytes", uri, maxArtifactBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return failure.Permanentf("%s is not valid JSON of its kind: %v", uri, err)
	}
	return nil
}

// course is what the lesson's course adds to the prompt and the link.
type course struct {
	subdomain string
	// earlier are the titles of the course's lessons before this one, in
	// course order, the nearest maxEarlier.
	earlier []string
}

// courseContext reads the course's Club subdomain and its earlier lessons'
// titles: one document and one query on courseId, with only the fields
// wanted.
func (s *Stage) courseContext(ctx context.Context, l lessonstate.Lesson) (course, error) {
	var c course
	if l.CourseID == "" {
		return c, nil
	}
	snap, err := s.Firestore.Collection(lessonstate.CollCourses).Doc(l.CourseID).Get(ctx)
	switch {
	case status.Code(err) == codes.NotFound:
		// No link then; the detector writes the course before its lessons.
	case err != nil:
		return c, failure.Retryablef("read course %s: %w", l.CourseID, err)
	default:
		var doc lessonstate.Course
		if err := snap.DataTo(&doc); err != nil {
			return c, failure.Permanentf("course %s: decode: %v", l.CourseID, err)
		}
		c.subdomain = doc.ClubSubdomain
	}

	type sibling struct {
		ModuleOrder int    `firestore:"moduleOrder"`
		PageOrder   int    `firestore:"pageOrder"`
		Title       string `firestore:"title"`
		Removed     bool   `firestore:"removed"`
	}
	var before []sibling
	it := s.Firestore.Collection(lessonstate.CollLessons).Where("courseId", "==", l.CourseID).
		Select("moduleOrder", "pageOrder", "title", "removed").Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return c, failure.Retryablef("read the lessons of course %s: %w", l.CourseID, err)
		}
		var sb sibling
		if err := snap.DataTo(&sb); err != nil || snap.Ref.ID == l.ID || sb.Removed || strings.TrimSpace(sb.Title) == "" {
			continue
		}
		if sb.ModuleOrder < l.ModuleOrder || (sb.ModuleOrder == l.ModuleOrder && sb.PageOrder < l.PageOrder) {
			before = append(before, sb)
		}
	}
	slices.SortFunc(before, func(a, b sibling) int {
		return cmp.Or(cmp.Compare(a.ModuleOrder, b.ModuleOrder), cmp.Compare(a.PageOrder, b.PageOrder), strings.Compare(a.Title, b.Title))
	})
	if len(before) > maxEarlier {
		before = before[len(before)-maxEarlier:]
	}
	for _, sb := range before {
		c.earlier = append(c.earlier, sb.Title)
	}
	return c, nil
}
