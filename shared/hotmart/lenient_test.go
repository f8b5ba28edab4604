package hotmart_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	localhotmart "github.com/coursekb/pipeline/local/hotmart"
	"github.com/coursekb/pipeline/local/sample"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/hotmart"
)

// An element that does not fit its shape costs only itself: it is left out
// and named by position and raw value, and the rest of the list arrives.
func TestOddPagesAreSkippedAndNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, nil)
	e.server.SetPageField("pyL1vars001", "page_id", json.RawMessage(`12345`))
	e.server.SetPageField("pyL2cond002", "page_order", json.RawMessage(`"2"`))
	e.server.SetPageField("pyQ1quiz003", "name", json.RawMessage(`null`))

	pages, skipped, err := e.client.Pages(t.Context(), 4100001, "pyM1fund01")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || pages[0].ID != "pyQ1quiz003" || !pages[0].Untitled || pages[0].Name != "" || pages[0].Position != 3 {
		t.Errorf("pages = %+v, want the quiz alone, untitled, at position 3", pages)
	}
	want := []struct {
		position int
		reason   string
		raw      string
	}{
		{1, "page_id is a JSON number, not a string", `"page_id":12345`},
		{2, "page_order is a JSON string, not a number", `"page_order":"2"`},
	}
	if len(skipped) != len(want) {
		t.Fatalf("skipped = %+v, want %d", skipped, len(want))
	}
	for i, w := range want {
		s := skipped[i]
		if s.Position != w.position || s.Reason != w.reason || !strings.Contains(s.Raw, w.raw) ||
			s.Call != "list pages of module pyM1fund01 of product 4100001" {
			t.Errorf("skipped[%d] = %+v, want position %d, reason %q, raw with %s", i, s, w.position, w.reason, w.raw)
		}
		if !strings.Contains(s.String(), "position") || !strings.Contains(s.String(), w.raw) {
			t.Errorf("skipped[%d] reads %q", i, s)
		}
	}
}

// A list that cannot be read as a whole fails the call, permanently and
// without retries: a body cut short, an object where the array belongs, or
// null, which must never read as an empty list.
func TestBrokenListsFailTheCall(t *testing.T) {
	t.Parallel()
	pages := localhotmart.PagesPathOf("pyM1fund01")
	tests := []struct {
		name  string
		path  string
		fault localhotmart.Fault
		want  string
	}{
		{"truncated pages", pages, localhotmart.FaultTruncated, "unexpected end of JSON input"},
		{"object for the pages array", pages, localhotmart.FaultObjectForArray, "an object where an array belongs"},
		{"null pages", pages, localhotmart.FaultNull, "null where an array belongs"},
		{"object for the modules array", localhotmart.ModulesPath, localhotmart.FaultObjectForArray, "an object where an array belongs"},
		{"truncated products", localhotmart.ProductsPath, localhotmart.FaultTruncated, "unexpected end of JSON input"},
		{"object for the products' items", localhotmart.ProductsPath, localhotmart.FaultObjectForArray, "an object where an array belongs"},
		{"null products page", localhotmart.ProductsPath, localhotmart.FaultNull, "null where an object belongs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sample.Catalog{}, localhotmart.Options{}, nil)
			e.server.SetFault(tt.path, tt.fault)
			var err error
			switch tt.path {
			case localhotmart.ProductsPath:
				_, _, err = e.client.Products(t.Context())
			case localhotmart.ModulesPath:
				_, _, err = e.client.Modules(t.Context(), "python-desde-cero")
			default:
				_, _, err = e.client.Pages(t.Context(), 4100001, "pyM1fund01")
			}
			var apiErr *hotmart.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != hotmart.CodeMalformed || !failure.IsPermanent(err) {
				t.Fatalf("err = %v, want a permanent malformed-body APIError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
			if n := e.server.Requests(tt.path); n != 1 {
				t.Errorf("served %d requests, want 1 (no retry of a broken body)", n)
			}
			// The sibling module is untouched by the fault.
			if tt.path == pages {
				if ps, _, err := e.client.Pages(t.Context(), 4100001, "pyM2func01"); err != nil || len(ps) != 1 {
					t.Errorf("sibling module: %v, %v", ps, err)
				}
			}
		})
	}
}

// A looping cursor is caught, and what arrived before the repeat is kept.
func TestLoopingCursorKeepsWhatWasRead(t *testing.T) {
	t.Parallel()
	cat := bigCatalog(t, 4)
	e := newEnv(t, cat, localhotmart.Options{ProductsPageSize: 1}, nil)
	e.server.SetFault(localhotmart.ProductsPath, localhotmart.FaultLoopingCursor)
	got, skipped, err := e.client.Products(t.Context())
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "repeats an earlier page") {
		t.Fatalf("err = %v, want a permanent error naming the repeat", err)
	}
	if len(got) != 4 || len(skipped) != 0 {
		t.Fatalf("got %d products (%d skipped), want the 4 read before the repeat, each once", len(got), len(skipped))
	}
	// Four pages, then back to the first, whose next_page_token is the
	// repeat.
	if n := e.server.Requests(localhotmart.ProductsPath); n != 5 {
		t.Errorf("served %d product pages, want 5", n)
	}
}
