package taxonomy

import (
	"context"
	"errors"
	"fmt"
	"math"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/setup"
)

// Classification defaults.
const (
	// DefaultTop is how many categories a lesson may get.
	DefaultTop = 3
	// DefaultThreshold is the least cosine similarity that places a lesson
	// in a category. See Config.ClassifyThreshold for why this value.
	DefaultThreshold = 0.3
)

// distanceField is the field vector search writes each result's cosine
// distance into.
const distanceField = "distance"

// Classifier finds a lesson's categories: Firestore vector search over the
// school's categories (a pre-filter on school), nearest first by cosine
// distance. It is safe for concurrent use.
type Classifier struct {
	fs        *firestore.Client
	top       int
	threshold float64
}

// NewClassifier returns a classifier keeping up to top categories whose
// similarity is at least threshold.
func NewClassifier(fs *firestore.Client, top int, threshold float64) (*Classifier, error) {
	if err := setup.Missing("classifier", map[string]any{"firestore": fs}); err != nil {
		return nil, err
	}
	if top < 1 || !(threshold >= -1 && threshold <= 1) {
		return nil, fmt.Errorf("classifier: top %d must be positive and threshold %g within [-1, 1]", top, threshold)
	}
	return &Classifier{fs: fs, top: top, threshold: threshold}, nil
}

// Threshold is the least similarity kept.
func (c *Classifier) Threshold() float64 { return c.threshold }

// Classification is what Classify found.
type Classification struct {
	// Categories are the nearest categories at or above the threshold,
	// nearest first, each with its cosine similarity as Score.
	Categories []artifact.Category
	// Nearest are the nearest categories whatever their score (Categories
	// is a prefix of it): what a lesson with no category came closest to.
	Nearest []artifact.Category
	// TaxonomyVersion is the version of the categories found, as a string
	// (enrichment.json's taxonomyVersion).
	TaxonomyVersion string
}

// Classify finds the categories of school nearest to vec (an L2-normalized
// embedding in the taxonomy's space). A school with no category stored is
// a permanent failure naming it (ErrNoCategories); a failed search is
// retryable.
func (c *Classifier) Classify(ctx context.Context, school string, vec []float32) (Classification, error) {
	if school == "" {
		return Classification{}, &failure.Permanent{Err: NoCategoriesError("", 0)}
	}
	q := c.fs.Collection(Collection).
		Where(FieldSchool, "==", school).
		FindNearest(FieldEmbedding, firestore.Vector32(vec), c.top, firestore.DistanceMeasureCosine,
			&firestore.FindNearestOptions{DistanceResultField: distanceField})
	it := q.Documents(ctx)
	defer it.Stop()
	var out Classification
	versions := map[int]bool{}
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return Classification{}, failure.Retryablef("vector search of %s categories: %w", school, err)
		}
		d := snap.Data()
		dist, ok := number(d[distanceField])
		if !ok {
			return Classification{}, failure.Retryablef("vector search of %s categories: result %s has no %s", school, snap.Ref.ID, distanceField)
		}
		name, _ := d[FieldName].(string)
		v, _ := number(d[FieldTaxonomyVersion])
		versions[int(v)] = true
		out.TaxonomyVersion = versionString(int(v))
		cat := artifact.Category{ID: snap.Ref.ID, Name: name, Score: round4(1 - dist)}
		out.Nearest = append(out.Nearest, cat)
		if 1-dist >= c.threshold {
			out.Categories = append(out.Categories, cat)
		}
	}
	if len(out.Nearest) == 0 {
		return Classification{}, &failure.Permanent{Err: fmt.Errorf("%w %q: none is stored in Firestore (%s collection): list the school in taxonomy/taxonomy.yaml, matching COURSE_CATALOG's school, and bump the version",
			ErrNoCategories, school, Collection)}
	}
	if len(versions) > 1 {
		// A taxonomy being stored right now: the categories found mix two
		// versions. Retrying soon finds one.
		return Classification{}, failure.Retryablef("the %s categories found mix taxonomy versions (another instance is storing a new one)", school)
	}
	return out, nil
}

// number reads a Firestore number (int64 or float64).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// round4 keeps scores readable in JSON and logs; four decimals are far
// finer than any threshold.
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
