package speech_test

import (
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	localspeech "github.com/coursekb/pipeline/local/speech"
)

// The operation's name is all a later step needs: a second client resumes it
// and sees it done at the configured poll, with metadata along the way.
func TestResumeByName(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{Polls: 3})
	uris := e.uploadSegments(t, 1)
	op, err := e.client.BatchRecognize(t.Context(), request(uris...))
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() {
		t.Fatal("operation done as it starts")
	}
	name := op.Name()
	if !strings.HasPrefix(name, "projects/demo/locations/us/operations/") {
		t.Errorf("operation name %q", name)
	}

	other := newClient(t, e.endpoint)
	resumed := other.BatchRecognizeOperation(name)
	var progress []int32
	for poll := 1; poll <= 3; poll++ {
		resp, err := resumed.Poll(t.Context())
		if err != nil {
			t.Fatalf("poll %d: %v", poll, err)
		}
		md, err := resumed.Metadata()
		if err != nil || md == nil {
			t.Fatalf("poll %d metadata: %v %v", poll, md, err)
		}
		progress = append(progress, md.GetProgressPercent())
		if md.GetResource() != chirp3 || md.GetCreateTime() == nil || md.GetBatchRecognizeRequest() == nil {
			t.Errorf("metadata %v", md)
		}
		if poll < 3 {
			if resumed.Done() || resp != nil {
				t.Fatalf("done at poll %d of 3", poll)
			}
			continue
		}
		if !resumed.Done() || len(resp.GetResults()) != 3 {
			t.Fatalf("not done at poll 3: %v", resp)
		}
		for _, uri := range uris {
			tm := md.GetBatchRecognizeMetadata().GetTranscriptionMetadata()[uri]
			if tm.GetProgressPercent() != 100 || tm.GetUri() != resp.GetResults()[uri].GetCloudStorageResult().GetUri() {
				t.Errorf("%s transcription metadata %v", uri, tm)
			}
		}
	}
	if progress[0] > progress[1] || progress[1] > 99 || progress[2] != 100 {
		t.Errorf("progress %v", progress)
	}

	// The first client's handle gets the same answer (Wait polls at once).
	resp, err := op.Wait(t.Context())
	if err != nil || len(resp.GetResults()) != 3 {
		t.Fatalf("Wait: %v %v", resp, err)
	}
}

func TestWaitOperation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{Delay: 300 * time.Millisecond})
	uri := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-000.flac", media.short, nil)
	start := time.Now()
	op, err := e.client.BatchRecognize(t.Context(), request(uri))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Poll(t.Context()); err != nil || op.Done() {
		t.Fatalf("done before its delay: %v", err)
	}
	got, err := e.client.LROClient.WaitOperation(t.Context(), &longrunningpb.WaitOperationRequest{Name: op.Name(), Timeout: durationpb.New(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetDone() || got.GetResponse() == nil {
		t.Fatalf("WaitOperation returned %v", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("done after %v, before its 300ms delay", d)
	}
}

func TestCancelListDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{Delay: time.Hour})
	uri := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-000.flac", media.short, nil)
	op, err := e.client.BatchRecognize(t.Context(), request(uri))
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.client.LROClient.ListOperations(t.Context(), &longrunningpb.ListOperationsRequest{Name: "projects/demo/locations/us"}).Next()
	if err != nil || list.GetName() != op.Name() {
		t.Fatalf("ListOperations: %v %v", list, err)
	}
	if err := e.client.LROClient.CancelOperation(t.Context(), &longrunningpb.CancelOperationRequest{Name: op.Name()}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Poll(t.Context()); status.Code(err) != codes.Canceled || !op.Done() {
		t.Fatalf("cancelled operation polls %v (done %v)", err, op.Done())
	}
	if err := e.client.LROClient.DeleteOperation(t.Context(), &longrunningpb.DeleteOperationRequest{Name: op.Name()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.BatchRecognizeOperation(op.Name()).Poll(t.Context()); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted operation polls %v, want NotFound", err)
	}
}
