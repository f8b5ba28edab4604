package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/media"
)

// poison is a lesson that must fail, and what its reason must say.
type poison struct {
	what   string // what is wrong with it
	stage  string // the stage that must fail
	reason string // a word the reason must contain (lower case)
}

// Poison lessons: one course of them, in the programming school.
const (
	poisonNoAudio  = "pzNoAudio01"
	poisonSilent   = "pzEmptyTr02"
	poisonNoFit    = "pzNoFit003"
	poisonHuge     = "pzHuge0004"
	poisonChecksum = "pzBadMd505"
	// hugeBytes is what the oversized video's server says it sends.
	hugeBytes = 48 << 20
)

var poisonLessons = map[string]poison{
	poisonNoAudio:  {"a video with no audio track", lessonstate.StageTranscribe, "audio"},
	poisonSilent:   {"an empty transcript (nothing said) and nothing shown", lessonstate.StageEnrich, "nothing to enrich"},
	poisonNoFit:    {"a Gemini answer that never fits the schema", lessonstate.StageAnalyze, "none valid"},
	poisonHuge:     {fmt.Sprintf("an oversized video (%d MiB, the limit %d MiB)", hugeBytes>>20, maxMediaBytes>>20), lessonstate.StageDownload, "limit"},
	poisonChecksum: {"a checksum mismatch (the manifest's MD5 is wrong)", lessonstate.StageDownload, "md5"},
}

// addPoisonLessons adds the poison course to the catalog and the videos to
// make (the oversized one is served by the media host's synthetic bodies
// and needs none).
func (r *run) addPoisonLessons(cat sample.Catalog, specs []sample.LoadVideo) (sample.Catalog, []sample.LoadVideo) {
	_, extra := sample.LoadCourse(sample.LoadOptions{Lessons: len(poisonLessons), Seed: r.o.Seed + 99})
	prod := sample.Product{ID: 4299999, Name: "Lecciones envenenadas", Ucode: "load-poison", Status: "ACTIVE",
		Format: "ONLINE_COURSE", ClubSubdomain: "carga-veneno", School: "programacion", Language: "es-ES",
		Modules: []sample.Module{{ModuleID: "pzM01", Name: "Veneno", Sequence: 1}}}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range poisonLessons {
			if !yield(id) {
				return
			}
		}
	})
	for i, id := range ids {
		v := extra[i]
		v.Page.PageID, v.FileName, v.Page.PageOrder = id, id+".mp4", i+1
		v.Page.Name = "Veneno: " + poisonLessons[id].what
		switch id {
		case poisonNoAudio:
			v.NoAudio = true
		case poisonSilent:
			// Nothing said (the engine's transcript has no words) and
			// nothing shown: a silent lesson with slides is a screencast,
			// synced from what it shows; this one has nothing to enrich.
			v.Page.Narration, v.Page.Slides = "", nil
		}
		prod.Modules[0].Pages = append(prod.Modules[0].Pages, v.Page)
		r.bad[id] = poisonLessons[id]
		if id != poisonHuge {
			specs = append(specs, v)
		}
	}
	cat.Products = append(cat.Products, prod)
	return cat, specs
}

