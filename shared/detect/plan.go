package detect

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	"github.com/coursekb/pipeline/shared/hotmart"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// statusActive is the Hotmart product status of a product on sale; products
// with statusDeleted count as gone.
const (
	statusActive  = "ACTIVE"
	statusDeleted = "DELETED"
)

// catalogProduct is a product of the catalog to walk.
type catalogProduct struct {
	hotmart.Product
	entry CatalogEntry
}

// plan picks the catalog's products from the product list, in ascending id
// order, and the set of course ids that still exist (in the list and the
// catalog, not deleted); inactive ones exist but are not walked.
// listComplete says whether the list is the whole product list: when it is
// not, a catalog product missing from it may still exist.
func (d *Detector) plan(ctx context.Context, products []hotmart.Product, listComplete bool, log *slog.Logger) ([]catalogProduct, map[string]bool) {
	var walk []catalogProduct
	present := map[string]bool{}
	var notInCatalog []int64
	listed := map[int64]bool{}
	for _, p := range products {
		listed[p.ID] = true
		entry, ok := d.catalog[p.ID]
		if !ok {
			notInCatalog = append(notInCatalog, p.ID)
			continue
		}
		if p.Status == statusDeleted {
			continue
		}
		present[courseID(p.ID)] = true
		walk = append(walk, catalogProduct{Product: p, entry: entry})
	}
	slices.SortFunc(walk, func(a, b catalogProduct) int { return cmp.Compare(a.ID, b.ID) })
	walk = slices.CompactFunc(walk, func(a, b catalogProduct) bool { return a.ID == b.ID })
	if len(notInCatalog) > 0 {
		slices.Sort(notInCatalog)
		log.InfoContext(ctx, "products not in the course catalog skipped", "count", len(notInCatalog), "productIds", notInCatalog)
	}
	for _, id := range slices.Sorted(maps.Keys(d.catalog)) {
		if listed[id] {
			continue
		}
		if listComplete {
			log.WarnContext(ctx, "catalog product not in the Hotmart product list: its lessons are removed at the end of the sweep", "courseId", courseID(id))
		} else {
			log.WarnContext(ctx, "catalog product not in the part of the product list that could be read: not walked, lessons kept", "courseId", courseID(id))
		}
	}
	return walk, present
}

// sweep walks products from the cursor on, recording each course as soon as
// its walk ends, so memory holds one course at a time. It reports whether
// it reached the end of the list and, if not, the product id the next run
// starts from.
func (r *run) sweep(ctx context.Context, walk []catalogProduct, cursor string) (done bool, next string) {
	first := 0
	if cursor != "" {
		c, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil {
			r.runProblem(ctx, "previous run's cursor %q is not a product id: starting a new sweep", cursor)
		} else {
			// The cursor's product may have vanished: start at the next one.
			first, _ = slices.BinarySearchFunc(walk, c, func(p catalogProduct, id int64) int { return cmp.Compare(p.ID, id) })
		}
	}
	walked := 0
	for _, p := range walk[first:] {
		cid := courseID(p.ID)
		if p.Status != statusActive {
			r.log.InfoContext(ctx, "inactive product skipped: lessons kept", "courseId", cid, "status", p.Status)
			rep := r.newCourseReport(cid)
			rep.rec.Outcome = CourseInactive
			r.courseDone(ctx, rep)
			continue
		}
		// The first product of a run is always walked to the end, so that
		// every run makes progress however small its budget.
		if walked > 0 && r.overBudget(ctx) {
			r.log.InfoContext(ctx, "time budget used: stopping before product", "courseId", cid)
			return false, cid
		}
		w := r.walkCourse(ctx, p, walked > 0)
		r.recordCourse(ctx, w)
		walked++
		if w.out.rec.Outcome == CourseAbandoned {
			r.log.InfoContext(ctx, "time budget used: course abandoned, the next run walks it again", "courseId", cid)
			return false, cid
		}
	}
	return true, ""
}

func courseID(productID int64) string { return strconv.FormatInt(productID, 10) }

// courseOf is a stored course's product id, for sorting.
func courseOf(c lessonstate.Course) int64 {
	id, _ := strconv.ParseInt(c.ID, 10, 64)
	return id
}
