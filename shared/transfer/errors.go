package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/api/googleapi"

	"github.com/coursekb/pipeline/shared/failure"
)

// ErrLinkRefused marks a media link the host refused (401, 403, 410): what an
// expired signed URL gets. It is permanent for that link, not for the media.
var ErrLinkRefused = errors.New("media host refused the link")

// statusError maps a non-2xx answer: the URL is wrong or gone (permanent) or
// the host is in trouble (retryable).
func statusError(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	msg := fmt.Sprintf("media host answered %s", resp.Status)
	if s := strings.TrimSpace(string(bytes.ToValidUTF8(snippet, nil))); s != "" {
		msg += ": " + s
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		return failure.Retryablef("%s", msg)
	case resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusGone:
		// An expired or revoked signed link answers so: the caller may ask
		// the media source for a new link once.
		return &failure.Permanent{Err: fmt.Errorf("%w: %s", ErrLinkRefused, msg)}
	default: // 404, other 4xx, unfollowed 3xx
		return failure.Permanentf("%s", msg)
	}
}

// storageError classifies a Cloud Storage failure. A failed precondition means
// another attempt wrote the object meanwhile: retrying finds it and reuses it.
func storageError(what string, err error) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch {
		case ge.Code == http.StatusPreconditionFailed:
			return failure.Retryablef("%s: object written by another attempt meanwhile: %w", what, err)
		case ge.Code == http.StatusNotFound:
			return failure.Permanentf("%s: bucket not found: %w", what, err)
		case ge.Code == http.StatusForbidden || ge.Code == http.StatusUnauthorized:
			return failure.Permanentf("%s: access denied: %w", what, err)
		}
	}
	return failure.Retryablef("%s: %w", what, err)
}

// uploadError classifies the failure of the request that finalizes an
// upload. Cloud Storage answers 400 when the bytes it received differ from a
// declared checksum, and finalizes nothing: the CRC32C the Writer computed
// over what it sent ("Provided CRC32C ... doesn't match calculated CRC32C
// ..."), so the bytes were damaged on the way there (retryable), or else the
// MD5 the media source promised (md5hex), so the source's bytes are not the
// promised ones (permanent).
func uploadError(err error, md5hex string) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusBadRequest {
		switch {
		case strings.Contains(strings.ToLower(ge.Message+" "+ge.Body), "crc32c"):
			return failure.Retryablef("Cloud Storage refused the uploaded bytes: they differ from what was sent (CRC32C), damaged on the way: %w", err)
		case md5hex != "":
			return failure.Permanentf("media source says MD5 %s, but Cloud Storage found the downloaded bytes differ and refused them: %w", strings.ToLower(md5hex), err)
		}
	}
	return storageError("finish upload", err)
}

// Redact drops a URL's query and fragment: signed URLs carry credentials,
// which must not reach logs or lesson documents.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment, u.User = "", nil
	return u.String()
}

func redactErr(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err
}
