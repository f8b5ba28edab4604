package bench

// BenchmarkDetect measures detection (DESIGN.md section 1, step 1) of a
// generated catalog against the local Hotmart server, its rate limit lifted,
// and the official Firestore and Pub/Sub emulators. The detector runs in a
// process of its own (this test binary, started again in detector mode), so
// its peak RSS is its own: once on an empty store (every lesson new, every
// event published) and once more on the same catalog (nothing changed).
//
// Run: go test -run '^$' -bench Detect -benchtime 1x -timeout 30m ./bench/
//
// Metrics:
//
//	rss_first_MiB, rss_unchanged_MiB   detector peak RSS (target < 256 each)
//	rss_growth_*_ratio                 peak RSS over that of a catalog a tenth
//	                                   the size (flat in the lessons: about 1)
//	pages/s_first, pages/s_unchanged   Hotmart pages walked per second
//	reads/course_unchanged             Firestore documents read per course, the
//	writes/course_unchanged            run's own reads and writes included
//	                                   (target: 1 read a course, no lesson read)
//
// RSS is the detector process's own peak (VmHWM); the log also gives its
// peak Go heap, and the maxrss rusage reports, which counts the parent's
// memory too (see measured). BENCH_LESSONS sets the catalog
// size (default 100000: 100 courses of 10 modules of 100 lessons). The first
// run's pace is the Firestore emulator's (a transaction per new lesson); the
// benchmark gives the emulator a larger heap than tests do (bigFirestore).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/coursekb/pipeline/functions/detector"
	"github.com/coursekb/pipeline/local/emulators"
	localhotmart "github.com/coursekb/pipeline/local/hotmart"
	"github.com/coursekb/pipeline/local/proc"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/detect"
	"github.com/coursekb/pipeline/shared/events"
	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/logging"
)

// Variables the benchmark hands its detector process.
const (
	envDetectorChild = "BENCH_DETECTOR_CHILD"
	envHotmartURL    = "BENCH_HOTMART_URL"
	envCatalog       = "BENCH_COURSE_CATALOG"
	envProject       = "BENCH_PROJECT"
)

const (
	benchModules = 10  // per course
	benchPages   = 100 // per module
)

// The test binary is the detector process when started with
// envDetectorChild set: it runs one detection, prints its detectRun, and
// exits before any test or benchmark runs.
func init() {
	if os.Getenv(envDetectorChild) == "" {
		return
	}
	res, err := detectOnce()
	if err == nil {
		res.PeakRSSKiB, err = peakRSSKiB()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "detector process:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// detectRun is what the detector process reports of its one run.
type detectRun struct {
	Status  int                `json:"status"`
	Outcome string             `json:"outcome"`
	Counts  lessonstate.Counts `json:"counts"`
	Seconds float64            `json:"seconds"`
	Reads   int64              `json:"reads"`
	Writes  int64              `json:"writes"`
	Errors  []string           `json:"errors"`
	// HeapMiB is the most the Go heap held (in use), sampled every 50 ms:
	// what the detector keeps, without the runtime's slack that RSS adds.
	HeapMiB float64 `json:"heapMiB"`
	// PeakRSSKiB is the process's peak resident set (VmHWM), read once
	// the run and its clients are done.
	PeakRSSKiB int64 `json:"peakRssKiB"`
}

// fsCounter counts the Firestore documents a process reads and writes, as
// Firestore bills them: a document returned by a query or a get is a read,
// a query that returns none costs one read, each write of a commit is a
// write.
type fsCounter struct{ reads, writes atomic.Int64 }

func (c *fsCounter) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if r, ok := req.(*firestorepb.CommitRequest); ok && err == nil {
		c.writes.Add(int64(len(r.Writes)))
	}
	if _, ok := req.(*firestorepb.GetDocumentRequest); ok {
		c.reads.Add(1)
	}
	return err
}

func (c *fsCounter) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &countedStream{ClientStream: s, c: c}, nil
}

