package transfer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/failure"
)

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

// verify compares what storage reports with what was sent: the size, the MD5
// the media source promised (md5hex, when it did) and the CRC32C of what was
// sent (crc, when it is known here; nil when Cloud Storage checked it before
// finalizing). A mismatch means the bytes were damaged on the way: the
// object is deleted (only that generation) and the error is retryable.
func (c *Copier) verify(ctx context.Context, obj *storage.ObjectHandle, a *storage.ObjectAttrs, size int64, md5hex string, crc *uint32) (Result, error) {
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
	case crc != nil && a.CRC32C != *crc:
		problem = fmt.Sprintf("storage reports CRC32C %08x, sent bytes have %08x", a.CRC32C, *crc)
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
