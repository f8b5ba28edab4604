package speech

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The engine learns how long each file is from the audio itself, as the real
// service must: the word windows, the 20-minute word-timestamp limit of
// chirp_3 and the billed duration all follow from it. It reads only the
// head and the tail of an object (probeBytes each), so an hour-long lesson
// costs two small range reads, never a download.
const probeBytes = 64 << 10

// audioInfo is what the engine knows of a file's audio.
type audioInfo struct {
	Format   string // "flac", "ogg-opus", "wav"
	Duration time.Duration
}

// errUnsupported marks audio the engine cannot read at all (as opposed to a
// file of a known format that is damaged).
var errUnsupported = errors.New("unsupported audio format: the local engine reads FLAC, Ogg Opus and WAV")

// probeAudio determines format and duration from the first and last bytes of
// a file of size bytes. head starts at offset 0, tail ends at size; they may
// overlap or be the same slice when the file is small.
func probeAudio(head, tail []byte, size int64) (audioInfo, error) {
	switch {
	case bytes.HasPrefix(head, []byte("fLaC")):
		d, err := flacDuration(head, tail)
		return audioInfo{Format: "flac", Duration: d}, err
	case bytes.HasPrefix(head, []byte("OggS")):
		d, err := oggOpusDuration(head, tail)
		return audioInfo{Format: "ogg-opus", Duration: d}, err
	case len(head) >= 12 && bytes.Equal(head[0:4], []byte("RIFF")) && bytes.Equal(head[8:12], []byte("WAVE")):
		d, err := wavDuration(head, size)
		return audioInfo{Format: "wav", Duration: d}, err
	}
	return audioInfo{}, errUnsupported
}

func seconds(samples uint64, rate uint32) time.Duration {
	// Whole seconds and remainder apart, so 8 h at 192 kHz cannot overflow.
	s := samples / uint64(rate)
	rem := samples % uint64(rate)
	return time.Duration(s)*time.Second + time.Duration(rem*uint64(time.Second)/uint64(rate))
}

//-- FLAC --//

type flacStreamInfo struct {
	minBlock, maxBlock uint16
	rate               uint32
	bitsPerSample      uint8
	totalSamples       uint64
}

// flacDuration reads STREAMINFO, the first metadata block: total samples over
// sample rate. A FLAC written to a pipe (ffmpeg -f flac -) cannot seek back
// to fill in the total and leaves it 0; then the last frame's header says
// where the stream ends.
func flacDuration(head, tail []byte) (time.Duration, error) {
	si, err := parseStreamInfo(head)
	if err != nil {
		return 0, err
	}
	if si.totalSamples > 0 {
		return seconds(si.totalSamples, si.rate), nil
	}
	total, err := flacSamplesFromLastFrame(si, tail)
	if err != nil {
		return 0, fmt.Errorf("flac: STREAMINFO gives no total and %w", err)
	}
	return seconds(total, si.rate), nil
}

func parseStreamInfo(b []byte) (flacStreamInfo, error) {
	// "fLaC", then a metadata block header (1 byte last-flag|type, 3 bytes
	// length) whose type must be 0 (STREAMINFO) with length 34.
	if len(b) < 8+34 {
		return flacStreamInfo{}, errors.New("flac: file too short for STREAMINFO")
	}
	if b[4]&0x7f != 0 {
		return flacStreamInfo{}, errors.New("flac: first metadata block is not STREAMINFO")
	}
	if n := int(b[5])<<16 | int(b[6])<<8 | int(b[7]); n != 34 {
		return flacStreamInfo{}, fmt.Errorf("flac: STREAMINFO length %d, want 34", n)
	}
	p := b[8 : 8+34]
	// Bytes 10..17: sample rate (20 bits), channels-1 (3), bits-1 (5),
	// total samples (36).
	v := binary.BigEndian.Uint64(p[10:18])
	si := flacStreamInfo{
		minBlock:      binary.BigEndian.Uint16(p[0:2]),
		maxBlock:      binary.BigEndian.Uint16(p[2:4]),
		rate:          uint32(v >> 44),
		bitsPerSample: uint8(v>>36&0x1f) + 1,
		totalSamples:  v & (1<<36 - 1),
	}
	if si.rate == 0 {
		return si, errors.New("flac: STREAMINFO sample rate is 0")
	}
	return si, nil
}

