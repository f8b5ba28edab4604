package media

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
)

// The download asks for the current link: a manifest re-signed after
// detection is what the download uses; within MaxAge one read serves many
// downloads, and Fresh reads again for a link the host refused.
func TestLinksCurrentLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, ct := storageEnv(t)
	put(t, st, "config", "manifest.json", `{"pages":{"p1":{"url":"https://videos.example/l1.mp4?sig=old"}}}`)
	links := NewLinks("gs://config/manifest.json", st, nil, time.Hour)

	e, err := links.Entry(ctx, "p1", false)
	if err != nil || e.URL != "https://videos.example/l1.mp4?sig=old" {
		t.Fatalf("first link: %+v, %v", e, err)
	}
	put(t, st, "config", "manifest.json", `{"pages":{"p1":{"url":"https://videos.example/l1.mp4?sig=new"}}}`)
	before := ct.n.Load()
	if e, err := links.Entry(ctx, "p1", false); err != nil || e.URL != "https://videos.example/l1.mp4?sig=old" {
		t.Fatalf("cached link: %+v, %v", e, err)
	}
	if n := ct.n.Load() - before; n != 0 {
		t.Fatalf("a young manifest was read again (%d requests)", n)
	}
	if e, err := links.Entry(ctx, "p1", true); err != nil || e.URL != "https://videos.example/l1.mp4?sig=new" {
		t.Fatalf("fresh link: %+v, %v", e, err)
	}

	// A page added since the cached read is found in a fresh one.
	put(t, st, "config", "manifest.json", `{"pages":{"p1":{"url":"https://videos.example/l1.mp4?sig=new"},"p2":{"url":"https://videos.example/l2.mp4"}}}`)
	if e, err := links.Entry(ctx, "p2", false); err != nil || e.URL != "https://videos.example/l2.mp4" {
		t.Fatalf("page added since the cached read: %+v, %v", e, err)
	}

	if _, err := links.Entry(ctx, "gone", false); !failure.IsPermanent(err) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("unlisted page: %v, want a permanent failure naming it", err)
	}
	if _, err := NewLinks("", st, nil, 0).Entry(ctx, "p1", false); !failure.IsPermanent(err) || !strings.Contains(err.Error(), "MEDIA_MANIFEST_URI") {
		t.Fatalf("no manifest configured: %v", err)
	}
}
