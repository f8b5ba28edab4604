package gcs

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// uploads serves resumable uploads in front of fakestorage, whose own
// resumable path keeps the upload in memory and re-hashes all of it on every
// chunk (quadratic time: a 1 GiB upload in 8 MiB chunks hashes 66 GiB).
//
// Here chunks are appended to a temporary file and, while they keep coming,
// also streamed into one CreateObjectStreaming call running beside the
// session: the backend buffers, hashes and stores the object while the upload
// goes on, as it does with a single-request upload's body, instead of
// reading it all back at the end. The session keeps a running CRC32C (and MD5
// when the client declared one): declared checksums are checked before the
// end of the content is passed on, so a mismatch finalizes nothing. The last
// bytes received are held back and passed on with the end (see stream): the
// backend reads into a bytes.Buffer, and an end that comes alone makes it
// double (and zero) its whole buffer once more, which for a 1 GiB object cost
// more than the rest of the upload.
//
// The backend holds its lock while it stores, so a session that receives
// nothing for streamIdle (a cancelled client sends no DELETE) stops its
// stream and releases the lock; it then finishes the old way, storing the
// object from the file when the last chunk arrives. Everything else goes to
// fakestorage untouched.
type uploads struct {
	fs   *fakestorage.Server
	next http.Handler
	dir  string

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
}

// streamIdle stops a session's stream when no chunk arrives for that long.
var streamIdle = time.Second

var (
	errIdle      = errors.New("upload session idle")
	errAbandoned = errors.New("upload session abandoned")
	errStoreDone = errors.New("object already stored")
)

type session struct {
	mu     sync.Mutex
	bucket string
	attrs  objectResource
	ifGen  *int64 // ifGenerationMatch
	file   *os.File
	size   int64  // bytes received, in file (and passed on while streaming)
	crc    uint32 // CRC32C of those bytes
	md5    hash.Hash
	ended  bool

	// The stream into the store: streaming until a write to pw fails.
	streaming bool
	pw        *stream
	tail      []byte        // the last bytes received, not passed on yet (see stream)
	done      chan struct{} // closed when the store returns; then err is set
	err       error
	idle      *time.Timer
}

// objectResource is the part of the JSON API object resource an upload may set.
type objectResource struct {
	Name               string            `json:"name"`
	ContentType        string            `json:"contentType"`
	ContentEncoding    string            `json:"contentEncoding"`
	ContentDisposition string            `json:"contentDisposition"`
	ContentLanguage    string            `json:"contentLanguage"`
	CacheControl       string            `json:"cacheControl"`
	Metadata           map[string]string `json:"metadata"`
	MD5Hash            string            `json:"md5Hash"`
	CRC32C             string            `json:"crc32c"`
}

func (u *uploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucket, ok := uploadBucket(r.URL.Path)
	switch {
	case !ok || q.Get("uploadType") != "resumable" && !q.Has("upload_id"):
		u.next.ServeHTTP(w, r)
	case r.Method == http.MethodPost && !q.Has("upload_id"):
		u.begin(w, r, bucket)
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		u.chunk(w, r, q.Get("upload_id"))
	case r.Method == http.MethodDelete:
		u.drop(q.Get("upload_id"))
		w.WriteHeader(499)
	default:
		u.next.ServeHTTP(w, r)
	}
}

func uploadBucket(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/upload/storage/v1/b/")
	if !ok {
		return "", false
	}
	bucket, tail, ok := strings.Cut(rest, "/")
	return bucket, ok && strings.Trim(tail, "/") == "o"
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (u *uploads) begin(w http.ResponseWriter, r *http.Request, bucket string) {
	var attrs objectResource
	if err := json.NewDecoder(r.Body).Decode(&attrs); err != nil && !errors.Is(err, io.EOF) {
		jsonError(w, http.StatusBadRequest, "invalid object resource: "+err.Error())
		return
	}
	q := r.URL.Query()
	if n := q.Get("name"); n != "" {
		attrs.Name = n
	}
	if attrs.Name == "" {
		jsonError(w, http.StatusBadRequest, "name is required")
		return
	}
	if _, err := u.fs.Backend().GetBucket(bucket); err != nil {
		jsonError(w, http.StatusNotFound, "bucket not found")
		return
	}
	if attrs.ContentType == "" {
		attrs.ContentType = r.Header.Get("X-Upload-Content-Type")
	}
	if attrs.ContentType == "" {
		attrs.ContentType = "application/octet-stream"
	}
	s := &session{bucket: bucket, attrs: attrs, streaming: true, done: make(chan struct{})}
	if v := q.Get("ifGenerationMatch"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "invalid ifGenerationMatch")
			return
		}
		s.ifGen = &g
		// Checked now, before the stream takes the backend's lock (and
		// again at the end if the stream is interrupted): while the stream
		// holds the lock nobody else can write the object.
		if !u.generationMatches(s) {
			jsonError(w, http.StatusPreconditionFailed, "precondition failed: ifGenerationMatch")
			return
		}
	}
	if attrs.MD5Hash != "" {
		s.md5 = md5.New()
	}
	f, err := os.CreateTemp(u.dir, "upload-*")
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.file = f
	pw := newStream()
	s.pw = pw
	id := rand.Text()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		f.Close()
		os.Remove(f.Name())
		jsonError(w, http.StatusServiceUnavailable, "server stopping")
		return
	}
	u.sessions[id] = s
	s.idle = time.AfterFunc(streamIdle, func() { pw.CloseWithError(errIdle) })
	u.mu.Unlock()
	go func() {
		err := u.store(s, streamContent{pw})
		s.err = err
		if err == nil {
			err = errStoreDone
		}
		pw.closeRead(err) // fails a write still waiting for the store
		close(s.done)
	}()
	w.Header().Set("Location", fmt.Sprintf("%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s",
		baseURL(r), url.PathEscape(bucket), url.QueryEscape(attrs.Name), id))
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("{}"))
}