type countedStream struct {
	grpc.ClientStream
	c       *fsCounter
	query   bool
	results int64
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		if err == io.EOF && s.query && s.results == 0 {
			s.c.reads.Add(1) // an empty query result is billed one read
		}
		return err
	}
	switch r := m.(type) {
	case *firestorepb.RunQueryResponse:
		s.query = true
		if r.Document != nil {
			s.results++
			s.c.reads.Add(1)
		}
	case *firestorepb.BatchGetDocumentsResponse:
		if r.GetFound() != nil || r.GetMissing() != "" {
			s.c.reads.Add(1)
		}
	}
	return nil
}

// emulatorOwner is the credential the Firestore client gives the emulator:
// the owner, whom security rules do not apply to.
type emulatorOwner struct{}

func (emulatorOwner) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}
func (emulatorOwner) RequireTransportSecurity() bool { return false }

// detectOnce is the detector process: the detector function's handler,
// built as in production but for a media source that has a video for every
// page (so the first run publishes an event per lesson), called once.
func detectOnce() (detectRun, error) {
	ctx := context.Background()
	project := os.Getenv(envProject)
	catalog, err := detect.ParseCatalog(os.Getenv(envCatalog))
	if err != nil {
		return detectRun{}, err
	}
	// The Firestore client dials the emulator itself, ignoring dial
	// options; a connection of ours, dialled as it would, carries the
	// counting interceptors.
	var counter fsCounter
	conn, err := grpc.NewClient(os.Getenv(emulators.Firestore.EnvVar()),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(emulatorOwner{}),
		grpc.WithChainUnaryInterceptor(counter.unary),
		grpc.WithChainStreamInterceptor(counter.stream))
	if err != nil {
		return detectRun{}, err
	}
	fs, err := firestore.NewClient(ctx, project, option.WithGRPCConn(conn))
	if err != nil {
		return detectRun{}, err
	}
	defer fs.Close()
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return detectRun{}, err
	}
	defer ps.Close()
	pub := events.NewPublisher(ps)
	defer pub.Close()
	base := os.Getenv(envHotmartURL)
	hm, err := hotmart.New(hotmart.Config{BaseURL: base, TokenURL: base + localhotmart.TokenPath,
		ClientID: localhotmart.DefaultClientID, ClientSecret: localhotmart.DefaultClientSecret,
		BasicToken: localhotmart.NewServer(sample.Catalog{}, localhotmart.Options{}).Options().BasicToken,
		// The rate limit is lifted: what is measured is the detector.
		RequestsPerMinute: 1 << 30})
	if err != nil {
		return detectRun{}, err
	}
	h, err := detector.New(detector.Deps{
		Hotmart: hm, Store: lessonstate.New(fs), Publisher: pub, Catalog: catalog,
		Resolver: func(context.Context) (detect.MediaResolver, error) { return everyPageHasMedia{}, nil },
		Log:      logging.New(io.Discard, "info", project),
	})
	if err != nil {
		return detectRun{}, err
	}
	heap := sampleHeap()
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	secs := time.Since(start).Seconds()
	heapMiB := heap()
	var sum detector.Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil {
		return detectRun{}, fmt.Errorf("answer %d is not a summary: %s", rec.Code, rec.Body.Bytes())
	}
	return detectRun{Status: rec.Code, Outcome: sum.Outcome, Counts: sum.Counts, Seconds: secs,
		Reads: counter.reads.Load(), Writes: counter.writes.Load(), Errors: sum.Errors, HeapMiB: heapMiB}, nil
}

// sampleHeap samples the heap in use until the returned function is
// called, which returns the peak in MiB.
func sampleHeap() func() float64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}

			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		<-stopped
		return float64(peak.Load()) / (1 << 20)
	}
}

// everyPageHasMedia is a media source with a video for every page, as a
// manifest would name it.
type everyPageHasMedia struct{}

func (everyPageHasMedia) Resolve(_ context.Context, _ int64, _, pageID string) (*lessonstate.Media, error) {
	return &lessonstate.Media{Kind: "url", Ref: pageID, Ext: "mp4", Size: 1 << 20, Fingerprint: "fp-" + pageID}, nil
}

