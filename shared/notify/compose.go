package notify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// What people read: the wording of the three notifications, channel
// neutral. Slack and e-mail render the same Message.

// maxBodyBytes bounds the dead letter data shown in an alert.
const maxBodyBytes = 600

// digestMessage is a run's digest.
func digestMessage(d Digest, maxListed int, links Links) Message {
	r := d.Run
	m := Message{
		Key:   DigestKey(r.ID),
		Kind:  KindDigest,
		RunID: r.ID,
		Title: fmt.Sprintf("Course knowledge: %d synced, %d failed, %d removed", len(d.Synced), len(d.Failed), len(d.Removed)),
	}
	parts := []string{
		plural(len(d.Synced), "lesson synced", "lessons synced"),
		plural(len(d.Failed), "failed", "failed"),
		plural(len(d.Removed), "removed", "removed"),
		plural(len(d.AwaitingMedia), "awaiting media", "awaiting media"),
	}
	if len(d.NotSynced) > 0 {
		parts = append(parts, plural(len(d.NotSynced), "without media", "without media"))
	}
	m.Summary = fmt.Sprintf("Detection run %s: %s.", r.ID, strings.Join(parts, ", "))
	c := r.Counts
	m.Fields = []Field{
		{Label: "New", Value: strconv.Itoa(c.New)},
		{Label: "Changed", Value: strconv.Itoa(c.Changed)},
		{Label: "Removed", Value: strconv.Itoa(c.Removed)},
		{Label: "Unchanged", Value: strconv.Itoa(c.Unchanged)},
		{Label: "Awaiting media", Value: strconv.Itoa(max(c.AwaitingMedia, len(d.AwaitingMedia)))},
		{Label: "Run outcome", Value: cmpOr(r.Outcome, "unrecorded")},
	}
	m.Sections = append(m.Sections,
		section("Failed", d.Failed, maxListed, func(dl DigestLesson) Item {
			it := lessonItem(dl)
			it.Detail = fmt.Sprintf("%s failed: %s", dl.Stage, cmpOr(dl.Reason, "no reason recorded"))
			if dl.Logs != "" {
				it.Links = append(it.Links, Link{Text: "logs", URL: dl.Logs})
			}
			return it
		}),
		section("Synced", d.Synced, maxListed, func(dl DigestLesson) Item {
			it := lessonItem(dl)
			it.Detail = place(dl.Lesson) + " · v" + strconv.Itoa(dl.Lesson.Version)
			return it
		}),
		section("Removed", d.Removed, maxListed, func(dl DigestLesson) Item {
			it := lessonItem(dl)
			it.URL = "" // the page is gone
			return it
		}),
		section("Awaiting media", d.AwaitingMedia, maxListed, func(dl DigestLesson) Item {
			it := lessonItem(dl)
			it.Detail = place(dl.Lesson) + " · the media source has no file for this page yet"
			return it
		}),
		section("Without media", d.NotSynced, maxListed, lessonItem),
	)
	m.Sections = slices.DeleteFunc(m.Sections, func(s Section) bool { return len(s.Items) == 0 && s.More == 0 })
	if len(r.Errors) > 0 {
		s := Section{Title: "Run problems"}
		for i, e := range r.Errors {
			if i == maxListed {
				s.More = len(r.Errors) - i
				break
			}
			s.Items = append(s.Items, Item{Text: truncate(e, 300)})
		}
		m.Sections = append(m.Sections, s)
	}
	var foot []string
	foot = append(foot, "run "+r.ID)
	if !r.StartedAt.IsZero() {
		foot = append(foot, "started "+stamp(r.StartedAt))
	}
	if !r.FinishedAt.IsZero() {
		foot = append(foot, "finished "+stamp(r.FinishedAt))
	}
	if d.Unfinished {
		foot = append(foot, "the run recorded no end (the detector may have stopped mid-run)")
	}
	m.Footer = strings.Join(foot, " · ")
	if links.ProjectID != "" {
		m.Footer += " · project " + links.ProjectID
	}
	return m
}

// section lists up to maxListed lessons; an empty group makes no section.
func section(title string, group []DigestLesson, maxListed int, item func(DigestLesson) Item) Section {
	s := Section{Title: fmt.Sprintf("%s (%d)", title, len(group))}
	for i, dl := range group {
		if maxListed > 0 && i == maxListed {
			s.More = len(group) - i
			break
		}
		s.Items = append(s.Items, item(dl))
	}
	return s
}

func lessonItem(dl DigestLesson) Item {
	return Item{Text: lessonName(dl.Lesson), URL: dl.Club, Detail: place(dl.Lesson)}
}

// lessonName is a lesson's title, or its id when it has none.
func lessonName(l lessonstate.Lesson) string {
	if strings.TrimSpace(l.Title) == "" {
		return "lesson " + l.ID
	}
	return l.Title
}

// place says where a lesson sits: course › module.
func place(l lessonstate.Lesson) string {
	var p []string
	if l.CourseName != "" {
		p = append(p, l.CourseName)
	} else if l.CourseID != "" {
		p = append(p, "course "+l.CourseID)
	}
	if l.ModuleName != "" {
		p = append(p, l.ModuleName)
	}
	return strings.Join(p, " › ")
}

