package transfer

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// runReadAhead runs ra with the media request's and the upload's contexts
// as fromURL has them, failing the test if it does not return.
func runReadAhead(t *testing.T, ra *readAhead, w io.Writer) (rctx, wctx context.Context) {
	t.Helper()
	rctx, stopRead := context.WithCancelCause(context.Background())
	wctx, stopWrite := context.WithCancel(context.Background())
	t.Cleanup(func() { stopRead(nil); stopWrite() })
	ra.stopRead, ra.stopWrite = stopRead, stopWrite
	if b, ok := ra.body.(*fakeBody); ok {
		b.ctx = rctx
	}
	if fw, ok := w.(*fakeUpload); ok {
		fw.ctx = wctx
	}
	done := make(chan struct{})
	go func() { ra.run(w); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the read-ahead did not return")
	}
	return rctx, wctx
}

// fakeBody serves n bytes of a pattern, then fails with err (io.EOF: ends);
// failAt < n makes it fail there. Reads fail once ctx (the request's) is
// cancelled, as an HTTP body's do; block makes a read wait for that.
type fakeBody struct {
	ctx       context.Context
	n, failAt int64
	err       error
	block     func(off int64) bool
	off       atomic.Int64
	onRead    func(off int64) // after each read, with the bytes delivered so far
}

func (b *fakeBody) Read(p []byte) (int, error) {
	off := b.off.Load()
	if b.block != nil && b.block(off) {
		<-b.ctx.Done()
	}
	if err := context.Cause(b.ctx); err != nil {
		return 0, err
	}
	end := b.n
	if b.failAt > 0 {
		end = b.failAt
	}
	if off >= end {
		return 0, b.err
	}
	k := min(int64(len(p)), end-off, 100_000) // reads of any size, as a socket's
	for i := range k {
		p[i] = byte((off + i) % 251)
	}
	b.off.Add(k)
	if b.onRead != nil {
		b.onRead(off + k)
	}
	return int(k), nil
}

func pattern(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// fakeUpload takes what is written; hold makes a Write wait until it returns
// (or the upload is cancelled: ctx, the upload's); fail makes the write of
// that index fail.
type fakeUpload struct {
	ctx      context.Context
	got      bytes.Buffer
	accepted atomic.Int64 // bytes whose Write returned
	writes   int
	hold     func(i int) <-chan struct{}
	failAt   int // 1-based; 0: never
}

var errInjected = errors.New("injected upload failure")

func (u *fakeUpload) Write(p []byte) (int, error) {
	u.writes++
	if u.hold != nil {
		if ch := u.hold(u.writes); ch != nil {
			select {
			case <-ch:
			case <-u.ctx.Done():
				return 0, u.ctx.Err()
			}
		}
	}
	if u.writes == u.failAt {
		return 0, errInjected
	}
	u.got.Write(p)
	u.accepted.Add(int64(len(p)))
	return len(p), nil
}

func TestReadAheadCopiesEverythingInOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		n         int64
		seg, segs int
		hash      bool
	}{
		{"empty", 0, 64 << 10, 4, true},
		{"under a segment", 1000, 64 << 10, 4, true},
		{"exact segments", 4 * 64 << 10, 64 << 10, 4, false},
		{"many segments", 3<<20 + 7, 64 << 10, 4, true},
		{"two segments", 1<<20 + 1, 32 << 10, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ra := &readAhead{body: &fakeBody{n: tc.n, err: io.EOF}, seg: tc.seg, segs: tc.segs, hash: tc.hash}
			up := &fakeUpload{}
			runReadAhead(t, ra, up)
			want := pattern(tc.n)
			if ra.readErr != nil || ra.writeErr != nil || ra.over || ra.n != tc.n || !bytes.Equal(up.got.Bytes(), want) {
				t.Errorf("read %d of %d bytes, wrote %d (equal %v); errors %v, %v; over %v",
					ra.n, tc.n, up.got.Len(), bytes.Equal(up.got.Bytes(), want), ra.readErr, ra.writeErr, ra.over)
			}
			if tc.hash && ra.crc != crc32.Checksum(want, castagnoli) {
				t.Errorf("CRC32C %08x, want %08x", ra.crc, crc32.Checksum(want, castagnoli))
			}
		})
	}
}

// While the upload holds a write (a chunk in flight), the body is read on,
// up to the read-ahead's size and never past it.
func TestReadAheadReadsWhileTheUploadWaits(t *testing.T) {
	t.Parallel()
	const seg, segs, n = 64 << 10, 4, 2 << 20
	ahead := make(chan struct{}) // closed when the queue is full while the first write waits
	release := make(chan struct{})
	up := &fakeUpload{hold: func(i int) <-chan struct{} {
		if i == 1 {
			return release
		}
		return nil
	}}
	var beyond atomic.Int64 // bytes read past the bound
	body := &fakeBody{n: n, err: io.EOF, onRead: func(off int64) {
		if over := off - up.accepted.Load() - seg*segs; over > 0 {
			beyond.Store(over)
		}
		if off == seg*segs && up.accepted.Load() == 0 {
			close(ahead)
		}
	}}
	go func() {
		select {
		case <-ahead:
		case <-time.After(30 * time.Second):
			t.Error("the body was not read ahead while the upload waited")
		}
		close(release)
	}()
	ra := &readAhead{body: body, seg: seg, segs: segs}
	runReadAhead(t, ra, up)
	if ra.readErr != nil || ra.writeErr != nil || !bytes.Equal(up.got.Bytes(), pattern(n)) {
		t.Errorf("errors %v, %v; wrote %d bytes", ra.readErr, ra.writeErr, up.got.Len())
	}
	if b := beyond.Load(); b > 0 {
		t.Errorf("read %d bytes past the read-ahead's %d", b, seg*segs)
	}
}

