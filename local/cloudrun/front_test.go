package cloudrun

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A function's request that runs past its timeout is cut off: the caller
// gets 504 and the function's own request context is cancelled, as Cloud Run
// does; functions without a timeout are not limited.
func TestFrontCutsRequestsAtTheirTimeout(t *testing.T) {
	cancelled := make(chan error, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Fast" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(10 * time.Second):
			cancelled <- errors.New("the function's request was never cancelled")
		}
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	front := httptest.NewServer(Front(u, map[string]time.Duration{"Slow": 200 * time.Millisecond}))
	defer front.Close()

	resp, err := http.Post(front.URL+"/Slow", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow function answered %d, want 504", resp.StatusCode)
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("the function's context ended with %v, want cancelled", err)
	}
	resp, err = http.Post(front.URL+"/Fast", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("fast function answered %d", resp.StatusCode)
	}
}

func TestParseTimeouts(t *testing.T) {
	got, err := ParseTimeouts("Downloader=30m, Starter=60s")
	if err != nil || got["Downloader"] != 30*time.Minute || got["Starter"] != time.Minute {
		t.Fatalf("%v, %v", got, err)
	}
	if _, err := ParseTimeouts("Downloader=soon,=1s"); err == nil || !strings.Contains(err.Error(), `"Downloader=soon"`) || !strings.Contains(err.Error(), `"=1s"`) {
		t.Fatalf("bad timeouts: %v, want every bad entry named", err)
	}
}
