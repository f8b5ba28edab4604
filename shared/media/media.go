// Package media finds where a lesson's video comes from. Hotmart's public API
// gives no media URL (DESIGN.md section 5, "Hotmart"), so the producer
// configures a media source, either or both of:
//
//   - a manifest: JSON {"pages":{"<pageId>":{"url":"...","size":123,"md5":"hex"}}}
//     naming a URL (often a signed URL on their video host) per page, kept at
//     a local path, an http(s) URL or gs://bucket/object;
//   - an ingest prefix in the raw bucket holding master files named
//     <prefix>/<productId>/<moduleId>/<pageId>.<ext>.
//
// When both have a page, the ingest file wins: it is the producer's master,
// dropped there on purpose, while a manifest URL usually points at a
// transcoded copy on a streaming host, and a server-side copy is cheaper and
// surer than a download.
//
// Detection records which media a page has (Resolver: its identity and
// fingerprint, never a link); the download asks the manifest for the page's
// current link when it downloads (Links), because manifest links are often
// signed, expire, and carry credentials that must not sit in Firestore.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/transfer"
)

// Kinds of Media.
const (
	KindURL    = "url"
	KindObject = "object"
)

// maxManifest bounds a manifest's size: it is read whole.
const maxManifest = 64 << 20

// Manifest maps Hotmart page ids to media URLs.
type Manifest struct {
	Pages map[string]Entry `json:"pages"`
}

// Entry is one page's media in a manifest.
type Entry struct {
	URL  string `json:"url"`
	Size int64  `json:"size,omitempty"` // bytes; 0 = unknown
	MD5  string `json:"md5,omitempty"`  // hex; "" = unknown
}

// ParseManifest reads and checks a manifest. Every problem is reported at
// once, by page id.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, failure.Permanentf("media manifest: %v", err)
	}
	var problems []string
	for id, e := range m.Pages {
		u, err := url.Parse(e.URL)
		switch {
		case e.URL == "":
			problems = append(problems, fmt.Sprintf("page %s: no url", id))
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			problems = append(problems, fmt.Sprintf("page %s: url is not an http(s) URL", id))
		}
		if e.Size < 0 {
			problems = append(problems, fmt.Sprintf("page %s: negative size", id))
		}
		if b, err := hex.DecodeString(e.MD5); e.MD5 != "" && (err != nil || len(b) != 16) {
			problems = append(problems, fmt.Sprintf("page %s: md5 %q is not 32 hex digits", id, e.MD5))
		}
		e.MD5 = strings.ToLower(e.MD5)
		m.Pages[id] = e
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, failure.Permanentf("media manifest: %s", strings.Join(problems, "; "))
	}
	if m.Pages == nil {
		m.Pages = map[string]Entry{}
	}
	return &m, nil
}

// LoadManifest reads a manifest from a local path (or file:// URL), an http(s)
// URL, or gs://bucket/object. st and hc are needed only for the schemes that
// use them; hc nil means http.DefaultClient.
func LoadManifest(ctx context.Context, uri string, st *storage.Client, hc *http.Client) (*Manifest, error) {
	b, err := readURI(ctx, uri, st, hc)
	if err != nil {
		return nil, fmt.Errorf("load media manifest %s: %w", redact(uri), err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("load media manifest %s: %w", redact(uri), err)
	}
	return m, nil
}

func readURI(ctx context.Context, uri string, st *storage.Client, hc *http.Client) ([]byte, error) {
	switch {
	case strings.HasPrefix(uri, "gs://"):
		bucket, object, ok := strings.Cut(strings.TrimPrefix(uri, "gs://"), "/")
		if !ok || bucket == "" || object == "" {
			return nil, failure.Permanentf("want gs://bucket/object")
		}
		if st == nil {
			return nil, failure.Permanentf("no Cloud Storage client")
		}
		r, err := st.Bucket(bucket).Object(object).NewReader(ctx)
		if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
			return nil, failure.Permanentf("not found")
		}
		if err != nil {
			return nil, failure.Retryablef("%w", err)
		}
		defer r.Close()
		return readCapped(r)
	case strings.HasPrefix(uri, "http://"), strings.HasPrefix(uri, "https://"):
		if hc == nil {
			hc = http.DefaultClient
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
		if err != nil {
			return nil, failure.Permanentf("%v", err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, failure.Retryablef("GET failed: %v", errors.Unwrap(err))
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return nil, failure.Retryablef("server answered %s", resp.Status)
		case resp.StatusCode >= 300:
			return nil, failure.Permanentf("server answered %s", resp.Status)
		}
		b, err := readCapped(resp.Body)
		if err != nil {
			return nil, failure.Retryablef("%w", err)
		}
		return b, nil
	default:
		p := strings.TrimPrefix(uri, "file://")
		f, err := os.Open(p)
		if err != nil {
			return nil, failure.Permanentf("%w", err)
		}
		defer f.Close()
		return readCapped(f)
	}
}

func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, failure.Permanentf("larger than %d bytes", maxManifest)
	}
	return b, nil
}

