package analyze

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/local/gcs"
	"github.com/coursekb/pipeline/shared/failure"
)

// mp4Box is a box of type typ around payload.
func mp4Box(typ string, payload ...[]byte) []byte {
	body := bytes.Join(payload, nil)
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}

// mvhd0 and mvhd1 are movie headers of versions 0 and 1.
func mvhd0(timescale, duration uint32) []byte {
	p := []byte{0, 0, 0, 0}
	p = binary.BigEndian.AppendUint32(p, 1) // creation
	p = binary.BigEndian.AppendUint32(p, 2) // modification
	p = binary.BigEndian.AppendUint32(p, timescale)
	p = binary.BigEndian.AppendUint32(p, duration)
	return mp4Box("mvhd", p, make([]byte, 80))
}

func mvhd1(timescale uint32, duration uint64) []byte {
	p := []byte{1, 0, 0, 0}
	p = binary.BigEndian.AppendUint64(p, 1)
	p = binary.BigEndian.AppendUint64(p, 2)
	p = binary.BigEndian.AppendUint32(p, timescale)
	p = binary.BigEndian.AppendUint64(p, duration)
	return mp4Box("mvhd", p, make([]byte, 80))
}

var ftyp = mp4Box("ftyp", []byte("isom\x00\x00\x02\x00isomiso2avc1mp41"))

func TestMP4DurationLayouts(t *testing.T) {
	t.Parallel()
	mdat := mp4Box("mdat", make([]byte, 1000))
	// A 64-bit size: size field 1, then the size after the type.
	large := binary.BigEndian.AppendUint32(nil, 1)
	large = append(large, "mdat"...)
	large = binary.BigEndian.AppendUint64(large, 16+500)
	large = append(large, make([]byte, 500)...)
	mehd := mp4Box("mvex", mp4Box("trex", make([]byte, 24)), mp4Box("mehd", []byte{0, 0, 0, 0}, binary.BigEndian.AppendUint32(nil, 90_000*125)))
	// A last box of size 0 runs to the end of the file.
	toEnd := append(binary.BigEndian.AppendUint32(nil, 0), "mdat"...)
	toEnd = append(toEnd, make([]byte, 300)...)

	for _, tc := range []struct {
		name string
		file []byte
		want float64
	}{
		{"moov first", cat(ftyp, mp4Box("moov", mvhd0(1000, 22167)), mdat), 22.167},
		{"moov last", cat(ftyp, mdat, mp4Box("moov", mp4Box("trak"), mvhd0(600, 1800))), 3},
		{"version 1", cat(ftyp, mp4Box("moov", mvhd1(90_000, 90_000*3*3600)), mdat), 3 * 3600},
		{"64-bit box", cat(ftyp, large, mp4Box("moov", mvhd0(1000, 5000))), 5},
		{"fragmented with mehd", cat(ftyp, mp4Box("moov", mvhd0(90_000, 0), mehd)), 125},
		{"moov before a box to the end", cat(ftyp, mp4Box("moov", mvhd0(1000, 1500)), toEnd), 1.5},
	} {
		got, err := MP4Duration(bytes.NewReader(tc.file), int64(len(tc.file)))
		if err != nil || got != tc.want {
			t.Errorf("%s: %g, %v; want %g", tc.name, got, err, tc.want)
		}
	}

	for _, tc := range []struct {
		name, file, says string
	}{
		{"no moov", string(cat(ftyp, mdat)), "no moov box"},
		{"no mvhd", string(cat(ftyp, mp4Box("moov", mp4Box("trak")))), "moov holds no mvhd"},
		{"zero timescale", string(cat(ftyp, mp4Box("moov", mvhd0(0, 10)))), "timescale is 0"},
		{"no duration", string(cat(ftyp, mp4Box("moov", mvhd0(1000, 0)))), "declares no duration"},
		{"unknown duration", string(cat(ftyp, mp4Box("moov", mvhd0(1000, 0xFFFFFFFF)))), "declares no duration"},
		{"box past the end", string(cat(ftyp, mdat[:500])), "does not fit"},
		{"stray bytes", string(cat(ftyp, []byte{0, 0, 1})), "stray bytes"},
		{"tiny box size", string(cat(ftyp, []byte{0, 0, 0, 4, 'f', 'r', 'e', 'e'})), "size 4 does not fit"},
		{"unknown version", string(cat(ftyp, mp4Box("moov", mp4Box("mvhd", []byte{7, 0, 0, 0}, make([]byte, 96))))), "mvhd version 7"},
		{"short mvhd", string(cat(ftyp, mp4Box("moov", mp4Box("mvhd", []byte{0, 0, 0, 0, 1, 2})))), "mvhd box is truncated"},
	} {
		_, err := MP4Duration(strings.NewReader(tc.file), int64(len(tc.file)))
		if !errors.Is(err, ErrNotMP4) || !failure.IsPermanent(err) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want a permanent ErrNotMP4 saying %q", tc.name, err, tc.says)
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Reading the length of a large object whose moov box comes after its
// media costs two range reads, not a download.
func TestObjectReaderReadsLittle(t *testing.T) {
	t.Parallel()
	srv, err := gcs.Start(gcs.Options{Buckets: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c := srv.Client()
	defer c.Close()
	file := cat(ftyp, mp4Box("mdat", make([]byte, 3<<20)), mp4Box("moov", mvhd0(1000, 61_500)))
	w := c.Bucket("raw").Object("v.mp4").NewWriter(t.Context())
	if _, err := w.Write(file); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := newObjectReader(t.Context(), c.Bucket("raw").Object("v.mp4"), int64(len(file)))
	d, err := MP4Duration(r, int64(len(file)))
	if err != nil || d != 61.5 {
		t.Fatalf("duration %g, %v; want 61.5", d, err)
	}
	if r.reads != 2 {
		t.Errorf("%d range reads, want 2 (the start, then the moov box)", r.reads)
	}

	missing := newObjectReader(t.Context(), c.Bucket("raw").Object("gone.mp4"), 1000)
	if _, err := MP4Duration(missing, 1000); err == nil || failure.IsPermanent(err) {
		t.Errorf("unreadable object: %v, want a retryable error", err)
	}
}
