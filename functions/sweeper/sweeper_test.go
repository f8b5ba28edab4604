package sweeper

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/relay"
	"github.com/coursekb/pipeline/shared/sweep"
)

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

// The sweeper runs on POST only (Cloud Scheduler posts) and answers its
// report; anything else is refused without sweeping.
func TestSweeperRunsOnPostAndAnswersItsReport(t *testing.T) {
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	project := emulators.ProjectID("sweeper")
	fs, err := firestore.NewClient(t.Context(), project)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ps, err := pubsub.NewClient(t.Context(), project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	var logs bytes.Buffer
	log := logging.New(&logs, "info", project)
	store := lessonstate.New(fs)
	pub := events.NewPublisher(ps)
	defer pub.Close()
	rl, err := relay.New(store, pub, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sweep.New(store, rl, 10, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(s, log)
	if err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Fatalf("GET answered %d (Allow %q), want 405 naming POST", rec.Code, rec.Header().Get("Allow"))
	}
	if bytes.Contains(logs.Bytes(), []byte("sweep finished")) {
		t.Fatal("a GET ran a sweep")
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	var rep sweep.Report
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &rep) != nil || rep.Due != 0 {
		t.Fatalf("POST answered %d %s, want 200 with an empty report", rec.Code, rec.Body.String())
	}
	if _, err := New(nil, log); err == nil {
		t.Fatal("a handler without a sweeper was built")
	}
}
