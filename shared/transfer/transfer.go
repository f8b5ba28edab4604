// Package transfer puts a lesson's video into the raw bucket (DESIGN.md
// section 3: raw/lessons/{lessonId}/v{version}/source.{ext}): streamed from a
// media URL, or copied server-side from a master file in the ingest prefix.
//
// A download never touches local disk and its memory does not grow with the
// file: the body goes through MD5 and CRC32C hashers straight into a resumable
// upload, which buffers one chunk. Finalizing the object is what starts the
// next stage (object finalize → starter), so an object is finalized only when
// every check passed: any failure cancels the upload before it completes.
//
// Errors are failure.Permanent (the source is wrong: 404, too big, a size or
// checksum the source contradicts) or failure.Retryable (a 5xx, a dropped
// connection, storage trouble).
package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/coursekb/pipeline/shared/failure"
)

// DefaultChunkSize is the resumable upload chunk: the memory a download holds
// and the amount resent when a chunk fails.
const DefaultChunkSize = 8 << 20

// Options configure a Copier.
type Options struct {
	// MaxBytes refuses larger media; 0 means no limit.
	MaxBytes int64
	// ChunkSize is the resumable upload chunk (default DefaultChunkSize). A
	// negative value uploads in a single request with no buffer and no
	// resume: only for local servers whose resumable uploads are slow.
	ChunkSize int
	// ReadIdleTimeout fails a download whose body sends nothing for that
	// long (default DefaultReadIdleTimeout): a stalled host must not hold a
	// function until its timeout. Negative: no limit.
	ReadIdleTimeout time.Duration
}

// DefaultReadIdleTimeout is how long a media body may send nothing.
const DefaultReadIdleTimeout = 2 * time.Minute

// NewMediaClient returns the HTTP client downloads use: no overall timeout
// (a multi-gigabyte video takes as long as it takes; the lease and the
// function's timeout bound it), but bounded connecting, TLS handshake and
// wait for the response headers, so a host that never answers fails the
// attempt instead of holding it. The body's stalls are bounded by
// Options.ReadIdleTimeout.
func NewMediaClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 15 * time.Second
	t.ResponseHeaderTimeout = 2 * time.Minute
	t.ExpectContinueTimeout = time.Second
	return &http.Client{Transport: t}
}

// Source is a media URL with what the media source promises about it.
type Source struct {
	URL  string
	Size int64  // expected bytes; 0 = unknown
	MD5  string // expected hex MD5; "" = unknown
}

// Dest is the object to create.
type Dest struct {
	Bucket, Object string
	// ContentType wins over the response's and the extension's.
	ContentType string
	// Metadata is set on the object (lessonId, version); an existing object
	// counts as this download's result only when it carries all of it.
	Metadata map[string]string
}

// Result describes the object in the bucket.
type Result struct {
	Size        int64
	MD5         string // hex
	CRC32C      uint32
	Generation  int64
	ContentType string
	// Reused: the object was already there (an earlier attempt finished);
	// nothing was downloaded or written.
	Reused bool
}

// Copier moves media into Cloud Storage. It is safe for concurrent use.
type Copier struct {
	st   *storage.Client
	hc   *http.Client
	opts Options
}

