package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coursekb/pipeline/local/load"
	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/cost"
)

func init() {
	register("load", "run a synthetic course of N lessons through the whole stack, optionally under faults, and check and measure it", loadCmd)
}

func loadCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	lessons := fs.Int("lessons", 100, "lessons in the load course")
	seed := fs.Int64("seed", 1, "seed of the load course, the faults and the kills")
	chaos := fs.String("chaos", "none", "faults: all, none, or a comma-separated list of errors, duplicates, kills, cuts")
	poisonFlag := fs.Bool("poison", false, "add the poison inputs (malformed and hostile events, lessons that must fail)")
	errorRate := fs.Float64("error-rate", 0.2, "share of the outside services' answers refused, with --chaos errors")
	kills := fs.Int("kills", 5, "least kills of the functions process, with --chaos kills")
	lease := fs.Duration("lease", 45*time.Second, "every stage's lease: how soon the sweeper takes over a killed process's work")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up waiting for the lessons after this long")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	platformOut := fs.String("platform-out", "", "write the measured platform usage for `pipeline cost` (default .cache/load/platform.json for a run without faults)")
	keep := fs.Bool("keep", false, "keep the stack's working directory (storage, logs) after the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	faults, err := load.ParseFaults(*chaos)
	if err != nil {
		return err
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, ".cache"), 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), "load-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	logPath := filepath.Join(dir, "functions.log")
	logs, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logs.Close()

	started := time.Now()
	rep, err := load.Run(ctx, load.Options{
		Lessons: *lessons, Seed: *seed, Faults: faults, Poison: *poisonFlag, ErrorRate: *errorRate, MinKills: *kills,
		Lease: *lease, Dir: dir, Timeout: *timeout, Logs: logs, Progress: os.Stdout,
	})
	if err != nil {
		return err
	}
	rep.Print(os.Stdout)
	fmt.Printf("\nwall time %s; function logs (Cloud Logging JSON): %s%s\n", time.Since(started).Round(time.Second), logPath,
		map[bool]string{true: "", false: " (removed at exit; --keep keeps it)"}[*keep])

	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *platformOut == "" && !faults.Any() && !*poisonFlag {
		if err := os.MkdirAll(filepath.Join(root, ".cache", "load"), 0o755); err != nil {
			return err
		}
		*platformOut = filepath.Join(root, ".cache", "load", "platform.json")
	}
	if *platformOut != "" {
		m := cost.Measured{At: time.Now().UTC().Format(time.RFC3339), Platform: rep.Platform, Idle: rep.Idle,
			Run: fmt.Sprintf("pipeline load --lessons %d --seed %d --chaos %s", *lessons, *seed, faults)}
		if err := cost.WriteMeasured(*platformOut, m); err != nil {
			return err
		}
		fmt.Printf("platform usage per lesson written to %s (pipeline cost reads it)\n", *platformOut)
	}
	if !rep.Passed() {
		return load.ErrChecksFailed
	}
	return nil
}
