package media

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/storage"

	"github.com/coursekb/pipeline/shared/failure"
)

// Links answers, at download time, the current link of a page's media from
// the manifest. A manifest is read at most once per MaxAge and shared by the
// downloads of an instance, so a burst of downloads reads it once; Fresh
// reads it again at once, for a link the media host refused (an expired
// signature) that a re-signed manifest may already have replaced. It is
// safe for concurrent use.
type Links struct {
	uri    string
	st     *storage.Client
	hc     *http.Client
	maxAge time.Duration
	now    func() time.Time

	mu     sync.Mutex
	cached *Manifest
	readAt time.Time
}

// DefaultLinksMaxAge bounds how stale a link may be: short, since signed
// links may live only minutes.
const DefaultLinksMaxAge = 30 * time.Second

// NewLinks reads the manifest at uri (see LoadManifest); st and hc are the
// clients its scheme needs.
func NewLinks(uri string, st *storage.Client, hc *http.Client, maxAge time.Duration) *Links {
	if maxAge <= 0 {
		maxAge = DefaultLinksMaxAge
	}
	return &Links{uri: uri, st: st, hc: hc, maxAge: maxAge, now: time.Now}
}

// Entry returns the manifest's entry for pageID. With fresh, the manifest is
// read again even if the cached copy is young; a page the cached copy does
// not list is looked for in a fresh read too (detection saw it in a newer
// manifest). A page the current manifest does not list is a permanent
// failure naming it.
func (l *Links) Entry(ctx context.Context, pageID string, fresh bool) (Entry, error) {
	if l.uri == "" {
		return Entry{}, failure.Permanentf("page %s has manifest media, but no media manifest is configured (MEDIA_MANIFEST_URI)", pageID)
	}
	m, cached, err := l.manifest(ctx, fresh)
	if err != nil {
		return Entry{}, err
	}
	e, ok := m.Pages[pageID]
	if !ok && cached {
		if m, _, err = l.manifest(ctx, true); err != nil {
			return Entry{}, err
		}
		e, ok = m.Pages[pageID]
	}
	if !ok {
		return Entry{}, failure.Permanentf("the media manifest no longer lists page %s", pageID)
	}
	return e, nil
}

// manifest returns the manifest and whether it came from the cache.
func (l *Links) manifest(ctx context.Context, fresh bool) (*Manifest, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !fresh && l.cached != nil && l.now().Sub(l.readAt) < l.maxAge {
		return l.cached, true, nil
	}
	m, err := LoadManifest(ctx, l.uri, l.st, l.hc)
	if err != nil {
		return nil, false, fmt.Errorf("current media link: %w", err)
	}
	l.cached, l.readAt = m, l.now()
	return m, false, nil
}
