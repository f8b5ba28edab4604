// Package transfer puts a lesson's video into the raw bucket (DESIGN.md
// section 3: raw/lessons/{lessonId}/v{version}/source.{ext}): streamed from a
// media URL, or copied server-side from a master file in the ingest prefix.
//
// A download never touches local disk and its memory does not grow with the
// file: the body streams into a resumable upload, which buffers one chunk,
// through a read-ahead of at most one more chunk that keeps the download
// going while the upload sends the previous chunk (readahead.go). Cloud
// Storage checks the bytes against the CRC32C the storage client computes
// and, when the media source promises one, the MD5 (see fromURL). Finalizing
// the object is what starts the next stage (object finalize → starter), so an
// object is finalized only when every check passed: any failure cancels the
// upload before it completes.
//
// Errors are failure.Permanent (the source is wrong: 404, too big, a size or
// checksum the source contradicts) or failure.Retryable (a 5xx, a dropped
// connection, storage trouble).
package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/cenkalti/backoff/v5"

	"github.com/coursekb/pipeline/shared/failure"
)

// DefaultChunkSize is the resumable upload chunk: the storage client's own
// default (storage.Writer.ChunkSize), and what downloads use in production.
// A download holds two chunks (the Writer's buffer and the read-ahead), and a
// failed request resends one. Smaller chunks mean more requests, each a
// round trip the upload waits for (a 1 GiB video: 64 at 16 MiB, 128 at 8
// MiB); larger ones, more memory per download. Measured RSS: see
// shared/config's UPLOAD_CHUNK_BYTES.
const DefaultChunkSize = 16 << 20

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
	// function until its timeout. Only time waiting for the body counts,
	// not time the read-ahead waits for a slow upload. Negative: no limit.
	ReadIdleTimeout time.Duration
	// RequestTries bounds the tries of the media request when the host
	// answers 429 or 5xx or the connection fails before any byte of the
	// body (default DefaultRequestTries; 1: no retry). A short refusal is
	// waited out here, within the attempt, instead of costing the stage
	// one of its few attempts.
	RequestTries int
	// RetryBaseDelay is the first wait between tries (default 500 ms),
	// doubling up to 8 s; a Retry-After the host sends, up to 30 s, wins.
	RetryBaseDelay time.Duration
}

// DefaultRequestTries is how often the media request is tried in one
// download attempt.
const DefaultRequestTries = 4

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
	if opts.RequestTries <= 0 {
		opts.RequestTries = DefaultRequestTries
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = 500 * time.Millisecond
	}
	return &Copier{st: st, hc: hc, opts: opts}
}

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
	resp, err := c.get(rctx, src.URL)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
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

	// No hash is computed here for a resumable upload. MD5: when the media
	// source promises one, Cloud Storage checks the declared hash (w.MD5)
	// and refuses to finalize on a mismatch; when it promises none there is
	// nothing to compare, and the stored object's MD5 is recorded. CRC32C:
	// the Writer computes it over every byte it sends and declares it with
	// the request that finalizes the object (X-Goog-Hash on a resumable
	// upload's last request, crc32c in a single-chunk upload's resource),
	// and Cloud Storage refuses to finalize bytes that differ (see
	// uploadError). Only a single-request upload, whose Writer could compare
	// the CRC32C only after the object is finalized, has it computed here
	// (ra.hash) and compared by verify, which deletes a damaged object.
	seg, segs := readAheadSegments(c.opts.ChunkSize)
	ra := &readAhead{
		body: resp.Body, limit: c.opts.MaxBytes, idle: c.opts.ReadIdleTimeout,
		seg: seg, segs: segs, hash: c.opts.ChunkSize < 0,
		stopRead: cancelReq, stopWrite: cancel,
	}
	ra.run(w)
	n := ra.n
	switch {
	case ra.readErr != nil && errors.Is(context.Cause(rctx), errStalled):
		return abort(failure.Retryablef("media host sent nothing for %s after %d bytes", c.opts.ReadIdleTimeout, n))
	case ra.readErr != nil && ra.over:
		return abort(failure.Permanentf("body passed the %d-byte limit; stopped after %d bytes", c.opts.MaxBytes, n))
	case ra.readErr != nil && declared >= 0:
		return abort(failure.Retryablef("body cut short after %d of %d bytes: %v", n, declared, ra.readErr))
	case ra.readErr != nil:
		return abort(failure.Retryablef("reading body after %d bytes: %v", n, ra.readErr))
	case ra.writeErr != nil:
		return abort(storageError("upload", ra.writeErr))
	case declared >= 0 && n != declared:
		return abort(failure.Retryablef("body cut short after %d of %d bytes", n, declared))
	case src.Size > 0 && n != src.Size:
		return abort(failure.Permanentf("media source says %d bytes, server sent %d", src.Size, n))
	}
	if err := w.Close(); err != nil {
		return Result{}, uploadError(err, src.MD5)
	}
	if ra.hash {
		return c.verify(ctx, obj, w.Attrs(), n, src.MD5, &ra.crc)
	}
	return c.verify(ctx, obj, w.Attrs(), n, src.MD5, nil)
}

