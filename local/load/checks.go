package load

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/gemini"
	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// Check is one thing the run verified, with the figure it saw.
type Check struct {
	Name   string   `json:"name"`
	Target string   `json:"target"`
	Figure string   `json:"figure"`
	Passed bool     `json:"passed"`
	Detail []string `json:"detail,omitempty"`
}

func (c *Check) detail(format string, args ...any) {
	if len(c.Detail) < 20 {
		c.Detail = append(c.Detail, fmt.Sprintf(format, args...))
	} else if len(c.Detail) == 20 {
		c.Detail = append(c.Detail, "…")
	}
}

// check verifies what the pipeline claims, on the lessons as they ended.
func (r *run) check(ctx context.Context, lessons []lessonstate.Lesson, settled map[string]bool) []Check {
	byID := map[string]lessonstate.Lesson{}
	for _, l := range lessons {
		byID[l.ID] = l
	}
	checks := []Check{r.checkSynced(byID), r.checkFiles(byID)}
	checks = append(checks, r.checkNotifications(ctx)...)
	checks = append(checks, r.checkPaidCalls(byID), r.checkDeadLetters(ctx))
	if r.o.Poison {
		checks = append(checks, r.checkPoisonLessons(lessons), r.checkPoisonEvents(byID))
	}
	if r.o.Faults.Kills {
		c := Check{Name: "the functions process killed at random moments and restarted", Target: fmt.Sprintf(">= %d kills", r.o.MinKills)}
		c.Figure = fmt.Sprintf("%d kills", r.kills.count())
		c.Passed = r.kills.count() >= r.o.MinKills
		checks = append(checks, c)
	}
	if r.o.Faults.Cuts {
		c := Check{Name: "the media host cut a transfer mid-stream once per lesson", Target: fmt.Sprintf("%d cuts", len(r.vids))}
		c.Figure = fmt.Sprintf("%d cuts", r.st.Media.Cuts())
		c.Passed = r.st.Media.Cuts() >= len(r.good)
		checks = append(checks, c)
	}
	return checks
}

func (r *run) checkSynced(byID map[string]lessonstate.Lesson) Check {
	c := Check{Name: "every lesson synced", Target: "100%"}
	n := 0
	for _, id := range r.good {
		l, ok := byID[id]
		switch {
		case !ok:
			c.detail("%s: never detected", id)
		case outcome(l) == outcomeSynced:
			n++
		default:
			c.detail("%s: %s", id, describe(l))
		}
	}
	c.Figure = fmt.Sprintf("%d of %d synced (%.1f%%)", n, len(r.good), 100*float64(n)/float64(max(1, len(r.good))))
	c.Passed = n == len(r.good)
	return c
}