// generatedCatalog is a producer's catalog of n lessons: courses of
// benchModules modules of benchPages pages each.
func generatedCatalog(n int) (sample.Catalog, string) {
	cat := sample.Catalog{Producer: "bench"}
	entries := map[string]detect.CatalogEntry{}
	perCourse := benchModules * benchPages
	for c := 0; c*perCourse < n; c++ {
		id := int64(5_000_000 + c)
		p := sample.Product{ID: id, Name: fmt.Sprintf("Curso %d", c), Ucode: fmt.Sprintf("u%d", c), Status: "ACTIVE",
			Format: "ONLINE_COURSE", ClubSubdomain: fmt.Sprintf("curso-%d", c), School: "escuela"}
		for m := range benchModules {
			mod := sample.Module{ModuleID: fmt.Sprintf("c%dm%d", c, m), Name: fmt.Sprintf("Módulo %d", m+1), Sequence: m + 1}
			for g := range benchPages {
				mod.Pages = append(mod.Pages, sample.Page{PageID: fmt.Sprintf("c%dm%dp%d", c, m, g),
					Name: fmt.Sprintf("Lección %d del módulo %d", g+1, m+1), Type: "CONTENT",
					PageOrder: g + 1, Published: true, HasMedia: true})
			}
			p.Modules = append(p.Modules, mod)
		}
		cat.Products = append(cat.Products, p)
		entries[strconv.FormatInt(id, 10)] = detect.CatalogEntry{Subdomain: p.ClubSubdomain, School: p.School}
	}
	b, _ := json.Marshal(entries)
	return cat, string(b)
}

func BenchmarkDetect(b *testing.B) {
	lessons := 100_000
	if v := os.Getenv("BENCH_LESSONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10*benchModules*benchPages {
			b.Fatalf("BENCH_LESSONS %q: want a number of at least %d", v, 10*benchModules*benchPages)
		}
		lessons = n
	}
	bigFirestore(b)
	emulators.ForTest(b, emulators.PubSub)

	b.ResetTimer()
	for range b.N {
		// A catalog a tenth the size first: memory flat in the number of
		// lessons means the same peak for both.
		small := detectCatalog(b, lessons/10)
		big := detectCatalog(b, lessons)
		b.Logf("%-22s %9s %10s %10s %10s %10s %10s %12s", "run", "seconds", "pages/s", "RSS MiB", "heap MiB", "rusage MiB", "reads", "writes")
		for _, r := range []struct {
			name string
			res  catalogRuns
		}{{"small", small}, {"big", big}} {
			for _, m := range []struct {
				name string
				measured
			}{{"first", r.res.first}, {"unchanged", r.res.unchanged}} {
				b.Logf("%-22s %9.1f %10.0f %10.1f %10.1f %10.1f %10d %12d", fmt.Sprintf("%s %s (%d)", m.name, r.name, r.res.pages),
					m.Seconds, float64(r.res.pages)/m.Seconds, m.rssMiB, m.HeapMiB, m.rusageMiB, m.Reads, m.Writes)
			}
		}
		b.ReportMetric(big.first.rssMiB, "rss_first_MiB")
		b.ReportMetric(big.unchanged.rssMiB, "rss_unchanged_MiB")
		b.ReportMetric(big.first.rssMiB/small.first.rssMiB, "rss_growth_first_ratio")
		b.ReportMetric(big.unchanged.rssMiB/small.unchanged.rssMiB, "rss_growth_unchanged_ratio")
		b.ReportMetric(float64(big.pages)/big.first.Seconds, "pages/s_first")
		b.ReportMetric(float64(big.pages)/big.unchanged.Seconds, "pages/s_unchanged")
		b.ReportMetric(float64(big.unchanged.Reads)/float64(big.courses), "reads/course_unchanged")
		b.ReportMetric(float64(big.unchanged.Writes)/float64(big.courses), "writes/course_unchanged")
	}
}

// catalogRuns are the two detections of one generated catalog.
type catalogRuns struct {
	pages, courses   int
	first, unchanged measured
}

