package main

import (
	"context"
	"flag"
	"fmt"
	"os"

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
	smp, err := prepareSample(ctx, "up-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(smp.dir)
	opts := smp.options()
	for _, line := range withRealServices(&opts, os.Getenv) {
		fmt.Println("  " + line)
	}
	opts.Logs = os.Stderr
	st, err := stack.Start(ctx, opts)
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
