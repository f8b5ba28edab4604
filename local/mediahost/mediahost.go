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
//	/stall/<bytes>                 sends <bytes> of a longer body, then sends nothing until the client hangs up
//	/<name>                        the file <name> of the directory
//
// Every other answer carries Content-Length; files and synthetic bodies honour Range
// requests (http.ServeContent). Query strings are ignored, so a signed-URL-like
// query can be appended to any path, unless the host requires signatures
// (RequireSignatures): then a file is served only through a link Sign made,
// before it expires and while the key that signed it is current, as a video
// host's signed URLs behave. Slow and OnServed let tests shape transfers.
package mediahost

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
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

	mu       sync.Mutex
	hits     map[string]int
	slow     map[string]*pace
	onServed func(name string)
	key      []byte // nil: no signatures required
	keyGen   int
	refused  int
	cutFirst bool            // CutFirstTransfers is on
	cut      map[string]bool // files whose first transfer was cut
}

// pace spreads the body of the next requests for a file over a duration.
type pace struct {
	d time.Duration
	n int // requests left; < 0: every request
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

// Slow makes the next n requests for the file name (n < 0: every request)
// take at least d to send their body, spread evenly over it: a transfer longer
// than a deadline, without a large file.
func (h *Host) Slow(name string, d time.Duration, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.slow == nil {
		h.slow = map[string]*pace{}
	}
	h.slow[name] = &pace{d: d, n: n}
}

// OnServed sets a function called after a file's whole body has been sent
// (before the handler returns): the moment a download has all its bytes.
func (h *Host) OnServed(fn func(name string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onServed = fn
}

// CutFirstTransfers makes the first full transfer of every file stop
// halfway: the host sends the headers (Content-Length included) and half the
// body, then drops the connection, as a video host's flaky edge does. Later
// requests for the file, ranged or not, are served whole. Cuts counts them.
func (h *Host) CutFirstTransfers() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cutFirst = true
	if h.cut == nil {
		h.cut = map[string]bool{}
	}
}

// Cuts returns how many transfers CutFirstTransfers cut.
func (h *Host) Cuts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.cut)
}

// takeCut reports whether this request for name is the one to cut.
func (h *Host) takeCut(name string, r *http.Request) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.cutFirst || h.cut[name] || r.Method != http.MethodGet || r.Header.Get("Range") != "" {
		return false
	}
	h.cut[name] = true
	return true
}

// Refuse answers status as a video host's front end does when it sheds
// load: 503 (or 429) with Retry-After, or a bare 5xx. For a fault layer in
// front of the host (local/chaos).
func Refuse(w http.ResponseWriter, status int) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, fmt.Sprintf("media host: %s, try again later", strings.ToLower(http.StatusText(status))), status)
}

// RequireSignatures makes files downloadable only through links Sign makes.
// Calling it again changes the key: every link signed before is refused (403),
// as when a producer's host rotates its signing key and re-signs the manifest.
func (h *Host) RequireSignatures() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keyGen++
	h.key = []byte(fmt.Sprintf("mediahost-key-%d-%d", h.keyGen, time.Now().UnixNano()))
}

// Sign returns the query-signed path of the file name ("/name?expires=..&sig=..")
// valid for ttl with the current key. Without RequireSignatures it is the
// plain path.
func (h *Host) Sign(name string, ttl time.Duration) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := "/" + strings.TrimPrefix(name, "/")
	if h.key == nil {
		return p
	}
	exp := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10)
	return p + "?expires=" + exp + "&sig=" + signature(h.key, p, exp)
}

// Refused returns how many requests were refused for a missing, wrong or
// expired signature.
func (h *Host) Refused() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
}

func signature(key []byte, p, expires string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(p + "\n" + expires))
	return hex.EncodeToString(m.Sum(nil))
}

// signed reports whether r carries a valid, unexpired signature for its path.
func (h *Host) signed(r *http.Request) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.key == nil {
		return true
	}
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	ok := err == nil && time.Now().Unix() < exp &&
		hmac.Equal([]byte(q.Get("sig")), []byte(signature(h.key, r.URL.Path, q.Get("expires"))))
	if !ok {
		h.refused++
	}
	return ok
}

// takePace returns the pace for the next request of name, if any.
func (h *Host) takePace(name string) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.slow[name]
	if p == nil || p.n == 0 {
		return 0
	}
	if p.n > 0 {
		p.n--
	}
	return p.d
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
	case strings.HasPrefix(p, "stall/"):
		n, err := strconv.ParseInt(strings.TrimPrefix(p, "stall/"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "stall size must be a number of bytes", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(n+1, 10))
		w.WriteHeader(http.StatusOK)
		io.Copy(w, io.NewSectionReader(Synthetic{}, 0, n))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		<-r.Context().Done()
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
	if !h.signed(r) {
		http.Error(w, "media host: signature missing, wrong or expired", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", contentType(name))
	var body io.ReadSeeker = f
	if d := h.takePace(name); d > 0 && st.Size() > 0 {
		body = &paced{r: f, start: time.Now(), total: st.Size(), d: d, ctx: r.Context()}
	}
	if st.Size() > 1 && h.takeCut(name, r) {
		// ServeContent stops at the reader's error with fewer bytes than
		// the Content-Length it sent: net/http drops the connection and
		// the client sees an unexpected EOF.
		http.ServeContent(w, r, name, st.ModTime(), &cutAt{r: body, at: st.Size() / 2})
		return
	}
	http.ServeContent(w, r, name, st.ModTime(), body)
	h.mu.Lock()
	fn := h.onServed
	h.mu.Unlock()
	if fn != nil && r.Context().Err() == nil && r.Method == http.MethodGet {
		fn(name)
	}
}

// paced reads no faster than total bytes over d since start.
type paced struct {
	r     io.ReadSeeker
	start time.Time
	total int64
	sent  int64
	d     time.Duration
	ctx   interface{ Done() <-chan struct{} }
}

func (p *paced) Read(b []byte) (int, error) {
	if len(b) > 16<<10 {
		b = b[:16<<10]
	}
	n, err := p.r.Read(b)
	p.sent += int64(n)
	due := p.start.Add(time.Duration(float64(p.d) * float64(p.sent) / float64(p.total)))
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
		}
	}
	return n, err
}

func (p *paced) Seek(off int64, whence int) (int64, error) { return p.r.Seek(off, whence) }

// cutAt reads r until offset at, then fails: a transfer cut mid-stream.
type cutAt struct {
	r   io.ReadSeeker
	pos int64
	at  int64
}

func (c *cutAt) Read(b []byte) (int, error) {
	if c.pos >= c.at {
		return 0, errors.New("media host: transfer cut (CutFirstTransfers)")
	}
	if rest := c.at - c.pos; int64(len(b)) > rest {
		b = b[:rest]
	}
	n, err := c.r.Read(b)
	c.pos += int64(n)
	return n, err
}

func (c *cutAt) Seek(off int64, whence int) (int64, error) {
	pos, err := c.r.Seek(off, whence)
	c.pos = pos
	return pos, err
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