// New returns a Copier; hc nil means http.DefaultClient.
func New(st *storage.Client, hc *http.Client, opts Options) *Copier {
	if hc == nil {
		hc = http.DefaultClient
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ReadIdleTimeout == 0 {
		opts.ReadIdleTimeout = DefaultReadIdleTimeout
	}
	return &Copier{st: st, hc: hc, opts: opts}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrLinkRefused marks a media link the host refused (401, 403, 410): what an
// expired signed URL gets. It is permanent for that link, not for the media.
var ErrLinkRefused = errors.New("media host refused the link")

// FromURL streams src into dst. When dst already holds a finished copy (same
// metadata and, when src says, same size and MD5) it returns that with Reused
// set and downloads nothing.
func (c *Copier) FromURL(ctx context.Context, src Source, dst Dest) (Result, error) {
	where := fmt.Sprintf("download %s to gs://%s/%s", Redact(src.URL), dst.Bucket, dst.Object)
	res, err := c.fromURL(ctx, src, dst)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

func (c *Copier) fromURL(ctx context.Context, src Source, dst Dest) (Result, error) {
	if err := checkInputs(src, dst); err != nil {
		return Result{}, err
	}
	if c.opts.MaxBytes > 0 && src.Size > c.opts.MaxBytes {
		return Result{}, failure.Permanentf("media source says %d bytes, over the %d-byte limit", src.Size, c.opts.MaxBytes)
	}
	obj := c.st.Bucket(dst.Bucket).Object(dst.Object)
	cond, res, reused, err := c.existing(ctx, obj, dst, src.Size, src.MD5)
	if err != nil || reused {
		return res, err
	}

	// The request has its own cancellation, so a body that stalls can be
	// cut off without ending the caller's context.
	rctx, cancelReq := context.WithCancelCause(ctx)
	defer cancelReq(nil)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return Result{}, failure.Permanentf("bad media URL: %v", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Result{}, &failure.Retryable{Err: fmt.Errorf("GET: %w", redactErr(err, src.URL))}
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return Result{}, err
	}
	declared := resp.ContentLength // -1: unknown
	if c.opts.MaxBytes > 0 && declared > c.opts.MaxBytes {
		return Result{}, failure.Permanentf("server sends %d bytes, over the %d-byte limit", declared, c.opts.MaxBytes)
	}
	if src.Size > 0 && declared >= 0 && declared != src.Size {
		return Result{}, failure.Permanentf("media source says %d bytes, server sends %d", src.Size, declared)
	}

	contentType := dst.ContentType
	if contentType == "" {
		contentType = mediaType(resp.Header.Get("Content-Type"))
	}
	if contentType == "" {
		contentType = ContentTypeOf(Ext(src.URL, ""))
	}

	// Every early return cancels wctx, which aborts the upload: the object is
	// finalized only by the Close below, after every check passed.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.If(cond).NewWriter(wctx)
	c.configure(w, contentType, dst.Metadata)
	if src.MD5 != "" {
		// Storage checks it too, and refuses to finalize on a mismatch.
		w.MD5, _ = hex.DecodeString(src.MD5)
	}
	abort := func(err error) (Result, error) {
		cancel()
		w.Close() // returns the cancellation; the upload is abandoned
		return Result{}, err
	}

	// No MD5 is computed here: when the media source promises one, Cloud
	// Storage checks the declared hash (w.MD5) and refuses to finalize on a
	// mismatch; when it promises none, there is nothing to compare and the
	// stored object's MD5 is recorded. Hashing every byte a second time in
	// the function would double its CPU for no extra assurance. CRC32C is
	// cheap (SSE4.2) and checks the leg from here to Cloud Storage.
	crch := crc32.New(castagnoli)
	body := &countingReader{r: resp.Body, limit: c.opts.MaxBytes}
	if idle := c.opts.ReadIdleTimeout; idle > 0 {
		watchdog := time.AfterFunc(idle, func() { cancelReq(errStalled) })
		defer watchdog.Stop()
		body.onRead = func() { watchdog.Reset(idle) }
	}
	_, err = io.CopyBuffer(io.MultiWriter(crch, w), body, make([]byte, 256<<10))
	n := body.n
	switch {
	case errors.Is(context.Cause(rctx), errStalled):
		return abort(failure.Retryablef("media host sent nothing for %s after %d bytes", c.opts.ReadIdleTimeout, n))
	case body.over:
		return abort(failure.Permanentf("body passed the %d-byte limit; stopped after %d bytes", c.opts.MaxBytes, n))
	case body.err != nil && declared >= 0:
		return abort(failure.Retryablef("body cut short after %d of %d bytes: %v", n, declared, body.err))
	case body.err != nil:
		return abort(failure.Retryablef("reading body after %d bytes: %v", n, body.err))
	case err != nil:
		return abort(storageError("upload", err))
	case declared >= 0 && n != declared:
		return abort(failure.Retryablef("body cut short after %d of %d bytes", n, declared))
	case src.Size > 0 && n != src.Size:
		return abort(failure.Permanentf("media source says %d bytes, server sent %d", src.Size, n))
	}
	if err := w.Close(); err != nil {
		var ge *googleapi.Error
		if src.MD5 != "" && errors.As(err, &ge) && ge.Code == http.StatusBadRequest {
			return Result{}, failure.Permanentf("media source says MD5 %s, but Cloud Storage found the downloaded bytes differ and refused them: %w", strings.ToLower(src.MD5), err)
		}
		return Result{}, storageError("finish upload", err)
	}
	return c.verify(ctx, obj, w.Attrs(), n, src.MD5, crch.Sum32())
}

// FromObject copies a master file (srcBucket/srcObject, in the ingest prefix)
// to dst, server-side, with the same checks as FromURL: expect's size and MD5
// are checked against the source object before anything is copied.
func (c *Copier) FromObject(ctx context.Context, srcBucket, srcObject string, dst Dest, expect Source) (Result, error) {
	where := fmt.Sprintf("copy gs://%s/%s to gs://%s/%s", srcBucket, srcObject, dst.Bucket, dst.Object)
	res, err := c.fromObject(ctx, srcBucket, srcObject, dst, expect)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

func (c *Copier) fromObject(ctx context.Context, srcBucket, srcObject string, dst Dest, expect Source) (Result, error) {
	if err := checkInputs(Source{URL: "gs://x", Size: expect.Size, MD5: expect.MD5}, dst); err != nil {
		return Result{}, err
	}
	srcObj := c.st.Bucket(srcBucket).Object(srcObject)
	sa, err := srcObj.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return Result{}, failure.Permanentf("master file not found")
	}
	if err != nil {
		return Result{}, storageError("read master file", err)
	}
	srcMD5 := hex.EncodeToString(sa.MD5)
	switch {
	case c.opts.MaxBytes > 0 && sa.Size > c.opts.MaxBytes:
		return Result{}, failure.Permanentf("master file has %d bytes, over the %d-byte limit", sa.Size, c.opts.MaxBytes)
	case expect.Size > 0 && sa.Size != expect.Size:
		return Result{}, failure.Permanentf("media source says %d bytes, master file has %d", expect.Size, sa.Size)
	case expect.MD5 != "" && len(sa.MD5) > 0 && !strings.EqualFold(expect.MD5, srcMD5):
		return Result{}, failure.Permanentf("media source says MD5 %s, master file has %s", strings.ToLower(expect.MD5), srcMD5)
	}
	if len(sa.MD5) == 0 {
		srcMD5 = "" // composite objects have no MD5
	}

	obj := c.st.Bucket(dst.Bucket).Object(dst.Object)
	cond, res, reused, err := c.existing(ctx, obj, dst, sa.Size, srcMD5)
	if err != nil || reused {
		return res, err
	}
	cp := obj.If(cond).CopierFrom(srcObj.Generation(sa.Generation))
	cp.ContentType = dst.ContentType
	if cp.ContentType == "" {
		cp.ContentType = sa.ContentType
	}
	if cp.ContentType == "" || cp.ContentType == "application/octet-stream" {
		cp.ContentType = ContentTypeOf(Ext(srcObject, ""))
	}
	cp.Metadata = dst.Metadata
	attrs, err := cp.Run(ctx)
	if err != nil {
		return Result{}, storageError("copy", err)
	}
	return c.verify(ctx, obj, attrs, sa.Size, srcMD5, sa.CRC32C)
}

// existing looks at what dst holds now. A finished copy of the same media is
// returned as reused; otherwise cond is the precondition for writing: the
// object must not exist, or must still be the stale generation seen here
// (overwritten on purpose), so two concurrent attempts cannot both win.
func (c *Copier) existing(ctx context.Context, obj *storage.ObjectHandle, dst Dest, size int64, md5hex string) (storage.Conditions, Result, bool, error) {
	a, err := obj.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return storage.Conditions{DoesNotExist: true}, Result{}, false, nil
	}
	if err != nil {
		return storage.Conditions{}, Result{}, false, storageError("look for an earlier copy", err)
	}
	same := true
	for k, v := range dst.Metadata {
		if a.Metadata[k] != v {
			same = false
		}
	}
	if size > 0 && a.Size != size {
		same = false
	}
	if md5hex != "" && !strings.EqualFold(hex.EncodeToString(a.MD5), md5hex) {
		same = false
	}
	if !same {
		return storage.Conditions{GenerationMatch: a.Generation}, Result{}, false, nil
	}
	return storage.Conditions{}, resultOf(a, true), true, nil
}

// verify compares what storage reports with what was sent. A mismatch means
// the bytes were damaged on the way: the object is deleted (only that
// generation) and the error is retryable.
func (c *Copier) verify(ctx context.Context, obj *storage.ObjectHandle, a *storage.ObjectAttrs, size int64, md5hex string, crc uint32) (Result, error) {
	if a == nil {
		return Result{}, failure.Retryablef("storage returned no object attributes")
	}
	var problem string
	switch {
	case a.Size != size:
		problem = fmt.Sprintf("storage holds %d bytes, %d were sent", a.Size, size)
	case len(a.MD5) > 0 && md5hex != "" && hex.EncodeToString(a.MD5) != strings.ToLower(md5hex):
		// A store that ignored the declared hash: the bytes are not the
		// ones promised.
		problem = fmt.Sprintf("media source says MD5 %s, stored bytes have %x", strings.ToLower(md5hex), a.MD5)
	case a.CRC32C != crc:
		problem = fmt.Sprintf("storage reports CRC32C %08x, sent bytes have %08x", a.CRC32C, crc)
	}
	if problem != "" {
		if err := obj.Generation(a.Generation).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			problem += fmt.Sprintf(" (and deleting the damaged object failed: %v)", err)
		}
		return Result{}, failure.Retryablef("%s", problem)
	}
	r := resultOf(a, false)
	if len(a.MD5) == 0 {
		r.MD5 = strings.ToLower(md5hex)
	}
	return r, nil
}

func (c *Copier) configure(w *storage.Writer, contentType string, md map[string]string) {
	w.ContentType = contentType
	w.Metadata = md
	if c.opts.ChunkSize < 0 {
		w.ChunkSize = 0
	} else {
		w.ChunkSize = c.opts.ChunkSize
	}
}

func resultOf(a *storage.ObjectAttrs, reused bool) Result {
	return Result{
		Size:        a.Size,
		MD5:         hex.EncodeToString(a.MD5),
		CRC32C:      a.CRC32C,
		Generation:  a.Generation,
		ContentType: a.ContentType,
		Reused:      reused,
	}
}

func checkInputs(src Source, dst Dest) error {
	switch {
	case src.URL == "":
		return failure.Permanentf("no media URL")
	case dst.Bucket == "" || dst.Object == "":
		return failure.Permanentf("no destination bucket or object")
	case src.Size < 0:
		return failure.Permanentf("negative expected size %d", src.Size)
	case src.MD5 != "" && !isMD5Hex(src.MD5):
		return failure.Permanentf("expected MD5 %q is not 32 hex digits", src.MD5)
	}
	return nil
}

func isMD5Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == md5.Size
}

