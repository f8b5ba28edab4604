package workflows

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/coursekb/pipeline/local/emulators"
)

// endpoint is a test HTTP server that records requests and answers the
// n-th (1-based) with reply(n, w, r).
type endpoint struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

type seen struct {
	method, path, query string
	header              http.Header
	body                []byte
	at                  time.Time
}

func newEndpoint(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request)) *endpoint {
	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.reqs = append(e.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body, time.Now()})
		n := len(e.reqs)
		e.mu.Unlock()
		reply(n, w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seen(nil), e.reqs...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Test", "yes")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// An http.post sends its body as JSON with query, headers and, for auth,
// a bearer token; the result is {body, code, headers} with a JSON body
// decoded.
func TestHTTPCall(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"done": true, "count": 3})
	})
	res, _ := succeed(t, `
main:
  params: [args]
  steps:
    - post:
        call: http.post
        args:
          url: ${args.url + "/transcribe"}
          auth:
            type: OIDC
          timeout: 1800
          query:
            page: 2
            tags: [a, b]
          headers:
            X-Lesson: l-1
          body:
            lessonId: l-1
            version: 3
        result: r
    - done:
        return: {code: '${r.code}', body: '${r.body}', header: '${r.headers["X-Test"]}'}
`, map[string]any{"url": ep.URL}, Options{})
	assertJSON(t, res, `{"code":200,"body":{"done":true,"count":3},"header":"yes"}`)
	reqs := ep.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.path != "/transcribe" || r.query != "page=2&tags=a&tags=b" {
		t.Errorf("request %s %s?%s", r.method, r.path, r.query)
	}
	if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type %q", got)
	}
	if r.header.Get("X-Lesson") != "l-1" {
		t.Errorf("header X-Lesson %q", r.header.Get("X-Lesson"))
	}
	tok, ok := strings.CutPrefix(r.header.Get("Authorization"), "Bearer ")
	if !ok || strings.Count(tok, ".") != 2 {
		t.Fatalf("Authorization %q is not a bearer JWT", r.header.Get("Authorization"))
	}
	claims, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil || !strings.Contains(string(claims), `"aud":"`+ep.URL+`/transcribe"`) {
		t.Errorf("token claims %s (%v): the audience should be the URL", claims, err)
	}
	assertJSON(t, json.RawMessage(r.body), `{"lessonId":"l-1","version":3}`)
}

// A non-2xx answer raises an HttpError map with the code, headers and
// decoded body; text bodies stay strings.
func TestHTTPErrorRaised(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/text" {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "plain words")
			return
		}
		writeJSON(w, 404, map[string]any{"error": "no such lesson"})
	})
	res, _ := succeed(t, `
main:
  params: [args]
  steps:
    - text:
        call: http.get
        args:
          url: ${args.url + "/text"}
        result: plain
    - missing:
        try:
          call: http.get
          args:
            url: ${args.url + "/missing"}
        except:
          as: e
          steps:
            - report:
                return:
                  plain: ${plain.body}
                  code: ${e.code}
                  tags: ${e.tags}
                  message: ${e.message}
                  body: ${e.body}
                  header: ${e.headers["X-Test"]}
`, map[string]any{"url": ep.URL}, Options{})
	assertJSON(t, res, `{"plain":"plain words","code":404,"tags":["HttpError"],"message":"HTTP server responded with error code 404","body":{"error":"no such lesson"},"header":"yes"}`)
}

// http.request takes its method as an argument; a text Content-Type sends
// a string body as it is, and bytes go out raw.
func TestHTTPRequestMethodAndRawBody(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	res, _ := succeed(t, `
main:
  params: [args]
  steps:
    - put:
        call: http.request
        args:
          url: ${args.url + "/text"}
          method: PUT
          headers:
            Content-Type: text/plain
          body: plain text
        result: r
    - raw:
        call: http.delete
        args:
          url: ${args.url + "/raw"}
          body: ${text.encode("raw bytes")}
    - done:
        return: ${r.code}
`, map[string]any{"url": ep.URL}, Options{})
	if res != 204 {
		t.Errorf("result %v", res)
	}
	reqs := ep.requests()
	if len(reqs) != 2 || reqs[0].method != "PUT" || string(reqs[0].body) != "plain text" ||
		reqs[1].method != "DELETE" || string(reqs[1].body) != "raw bytes" {
		t.Errorf("requests %+v", reqs)
	}
}

