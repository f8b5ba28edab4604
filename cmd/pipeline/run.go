package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/coursekb/pipeline/functions/detector"
	"github.com/coursekb/pipeline/local/eventarc"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/slack"
	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/ask"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

func init() {
	register("run", "run the whole pipeline on the bundled sample course, offline", runCmd)
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 5*time.Minute, "give up waiting for the lessons after this long")
	keep := fs.Bool("keep", false, "keep the stack's working directory (storage, logs) after the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out := os.Stdout
	fmt.Fprintln(out, "▶ sample course: making the lesson videos (ffmpeg + espeak-ng; cached after the first run)")
	smp, err := prepareSample(ctx, "run-")
	if err != nil {
		return err
	}
	dir := smp.dir
	if !*keep {
		defer os.RemoveAll(dir)
	}
	logPath := filepath.Join(dir, "functions.log")
	logs, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logs.Close()

	feed := &deliveryFeed{}
	fmt.Fprintln(out, "▶ starting the stack: Firestore and Pub/Sub emulators, Cloud Storage, Hotmart, media host, functions, Eventarc")
	started := time.Now()
	opts := smp.options()
	for _, line := range withRealServices(&opts, os.Getenv) {
		fmt.Fprintln(out, "  "+line)
	}
	opts.Logs, opts.Observer = logs, feed.add
	st, err := stack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "▶ shutting the stack down")
		st.Stop()
	}()
	fmt.Fprintf(out, "  up in %s (functions at %s, Hotmart at %s)\n", time.Since(started).Round(100*time.Millisecond), st.FunctionsURL, st.HotmartURL)

	fmt.Fprintln(out, "▶ detection run 1 (as Cloud Scheduler would call it); lessons move through the stages as they are found")
	type detection struct {
		sum detector.Summary
		err error
	}
	detected := make(chan detection, 1)
	go func() {
		sum, err := st.Detect(ctx)
		detected <- detection{sum, err}
	}()
	var first *detection
	detectionDone := func() bool {
		if first == nil {
			select {
			case d := <-detected:
				first = &d
			default:
			}
		}
		return first != nil
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	lessons, werr := watch(wctx, out, st, feed, detectionDone)
	cancel()
	if first == nil {
		d := <-detected
		first = &d
	}
	if first.err != nil {
		return first.err
	}
	printSummary(out, first.sum)

	fmt.Fprintln(out, "▶ detection run 2: nothing changed, so nothing is published")
	second, err := st.Detect(ctx)
	if err != nil {
		return err
	}
	printSummary(out, second)

	summary(out, lessons, feed)
	if werr == nil {
		if err := knowledge(ctx, out, st, first.sum.RunID); err != nil {
			werr = err
		}
	}
	fmt.Fprintf(out, "function logs (Cloud Logging JSON): %s%s\n", logPath, map[bool]string{true: "", false: " (removed at exit; --keep keeps it)"}[*keep])
	if werr != nil {
		return werr
	}
	for _, l := range lessons {
		if n := note(l); strings.Contains(n, "failed") {
			return fmt.Errorf("lesson %s: %s", l.ID, n)
		}
	}
	return nil
}

