package gcs

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// uploads serves resumable uploads in front of fakestorage, whose own
// resumable path keeps the upload in memory and re-hashes all of it on every
// chunk (quadratic time: a 1 GiB upload in 8 MiB chunks hashes 66 GiB). Here
// chunks are appended to a temporary file and the object is stored from that
// file once the last chunk arrives, so the production chunk size works
// locally at full speed. Everything else goes to fakestorage untouched.
type uploads struct {
	fs   *fakestorage.Server
	next http.Handler
	dir  string

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	mu      sync.Mutex
	bucket  string
	attrs   objectResource
	ifGen   *int64 // ifGenerationMatch
	file    *os.File
	size    int64
	crc     uint32 // CRC32C of the bytes so far (valid while chunks arrive in order)
	crcGood bool
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
	s := &session{bucket: bucket, attrs: attrs, crcGood: true}
	if v := q.Get("ifGenerationMatch"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "invalid ifGenerationMatch")
			return
		}
		s.ifGen = &g
	}
	f, err := os.CreateTemp(u.dir, "upload-*")
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.file = f
	id := rand.Text()
	u.mu.Lock()
	u.sessions[id] = s
	u.mu.Unlock()
	w.Header().Set("Location", fmt.Sprintf("%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&upload_id=%s",
		baseURL(r), url.PathEscape(bucket), url.QueryEscape(attrs.Name), id))
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("{}"))
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (u *uploads) drop(id string) {
	u.mu.Lock()
	s := u.sessions[id]
	delete(u.sessions, id)
	u.mu.Unlock()
	if s != nil {
		s.file.Close()
		os.Remove(s.file.Name())
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
	start, total, err := parseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if start >= 0 {
		if start > s.size {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("chunk starts at %d, only %d bytes received", start, s.size))
			return
		}
		if start < s.size { // a chunk sent again after a lost answer
			s.crcGood = false
		}
		n, err := io.Copy(io.MultiWriter(io.NewOffsetWriter(s.file, start), crcWriter{s}), r.Body)
		s.size = start + n
		if err != nil {
			// The client resends from what it is told arrived.
			s.crcGood = false
			jsonError(w, http.StatusInternalServerError, "reading chunk: "+err.Error())
			return
		}
	}
	if total < 0 || s.size < total {
		w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", s.size-1))
		if r.Header.Get("X-Guploader-No-308") != "" {
			w.Header().Set("X-Http-Status-Code-Override", "308")
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusPermanentRedirect)
		}
		return
	}
	if s.size != total {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("declared %d bytes, received %d", total, s.size))
		return
	}
	u.finish(w, r, id, s)
}

func (u *uploads) finish(w http.ResponseWriter, r *http.Request, id string, s *session) {
	defer u.drop(id)
	if got := r.Header.Get("X-Goog-Hash"); s.crcGood && strings.HasPrefix(got, "crc32c=") {
		if want := encodeCRC(s.crc); strings.TrimPrefix(got, "crc32c=") != want {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("crc32c mismatch: declared %s, received bytes have %s", strings.TrimPrefix(got, "crc32c="), want))
			return
		}
	}
	if s.attrs.CRC32C != "" && s.crcGood && s.attrs.CRC32C != encodeCRC(s.crc) {
		jsonError(w, http.StatusBadRequest, "crc32c mismatch")
		return
	}
	if s.ifGen != nil {
		var current int64
		if o, err := u.fs.GetObjectStreaming(s.bucket, s.attrs.Name); err == nil {
			current = o.Generation
			o.Close()
		}
		if current != *s.ifGen {
			jsonError(w, http.StatusPreconditionFailed, "precondition failed: ifGenerationMatch")
			return
		}
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	ct := s.attrs.ContentType
	if ct == "" {
		ct = r.Header.Get("Content-Type")
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	err := u.fs.CreateObjectStreaming(fakestorage.StreamingObject{
		ObjectAttrs: fakestorage.ObjectAttrs{
			BucketName:         s.bucket,
			Name:               s.attrs.Name,
			ContentType:        ct,
			ContentEncoding:    s.attrs.ContentEncoding,
			ContentDisposition: s.attrs.ContentDisposition,
			ContentLanguage:    s.attrs.ContentLanguage,
			CacheControl:       s.attrs.CacheControl,
			Metadata:           s.attrs.Metadata,
		},
		Content: readOnly{s.file},
	})
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "store object: "+err.Error())
		return
	}
	// Answer with the object resource, as fakestorage renders it.
	get := httptest.NewRequest(http.MethodGet, "/storage/v1/b/"+url.PathEscape(s.bucket)+"/o/"+url.PathEscape(s.attrs.Name), nil)
	get.Host = r.Host
	rec := httptest.NewRecorder()
	u.next.ServeHTTP(rec, get)
	var stored objectResource
	json.Unmarshal(rec.Body.Bytes(), &stored)
	if s.attrs.MD5Hash != "" && stored.MD5Hash != s.attrs.MD5Hash {
		// Checked after storing: the object is removed again, but a
		// finalize notification may already have gone out.
		u.next.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, get.URL.Path, nil))
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("md5 mismatch: declared %s, received bytes have %s", s.attrs.MD5Hash, stored.MD5Hash))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// crcWriter keeps the session's running CRC32C.
type crcWriter struct{ s *session }

func (c crcWriter) Write(p []byte) (int, error) {
	if c.s.crcGood {
		c.s.crc = crc32.Update(c.s.crc, castagnoli, p)
	}
	return len(p), nil
}

// readOnly hides the file's Close: the session owns it.
type readOnly struct{ f *os.File }

func (r readOnly) Read(p []byte) (int, error)                { return r.f.Read(p) }
func (r readOnly) Seek(off int64, whence int) (int64, error) { return r.f.Seek(off, whence) }
func (readOnly) Close() error                                { return nil }

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
