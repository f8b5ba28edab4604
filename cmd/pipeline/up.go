package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/local/stack"
)

func init() {
	register("up", "start the one-machine stack on the sample course and keep it up until Ctrl-C", upCmd)
}

// upCmd keeps the stack running so that it can be driven by hand: gcloud
// against the emulators, curl against the detector, replays.
func upCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return err
	}
	cat, err := sample.Load()
	if err != nil {
		return err
	}
	mediaDir := filepath.Join(root, ".cache", "sample-media")
	videos, err := sample.Generate(ctx, cat, mediaDir, sample.GenerateOptions{})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), "up-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := stack.Start(ctx, stack.Options{Dir: dir, Catalog: cat, MediaDir: mediaDir, Videos: videos, Logs: os.Stderr})
	if err != nil {
		return err
	}
	defer st.Stop()
	fmt.Printf(`The stack is up (Ctrl-C stops it). Function logs follow on stderr.

  detect:   curl -X POST %s/Detector
  gcloud:   export CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=http://%s/ CLOUDSDK_CORE_PROJECT=%s CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true
            gcloud pubsub topics publish lesson-discovered --message='{"lessonId":"pyL1vars001","version":1}'
  clients:  export FIRESTORE_EMULATOR_HOST=%s PUBSUB_EMULATOR_HOST=%s STORAGE_EMULATOR_HOST=%s
`, st.FunctionsURL, st.PubSub.Host, st.ProjectID, st.Firestore.Host, st.PubSub.Host, st.GCS.Host())
	<-ctx.Done()
	return nil
}
