package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

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
	clock *clock
	// perModules is how much time a Modules call takes; perPages a Pages call.
	perModules, perPages time.Duration

	products    []hotmart.Product
	modules     map[string][]hotmart.Module // by subdomain
	pages       map[string][]hotmart.Page   // by "product/module"
	productsErr error
	modulesErr  map[string]error // by subdomain
	pagesErr    map[string]error // by "product/module"
	onPages     func()           // called on every Pages call
}

func pagesKey(productID int64, moduleID string) string {
	return fmt.Sprintf("%d/%s", productID, moduleID)
}

func (h *fakeHotmart) Products(context.Context) ([]hotmart.Product, error) {
	if h.productsErr != nil {
		return nil, h.productsErr
	}
	return slices.Clone(h.products), nil
}

func (h *fakeHotmart) Modules(_ context.Context, subdomain string) ([]hotmart.Module, error) {
	h.clock.advance(h.perModules)
	if err := h.modulesErr[subdomain]; err != nil {
		return nil, err
	}
	return slices.Clone(h.modules[subdomain]), nil
}

func (h *fakeHotmart) Pages(_ context.Context, productID int64, moduleID string) ([]hotmart.Page, error) {
	h.clock.advance(h.perPages)
	if h.onPages != nil {
		h.onPages()
	}
	if err := h.pagesErr[pagesKey(productID, moduleID)]; err != nil {
		return nil, err
	}
	return slices.Clone(h.pages[pagesKey(productID, moduleID)]), nil
}

// setPage replaces (or adds) a page of a module.
func (h *fakeHotmart) setPage(productID int64, moduleID string, pg hotmart.Page) {
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
	k := pagesKey(productID, moduleID)
	h.pages[k] = slices.DeleteFunc(h.pages[k], func(p hotmart.Page) bool { return p.ID == pageID })
}

// fakeMedia resolves pages from a map by page id.
type fakeMedia struct {
	media map[string]*lessonstate.Media
	err   map[string]error
}

func (m *fakeMedia) Resolve(_ context.Context, _ int64, _, pageID string) (*lessonstate.Media, error) {
	if err := m.err[pageID]; err != nil {
		return nil, err
	}
	if md, ok := m.media[pageID]; ok {
		c := *md
		return &c, nil
	}
	return nil, nil
}

// fakeStore keeps lessons, courses and runs in memory with the semantics of
// lessonstate.Store: an unchanged lesson is not written; a new or changed
// one gets a version and, when its media is ready, an outbox event; a removal
// always queues one on lesson-events.
type fakeStore struct {
	mu      sync.Mutex
	lessons map[string]lessonstate.Lesson
	courses map[string]lessonstate.Course
	runs    []lessonstate.Run // in save order; a re-save replaces
	// writes counts lesson and course writes; runWrites run writes.
	writes, runWrites int
	applyErr          map[string]error
}

func newFakeStore() *fakeStore {
	return &fakeStore{lessons: map[string]lessonstate.Lesson{}, courses: map[string]lessonstate.Course{}}
}

func (s *fakeStore) queue(l *lessonstate.Lesson, topic string, e events.LessonEvent) {
	data, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	l.Outbox = append(l.Outbox, lessonstate.Outbox{Topic: topic, Data: data})
	l.OutboxPending = true
}

func (s *fakeStore) ApplyDetected(_ context.Context, id string, obs lessonstate.Observed) (lessonstate.Change, *events.LessonEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.applyErr[id]; err != nil {
		return lessonstate.Unchanged, nil, err
	}
	if obs.Lesson.Fingerprint == "" || obs.Lesson.Fingerprint != Fingerprint(obs.Lesson) {
		return lessonstate.Unchanged, nil, errors.New("observed lesson has a wrong fingerprint")
	}
	old, exists := s.lessons[id]
	if exists && !old.Removed && old.Fingerprint == obs.Lesson.Fingerprint {
		return lessonstate.Unchanged, nil, nil
	}
	l := obs.Lesson
	l.ID, l.LastRunID, l.Removed = id, obs.RunID, false
	change := lessonstate.NewLesson
	l.Version = 1
	if exists {
		change = lessonstate.Changed
		if old.Removed {
			change = lessonstate.Reappeared
		}
		l.Version = old.Version + 1
		l.Outbox = old.Outbox
	}
	var ev *events.LessonEvent
	if l.MediaStatus == lessonstate.MediaReady {
		e := events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: obs.RunID, From: lessonstate.StageDownload}
		s.queue(&l, events.TopicLessonDiscovered, e)
		ev = &e
	}
	s.lessons[id] = l
	s.writes++
	return change, ev, nil
}

