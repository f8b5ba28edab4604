package taxonomy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/setup"
)

// Firestore layout (DESIGN.md section 3).
const (
	// Collection holds one document per category, keyed by its id, with
	// the fields below; vector search runs on it.
	Collection = "taxonomy"
	// MarkerID is the collection's one document that is not a category:
	// which taxonomy version (model, dimensions) is stored, and who is
	// storing one now. Category ids cannot start with "_".
	MarkerID = "_sync"

	FieldSchool          = "school"
	FieldName            = "name"
	FieldDescription     = "description"
	FieldTaxonomyVersion = "taxonomyVersion"
	FieldEmbedding       = "embedding"
	FieldModel           = "embeddingModel"
)

// categoryDoc is a taxonomy/{categoryId} document.
type categoryDoc struct {
	School          string             `firestore:"school"`
	Name            string             `firestore:"name"`
	Description     string             `firestore:"description"`
	TaxonomyVersion int                `firestore:"taxonomyVersion"`
	EmbeddingModel  string             `firestore:"embeddingModel"`
	Embedding       firestore.Vector32 `firestore:"embedding"`
	UpdatedAt       time.Time          `firestore:"updatedAt"`
}

// marker is the taxonomy/_sync document.
type marker struct {
	// What is stored: version, embedding space, the file's fingerprint.
	Version         int       `firestore:"version"`
	Model           string    `firestore:"embeddingModel"`
	Dimensions      int       `firestore:"dimensions"`
	Fingerprint     string    `firestore:"fingerprint"`
	Categories      int       `firestore:"categories"`
	EmbeddingTokens int64     `firestore:"embeddingTokens"`
	DoneAt          time.Time `firestore:"doneAt"`
	// Lease is held by the instance storing a version now.
	Lease *lease `firestore:"lease,omitempty"`
}

type lease struct {
	Version int       `firestore:"version"`
	Holder  string    `firestore:"holder"`
	Until   time.Time `firestore:"until"`
}

// stores reports whether m records tax stored in space (model, dimensions).
func (m marker) stores(version int, model string, dims int) bool {
	return m.Version == version && m.Model == model && m.Dimensions == dims
}

// Syncer stores the categories' embeddings in Firestore once per taxonomy
// version and embedding space, whichever instance first needs them. It is
// safe for concurrent use.
//
// Instances that start together agree through the marker document: one
// takes a lease on it in a transaction and does the work; the others wait
// for the marker to say the version is stored (or for the lease to lapse,
// and then take it over). An instance whose file is older than the stored
// version changes nothing: during a rollout, old instances must not undo
// the new taxonomy.
type Syncer struct {
	fs    *firestore.Client
	emb   *Embedder
	tax   *Taxonomy
	log   *slog.Logger
	lease time.Duration
	poll  time.Duration
	id    string

	mu   sync.Mutex
	done bool
}

// SyncerOptions adjust a Syncer.
type SyncerOptions struct {
	// Lease bounds how long a crashed instance keeps the others waiting
	// (default 2 minutes: embedding a few hundred categories takes seconds).
	Lease time.Duration
	// Poll is how often a waiting instance reads the marker (default 1 s).
	Poll time.Duration
}

// NewSyncer returns a syncer of tax's embeddings, made by emb, into fs.
func NewSyncer(fs *firestore.Client, emb *Embedder, tax *Taxonomy, log *slog.Logger, o SyncerOptions) (*Syncer, error) {
	if err := setup.Missing("taxonomy syncer", map[string]any{"firestore": fs, "embedder": emb, "taxonomy": tax, "logger": log}); err != nil {
		return nil, err
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("taxonomy syncer: holder id: %w", err)
	}
	return &Syncer{fs: fs, emb: emb, tax: tax, log: log, lease: o.Lease, poll: o.Poll, id: hex.EncodeToString(b[:])}, nil
}

// SyncResult says what Ensure found or did.
type SyncResult struct {
	// Stored is true when this call embedded and stored the categories.
	Stored bool
	// Version is the taxonomy version in Firestore afterwards: this
	// instance's, or a newer one some other instance stored.
	Version         int
	Categories      int
	Removed         int
	EmbeddingTokens int64
}