func (c *Copier) configure(w *storage.Writer, contentType string, md map[string]string) {
	w.ContentType = contentType
	w.Metadata = md
	if c.opts.ChunkSize < 0 {
		w.ChunkSize = 0
		// The Writer would compare its CRC32C with the stored object's only
		// after finalizing it; fromURL computes it instead, and verify
		// deletes a damaged object.
		w.DisableAutoChecksum = true
	} else {
		w.ChunkSize = c.opts.ChunkSize
	}
}

// get sends the media request, trying again (RequestTries in all) while the
// host refuses for now: 429, 5xx, or a connection that failed before any
// answer. A refusal for good (404, 403, ...) returns at once.
func (c *Copier) get(ctx context.Context, rawURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, failure.Permanentf("bad media URL: %v", err)
	}
	op := func() (*http.Response, error) {
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, &failure.Retryable{Err: fmt.Errorf("GET: %w", redactErr(err, rawURL))}
		}
		if err := statusError(resp); err != nil {
			wait, hinted := parseRetryAfter(resp.Header.Get("Retry-After"))
			resp.Body.Close()
			switch {
			case failure.IsPermanent(err):
				return nil, backoff.Permanent(err)
			case hinted && wait > maxRetryAfter:
				// Longer than an attempt should wait: the stage's own
				// backoff takes it from here.
				return nil, backoff.Permanent(err)
			case hinted:
				return nil, backoff.RetryAfter(int(max(time.Second, wait) / time.Second))
			}
			return nil, err
		}
		return resp, nil
	}
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     c.opts.RetryBaseDelay,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         8 * time.Second,
	}
	var last error
	resp, err := backoff.Retry(ctx, func() (*http.Response, error) {
		resp, err := op()
		if err != nil {
			last = err
		}
		return resp, err
	}, backoff.WithBackOff(bo), backoff.WithMaxTries(uint(c.opts.RequestTries)), backoff.WithMaxElapsedTime(0))
	if err == nil {
		return resp, nil
	}
	var ra *backoff.RetryAfterError
	if errors.As(err, &ra) && last != nil {
		// The last try was a refusal with Retry-After: report the refusal.
		err = last
	}
	var pe *backoff.PermanentError
	if errors.As(err, &pe) {
		err = pe.Unwrap()
	}
	var r *failure.Retryable
	if !failure.IsPermanent(err) && !errors.As(err, &r) {
		err = &failure.Retryable{Err: err} // the context ended meanwhile
	}
	return nil, err
}

// maxRetryAfter is the longest Retry-After a download attempt waits out.
const maxRetryAfter = 30 * time.Second

// parseRetryAfter reads a Retry-After header given in seconds.
func parseRetryAfter(v string) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
