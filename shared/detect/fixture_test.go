package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// The detector's tests run against the real lesson store on the Firestore
// emulator: a fake store re-implementing ApplyDetected drifted from it once.
// Hotmart, the media source and Pub/Sub are fakes here, in memory, so that
// time and failures are the tests' to decide; the failure-injection tests
// over the wire are in functions/detector, through local/hotmart.

// TestMain starts one Firestore emulator for the package; every test gets a
// project of its own on it, so the tests run in parallel.
func TestMain(m *testing.M) { os.Exit(emulators.RunTests(m, emulators.Firestore)) }

// clock is a fake time source the fakes move forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeHotmart serves a course structure held in memory.
type fakeHotmart struct {
	mu    sync.Mutex
	clock *clock
	// perModules is how much time a Modules call takes; perPages a Pages call.
	perModules, perPages time.Duration

	products    []hotmart.Product
	modules     map[string][]hotmart.Module  // by subdomain
	pages       map[string][]hotmart.Page    // by "product/module"
	productsErr error                        // the product list fails, nothing read
	loopErr     error                        // the product list fails after every product arrived
	modulesErr  map[string]error             // by subdomain
	pagesErr    map[string]error             // by "product/module"
	skipped     map[string][]hotmart.Skipped // by "product/module": pages that did not decode
	onPages     func()                       // called on every Pages call
	calls       map[string]int               // Pages calls by "product/module"
}

func pagesKey(productID int64, moduleID string) string {
	return fmt.Sprintf("%d/%s", productID, moduleID)
}

func (h *fakeHotmart) Products(context.Context) ([]hotmart.Product, []hotmart.Skipped, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.productsErr != nil {
		return nil, nil, h.productsErr
	}
	return slices.Clone(h.products), nil, h.loopErr
}

func (h *fakeHotmart) Modules(_ context.Context, subdomain string) ([]hotmart.Module, []hotmart.Skipped, error) {
	h.clock.advance(h.perModules)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.modulesErr[subdomain]; err != nil {
		return nil, nil, err
	}
	return slices.Clone(h.modules[subdomain]), nil, nil
}

func (h *fakeHotmart) Pages(_ context.Context, productID int64, moduleID string) ([]hotmart.Page, []hotmart.Skipped, error) {
	h.clock.advance(h.perPages)
	if h.onPages != nil {
		h.onPages()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := pagesKey(productID, moduleID)
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	h.calls[k]++
	if err := h.pagesErr[k]; err != nil {
		return nil, nil, err
	}
	pages := slices.Clone(h.pages[k])
	for i := range pages {
		pages[i].Position = i + 1
		pages[i].Untitled = pages[i].Name == ""
	}
	return pages, slices.Clone(h.skipped[k]), nil
}

// setPage replaces (or adds) a page of a module.
func (h *fakeHotmart) setPage(productID int64, moduleID string, pg hotmart.Page) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := pagesKey(productID, moduleID)
	for i, p := range h.pages[k] {
		if p.ID == pg.ID {
			h.pages[k][i] = pg
			return
		}
	}
	h.pages[k] = append(h.pages[k], pg)
}

func (h *fakeHotmart) deletePage(productID int64, moduleID, pageID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := pagesKey(productID, moduleID)
	h.pages[k] = slices.DeleteFunc(h.pages[k], func(p hotmart.Page) bool { return p.ID == pageID })
}

// fakeMedia resolves pages from a map by page id.
type fakeMedia struct {
	mu    sync.Mutex
	media map[string]*lessonstate.Media
	err   map[string]error
}

func (m *fakeMedia) Resolve(_ context.Context, _ int64, _, pageID string) (*lessonstate.Media, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.err[pageID]; err != nil {
		return nil, err
	}
	if md, ok := m.media[pageID]; ok {
		c := *md
		return &c, nil
	}
	return nil, nil
}

// store is the real lesson store, counting the detector's calls by method
// and failing the ones a test asks to fail. It decides nothing itself.
type store struct {
	*lessonstate.Store

	mu       sync.Mutex
	calls    map[string]int
	applyErr map[string]error // ApplyDetected by lesson id
	failSet  error            // every SetCourse
}

