package speech_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localspeech "github.com/coursekb/pipeline/local/speech"
)

// A fault on one file fails that file only; a whole-operation fault fails
// the operation with the given status.
func TestFailedFileAndOperation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{Faults: []localspeech.Fault{{
		Match:   func(uri string) bool { return strings.HasSuffix(uri, "/seg-001.flac") },
		Code:    codes.DataLoss,
		Message: "audio damaged in transit",
	}}})
	uris := e.uploadSegments(t, 1)
	resp := e.recognize(t, request(uris...))
	for i, uri := range uris {
		fr := resp.GetResults()[uri]
		switch {
		case i == 1 && (fr.GetError().GetCode() != int32(codes.DataLoss) || fr.GetError().GetMessage() != "audio damaged in transit"):
			t.Errorf("%s: error %v, want the injected DataLoss", uri, fr.GetError())
		case i == 1 && fr.GetCloudStorageResult() != nil:
			t.Errorf("%s: failed file has output %v", uri, fr.GetCloudStorageResult())
		case i != 1 && (fr.GetError() != nil || fr.GetCloudStorageResult().GetUri() == ""):
			t.Errorf("%s: %v", uri, fr)
		}
	}

	e.engine.ClearFaults()
	e.engine.AddFault(localspeech.Fault{
		Match:          func(uri string) bool { return strings.Contains(uri, "/v2/") },
		WholeOperation: true,
		Code:           codes.Internal,
		Message:        "backend exploded",
	})
	v2 := e.uploadSegments(t, 2)
	op, err := e.client.BatchRecognize(t.Context(), request(v2...))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pollUntilDone(t, op)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "backend exploded") {
		t.Fatalf("operation error %v, want the injected Internal", err)
	}
	// The faults named v2 only: v1 goes through again.
	if resp := e.recognize(t, request(uris...)); resp.GetResults()[uris[1]].GetError() != nil {
		t.Errorf("after ClearFaults: %v", resp.GetResults()[uris[1]].GetError())
	}
}

func TestCallCounters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	uris := e.uploadSegments(t, 1)
	other := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-000.flac", media.short, nil)
	e.recognize(t, request(uris...))
	e.recognize(t, request(append(uris[:1:1], other)...))
	if _, err := e.client.BatchRecognize(t.Context(), request()); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty request: %v", err)
	}
	if got := e.engine.Calls(); got != 3 {
		t.Errorf("Calls() = %d, want 3", got)
	}
	for id, want := range map[string]int{lesson1: 2, lesson2: 1, "pyL3loop003": 0} {
		if got := e.engine.LessonCalls(id); got != want {
			t.Errorf("LessonCalls(%s) = %d, want %d", id, got, want)
		}
	}
}

func TestRejectNext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, localspeech.Options{})
	uri := e.upload(t, "lessons/"+lesson2+"/v1/audio/seg-000.flac", media.short, nil)
	e.engine.RejectNext(2, codes.Unavailable, "")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	op, err := e.client.BatchRecognize(ctx, request(uri))
	if err != nil {
		t.Fatalf("UNAVAILABLE twice should be retried by the client: %v", err)
	}
	if _, err := pollUntilDone(t, op); err != nil {
		t.Fatal(err)
	}
	if got := e.engine.Calls(); got != 3 {
		t.Errorf("Calls() = %d after two rejections and a success, want 3", got)
	}

	e.engine.RejectNext(1, codes.ResourceExhausted, "quota exceeded for batch recognize requests")
	_, err = e.client.BatchRecognize(t.Context(), request(uri))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("got %v, want the injected ResourceExhausted", err)
	}
	if _, err := e.client.BatchRecognize(t.Context(), request(uri)); err != nil {
		t.Fatalf("after the injected rejection: %v", err)
	}
}
