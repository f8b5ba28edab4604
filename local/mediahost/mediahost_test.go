package mediahost

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func start(t *testing.T, dir string) (*Host, string) {
	t.Helper()
	h, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return h, s.URL()
}

func TestSyntheticIsDeterministicWithRanges(t *testing.T) {
	t.Parallel()
	h, base := start(t, "")
	resp, err := http.Get(base + "/synthetic/100003.mp4?X-Goog-Signature=abc")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ContentLength != 100003 || len(body) != 100003 {
		t.Fatalf("Content-Length %d, body %d, want 100003", resp.ContentLength, len(body))
	}
	sum := md5.Sum(body)
	if got, want := hex.EncodeToString(sum[:]), SyntheticMD5(100003); got != want {
		t.Errorf("body MD5 %s, SyntheticMD5 %s", got, want)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/synthetic/100003", nil)
	req.Header.Set("Range", "bytes=13-1012")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, body[13:1013]) {
		t.Errorf("range: status %d, %d bytes, equal %v", resp.StatusCode, len(part), bytes.Equal(part, body[13:1013]))
	}
	if h.Hits("/synthetic/100003") != 1 || h.Total() != 2 {
		t.Errorf("hits %d, total %d", h.Hits("/synthetic/100003"), h.Total())
	}
}

func TestShortBodyEndsWithUnexpectedEOF(t *testing.T) {
	t.Parallel()
	_, base := start(t, "")
	resp, err := http.Get(base + "/short/50000/20000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.ContentLength != 50000 || n != 20000 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("declared %d, got %d bytes, err %v", resp.ContentLength, n, err)
	}
}

func TestChunkedHasNoLength(t *testing.T) {
	t.Parallel()
	_, base := start(t, "")
	resp, err := http.Get(base + "/chunked/70000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.ContentLength != -1 || n != 70000 || err != nil {
		t.Errorf("Content-Length %d, %d bytes, err %v", resp.ContentLength, n, err)
	}
}

func TestFilesAndStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "l1.mov"), []byte("movie"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, base := start(t, dir)
	for _, tc := range []struct {
		path, ctype string
		status      int
	}{
		{"/l1.mov", "video/quicktime", 200},
		{"/missing.mp4", "", 404},
		{"/../etc/passwd", "", 404},
		{"/status/503", "", 503},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.ctype)
		}
	}
}

// CutFirstTransfers cuts each file's first full transfer halfway (the
// client sees an unexpected EOF), and serves the next ones, and ranged
// requests, whole.
func TestCutFirstTransfers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789"), 10000)
	for _, name := range []string{"a.mp4", "b.mp4"} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, base := start(t, dir)
	h.CutFirstTransfers()
	get := func(name, rng string) (int, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/"+name, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	if _, b, err := get("a.mp4", ""); !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != len(body)/2 {
		t.Errorf("first transfer: %d bytes, %v; want half, then an unexpected EOF", len(b), err)
	}
	if code, b, err := get("a.mp4", "bytes=50000-"); err != nil || code != http.StatusPartialContent || !bytes.Equal(b, body[50000:]) {
		t.Errorf("resumed range: %d, %d bytes, %v", code, len(b), err)
	}
	if _, b, err := get("a.mp4", ""); err != nil || !bytes.Equal(b, body) {
		t.Errorf("second transfer: %d bytes, %v; want it whole", len(b), err)
	}
	if _, b, err := get("b.mp4", "bytes=0-99"); err != nil || len(b) != 100 {
		t.Errorf("a ranged first request is not cut: %d bytes, %v", len(b), err)
	}
	if _, b, err := get("b.mp4", ""); !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != len(body)/2 {
		t.Errorf("b's first full transfer: %d bytes, %v; want it cut", len(b), err)
	}
	if h.Cuts() != 2 {
		t.Errorf("%d cuts, want 2", h.Cuts())
	}
}
