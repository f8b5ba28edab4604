package eventarc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"go.opentelemetry.io/otel/trace"

	"github.com/coursekb/pipeline/local/emulators"
	"github.com/coursekb/pipeline/shared/events"
)

// target is a function stand-in: it records every request and answers with
// status(n) to the n-th (1-based).
type target struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

func newTarget(t *testing.T, status func(n int) int) *target {
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.reqs = append(tg.reqs, recorded{r.URL.Path, r.Header.Clone(), body, time.Now()})
		n := len(tg.reqs)
		tg.mu.Unlock()
		code := status(n)
		w.WriteHeader(code)
		if code >= 300 {
			io.WriteString(w, "boom")
		}
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) requests() []recorded {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]recorded(nil), tg.reqs...)
}

// observer collects Delivery reports.
type observer struct {
	mu sync.Mutex
	ds []Delivery
}

func (o *observer) observe(d Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ds = append(o.ds, d)
}

func (o *observer) deliveries() []Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Delivery(nil), o.ds...)
}

// waitFor polls cond for up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type env struct {
	project string
	client  *pubsub.Client
	obs     *observer
	stop    func() // stops the Bus; Run must return nil
}

// start runs Setup and a Bus for routes in a fresh project on the emulator
// until the test ends; Run must then return nil.
func start(t *testing.T, routes []Route, opts Options) *env {
	t.Helper()
	emulators.ForTest(t, emulators.PubSub)
	e := &env{project: emulators.ProjectID("eventarc"), obs: &observer{}}
	client, err := pubsub.NewClient(t.Context(), e.project)
	if err != nil {
		t.Fatalf("pubsub client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	e.client = client
	if err := Setup(t.Context(), client, e.project, routes); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := Setup(t.Context(), client, e.project, routes); err != nil {
		t.Fatalf("Setup is not idempotent: %v", err)
	}
	opts.Observer = e.obs.observe
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	bus := New(client, e.project, routes, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) publish(t *testing.T, topic string, ev events.LessonEvent, ctx context.Context) string {
	t.Helper()
	p := events.NewPublisher(e.client)
	defer p.Close()
	id, err := p.Publish(ctx, topic, ev)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return id
}

// traced returns a context holding a remote span, as a function has after
// extracting its incoming message's traceparent, and that traceparent.
func traced() (context.Context, string) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{0xb1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc), "00-a102030405060708090a0b0c0d0e0f10-b102030405060708-01"
}

// decode turns a recorded request back into a CloudEvent with the
// CloudEvents SDK, as functions-framework-go does.
func decode(t *testing.T, r recorded) *cloudEvent {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, r.path, bytes.NewReader(r.body))
	req.Header = r.header.Clone()
	ce, err := cehttp.NewEventFromHTTPRequest(req)
	if err != nil {
		t.Fatalf("the CloudEvents SDK cannot read the request: %v", err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v", err)
	}
	return &cloudEvent{*ce}
}

func TestDeliversPubSubMessageAsBinaryCloudEvent(t *testing.T) {
	tg := newTarget(t, func(int) int { return http.StatusNoContent })
	routes := []Route{{Name: "downloader", Topic: events.TopicLessonDiscovered, Target: tg.URL + "/Downloader", MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}}
	e := start(t, routes, Options{})

	ctx, traceparent := traced()
	ev := events.LessonEvent{LessonID: "RE4zW6m6el", Version: 2, CourseID: "1117869", RunID: "run-7"}
	before := time.Now().Add(-time.Second)
	id := e.publish(t, events.TopicLessonDiscovered, ev, ctx)
	waitFor(t, 20*time.Second, "a delivery", func() bool { return len(e.obs.deliveries()) == 1 })

	reqs := tg.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.path != "/Downloader" {
		t.Errorf("path %s", r.path)
	}
	wantHeaders := map[string]string{
		"Ce-Id":          id,
		"Ce-Source":      "//pubsub.googleapis.com/projects/" + e.project + "/topics/lesson-discovered",
		"Ce-Type":        "google.cloud.pubsub.topic.v1.messagePublished",
		"Ce-Specversion": "1.0",
		"Content-Type":   "application/json",
		"Traceparent":    traceparent,
	}
	for k, v := range wantHeaders {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	ceTime, err := time.Parse(time.RFC3339Nano, r.header.Get("Ce-Time"))
	if err != nil || ceTime.Before(before) || ceTime.After(time.Now()) {
		t.Errorf("Ce-Time %q is not the publish time (%v)", r.header.Get("Ce-Time"), err)
	}
	if r.header.Get("Ce-Subject") != "" {
		t.Errorf("unexpected Ce-Subject %q", r.header.Get("Ce-Subject"))
	}

	// The body, field by field: exactly the messagePublished data.
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	wantData, _ := json.Marshal(ev)
	want := map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(wantData),
			"attributes":  map[string]any{"lessonId": "RE4zW6m6el", "version": "2", "traceparent": traceparent},
			"messageId":   id,
			"publishTime": r.header.Get("Ce-Time"),
		},
		"subscription": "projects/" + e.project + "/subscriptions/downloader-sub",
	}
	if g, w := mustJSON(body), mustJSON(want); g != w {
		t.Errorf("body\n got %s\nwant %s", g, w)
	}

	// What a function sees.
	ce := decode(t, r)
	le, attrs, err := events.LessonFromCloudEvent(ce.Event)
	if err != nil || le != ev {
		t.Errorf("LessonFromCloudEvent = %+v, %v; want %+v", le, err, ev)
	}
	if attrs[events.AttrTraceparent] != traceparent || ce.ID() != id || ce.Type() != events.TypePubSubPublished {
		t.Errorf("event id %s type %s attributes %v", ce.ID(), ce.Type(), attrs)
	}

	d := e.obs.deliveries()[0]
	if d.Route != "downloader" || d.MessageID != id || d.LessonID != "RE4zW6m6el" || d.Attempt != 1 ||
		d.Status != http.StatusNoContent || d.Outcome != Delivered || d.Err != nil || d.EventType != events.TypePubSubPublished {
		t.Errorf("delivery report %+v", d)
	}
}

// A function that does not answer within the ack deadline has failed that
// attempt, as with a push subscription: the message comes again and the
// next, prompt answer acknowledges it — while the first request is still
// running, as push at its worst behaves (its request is not cancelled).
func TestHungDeliveryIsRetriedAfterTheAckDeadline(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	var firstCancelled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			select { // hang past the deadline
			case <-release:
			case <-r.Context().Done():
				firstCancelled.Store(true)
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close, which waits for the handler
	routes := []Route{{Name: "downloader", Topic: events.TopicLessonDiscovered, Target: srv.URL,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, AckDeadline: 300 * time.Millisecond}}
	e := start(t, routes, Options{})
	e.publish(t, events.TopicLessonDiscovered, events.LessonEvent{LessonID: "L1", Version: 1}, context.Background())
	waitFor(t, 20*time.Second, "a delivered attempt", func() bool {
		for _, d := range e.obs.deliveries() {
			if d.Outcome == Delivered {
				return true
			}
		}
		return false
	})
	ds := e.obs.deliveries()
	if ds[0].Outcome != Retrying || ds[0].Err == nil || ds[0].Duration < 300*time.Millisecond {
		t.Errorf("first attempt %+v, want a retry after the 300ms deadline", ds[0])
	}
	if firstCancelled.Load() {
		t.Error("the first request was cancelled at the ack deadline; push leaves it running")
	}
}

// 500, 500, 200: three attempts with the backoff between them, then the
// message is acknowledged and never comes back.
func TestRetriesWithBackoffUntilAccepted(t *testing.T) {
	tg := newTarget(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	const minB, maxB = 200 * time.Millisecond, 300 * time.Millisecond
	routes := []Route{{Name: "enricher", Topic: events.TopicLessonProcessed, Target: tg.URL, MinBackoff: minB, MaxBackoff: maxB}}
	e := start(t, routes, Options{})
	id := e.publish(t, events.TopicLessonProcessed, events.LessonEvent{LessonID: "L1", Version: 1}, context.Background())

	waitFor(t, 30*time.Second, "three attempts", func() bool { return len(tg.requests()) >= 3 })
	// Once Run has returned every message it held is settled; a nacked one
	// would come straight back (the emulator redelivers a nack at once).
	e.stop()
	if m := receiveWithin(t, e.client.Subscriber("projects/"+e.project+"/subscriptions/enricher-sub"), 2*time.Second); m != nil {
		t.Errorf("message %s is still on the subscription (attempt %v): it was not acknowledged", m.ID, m.DeliveryAttempt)
	}
	reqs := tg.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.header.Get("Ce-Id") != id {
			t.Errorf("request %d carries message %s, want %s", i+1, r.header.Get("Ce-Id"), id)
		}
	}
	// The wait before redelivery is MinBackoff, then doubled up to MaxBackoff.
	for i, want := range []time.Duration{minB, maxB} {
		if gap := reqs[i+1].at.Sub(reqs[i].at); gap < want {
			t.Errorf("attempt %d came %s after attempt %d, want at least %s", i+2, gap, i+1, want)
		} else {
			t.Logf("attempt %d came %s after attempt %d (backoff %s)", i+2, gap, i+1, want)
		}
	}
	ds := e.obs.deliveries()
	if len(ds) != 3 {
		t.Fatalf("%d delivery reports, want 3: %+v", len(ds), ds)
	}
	for i, want := range []Outcome{Retrying, Retrying, Delivered} {
		d := ds[i]
		if d.Attempt != i+1 || d.Outcome != want || d.MessageID != id || d.LessonID != "L1" {
			t.Errorf("report %d: %+v, want attempt %d %s", i+1, d, i+1, want)
		}
		if want == Retrying && (d.Status != 500 || d.Err == nil || !strings.Contains(d.Err.Error(), "boom")) {
			t.Errorf("report %d: status %d error %v", i+1, d.Status, d.Err)
		}
	}
}

// A target that always fails: MaxDeliveryAttempts attempts, then the
// emulator's dead-letter policy moves the message, with the
// CloudPubSubDeadLetterSource* attributes, to the dead-letter topic.
func TestDeadLettersAfterMaxAttempts(t *testing.T) {
	tg := newTarget(t, func(int) int { return http.StatusInternalServerError })
	routes := []Route{{Name: "syncer", Topic: events.TopicLessonEnriched, Target: tg.URL, MaxDeliveryAttempts: 5, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}}
	e := start(t, routes, Options{})
	ev := events.LessonEvent{LessonID: "L9", Version: 4}
	id := e.publish(t, events.TopicLessonEnriched, ev, context.Background())

	waitFor(t, 30*time.Second, "the last attempt", func() bool {
		ds := e.obs.deliveries()
		return len(ds) > 0 && ds[len(ds)-1].Outcome == Exhausted
	})
	exhausted := time.Now()
	dead := receiveOne(t, e.client.Subscriber("projects/"+e.project+"/subscriptions/syncer-sub-dlq-sub"))
	t.Logf("dead letter arrived %s after the last nack", time.Since(exhausted).Round(time.Millisecond))
	time.Sleep(time.Second)

	if n := len(tg.requests()); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
	ds := e.obs.deliveries()
	for i, d := range ds {
		want := Retrying
		if i == 4 {
			want = Exhausted
		}
		if d.Attempt != i+1 || d.Outcome != want || d.MessageID != id {
			t.Errorf("report %d: %+v", i+1, d)
		}
	}
	if got, err := events.ParseLessonEvent(dead.Data); err != nil || got != ev {
		t.Errorf("dead letter body %s", dead.Data)
	}
	for k, v := range map[string]string{
		"lessonId": "L9", "version": "4",
		"CloudPubSubDeadLetterSourceDeliveryCount":       "5",
		"CloudPubSubDeadLetterSourceSubscription":        "syncer-sub",
		"CloudPubSubDeadLetterSourceSubscriptionProject": e.project,
		"CloudPubSubDeadLetterSourceTopicPublishTime":    "",
	} {
		got, ok := dead.Attributes[k]
		if !ok || (v != "" && got != v) {
			t.Errorf("dead letter attribute %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
}

// With ObserveDeadLetters the Bus reads the dead-letter subscription and
// reports each dead letter against its route.
func TestObserveDeadLetters(t *testing.T) {
	tg := newTarget(t, func(int) int { return http.StatusBadGateway })
	routes := []Route{
		{Name: "notifier", Topic: events.TopicLessonEvents, Target: tg.URL, DeadLetterTopic: "pipeline-dead-letters", MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		{Name: "replayer", Topic: events.TopicLessonReplay, Target: tg.URL, DeadLetterTopic: "pipeline-dead-letters", MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
	}
	e := start(t, routes, Options{ObserveDeadLetters: true})
	e.publish(t, events.TopicLessonReplay, events.LessonEvent{LessonID: "R1", Version: 1}, context.Background())
	waitFor(t, 30*time.Second, "a dead letter report", func() bool {
		ds := e.obs.deliveries()
		return len(ds) > 0 && ds[len(ds)-1].Outcome == DeadLettered
	})
	ds := e.obs.deliveries()
	d := ds[len(ds)-1]
	if d.Route != "replayer" || d.LessonID != "R1" || d.Attempt != 5 || d.Subscription != "replayer-sub" || len(ds) != 6 {
		t.Errorf("dead letter report %+v after %d reports", d, len(ds))
	}
}

// Cloud Storage notifications, as fake-gcs-server publishes them: a
// finalized object becomes an object.v1.finalized event whose data is the
// object resource; the OBJECT_DELETE of an overwrite is acknowledged unsent.
func TestStorageNotificationBecomesFinalizedEvent(t *testing.T) {
	tg := newTarget(t, func(int) int { return http.StatusOK })
	routes := []Route{{Name: "starter", Topic: "raw-objects", Target: tg.URL, Storage: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	e := start(t, routes, Options{})

	opts := fakestorage.Options{NoListener: true}
	opts.EventOptions.ProjectID = e.project
	opts.EventOptions.TopicName = "raw-objects"
	opts.EventOptions.NotifyOn.Finalize = true
	opts.EventOptions.NotifyOn.Delete = true
	gcs, err := fakestorage.NewServerWithOptions(opts)
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "raw"})
	obj := fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "raw", Name: "lessons/L5/v2/source.mp4", ContentType: "video/mp4",
			Metadata: map[string]string{"lessonId": "L5", "version": "2"}},
		Content: []byte("not really a video"),
	}
	gcs.CreateObject(obj)
	waitFor(t, 20*time.Second, "the first finalize", func() bool { return len(tg.requests()) == 1 })
	obj.Content = []byte("a better video, version 2")
	gcs.CreateObject(obj) // overwrite: OBJECT_DELETE, then OBJECT_FINALIZE
	waitFor(t, 20*time.Second, "three reports", func() bool { return len(e.obs.deliveries()) == 3 })
	time.Sleep(500 * time.Millisecond)

	reqs := tg.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (the delete is not delivered)", len(reqs))
	}
	var ignored, delivered int
	for _, d := range e.obs.deliveries() {
		switch d.Outcome {
		case Ignored:
			ignored++
		case Delivered:
			delivered++
			if d.LessonID != "L5" || d.EventType != events.TypeStorageFinalize {
				t.Errorf("report %+v", d)
			}
		}
	}
	if ignored != 1 || delivered != 2 {
		t.Errorf("%d ignored, %d delivered; want 1, 2", ignored, delivered)
	}

	r := reqs[1]
	for k, v := range map[string]string{
		"Ce-Type":        "google.cloud.storage.object.v1.finalized",
		"Ce-Source":      "//storage.googleapis.com/projects/_/buckets/raw",
		"Ce-Subject":     "objects/lessons/L5/v2/source.mp4",
		"Ce-Specversion": "1.0",
		"Content-Type":   "application/json",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	ce := decode(t, r)
	var so events.StorageObject
	if err := json.Unmarshal(ce.Data(), &so); err != nil {
		t.Fatalf("data is not an object resource: %v\n%s", err, ce.Data())
	}
	if so.Bucket != "raw" || so.Name != obj.Name || so.Size != events.FlexInt(len(obj.Content)) || so.Generation == 0 ||
		so.MD5Hash == "" || so.CRC32C == "" || so.ContentType != "video/mp4" || so.Metadata["lessonId"] != "L5" {
		t.Errorf("object %+v", so)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.header.Get("Ce-Time")); err != nil {
		t.Errorf("Ce-Time %q: %v", r.header.Get("Ce-Time"), err)
	}
}

// A notification with payload format NONE carries no body: the event data
// is made from its attributes.
func TestStorageNotificationWithoutPayload(t *testing.T) {
	tg := newTarget(t, func(int) int { return http.StatusOK })
	routes := []Route{{Name: "starter", Topic: "raw-objects", Target: tg.URL, Storage: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	e := start(t, routes, Options{})
	res := e.client.Publisher("raw-objects").Publish(t.Context(), &pubsub.Message{Attributes: map[string]string{
		"eventType": "OBJECT_FINALIZE", "bucketId": "raw", "objectId": "a/b.mp4", "objectGeneration": "17",
		"payloadFormat": "NONE", "eventTime": "2026-01-02T03:04:05.678Z",
	}})
	if _, err := res.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a delivery", func() bool { return len(tg.requests()) == 1 })
	r := tg.requests()[0]
	var so events.StorageObject
	if err := json.Unmarshal(decode(t, r).Data(), &so); err != nil || so.Bucket != "raw" || so.Name != "a/b.mp4" || so.Generation != 17 {
		t.Errorf("object %+v (%v) from %s", so, err, r.body)
	}
	if got := r.header.Get("Ce-Time"); got != "2026-01-02T03:04:05.678Z" {
		t.Errorf("Ce-Time %q, want the notification's eventTime", got)
	}
}

func TestRoutesAreChecked(t *testing.T) {
	t.Parallel()
	good := Route{Name: "a", Topic: "topic-a", Target: "http://localhost:1/"}
	for name, r := range map[string]Route{
		"no name":          {Topic: "t", Target: good.Target},
		"no topic":         {Name: "a", Target: good.Target},
		"bad target":       {Name: "a", Topic: "topic-a", Target: "localhost:1"},
		"few attempts":     {Name: "a", Topic: "topic-a", Target: good.Target, MaxDeliveryAttempts: 4},
		"backoff order":    {Name: "a", Topic: "topic-a", Target: good.Target, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		"backoff too big":  {Name: "a", Topic: "topic-a", Target: good.Target, MinBackoff: time.Second, MaxBackoff: time.Hour},
		"deadline too big": {Name: "a", Topic: "topic-a", Target: good.Target, AckDeadline: time.Hour},
	} {
		if _, err := prepare([]Route{r}); err == nil {
			t.Errorf("%s: accepted %+v", name, r)
		}
	}
	if _, err := prepare([]Route{good, good}); err == nil {
		t.Error("two routes on one subscription accepted")
	}
	got, err := prepare([]Route{good})
	if err != nil {
		t.Fatal(err)
	}
	g := got[0]
	if g.Subscription != "a-sub" || g.DeadLetterTopic != "a-sub-dlq" || g.MaxDeliveryAttempts != 5 || g.MinBackoff != 10*time.Second || g.MaxBackoff != 600*time.Second {
		t.Errorf("defaults %+v", g)
	}
	for attempt, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 6: 320 * time.Second, 7: 600 * time.Second, 100: 600 * time.Second} {
		if b := g.backoff(attempt); b != want {
			t.Errorf("backoff(%d) = %s, want %s", attempt, b, want)
		}
	}
}

// Run fails, rather than waiting forever, when a subscription is missing.
func TestRunFailsWithoutSetup(t *testing.T) {
	emulators.ForTest(t, emulators.PubSub)
	project := emulators.ProjectID("nosetup")
	client, err := pubsub.NewClient(t.Context(), project)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = New(client, project, []Route{{Name: "a", Topic: "topic-a", Target: "http://localhost:1/"}}, Options{}).Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run without subscriptions: err %v, context %v", err, ctx.Err())
	}
}

type cloudEvent struct{ event.Event }

func receiveOne(t *testing.T, sub *pubsub.Subscriber) *pubsub.Message {
	t.Helper()
	m := receiveWithin(t, sub, 30*time.Second)
	if m == nil {
		t.Fatalf("nothing on %s within 30 s", sub)
	}
	return m
}

// receiveWithin acknowledges and returns the first message on sub, or nil
// when none comes within limit.
func receiveWithin(t *testing.T, sub *pubsub.Subscriber, limit time.Duration) *pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	var got *pubsub.Message
	var once sync.Once
	if err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		once.Do(func() { got = m; cancel() })
	}); err != nil {
		t.Fatalf("receive %s: %v", sub, err)
	}
	return got
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// With Copies 3 every message reaches its target three times, the extra
// copies reported as Duplicated; with Jitter, the copies of several
// messages arrive in an order other than their publishing order.
func TestCopiesDeliverEveryMessageThreeTimesOutOfOrder(t *testing.T) {
	tg := newTarget(t, func(int) int { return http.StatusOK })
	routes := []Route{{Name: "enricher", Topic: events.TopicLessonProcessed, Target: tg.URL}}
	e := start(t, routes, Options{Copies: 3, Jitter: 300 * time.Millisecond, Seed: 4})
	var ids []string
	for _, l := range []string{"L1", "L2", "L3", "L4", "L5", "L6"} {
		ids = append(ids, e.publish(t, events.TopicLessonProcessed, events.LessonEvent{LessonID: l, Version: 1}, context.Background()))
	}
	waitFor(t, 30*time.Second, "18 requests", func() bool { return len(tg.requests()) >= 18 })
	waitFor(t, 10*time.Second, "18 reports", func() bool { return len(e.obs.deliveries()) >= 18 })
	e.stop()
	per := map[string]int{}
	var order []string
	for _, r := range tg.requests() {
		per[r.header.Get("Ce-Id")]++
		order = append(order, r.header.Get("Ce-Id"))
	}
	for _, id := range ids {
		if per[id] != 3 {
			t.Errorf("message %s reached the target %d times, want 3", id, per[id])
		}
	}
	outcomes := map[Outcome]int{}
	for _, d := range e.obs.deliveries() {
		outcomes[d.Outcome]++
		if d.Outcome == Duplicated && (d.Copy < 1 || d.Copy > 2) {
			t.Errorf("duplicate report %+v: copy number out of 1..2", d)
		}
	}
	if outcomes[Delivered] != 6 || outcomes[Duplicated] != 12 {
		t.Errorf("reports %v, want 6 delivered and 12 duplicated", outcomes)
	}
	// Out of order: some message arrives after a message published later.
	first := map[string]int{}
	for i, id := range order {
		if _, ok := first[id]; !ok {
			first[id] = i
		}
	}
	last := map[string]int{}
	for i, id := range order {
		last[id] = i
	}
	mixed := false
	for i := 0; i+1 < len(ids); i++ {
		if last[ids[i]] > first[ids[i+1]] {
			mixed = true
		}
	}
	if !mixed {
		t.Errorf("arrival order %v: no copy arrived after a later message's first", order)
	}
}
