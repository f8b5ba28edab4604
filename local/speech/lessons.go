package speech

import (
	"strings"

	"github.com/coursekb/pipeline/local/sample"
)

// Script is what a lesson's audio says: the narration the sample video was
// made from, and the language of the course it belongs to.
type Script struct {
	Narration string
	Language  string // BCP-47, e.g. "es-ES"; may be empty
}

// Scripts finds what a lesson says by its Hotmart page id. The engine asks
// it for every file it recognizes, so an implementation that changes over
// time (a catalog swapped between detection runs) is seen at once.
type Scripts interface {
	Script(lessonID string) (Script, bool)
}

// ScriptsFunc adapts a function to Scripts.
type ScriptsFunc func(lessonID string) (Script, bool)

// Script calls f.
func (f ScriptsFunc) Script(lessonID string) (Script, bool) { return f(lessonID) }

// FromCatalog indexes the pages of one or more catalogs (the bundled sample,
// generated load courses) by page id. The index is built once: a later change
// to a catalog needs a new FromCatalog. An id present in two catalogs keeps
// the first.
func FromCatalog(cats ...sample.Catalog) Scripts {
	idx := map[string]Script{}
	for _, c := range cats {
		c.Pages(func(p sample.Product, _ sample.Module, pg sample.Page) {
			if _, dup := idx[pg.PageID]; dup {
				return
			}
			idx[pg.PageID] = Script{Narration: strings.TrimSpace(pg.Narration), Language: p.Language}
		})
	}
	return ScriptsFunc(func(id string) (Script, bool) {
		s, ok := idx[id]
		return s, ok
	})
}
