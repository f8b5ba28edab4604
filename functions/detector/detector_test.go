package detector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
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

func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore, emulators.PubSub)) }

// rig is the detector function wired to the local Hotmart server, through
// the real client, and to the emulators, with no media source (every media
// page is awaiting media).
type rig struct {
	h     *Handler
	hs    *localhotmart.Server
	store *lessonstate.Store
	logs  *bytes.Buffer
}

func newRig(t *testing.T, resolverErr error) *rig {
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
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, BasicToken: o.BasicToken,
		RequestsPerMinute: 60_000, RetryBaseDelay: time.Millisecond, MaxAttempts: 2})
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
	store := lessonstate.New(fs)
	h, err := New(Deps{
		Hotmart: hm, Store: store, Publisher: pub, Catalog: catalog, Budget: time.Minute,
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
	return &rig{h: h, hs: hs, store: store, logs: &logs}
}

// call runs one detection as Cloud Scheduler does: a POST.
func (r *rig) call(t *testing.T) (int, Summary) {
	t.Helper()
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"trigger":"schedule"}`)))
	var sum Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil {
		t.Fatalf("answer is not a summary: %v: %s", err, rec.Body.String())
	}
	return rec.Code, sum
}

// active lists the ids of the lessons the store holds, not removed, sorted.
func (r *rig) active(t *testing.T) []string {
	t.Helper()
	ls, err := r.store.Lessons(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if !l.Removed {
			out = append(out, l.ID)
		}
	}
	slices.Sort(out)
	return out
}

// course returns the summary's entry for a course.
func course(t *testing.T, sum Summary, id string) lessonstate.CourseRun {
	t.Helper()
	for _, c := range sum.Courses {
		if c.CourseID == id {
			return c
		}
	}
	t.Fatalf("summary says nothing of course %s: %+v", id, sum.Courses)
	return lessonstate.CourseRun{}
}

// every lesson of the sample (the quiz is not a lesson type).
var sampleLessons = []string{"mkL1pers005", "mkL2cale006", "mkL3metr007", "pyL1vars001", "pyL2cond002", "pyL3func004"}

func TestDetectorAnswersWithTheRunSummary(t *testing.T) {
	r := newRig(t, nil)
	code, sum := r.call(t)
	if code != http.StatusOK || sum.Outcome != detect.OutcomeComplete || !sum.Complete || !strings.HasPrefix(sum.RunID, "run-") {
		t.Fatalf("answer %d %+v, want 200 with a complete run", code, sum)
	}
	// Six lessons with media (no media source configured here, so all
	// awaiting) and the quiz, which is not a lesson.
	if sum.Counts.New != 6 || sum.Counts.AwaitingMedia != 6 || sum.Counts.NotLessons != 1 || len(sum.AwaitingMedia) != 6 ||
		sum.NotLessonTypes["QUIZ"] != 1 || sum.Counts.CoursesWalked != 2 || len(sum.Courses) != 2 {
		t.Errorf("summary %+v", sum)
	}
	if got := r.active(t); !slices.Equal(got, sampleLessons) {
		t.Errorf("lessons %v, want %v", got, sampleLessons)
	}
}

// Cloud Scheduler POSTs to the function's path; anything else is refused
// before a run starts.
func TestDetectorRunsOnPostOnly(t *testing.T) {
	r := newRig(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
			t.Errorf("%s: %d Allow %q, want 405 allowing POST", method, rec.Code, rec.Header().Get("Allow"))
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, httptest.NewRequest(method, "/healthz", nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s /healthz: %d, want 404", method, rec.Code)
		}
	}
	if n := r.hs.Requests("/"); n != 0 {
		t.Errorf("Hotmart received %d requests", n)
	}
	if _, found, err := r.store.LatestRun(t.Context()); found || err != nil {
		t.Errorf("a run was recorded (%v, %v)", found, err)
	}
}

// The hostile catalog: each fault alone and all together, after a clean
// first run. Meanwhile the Python course gains a page in its second module
// and loses another there: the gain must be recorded (the module after a
// broken one is walked) and the loss must not (a partial walk removes
// nothing). The answer is 207, never a code Cloud Scheduler retries.
func TestHostileCatalog(t *testing.T) {
	numericID := func(s *localhotmart.Server) {
		s.SetPageField("pyL2cond002", "page_id", json.RawMessage(`12345`))
	}
	numericIDMarketing := func(s *localhotmart.Server) {
		s.SetPageField("mkL1pers005", "page_id", json.RawMessage(`5005`))
	}
	truncated := func(s *localhotmart.Server) {
		s.SetFault(localhotmart.PagesPathOf("pyM1fund01"), localhotmart.FaultTruncated)
	}
	objectForArray := func(s *localhotmart.Server) {
		s.SetFault(localhotmart.PagesPathOf("mkM2cont01"), localhotmart.FaultObjectForArray)
	}
	looping := func(s *localhotmart.Server) {
		s.SetFault(localhotmart.ProductsPath, localhotmart.FaultLoopingCursor)
	}
	tests := []struct {
		name   string
		faults []func(*localhotmart.Server)
		// courses: outcome of each, and a word every one of its problems
		// (in order) must contain.
		courses map[string][]string
		// errors: the run's own errors, one word each.
		errors []string
		// removed: whether pyL3func004, gone from Hotmart, is removed.
		removed bool
		skipped lessonstate.Counts // SkippedPages, SkippedModules
	}{
		{
			name:   "numeric page id",
			faults: []func(*localhotmart.Server){numericID},
			courses: map[string][]string{
				"4100001": {detect.CoursePartial, `module pyM1fund01: page at position 2 skipped (page_id is a JSON number, not a string): {"has_media":true,"name":"Condicionales","page_id":12345`},
				"4100002": {detect.CourseWalked},
			},
			skipped: lessonstate.Counts{SkippedPages: 1},
		},
		{
			name:   "truncated module body",
			faults: []func(*localhotmart.Server){truncated},
			courses: map[string][]string{
				"4100001": {detect.CoursePartial, "module pyM1fund01 (\"Fundamentos\", sequence 1) skipped: its pages cannot be read: hotmart: list pages of module pyM1fund01 of product 4100001"},
				"4100002": {detect.CourseWalked},
			},
			skipped: lessonstate.Counts{SkippedModules: 1},
		},
		{
			name:   "object where an array belongs",
			faults: []func(*localhotmart.Server){objectForArray},
			courses: map[string][]string{
				"4100001": {detect.CourseWalked},
				"4100002": {detect.CoursePartial, "module mkM2cont01 (\"Contenido\", sequence 2) skipped: its pages cannot be read"},
			},
			removed: true,
			skipped: lessonstate.Counts{SkippedModules: 1},
		},
		{
			name:   "looping cursor",
			faults: []func(*localhotmart.Server){looping},
			courses: map[string][]string{
				"4100001": {detect.CourseWalked},
				"4100002": {detect.CourseWalked},
			},
			errors:  []string{"repeats an earlier page"},
			removed: true,
		},
		{
			name:   "all together",
			faults: []func(*localhotmart.Server){numericIDMarketing, truncated, objectForArray, looping},
			courses: map[string][]string{
				"4100001": {detect.CoursePartial, "module pyM1fund01 (\"Fundamentos\", sequence 1) skipped"},
				"4100002": {detect.CoursePartial,
					"module mkM1aud001: page at position 1 skipped (page_id is a JSON number, not a string): {",
					"module mkM2cont01 (\"Contenido\", sequence 2) skipped"},
			},
			errors:  []string{"repeats an earlier page"},
			skipped: lessonstate.Counts{SkippedPages: 1, SkippedModules: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			if code, sum := r.call(t); code != http.StatusOK {
				t.Fatalf("clean first run: %d %+v", code, sum)
			}
			cat, err := sample.Load()
			if err != nil {
				t.Fatal(err)
			}
			newPage := cat.Products[0].Modules[1].Pages[0]
			newPage.PageID, newPage.Name = "pyL5new0005", "Funciones de orden superior"
			cat.Products[0].Modules[1].Pages = []sample.Page{newPage} // pyL3func004 is gone
			r.hs.SetCatalog(cat)
			for _, f := range tt.faults {
				f(r.hs)
			}

			code, sum := r.call(t)
			if testing.Verbose() {
				b, _ := json.MarshalIndent(sum, "", "  ")
				t.Logf("answer %d:\n%s", code, b)
			}
			if code != http.StatusMultiStatus || sum.Outcome != detect.OutcomePartial || sum.Complete {
				t.Errorf("answer %d outcome %q complete %v, want 207 partial", code, sum.Outcome, sum.Complete)
			}
			for id, want := range tt.courses {
				c := course(t, sum, id)
				if c.Outcome != want[0] || len(c.Problems) != len(want)-1 {
					t.Errorf("course %s: %s with problems %q, want %s with %d", id, c.Outcome, c.Problems, want[0], len(want)-1)
					continue
				}
				for i, w := range want[1:] {
					if !strings.HasPrefix(c.Problems[i], w) {
						t.Errorf("course %s problem %d = %q, want it to start %q", id, i, c.Problems[i], w)
					}
				}
			}
			if len(sum.Errors) != len(tt.errors) {
				t.Errorf("errors %q, want %d", sum.Errors, len(tt.errors))
			}
			for i, w := range tt.errors {
				if i < len(sum.Errors) && !strings.Contains(sum.Errors[i], w) {
					t.Errorf("error %d = %q, want it to say %q", i, sum.Errors[i], w)
				}
			}
			if sum.Counts.SkippedPages != tt.skipped.SkippedPages || sum.Counts.SkippedModules != tt.skipped.SkippedModules {
				t.Errorf("counts %+v, want skipped pages %d, modules %d", sum.Counts, tt.skipped.SkippedPages, tt.skipped.SkippedModules)
			}

			// Every error is said once, in the answer and in the logs.
			body, _ := json.Marshal(sum)
			for _, w := range tt.errors {
				if n := strings.Count(string(body), w); n != 1 {
					t.Errorf("%q appears %d times in the answer, want once", w, n)
				}
			}

			// What exists: the new page after the broken module, always;
			// the vanished page only where its course was walked whole;
			// nothing else lost.
			want := []string{"mkL1pers005", "mkL2cale006", "mkL3metr007", "pyL1vars001", "pyL2cond002", "pyL5new0005"}
			if !tt.removed {
				want = append(want, "pyL3func004")
				slices.Sort(want)
			}
			if got := r.active(t); !slices.Equal(got, want) {
				t.Errorf("lessons after the run %v, want %v", got, want)
			}
			checkLogs(t, r.logs.String(), 2)
		})
	}
}

// The status code tells Cloud Scheduler whether a retry may help.
func TestDetectorFailures(t *testing.T) {
	tests := []struct {
		name        string
		resolverErr error
		inject      func(*localhotmart.Server)
		status      int
		outcome     string
		want        string
	}{
		{"media manifest cannot be read", errors.New("load media manifest gs://b/m.json: not found"), nil,
			http.StatusInternalServerError, detect.OutcomeFailed, "load media manifest"},
		{"Hotmart unavailable", nil, func(s *localhotmart.Server) {
			s.InjectFailures(localhotmart.ProductsPath, http.StatusServiceUnavailable, 10)
		}, http.StatusServiceUnavailable, detect.OutcomeFailed, "HTTP 503"},
		{"every Club unavailable", nil, func(s *localhotmart.Server) {
			s.InjectFailures(localhotmart.ModulesPath, http.StatusBadGateway, 10)
		}, http.StatusServiceUnavailable, detect.OutcomeFailed, "HTTP 502"},
		{"Hotmart refuses the product list", nil, func(s *localhotmart.Server) {
			s.InjectFailures(localhotmart.ProductsPath, http.StatusBadRequest, 10)
		}, http.StatusMultiStatus, detect.OutcomeFailed, "list products"},
		{"Hotmart answers garbage", nil, func(s *localhotmart.Server) {
			s.InjectMalformed(localhotmart.ProductsPath, 10)
		}, http.StatusMultiStatus, detect.OutcomeFailed, "malformed"},
		{"every Club answers an object for its modules", nil, func(s *localhotmart.Server) {
			s.SetFault(localhotmart.ModulesPath, localhotmart.FaultObjectForArray)
		}, http.StatusMultiStatus, detect.OutcomeFailed, "an object where an array belongs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.resolverErr)
			if tt.inject != nil {
				tt.inject(r.hs)
			}
			code, sum := r.call(t)
			if code != tt.status || sum.Outcome != tt.outcome || sum.Complete {
				t.Fatalf("answer %d outcome %q, want %d %q", code, sum.Outcome, tt.status, tt.outcome)
			}
			body, _ := json.Marshal(sum)
			if !strings.Contains(string(body), tt.want) || !strings.Contains(r.logs.String(), tt.want) {
				t.Errorf("neither answer %s nor log names %q:\n%s", body, tt.want, r.logs.String())
			}
			if got := r.active(t); len(got) != 0 {
				t.Errorf("lessons %v recorded by a failed run", got)
			}
			checkLogs(t, r.logs.String(), 1)
		})
	}
}

// A page whose id could choose where objects are written is skipped and
// named; the rest of the course is recorded and nothing is written for it.
func TestDetectorSkipsUnsafePageIDs(t *testing.T) {
	r := newRig(t, nil)
	cat, err := sample.Load()
	if err != nil {
		t.Fatal(err)
	}
	pages := cat.Products[0].Modules[0].Pages
	bad := []string{"../etc", "a/b"}
	for i, id := range bad {
		p := pages[0]
		p.PageID, p.PageOrder = id, 10+i
		pages = append(pages, p)
	}
	cat.Products[0].Modules[0].Pages = pages
	r.hs.SetCatalog(cat)
	code, sum := r.call(t)
	if code != http.StatusMultiStatus || sum.Counts.New != 6 || sum.Counts.SkippedPages != 2 {
		t.Fatalf("answer %d %+v, want 207 with the 6 good pages", code, sum)
	}
	py := course(t, sum, "4100001")
	for _, id := range bad {
		if !slices.ContainsFunc(py.Problems, func(p string) bool { return strings.Contains(p, `page_id "`+id+`" is not usable`) }) {
			t.Errorf("no problem names page id %q: %v", id, py.Problems)
		}
	}
	if got := r.active(t); !slices.Equal(got, sampleLessons) {
		t.Errorf("lessons %v, want %v", got, sampleLessons)
	}
}

// checkLogs checks what every detection's logs must be: Cloud Logging JSON,
// durations as seconds (never raw nanoseconds), and one closing line per
// run with its outcome, which the partial-run alert counts.
func checkLogs(t *testing.T, logs string, runs int) {
	t.Helper()
	finished := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Bytes())
			continue
		}
		for k, v := range line {
			if k == "duration" || k == "wait" || k == "pause" {
				t.Errorf("log %q has a bare duration %s=%v: want <name>Seconds", line["message"], k, v)
			}
			if strings.HasSuffix(k, "Seconds") {
				if f, ok := v.(float64); !ok || f < 0 || f > 3600 {
					t.Errorf("log %q: %s=%v is not seconds", line["message"], k, v)
				}
			}
		}
		if line["message"] == detect.FinishedMessage {
			finished++
			if line["outcome"] == nil || line["stage"] != "detect" || line["runId"] == nil {
				t.Errorf("closing line %v lacks outcome, stage or runId", line)
			}
			if _, ok := line["durationSeconds"]; !ok && line["outcome"] != detect.OutcomeFailed {
				t.Errorf("closing line %v lacks durationSeconds", line)
			}
		}
	}
	if finished != runs {
		t.Errorf("%d closing lines for %d runs:\n%s", finished, runs, logs)
	}
}
