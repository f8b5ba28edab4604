package gcs

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The JSON API's resumable upload protocol, as far as the front speaks it:
// https://cloud.google.com/storage/docs/performing-resumable-uploads

// objectResource is the part of the JSON API object resource an upload may set.
type objectResource struct {
	Name               string            `json:"name"`
	ContentType        string            `json:"contentType"`
	ContentEncoding    string            `json:"contentEncoding"`
	ContentDisposition string            `json:"contentDisposition"`
	ContentLanguage    string            `json:"contentLanguage"`
	CacheControl       string            `json:"cacheControl"`
	Metadata           map[string]string `json:"metadata"`
	MD5Hash            string            `json:"md5Hash"`
	CRC32C             string            `json:"crc32c"`
}

func uploadBucket(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/upload/storage/v1/b/")
	if !ok {
		return "", false
	}
	bucket, tail, ok := strings.Cut(rest, "/")
	return bucket, ok && strings.Trim(tail, "/") == "o"
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// checkDeclared compares the checksums the client declared (in the object
// resource, or in X-Goog-Hash on the last request) with those of the bytes
// received. It returns a message and status for a mismatch, or "".
func checkDeclared(attrs objectResource, xGoogHash string, crc uint32, sum []byte) (string, int) {
	gotCRC := encodeCRC(crc)
	declCRC, declMD5 := attrs.CRC32C, attrs.MD5Hash
	for _, kv := range strings.Split(xGoogHash, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "crc32c":
			if declCRC != "" && declCRC != v {
				return fmt.Sprintf("crc32c declared twice, as %s and %s", declCRC, v), http.StatusBadRequest
			}
			declCRC = v
		case "md5":
			if declMD5 != v {
				if declMD5 == "" {
					// The session hashes MD5 only when it is declared
					// at its start (md5Hash), as the official clients do.
					return "local gcs: an md5 in X-Goog-Hash is checked only when the session declared md5Hash", http.StatusNotImplemented
				}
				return fmt.Sprintf("md5 declared twice, as %s and %s", declMD5, v), http.StatusBadRequest
			}
		}
	}
	if declCRC != "" && declCRC != gotCRC {
		return fmt.Sprintf("crc32c mismatch: declared %s, received bytes have %s", declCRC, gotCRC), http.StatusBadRequest
	}
	if declMD5 != "" {
		if got := base64.StdEncoding.EncodeToString(sum); got != declMD5 {
			return fmt.Sprintf("md5 mismatch: declared %s, received bytes have %s", declMD5, got), http.StatusBadRequest
		}
	}
	return "", 0
}

func encodeCRC(c uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c)
	return base64.StdEncoding.EncodeToString(b[:])
}

// parseContentRange returns the first byte of the chunk (-1: no bytes) and the
// total (-1: not known yet).
func parseContentRange(h string) (start, total int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
	}
	rng, tot, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
		}
	}
	if rng == "*" {
		return -1, total, nil
	}
	a, _, ok := strings.Cut(rng, "-")
	if start, err = strconv.ParseInt(a, 10, 64); !ok || err != nil {
		return 0, 0, fmt.Errorf("invalid Content-Range %q", h)
	}
	return start, total, nil
}
