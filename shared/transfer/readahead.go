package transfer

import (
	"errors"
	"hash/crc32"
	"io"
	"sync"
	"time"
)

// readAhead copies a media body into an upload with the two running side by
// side. The storage Writer's Write blocks while the Writer sends a full chunk
// (one request round trip), so a plain io.Copy leaves the body unread
// meanwhile: download and upload take turns. Here a goroutine reads the body
// into a bounded queue of segments while the caller's goroutine hands them
// to the Writer, so the next chunk is downloaded while the previous one is
// uploaded. The segments hold at most one chunk together (allocated as the
// body needs them, reused after): a download's memory is the Writer's chunk
// plus this one, whatever the size of the video.
//
// Either side's failure stops the other, and the first one is what run
// reports: a body that fails, passes the limit or stalls cancels the upload
// (so the Writer can never finalize the object), and an upload that fails
// cancels the media request (so the body is read no further).
type readAhead struct {
	body  io.Reader
	limit int64 // 0: none
	// idle bounds each read of the body (≤ 0: no bound). Only the time the
	// body takes to answer counts, never the time spent waiting for the
	// upload to take a segment: a slow upload is not a stalled host.
	idle      time.Duration
	seg, segs int // segment size and count
	// hash makes the reader compute the body's CRC32C (into crc): only for
	// an upload whose Writer does not (a single request).
	hash bool
	// stopRead cancels the media request; stopWrite cancels the upload.
	stopRead  func(cause error)
	stopWrite func()

	// Set when run returns.
	n        int64  // body bytes read
	over     bool   // the body passed limit
	readErr  error  // the body failed first (never io.EOF)
	writeErr error  // the upload failed first
	crc      uint32 // CRC32C of the body, when hash
}

var (
	// errStalled is the cause a stalled body's request is cancelled with.
	errStalled = errors.New("media body stalled")
	// errUploadFailed is the cause the media request is cancelled with when
	// the upload fails.
	errUploadFailed = errors.New("upload failed")
	errOverLimit    = errors.New("size limit passed")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// readAheadSegments sizes the read-ahead for a resumable chunk: one chunk in
// segments of at most 1 MiB. A single-request upload has no chunk: its
// Writer streams, and 1 MiB ahead smooths the two sides' pace.
func readAheadSegments(chunk int) (seg, segs int) {
	ahead := chunk
	if ahead <= 0 {
		ahead = 1 << 20
	}
	seg = min(1<<20, max(ahead/4, 32<<10))
	return seg, max(2, (ahead+seg-1)/seg)
}

// run copies the body into w until the body ends or either side fails, and
// returns when both sides have stopped.
func (ra *readAhead) run(w io.Writer) {
	full := make(chan []byte, ra.segs) // read, for w; never blocks: segs segments exist
	free := make(chan []byte, ra.segs) // written, for the reader again
	stop := make(chan struct{})        // closed when the upload failed
	var first sync.Once
	fail := func(reading bool, err error) {
		first.Do(func() {
			if reading {
				ra.readErr = err
				ra.stopWrite()
				return
			}
			ra.writeErr = err
			close(stop)
			ra.stopRead(errUploadFailed)
		})
	}
	go ra.read(full, free, stop, fail)
	failed := false
	// full is closed once the reader has returned: after the loop, the
	// reader's results are set.
	for b := range full {
		if !failed {
			if _, err := w.Write(b); err != nil {
				failed = true
				fail(false, err)
			}
		}
		free <- b[:cap(b)]
	}
}

// read runs on its own goroutine: it fills segments from the body and queues
// them on full, which it closes when it returns.
func (ra *readAhead) read(full chan<- []byte, free chan []byte, stop <-chan struct{}, fail func(bool, error)) {
	defer close(full)
	var watchdog *time.Timer
	if ra.idle > 0 {
		watchdog = time.AfterFunc(ra.idle, func() { ra.stopRead(errStalled) })
		watchdog.Stop()
		defer watchdog.Stop()
	}
	made := 0
	for {
		var b []byte
		select {
		case <-stop:
			return
		case b = <-free:
		default:
			if made < ra.segs {
				made++
				b = make([]byte, ra.seg)
				break
			}
			select {
			case <-stop:
				return
			case b = <-free:
			}
		}
		n, err := ra.fill(b, watchdog)
		if err != nil && err != io.EOF {
			fail(true, err)
			return
		}
		if ra.hash {
			ra.crc = crc32.Update(ra.crc, castagnoli, b[:n])
		}
		if n > 0 {
			full <- b[:n]
		}
		if err == io.EOF {
			return
		}
	}
}

// fill reads the body into b until b is full or the body ends or fails.
func (ra *readAhead) fill(b []byte, watchdog *time.Timer) (int, error) {
	n := 0
	for n < len(b) {
		p := b[n:]
		if ra.limit > 0 && int64(len(p)) > ra.limit-ra.n+1 {
			p = p[:ra.limit-ra.n+1] // one byte past the limit tells it was passed
		}
		if watchdog != nil {
			watchdog.Reset(ra.idle)
		}
		k, err := ra.body.Read(p)
		if watchdog != nil {
			watchdog.Stop()
		}
		n += k
		ra.n += int64(k)
		if ra.limit > 0 && ra.n > ra.limit {
			ra.over = true
			return n, errOverLimit
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
