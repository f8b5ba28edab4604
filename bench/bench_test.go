// Package bench measures the download path (DESIGN.md section 1, step 2) on
// one machine: `pipeline fetch` (transfer.Copier.FromURL in its own process)
// against a plain GET piped into a plain upload, both into `pipeline
// gcs-server` running in its own process, disk-backed.
//
// Run: go test -run '^$' -bench . -benchtime 1x -timeout 30m ./bench/
//
// Metrics:
//
//	baseline_MiB/s, fetch_MiB/s   1 GiB each, median of 5 rounds, each starting with another path
//	throughput_ratio              median of the rounds' fetch / baseline (target >= 0.8)
//	resumable_MiB/s               a plain GET piped into a plain resumable upload, same chunks
//	fetch_vs_resumable_ratio      what the downloader's checks cost over the same protocol (target >= 0.9)
//
// PIPELINE_CPUPROFILE=/tmp/p makes every pipeline process (gcs-server,
// fetch) write a CPU profile to /tmp/p.<command>.<pid>.
//
//	rss_256MiB_MiB, rss_1GiB_MiB  fetch process peak RSS (target < 100, within 20%)
//	rss_growth_ratio              rss_1GiB / rss_256MiB
//
// CPU seconds per GiB, medians of the same rounds: on a machine shared with
// other work these say what each path costs better than its speed does.
//
//	server_cpu_s/GiB_baseline     the storage server's, for the single-request upload
//	server_cpu_s/GiB_resumable    ... the plain resumable upload
//	server_cpu_s/GiB_fetch        ... fetch's upload (resumable, MD5 declared)
//	fetch_cpu_s/GiB               the fetch process's own
//
// fetch runs with the production setting: resumable upload in chunks of
// transfer.DefaultChunkSize, as the plain resumable copy does.
// (fake-gcs-server's own resumable path is quadratic in the chunk count;
// local/gcs serves resumable uploads itself, see its package comment.)
// BENCH_CHUNK_SIZE overrides the chunk size (-1: one multipart request).
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/mediahost"
	"github.com/coursekb/pipeline/shared/transfer"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

type rig struct {
	bin   string
	host  string // GCS server host:port
	media string // media host base URL
	srv   int    // GCS server pid
}

// cpuSeconds returns the CPU time (user and system) process pid has used,
// from /proc/<pid>/stat; -1 where there is no /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The fields after the command name (which may hold spaces), from
	// the state (field 3): utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// serverCPU runs fn and returns the storage server's CPU seconds per GiB
// meanwhile, for n bytes.
func (r rig) serverCPU(n int64, fn func()) float64 {
	before := cpuSeconds(r.srv)
	fn()
	after := cpuSeconds(r.srv)
	if before < 0 || after < 0 {
		return -1
	}
	return (after - before) * gib / float64(n)
}

func setup(b *testing.B) rig {
	b.Helper()
	tmp := b.TempDir()
	bin := filepath.Join(tmp, "pipeline")
	build := exec.Command("go", "build", "-o", bin, "github.com/coursekb/pipeline/cmd/pipeline")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("build pipeline: %v", err)
	}

	srv := exec.Command(bin, "gcs-server", "--addr", "127.0.0.1:0", "--root", storageRoot(b, tmp), "--bucket", "raw")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	srv.Stderr = os.Stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatalf("start gcs-server: %v", err)
	}
	b.Cleanup(func() {
		syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var line struct{ Host string }
		if sc.Scan() && json.Unmarshal(sc.Bytes(), &line) == nil {
			ready <- line.Host
		}
		close(ready)
		io.Copy(io.Discard, out)
	}()
	var host string
	select {
	case host = <-ready:
	case <-time.After(30 * time.Second):
	}
	if host == "" {
		b.Fatal("gcs-server did not report its address")
	}

	mh, err := mediahost.New("")
	if err != nil {
		b.Fatal(err)
	}
	ms, err := mh.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ms.Close() })
	return rig{bin: bin, host: host, media: ms.URL(), srv: srv.Process.Pid}
}