// Ensure makes sure Firestore holds the embeddings of this taxonomy version
// (or of a newer one), storing them if no instance has. After the first
// success it returns at once, without reading anything. Its errors are
// retryable, but for a refusal by OpenAI that a retry would meet again.
func (s *Syncer) Ensure(ctx context.Context) (SyncResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return SyncResult{Version: s.tax.Version}, nil
	}
	res, err := s.ensure(ctx)
	if err != nil {
		return res, fmt.Errorf("taxonomy v%d: %w", s.tax.Version, err)
	}
	s.done = true
	return res, nil
}

func (s *Syncer) ensure(ctx context.Context) (SyncResult, error) {
	ref := s.fs.Collection(Collection).Doc(MarkerID)
	v, model, dims := s.tax.Version, s.emb.Model(), s.emb.Dimensions()
	for {
		var (
			m       marker
			took    bool
			waitFor time.Time
		)
		err := s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			took, waitFor = false, time.Time{}
			var err error
			if m, err = readMarker(tx, ref); err != nil {
				return err
			}
			now := time.Now()
			switch {
			case m.stores(v, model, dims), m.Version > v:
				return nil
			case m.Lease != nil && m.Lease.Holder != s.id && m.Lease.Until.After(now):
				waitFor = m.Lease.Until
				return nil
			}
			took = true
			return tx.Set(ref, map[string]any{"lease": lease{Version: v, Holder: s.id, Until: now.Add(s.lease)}}, firestore.MergeAll)
		})
		if err != nil {
			return SyncResult{}, failure.Retryablef("read the sync marker %s/%s: %w", Collection, MarkerID, err)
		}
		switch {
		case took:
			res, err := s.store(ctx, ref)
			if err != nil {
				s.release(ctx, ref)
			}
			return res, err
		case !waitFor.IsZero():
			s.log.InfoContext(ctx, "another instance is storing the taxonomy's embeddings; waiting",
				"taxonomyVersion", v, "leaseUntil", waitFor)
			if err := sleep(ctx, min(s.poll, time.Until(waitFor)+10*time.Millisecond)); err != nil {
				return SyncResult{}, failure.Retryablef("waiting for another instance to store the taxonomy: %w", err)
			}
			continue
		case m.Version > v:
			s.log.WarnContext(ctx, "Firestore holds a newer taxonomy than this instance's file; leaving it",
				"taxonomyVersion", v, "storedVersion", m.Version)
			return SyncResult{Version: m.Version, Categories: m.Categories}, nil
		}
		if m.Fingerprint != s.tax.Fingerprint() {
			s.log.ErrorContext(ctx, "taxonomy/taxonomy.yaml changed without a version bump: the change is not embedded until the version is bumped",
				"taxonomyVersion", v)
		}
		return SyncResult{Version: v, Categories: m.Categories}, nil
	}
}