// Resolver answers, for each page, where its media is. It lists the ingest
// prefix once per product and remembers the answer, so make one Resolver per
// detection run. It is safe for concurrent use.
type Resolver struct {
	manifest *Manifest
	st       *storage.Client
	bucket   string
	prefix   string

	mu     sync.Mutex
	listed map[int64]map[string]ingestFile // product → "module/page" and "page" → file
}

type ingestFile struct {
	name       string
	size       int64
	md5        string
	generation int64
	updated    int64 // unix nanoseconds
}

// NewResolver returns a resolver over a manifest (nil: none) and an ingest
// prefix of rawBucket (st nil or rawBucket "": none).
func NewResolver(manifest *Manifest, st *storage.Client, rawBucket, ingestPrefix string) *Resolver {
	return &Resolver{
		manifest: manifest,
		st:       st,
		bucket:   rawBucket,
		prefix:   strings.Trim(ingestPrefix, "/"),
		listed:   map[int64]map[string]ingestFile{},
	}
}

// Resolve returns the page's media, or nil and no error when no source has it
// (a page with has_media and no media yet is reported, not failed).
//
// The ingest file for a page is <prefix>/<product>/<module>/<page>.<ext>; when
// the module does not match (the lesson moved), a file for the same page id
// under another module of the product is used. Several files for one page:
// the newest wins. Empty objects are ignored (a placeholder is not a video).
func (r *Resolver) Resolve(ctx context.Context, productID int64, moduleID, pageID string) (*lessonstate.Media, error) {
	if r.st != nil && r.bucket != "" {
		files, err := r.ingest(ctx, productID)
		if err != nil {
			return nil, err
		}
		f, ok := files[moduleID+"/"+pageID]
		if !ok {
			f, ok = files[pageID]
		}
		if ok {
			uri := "gs://" + r.bucket + "/" + f.name
			return &lessonstate.Media{
				Kind:        KindObject,
				Ref:         uri,
				Ext:         transfer.Ext(f.name, ""),
				Size:        f.size,
				MD5:         f.md5,
				Fingerprint: fingerprint(KindObject, uri, strconv.FormatInt(f.generation, 10), f.md5),
			}, nil
		}
	}
	if r.manifest != nil {
		if e, ok := r.manifest.Pages[pageID]; ok {
			return &lessonstate.Media{
				Kind:        KindURL,
				Ref:         pageID,
				Ext:         transfer.Ext(e.URL, ""),
				Size:        e.Size,
				MD5:         e.MD5,
				Fingerprint: URLFingerprint(e),
			}, nil
		}
	}
	return nil, nil
}

func (r *Resolver) ingest(ctx context.Context, productID int64) (map[string]ingestFile, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if files, ok := r.listed[productID]; ok {
		return files, nil
	}
	base := strconv.FormatInt(productID, 10) + "/"
	if r.prefix != "" {
		base = r.prefix + "/" + base
	}
	files := map[string]ingestFile{}
	better := func(key string, f ingestFile) {
		if old, ok := files[key]; !ok || f.updated > old.updated || (f.updated == old.updated && f.name > old.name) {
			files[key] = f
		}
	}
	it := r.st.Bucket(r.bucket).Objects(ctx, &storage.Query{Prefix: base})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, failure.Retryablef("list media ingest gs://%s/%s: %w", r.bucket, base, err)
		}
		rest := strings.TrimPrefix(a.Name, base)
		module, file, ok := strings.Cut(rest, "/")
		if !ok || module == "" || strings.Contains(file, "/") || a.Size == 0 {
			continue
		}
		page := strings.TrimSuffix(file, path.Ext(file))
		if page == "" {
			continue
		}
		f := ingestFile{name: a.Name, size: a.Size, md5: hex.EncodeToString(a.MD5), generation: a.Generation, updated: a.Updated.UnixNano()}
		better(module+"/"+page, f)
		better(page, f)
	}
	r.listed[productID] = files
	return files, nil
}

// signingParams are query parameters that change with every signature and say
// nothing about the bytes (GCS V2/V4, S3, CloudFront, common CDN tokens).
var signingParams = []string{"x-goog-", "x-amz-", "googleaccessid", "expires", "signature", "key-pair-id", "policy", "token", "sig", "se", "st", "sp", "sv", "sr"}

// URLFingerprint identifies the bytes a manifest entry names. Signed URLs get
// a new query every time they are signed, so when the entry gives a size or
// an MD5 the whole query is left out (those identify the bytes); otherwise
// only the known signing parameters are.
func URLFingerprint(e Entry) string {
	u, err := url.Parse(e.URL)
	if err != nil {
		return fingerprint(KindURL, e.URL, strconv.FormatInt(e.Size, 10), e.MD5)
	}
	u.Fragment = ""
	if e.Size > 0 || e.MD5 != "" {
		u.RawQuery = ""
	} else {
		q := u.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, p := range signingParams {
				if lk == p || (strings.HasSuffix(p, "-") && strings.HasPrefix(lk, p)) {
					q.Del(k)
				}
			}
		}
		u.RawQuery = q.Encode() // sorted: order does not matter either
	}
	return fingerprint(KindURL, u.String(), strconv.FormatInt(e.Size, 10), strings.ToLower(e.MD5))
}

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func redact(uri string) string {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		return uri[:i] + "?…"
	}
	return uri
}