// baseline streams a plain GET into a plain single-request upload.
func (r rig) baseline(b *testing.B, n int64) float64 {
	b.Helper()
	name := fmt.Sprintf("baseline-%d", n)
	start := time.Now()
	resp, err := http.Get(fmt.Sprintf("%s/synthetic/%d", r.media, n))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/upload/storage/v1/b/raw/o?uploadType=media&name=%s", r.host, name), resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = resp.ContentLength
	req.Header.Set("Content-Type", "video/mp4")
	up, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	msg, _ := io.ReadAll(up.Body)
	up.Body.Close()
	secs := time.Since(start).Seconds()
	if up.StatusCode != http.StatusOK {
		b.Fatalf("baseline upload: %s %s", up.Status, msg)
	}
	var obj struct{ Size string }
	json.Unmarshal(msg, &obj)
	if obj.Size != strconv.FormatInt(n, 10) {
		b.Fatalf("baseline stored %s bytes, want %d", obj.Size, n)
	}
	r.remove(b, name)
	return secs
}

// resumable streams a plain GET into a plain resumable upload, chunk by
// chunk, as io.Copy would if it had to: the same upload protocol as fetch,
// without its checks. It separates what the server's resumable path costs
// from what the downloader adds.
func (r rig) resumable(b *testing.B, n int64, chunk int) float64 {
	b.Helper()
	name := fmt.Sprintf("resumable-%d", n)
	start := time.Now()
	init, err := http.Post(fmt.Sprintf("http://%s/upload/storage/v1/b/raw/o?uploadType=resumable&name=%s", r.host, name), "application/json", bytes.NewReader([]byte(`{"contentType":"video/mp4"}`)))
	if err != nil {
		b.Fatal(err)
	}
	init.Body.Close()
	session := init.Header.Get("Location")
	if session == "" {
		b.Fatalf("resumable upload: no session (%s)", init.Status)
	}
	resp, err := http.Get(fmt.Sprintf("%s/synthetic/%d", r.media, n))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, chunk)
	for off := int64(0); off < n; {
		k, err := io.ReadFull(resp.Body, buf)
		if err != nil && err != io.ErrUnexpectedEOF {
			b.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, session, bytes.NewReader(buf[:k]))
		total := "*"
		if off+int64(k) == n {
			total = strconv.FormatInt(n, 10)
		}
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%s", off, off+int64(k)-1, total))
		up, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, up.Body)
		up.Body.Close()
		off += int64(k)
		if off < n && up.StatusCode != 308 || off == n && up.StatusCode != http.StatusOK {
			b.Fatalf("resumable chunk at %d: %s", off, up.Status)
		}
	}
	secs := time.Since(start).Seconds()
	r.remove(b, name)
	return secs
}

type fetchResult struct {
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	MaxRssKiB int64   `json:"maxRssKiB"`
	Error     string  `json:"error"`
	cpu       float64 // the fetch process's CPU seconds
}

// fetch runs `pipeline fetch` as the downloader process.
func (r rig) fetch(b *testing.B, n int64, md5 string, chunk int) fetchResult {
	b.Helper()
	name := fmt.Sprintf("fetch-%d-%d", n, chunk)
	cmd := exec.Command(r.bin, "fetch",
		"--url", fmt.Sprintf("%s/synthetic/%d.mp4", r.media, n),
		"--bucket", "raw", "--object", name,
		"--size", strconv.FormatInt(n, 10), "--md5", md5,
		"--meta", "lessonId=bench", "--meta", "version=1",
		"--chunk-size", strconv.Itoa(chunk))
	cmd.Env = append(os.Environ(), "STORAGE_EMULATOR_HOST="+r.host)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res fetchResult
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); jerr != nil || err != nil || res.Bytes != n {
		b.Fatalf("fetch %d bytes: %v\nstdout: %s\nstderr: %s", n, err, stdout.Bytes(), stderr.Bytes())
	}
	res.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	r.remove(b, name)
	return res
}

func (r rig) remove(b *testing.B, name string) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodDelete, fmt.Sprintf("http://%s/storage/v1/b/raw/o/%s", r.host, name), nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

