package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/redrive"
	"github.com/coursekb/pipeline/shared/replay"
	"github.com/coursekb/pipeline/shared/status"
)

// The operator's commands read GOOGLE_CLOUD_PROJECT and the emulator
// variables like the functions do, so they work against the one-machine
// stack (pipeline up prints the variables) and a real project alike.

func init() {
	register("replay", "re-run a lesson from a stage: replay LESSON --from STAGE (publishes on lesson-replay)", replayCmd)
	register("redrive", "move a dead-letter topic's held messages back to their topics: redrive DEAD_LETTER_TOPIC", redriveCmd)
	register("status", "lessons by stage and state, failures, stuck lessons, last detection runs", statusCmd)
}

// project reads the common configuration: the project and nothing else
// is needed by these commands.
func project() (string, error) {
	var c config.Common
	if err := config.Load(&c); err != nil {
		return "", err
	}
	return c.ProjectID, nil
}

// splitArgs lets flags come after the positional argument, as operators
// type them (replay L1 --from sync).
func splitArgs(args []string) (positional []string, flags []string) {
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags = append(flags, args[i])
			if !strings.Contains(args[i], "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && args[i] != "--json" && args[i] != "--dry-run" {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		positional = append(positional, args[i])
	}
	return positional, flags
}

func replayCmd(ctx context.Context, args []string) error {
	pos, rest := splitArgs(args)
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	from := fs.String("from", "", "first stage to run again: "+strings.Join(lessonstate.ReplayFrom, ", "))
	version := fs.Int("version", 0, "only if the lesson is still at this version (0: its current one)")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: pipeline replay LESSON --from STAGE")
	}
	req := replay.Request{LessonID: pos[0], From: *from, Version: *version}
	if err := req.Validate(); err != nil {
		return err
	}
	proj, err := project()
	if err != nil {
		return err
	}
	ps, err := pubsub.NewClient(ctx, proj)
	if err != nil {
		return err
	}
	defer ps.Close()
	data, _ := json.Marshal(req)
	pub := ps.Publisher(events.TopicLessonReplay)
	defer pub.Stop()
	id, err := pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: req.Attributes()}).Get(ctx)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", events.TopicLessonReplay, err)
	}
	fmt.Printf("replay of %s from %s published on %s (message %s); `pipeline status` follows it\n", req.LessonID, req.From, events.TopicLessonReplay, id)
	return nil
}

func redriveCmd(ctx context.Context, args []string) error {
	pos, rest := splitArgs(args)
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	sub := fs.String("subscription", "", "the holding subscription to drain (default <topic>-hold)")
	limit := fs.Int("limit", 1000, "move at most this many messages")
	dry := fs.Bool("dry-run", false, "list what would move, move nothing")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: pipeline redrive DEAD_LETTER_TOPIC [--subscription S] [--limit N] [--dry-run]")
	}
	if *sub == "" {
		*sub = pos[0] + "-hold"
	}
	proj, err := project()
	if err != nil {
		return err
	}
	ps, err := pubsub.NewClient(ctx, proj)
	if err != nil {
		return err
	}
	defer ps.Close()
	moved, err := redrive.Run(ctx, ps, proj, *sub, redrive.Options{Limit: *limit, DryRun: *dry})
	verb := "moved"
	if *dry {
		verb = "would move"
	}
	for _, m := range moved {
		fmt.Printf("  %s %s (lesson %s) from %s back to %s\n", verb, m.MessageID, m.LessonID, m.From, m.To)
	}
	fmt.Printf("redrive: %s %d message(s) held on %s\n", verb, len(moved), *sub)
	return err
}

func statusCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	grace := fs.Duration("stuck-after", 15*time.Minute, "a lesson whose check is this late counts as stuck")
	runs := fs.Int("runs", 5, "detection runs to show")
	if err := fs.Parse(args); err != nil {
		return err
	}
	proj, err := project()
	if err != nil {
		return err
	}
	fsc, err := firestore.NewClient(ctx, proj)
	if err != nil {
		return err
	}
	defer fsc.Close()
	rep, err := status.Build(ctx, lessonstate.New(fsc), *grace, *runs)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(os.Stdout, rep)
	return nil
}

func printStatus(w io.Writer, r status.Report) {
	fmt.Fprintf(w, "%d lessons (%d removed) at %s\n", r.Lessons, r.Removed, r.At.UTC().Format(time.RFC3339))
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleLight)
	states := []string{lessonstate.StatePending, lessonstate.StateRunning, lessonstate.StateDone, lessonstate.StateSkipped, lessonstate.StateFailed}
	header := table.Row{"stage"}
	for _, s := range states {
		header = append(header, s)
	}
	t.AppendHeader(header)
	for _, st := range lessonstate.Stages {
		row := table.Row{st}
		for _, s := range states {
			row = append(row, r.Stages[st][s])
		}
		t.AppendRow(row)
	}
	t.Render()
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %-12s v%-3d %-10s after %d attempt(s): %s\n", f.LessonID, f.Version, f.Stage, f.Attempts, text.Trim(f.Reason, 160))
		}
	}
	if len(r.Stuck) > 0 {
		fmt.Fprintln(w, "stuck (the sweeper should have acted; is its Scheduler job running?):")
		for _, s := range r.Stuck {
			fmt.Fprintf(w, "  %-12s v%-3d %-10s %-8s check due since %s\n", s.LessonID, s.Version, s.Step, s.State, s.Since.UTC().Format(time.RFC3339))
		}
	}
	if len(r.Runs) > 0 {
		fmt.Fprintln(w, "detection runs:")
		for _, run := range r.Runs {
			state := "complete"
			if !run.Complete {
				state = "incomplete (cursor " + run.Cursor + ")"
			}
			c := run.Counts
			fmt.Fprintf(w, "  %s  %s: %d new, %d changed, %d removed, %d unchanged, %d errors\n",
				run.ID, state, c.New, c.Changed, c.Removed, c.Unchanged, len(run.Errors))
		}
	}
	if len(r.Usage) > 0 {
		keys := make([]string, 0, len(r.Usage))
		for k := range r.Usage {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "usage recorded (all lessons, all versions):")
		for _, k := range keys {
			fmt.Fprintf(w, "  %-45s %14.0f\n", k, r.Usage[k])
		}
	}
}