// store embeds every category, writes their documents, deletes those the
// file no longer lists, then records the version in the marker and
// releases the lease. Every write is idempotent: an instance that takes
// over a lapsed lease redoes it all to the same end.
func (s *Syncer) store(ctx context.Context, ref *firestore.DocumentRef) (SyncResult, error) {
	cats := s.tax.Categories()
	texts := make([]string, len(cats))
	for i, c := range cats {
		texts[i] = c.EmbeddingText()
	}
	s.log.InfoContext(ctx, "embedding the taxonomy's categories", "taxonomyVersion", s.tax.Version,
		"categories", len(cats), "model", s.emb.Model(), "dimensions", s.emb.Dimensions())
	embs, err := s.emb.EmbedTexts(ctx, texts)
	if err != nil {
		return SyncResult{}, fmt.Errorf("embed the categories: %w", err)
	}
	res := SyncResult{Stored: true, Version: s.tax.Version, Categories: len(cats), EmbeddingTokens: embs.Tokens}

	now := time.Now()
	keep := map[string]bool{MarkerID: true}
	bw := s.fs.BulkWriter(ctx)
	var jobs []*firestore.BulkWriterJob
	for i, c := range cats {
		keep[c.ID] = true
		j, err := bw.Set(s.fs.Collection(Collection).Doc(c.ID), categoryDoc{
			School: c.School, Name: c.Name, Description: c.Description,
			TaxonomyVersion: s.tax.Version, EmbeddingModel: s.emb.Model(),
			Embedding: embs.Vectors[i], UpdatedAt: now,
		})
		if err != nil {
			bw.End()
			return res, failure.Retryablef("write category %s: %w", c.ID, err)
		}
		jobs = append(jobs, j)
	}
	it := s.fs.Collection(Collection).Select().Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			bw.End()
			return res, failure.Retryablef("list the stored categories: %w", err)
		}
		if keep[snap.Ref.ID] {
			continue
		}
		j, err := bw.Delete(snap.Ref)
		if err != nil {
			bw.End()
			return res, failure.Retryablef("delete dropped category %s: %w", snap.Ref.ID, err)
		}
		jobs = append(jobs, j)
		res.Removed++
		s.log.InfoContext(ctx, "category dropped from the taxonomy; deleting it", "category", snap.Ref.ID)
	}
	bw.End()
	for _, j := range jobs {
		if _, err := j.Results(); err != nil {
			return res, failure.Retryablef("store the categories: %w", err)
		}
	}

	err = s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		m, err := readMarker(tx, ref)
		if err != nil {
			return err
		}
		if m.Version > s.tax.Version {
			// A newer file was stored meanwhile (our lease lapsed): its
			// marker stands.
			return nil
		}
		return tx.Set(ref, marker{
			Version: s.tax.Version, Model: s.emb.Model(), Dimensions: s.emb.Dimensions(),
			Fingerprint: s.tax.Fingerprint(), Categories: len(cats), EmbeddingTokens: embs.Tokens, DoneAt: time.Now(),
		})
	})
	if err != nil {
		return res, failure.Retryablef("record taxonomy v%d as stored: %w", s.tax.Version, err)
	}
	s.log.InfoContext(ctx, "taxonomy embeddings stored", "taxonomyVersion", s.tax.Version,
		"categories", len(cats), "removed", res.Removed, "embeddingTokens", embs.Tokens)
	return res, nil
}

// release gives up this instance's lease after a failed store, so that
// another instance need not wait for it to lapse. It is best effort: a
// lease not released lapses anyway.
func (s *Syncer) release(ctx context.Context, ref *firestore.DocumentRef) {
	ctx, cancel := setup.Detached(ctx, 5*time.Second)
	defer cancel()
	err := s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		m, err := readMarker(tx, ref)
		if err != nil || m.Lease == nil || m.Lease.Holder != s.id {
			return err
		}
		return tx.Update(ref, []firestore.Update{{Path: "lease", Value: firestore.Delete}})
	})
	if err != nil {
		s.log.WarnContext(ctx, "taxonomy sync lease not released; it lapses", "error", err.Error())
	}
}

func readMarker(tx *firestore.Transaction, ref *firestore.DocumentRef) (marker, error) {
	snap, err := tx.Get(ref)
	if status.Code(err) == codes.NotFound {
		return marker{}, nil
	}
	if err != nil {
		return marker{}, err
	}
	var m marker
	if err := snap.DataTo(&m); err != nil {
		return marker{}, fmt.Errorf("decode %s: %w", ref.Path, err)
	}
	return m, nil
}

// StoredVersion reads the taxonomy version Firestore holds, 0 if none.
func StoredVersion(ctx context.Context, fs *firestore.Client) (int, error) {
	snap, err := fs.Collection(Collection).Doc(MarkerID).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var m marker
	if err := snap.DataTo(&m); err != nil {
		return 0, err
	}
	return m.Version, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// versionString is how a version is written where strings are wanted
// (enrichment.json's taxonomyVersion).
func versionString(v int) string { return strconv.Itoa(v) }