// An upload that fails stops the body's reading: the media request is
// cancelled, whether the reader waits in a read or for a free segment.
func TestReadAheadUploadFailureStopsTheBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		block func(off int64) bool
	}{
		{"reader waiting for a segment", nil},
		{"reader waiting in a read", func(off int64) bool { return off >= 3*64<<10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := &fakeBody{n: 1 << 40, err: io.EOF, block: tc.block} // endless but for the failure
			up := &fakeUpload{failAt: 2}
			ra := &readAhead{body: body, seg: 64 << 10, segs: 4}
			rctx, _ := runReadAhead(t, ra, up)
			if !errors.Is(ra.writeErr, errInjected) || ra.readErr != nil {
				t.Errorf("write error %v, read error %v", ra.writeErr, ra.readErr)
			}
			if !errors.Is(context.Cause(rctx), errUploadFailed) {
				t.Errorf("media request not cancelled for the upload: %v", context.Cause(rctx))
			}
			if ra.n > 8*64<<10 {
				t.Errorf("read %d bytes after the upload failed", ra.n)
			}
		})
	}
}

// A body that fails cancels the upload at once, even while a write waits
// for a chunk in flight: nothing is left to finalize it.
func TestReadAheadBodyFailureCancelsTheUpload(t *testing.T) {
	t.Parallel()
	never := make(chan struct{})
	up := &fakeUpload{hold: func(int) <-chan struct{} { return never }}
	errCut := errors.New("connection reset")
	// It fails within the read-ahead: the first write still waits.
	ra := &readAhead{body: &fakeBody{n: 1 << 20, failAt: 200_000, err: errCut}, seg: 64 << 10, segs: 4}
	_, wctx := runReadAhead(t, ra, up)
	if !errors.Is(ra.readErr, errCut) || ra.writeErr != nil || ra.n != 200_000 {
		t.Errorf("read error %v, write error %v, %d bytes read", ra.readErr, ra.writeErr, ra.n)
	}
	if wctx.Err() == nil {
		t.Error("upload not cancelled")
	}
}

func TestReadAheadLimit(t *testing.T) {
	t.Parallel()
	ra := &readAhead{body: &fakeBody{n: 1 << 20, err: io.EOF}, limit: 200_000, seg: 64 << 10, segs: 4}
	_, wctx := runReadAhead(t, ra, &fakeUpload{})
	if !ra.over || !errors.Is(ra.readErr, errOverLimit) || ra.n != 200_001 || wctx.Err() == nil {
		t.Errorf("over %v, read error %v, %d bytes read, upload %v", ra.over, ra.readErr, ra.n, wctx.Err())
	}
	ra = &readAhead{body: &fakeBody{n: 200_000, err: io.EOF}, limit: 200_000, seg: 64 << 10, segs: 4}
	runReadAhead(t, ra, &fakeUpload{})
	if ra.over || ra.readErr != nil || ra.n != 200_000 {
		t.Errorf("at the limit: over %v, read error %v, %d bytes read", ra.over, ra.readErr, ra.n)
	}
}

// The watchdog counts only the time the body takes to answer: a body that
// stops sending is cut off, an upload that takes long to accept is waited for.
func TestReadAheadWatchdog(t *testing.T) {
	t.Parallel()
	const idle = 100 * time.Millisecond
	body := &fakeBody{n: 1 << 20, err: io.EOF, block: func(off int64) bool { return off >= 300_000 }}
	ra := &readAhead{body: body, idle: idle, seg: 64 << 10, segs: 4}
	rctx, _ := runReadAhead(t, ra, &fakeUpload{})
	if !errors.Is(context.Cause(rctx), errStalled) || ra.readErr == nil || ra.n != 5*64<<10 { // reads end at segment ends
		t.Errorf("cause %v, read error %v, %d bytes read", context.Cause(rctx), ra.readErr, ra.n)
	}

	slow := &fakeUpload{hold: func(i int) <-chan struct{} {
		if i > 2 {
			return nil
		}
		ch := make(chan struct{}) // a chunk in flight, longer than idle
		time.AfterFunc(3*idle, func() { close(ch) })
		return ch
	}}
	ra = &readAhead{body: &fakeBody{n: 1 << 20, err: io.EOF}, idle: idle, seg: 64 << 10, segs: 4}
	rctx, _ = runReadAhead(t, ra, slow)
	if ra.readErr != nil || ra.writeErr != nil || context.Cause(rctx) != nil || slow.got.Len() != 1<<20 {
		t.Errorf("slow upload: read error %v (cause %v), write error %v, wrote %d", ra.readErr, context.Cause(rctx), ra.writeErr, slow.got.Len())
	}
}

func TestReadAheadSegments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ chunk, seg, segs int }{
		{16 << 20, 1 << 20, 16},
		{8 << 20, 1 << 20, 8},
		{256 << 10, 64 << 10, 4},
		{-1, 256 << 10, 4},
		{1000, 32 << 10, 2},
	} {
		if seg, segs := readAheadSegments(tc.chunk); seg != tc.seg || segs != tc.segs {
			t.Errorf("readAheadSegments(%d) = %d, %d; want %d, %d", tc.chunk, seg, segs, tc.seg, tc.segs)
		}
	}
}
