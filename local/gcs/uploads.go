package gcs

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// uploads serves resumable uploads in front of fakestorage, whose own
// resumable path keeps the upload in memory and re-hashes all of it on every
// chunk (quadratic time: a 1 GiB upload in 8 MiB chunks hashes 66 GiB).
//
// Here a session streams its chunks, as they come, into one
// CreateObjectStreaming call running beside it (the store): the backend
// buffers, hashes and stores the object while the upload goes on, as it does
// with a single-request upload's body. The bytes go through a feed (feed.go),
// which answers each chunk once it has it and holds back the end of the
// content until the declared checksums are checked: a mismatch finalizes
// nothing.
//
// The backend holds its lock while it stores: nobody else reads or writes
// meanwhile. Every other user of the backend passes through this front and
// counts as waiting (see waiting); a session whose client has sent nothing
// for streamIdle while someone waits (a cancelled client sends no DELETE)
// cuts its store off, which releases the lock, and finishes by storing the
// object from memory when the last chunk arrives. A slow client that keeps
// nobody waiting keeps its store. Everything else goes to fakestorage
// untouched, except that requests that change anything pass one at a time
// through gate (see store).
type uploads struct {
	fs   *fakestorage.Server
	next http.Handler

	// gate makes a session's generation check and the start of its store
	// one step for every other writer: held from the check until the
	// backend has taken its own lock for the store, and by fakestorage's
	// writes around their request.
	gate sync.Mutex

	idleAfter time.Duration // streamIdle, as Start found it
	ahead     int64         // maxAhead, as Start found it

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool

	waiters  atomic.Int64 // users of the backend that may wait for its lock
	restarts atomic.Int64 // sessions that stored again from memory, for tests
}

// waiting registers a user of the backend, who may have to wait for a
// session's store to release the backend's lock: stores idle for
// streamIdle are cut off now, and the others once they have idled that
// long. The returned func ends the registration (calls after the first do
// nothing).
func (u *uploads) waiting() func() {
	u.waiters.Add(1)
	u.mu.Lock()
	ss := make([]*session, 0, len(u.sessions))
	for _, s := range u.sessions {
		ss = append(ss, s)
	}
	u.mu.Unlock()
	for _, s := range ss {
		s.feed.cutIdle(u.idleAfter)
	}
	return sync.OnceFunc(func() { u.waiters.Add(-1) })
}

// idle is the session's timer, set to streamIdle whenever a request ends.
func (u *uploads) idle(s *session) {
	if u.waiters.Load() > 0 && s.feed.cutIdle(u.idleAfter) {
		s.idle.Reset(u.idleAfter) // the store waits for the lock: look again
	}
}

// streamIdle is how long a session's store may keep others waiting while
// its client sends nothing.
var streamIdle = time.Second

var (
	errIdle         = errors.New("upload session idle")
	errAbandoned    = errors.New("upload session abandoned")
	errDone         = errors.New("upload session finished")
	errPrecondition = errors.New("precondition failed: ifGenerationMatch")
)

type session struct {
	mu     sync.Mutex // one request at a time
	bucket string
	attrs  objectResource
	ifGen  *int64 // ifGenerationMatch
	feed   *feed
	ended  bool

	started bool          // the store was started (by the first chunk)
	done    chan struct{} // closed when the store returns; then err is set
	err     error
	idle    *time.Timer
}

func (u *uploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucket, ok := uploadBucket(r.URL.Path)
	switch {
	case !ok || q.Get("uploadType") != "resumable" && !q.Has("upload_id"):
		u.forward(w, r)
	case r.Method == http.MethodPost && !q.Has("upload_id"):
		u.begin(w, r, bucket)
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		u.chunk(w, r, q.Get("upload_id"))
	case r.Method == http.MethodDelete:
		u.drop(q.Get("upload_id"))
		w.WriteHeader(499)
	default:
		u.forward(w, r)
	}
}

// forward passes a request to fakestorage; one that may write passes the
// gate.
func (u *uploads) forward(w http.ResponseWriter, r *http.Request) {
	defer u.waiting()()
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		u.gate.Lock()
		defer u.gate.Unlock()
	}
	u.next.ServeHTTP(w, r)
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
	done := u.waiting()
	defer done()
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
	if attrs.MD5Hash != "" {
		if b, err := base64.StdEncoding.DecodeString(attrs.MD5Hash); err != nil || len(b) != 16 {
			jsonError(w, http.StatusBadRequest, "invalid md5Hash "+strconv.Quote(attrs.MD5Hash))
			return
		}
	}
	s := &session{bucket: bucket, attrs: attrs, done: make(chan struct{})}
	if v := q.Get("ifGenerationMatch"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "invalid ifGenerationMatch")
			return
		}
		s.ifGen = &g
		// Fails early; the check that counts is the store's (see store).
		if !u.generationMatches(s) {
			jsonError(w, http.StatusPreconditionFailed, errPrecondition.Error())
			return
		}
	}
	id := rand.Text()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		jsonError(w, http.StatusServiceUnavailable, "server stopping")
		return
	}
	s.feed = newFeed(attrs.MD5Hash != "", u.ahead)
	u.sessions[id] = s
	s.idle = time.AfterFunc(u.idleAfter, func() { u.idle(s) })
	u.mu.Unlock()
	done()
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

// startStore starts the live store, which reads the session's feed.
func (u *uploads) startStore(s *session) {
	s.started = true
	s.feed.startStore()
	go func() {
		s.err = u.store(s, s.feed)
		s.feed.storeDone()
		close(s.done)
	}()
}

