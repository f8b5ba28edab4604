package analyze

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/failure"
)

// The analyzer needs a video's length to plan its windows, and must not
// download the video to learn it (a lesson may be gigabytes). An MP4 or
// QuickTime file states its length in one small box, moov/mvhd; walking to
// it reads only box headers, so a handful of range reads suffice whether
// the moov box comes first (faststart) or after the media data.
//
// This is a reader of its own, about a hundred lines, rather than a library
// (github.com/abema/go-mp4 is not served by the module proxy here) or
// ffprobe (which would need ffmpeg, and so the larger google-24-full base
// image, in a function that otherwise never touches the media's bytes).

// ErrNotMP4 is returned for a file whose layout is not the ISO base media
// file format (MP4, M4V, MOV, 3GP): the analyzer cannot read its length.
var ErrNotMP4 = errors.New("not an MP4/QuickTime file")

// maxBoxes bounds the boxes one walk looks at: a real file has a handful at
// each level; a damaged one must not turn into thousands of range reads.
const maxBoxes = 4096

// box is one box header: its type and where its payload lies.
type box struct {
	typ        string
	start, end int64 // payload, [start, end)
}

// MP4Duration returns the length in seconds that an MP4/QuickTime file of
// size bytes declares (moov/mvhd, or for a fragmented file moov/mvex/mehd).
// r's errors are returned as they are (wrapped); a file it cannot read a
// length from gives a failure.Permanent wrapping ErrNotMP4 and saying why.
func MP4Duration(r io.ReaderAt, size int64) (float64, error) {
	moov, found, err := findBox(r, 0, size, "moov")
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, notMP4("no moov box in %d bytes", size)
	}
	mvhd, found, err := findBox(r, moov.start, moov.end, "mvhd")
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, notMP4("moov holds no mvhd box")
	}
	timescale, duration, err := readHeader(r, mvhd, true)
	if err != nil {
		return 0, err
	}
	if timescale == 0 {
		return 0, notMP4("mvhd timescale is 0")
	}
	if duration == 0 {
		// A fragmented MP4 may leave mvhd empty and state the length of
		// all its fragments in moov/mvex/mehd instead.
		if duration, err = fragmentDuration(r, moov); err != nil {
			return 0, err
		}
	}
	if duration == 0 {
		return 0, notMP4("the file declares no duration (a fragmented MP4 without mvex/mehd)")
	}
	return float64(duration) / float64(timescale), nil
}

func fragmentDuration(r io.ReaderAt, moov box) (uint64, error) {
	mvex, found, err := findBox(r, moov.start, moov.end, "mvex")
	if err != nil || !found {
		return 0, err
	}
	mehd, found, err := findBox(r, mvex.start, mvex.end, "mehd")
	if err != nil || !found {
		return 0, err
	}
	_, d, err := readHeader(r, mehd, false)
	return d, err
}

// findBox walks the boxes in [from, to) for the first of type typ.
func findBox(r io.ReaderAt, from, to int64, typ string) (box, bool, error) {
	for off, n := from, 0; off < to; n++ {
		if n == maxBoxes {
			return box{}, false, notMP4("more than %d boxes before %s", maxBoxes, typ)
		}
		b, err := readBox(r, off, to)
		if err != nil {
			return box{}, false, err
		}
		if b.typ == typ {
			return b, true, nil
		}
		off = b.end
	}
	return box{}, false, nil
}

// readBox reads the header of the box at off, inside a parent ending at
// limit: a 32-bit size and a type; size 1 means a 64-bit size follows,
// size 0 that the box runs to the end of its parent.
func readBox(r io.ReaderAt, off, limit int64) (box, error) {
	if limit-off < 8 {
		return box{}, notMP4("%d stray bytes at offset %d", limit-off, off)
	}
	var h [16]byte
	if err := readFull(r, h[:8], off); err != nil {
		return box{}, err
	}
	size := int64(binary.BigEndian.Uint32(h[:4]))
	typ := string(h[4:8])
	hdr := int64(8)
	switch size {
	case 0:
		size = limit - off
	case 1:
		if limit-off < 16 {
			return box{}, notMP4("box %q at offset %d: truncated 64-bit size", typ, off)
		}
		if err := readFull(r, h[8:16], off+8); err != nil {
			return box{}, err
		}
		large := binary.BigEndian.Uint64(h[8:16])
		if large > uint64(limit-off) {
			return box{}, notMP4("box %q at offset %d: size %d runs past its parent (%d bytes left)", typ, off, large, limit-off)
		}
		size, hdr = int64(large), 16
	}
	if size < hdr || size > limit-off {
		return box{}, notMP4("box %q at offset %d: size %d does not fit (%d bytes left)", printable(typ), off, size, limit-off)
	}
	return box{typ: typ, start: off + hdr, end: off + size}, nil
}

