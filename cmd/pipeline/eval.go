package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coursekb/pipeline/shared/ask"
)

func init() {
	register("eval", "check the assistants' answers against known ones: eval [--threshold F] [--time-threshold F] [--json] FILE.yaml "+
		"(exit status 1 below a threshold; environment as ask)", evalCmd)
}

func evalCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	threshold := fs.Float64("threshold", 0, "least share (0..1) of questions whose lesson must be among the first 3 citations")
	timeThreshold := fs.Float64("time-threshold", 0, "least share (0..1) of questions with a second whose second a cited range must hold")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("eval: usage: pipeline eval [--threshold F] [--time-threshold F] [--json] FILE.yaml")
	}
	for name, v := range map[string]float64{"--threshold": *threshold, "--time-threshold": *timeThreshold} {
		if v < 0 || v > 1 {
			return fmt.Errorf("eval: %s %v is not a share between 0 and 1", name, v)
		}
	}
	b, err := os.ReadFile(rest[0])
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	f, err := ask.ParseEval(b)
	if err != nil {
		return fmt.Errorf("eval: %s: %w", rest[0], err)
	}
	asker, closeEnv, err := newAsker(ctx, "pipeline-eval")
	if err != nil {
		return err
	}
	defer closeEnv()
	rep, err := ask.Evaluate(ctx, asker.Ask, f)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(os.Stdout, rep)
	}
	if short := rep.Shortfalls(*threshold, *timeThreshold); len(short) > 0 {
		return fmt.Errorf("eval: %s", strings.Join(short, "; "))
	}
	return nil
}

func printReport(w io.Writer, rep ask.EvalReport) {
	for i, r := range rep.Results {
		mark := func(ok bool) string {
			if ok {
				return "yes"
			}
			return "no"
		}
		timed := "-"
		if r.Second != nil {
			timed = mark(r.TimeHit)
		}
		fmt.Fprintf(w, "%3d. lesson %-4s time %-4s %s  (want %s; cited %s)\n", i+1, mark(r.Found), timed,
			r.Question, r.Lesson, strings.Join(r.Cited, ", "))
		if r.Error != "" {
			fmt.Fprintf(w, "     error: %s\n", r.Error)
		}
	}
	fmt.Fprintf(w, "lesson in the top %d citations: %d of %d (%.0f%%)\n", ask.TopCitations, rep.Found, rep.Questions, 100*rep.FoundRate)
	if rep.Timed > 0 {
		fmt.Fprintf(w, "second within a cited range:  %d of %d (%.0f%%)\n", rep.TimeHits, rep.Timed, 100*rep.TimeRate)
	}
	if rep.Errors > 0 {
		fmt.Fprintf(w, "questions that could not be asked: %d\n", rep.Errors)
	}
}