func (s *store) count(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
}

// take returns the calls made since the last take.
func (s *store) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = map[string]int{}
	return c
}

func (s *store) ApplyDetected(ctx context.Context, id string, obs lessonstate.Observed) (lessonstate.Change, *events.LessonEvent, error) {
	s.count("ApplyDetected")
	s.mu.Lock()
	err := s.applyErr[id]
	s.mu.Unlock()
	if err != nil {
		return lessonstate.Unchanged, nil, err
	}
	return s.Store.ApplyDetected(ctx, id, obs)
}

func (s *store) MarkRemoved(ctx context.Context, id, runID string) (*events.LessonEvent, error) {
	s.count("MarkRemoved")
	return s.Store.MarkRemoved(ctx, id, runID)
}

func (s *store) ActiveLessonIDPage(ctx context.Context, courseID, after string, limit int) ([]string, error) {
	s.count("ActiveLessonIDPage")
	return s.Store.ActiveLessonIDPage(ctx, courseID, after, limit)
}

func (s *store) Courses(ctx context.Context) ([]lessonstate.Course, error) {
	s.count("Courses")
	return s.Store.Courses(ctx)
}

func (s *store) SetCourse(ctx context.Context, c lessonstate.Course) error {
	s.count("SetCourse")
	s.mu.Lock()
	err := s.failSet
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Store.SetCourse(ctx, c)
}

func (s *store) lesson(t *testing.T, id string) lessonstate.Lesson {
	t.Helper()
	l, err := s.Lesson(t.Context(), id)
	if err != nil {
		t.Fatalf("lesson %s: %v", id, err)
	}
	return l
}