// readHeader reads a full box's version and then, for mvhd (withClock),
// creation and modification times, the timescale and the duration; for
// mehd only the duration. Version 1 widens times and duration to 64 bits.
func readHeader(r io.ReaderAt, b box, withClock bool) (timescale uint32, duration uint64, err error) {
	var p [32]byte
	n := min(b.end-b.start, int64(len(p)))
	if n < 4 {
		return 0, 0, notMP4("%s box is empty", b.typ)
	}
	if err := readFull(r, p[:n], b.start); err != nil {
		return 0, 0, err
	}
	version := p[0]
	var need int64
	switch {
	case version > 1:
		return 0, 0, notMP4("%s version %d is unknown", b.typ, version)
	case withClock && version == 0:
		need = 4 + 4 + 4 + 4 + 4
	case withClock:
		need = 4 + 8 + 8 + 4 + 8
	case version == 0:
		need = 4 + 4
	default:
		need = 4 + 8
	}
	if n < need {
		return 0, 0, notMP4("%s box is truncated (%d bytes)", b.typ, n)
	}
	f := p[4:need]
	if withClock {
		clock := 4
		if version == 1 {
			clock = 8
		}
		f = f[2*clock:] // creation and modification times
		timescale, f = binary.BigEndian.Uint32(f[:4]), f[4:]
	}
	if version == 1 {
		duration = binary.BigEndian.Uint64(f[:8])
		if duration == ^uint64(0) {
			duration = 0 // all ones: unknown
		}
	} else {
		duration = uint64(binary.BigEndian.Uint32(f[:4]))
		if duration == uint64(^uint32(0)) {
			duration = 0
		}
	}
	return timescale, duration, nil
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return notMP4("the file ends at offset %d, inside a box header", off+int64(n))
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
}

func notMP4(format string, args ...any) error {
	return &failure.Permanent{Err: fmt.Errorf("%w: %s", ErrNotMP4, fmt.Sprintf(format, args...))}
}

// printable quotes a box type that is not text (a damaged file).
func printable(typ string) string {
	for _, c := range []byte(typ) {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", typ)
		}
	}
	return typ
}

// objectReader reads a Cloud Storage object by range, a block at a time,
// keeping the last block: a walk over box headers reads a few bytes here
// and there, mostly within one block.
type objectReader struct {
	ctx   context.Context
	obj   *storage.ObjectHandle
	size  int64
	block int64

	mu     sync.Mutex
	buf    []byte
	bufOff int64
	reads  int
}

// readBlock is the size of one range read: enough for every box header at
// the start of a file, ftyp and a faststart moov's first children included.
const readBlock = 64 << 10

func newObjectReader(ctx context.Context, obj *storage.ObjectHandle, size int64) *objectReader {
	return &objectReader{ctx: ctx, obj: obj, size: size, block: readBlock}
}

// ReadAt implements io.ReaderAt. A failed range read is retryable: Cloud
// Storage was there a moment ago (the object's attributes were read).
func (o *objectReader) ReadAt(p []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if off < 0 || off >= o.size {
		return 0, io.EOF
	}
	if off < o.bufOff || off+int64(len(p)) > o.bufOff+int64(len(o.buf)) {
		n := min(max(int64(len(p)), o.block), o.size-off)
		rd, err := o.obj.NewRangeReader(o.ctx, off, n)
		if err != nil {
			return 0, failure.Retryablef("range read of %s at %d: %w", o.obj.ObjectName(), off, err)
		}
		buf := make([]byte, n)
		_, err = io.ReadFull(rd, buf)
		rd.Close()
		if err != nil {
			return 0, failure.Retryablef("range read of %s at %d: %w", o.obj.ObjectName(), off, err)
		}
		o.buf, o.bufOff = buf, off
		o.reads++
	}
	n := copy(p, o.buf[off-o.bufOff:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