// A refused connection raises ConnectionFailedError (nothing was sent), a
// connection dropped mid-answer ConnectionError, and a call past its
// timeout TimeoutError.
func TestHTTPConnectionErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	dropped := newEndpoint(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	hanging := newEndpoint(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	for _, tc := range []struct {
		url, timeout, tag string
	}{
		{closed, "10", "ConnectionFailedError"},
		{dropped.URL, "10", "ConnectionError"},
		{hanging.URL, "0.2", "TimeoutError"},
	} {
		_, err, _ := runWorkflow(t, `
main:
  steps:
    - call:
        call: http.get
        args:
          url: `+tc.url+`
          timeout: `+tc.timeout+`
`, nil, nil, Options{})
		var ee *ExecutionError
		if !errors.As(err, &ee) || !hasTag(ee.Payload, tc.tag) {
			t.Errorf("%s: want %s, got %v", tc.url, tc.tag, err)
		}
	}
}

// retry: ${http.default_retry} retries a 503 with Workflows' default
// backoff (1 s, then 1.25 s, ...) scaled by TimeScale, and the step then
// succeeds.
func TestRetryDefaultPolicy(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			writeJSON(w, 503, map[string]any{"error": "busy"})
			return
		}
		writeJSON(w, 200, map[string]any{"attempt": n})
	})
	start := time.Now()
	res, rec := succeed(t, `
main:
  params: [args]
  steps:
    - fetch:
        try:
          call: http.get
          args:
            url: ${args.url}
          result: r
        retry: ${http.default_retry}
    - done:
        return: ${r.body.attempt}
`, map[string]any{"url": ep.URL}, Options{TimeScale: 0.01})
	elapsed := time.Since(start)
	if res != 3 || len(ep.requests()) != 3 {
		t.Fatalf("result %v after %d requests, want success on the 3rd", res, len(ep.requests()))
	}
	var delays []time.Duration
	for _, e := range rec.all() {
		if e.State == StepRetrying {
			if e.Step != "fetch" || !hasTag(e.Error, "HttpError") {
				t.Errorf("retry event %+v", e)
			}
			delays = append(delays, e.Delay)
		}
	}
	want := []time.Duration{10 * time.Millisecond, 12500 * time.Microsecond}
	if len(delays) != 2 || delays[0] != want[0] || delays[1] != want[1] {
		t.Errorf("retry delays %v, want %v (1 s and 1.25 s scaled by 0.01)", delays, want)
	}
	reqs := ep.requests()
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < want[i-1] {
			t.Errorf("retry %d came %v after the failure, before its backoff %v", i, gap, want[i-1])
		}
	}
	if elapsed > 2*time.Second {
		t.Errorf("run took %v: the backoff was not scaled", elapsed)
	}
}

// The non-idempotent default policy does not retry a 502, and a custom
// policy with a subworkflow predicate retries max_retries times before the
// exception reaches except.
func TestRetryPolicies(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 502, map[string]any{"path": r.URL.Path})
	})
	res, _ := succeed(t, `
main:
  params: [args]
  steps:
    - once:
        try:
          call: http.post
          args:
            url: ${args.url + "/once"}
        retry: ${http.default_retry_non_idempotent}
        except:
          as: e
          steps:
            - ignore:
                assign:
                  - first: ${e.code}
    - custom:
        try:
          steps:
            - get:
                call: http.get
                args:
                  url: ${args.url + "/custom"}
        retry:
          predicate: ${badGateway}
          max_retries: 2
          backoff:
            initial_delay: 2
            max_delay: 10
            multiplier: 3
        except:
          as: e
          steps:
            - done:
                return: {first: '${first}', last: '${e.code}'}
badGateway:
  params: [e]
  steps:
    - check:
        return: ${"HttpError" in e.tags and e.code == 502}
`, map[string]any{"url": ep.URL}, Options{})
	assertJSON(t, res, `{"first":502,"last":502}`)
	counts := map[string]int{}
	for _, r := range ep.requests() {
		counts[r.path]++
	}
	if counts["/once"] != 1 || counts["/custom"] != 3 {
		t.Errorf("requests per path %v, want /once 1 and /custom 3", counts)
	}
}

