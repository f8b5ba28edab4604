package gcs

import (
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"
)

// feed carries one upload session's bytes from its chunk requests to the
// store (fakestorage reading the object, see uploads.store) and, when the
// client declared an MD5, to the session's own MD5 hasher.
//
// A chunk request reads its body into segments and is answered as soon as
// the chunk is in them; the store and the hasher consume the segments on
// goroutines of their own, so the server digests one chunk while the client
// fetches the next (the official client reads nothing from its source while
// a chunk is on its way). At most maxAhead received bytes wait for them;
// past that a chunk request waits too. A segment goes back to the session's
// free list once both have read it: on the live path the bytes go nowhere
// but into the backend's own buffer, as a single-request upload's body does.
//
// The store may be cut off before the end (its client went idle while it
// holds the backend's lock and others wait for it, see uploads): the session then finishes
// by storing everything again from memory. What the store has already read
// is no longer in the segments but in the backend's buffer, which
// fakestorage drops on the error; the feed keeps what it handed over
// instead (see Read and keepRead), so the live path needs no second copy.
type feed struct {
	mu   sync.Mutex
	cond sync.Cond

	segs [][]byte  // received bytes not released yet; segs[0] starts at base
	free []*[]byte // released segments for reuse
	base int64

	ahead  int64  // maxAhead, or more for large requests
	recv   int64  // bytes received
	crc    uint32 // CRC32C of the bytes received
	stored int64  // bytes the store has read
	hashed int64  // bytes the MD5 hasher has read (unused when md5 is nil)
	md5    hash.Hash

	// kept is what the store has read, [0, stored), as the store's own
	// buffers hold it: the content again if the store has to start over.
	kept [][]byte

	busy     bool      // a chunk request is in progress
	idleAt   time.Time // when the last chunk request ended
	live     bool      // a store is reading from the feed (or waiting for the backend)
	reading  bool      // the live store has read: it holds the backend's lock
	complete bool      // every byte is here and checked: the store gets the end
	cut      error     // the live store's next Read fails with it
	aborted  bool      // the session is over: everyone stops
}

const (
	// segSize is the size of one segment, and the most one Read hands the
	// backend, which hashes each read in one go without yielding to the
	// garbage collector.
	segSize = 256 << 10
	// tailSize is how many of the last bytes received the store gets only
	// together with the end of the content: the backend reads into a
	// bytes.Buffer, and an end read alone grows (doubles, and zeroes) its
	// whole buffer once more, 2 GiB for a 1 GiB object. At least
	// bytes.MinRead, so that a buffer filled up to the tail still has room
	// enough for it without growing.
	tailSize = 4 << 10
)

// maxAhead bounds the received bytes a session holds that the store or the
// hasher has not read yet: two 16 MiB chunks (the official client's
// default), or two of the session's largest requests, up to maxAheadCap.
var maxAhead int64 = 32 << 20

const maxAheadCap = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newFeed(withMD5 bool, ahead int64) *feed {
	f := &feed{ahead: ahead}
	f.cond.L = &f.mu
	if withMD5 {
		f.md5 = md5.New()
		go f.hash()
	}
	return f
}

// consumed is where the oldest reader is: segments below it are released.
func (f *feed) consumed() int64 {
	if f.md5 != nil && f.hashed < f.stored {
		return f.hashed
	}
	return f.stored
}

// release returns the segments every reader has passed to the free list.
func (f *feed) release() {
	low := f.consumed()
	for len(f.segs) > 0 && f.base+int64(len(f.segs[0])) <= low {
		s := f.segs[0][:cap(f.segs[0])]
		f.free = append(f.free, &s)
		f.base += int64(len(f.segs[0]))
		f.segs[0] = nil
		f.segs = f.segs[1:]
	}
}

// errChunkBody is how add reports that a request's body broke off.
var errChunkBody = errors.New("reading chunk")

// expect notes that a request brings n bytes: the feed takes two such
// requests ahead of its readers, so a client's next chunk arrives while the
// server digests the one before.
func (f *feed) expect(n int64) {
	f.mu.Lock()
	f.ahead = max(f.ahead, min(2*n, maxAheadCap))
	f.mu.Unlock()
}