// flacSamplesFromLastFrame finds the last frame in tail: the last offset
// where a frame header with a valid CRC-8 starts and the bytes from there to
// the end carry a valid frame CRC-16. Its first sample plus its block size is
// the stream's length.
func flacSamplesFromLastFrame(si flacStreamInfo, tail []byte) (uint64, error) {
	for i := len(tail) - 4; i >= 0; i-- {
		if tail[i] != 0xff || tail[i+1]&0xfe != 0xf8 {
			continue
		}
		h, ok := parseFrameHeader(tail[i:])
		if !ok {
			continue
		}
		frame := tail[i:]
		if crc16(frame[:len(frame)-2]) != binary.BigEndian.Uint16(frame[len(frame)-2:]) {
			continue
		}
		first := h.number
		if !h.variable {
			// Fixed block size: the header numbers frames, all of
			// STREAMINFO's block size but (perhaps) the last.
			first = h.number * uint64(si.maxBlock)
		}
		return first + uint64(h.blockSize), nil
	}
	return 0, errors.New("no complete frame found at the end of the file")
}

type frameHeader struct {
	variable  bool
	number    uint64 // frame number (fixed) or first sample number (variable)
	blockSize uint32
}

func parseFrameHeader(b []byte) (frameHeader, bool) {
	if len(b) < 6 {
		return frameHeader{}, false
	}
	h := frameHeader{variable: b[1]&1 == 1}
	bsCode, rateCode := b[2]>>4, b[2]&0x0f
	if bsCode == 0 || rateCode == 0x0f || b[3]&1 != 0 || b[3]>>4 > 10 || (b[3]>>1)&7 == 3 {
		return h, false // reserved values: not a header
	}
	// The frame or sample number, coded like UTF-8 (up to 7 bytes).
	i := 4
	c := b[i]
	var n uint64
	var extra int
	switch {
	case c&0x80 == 0:
		n = uint64(c)
	case c&0xe0 == 0xc0:
		n, extra = uint64(c&0x1f), 1
	case c&0xf0 == 0xe0:
		n, extra = uint64(c&0x0f), 2
	case c&0xf8 == 0xf0:
		n, extra = uint64(c&0x07), 3
	case c&0xfc == 0xf8:
		n, extra = uint64(c&0x03), 4
	case c&0xfe == 0xfc:
		n, extra = uint64(c&0x01), 5
	case c == 0xfe:
		n, extra = 0, 6
	default:
		return h, false
	}
	i++
	if len(b) < i+extra+3 {
		return h, false
	}
	for k := 0; k < extra; k++ {
		if b[i]&0xc0 != 0x80 {
			return h, false
		}
		n = n<<6 | uint64(b[i]&0x3f)
		i++
	}
	h.number = n
	switch {
	case bsCode == 1:
		h.blockSize = 192
	case bsCode <= 5:
		h.blockSize = 576 << (bsCode - 2)
	case bsCode == 6:
		h.blockSize = uint32(b[i]) + 1
		i++
	case bsCode == 7:
		h.blockSize = uint32(binary.BigEndian.Uint16(b[i:])) + 1
		i += 2
	default:
		h.blockSize = 256 << (bsCode - 8)
	}
	switch rateCode {
	case 0x0c:
		i++
	case 0x0d, 0x0e:
		i += 2
	}
	if len(b) < i+1 {
		return h, false
	}
	if crc8(b[:i]) != b[i] {
		return h, false
	}
	return h, true
}

func crc8(b []byte) byte {
	var c byte
	for _, x := range b {
		c ^= x
		for k := 0; k < 8; k++ {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c ^= uint16(x) << 8
		for k := 0; k < 8; k++ {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x8005
			} else {
				c <<= 1
			}
		}
	}
	return c
}