// knowledge shows what the pipeline made of the sample: the run's digest as
// the notifier sent it, one question answered from the vector store with its
// citations (as `pipeline ask` does), and the project's own evaluation (as
// `pipeline eval` does).
func knowledge(ctx context.Context, out io.Writer, st *stack.Stack, runID string) error {
	fmt.Fprintln(out, "▶ the notifier's digest of run "+runID+" (local Slack webhook and SMTP receiver)")
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(st.Slack.Messages()) == 0 && dctx.Err() == nil {
		select {
		case <-dctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	for _, m := range st.Slack.Messages() {
		fmt.Fprintln(out, indent(slackText(m), "  │ "))
	}
	for _, m := range st.Mail.Messages() {
		fmt.Fprintf(out, "  ✉ %s → %s\n", m.Subject, strings.Join(m.To, ", "))
	}
	if len(st.Slack.Messages()) == 0 {
		return fmt.Errorf("no digest within two minutes of the run settling")
	}

	oa := vectorsync.OpenAIConfig{APIKey: "local", BaseURL: st.OpenAIURL, MaxRetries: 2, RequestTimeout: time.Minute}
	if key := os.Getenv("OPENAI_API_KEY"); key != "" { // the syncer used the real OpenAI: ask it too
		oa.APIKey, oa.BaseURL = key, os.Getenv("OPENAI_BASE_URL")
	}
	a, err := ask.New(st.State, ask.Config{OpenAIConfig: oa, Model: "gpt-5-mini", MaxResults: 8})
	if err != nil {
		return err
	}
	q := ask.Question{School: "programacion", Text: "¿Qué devuelve una función que no tiene return?"}
	fmt.Fprintf(out, "▶ pipeline ask --school %s %q\n", q.School, q.Text)
	ans, err := a.Ask(ctx, q)
	if err != nil {
		return err
	}
	var b strings.Builder
	printAnswer(&b, ans)
	fmt.Fprintln(out, indent(strings.TrimRight(b.String(), "\n"), "  "))
	if len(ans.Citations) == 0 {
		return fmt.Errorf("the answer cites no lesson")
	}

	fmt.Fprintln(out, "▶ pipeline eval local/sample/questions.yaml (the project's own questions)")
	f, err := ask.ParseEval(sample.Questions)
	if err != nil {
		return err
	}
	rep, err := ask.Evaluate(ctx, a.Ask, f)
	if err != nil {
		return err
	}
	var e strings.Builder
	printReport(&e, rep)
	fmt.Fprint(out, indent(strings.TrimRight(e.String(), "\n"), "  ")+"\n")
	if short := rep.Shortfalls(0.8, 0.8); len(short) > 0 {
		return fmt.Errorf("the sample's evaluation is below the bar: %s", strings.Join(short, "; "))
	}
	return nil
}

// slackText is a Block Kit message as a terminal shows it: a line per
// block, a section's fields on one line.
func slackText(m slack.Message) string {
	var lines []string
	for _, b := range m.Blocks {
		if b.Text != nil {
			lines = append(lines, b.Text.Text)
		}
		var fields []string
		for _, f := range b.Fields {
			fields = append(fields, strings.ReplaceAll(strings.ReplaceAll(f.Text, "*", ""), "\n", " "))
		}
		if len(fields) > 0 {
			lines = append(lines, strings.Join(fields, " · "))
		}
		var els []struct{ Text string }
		if json.Unmarshal(b.Elements, &els) == nil && len(els) > 0 {
			var parts []string
			for _, e := range els {
				parts = append(parts, e.Text)
			}
			lines = append(lines, strings.Join(parts, " · "))
		}
	}
	if len(lines) == 0 {
		return m.Text
	}
	return strings.Join(lines, "\n")
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// printSummary prints a detection run as its answer says it: the outcome,
// the counts, the lessons awaiting media, and every course not walked
// completely with its problems.
func printSummary(w io.Writer, sum detector.Summary) {
	c := sum.Counts
	fmt.Fprintf(w, "  %s (%s): %d new, %d changed, %d removed, %d unchanged, %d awaiting media, %d without media\n",
		sum.RunID, sum.Outcome, c.New, c.Changed, c.Removed, c.Unchanged, c.AwaitingMedia, c.NoMedia)
	if len(sum.NotLessonTypes) > 0 {
		fmt.Fprintf(w, "  pages that are not lessons (LESSON_PAGE_TYPES): %v\n", sum.NotLessonTypes)
	}
	if len(sum.AwaitingMedia) > 0 {
		fmt.Fprintf(w, "  awaiting media from the producer (reported, not failed): %s\n", strings.Join(sum.AwaitingMedia, ", "))
	}
	for _, course := range sum.Courses {
		if course.Outcome == "walked" {
			continue
		}
		fmt.Fprintf(w, "  course %s %s\n", course.CourseID, course.Outcome)
		for _, p := range course.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
	for _, e := range sum.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

// settled reports whether a lesson has come to rest: nothing in flight (every
// stage done or skipped, or one failed for good), or removed.
func settled(l lessonstate.Lesson) bool {
	_, _, inFlight := l.Due()
	return !inFlight
}

// watch redraws the lessons' progress until every one has settled.
func watch(ctx context.Context, w io.Writer, st *stack.Stack, feed *deliveryFeed, detectionDone func() bool) ([]lessonstate.Lesson, error) {
	live := isTerminal(w)
	started := time.Now()
	lastLines := 0
	seen := map[string]string{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		lessons, err := st.State.Lessons(ctx)
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		done := err == nil && len(lessons) > 0 && detectionDone()
		for _, l := range lessons {
			done = done && settled(l)
		}
		if live {
			frame := progressFrame(lessons, feed, time.Since(started))
			if lastLines > 0 {
				fmt.Fprintf(w, "\x1b[%dA\x1b[J", lastLines)
			}
			fmt.Fprint(w, frame)
			lastLines = strings.Count(frame, "\n")
		} else {
			for _, l := range lessons {
				line := stageLine(l)
				if seen[l.ID] != line {
					seen[l.ID] = line
					fmt.Fprintf(w, "  %6.1fs  %-12s %s\n", time.Since(started).Seconds(), l.ID, line)
				}
			}
		}
		if done {
			return lessons, nil
		}
		select {
		case <-ctx.Done():
			return lessons, fmt.Errorf("lessons still moving after the timeout: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

var stageMarks = map[string]string{
	lessonstate.StatePending: "○",
	lessonstate.StateRunning: "◐",
	lessonstate.StateDone:    "●",
	lessonstate.StateFailed:  "✗",
	lessonstate.StateSkipped: "–",
}

// mark is a stage's state at the lesson's version, with its attempt when
// it took more than one.
func mark(l lessonstate.Lesson, stage string) string {
	rec := l.Stages[stage]
	m := stageMarks[rec.State]
	if rec.Version != l.Version {
		m = stageMarks[lessonstate.StatePending]
	}
	if rec.Attempts > 1 {
		m += fmt.Sprintf(" ×%d", rec.Attempts)
	}
	return m
}

// note is what a person should read about a lesson: why it failed, why it
// has no media, or nothing.
func note(l lessonstate.Lesson) string {
	switch {
	case l.Removed:
		return "removed from the course"
	case l.MediaStatus == lessonstate.MediaAwaiting:
		return "awaiting media from the producer"
	case l.MediaStatus == lessonstate.MediaNone:
		return "page has no media (" + strings.ToLower(l.Type) + ")"
	}
	for _, st := range lessonstate.Stages {
		if rec := l.Stages[st]; rec.State == lessonstate.StateFailed && rec.Version == l.Version {
			return st + " failed: " + rec.Error
		}
	}
	return ""
}

func stageLine(l lessonstate.Lesson) string {
	parts := make([]string, 0, len(lessonstate.Stages))
	for _, st := range lessonstate.Stages {
		parts = append(parts, st+" "+mark(l, st))
	}
	line := strings.Join(parts, "  ")
	if n := note(l); n != "" {
		line += "  " + n
	}
	return line
}

func stageHeader() table.Row {
	row := table.Row{"lesson", "title"}
	for _, st := range lessonstate.Stages {
		row = append(row, st)
	}
	return row
}

func progressFrame(lessons []lessonstate.Lesson, feed *deliveryFeed, elapsed time.Duration) string {
	t := table.NewWriter()
	t.SetStyle(table.StyleLight)
	t.AppendHeader(append(stageHeader(), "note"))
	for _, l := range lessons {
		row := table.Row{l.ID, text.Trim(l.Title, 28)}
		for _, st := range lessonstate.Stages {
			row = append(row, mark(l, st))
		}
		t.AppendRow(append(row, text.Trim(note(l), 40)))
	}
	var b strings.Builder
	b.WriteString(t.Render())
	fmt.Fprintf(&b, "\n  ○ pending  ◐ running  ● done  ✗ failed  – skipped · %s elapsed · %s\n", elapsed.Round(100*time.Millisecond), feed.last())
	return b.String()
}

func summary(w io.Writer, lessons []lessonstate.Lesson, feed *deliveryFeed) {
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleLight)
	t.SetTitle("Summary")
	t.AppendHeader(append(table.Row{"course", "module", "lesson", "title", "v", "took"}, "result"))
	var finished, failed, waiting int
	for _, l := range lessons {
		took := ""
		first, last := l.Stages[lessonstate.StageDownload].StartedAt, time.Time{}
		for _, st := range lessonstate.Stages {
			if f := l.Stages[st].FinishedAt; f.After(last) {
				last = f
			}
		}
		if !first.IsZero() && last.After(first) {
			took = last.Sub(first).Round(100 * time.Millisecond).String()
		}
		result := note(l)
		_, _, inFlight := l.Due()
		switch {
		case strings.Contains(result, "failed"):
			failed++
		case l.MediaStatus == lessonstate.MediaAwaiting:
			waiting++
		case !inFlight && l.MediaStatus == lessonstate.MediaReady && !l.Removed:
			finished++
			result = done(l)
		}
		t.AppendRow(table.Row{l.CourseName, l.ModuleName, l.ID, text.Trim(l.Title, 28), l.Version, took, text.Trim(result, 60)})
	}
	t.AppendFooter(table.Row{"", "", "", fmt.Sprintf("%d lessons", len(lessons)), "", "",
		fmt.Sprintf("%d finished · %d failed · %d awaiting media · %d dead letters", finished, failed, waiting, feed.deadLetters())})
	t.Render()
}

// done says how far a finished lesson went, by its last finished stage's
// artifact.
func done(l lessonstate.Lesson) string {
	for i := len(lessonstate.Stages) - 1; i >= 0; i-- {
		rec := l.Stages[lessonstate.Stages[i]]
		if rec.State == lessonstate.StateDone {
			if uri := rec.Outputs["uri"]; uri != "" {
				return lessonstate.Stages[i] + " done: " + uri
			}
			return lessonstate.Stages[i] + " done"
		}
	}
	return "done"
}

// deliveryFeed keeps what the local Eventarc reports, for the display.
type deliveryFeed struct {
	mu     sync.Mutex
	latest string
	dead   int
}

func (f *deliveryFeed) add(d eventarc.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.Outcome == eventarc.DeadLettered {
		f.dead++
	}
	msg := fmt.Sprintf("eventarc: %s %s → %s (attempt %d, HTTP %d)", d.Outcome, d.LessonID, d.Route, d.Attempt, d.Status)
	if d.Err != nil && !errors.Is(d.Err, context.Canceled) {
		msg += ": " + d.Err.Error()
	}
	f.latest = msg
}

func (f *deliveryFeed) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.latest == "" {
		return "waiting for the first delivery"
	}
	return f.latest
}

func (f *deliveryFeed) deadLetters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" || os.Getenv("CI") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