// add reads body to its end into the feed and returns how many bytes it
// took. A body that breaks off leaves what arrived before (the client sends
// the chunk again from where it is told the upload stands). While a store is
// live, add waits whenever maxAhead bytes are waiting for it.
func (f *feed) add(body io.Reader) (int64, error) {
	var n int64
	for {
		f.mu.Lock()
		for f.live && !f.aborted && f.recv-f.consumed() >= f.ahead {
			f.cond.Wait()
		}
		if f.aborted {
			f.mu.Unlock()
			return n, errAbandoned
		}
		var seg []byte
		if k := len(f.free); k > 0 {
			seg = *f.free[k-1]
			f.free = f.free[:k-1]
		}
		f.mu.Unlock()
		if seg == nil {
			seg = make([]byte, segSize)
		}
		k, err := fill(body, seg)
		if k > 0 {
			f.mu.Lock()
			if f.aborted {
				f.mu.Unlock()
				return n, errAbandoned
			}
			f.crc = crc32.Update(f.crc, castagnoli, seg[:k])
			f.segs = append(f.segs, seg[:k])
			f.recv += int64(k)
			f.cond.Broadcast()
			f.mu.Unlock()
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%w: %v", errChunkBody, err)
		}
	}
}

// fill reads into seg until it is full (nil) or the body ends (io.EOF) or
// fails.
func fill(body io.Reader, seg []byte) (int, error) {
	k := 0
	for k < len(seg) {
		m, err := body.Read(seg[k:])
		k += m
		if err != nil {
			return k, err
		}
	}
	return k, nil
}

// hash runs the MD5 hasher until the session is over.
func (f *feed) hash() {
	var views [][]byte
	for {
		f.mu.Lock()
		for !f.aborted && f.hashed == f.recv {
			f.cond.Wait()
		}
		if f.aborted {
			f.mu.Unlock()
			return
		}
		// The segments from hashed on stay where they are until hashed
		// passes them: they are read without the lock.
		views = f.views(views[:0], f.hashed, f.recv)
		f.mu.Unlock()
		var n int64
		for _, v := range views {
			f.md5.Write(v)
			n += int64(len(v))
		}
		f.mu.Lock()
		f.hashed += n
		f.release()
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// views appends the received bytes [from, to) as slices of the segments.
func (f *feed) views(dst [][]byte, from, to int64) [][]byte {
	off := f.base
	for _, s := range f.segs {
		end := off + int64(len(s))
		if end > from && off < to {
			dst = append(dst, s[max(from-off, 0):min(to, end)-off])
		}
		off = end
	}
	return dst
}

// sums returns the CRC32C and MD5 (nil if none was declared) of everything
// received, once the hasher has caught up.
func (f *feed) sums() (uint32, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.md5 == nil {
		return f.crc, nil
	}
	for !f.aborted && f.hashed < f.recv {
		f.cond.Wait()
	}
	return f.crc, f.md5.Sum(nil)
}

// size is how many bytes were received.
func (f *feed) size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recv
}

// request marks a chunk request in progress (true) or over (false): idle
// leaves the store alone meanwhile.
func (f *feed) request(busy bool) {
	f.mu.Lock()
	f.busy = busy
	if !busy {
		f.idleAt = time.Now()
	}
	f.mu.Unlock()
}

// startStore marks a store as reading from the feed (see Read).
func (f *feed) startStore() {
	f.mu.Lock()
	f.live = true
	f.mu.Unlock()
}

// storeDone records that the live store returned.
func (f *feed) storeDone() {
	f.mu.Lock()
	f.live = false
	f.cond.Broadcast()
	f.mu.Unlock()
}

// finish passes the end of the content to the live store: it stores the
// object. It reports false when no store is live (none started, or it was
// cut off): the caller stores from memory.
func (f *feed) finish() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.complete = true
	f.cond.Broadcast()
	return f.live && f.cut == nil
}

// cutIdle cuts off a live store that holds the backend's lock while its
// client has sent nothing for d: the store's next Read fails with errIdle,
// the backend stores nothing and releases the lock, and the session
// finishes from memory. It reports true when the store is live but has not
// read yet (it waits for the lock itself): the caller looks again later.
func (f *feed) cutIdle(d time.Duration) (notYet bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.busy || !f.live || f.cut != nil || f.complete:
		return false
	case !f.reading:
		return true
	case time.Since(f.idleAt) < d:
		return false
	}
	f.cut = errIdle
	f.cond.Broadcast()
	return false
}

