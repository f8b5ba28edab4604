package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/sweep"
)

func init() {
	register("sweep", "re-drive stalled lessons once, as the scheduled sweeper does (GOOGLE_CLOUD_PROJECT; emulator variables honoured)", sweepCmd)
}

func sweepCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg config.Sweeper
	if err := config.Load(&cfg); err != nil {
		return err
	}
	env, err := setup.New(ctx, "pipeline-sweep", cfg.Common, setup.Options{LogOutput: io.Discard})
	if err != nil {
		return err
	}
	defer env.Close()
	s, err := sweep.New(env.Store, env.Relay, cfg.Batch, env.Log)
	if err != nil {
		return err
	}
	rep, err := s.Run(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("sweep: %d due, %d re-driven, %d failed, %d rescheduled, %d outbox entries flushed\n",
		rep.Due, rep.Redriven, rep.Failed, rep.Rescheduled, rep.Flushed)
	for _, a := range rep.Actions {
		fmt.Printf("  %-12s v%-3d %-9s %-11s %s\n", a.LessonID, a.Version, a.Step, a.Action, a.Reason)
	}
	for _, e := range rep.Errors {
		fmt.Printf("  error: %s\n", e)
	}
	if rep.More {
		fmt.Println("  the batch was full: run it again for the rest")
	}
	return nil
}