func (s *fakeStore) MarkRemoved(_ context.Context, id, runID string) (*events.LessonEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lessons[id]
	if !ok {
		return nil, lessonstate.ErrNotFound
	}
	if l.Removed {
		return nil, nil
	}
	e := events.LessonEvent{LessonID: id, Version: l.Version, CourseID: l.CourseID, RunID: runID, Kind: events.KindRemoved, Reason: "page no longer in the course"}
	s.queue(&l, events.TopicLessonEvents, e)
	l.Removed, l.LastRunID = true, runID
	s.lessons[id] = l
	s.writes++
	return &e, nil
}

func (s *fakeStore) ActiveLessonIDs(_ context.Context, courseID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, l := range s.lessons {
		if l.CourseID == courseID && !l.Removed {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (s *fakeStore) Lessons(context.Context) ([]lessonstate.Lesson, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ls []lessonstate.Lesson
	for _, l := range s.lessons {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b lessonstate.Lesson) int { return cmpString(a.ID, b.ID) })
	return ls, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *fakeStore) PendingOutbox(context.Context) ([]lessonstate.Lesson, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ls []lessonstate.Lesson
	for _, l := range s.lessons {
		if l.OutboxPending {
			ls = append(ls, l)
		}
	}
	slices.SortFunc(ls, func(a, b lessonstate.Lesson) int { return cmpString(a.ID, b.ID) })
	return ls, nil
}

func (s *fakeStore) AckOutbox(_ context.Context, id string, published []lessonstate.Outbox) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lessons[id]
	if !ok {
		return lessonstate.ErrNotFound
	}
	for _, p := range published {
		i := slices.IndexFunc(l.Outbox, func(o lessonstate.Outbox) bool { return o.Topic == p.Topic && bytes.Equal(o.Data, p.Data) })
		if i >= 0 {
			l.Outbox = slices.Delete(l.Outbox, i, i+1)
		}
	}
	l.OutboxPending = len(l.Outbox) > 0
	s.lessons[id] = l
	s.writes++
	return nil
}

func (s *fakeStore) PutCourse(_ context.Context, c lessonstate.Course) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.courses[c.ID]
	if ok && old.Name == c.Name && old.School == c.School && old.ClubSubdomain == c.ClubSubdomain && old.Fingerprint == c.Fingerprint {
		return false, nil
	}
	s.courses[c.ID] = c
	s.writes++
	return true, nil
}

func (s *fakeStore) SaveRun(_ context.Context, r lessonstate.Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runWrites++
	r.Errors = slices.Clone(r.Errors)
	r.AwaitingMedia = slices.Clone(r.AwaitingMedia)
	for i, old := range s.runs {
		if old.ID == r.ID {
			s.runs[i] = r
			return nil
		}
	}
	s.runs = append(s.runs, r)
	return nil
}

func (s *fakeStore) LatestRun(context.Context) (lessonstate.Run, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.runs) == 0 {
		return lessonstate.Run{}, false, nil
	}
	return s.runs[len(s.runs)-1], true, nil
}

func (s *fakeStore) lesson(t *testing.T, id string) lessonstate.Lesson {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lessons[id]
	if !ok {
		t.Fatalf("lesson %s not in the store", id)
	}
	return l
}

func (s *fakeStore) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lessons {
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

// fixture is a detector over fakes holding the sample structure.
type fixture struct {
	clock   *clock
	hotmart *fakeHotmart
	media   *fakeMedia
	store   *fakeStore
	pub     *fakePublisher
	catalog Catalog
	runs    int
}

const (
	pyID     int64 = 4100001 // Python: three modules
	mkID     int64 = 4100002 // Marketing: one module
	otherID  int64 = 999     // not in the catalog
	pausedID int64 = 4100003 // in the catalog, not active
)

// newFixture builds the sample: Python has module pyM1 (a ready lesson, a
// quiz, a lesson awaiting media, an unpublished page) and pyM2 (a ready
// lesson), listed out of order; Marketing has one ready lesson.
func newFixture() *fixture {
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
	return &fixture{clock: c, hotmart: h, media: m, store: newFakeStore(), pub: &fakePublisher{}, catalog: cat}
}

// run runs a detector over the fixture and checks that Run returned no error.
func (f *fixture) run(t *testing.T, budget time.Duration) lessonstate.Run {
	t.Helper()
	r, err := f.tryRun(budget)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func (f *fixture) tryRun(budget time.Duration) (lessonstate.Run, error) {
	f.runs++
	f.clock.advance(time.Hour)
	d, err := New(f.hotmart, f.media, f.store, f.pub, f.catalog, slog.New(slog.DiscardHandler))
	if err != nil {
		return lessonstate.Run{}, err
	}
	d.now = f.clock.now
	return d.Run(context.Background(), RunOptions{RunID: fmt.Sprintf("run-%d", f.runs), Budget: budget})
}
