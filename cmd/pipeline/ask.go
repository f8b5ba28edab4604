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

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/shared/ask"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

func init() {
	register("ask", `ask a school's assistant: ask --school S [--course C] [--level L] [--json] "question" `+
		`(GOOGLE_CLOUD_PROJECT, OPENAI_API_KEY, OPENAI_BASE_URL; emulator variables honoured)`, askCmd)
}

func askCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ask", flag.ContinueOnError)
	school := fs.String("school", "", "the school's slug (required)")
	course := fs.String("course", "", "only this course's lessons (its Hotmart product id)")
	level := fs.String("level", "", "only lessons of this level (básico, intermedio, avanzado)")
	asJSON := fs.Bool("json", false, "print the answer and its citations as JSON")
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	question := strings.TrimSpace(strings.Join(words, " "))
	if *school == "" || question == "" {
		return errors.New(`ask: usage: pipeline ask --school S [--course C] [--level L] [--json] "question"`)
	}
	asker, closeEnv, err := newAsker(ctx, "pipeline-ask")
	if err != nil {
		return err
	}
	defer closeEnv()
	ans, err := asker.Ask(ctx, ask.Question{School: *school, Course: *course, Level: *level, Text: question})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ans)
	}
	printAnswer(os.Stdout, ans)
	return nil
}

// newAsker builds an Asker from the environment (ask.Config). It needs only
// Firestore (the school's store id, lesson titles), so it makes only that
// client: no Cloud Storage or Pub/Sub credentials are asked for.
func newAsker(ctx context.Context, service string) (*ask.Asker, func(), error) {
	cfg, err := ask.LoadConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", service, err)
	}
	fs, err := firestore.NewClient(ctx, cfg.ProjectID)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: firestore client: %w", service, err)
	}
	a, err := ask.New(lessonstate.New(fs), cfg)
	if err != nil {
		fs.Close()
		return nil, nil, err
	}
	return a, func() { fs.Close() }, nil
}

// parseInterleaved parses flags given before, between or after the
// question's words, and returns the words.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return words, nil
		}
		words = append(words, args[0])
		args = args[1:]
	}
}

func printAnswer(w io.Writer, ans ask.Answer) {
	fmt.Fprintln(w, ans.Text)
	if len(ans.Citations) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSources:")
	for i, c := range ans.Citations {
		title := c.Title
		if title == "" {
			title = c.LessonID
		}
		fmt.Fprintf(w, "  [%d] %s (%s v%d) %s\n", i+1, title, c.LessonID, c.Version, timeRange(c))
	}
}

// timeRange is a citation's span as hh:mm:ss–hh:mm:ss, or what stands in
// for it.
func timeRange(c ask.Citation) string {
	if c.Start == nil || c.End == nil {
		return "(no time range)"
	}
	return clock(*c.Start) + "–" + clock(*c.End)
}

func clock(seconds float64) string {
	s := int64(seconds)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