func (u *uploads) generationMatches(s *session) bool {
	if s.ifGen == nil {
		return true
	}
	var current int64
	if o, err := u.fs.GetObjectStreaming(s.bucket, s.attrs.Name); err == nil {
		current = o.Generation
		o.Close()
	}
	return current == *s.ifGen
}

// store creates the session's object from content, which the backend reads
// to its end (an error instead of the end stores nothing).
func (u *uploads) store(s *session, content io.ReadSeekCloser) error {
	return u.fs.CreateObjectStreaming(fakestorage.StreamingObject{
		ObjectAttrs: fakestorage.ObjectAttrs{
			BucketName:         s.bucket,
			Name:               s.attrs.Name,
			ContentType:        s.attrs.ContentType,
			ContentEncoding:    s.attrs.ContentEncoding,
			ContentDisposition: s.attrs.ContentDisposition,
			ContentLanguage:    s.attrs.ContentLanguage,
			CacheControl:       s.attrs.CacheControl,
			Metadata:           s.attrs.Metadata,
		},
		Content: content,
	})
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// drop ends a session and stores nothing. It does not wait for s.mu (a
// write blocked in the pipe returns at once) nor for the store, which may
// itself wait for the backend's lock.
func (u *uploads) drop(id string) {
	u.mu.Lock()
	s := u.sessions[id]
	delete(u.sessions, id)
	u.mu.Unlock()
	if s != nil {
		s.idle.Stop()
		s.pw.CloseWithError(errAbandoned)
		go func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.ended {
				s.ended = true
				s.close()
			}
		}()
	}
}

func (s *session) close() {
	s.file.Close()
	os.Remove(s.file.Name())
}

// closeAll drops every session (the server is stopping) and refuses new ones.
func (u *uploads) closeAll() {
	u.mu.Lock()
	u.closed = true
	ss := u.sessions
	u.sessions = map[string]*session{}
	u.mu.Unlock()
	for _, s := range ss {
		s.idle.Stop()
		s.pw.CloseWithError(errAbandoned)
	}
	for _, s := range ss {
		<-s.done
		s.mu.Lock()
		if !s.ended {
			s.ended = true
			s.close()
		}
		s.mu.Unlock()
	}
}

// chunk takes one request of a session. Content-Range is "bytes A-B/*" (more
// follows), "bytes A-B/TOTAL" (last chunk) or "bytes */TOTAL" (finish, or ask
// how much arrived).
func (u *uploads) chunk(w http.ResponseWriter, r *http.Request, id string) {
	u.mu.Lock()
	s := u.sessions[id]
	u.mu.Unlock()
	if s == nil {
		jsonError(w, http.StatusNotFound, "no such upload session")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		jsonError(w, http.StatusNotFound, "no such upload session")
		return
	}
	s.idle.Stop() // a stream idle meanwhile is already stopped
	start, total, err := parseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		s.idle.Reset(streamIdle)
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if start >= 0 {
		if start > s.size {
			s.idle.Reset(streamIdle)
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("chunk starts at %d, only %d bytes received", start, s.size))
			return
		}
		// A chunk sent again after a lost answer: its first bytes are
		// here already.
		if skip := s.size - start; skip > 0 {
			if _, err := io.CopyN(io.Discard, r.Body, skip); err != nil && !errors.Is(err, io.EOF) {
				s.idle.Reset(streamIdle)
				jsonError(w, http.StatusInternalServerError, "reading chunk: "+err.Error())
				return
			}
		}
		_, err := io.CopyBuffer(sessionWriter{s}, r.Body, make([]byte, 256<<10))
		if err != nil {
			// The client resends from what it is told arrived, but a client
			// whose request broke off has most likely gone.
			s.stopStream(errAbandoned)
			if errors.Is(err, errWriteFile) {
				jsonError(w, http.StatusInternalServerError, err.Error())
			} else {
				jsonError(w, http.StatusInternalServerError, "reading chunk: "+err.Error())
			}
			return
		}
	}
	if total < 0 || s.size < total {
		s.idle.Reset(streamIdle)
		if s.size > 0 {
			w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", s.size-1))
		}
		if r.Header.Get("X-Guploader-No-308") != "" {
			w.Header().Set("X-Http-Status-Code-Override", "308")
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusPermanentRedirect)
		}
		return
	}
	if s.size != total {
		u.end(id, s, errAbandoned)
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("declared %d bytes, received %d", total, s.size))
		return
	}
	u.finish(w, r, id, s)
}