// describe says where a lesson stands, stage by stage.
func describe(l lessonstate.Lesson) string {
	var parts []string
	for _, st := range []string{lessonstate.StageDownload, lessonstate.StepProcess, lessonstate.StageTranscribe, lessonstate.StageAnalyze, lessonstate.StageEnrich, lessonstate.StageSync} {
		rec := l.Stages[st]
		s := fmt.Sprintf("%s %s v%d ×%d", st, rec.State, rec.Version, rec.Attempts)
		if rec.Error != "" {
			s += " (" + trim(rec.Error) + ")"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("v%d: %s", l.Version, strings.Join(parts, ", "))
}

// checkFiles counts the knowledge files attached to the vector stores, by
// lesson: exactly one each, for the lesson's current version; and the
// files uploaded but attached nowhere.
func (r *run) checkFiles(byID map[string]lessonstate.Lesson) Check {
	c := Check{Name: "exactly one vector-store file per lesson, for its current version", Target: "0 duplicates, 0 stale, 0 stray uploads"}
	perLesson := map[string]int{}
	attached := map[string]bool{}
	var dups, stale, files, stray int
	for _, store := range r.st.OpenAI.LiveFiles() {
		for _, f := range store {
			files++
			attached[f.FileID] = true
			id, _ := f.Attributes[vectorsync.AttrLesson].(string)
			perLesson[id]++
			v, _ := f.Attributes[vectorsync.AttrVersion].(float64)
			if l, ok := byID[id]; !ok || int(v) != l.Version {
				stale++
				c.detail("file %s (%s) is for %s v%g; the lesson is at v%d", f.FileID, f.Filename, id, v, byID[id].Version)
			}
		}
	}
	for id, n := range perLesson {
		if n > 1 {
			dups += n - 1
			c.detail("%s has %d files", id, n)
		}
	}
	for _, id := range r.good {
		if perLesson[id] == 0 && outcome(byID[id]) == outcomeSynced {
			c.detail("%s is synced but has no file", id)
			dups++ // counted as wrong, though it is a missing one
		}
	}
	for _, f := range r.st.OpenAI.Files() {
		if !attached[f.ID] && f.Purpose == "assistants" {
			stray++
			c.detail("file %s (%s) was uploaded and is attached to no store", f.ID, f.Filename)
		}
	}
	c.Figure = fmt.Sprintf("%d files for %d lessons: %d duplicate or missing, %d stale, %d stray uploads", files, len(perLesson), dups, stale, stray)
	c.Passed = dups == 0 && stale == 0 && stray == 0
	return c
}

// digestsOf are the Slack messages that are the digest of run id.
func digestsOf(st *stack.Stack, runID string) []string {
	var out []string
	for _, m := range st.Slack.Messages() {
		if t := m.AllText(); strings.Contains(t, "Detection run "+runID) {
			out = append(out, t)
		}
	}
	return out
}

// sendRecordWindow bounds the time from a channel accepting a message to
// the notification's record saying so (one Firestore transaction on the
// emulator, under load): a kill inside it is what may send a copy.
const sendRecordWindow = 3 * time.Second

// checkNotifications: one digest per detection run that changed lessons
// (none for a run that changed none), and no notification twice on either
// channel (Slack by its text, e-mail by its Message-ID, which is derived
// from the notification's key).
func (r *run) checkNotifications(ctx context.Context) []Check {
	d := Check{Name: "one digest per detection run", Target: "exactly 1 per run that changed lessons"}
	changed := r.changedRuns(ctx)
	ok := 0
	for _, id := range changed {
		if n := len(digestsOf(r.st, id)); n == 1 {
			ok++
		} else {
			d.detail("run %s: %d digests", id, n)
		}
	}
	for _, id := range r.runs {
		if !slices.Contains(changed, id) {
			if n := len(digestsOf(r.st, id)); n != 0 {
				d.detail("run %s changed nothing and has %d digests", id, n)
				ok = -1
			}
		}
	}
	d.Figure = fmt.Sprintf("%d detection runs, %d that changed lessons, %d with exactly one digest", len(r.runs), len(changed), max(ok, 0))
	d.Passed = ok == len(changed)

	// Slack's incoming webhooks take no idempotency key, and an e-mail
	// once handed to the relay cannot be taken back: a process killed
	// after a channel accepted a message and before the notification's
	// record says so leaves a redelivery that sends it again. Such a copy
	// is reported as explained (a kill inside that window); any other
	// copy fails the check.
	n := Check{Name: "no notification twice", Target: "0 repeated on Slack or e-mail, but for copies a kill explains"}
	kills := r.kills.times()
	explained := func(first time.Time) bool {
		for _, k := range kills {
			if !k.Before(first) && k.Sub(first) <= sendRecordWindow {
				return true
			}
		}
		return false
	}
	var dups, unexplained int
	count := func(channel, label string, times []time.Time) {
		if len(times) < 2 {
			return
		}
		slices.SortFunc(times, time.Time.Compare)
		for i := 1; i < len(times); i++ {
			dups++
			why := "unexplained"
			if explained(times[i-1]) {
				why = "explained: the functions process was killed within " + sendRecordWindow.String() + " of the copy before"
			} else {
				unexplained++
			}
			n.detail("%s, copy %d at %s of %s (%s)", channel, i+1, times[i].Format("15:04:05.000"), label, why)
		}
	}
	slack := map[string][]time.Time{}
	for _, m := range r.st.Slack.Messages() {
		slack[m.AllText()] = append(slack[m.AllText()], m.Received)
	}
	for t, times := range slack {
		count("Slack", trim(strings.ReplaceAll(t, "\n", " ")), times)
	}
	mails := map[string][]time.Time{}
	for _, m := range r.st.Mail.Messages() {
		id := m.Header.Get("Message-ID")
		mails[id] = append(mails[id], m.Received)
	}
	for id, times := range mails {
		count("e-mail", id, times)
	}
	n.Figure = fmt.Sprintf("%d Slack messages, %d e-mails; %d repeated, %d of them unexplained", len(r.st.Slack.Messages()), len(r.st.Mail.Messages()), dups, unexplained)
	n.Passed = unexplained == 0
	return []Check{d, n}
}

// checkPaidCalls: no Speech-to-Text recognition, Gemini analysis or Gemini
// enrichment asked for a lesson after its stage was recorded done. The
// calls made before (a refused call, an answer lost to a killed process)
// are counted too, as the extra the faults cost.
func (r *run) checkPaidCalls(byID map[string]lessonstate.Lesson) Check {
	c := Check{Name: "no Speech-to-Text or Gemini call repeated for a lesson after it succeeded", Target: "0"}
	after := map[string]int{}
	extra := map[string]int{}
	reqs := r.st.Gemini.Received()
	for _, id := range append(append([]string(nil), r.good...), keys(r.bad)...) {
		l, ok := byID[id]
		if !ok {
			continue
		}
		done := func(stage string) (time.Time, bool) {
			rec := l.Stages[stage]
			return rec.FinishedAt, rec.State == lessonstate.StateDone && rec.Version == l.Version
		}
		if at, ok := done(lessonstate.StageTranscribe); ok {
			times := r.st.Speech.LessonCallTimes(id)
			for _, t := range times {
				if t.After(at) {
					after["Speech-to-Text"]++
					c.detail("%s: recognition asked at %s, %s after its transcription was done", id, t.Format("15:04:05.000"), t.Sub(at).Round(time.Millisecond))
				}
			}
			extra["Speech-to-Text"] += max(0, len(times)-1)
		}
		for _, k := range []struct {
			kind  gemini.RequestKind
			stage string
			name  string
		}{{gemini.Analysis, lessonstate.StageAnalyze, "Gemini analysis"}, {gemini.Enrichment, lessonstate.StageEnrich, "Gemini enrichment"}} {
			at, ok := done(k.stage)
			if !ok {
				continue
			}
			n := 0
			for _, rq := range reqs {
				if rq.Lesson != id || rq.Kind != k.kind {
					continue
				}
				n++
				if rq.At.After(at) {
					after[k.name]++
					c.detail("%s: %s asked at %s, %s after the stage was done", id, k.name, rq.At.Format("15:04:05.000"), rq.At.Sub(at).Round(time.Millisecond))
				}
			}
			extra[k.name] += max(0, n-1)
		}
	}
	total := after["Speech-to-Text"] + after["Gemini analysis"] + after["Gemini enrichment"]
	c.Figure = fmt.Sprintf("%d after success (Speech-to-Text %d, Gemini analysis %d, enrichment %d); before success, beyond one a lesson: %d, %d, %d",
		total, after["Speech-to-Text"], after["Gemini analysis"], after["Gemini enrichment"],
		extra["Speech-to-Text"], extra["Gemini analysis"], extra["Gemini enrichment"])
	c.Passed = total == 0
	return c
}

// checkDeadLetters pulls every dead-letter topic's holding subscription
// and explains each message found: a poison input the run published is
// explained; anything else is not.
func (r *run) checkDeadLetters(ctx context.Context) Check {
	c := Check{Name: "nothing left in a dead-letter topic unexplained", Target: "0 unexplained"}
	var held, unexplained int
	seen := map[string]bool{}
	for _, rt := range stack.Routes(r.st.FunctionsURL, stack.Options{}) {
		hold := eventarc.HoldSubscription(r.st.ProjectID, rt)
		if seen[hold] {
			continue
		}
		seen[hold] = true
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := r.st.PS.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{Subscription: hold, MaxMessages: 1000})
		cancel()
		if err != nil {
			continue // nothing held within the wait
		}
		for _, rm := range resp.GetReceivedMessages() {
			m := rm.GetMessage()
			held++
			src := m.GetAttributes()["CloudPubSubDeadLetterSourceSubscription"]
			if why := m.GetAttributes()[AttrPoison]; why != "" {
				c.detail("%s from %s: explained, a poison input (%s)", m.GetMessageId(), src, why)
				continue
			}
			unexplained++
			c.detail("%s from %s: lesson %q, %s — not explained", m.GetMessageId(), src, m.GetAttributes()["lessonId"], trim(string(m.GetData())))
		}
	}
	c.Figure = fmt.Sprintf("%d dead letters held, %d unexplained", held, unexplained)
	c.Passed = unexplained == 0
	return c
}

func (r *run) checkPoisonLessons(lessons []lessonstate.Lesson) Check {
	c := Check{Name: "each poison lesson ends failed with a readable reason, retried a bounded number of times", Target: fmt.Sprintf("%d of %d", len(r.bad), len(r.bad))}
	ok := 0
	for _, p := range r.poisonResults(lessons) {
		if p.Expected {
			ok++
		} else {
			c.detail("%s (%s): %s at %s: %q", p.LessonID, p.What, p.Outcome, p.Stage, p.Reason)
		}
	}
	c.Figure = fmt.Sprintf("%d of %d failed as expected", ok, len(r.bad))
	c.Passed = ok == len(r.bad)
	return c
}

// checkPoisonEvents: every poison event was acknowledged in the end (none
// retried forever, none dead-lettered), and no lesson document was made
// for an id no page has.
func (r *run) checkPoisonEvents(byID map[string]lessonstate.Lesson) Check {
	c := Check{Name: "poison events acknowledged, none retried forever, no lesson made of them", Target: "all acknowledged, 0 dead letters, 0 lessons"}
	all, _ := r.deliveries.snapshot()
	type fate struct {
		acked, dead bool
		attempts    int
	}
	fates := map[string]*fate{}
	for id := range r.poisonMsgs {
		fates[id] = &fate{}
	}
	for _, d := range all {
		f := fates[d.MessageID]
		if f == nil {
			continue
		}
		switch d.Outcome {
		case eventarc.Delivered, eventarc.Ignored:
			f.acked = true
		case eventarc.DeadLettered:
			f.dead = true
		}
		f.attempts = max(f.attempts, d.Attempt)
	}
	var acked, dead, maxAttempts int
	for id, f := range fates {
		if f.acked {
			acked++
		} else {
			c.detail("message %s (%s) was never acknowledged", id, r.poisonMsgs[id])
		}
		if f.dead {
			dead++
		}
		maxAttempts = max(maxAttempts, f.attempts)
	}
	var made int
	for _, id := range hostileIDs {
		if _, ok := byID[id]; ok && id != "" {
			made++
			c.detail("a lesson document exists for %q", id)
		}
	}
	c.Figure = fmt.Sprintf("%d poison events: %d acknowledged (at most attempt %d), %d dead-lettered; %d lessons made of them", len(fates), acked, maxAttempts, dead, made)
	c.Passed = acked == len(fates) && dead == 0 && made == 0
	return c
}
