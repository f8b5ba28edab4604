package transfer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/coursekb/pipeline/local/mediahost"
	"github.com/coursekb/pipeline/shared/failure"
)

// front returns a storage client whose requests pass through a proxy to the
// local Cloud Storage; every upload request (initial, chunk, single) meets
// tamper first, which may answer it itself (returning true) or change it.
func (e env) front(t *testing.T, tamper func(w http.ResponseWriter, r *http.Request) bool) *storage.Client {
	t.Helper()
	target, err := url.Parse(e.gcs.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target) // keeps Host: session URLs point here
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/upload/") && tamper(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	st, err := storage.NewClient(context.Background(), option.WithEndpoint(srv.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q}}`, code, msg)
}

// isChunk tells a resumable upload's data request from the one that starts
// the session; final: it declares the total, which finalizes the object.
func isChunk(r *http.Request) (chunk, final bool) {
	if !r.URL.Query().Has("upload_id") {
		return false, false
	}
	rng := r.Header.Get("Content-Range")
	return true, !strings.HasSuffix(rng, "/*")
}

// flipper flips one bit of the byte at offset at of a request body, once
// across all requests (done).
type flipper struct {
	io.ReadCloser
	at, off int64
	done    *atomic.Bool
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.off <= f.at && f.at < f.off+int64(n) && f.done.CompareAndSwap(false, true) {
		p[f.at-f.off] ^= 0x20
	}
	f.off += int64(n)
	return n, err
}

// A byte damaged between the storage client and Cloud Storage: the CRC32C
// the Writer computed and declared does not match what arrived, and Cloud
// Storage finalizes nothing (or, for a single request, whose Writer does not
// declare one, verify finds the stored CRC32C differs and deletes the
// object). It is the network's fault, not the source's: retryable.
func TestFromURLDamagedOnTheWayToStorageLeavesNoObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		chunk    int
		size     int64
		promised bool // the media source promises the MD5
		says     string
	}{
		{"resumable chunks", 256 << 10, 1<<20 + 5, false, "CRC32C"},
		{"resumable chunks, MD5 promised", 256 << 10, 1<<20 + 5, true, "CRC32C"},
		{"one chunk (a single request with its checksum)", 0, 300_000, false, "CRC32C"},
		{"single request", -1, 300_000, false, "storage reports CRC32C"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var flipped atomic.Bool
			st := e.front(t, func(w http.ResponseWriter, r *http.Request) bool {
				r.Body = &flipper{ReadCloser: r.Body, at: 100_000, done: &flipped}
				return false
			})
			src := Source{URL: fmt.Sprintf("%s/synthetic/%d.mp4", e.media, tc.size), Size: tc.size}
			if tc.promised {
				src.MD5 = mediahost.SyntheticMD5(tc.size)
			}
			_, err := New(st, nil, Options{ChunkSize: tc.chunk}).FromURL(context.Background(), src, Dest{Bucket: "raw", Object: "o.mp4", Metadata: meta})
			if !flipped.Load() {
				t.Fatal("no byte was damaged")
			}
			if err == nil {
				t.Fatal("damaged bytes accepted")
			}
			if failure.IsPermanent(err) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("permanent = %v, want retryable saying %q: %v", failure.IsPermanent(err), tc.says, err)
			}
			if e.exists(t, "o.mp4") {
				t.Error("the damaged object was left in the bucket")
			}
		})
	}
}

// The same proxy, damaging nothing, is transparent: what the tests above
// see is the damage and nothing else.
func TestFromURLThroughTheFront(t *testing.T) {
	t.Parallel()
	e := setup(t)
	st := e.front(t, func(http.ResponseWriter, *http.Request) bool { return false })
	const n = 1<<20 + 5
	res, err := New(st, nil, Options{ChunkSize: 256 << 10}).FromURL(context.Background(),
		Source{URL: fmt.Sprintf("%s/synthetic/%d.mp4", e.media, n), Size: n, MD5: mediahost.SyntheticMD5(n)},
		Dest{Bucket: "raw", Object: "o.mp4", Metadata: meta})
	if err != nil || res.Size != n {
		t.Fatalf("%+v, %v", res, err)
	}
}