// sys.sleep is scaled; sys.log writes through the logger without failing.
func TestSleepAndLog(t *testing.T) {
	t.Parallel()
	start := time.Now()
	res, rec := succeed(t, `
main:
  steps:
    - nap:
        call: sys.sleep
        args:
          seconds: 100
    - note:
        call: sys.log
        args:
          text: napped
          severity: WARNING
    - noteJSON:
        call: sys.log
        args:
          json: {a: 1}
    - done:
        return: ok
`, nil, Options{})
	if res != "ok" {
		t.Fatalf("result %v", res)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("100 s at scale 0.001 took %v", d)
	}
	if got := strings.Join(rec.steps(StepFinished), ","); got != "nap,note,noteJSON,done" {
		t.Errorf("finished %s", got)
	}
}

// The Pub/Sub connector publishes through the official client to the
// emulator: data is base64 in the workflow and raw bytes on the topic; the
// result carries the message ids. A missing topic raises an HttpError 404.
func TestPublishToEmulator(t *testing.T) {
	emulators.ForTest(t, emulators.PubSub)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	project := emulators.ProjectID("wf-publish")
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := "projects/" + project + "/topics/lesson-processed"
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	sub := "projects/" + project + "/subscriptions/lesson-processed-test"
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		t.Fatal(err)
	}

	res, _ := succeed(t, `
main:
  params: [args]
  steps:
    - init:
        assign:
          - project: ${sys.get_env("GOOGLE_CLOUD_PROJECT_ID")}
          - event: {lessonId: l-1, version: 2}
    - publish:
        call: googleapis.pubsub.v1.projects.topics.publish
        args:
          topic: ${"projects/" + args.project + "/topics/lesson-processed"}
          body:
            messages:
              - data: ${base64.encode(json.encode(event))}
                attributes:
                  lessonId: l-1
                  version: ${string(event.version)}
        result: published
    - missing:
        try:
          call: googleapis.pubsub.v1.projects.topics.publish
          args:
            topic: ${"projects/" + args.project + "/topics/no-such-topic"}
            body:
              messages:
                - data: ${base64.encode(text.encode("x"))}
        except:
          as: e
          steps:
            - done:
                return: {ids: '${published.messageIds}', missingCode: '${e.code}'}
`, map[string]any{"project": project}, Options{PubSub: client})
	m := res.(map[string]any)
	ids, _ := m["ids"].([]any)
	if len(ids) != 1 || m["missingCode"] != 404 {
		t.Fatalf("result %v", res)
	}

	got := make(chan *pubsub.Message, 1)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go client.Subscriber(sub).Receive(rctx, func(_ context.Context, msg *pubsub.Message) {
		msg.Ack()
		select {
		case got <- msg:
		default:
		}
		rcancel()
	})
	select {
	case msg := <-got:
		if msg.ID != ids[0] || string(msg.Data) != `{"lessonId":"l-1","version":2}` ||
			msg.Attributes["lessonId"] != "l-1" || msg.Attributes["version"] != "2" {
			t.Errorf("message %s %q %v, want id %v", msg.ID, msg.Data, msg.Attributes, ids[0])
		}
	case <-ctx.Done():
		t.Fatal("no message reached the subscription")
	}
}
