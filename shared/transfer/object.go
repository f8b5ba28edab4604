package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/failure"
)

// FromObject copies a master file (srcBucket/srcObject, in the ingest prefix)
// to dst, server-side, with the same checks as FromURL: expect's size and MD5
// are checked against the source object before anything is copied.
func (c *Copier) FromObject(ctx context.Context, srcBucket, srcObject string, dst Dest, expect Source) (Result, error) {
	where := fmt.Sprintf("copy gs://%s/%s to gs://%s/%s", srcBucket, srcObject, dst.Bucket, dst.Object)
	res, err := c.fromObject(ctx, srcBucket, srcObject, dst, expect)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

func (c *Copier) fromObject(ctx context.Context, srcBucket, srcObject string, dst Dest, expect Source) (Result, error) {
	if err := checkInputs(Source{URL: "gs://x", Size: expect.Size, MD5: expect.MD5}, dst); err != nil {
		return Result{}, err
	}
	srcObj := c.st.Bucket(srcBucket).Object(srcObject)
	sa, err := srcObj.Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return Result{}, failure.Permanentf("master file not found")
	}
	if err != nil {
		return Result{}, storageError("read master file", err)
	}
	srcMD5 := hex.EncodeToString(sa.MD5)
	switch {
	case c.opts.MaxBytes > 0 && sa.Size > c.opts.MaxBytes:
		return Result{}, failure.Permanentf("master file has %d bytes, over the %d-byte limit", sa.Size, c.opts.MaxBytes)
	case expect.Size > 0 && sa.Size != expect.Size:
		return Result{}, failure.Permanentf("media source says %d bytes, master file has %d", expect.Size, sa.Size)
	case expect.MD5 != "" && len(sa.MD5) > 0 && !strings.EqualFold(expect.MD5, srcMD5):
		return Result{}, failure.Permanentf("media source says MD5 %s, master file has %s", strings.ToLower(expect.MD5), srcMD5)
	}
	if len(sa.MD5) == 0 {
		srcMD5 = "" // composite objects have no MD5
	}

	obj := c.st.Bucket(dst.Bucket).Object(dst.Object)
	cond, res, reused, err := c.existing(ctx, obj, dst, sa.Size, srcMD5)
	if err != nil || reused {
		return res, err
	}
	cp := obj.If(cond).CopierFrom(srcObj.Generation(sa.Generation))
	cp.ContentType = dst.ContentType
	if cp.ContentType == "" {
		cp.ContentType = sa.ContentType
	}
	if cp.ContentType == "" || cp.ContentType == "application/octet-stream" {
		cp.ContentType = ContentTypeOf(Ext(srcObject, ""))
	}
	cp.Metadata = dst.Metadata
	attrs, err := cp.Run(ctx)
	if err != nil {
		return Result{}, storageError("copy", err)
	}
	return c.verify(ctx, obj, attrs, sa.Size, srcMD5, &sa.CRC32C)
}
