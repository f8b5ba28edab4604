// Package mediahost is a local stand-in for a producer's video host: the URLs
// a media manifest points at (DESIGN.md section 5, "Hotmart": media sources).
//
// It serves the files of a directory (the sample videos) and, for tests and
// the benchmark, bodies made up on the fly:
//
//	/synthetic/<bytes>[.ext]       deterministic pseudo-random bytes, any size, flat memory
//	/chunked/<bytes>               the same bytes with no Content-Length (chunked encoding)
//	/short/<declared>/<actual>     declares <declared> bytes, sends <actual>, then hangs up
//	/status/<code>                 answers with that status
//	/<name>                        the file <name> of the directory
//
// Every other answer carries Content-Length; files and synthetic bodies honour Range
// requests (http.ServeContent). Query strings are ignored, so a signed-URL-like
// query can be appended to any path.
package mediahost

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Host is the media host's http.Handler. It counts the requests it serves, by
// path, so tests can check that a retry downloaded nothing.
type Host struct {
	root *os.Root // nil: no directory, only the made-up bodies

	mu   sync.Mutex
	hits map[string]int
}

// New returns a host serving the files under dir; an empty dir serves only the
// made-up bodies.
func New(dir string) (*Host, error) {
	h := &Host{hits: map[string]int{}}
	if dir != "" {
		r, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("media host: %w", err)
		}
		h.root = r
	}
	return h, nil
}

// Hits returns how many requests reached path (query excluded).
func (h *Host) Hits(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// Total returns how many requests the host has served.
func (h *Host) Total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.hits {
		n += v
	}
	return n
}

// epoch is the modification time of made-up bodies: fixed, so conditional and
// range requests behave the same on every run.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.hits[r.URL.Path]++
	h.mu.Unlock()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case strings.HasPrefix(p, "synthetic/"):
		name := strings.TrimPrefix(p, "synthetic/")
		n, err := strconv.ParseInt(strings.TrimSuffix(name, path.Ext(name)), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "synthetic size must be a number of bytes", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", contentType(name))
		http.ServeContent(w, r, name, epoch, io.NewSectionReader(Synthetic{}, 0, n))
	case strings.HasPrefix(p, "chunked/"):
		n, err := strconv.ParseInt(strings.TrimPrefix(p, "chunked/"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "chunked size must be a number of bytes", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush() // headers out before the body: no Content-Length
		}
		io.CopyBuffer(w, io.NewSectionReader(Synthetic{}, 0, n), make([]byte, 64<<10))
	case strings.HasPrefix(p, "short/"):
		h.serveShort(w, strings.TrimPrefix(p, "short/"))
	case strings.HasPrefix(p, "status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(p, "status/"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "bad status code", http.StatusBadRequest)
			return
		}
		http.Error(w, fmt.Sprintf("media host: status %d as asked", code), code)
	default:
		h.serveFile(w, r, p)
	}
}

func (h *Host) serveShort(w http.ResponseWriter, spec string) {
	parts := strings.Split(spec, "/")
	if len(parts) != 2 {
		http.Error(w, "want /short/<declared>/<actual>", http.StatusBadRequest)
		return
	}
	declared, err1 := strconv.ParseInt(parts[0], 10, 64)
	actual, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || actual > declared || actual < 0 {
		http.Error(w, "want /short/<declared>/<actual> with actual <= declared", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Length", strconv.FormatInt(declared, 10))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, io.NewSectionReader(Synthetic{}, 0, actual))
	// Returning with fewer bytes than declared makes net/http close the
	// connection: the client sees an unexpected EOF, as with a dropped
	// download.
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func (h *Host) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	if h.root == nil || name == "" {
		http.NotFound(w, r)
		return
	}
	f, err := h.root.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType(name))
	http.ServeContent(w, r, name, st.ModTime(), f)
}

func contentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case "", ".mp4":
		return "video/mp4"
	case ".mov":
		return "video/quicktime"
	case ".webm":
		return "video/webm"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Server is a media host listening on a TCP address.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen serves h on addr ("127.0.0.1:0" picks a free port) until Close.
func (h *Host) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("media host: %w", err)
	}
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "media host:", err)
		}
	}()
	return s, nil
}

// URL is the server's base URL, without a trailing slash.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server and drops open connections.
func (s *Server) Close() error { return s.srv.Close() }

// Synthetic is the endless deterministic body behind /synthetic/: byte i is a
// function of i alone, so any range can be produced without state and a body
// of any length takes no memory. Use io.NewSectionReader(Synthetic{}, 0, n).
type Synthetic struct{}

// ReadAt fills p with the bytes at offset off.
func (Synthetic) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("synthetic: negative offset")
	}
	n := 0
	var word [8]byte
	// Unaligned head.
	for n < len(p) && (off+int64(n))%8 != 0 {
		i := off + int64(n)
		binary.LittleEndian.PutUint64(word[:], splitmix(uint64(i/8)))
		p[n] = word[i%8]
		n++
	}
	// Whole words.
	k := uint64((off + int64(n)) / 8)
	for ; len(p)-n >= 8; n += 8 {
		binary.LittleEndian.PutUint64(p[n:], splitmix(k))
		k++
	}
	// Tail.
	if n < len(p) {
		binary.LittleEndian.PutUint64(word[:], splitmix(k))
		copy(p[n:], word[:])
		n = len(p)
	}
	return n, nil
}

// splitmix is SplitMix64's output function: a fast, well-mixed hash of k.
func splitmix(k uint64) uint64 {
	z := k*0x9e3779b97f4a7c15 + 0x2545f4914f6cdd1d
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// SyntheticMD5 returns the hex MD5 of /synthetic/<n>, for manifests.
func SyntheticMD5(n int64) string {
	h := md5.New()
	io.CopyBuffer(h, io.NewSectionReader(Synthetic{}, 0, n), make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil))
}