func BenchmarkFetch(b *testing.B) {
	r := setup(b)
	chunk := 0 // fetch's default: transfer.DefaultChunkSize
	if v := os.Getenv("BENCH_CHUNK_SIZE"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("BENCH_CHUNK_SIZE: %v", err)
		}
		chunk = c
	}
	md5Big, md5Small := mediahost.SyntheticMD5(gib), mediahost.SyntheticMD5(256*mib)
	const rounds = 5 // the paths alternate; the medians count
	plainChunk := chunk
	if plainChunk <= 0 {
		plainChunk = transfer.DefaultChunkSize
	}
	// Warm up: the server's first large uploads grow its heap, which makes
	// whichever path runs first look slow.
	r.baseline(b, gib)
	r.fetch(b, 256*mib, md5Small, chunk)
	b.ResetTimer()
	for range b.N {
		var ratios, bases, fetches, plains, plainRatios []float64
		var cpuBase, cpuPlain, cpuFetch, cpuFetcher []float64
		var rssBig float64
		b.Logf("%-6s %14s %14s %7s %16s %12s   %s", "round", "baseline MiB/s", "fetch MiB/s", "ratio", "resumable MiB/s", "fetch/resum",
			"server CPU s/GiB: baseline resumable fetch; fetch's own")
		for i := range rounds {
			var base, plain, cb, cf, cp float64
			var big fetchResult
			paths := []func(){
				func() { cb = r.serverCPU(gib, func() { base = gib / mib / r.baseline(b, gib) }) },
				func() { cf = r.serverCPU(gib, func() { big = r.fetch(b, gib, md5Big, chunk) }) },
				func() { cp = r.serverCPU(gib, func() { plain = gib / mib / r.resumable(b, gib, plainChunk) }) },
			}
			// Each round starts with another path: a machine whose load
			// drifts favours none of them.
			for k := range paths {
				paths[(i+k)%len(paths)]()
			}
			f := float64(big.Bytes) / mib / big.Seconds
			rssBig = max(rssBig, float64(big.MaxRssKiB)/1024)
			bases, fetches, ratios = append(bases, base), append(fetches, f), append(ratios, f/base)
			plains, plainRatios = append(plains, plain), append(plainRatios, f/plain)
			cpuBase, cpuPlain, cpuFetch = append(cpuBase, cb), append(cpuPlain, cp), append(cpuFetch, cf)
			cpuFetcher = append(cpuFetcher, big.cpu*gib/float64(big.Bytes))
			b.Logf("%-6d %14.1f %14.1f %7.2f %16.1f %12.2f   %.2f %.2f %.2f; %.2f", i+1, base, f, f/base, plain, f/plain,
				cb, cp, cf, cpuFetcher[i])
		}
		small := r.fetch(b, 256*mib, md5Small, chunk)
		rssSmall := float64(small.MaxRssKiB) / 1024
		b.Logf("median %14.1f %14.1f %7.2f %16.1f %12.2f   %.2f %.2f %.2f; %.2f   (chunk %d)", median(bases), median(fetches), median(ratios),
			median(plains), median(plainRatios), median(cpuBase), median(cpuPlain), median(cpuFetch), median(cpuFetcher), chunk)
		b.ReportMetric(median(plains), "resumable_MiB/s")
		b.ReportMetric(median(plainRatios), "fetch_vs_resumable_ratio")
		b.Logf("fetch peak RSS: 256 MiB %.1f MiB, 1 GiB %.1f MiB", rssSmall, rssBig)
		b.ReportMetric(median(bases), "baseline_MiB/s")
		b.ReportMetric(median(fetches), "fetch_MiB/s")
		b.ReportMetric(median(ratios), "throughput_ratio")
		b.ReportMetric(rssSmall, "rss_256MiB_MiB")
		b.ReportMetric(rssBig, "rss_1GiB_MiB")
		b.ReportMetric(rssBig/rssSmall, "rss_growth_ratio")
		b.ReportMetric(median(cpuBase), "server_cpu_s/GiB_baseline")
		b.ReportMetric(median(cpuPlain), "server_cpu_s/GiB_resumable")
		b.ReportMetric(median(cpuFetch), "server_cpu_s/GiB_fetch")
		b.ReportMetric(median(cpuFetcher), "fetch_cpu_s/GiB")
	}
}

// storageRoot is where the storage server keeps objects: in memory-backed
// /dev/shm when there is one, so that both paths are timed without this
// machine's fsync, which swings between 3 and 11 s a GiB from run to run and
// would drown what is measured (the copy, not the disk).
func storageRoot(b *testing.B, fallback string) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "bench-gcs-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return filepath.Join(fallback, "gcs")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
