package detector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/coursekb/pipeline/local/emulators"
	localhotmart "github.com/coursekb/pipeline/local/hotmart"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/detect"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
	"github.com/coursekb/pipeline/shared/media"
)

// newHandler wires the handler to the local Hotmart server and the
// emulators, with no media source (every media page is awaiting media).
func newHandler(t *testing.T, resolverErr error) (*Handler, *localhotmart.Server, *bytes.Buffer) {
	t.Helper()
	emulators.ForTest(t, emulators.Firestore)
	emulators.ForTest(t, emulators.PubSub)
	ctx := t.Context()
	project := emulators.ProjectID("det")
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	hs := localhotmart.NewServer(cat, localhotmart.Options{})
	srv := httptest.NewServer(hs)
	t.Cleanup(srv.Close)
	o := hs.Options()
	hm, err := hotmart.New(hotmart.Config{BaseURL: srv.URL, TokenURL: srv.URL + localhotmart.TokenPath,
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, BasicToken: o.BasicToken, RetryBaseDelay: time.Millisecond, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	for _, topic := range []string{events.TopicLessonDiscovered, events.TopicLessonProcessed, events.TopicLessonEvents} {
		if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + topic}); err != nil {
			t.Fatal(err)
		}
	}
	pub := events.NewPublisher(ps)
	t.Cleanup(pub.Close)
	catalog := detect.Catalog{}
	for _, p := range cat.Products {
		catalog[p.ID] = detect.CatalogEntry{Subdomain: p.ClubSubdomain, School: p.School}
	}
	var logs bytes.Buffer
	h, err := New(Deps{
		Hotmart: hm, Store: lessonstate.New(fs), Publisher: pub, Catalog: catalog, Budget: time.Minute,
		Resolver: func(context.Context) (detect.MediaResolver, error) {
			if resolverErr != nil {
				return nil, resolverErr
			}
			return media.NewResolver(nil, nil, "", ""), nil
		},
		Log: logging.New(&logs, "info", project),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, hs, &logs
}

func call(t *testing.T, h *Handler) (int, Summary) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	var sum Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil {
		t.Fatalf("answer is not a summary: %v: %s", err, rec.Body.String())
	}
	return rec.Code, sum
}

func TestDetectorAnswersWithTheRunSummary(t *testing.T) {
	h, _, _ := newHandler(t, nil)
	code, sum := call(t, h)
	if code != http.StatusOK || !sum.Complete || !strings.HasPrefix(sum.RunID, "run-") {
		t.Fatalf("answer %d %+v, want 200 with a complete run", code, sum)
	}
	// Seven pages: six with media (no media source configured here, so all
	// awaiting) and the quiz without.
	if sum.Counts.New != 7 || sum.Counts.AwaitingMedia != 6 || sum.Counts.NoMedia != 1 || len(sum.AwaitingMedia) != 6 {
		t.Errorf("counts %+v awaiting %v", sum.Counts, sum.AwaitingMedia)
	}
}

func TestDetectorFailures(t *testing.T) {
	tests := []struct {
		name        string
		resolverErr error
		inject      func(*localhotmart.Server)
		want        string
	}{
		{"media manifest cannot be read", errors.New("load media manifest gs://b/m.json: not found"), nil, "load media manifest"},
		{"Hotmart refuses the product list", nil, func(s *localhotmart.Server) { s.InjectFailures(localhotmart.ProductsPath, http.StatusBadRequest, 10) }, "list products"},
		{"Hotmart answers garbage", nil, func(s *localhotmart.Server) { s.InjectMalformed(localhotmart.ProductsPath, 10) }, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, hs, logs := newHandler(t, tt.resolverErr)
			if tt.inject != nil {
				tt.inject(hs)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("answer %d, want 500 so Cloud Scheduler retries", rec.Code)
			}
			if !strings.Contains(rec.Body.String(), tt.want) || !strings.Contains(logs.String(), tt.want) {
				t.Errorf("neither answer %s nor log names %q:\n%s", rec.Body.String(), tt.want, logs.String())
			}
		})
	}
}

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

// A page whose id could choose where objects are written is skipped and
// reported; the rest of the course is processed and nothing is written for it.
func TestDetectorSkipsUnsafePageIDs(t *testing.T) {
	h, hs, _ := newHandler(t, nil)
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	pages := cat.Products[0].Modules[0].Pages
	bad := []string{"../etc", "a/b", ""}
	for i, id := range bad {
		p := pages[0]
		p.PageID, p.PageOrder = id, 10+i
		pages = append(pages, p)
	}
	cat.Products[0].Modules[0].Pages = pages
	hs.SetCatalog(cat)
	code, sum := call(t, h)
	if code != http.StatusOK || sum.Counts.New != 7 {
		t.Fatalf("answer %d %+v, want 200 with the 7 good pages", code, sum)
	}
	for _, id := range bad {
		found := false
		for _, e := range sum.Errors {
			found = found || strings.Contains(e, `page id "`+id+`" is not usable`)
		}
		if !found {
			t.Errorf("no error names page id %q: %v", id, sum.Errors)
		}
	}
}