// statusError maps a non-2xx answer: the URL is wrong or gone (permanent) or
// the host is in trouble (retryable).
func statusError(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	msg := fmt.Sprintf("media host answered %s", resp.Status)
	if s := strings.TrimSpace(string(bytes.ToValidUTF8(snippet, nil))); s != "" {
		msg += ": " + s
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		return failure.Retryablef("%s", msg)
	case resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusGone:
		// An expired or revoked signed link answers so: the caller may ask
		// the media source for a new link once.
		return &failure.Permanent{Err: fmt.Errorf("%w: %s", ErrLinkRefused, msg)}
	default: // 404, other 4xx, unfollowed 3xx
		return failure.Permanentf("%s", msg)
	}
}

// storageError classifies a Cloud Storage failure. A failed precondition means
// another attempt wrote the object meanwhile: retrying finds it and reuses it.
func storageError(what string, err error) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch {
		case ge.Code == http.StatusPreconditionFailed:
			return failure.Retryablef("%s: object written by another attempt meanwhile: %w", what, err)
		case ge.Code == http.StatusNotFound:
			return failure.Permanentf("%s: bucket not found: %w", what, err)
		case ge.Code == http.StatusForbidden || ge.Code == http.StatusUnauthorized:
			return failure.Permanentf("%s: access denied: %w", what, err)
		}
	}
	return failure.Retryablef("%s: %w", what, err)
}