// failureMessage is the alert for a lesson version that failed for good.
// lesson is what the store holds (zero when it could not be read); course
// gives the Club link.
func failureMessage(ev events.LessonEvent, lesson lessonstate.Lesson, course lessonstate.Course, links Links) Message {
	if lesson.ID == "" {
		lesson = lessonstate.Lesson{ID: ev.LessonID, CourseID: ev.CourseID, Version: ev.Version}
	}
	stage := cmpOr(ev.From, "unknown stage")
	m := Message{
		Key:      FailureKey(ev.LessonID, ev.Version, ev.From),
		Kind:     KindFailure,
		LessonID: ev.LessonID,
		RunID:    ev.RunID,
		Title:    truncate("Lesson failed at "+stage+": "+lessonName(lesson), 150),
		Summary:  fmt.Sprintf("%s (v%d) failed at %s: %s", lessonName(lesson), ev.Version, stage, cmpOr(ev.Reason, "no reason given")),
	}
	club := links.Lesson(course.ClubSubdomain, cmpOr(lesson.CourseID, ev.CourseID), lesson.ModuleID, ev.LessonID)
	m.Fields = []Field{
		{Label: "Lesson", Value: lessonName(lesson), URL: club},
		{Label: "Where", Value: cmpOr(place(lesson), "unknown course")},
		{Label: "Stage", Value: stage},
		{Label: "Version", Value: strconv.Itoa(ev.Version)},
		{Label: "Lesson id", Value: ev.LessonID},
	}
	if ev.RunID != "" {
		m.Fields = append(m.Fields, Field{Label: "Detection run", Value: ev.RunID})
	}
	m.Body = "Reason: " + cmpOr(ev.Reason, "no reason given")
	if club != "" {
		m.Links = append(m.Links, Link{Text: "Lesson on Hotmart Club", URL: club})
	}
	if u := links.LessonLogs(ev.LessonID, ev.From); u != "" {
		m.Links = append(m.Links, Link{Text: "Logs of this stage", URL: u})
	}
	if u := links.LessonLogs(ev.LessonID, ""); u != "" {
		m.Links = append(m.Links, Link{Text: "All logs of the lesson", URL: u})
	}
	m.Footer = "A replay restarts it: gcloud pubsub topics publish " + events.TopicLessonReplay +
		` --message='{"lessonId":"` + ev.LessonID + `","from":"` + cmpOr(ev.From, lessonstate.StageDownload) + `"}'`
	return m
}

// deadLetterMessage is the alarm for a message no subscriber could take.
func deadLetterMessage(dl DeadLetter, lesson lessonstate.Lesson, links Links) Message {
	sub := dl.SourceSubscription
	m := Message{
		Key:      DeadLetterKey(sub, dl.MessageID),
		Kind:     KindDeadLetter,
		LessonID: dl.LessonID,
		Title:    truncate("Dead letter on "+shortName(sub), 150),
	}
	count := "unknown"
	if dl.DeliveryCount > 0 {
		count = strconv.Itoa(dl.DeliveryCount)
	}
	what := "a message"
	if dl.LessonID != "" {
		what = "the message about lesson " + dl.LessonID
		if lesson.Title != "" {
			what = fmt.Sprintf("the message about %q (%s)", lesson.Title, dl.LessonID)
		}
	}
	m.Summary = fmt.Sprintf("Pub/Sub gave up on %s after %s deliveries on %s.", what, count, shortName(sub))
	m.Fields = []Field{
		{Label: "Source subscription", Value: sub},
		{Label: "Deliveries", Value: count},
		{Label: "Dead-letter message", Value: dl.MessageID},
	}
	if dl.LessonID != "" {
		v := dl.LessonID
		if dl.Version > 0 {
			v += " v" + strconv.Itoa(dl.Version)
		}
		f := Field{Label: "Lesson", Value: v}
		if lesson.ID != "" {
			f.Value = lessonName(lesson) + " (" + v + ")"
		}
		m.Fields = append(m.Fields, f)
	}
	if dl.PublishTime != "" {
		m.Fields = append(m.Fields, Field{Label: "First published", Value: dl.PublishTime})
	}
	if dl.Topic != "" {
		m.Fields = append(m.Fields, Field{Label: "Dead-letter topic", Value: dl.Topic})
	}
	m.Body = describeData(dl.Data)
	if u := links.LessonLogs(dl.LessonID, ""); u != "" {
		m.Links = append(m.Links, Link{Text: "Logs of the lesson", URL: u})
	}
	if u := links.SubscriptionLogs(sub); u != "" {
		m.Links = append(m.Links, Link{Text: "Logs of the subscription", URL: u})
	}
	m.Footer = "The message is kept on the dead-letter topic's holding subscription; fix the cause, then replay the lesson."
	return m
}

// describeData shows a dead letter's data: text as it is (cut), anything
// else by its size.
func describeData(data []byte) string {
	switch {
	case len(data) == 0:
		return "Data: (empty)"
	case !utf8.Valid(data) || strings.ContainsFunc(string(data), func(r rune) bool { return r < 0x20 && r != '\n' && r != '\r' && r != '\t' }):
		return fmt.Sprintf("Data: %d bytes, not text", len(data))
	case len(data) > maxBodyBytes:
		cut := data[:maxBodyBytes]
		for !utf8.Valid(cut) {
			cut = cut[:len(cut)-1]
		}
		return fmt.Sprintf("Data (first %d of %d bytes):\n%s", len(cut), len(data), cut)
	}
	return "Data:\n" + string(data)
}

// shortName is the last segment of a resource name.
func shortName(name string) string { return name[strings.LastIndex(name, "/")+1:] }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
