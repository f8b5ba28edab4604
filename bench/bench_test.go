// Package bench measures the download path (DESIGN.md section 1, step 2) on
// one machine: `pipeline fetch` (transfer.Copier.FromURL in its own process)
// against a plain GET piped into a plain upload, both into `pipeline
// gcs-server` running in its own process, disk-backed.
//
// Run: go test -run '^$' -bench . -benchtime 1x -timeout 30m ./bench/
//
// Metrics:
//
//	baseline_MiB/s, fetch_MiB/s   1 GiB each
//	throughput_ratio              fetch / baseline (target >= 0.8)
//	rss_256MiB_MiB, rss_1GiB_MiB  fetch process peak RSS (target < 100, within 20%)
//	rss_growth_ratio              rss_1GiB / rss_256MiB
//
// fetch runs with the production setting: resumable upload, 8 MiB chunks.
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
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coursekb/pipeline/local/mediahost"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

type rig struct {
	bin   string
	host  string // GCS server host:port
	media string // media host base URL
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

	srv := exec.Command(bin, "gcs-server", "--addr", "127.0.0.1:0", "--root", filepath.Join(tmp, "gcs"), "--bucket", "raw")
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
	return rig{bin: bin, host: host, media: ms.URL()}
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

type fetchResult struct {
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	MaxRssKiB int64   `json:"maxRssKiB"`
	Error     string  `json:"error"`
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
	chunk := 0 // transfer.DefaultChunkSize
	if v := os.Getenv("BENCH_CHUNK_SIZE"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("BENCH_CHUNK_SIZE: %v", err)
		}
		chunk = c
	}
	md5Big, md5Small := mediahost.SyntheticMD5(gib), mediahost.SyntheticMD5(256*mib)
	b.ResetTimer()
	for range b.N {
		base := r.baseline(b, gib)
		big := r.fetch(b, gib, md5Big, chunk)
		small := r.fetch(b, 256*mib, md5Small, chunk)

		baseMiBs := gib / mib / base
		fetchMiBs := float64(big.Bytes) / mib / big.Seconds
		rssBig, rssSmall := float64(big.MaxRssKiB)/1024, float64(small.MaxRssKiB)/1024
		b.ReportMetric(baseMiBs, "baseline_MiB/s")
		b.ReportMetric(fetchMiBs, "fetch_MiB/s")
		b.ReportMetric(fetchMiBs/baseMiBs, "throughput_ratio")
		b.ReportMetric(rssSmall, "rss_256MiB_MiB")
		b.ReportMetric(rssBig, "rss_1GiB_MiB")
		b.ReportMetric(rssBig/rssSmall, "rss_growth_ratio")
		b.Logf("baseline 1 GiB %.1fs; fetch 1 GiB %.1fs (chunk %d); fetch 256 MiB %.1fs", base, big.Seconds, chunk, small.Seconds)
	}
}