//-- Ogg Opus --//

// oggOpusDuration reads the OpusHead packet of the first page (pre-skip) and
// the granule position of the last page of the same stream: Opus granules
// count 48 kHz samples whatever the input rate, and the first pre-skip
// samples are decoder warm-up, not audio.
func oggOpusDuration(head, tail []byte) (time.Duration, error) {
	first, ok := parseOggPage(head)
	if !ok {
		return 0, errors.New("ogg: first page is damaged")
	}
	if !bytes.HasPrefix(first.body, []byte("OpusHead")) || len(first.body) < 19 {
		return 0, errors.New("ogg: the stream is not Opus (no OpusHead)")
	}
	preSkip := binary.LittleEndian.Uint16(first.body[10:12])
	for i := len(tail) - 27; i >= 0; i-- {
		if !bytes.HasPrefix(tail[i:], []byte("OggS")) {
			continue
		}
		p, ok := parseOggPage(tail[i:])
		if !ok || p.serial != first.serial || p.granule == -1 {
			continue
		}
		g := p.granule - int64(preSkip)
		if g < 0 {
			g = 0
		}
		return seconds(uint64(g), 48000), nil
	}
	return 0, errors.New("ogg: no complete page found at the end of the file")
}

type oggPage struct {
	granule int64
	serial  uint32
	body    []byte
}

// parseOggPage parses the page at the start of b and checks its CRC, so a
// stray "OggS" inside compressed data is not taken for a page.
func parseOggPage(b []byte) (oggPage, bool) {
	if len(b) < 27 || !bytes.HasPrefix(b, []byte("OggS")) || b[4] != 0 {
		return oggPage{}, false
	}
	nseg := int(b[26])
	if len(b) < 27+nseg {
		return oggPage{}, false
	}
	n := 0
	for _, s := range b[27 : 27+nseg] {
		n += int(s)
	}
	end := 27 + nseg + n
	if len(b) < end {
		return oggPage{}, false
	}
	page := append([]byte(nil), b[:end]...)
	want := binary.LittleEndian.Uint32(page[22:26])
	page[22], page[23], page[24], page[25] = 0, 0, 0, 0
	if oggCRC(page) != want {
		return oggPage{}, false
	}
	return oggPage{
		granule: int64(binary.LittleEndian.Uint64(b[6:14])),
		serial:  binary.LittleEndian.Uint32(b[14:18]),
		body:    b[27+nseg : end],
	}, true
}

var oggTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for k := 0; k < 8; k++ {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(b []byte) uint32 {
	var c uint32
	for _, x := range b {
		c = c<<8 ^ oggTable[byte(c>>24)^x]
	}
	return c
}

//-- WAV --//

// wavDuration walks the RIFF chunks to "fmt " (byte rate) and "data" (its
// length). A WAV written to a pipe has no real data length (0 or
// 0xFFFFFFFF); then the data runs to the end of the file.
func wavDuration(head []byte, size int64) (time.Duration, error) {
	var byteRate uint32
	for i := 12; i+8 <= len(head); {
		id := string(head[i : i+4])
		n := int64(binary.LittleEndian.Uint32(head[i+4 : i+8]))
		body := int64(i + 8)
		switch id {
		case "fmt ":
			if body+16 > int64(len(head)) {
				return 0, errors.New("wav: fmt chunk cut short")
			}
			byteRate = binary.LittleEndian.Uint32(head[body+8 : body+12])
		case "data":
			if byteRate == 0 {
				return 0, errors.New("wav: data before a usable fmt chunk")
			}
			if n == 0 || n == 0xffffffff || body+n > size {
				n = size - body
			}
			return time.Duration(float64(n) / float64(byteRate) * float64(time.Second)), nil
		}
		next := body + n + n%2 // chunks are padded to even sizes
		if next > int64(len(head)) {
			break
		}
		i = int(next)
	}
	return 0, errors.New("wav: no data chunk in the first bytes of the file")
}