// detectCatalog detects a generated catalog of n lessons twice, in a
// Firestore project of its own: on an empty store, then unchanged.
func detectCatalog(b *testing.B, n int) catalogRuns {
	b.Helper()
	cat, catalogJSON := generatedCatalog(n)
	hs := localhotmart.NewServer(cat, localhotmart.Options{RequestsPerMinute: 1 << 30})
	base, stop, err := hs.Listen("")
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	project := emulators.ProjectID("bench-detect")
	createTopics(b, project)
	res := catalogRuns{courses: len(cat.Products), pages: len(cat.Products) * benchModules * benchPages}
	res.first = runDetector(b, base, project, catalogJSON)
	res.unchanged = runDetector(b, base, project, catalogJSON)
	if res.first.Status != http.StatusOK || res.first.Counts.New != res.pages ||
		res.unchanged.Status != http.StatusOK || res.unchanged.Counts.Unchanged != res.pages {
		b.Fatalf("runs did not detect the catalog of %d:\nfirst     %+v\nunchanged %+v", res.pages, res.first, res.unchanged)
	}
	b.Logf("%d lessons in %d courses: %d Hotmart requests", res.pages, res.courses, hs.Requests("/"))
	return res
}

// firestoreHeap is the Firestore emulator's Java heap here. local/emulators
// caps it at 512 MiB, right for tests; the emulator keeps every document and
// its history in that heap and, past about 50,000 lessons with their outbox
// entries, spends its time collecting garbage (2 transactions a second).
const firestoreHeap = "-Xmx4g"

// bigFirestore starts a Firestore emulator with firestoreHeap for the
// benchmark (unless FIRESTORE_EMULATOR_HOST names one already) and points
// this process, and so the detector processes, at it.
func bigFirestore(b *testing.B) {
	b.Helper()
	if os.Getenv(emulators.Firestore.EnvVar()) == "" {
		root, err := emulators.SDKRoot()
		if err != nil {
			b.Fatalf("the benchmark needs the Firestore emulator: %v", err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(filepath.Join(root, "platform", "cloud-firestore-emulator", "cloud_firestore_emulator"),
			"--host=127.0.0.1", "--port="+strconv.Itoa(port))
		cmd.Env = append(os.Environ(), "JAVA_TOOL_OPTIONS="+firestoreHeap)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		p, err := proc.Start("firestore emulator", cmd)
		if err != nil {
			b.Fatalf("the benchmark needs the Firestore emulator, which did not start: %v", err)
		}
		b.Cleanup(p.Stop)
		b.Setenv(emulators.Firestore.EnvVar(), "127.0.0.1:"+strconv.Itoa(port))
		// With the variable set, Start waits until that emulator answers.
		ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
		defer cancel()
		if _, err := emulators.Start(ctx, emulators.Firestore); err != nil {
			b.Fatalf("the benchmark needs the Firestore emulator, which did not become ready: %v\n%s", err, out)
		}
		return
	}
	emulators.ForTest(b, emulators.Firestore)
}

// lockedBuffer keeps a child's output, written and read concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// measured is a detector process's report, its peak RSS in MiB the
// process's own VmHWM, and rusageMiB what wait4's rusage says. The two
// differ: os/exec starts a child with vfork, and when the child execs
// Linux records the high-water RSS of the memory it leaves — the
// parent's — as the child's maxrss. Here the parent holds the local
// Hotmart server's 100,000-page catalog, so rusage would charge it to the
// detector.
type measured struct {
	detectRun
	rssMiB, rusageMiB float64
}

// runDetector runs one detection in a detector process of its own.
func runDetector(b *testing.B, hotmartURL, project, catalogJSON string) measured {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), envDetectorChild+"=1", envHotmartURL+"="+hotmartURL,
		envProject+"="+project, envCatalog+"="+catalogJSON)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("detector process: %v\n%s", err, stderr.Bytes())
	}

	var m measured
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &m.detectRun); err != nil {
		b.Fatalf("detector process said %q: %v\n%s", stdout.Bytes(), err, stderr.Bytes())
	}
	m.rssMiB = float64(m.PeakRSSKiB) / 1024
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rusageMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return m
}

// peakRSSKiB is this process's own high-water resident set (VmHWM).
func peakRSSKiB() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

func createTopics(b *testing.B, project string) {
	b.Helper()
	ps, err := pubsub.NewClient(b.Context(), project)
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	for _, t := range []string{events.TopicLessonDiscovered, events.TopicLessonProcessed, events.TopicLessonEvents} {
		if _, err := ps.TopicAdminClient.CreateTopic(b.Context(), &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + t}); err != nil {
			b.Fatal(err)
		}
	}
}
