package main

import (
	"context"
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
	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/lessonstate"
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
	printCounts(out, first.sum.RunID, first.sum.Counts, first.sum.AwaitingMedia, first.sum.Errors)

	fmt.Fprintln(out, "▶ detection run 2: nothing changed, so nothing is published")
	second, err := st.Detect(ctx)
	if err != nil {
		return err
	}
	printCounts(out, second.RunID, second.Counts, second.AwaitingMedia, second.Errors)

	summary(out, lessons, feed)
	fmt.Fprintf(out, "function logs (Cloud Logging JSON): %s%s\n", logPath, map[bool]string{true: "", false: " (removed at exit; --keep keeps it)"}[*keep])
	if werr != nil {
		return werr
	}
	for _, l := range lessons {
		if s := l.Stages[lessonstate.StageDownload]; s.State == lessonstate.StateFailed {
			return fmt.Errorf("lesson %s failed to download: %s", l.ID, s.Error)
		}
	}
	return nil
}

func printCounts(w io.Writer, runID string, c lessonstate.Counts, awaiting, errs []string) {
	fmt.Fprintf(w, "  %s: %d new, %d changed, %d removed, %d unchanged, %d awaiting media, %d without media\n",
		runID, c.New, c.Changed, c.Removed, c.Unchanged, c.AwaitingMedia, c.NoMedia)
	if len(awaiting) > 0 {
		fmt.Fprintf(w, "  awaiting media from the producer (reported, not failed): %s\n", strings.Join(awaiting, ", "))
	}
	for _, e := range errs {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

// settled reports whether a lesson's existing stages have come to rest.
func settled(l lessonstate.Lesson) bool {
	if l.MediaStatus != lessonstate.MediaReady || l.Removed {
		return true
	}
	switch l.Stages[lessonstate.StageDownload].State {
	case lessonstate.StateDone, lessonstate.StateFailed, lessonstate.StateSkipped:
		return true
	}
	return false
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
	lessonstate.StatePending: "○ pending",
	lessonstate.StateRunning: "◐ running",
	lessonstate.StateDone:    "● done",
	lessonstate.StateFailed:  "✗ failed",
	lessonstate.StateSkipped: "– skipped",
}

func stageLine(l lessonstate.Lesson) string {
	s := l.Stages[lessonstate.StageDownload]
	line := "download " + stageMarks[s.State]
	if s.Attempts > 1 {
		line += fmt.Sprintf(" (attempt %d)", s.Attempts)
	}
	switch {
	case l.MediaStatus == lessonstate.MediaAwaiting:
		line += "  awaiting media"
	case l.MediaStatus == lessonstate.MediaNone:
		line += "  no media on this page"
	case s.Error != "":
		line += "  " + s.Error
	}
	return line
}

func progressFrame(lessons []lessonstate.Lesson, feed *deliveryFeed, elapsed time.Duration) string {
	t := table.NewWriter()
	t.SetStyle(table.StyleLight)
	t.AppendHeader(table.Row{"lesson", "title", "media", "download", "attempts"})
	for _, l := range lessons {
		s := l.Stages[lessonstate.StageDownload]
		t.AppendRow(table.Row{l.ID, text.Trim(l.Title, 30), l.MediaStatus, stageMarks[s.State], s.Attempts})
	}
	var b strings.Builder
	b.WriteString(t.Render())
	fmt.Fprintf(&b, "\n  %s elapsed · %s\n", elapsed.Round(100*time.Millisecond), feed.last())
	return b.String()
}

func summary(w io.Writer, lessons []lessonstate.Lesson, feed *deliveryFeed) {
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleLight)
	t.SetTitle("Summary")
	t.AppendHeader(table.Row{"course", "module", "lesson", "title", "v", "download", "bytes", "took", "object / reason"})
	var done, failed, waiting int
	for _, l := range lessons {
		s := l.Stages[lessonstate.StageDownload]
		took, note, size := "", s.Error, s.Outputs[download.OutSize]
		if !s.FinishedAt.IsZero() && !s.StartedAt.IsZero() {
			took = s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		switch {
		case s.State == lessonstate.StateDone:
			done++
			note = s.Outputs[download.OutURI]
		case s.State == lessonstate.StateFailed:
			failed++
		case l.MediaStatus == lessonstate.MediaAwaiting:
			waiting++
			note = "awaiting media from the producer"
		case l.MediaStatus == lessonstate.MediaNone:
			note = "page has no media (" + strings.ToLower(l.Type) + ")"
		}
		t.AppendRow(table.Row{l.CourseName, l.ModuleName, l.ID, text.Trim(l.Title, 28), l.Version, stageMarks[s.State], size, took, note})
	}
	t.AppendFooter(table.Row{"", "", "", fmt.Sprintf("%d lessons", len(lessons)), "", fmt.Sprintf("%d done", done), "", "", fmt.Sprintf("%d failed · %d awaiting media · %d dead letters", failed, waiting, feed.deadLetters())})
	t.Render()
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
