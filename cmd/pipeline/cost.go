package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/coursekb/pipeline/local/stack"
	"github.com/coursekb/pipeline/shared/cost"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

func init() {
	register("cost", "what the lessons cost at list prices: per lesson, course, month and video hour (reads the usage the stages recorded)", costCmd)
}

// costCmd reads every lesson's cost ledger from Firestore (like `pipeline
// status`: GOOGLE_CLOUD_PROJECT and the emulator variables), the platform's
// usage per lesson as a load run measured it, and prices both.
func costCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	strategy := fs.String("strategy", envOr("PROCESSING_STRATEGY", cost.StrategyStandard), "Speech-to-Text processing strategy: STANDARD or DYNAMIC_BATCHING")
	minutes := fs.Float64("lesson-minutes", 10, "a real lesson's mean length, over which the per-lesson costs are spread for the cost per video hour")
	changed := fs.Float64("changed", 0.10, "share of the catalog processed again each month (new lessons and new videos)")
	detectEvery := fs.Duration("detect-every", 15*time.Minute, "the detection schedule")
	sweepEvery := fs.Duration("sweep-every", 5*time.Minute, "the sweeper's schedule")
	retention := fs.Float64("raw-retention-days", 30, "days a source video stays in the raw bucket (its lifecycle rule)")
	platformPath := fs.String("platform", "", "the platform usage a load run measured (default .cache/load/platform.json if present, else the repository's shared/cost/platform.json)")
	top := fs.Int("lessons", 10, "list the dearest N lessons")
	artifacts := fs.String("artifacts-bucket", os.Getenv("ARTIFACTS_BUCKET"), "the artifacts bucket, to size what is stored (empty: left out)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	proj, err := project()
	if err != nil {
		return err
	}
	client, err := firestore.NewClient(ctx, proj)
	if err != nil {
		return err
	}
	defer client.Close()
	lessons, err := lessonstate.New(client).Lessons(ctx)
	if err != nil {
		return err
	}
	sizes := map[string]float64{}
	if *artifacts != "" {
		if sizes, err = objectBytes(ctx, *artifacts); err != nil {
			return err
		}
	}
	ledger := cost.FromLessons(lessons, sizes)
	if len(ledger) == 0 {
		return errors.New("no lesson has recorded any usage yet: run the pipeline first (pipeline run, pipeline load)")
	}
	measured, source, err := readMeasured(*platformPath)
	if err != nil {
		return err
	}
	prices, err := cost.DefaultPrices()
	if err != nil {
		return err
	}
	rep, err := cost.Compute(prices, ledger, measured.Platform, measured.Idle, cost.Assumptions{
		SpeechStrategy: strings.ToUpper(*strategy), LessonMinutes: *minutes, ChangedShare: *changed,
		DetectionsPerMonth: float64(30*24*time.Hour) / float64(*detectEvery), SweepsPerMonth: float64(30*24*time.Hour) / float64(*sweepEvery),
		RawRetentionDays: *retention,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("%d lessons with a ledger in project %s; platform usage per lesson from %s (%s, %s)\n\n", len(ledger), proj, source, measured.Run, measured.At)
	cost.Write(os.Stdout, rep, *top)
	return nil
}

// readMeasured reads the platform usage: the file named, else the last load
// run's, else the repository's.
func readMeasured(path string) (cost.Measured, string, error) {
	if path != "" {
		m, err := cost.ReadMeasured(path)
		return m, path, err
	}
	if root, err := stack.ModuleRoot(); err == nil {
		p := filepath.Join(root, ".cache", "load", "platform.json")
		if m, err := cost.ReadMeasured(p); err == nil {
			return m, p, nil
		}
	}
	m, err := cost.DefaultMeasured()
	return m, "shared/cost/platform.json", err
}

// objectBytes sums a bucket's lessons/{id}/ objects by lesson.
func objectBytes(ctx context.Context, bucket string) (map[string]float64, error) {
	c, err := storage.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := map[string]float64{}
	it := c.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: "lessons/"})
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list gs://%s: %w", bucket, err)
		}
		if parts := strings.SplitN(o.Name, "/", 3); len(parts) == 3 {
			out[parts[1]] += float64(o.Size)
		}
	}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
