package audio

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"
)

// objectServer serves one Cloud Storage object to ffmpeg over loopback
// HTTP, answering Range requests with range reads: ffmpeg seeks (an MP4's
// index may sit at its end; -ss jumps by the index), so it needs a seekable
// input, and this gives one without downloading the video. Each request
// streams through a small buffer.
type objectServer struct {
	obj   *storage.ObjectHandle
	size  int64
	ctype string
	path  string
	url   string
	name  string // gs://bucket/object, what error messages say instead of url
	srv   *http.Server

	mu  sync.Mutex
	err error // the first Cloud Storage failure met while serving
}

// copyBuffer is the buffer each response streams through.
const copyBuffer = 256 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// serveObject starts serving obj (of the given attributes) on 127.0.0.1 at
// a random path, so no other local process guesses its way to the video.
func serveObject(obj *storage.ObjectHandle, attrs *storage.ObjectAttrs) (*objectServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	s := &objectServer{obj: obj, size: attrs.Size, ctype: attrs.ContentType, path: "/" + rand.Text() + "/source",
		name: "gs://" + attrs.Bucket + "/" + attrs.Name}
	if s.ctype == "" {
		s.ctype = "application/octet-stream"
	}
	s.url = "http://" + ln.Addr().String() + s.path
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *objectServer) close() { _ = s.srv.Close() }

// failure returns the first Cloud Storage error met while serving.
func (s *objectServer) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *objectServer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *objectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read only", http.StatusMethodNotAllowed)
		return
	}
	start, end, partial, ok := parseRange(r.Header.Get("Range"), s.size)
	if !ok {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", s.size))
		http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", s.ctype)
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, s.size))
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	rd, err := s.obj.NewRangeReader(r.Context(), start, end-start+1)
	if err != nil {
		if r.Context().Err() == nil {
			s.fail(fmt.Errorf("range read at %d: %w", start, err))
		}
		http.Error(w, "source unavailable", http.StatusBadGateway)
		return
	}
	defer rd.Close()
	w.WriteHeader(status)
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	src := &readErr{r: rd}
	_, _ = io.CopyBuffer(w, src, *buf)
	// A write error is ffmpeg closing the connection to seek elsewhere: the
	// normal way it reads. A read error while ffmpeg still listens is Cloud
	// Storage failing, which makes whatever ffmpeg says next retryable.
	if src.err != nil && r.Context().Err() == nil {
		s.fail(fmt.Errorf("read at %d: %w", start, src.err))
	}
}

// readErr remembers a reader's failure (not io.EOF).
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

// parseRange reads a Range header of a single byte range (what ffmpeg
// sends: "bytes=N-", or "bytes=N-M" with end_offset): the inclusive
// [start, end] to serve and whether it is partial. An empty header, or one
// this server does not understand (several ranges), asks for the whole
// object, as RFC 9110 allows. ok is false when the range lies past the end.
func parseRange(h string, size int64) (start, end int64, partial, ok bool) {
	whole := func() (int64, int64, bool, bool) { return 0, size - 1, false, true }
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return whole()
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return whole()
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	switch {
	case a == "": // the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, size - 1, true, true
	default:
		s, err := strconv.ParseInt(a, 10, 64)
		if err != nil || s < 0 {
			return whole()
		}
		if s >= size {
			return 0, 0, false, false
		}
		e := size - 1
		if b != "" {
			v, err := strconv.ParseInt(b, 10, 64)
			if err != nil || v < s {
				return whole()
			}
			e = min(v, size-1)
		}
		return s, e, true, true
	}
}