// course returns a stored course; ok false when there is none.
func (s *store) course(t *testing.T, id string) (lessonstate.Course, bool) {
	t.Helper()
	c, err := s.Course(t.Context(), id)
	if errors.Is(err, lessonstate.ErrNotFound) {
		return lessonstate.Course{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}

func (s *store) pendingCount(t *testing.T) int {
	t.Helper()
	ls, err := s.PendingOutbox(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range ls {
		n += len(l.Outbox)
	}
	return n
}

// message is one published message.
type message struct {
	Topic string
	Event events.LessonEvent
	Attrs map[string]string
}

// fakePublisher records messages; while failing is set it refuses them.
type fakePublisher struct {
	mu       sync.Mutex
	failing  bool
	messages []message
}

func (p *fakePublisher) PublishRaw(_ context.Context, topic string, data []byte, attrs map[string]string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return "", errors.New("pubsub unavailable")
	}
	var ev events.LessonEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return "", err
	}
	p.messages = append(p.messages, message{Topic: topic, Event: ev, Attrs: attrs})
	return fmt.Sprintf("m%d", len(p.messages)), nil
}

// take returns the messages published since the last take.
func (p *fakePublisher) take() []message {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.messages
	p.messages = nil
	return m
}

// fixture is a detector over the fakes and the real store, holding the
// sample structure.
type fixture struct {
	clock   *clock
	hotmart *fakeHotmart
	media   *fakeMedia
	store   *store
	pub     *fakePublisher
	catalog Catalog
	opts    []Option
	idPage  int // lesson ids per removal query; 0: the default
	runs    int
}

const (
	pyID     int64 = 4100001 // Python: two modules
	mkID     int64 = 4100002 // Marketing: one module
	otherID  int64 = 999     // not in the catalog
	pausedID int64 = 4100003 // in the catalog, not active
)

// newFixture builds the sample: Python has module pyM1 (a ready lesson, a
// quiz, a lesson awaiting media, an unpublished page) and pyM2 (a ready
// lesson), listed out of order; Marketing has one ready lesson. Each
// fixture has a Firestore project of its own.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	// emulators.ForTest would set the variable per test, which parallel
	// tests may not; TestMain has set it for all of them.
	if os.Getenv(emulators.Firestore.EnvVar()) == "" {
		t.Fatal("these tests need the Firestore emulator, and it did not start: TestMain printed why, before the test output")
	}
	fs, err := firestore.NewClient(t.Context(), emulators.ProjectID("detect"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	c := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	h := &fakeHotmart{
		clock: c,
		products: []hotmart.Product{
			{ID: mkID, Name: "Marketing digital", Status: "ACTIVE"},
			{ID: otherID, Name: "Not for the assistant", Status: "ACTIVE"},
			{ID: pyID, Name: "Python desde cero", Status: "ACTIVE"},
			{ID: pausedID, Name: "Paused course", Status: "PAUSED"},
		},
		modules: map[string][]hotmart.Module{
			"python-desde-cero": {
				{ID: "pyM2", Name: "Control de flujo", Sequence: 2},
				{ID: "pyM1", Name: "Fundamentos", Sequence: 1},
			},
			"marketing-digital": {{ID: "mkM1", Name: "Embudos", Sequence: 1}},
			"other":             {{ID: "otM1", Name: "Other", Sequence: 1}},
		},
		pages: map[string][]hotmart.Page{
			pagesKey(pyID, "pyM1"): {
				{ID: "pyVars", Name: "Variables", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true},
				{ID: "pyQuiz", Name: "Quiz", Type: "QUIZ", PageOrder: 3, Published: true},
				{ID: "pyTypes", Name: "Tipos", Type: "CONTENT", PageOrder: 2, Published: true, HasMedia: true},
				{ID: "pyDraft", Name: "Borrador", Type: "CONTENT", PageOrder: 4, Published: false, HasMedia: true},
			},
			pagesKey(pyID, "pyM2"): {
				{ID: "pyIf", Name: "Condicionales", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true},
			},
			pagesKey(mkID, "mkM1"): {
				{ID: "mkFunnel", Name: "Embudos", Type: "CONTENT", PageOrder: 1, Published: true, HasMedia: true},
			},
		},
	}
	m := &fakeMedia{media: map[string]*lessonstate.Media{
		"pyVars":   {Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-vars"},
		"pyIf":     {Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-if"},
		"pyDraft":  {Kind: "url", Ref: "page", Ext: "mp4", Fingerprint: "fp-draft"},
		"mkFunnel": {Kind: "object", Ref: "gs://raw/ingest/funnel.mp4", Ext: "mp4", Fingerprint: "fp-funnel"},
	}}
	cat := Catalog{
		pyID:     {Subdomain: "python-desde-cero", School: "programacion"},
		mkID:     {Subdomain: "marketing-digital", School: "marketing"},
		pausedID: {Subdomain: "paused", School: "marketing"},
	}
	st := &store{Store: lessonstate.New(fs, lessonstate.WithClock(c.now)), calls: map[string]int{}}
	return &fixture{clock: c, hotmart: h, media: m, store: st, pub: &fakePublisher{}, catalog: cat}
}

// run runs a detector over the fixture and checks that Run returned no error.
func (f *fixture) run(t *testing.T, budget time.Duration) lessonstate.Run {
	t.Helper()
	r, err := f.runCtx(t.Context(), budget)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func (f *fixture) runCtx(ctx context.Context, budget time.Duration) (lessonstate.Run, error) {
	f.runs++
	f.clock.advance(time.Hour)
	d, err := New(f.hotmart, f.media, f.store, f.pub, f.catalog, slog.New(slog.DiscardHandler), f.opts...)
	if err != nil {
		return lessonstate.Run{}, err
	}
	d.now = f.clock.now
	if f.idPage > 0 {
		d.idPage = f.idPage
	}
	return d.Run(ctx, RunOptions{RunID: fmt.Sprintf("run-%d", f.runs), Budget: budget})
}

// courseRun returns what run r says of course id.
func courseRun(t *testing.T, r lessonstate.Run, id string) lessonstate.CourseRun {
	t.Helper()
	for _, c := range r.Courses {
		if c.CourseID == id {
			return c
		}
	}
	t.Fatalf("run %s says nothing of course %s: %+v", r.ID, id, r.Courses)
	return lessonstate.CourseRun{}
}
