package gcs

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// The backend reads an object into a bytes.Buffer. Both readers that feed
// it bring the end with the last bytes, with bytes enough that the buffer
// need not grow for them: an object the size of a power of two fills a
// buffer of exactly its size, whatever the reads' sizes were.
func TestReadersEndWithTheLastBytes(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	body := pattern(size, 3)
	for _, tc := range []struct {
		name  string
		parts []int
	}{
		{"one", []int{size}},
		{"segments", []int{segSize, segSize, segSize, segSize}},
		{"ragged", []int{100, segSize + 7, tailSize - 1, 3 * segSize, 1}},
		{"small end", []int{size - 10, 10}},
	} {
		// Content in memory, as a restart reads it.
		var parts [][]byte
		off := 0
		for _, n := range tc.parts {
			n = min(n, size-off)
			parts = append(parts, body[off:off+n])
			off += n
		}
		if off != size {
			parts = append(parts, body[off:])
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(newPartsReader(parts)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), body) || buf.Cap() != size {
			t.Errorf("%s, from memory: %d bytes in a buffer of %d", tc.name, buf.Len(), buf.Cap())
		}

		// A live store, its chunks arriving as it reads.
		f := newFeed(false, maxAhead)
		f.startStore()
		done := make(chan error, 1)
		var live bytes.Buffer
		go func() {
			_, err := live.ReadFrom(f)
			done <- err
		}()
		for _, p := range parts {
			if _, err := f.add(bytes.NewReader(p)); err != nil {
				t.Fatal(err)
			}
		}
		if !f.finish() {
			t.Fatalf("%s: store not live", tc.name)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(live.Bytes(), body) || live.Cap() != size {
			t.Errorf("%s, live: %d bytes in a buffer of %d", tc.name, live.Len(), live.Cap())
		}
		f.abort(errDone)
	}
}

// A store cut off before the end leaves what it read in its own buffer: the
// feed restarts from that, and refuses if those bytes have changed (a
// backend that reuses its buffer).
func TestRestartFromWhatTheStoreRead(t *testing.T) {
	t.Parallel()
	body := pattern(3*segSize+5, 7)
	for _, reuse := range []bool{false, true} {
		f := newFeed(true, maxAhead)
		f.startStore()
		if _, err := f.add(bytes.NewReader(body[:2*segSize])); err != nil {
			t.Fatal(err)
		}
		// The store reads what it can, into one growing buffer or,
		// wrongly for the feed, into one scratch buffer again and again.
		var grown []byte
		scratch := make([]byte, segSize)
		for f.size()-int64(len(grown)) > tailSize {
			b := scratch
			if !reuse {
				grown = append(grown, make([]byte, segSize)...)[:len(grown)]
				b = grown[len(grown):cap(grown)]
			}
			n, err := f.Read(b)
			if err != nil {
				t.Fatal(err)
			}
			if reuse {
				grown = append(grown, b[:n]...)
				for i := range scratch[:n] {
					scratch[i] = 0
				}
			} else {
				grown = grown[:len(grown)+n]
			}
		}
		if f.cutIdle(0) {
			t.Fatal("a store that has read is waiting for the lock?")
		}
		if _, err := f.Read(make([]byte, 10)); !errors.Is(err, errIdle) {
			t.Fatalf("read after the cut: %v", err)
		}
		f.storeDone()
		if _, err := f.add(bytes.NewReader(body[2*segSize:])); err != nil {
			t.Fatal(err)
		}
		if _, sum := f.sums(); !bytes.Equal(sum, md5Of(body)) {
			t.Errorf("reuse %v: MD5 of what was received is wrong", reuse)
		}
		r, err := f.content()
		switch {
		case reuse:
			if !errors.Is(err, errRestart) {
				t.Errorf("restart from a reused buffer: %v", err)
			}
		case err != nil:
			t.Error(err)
		default:
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, body) {
				t.Errorf("restart: %d bytes differ", len(got))
			}
		}
		f.abort(errDone)
	}
}
