package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/shared/transfer"
)

func init() {
	register("gcs-server", "serve the local Cloud Storage in this process", gcsServer)
	register("fetch", "stream one media URL into Cloud Storage (STORAGE_EMULATOR_HOST)", fetch)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// gcsServer runs local/gcs until interrupted. Once it listens, it prints one
// JSON line on stdout: {"url":"http://...","host":"127.0.0.1:PORT"}; put host
// in STORAGE_EMULATOR_HOST.
func gcsServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gcs-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0: any free port)")
	root := fs.String("root", "", "directory for buckets and objects (empty: memory)")
	var buckets multiFlag
	fs.Var(&buckets, "bucket", "bucket to create at start (repeatable)")
	project := fs.String("notify-project", "", "Pub/Sub project for finalize notifications (PUBSUB_EMULATOR_HOST)")
	topic := fs.String("notify-topic", "", "Pub/Sub topic for finalize notifications")
	notifyBucket := fs.String("notify-bucket", "", "only notify for this bucket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := gcs.Start(gcs.Options{
		Addr: *addr, Root: *root, Buckets: buckets,
		NotifyProjectID: *project, NotifyTopic: *topic, NotifyBucket: *notifyBucket,
	})
	if err != nil {
		return err
	}
	defer s.Stop()
	line, _ := json.Marshal(map[string]string{"url": s.URL(), "host": s.Host()})
	fmt.Println(string(line))
	<-ctx.Done()
	return nil
}

// fetch runs one transfer.Copier.FromURL and prints, on exit, one JSON line
// with what it moved and its own peak resident memory: the benchmark's
// downloader process.
func fetch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	src := transfer.Source{}
	dst := transfer.Dest{Metadata: map[string]string{}}
	opts := transfer.Options{}
	fs.StringVar(&src.URL, "url", "", "media URL")
	fs.Int64Var(&src.Size, "size", 0, "expected bytes (0: unknown)")
	fs.StringVar(&src.MD5, "md5", "", "expected hex MD5")
	fs.StringVar(&dst.Bucket, "bucket", "", "destination bucket")
	fs.StringVar(&dst.Object, "object", "", "destination object")
	fs.StringVar(&dst.ContentType, "content-type", "", "content type (default: from the response or extension)")
	var meta multiFlag
	fs.Var(&meta, "meta", "object metadata key=value (repeatable)")
	fs.Int64Var(&opts.MaxBytes, "max-bytes", 0, "refuse larger media (0: no limit)")
	fs.IntVar(&opts.ChunkSize, "chunk-size", 0, "resumable upload chunk bytes (0: 8 MiB; -1: single request)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if src.URL == "" || dst.Bucket == "" || dst.Object == "" {
		return errors.New("fetch: --url, --bucket and --object are required")
	}
	for _, kv := range meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("fetch: --meta %q: want key=value", kv)
		}
		dst.Metadata[k] = v
	}
	st, err := storage.NewClient(ctx) // honours STORAGE_EMULATOR_HOST
	if err != nil {
		return fmt.Errorf("fetch: storage client: %w", err)
	}
	defer st.Close()
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableCompression: true}}
	start := time.Now()
	res, err := transfer.New(st, hc, opts).FromURL(ctx, src, dst)
	secs := time.Since(start).Seconds()
	out := map[string]any{
		"bytes":      res.Size,
		"seconds":    secs,
		"md5":        res.MD5,
		"generation": res.Generation,
		"reused":     res.Reused,
		"maxRssKiB":  maxRSSKiB(),
	}
	if secs > 0 && res.Size > 0 {
		out["mibPerSec"] = float64(res.Size) / (1 << 20) / secs
	}
	if err != nil {
		out["error"] = err.Error()
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	return err
}

// maxRSSKiB is this process's peak resident set (getrusage ru_maxrss: KiB on
// Linux).
func maxRSSKiB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return int64(ru.Maxrss)
}