// abort ends the session: the store (if live) fails with err, every wait
// returns, the hasher stops, and the memory goes.
func (f *feed) abort(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		f.cut = err
	}
	f.aborted = true
	f.segs, f.free, f.kept = nil, nil, nil
	f.cond.Broadcast()
}

// Read is the live store's view of the content. It returns each byte once
// it is received, but the last tailSize bytes only with the end (io.EOF),
// once the content is complete and checked: a mismatch is an error in place
// of the end, and the backend then stores nothing.
func (f *feed) Read(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reading = true
	var avail int64
	for {
		if f.cut != nil {
			return 0, f.cut
		}
		avail = f.recv - f.stored
		if !f.complete {
			avail -= tailSize
		}
		if avail > 0 {
			break
		}
		if f.complete {
			return 0, io.EOF
		}
		f.cond.Wait()
	}
	if f.complete {
		b = b[:readSize(len(b), avail)]
	} else {
		b = b[:min(int64(len(b)), segSize, avail)] // the tail is held back already
	}
	n := 0
	for _, v := range f.views(nil, f.stored, f.stored+int64(len(b))) {
		n += copy(b[n:], v)
	}
	f.keepRead(b[:n])
	f.stored += int64(n)
	f.release()
	f.cond.Broadcast()
	if f.complete && f.stored == f.recv {
		return n, io.EOF
	}
	return n, nil
}

// keepRead remembers p, which the store has just read, as the store holds
// it. This retains the reader's buffer, which io.Reader's contract tells
// implementations not to do: it is safe here because fakestorage's backends
// read an object whole into one growing buffer (bytes.Buffer.ReadFrom, or
// io.ReadAll for the memory backend), which only ever appends, and moves to
// a new array when it grows instead of rewriting the old one. Should a
// backend start reusing its buffer, the restart from kept would see other
// bytes: content checks the CRC32C of what it restarts from, and refuses.
func (f *feed) keepRead(p []byte) {
	if len(p) == 0 {
		return
	}
	if k := len(f.kept); k > 0 {
		last := f.kept[k-1]
		// The next read into the same array extends the last piece.
		if cap(last) > len(last) && &last[:len(last)+1][len(last)] == &p[0] && cap(last)-len(last) >= len(p) {
			f.kept[k-1] = last[:len(last)+len(p)]
			return
		}
	}
	f.kept = append(f.kept, p)
}

// errRestart means the bytes kept for a restart are not the bytes received.
var errRestart = errors.New("the bytes kept for storing again differ from those received (fakestorage no longer reads objects into one growing buffer?)")

// content returns everything received, for a store that starts over once no
// store is live: what the earlier store read (kept) and the segments from
// there on.
func (f *feed) content() (io.Reader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live {
		return nil, errors.New("a store is still reading")
	}
	parts := f.views(append([][]byte(nil), f.kept...), f.stored, f.recv)
	var crc uint32
	for _, p := range parts {
		crc = crc32.Update(crc, castagnoli, p)
	}
	if crc != f.crc {
		return nil, errRestart
	}
	return newPartsReader(parts), nil
}

// readSize is how much of avail bytes a read into room bytes takes: at most
// segSize, and either all of avail or at most avail-tailSize, so that the
// last read (the one that brings io.EOF) has tailSize bytes at least. The
// backend grows its buffer before any read that has less than bytes.MinRead
// of room left; a last read of a few bytes after a read that filled the
// buffer would double it for them.
func readSize(room int, avail int64) int {
	n := int64(min(room, segSize))
	if avail <= n {
		return int(avail)
	}
	if avail-n < tailSize && avail > tailSize {
		n = avail - tailSize
	}
	return int(n)
}

// partsReader reads a list of byte slices, the last bytes together with
// io.EOF, sized by readSize.
type partsReader struct {
	parts [][]byte
	left  int64
}

func newPartsReader(parts [][]byte) *partsReader {
	r := &partsReader{parts: append([][]byte(nil), parts...)}
	for _, p := range parts {
		r.left += int64(len(p))
	}
	return r
}

func (r *partsReader) Read(b []byte) (int, error) {
	b = b[:readSize(len(b), r.left)]
	n := 0
	for n < len(b) {
		m := copy(b[n:], r.parts[0])
		n += m
		if r.parts[0] = r.parts[0][m:]; len(r.parts[0]) == 0 {
			r.parts = r.parts[1:]
		}
	}
	r.left -= int64(n)
	if r.left == 0 {
		return n, io.EOF
	}
	return n, nil
}