func (s *session) stopStream(err error) {
	s.streaming = false
	s.pw.CloseWithError(err)
}

// end removes a session (with s.mu held). The store, if still streaming,
// gets err in place of the end of the content; err nil ends the content.
func (u *uploads) end(id string, s *session, err error) {
	s.ended = true
	s.idle.Stop()
	u.mu.Lock()
	delete(u.sessions, id)
	u.mu.Unlock()
	if err != nil {
		s.pw.CloseWithError(err)
	} else {
		s.pw.writeLast(s.tail) // fails at once if the store has returned
	}
}

var errWriteFile = errors.New("writing chunk to the session file")

// sessionWriter appends received bytes to the session's file and, while the
// stream lasts, passes them to the store, keeping the running checksums.
type sessionWriter struct{ s *session }

func (sw sessionWriter) Write(p []byte) (int, error) {
	s := sw.s
	if _, err := s.file.WriteAt(p, s.size); err != nil {
		return 0, fmt.Errorf("%w: %v", errWriteFile, err)
	}
	if s.streaming {
		if err := s.pass(p); err != nil {
			s.streaming = false // idle, or the store failed: finish from the file
		}
	}
	s.crc = crc32.Update(s.crc, castagnoli, p)
	if s.md5 != nil {
		s.md5.Write(p)
	}
	s.size += int64(len(p))
	return len(p), nil
}

// tailSize is how many of the last bytes received a session holds back: they
// go to the store with the end of the content, once the checksums are checked
// (the last request of an upload may bring no bytes at all). At least
// bytes.MinRead, so that the backend's buffer, filled up to them, still has
// room enough for them without growing.
const tailSize = 4 << 10

// pass passes p on to the store, except the last tailSize bytes received.
func (s *session) pass(p []byte) error {
	if len(p) >= tailSize {
		if len(s.tail) > 0 {
			if _, err := s.pw.Write(s.tail); err != nil {
				return err
			}
		}
		cut := len(p) - tailSize
		if _, err := s.pw.Write(p[:cut]); err != nil {
			return err
		}
		s.tail = append(s.tail[:0], p[cut:]...)
		return nil
	}
	if over := len(s.tail) + len(p) - tailSize; over > 0 {
		if _, err := s.pw.Write(s.tail[:over]); err != nil {
			return err
		}
		s.tail = append(s.tail[:0], s.tail[over:]...)
	}
	s.tail = append(s.tail, p...)
	return nil
}