// An upload that fails mid-way stops the download: the media request is
// cancelled, though its body would never end.
func TestFromURLUploadFailingStopsTheDownload(t *testing.T) {
	t.Parallel()
	e := setup(t)
	closed := make(chan struct{}) // the media request is over
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(closed)
		w.Header().Set("Content-Type", "video/mp4")
		buf := make([]byte, 64<<10)
		for off := int64(0); ; off += int64(len(buf)) {
			mediahost.Synthetic{}.ReadAt(buf, off)
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	t.Cleanup(media.Close)
	var chunks atomic.Int64
	st := e.front(t, func(w http.ResponseWriter, r *http.Request) bool {
		if chunk, _ := isChunk(r); chunk && chunks.Add(1) == 3 {
			refuse(w, http.StatusBadRequest, "injected upload failure")
			return true
		}
		return false
	})
	done := make(chan error, 1)
	go func() {
		_, err := New(st, nil, Options{ChunkSize: 256 << 10}).FromURL(context.Background(),
			Source{URL: media.URL + "/endless.mp4"}, Dest{Bucket: "raw", Object: "o.mp4", Metadata: meta})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("still downloading a minute after the upload failed")
	}
	if err == nil || !strings.Contains(err.Error(), "upload: ") || !strings.Contains(err.Error(), "injected upload failure") ||
		strings.Contains(err.Error(), "body") {
		t.Errorf("want the upload's failure, got %v", err)
	}
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("the media request is still open")
	}
	if e.exists(t, "o.mp4") {
		t.Error("an object was finalized")
	}
}

// A body that fails mid-way, with chunks already uploaded and the next one in
// flight, ends the upload without its final request: nothing is finalized.
func TestFromURLBodyFailingMidwayFinalizesNothing(t *testing.T) {
	t.Parallel()
	const sent, declared = 2 << 20, 4 << 20
	for _, tc := range []struct {
		name    string
		declare bool
		says    string
	}{
		{"declared length", true, fmt.Sprintf("body cut short after %d of %d bytes", sent, declared)},
		{"undeclared length", false, fmt.Sprintf("reading body after %d bytes", sent)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "video/mp4")
				if tc.declare {
					w.Header().Set("Content-Length", fmt.Sprint(declared))
				}
				w.WriteHeader(http.StatusOK)
				io.Copy(w, io.NewSectionReader(mediahost.Synthetic{}, 0, sent))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // the connection drops
			}))
			t.Cleanup(media.Close)
			var chunks, finals atomic.Int64
			st := e.front(t, func(w http.ResponseWriter, r *http.Request) bool {
				chunk, final := isChunk(r)
				if chunk {
					chunks.Add(1)
				}
				if final {
					finals.Add(1)
				}
				return false
			})
			_, err := New(st, nil, Options{ChunkSize: 256 << 10}).FromURL(context.Background(),
				Source{URL: media.URL + "/v.mp4"}, Dest{Bucket: "raw", Object: "o.mp4", Metadata: meta})
			if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("want retryable %q, got %v", tc.says, err)
			}
			// The read-ahead holds a chunk at most, the Writer another: the
			// others were sent before the body failed.
			if n := chunks.Load(); n < 2 {
				t.Errorf("%d chunks uploaded before the body failed: not mid-way", n)
			}
			if n := finals.Load(); n != 0 {
				t.Errorf("%d requests finalizing the upload", n)
			}
			if e.exists(t, "o.mp4") {
				t.Error("an object was finalized")
			}
		})
	}
}

// An upload slower than ReadIdleTimeout is not a stalled media host: the
// watchdog counts only the time the body takes to answer.
func TestFromURLSlowUploadIsNotAStall(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const idle = 200 * time.Millisecond
	var chunks atomic.Int64
	st := e.front(t, func(w http.ResponseWriter, r *http.Request) bool {
		if chunk, _ := isChunk(r); chunk && chunks.Add(1) <= 2 {
			<-time.After(3 * idle) // Cloud Storage takes its time with these chunks
		}
		return false
	})
	const n = 1<<20 + 5
	res, err := New(st, nil, Options{ChunkSize: 256 << 10, ReadIdleTimeout: idle}).FromURL(context.Background(),
		Source{URL: fmt.Sprintf("%s/synthetic/%d.mp4", e.media, n), Size: n, MD5: mediahost.SyntheticMD5(n)},
		Dest{Bucket: "raw", Object: "o.mp4", Metadata: meta})
	if err != nil || res.Size != n {
		t.Fatalf("%+v, %v", res, err)
	}
}