// putManifest writes the media manifest: every video the media host
// serves, and the poison entries (the oversized video's link to a body
// larger than MAX_MEDIA_BYTES, a wrong MD5).
func (r *run) putManifest(ctx context.Context) error {
	m := media.Manifest{Pages: map[string]media.Entry{}}
	for _, v := range r.vids {
		m.Pages[v.PageID] = media.Entry{URL: r.st.MediaURL + r.st.Media.Sign(v.PageID+".mp4", 24*time.Hour), Size: v.Size, MD5: v.MD5}
	}
	if r.o.Poison {
		m.Pages[poisonHuge] = media.Entry{URL: fmt.Sprintf("%s/synthetic/%d.mp4", r.st.MediaURL, hugeBytes)}
		e := m.Pages[poisonChecksum]
		e.MD5 = strings.Repeat("0", 32)
		m.Pages[poisonChecksum] = e
		r.st.Gemini.BreakSchemaAlways(poisonNoFit)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(m); err != nil {
		return err
	}
	return r.st.PutObject(ctx, stack.RawBucket, stack.ManifestObject, buf.Bytes(), nil)
}

// AttrPoison marks a message the run published as a poison input; its
// value says what it is, so a dead letter of one explains itself.
const AttrPoison = "loadPoison"

// hostileIDs are lesson ids no page has: unknown, or shaped to escape a
// document path or an object name.
var hostileIDs = []string{"nope0000000", "../../etc/passwd", "a/b", "..", strings.Repeat("x", 300), "pyL1' OR '1'='1", "lección😀", ""}

// publishPoison publishes malformed events, and events naming unknown and
// hostile lesson ids, on every topic the functions read.
func (r *run) publishPoison(ctx context.Context) error {
	type msg struct {
		topic, what string
		data        []byte
		attrs       map[string]string
	}
	var msgs []msg
	bodies := []struct{ what, data string }{
		{"not JSON", `{{{`},
		{"an empty body", ``},
		{"JSON of the wrong shape", `["lessonId", 1]`},
		{"no version", `{"lessonId":"nope0000000"}`},
		{"a negative version", `{"lessonId":"nope0000000","version":-3}`},
		{"binary bytes", "\x00\xff\xfe\x01garbage"},
	}
	topics := []string{events.TopicLessonDiscovered, events.TopicLessonDownloaded, events.TopicLessonProcessed,
		events.TopicLessonEnriched, events.TopicLessonEvents, events.TopicLessonReplay}
	for _, t := range topics {
		for _, b := range bodies {
			msgs = append(msgs, msg{t, "malformed event on " + t + ": " + b.what, []byte(b.data), map[string]string{}})
		}
		for _, id := range hostileIDs {
			ev := map[string]any{"lessonId": id, "version": 1}
			switch t {
			case events.TopicLessonEvents:
				ev["kind"], ev["runId"] = events.KindSynced, "run-nope"
			case events.TopicLessonReplay:
				ev["from"] = lessonstate.StageEnrich
			}
			data, _ := json.Marshal(ev)
			msgs = append(msgs, msg{t, fmt.Sprintf("lesson id %q on %s", trim(id), t), data, map[string]string{events.AttrLessonID: id, events.AttrVersion: "1"}})
		}
	}
	// The raw bucket's notifications: an object outside any lesson's
	// place, one of an unknown lesson, one whose name climbs out.
	for _, name := range []string{"lessons/nope0000000/v1/source.mp4", "lessons/../../etc/v1/source.mp4", "ingest/whatever.mp4", "lessons/a/b/v1/source.mp4"} {
		data, _ := json.Marshal(map[string]any{"bucket": stack.RawBucket, "name": name, "generation": "1", "size": "10",
			"metadata": map[string]string{"lessonId": "nope0000000", "version": "1"}})
		msgs = append(msgs, msg{stack.FinalizeTopic, "a finalize notification for " + name, data, map[string]string{
			"eventType": "OBJECT_FINALIZE", "bucketId": stack.RawBucket, "objectId": name, "objectGeneration": "1", "payloadFormat": "JSON_API_V1"}})
	}
	msgs = append(msgs, msg{stack.FinalizeTopic, "a malformed finalize notification", []byte(`{{{`), map[string]string{
		"eventType": "OBJECT_FINALIZE", "bucketId": stack.RawBucket, "objectId": "lessons/x", "payloadFormat": "JSON_API_V1"}})
	for _, m := range msgs {
		m.attrs[AttrPoison] = m.what
		id, err := r.st.QuietPublish(ctx, m.topic, m.data, m.attrs)
		if err != nil {
			return fmt.Errorf("publish poison (%s): %w", m.what, err)
		}
		r.poisonMsgs[id] = m.what
	}
	r.log("published %d poison events on %d topics", len(msgs), len(topics)+1)
	return nil
}

func trim(s string) string {
	if len(s) > 24 {
		return s[:21] + "…"
	}
	return s
}

// PoisonResult is how a poison lesson ended.
type PoisonResult struct {
	LessonID string `json:"lessonId"`
	What     string `json:"what"`
	Outcome  string `json:"outcome"`
	Stage    string `json:"stage,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Expected says the lesson failed at the expected stage with a reason
	// that names the problem.
	Expected bool `json:"expected"`
}

func (r *run) poisonResults(lessons []lessonstate.Lesson) []PoisonResult {
	byID := map[string]lessonstate.Lesson{}
	for _, l := range lessons {
		byID[l.ID] = l
	}
	var out []PoisonResult
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range r.bad {
			if !yield(id) {
				return
			}
		}
	}) {
		p := r.bad[id]
		res := PoisonResult{LessonID: id, What: p.what, Outcome: "never detected"}
		if l, ok := byID[id]; ok {
			res.Outcome = outcome(l)
			for _, st := range []string{lessonstate.StageDownload, lessonstate.StageTranscribe, lessonstate.StageAnalyze, lessonstate.StageEnrich, lessonstate.StageSync} {
				if rec := l.Stages[st]; rec.State == lessonstate.StateFailed && rec.Version == l.Version {
					res.Stage, res.Attempts, res.Reason = st, rec.Attempts, rec.Error
					break
				}
			}
		}
		res.Expected = res.Outcome == outcomeFailed && res.Stage == p.stage && strings.Contains(strings.ToLower(res.Reason), p.reason)
		out = append(out, res)
	}
	return out
}