func (u *uploads) finish(w http.ResponseWriter, r *http.Request, id string, s *session) {
	defer s.close()
	crc := encodeCRC(s.crc)
	var mismatch string
	if got, ok := strings.CutPrefix(r.Header.Get("X-Goog-Hash"), "crc32c="); ok && got != crc {
		mismatch = fmt.Sprintf("crc32c mismatch: declared %s, received bytes have %s", got, crc)
	}
	if s.attrs.CRC32C != "" && s.attrs.CRC32C != crc {
		mismatch = fmt.Sprintf("crc32c mismatch: declared %s, received bytes have %s", s.attrs.CRC32C, crc)
	}
	if s.md5 != nil {
		if sum := base64.StdEncoding.EncodeToString(s.md5.Sum(nil)); sum != s.attrs.MD5Hash {
			mismatch = fmt.Sprintf("md5 mismatch: declared %s, received bytes have %s", s.attrs.MD5Hash, sum)
		}
	}
	if mismatch != "" {
		u.end(id, s, errors.New(mismatch)) // nothing is finalized
		jsonError(w, http.StatusBadRequest, mismatch)
		return
	}
	streamed := s.streaming
	u.end(id, s, nil) // the end of the content: a live stream finalizes the object
	<-s.done
	if !streamed || s.err != nil {
		// The stream was interrupted: store from the file.
		if !u.generationMatches(s) {
			jsonError(w, http.StatusPreconditionFailed, "precondition failed: ifGenerationMatch")
			return
		}
		if err := u.store(s, readOnly{io.NewSectionReader(s.file, 0, s.size)}); err != nil {
			jsonError(w, http.StatusInternalServerError, "store object: "+err.Error())
			return
		}
	}
	// Answer with the object resource, as fakestorage renders it.
	get := httptest.NewRequest(http.MethodGet, "/storage/v1/b/"+url.PathEscape(s.bucket)+"/o/"+url.PathEscape(s.attrs.Name), nil)
	get.Host = r.Host
	rec := httptest.NewRecorder()
	u.next.ServeHTTP(rec, get)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// streamContent is the store's view of a live stream: not seekable.
type streamContent struct{ *stream }

func (streamContent) Seek(int64, int) (int64, error) {
	return 0, errors.New("upload content is not seekable")
}

func (c streamContent) Close() error {
	c.closeRead(nil)
	return nil
}

// stream is io.Pipe that can also pass its last bytes together with the end
// of the content, as net/http's request body does: the backend reads the
// object into a bytes.Buffer, whose ReadFrom otherwise grows (doubles, and
// zeroes) the buffer once more just to read a lone io.EOF -- for an object
// the size of a power of two (1 GiB), a 2 GiB allocation for nothing.
type stream struct {
	wrMu sync.Mutex // serializes writes
	wrCh chan piece
	rdCh chan int

	once sync.Once // protects closing done
	done chan struct{}
	mu   sync.Mutex
	rerr error
	werr error
}

type piece struct {
	b    []byte
	last bool
}

func newStream() *stream {
	return &stream{wrCh: make(chan piece), rdCh: make(chan int), done: make(chan struct{})}
}

func (p *stream) Read(b []byte) (int, error) {
	select {
	case <-p.done:
		return 0, p.readCloseError()
	default:
	}
	select {
	case pc := <-p.wrCh:
		n := copy(b, pc.b)
		p.rdCh <- n
		if pc.last && n == len(pc.b) {
			return n, io.EOF
		}
		return n, nil
	case <-p.done:
		return 0, p.readCloseError()
	}
}

func (p *stream) Write(b []byte) (int, error) { return p.write(b, false) }

// writeLast writes b and ends the content.
func (p *stream) writeLast(b []byte) {
	if _, err := p.write(b, true); err == nil {
		p.CloseWithError(nil)
	}
}

func (p *stream) write(b []byte, last bool) (n int, err error) {
	select {
	case <-p.done:
		return 0, p.writeCloseError()
	default:
	}
	p.wrMu.Lock()
	defer p.wrMu.Unlock()
	for once := true; once || len(b) > 0; once = false {
		select {
		case p.wrCh <- piece{b, last}:
			nw := <-p.rdCh
			b = b[nw:]
			n += nw
		case <-p.done:
			return n, p.writeCloseError()
		}
	}
	return n, nil
}

// CloseWithError ends the content: the reader gets err (nil: io.EOF).
func (p *stream) CloseWithError(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}

// closeRead fails writes with err (nil: io.ErrClosedPipe).
func (p *stream) closeRead(err error) {
	if err == nil {
		err = io.ErrClosedPipe
	}
	p.mu.Lock()
	if p.rerr == nil {
		p.rerr = err
	}
	p.mu.Unlock()
	p.once.Do(func() { close(p.done) })
}

func (p *stream) readCloseError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rerr == nil && p.werr != nil {
		return p.werr
	}
	return io.ErrClosedPipe
}

func (p *stream) writeCloseError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr == nil && p.rerr != nil {
		return p.rerr
	}
	return io.ErrClosedPipe
}

// readOnly is the session file's section, without Close: the session owns it.
type readOnly struct{ *io.SectionReader }

func (readOnly) Close() error { return nil }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeCRC(c uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c)
	return base64.StdEncoding.EncodeToString(b[:])
}

// parseContentRange returns the first byte of the chunk (-1: no bytes) and the
// total (-1: not known yet).
func parseContentRange(h string) (start, total int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
	}
	rng, tot, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
		}
	}
	if rng == "*" {
		return -1, total, nil
	}
	a, _, ok := strings.Cut(rng, "-")
	if start, err = strconv.ParseInt(a, 10, 64); !ok || err != nil {
		return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
	}
	return start, total, nil
}