// store creates the session's object from content, which the backend reads
// to its end (an error instead of the end stores nothing). The generation
// precondition is checked first, holding the gate until the backend has
// taken its lock (its first read of content): no other write comes between
// the check and the store.
func (u *uploads) store(s *session, content io.Reader) error {
	done := u.waiting()
	defer done()
	u.gate.Lock()
	unlock := sync.OnceFunc(func() {
		u.gate.Unlock()
		done()
	})
	defer unlock()
	if !u.generationMatches(s) {
		return errPrecondition
	}
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
		Content: storeContent{content, unlock},
	})
}

// storeContent is the store's content: not seekable; its first read opens
// the gate.
type storeContent struct {
	r      io.Reader
	onRead func()
}

func (c storeContent) Read(b []byte) (int, error) {
	c.onRead()
	return c.r.Read(b)
}

func (storeContent) Seek(int64, int) (int64, error) {
	return 0, errors.New("upload content is not seekable")
}

func (storeContent) Close() error { return nil }

// drop ends a session and stores nothing. It does not wait for s.mu: a
// request waiting in the feed returns at once.
func (u *uploads) drop(id string) {
	u.mu.Lock()
	s := u.sessions[id]
	delete(u.sessions, id)
	u.mu.Unlock()
	if s != nil {
		s.idle.Stop()
		s.feed.abort(errAbandoned)
	}
}

// closeAll drops every session (the server is stopping), refuses new ones,
// and waits for their stores to return.
func (u *uploads) closeAll() {
	u.mu.Lock()
	u.closed = true
	ss := u.sessions
	u.sessions = map[string]*session{}
	u.mu.Unlock()
	for _, s := range ss {
		s.idle.Stop()
		s.feed.abort(errAbandoned)
	}
	for _, s := range ss {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if started {
			<-s.done
		}
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
	s.idle.Stop() // a store cut off meanwhile stays cut off
	s.feed.request(true)
	defer func() {
		s.feed.request(false)
		if !s.ended {
			s.idle.Reset(u.idleAfter)
		}
	}()
	start, total, err := parseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if start >= 0 {
		size := s.feed.size()
		if start > size {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("chunk starts at %d, only %d bytes received", start, size))
			return
		}
		// A chunk sent again after a lost answer: its first bytes are
		// here already.
		if skip := size - start; skip > 0 {
			if _, err := io.CopyN(io.Discard, r.Body, skip); err != nil && !errors.Is(err, io.EOF) {
				jsonError(w, http.StatusInternalServerError, "reading chunk: "+err.Error())
				return
			}
		}
		if !s.started {
			u.startStore(s)
		}
		s.feed.expect(r.ContentLength)
		if _, err := s.feed.add(r.Body); err != nil {
			// What arrived is kept: a client that is still there sends
			// the chunk again from where it is told the upload stands.
			if errors.Is(err, errAbandoned) {
				jsonError(w, http.StatusNotFound, "no such upload session")
			} else {
				jsonError(w, http.StatusInternalServerError, err.Error())
			}
			return
		}
	}
	size := s.feed.size()
	if total < 0 || size < total {
		if size > 0 {
			w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", size-1))
		}
		if r.Header.Get("X-Guploader-No-308") != "" {
			w.Header().Set("X-Http-Status-Code-Override", "308")
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusPermanentRedirect)
		}
		return
	}
	if size != total {
		u.end(id, s, errAbandoned)
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("declared %d bytes, received %d", total, size))
		return
	}
	u.finish(w, r, id, s)
}

// end removes a session (with s.mu held) and drops its memory. A store
// still reading gets err in place of the rest of the content.
func (u *uploads) end(id string, s *session, err error) {
	s.ended = true
	s.idle.Stop()
	u.mu.Lock()
	delete(u.sessions, id)
	u.mu.Unlock()
	s.feed.abort(err)
}

func (u *uploads) finish(w http.ResponseWriter, r *http.Request, id string, s *session) {
	crc, sum := s.feed.sums()
	if mismatch, code := checkDeclared(s.attrs, r.Header.Get("X-Goog-Hash"), crc, sum); mismatch != "" {
		u.end(id, s, errors.New(mismatch)) // nothing is finalized
		if s.started {
			<-s.done
		}
		jsonError(w, code, mismatch)
		return
	}
	live := s.feed.finish() // the end of the content: a live store finalizes the object
	if s.started {
		<-s.done
	}
	if !live || s.err != nil {
		// The store was cut off, or failed, or never started: store
		// everything again from memory.
		if s.started {
			u.restarts.Add(1)
			slog.Info("local gcs: storing an upload again from memory", "bucket", s.bucket, "object", s.attrs.Name,
				"bytes", s.feed.size(), "cause", s.err)
		}
		content, err := s.feed.content()
		if err == nil {
			err = u.store(s, content)
		}
		if err != nil {
			u.end(id, s, err)
			if errors.Is(err, errPrecondition) {
				jsonError(w, http.StatusPreconditionFailed, err.Error())
			} else {
				jsonError(w, http.StatusInternalServerError, "store object: "+err.Error())
			}
			return
		}
	}
	u.end(id, s, errDone)
	// Answer with the object resource, as fakestorage renders it.
	defer u.waiting()()
	get := httptest.NewRequest(http.MethodGet, "/storage/v1/b/"+url.PathEscape(s.bucket)+"/o/"+url.PathEscape(s.attrs.Name), nil)
	get.Host = r.Host
	rec := httptest.NewRecorder()
	u.next.ServeHTTP(rec, get)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}