// countingReader counts bytes, stops past limit, and remembers its own error
// so a body failure can be told apart from an upload failure.
type countingReader struct {
	r      io.Reader
	n      int64
	limit  int64 // 0: none
	over   bool
	err    error
	onRead func() // called after every read that returned bytes
}

// errStalled is the cause a stalled body's request is cancelled with.
var errStalled = errors.New("media body stalled")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 && int64(len(p)) > c.limit-c.n+1 {
		p = p[:c.limit-c.n+1]
	}
	n, err := c.r.Read(p)
	if n > 0 && c.onRead != nil {
		c.onRead()
	}
	c.n += int64(n)
	if c.limit > 0 && c.n > c.limit {
		c.over = true
		return n, errors.New("size limit passed")
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// Redact drops a URL's query and fragment: signed URLs carry credentials,
// which must not reach logs or lesson documents.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment, u.User = "", nil
	return u.String()
}

func redactErr(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err
}

// mediaType returns the response's content type when it says something.
func mediaType(ct string) string {
	ct = strings.TrimSpace(strings.SplitN(ct, ";", 2)[0])
	switch strings.ToLower(ct) {
	case "", "application/octet-stream", "binary/octet-stream", "application/binary", "text/plain":
		return ""
	}
	return ct
}

var extTypes = []struct{ ext, typ string }{
	{"mp4", "video/mp4"},
	{"mov", "video/quicktime"},
	{"webm", "video/webm"},
	{"mkv", "video/x-matroska"},
	{"m4v", "video/x-m4v"},
	{"avi", "video/x-msvideo"},
	{"mpeg", "video/mpeg"},
	{"mpg", "video/mpeg"},
	{"m4a", "audio/mp4"},
	{"mp3", "audio/mpeg"},
	{"wav", "audio/wav"},
	{"flac", "audio/flac"},
	{"ogg", "audio/ogg"},
}

// Ext returns the media's file extension for an object name ("mp4", "mov",
// "webm", ...): the URL's (or object name's) when it is a known media type,
// else the content type's, else "mp4". The result is always one of the known
// lowercase extensions, so it is safe in an object name.
func Ext(rawURL, contentType string) string {
	p := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		p = u.Path
	}
	e := strings.ToLower(strings.TrimPrefix(path.Ext(p), "."))
	for _, t := range extTypes {
		if t.ext == e {
			return e
		}
	}
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	for _, t := range extTypes {
		if t.typ == ct {
			return t.ext
		}
	}
	switch ct {
	case "audio/x-wav", "audio/wave":
		return "wav"
	case "audio/mp4a-latm", "audio/x-m4a":
		return "m4a"
	}
	return "mp4"
}

// ContentTypeOf returns the content type for an extension Ext returns.
func ContentTypeOf(ext string) string {
	for _, t := range extTypes {
		if t.ext == ext {
			return t.typ
		}
	}
	return "application/octet-stream"
}
