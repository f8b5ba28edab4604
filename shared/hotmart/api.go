package hotmart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coursekb/pipeline/shared/failure"
)

// productsPageSize is the max_results asked of the products list.
const productsPageSize = 50

// Product is a Hotmart product (a course).
type Product struct {
	ID        int64
	Name      string
	Ucode     string
	Status    string // ACTIVE, DRAFT, ...
	Format    string // ONLINE_COURSE, ...
	CreatedAt time.Time
}

// Module is a Club module of a product.
type Module struct {
	ID         string
	Name       string
	Sequence   int
	IsExtra    bool
	IsPublic   bool
	TotalPages int
}

// Page is a Club page: a lesson, an advertisement, a quiz or a webinar.
type Page struct {
	ID        string
	Name      string
	Type      string // CONTENT, ADVERTISEMENT, QUIZ, WEBINAR
	PageOrder int
	Published bool
	HasMedia  bool
	// Untitled is set when Hotmart sent no name, a null one or a blank one:
	// Name is then empty, and the detector says so instead of recording an
	// empty title without a word.
	Untitled bool
	// Position is the page's place in Hotmart's answer, from 1: it names a
	// page whose id cannot be used.
	Position int
}

// Wire shapes (DESIGN.md section 5).
type (
	productsBody struct {
		Items    array
		PageInfo pageInfoJSON
	}
	pageInfoJSON struct {
		NextPageToken  string `json:"next_page_token"`
		ResultsPerPage int    `json:"results_per_page"`
	}
	productJSON struct {
		ID        int64  `json:"id"`
		Name      string `json:"name"`
		Ucode     string `json:"ucode"`
		Status    string `json:"status"`
		Format    string `json:"format"`
		CreatedAt int64  `json:"created_at"` // epoch milliseconds
	}
	moduleJSON struct {
		ModuleID   string `json:"module_id"`
		Name       string `json:"name"`
		Sequence   int    `json:"sequence"`
		IsExtra    bool   `json:"is_extra"`
		IsPublic   bool   `json:"is_public"`
		TotalPages int    `json:"total_pages"`
	}
	pageJSON struct {
		PageID    string  `json:"page_id"`
		Name      *string `json:"name"`
		Type      string  `json:"type"`
		PageOrder int     `json:"page_order"`
		Published bool    `json:"published"`
		HasMedia  bool    `json:"has_media"`
	}
)

// UnmarshalJSON reads a products page, refusing one without an items array
// (null, or an object that lacks it): it must not read as an account
// without products.
func (p *productsBody) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return errors.New("null where an object belongs")
	}
	var wire struct {
		Items    *array       `json:"items"`
		PageInfo pageInfoJSON `json:"page_info"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return err
	}
	if wire.Items == nil {
		return errors.New(`no "items" array`)
	}
	p.Items, p.PageInfo = *wire.Items, wire.PageInfo
	return nil
}

// Products lists every product of the account, following the cursor until
// the last page. Products whose element cannot be decoded are left out and
// returned as skipped; a product listed on two pages is kept once.
//
// On error the products read before it are returned with it: a cursor that
// loops (a next_page_token seen before, a permanent failure) is only noticed
// after its pages arrived, and what they held is still true. The caller must
// treat such a list as incomplete: a product missing from it may exist.
func (c *Client) Products(ctx context.Context) ([]Product, []Skipped, error) {
	var (
		out     []Product
		skipped []Skipped
	)
	listed := map[int64]bool{}
	seen := map[string]bool{}
	token := ""
	for page := 1; ; page++ {
		q := url.Values{"max_results": {strconv.Itoa(productsPageSize)}}
		if token != "" {
			q.Set("page_token", token)
		}
		call := fmt.Sprintf("list products (page %d)", page)
		var body productsBody
		if err := c.get(ctx, call, "/products/api/v1/products", q, &body); err != nil {
			return out, skipped, err
		}
		products, bad := decodeEach(call, body.Items, decodeProduct)
		skipped = append(skipped, bad...)
		for _, p := range products {
			if !listed[p.ID] {
				listed[p.ID] = true
				out = append(out, p)
			}
		}
		token = body.PageInfo.NextPageToken
		if token == "" {
			return out, skipped, nil
		}
		if seen[token] {
			return out, skipped, failure.Permanentf("hotmart: %s: next_page_token %q repeats an earlier page: the product list is incomplete", call, token)
		}
		seen[token] = true
	}
}

func decodeProduct(_ int, raw json.RawMessage) (Product, error) {
	var p productJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return Product{}, err
	}
	if p.ID <= 0 {
		return Product{}, errors.New("id is missing or not a positive number")
	}
	return Product{ID: p.ID, Name: p.Name, Ucode: p.Ucode, Status: p.Status, Format: p.Format,
		CreatedAt: fromEpochMillis(p.CreatedAt)}, nil
}

// Modules lists the Club modules of the club at subdomain. Modules whose
// element cannot be decoded are left out and returned as skipped.
func (c *Client) Modules(ctx context.Context, subdomain string) ([]Module, []Skipped, error) {
	call := fmt.Sprintf("list modules of club %q", subdomain)
	if strings.TrimSpace(subdomain) == "" {
		return nil, nil, failure.Permanentf("hotmart: %s: no subdomain given", call)
	}
	var body array
	if err := c.get(ctx, call, "/club/api/v1/modules", url.Values{"subdomain": {subdomain}}, &body); err != nil {
		return nil, nil, err
	}
	modules, skipped := decodeEach(call, body, decodeModule)
	return modules, skipped, nil
}

func decodeModule(_ int, raw json.RawMessage) (Module, error) {
	var m moduleJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return Module{}, err
	}
	if strings.TrimSpace(m.ModuleID) == "" {
		return Module{}, errors.New("module_id is missing or empty")
	}
	return Module{ID: m.ModuleID, Name: m.Name, Sequence: m.Sequence,
		IsExtra: m.IsExtra, IsPublic: m.IsPublic, TotalPages: m.TotalPages}, nil
}

// Pages lists the pages of module moduleID of product productID. Pages whose
// element cannot be decoded (a page_id that is not a string, an order that
// is not a number) are left out and returned as skipped.
func (c *Client) Pages(ctx context.Context, productID int64, moduleID string) ([]Page, []Skipped, error) {
	call := fmt.Sprintf("list pages of module %s of product %d", moduleID, productID)
	if productID <= 0 || moduleID == "" {
		return nil, nil, failure.Permanentf("hotmart: %s: needs a product id and a module id", call)
	}
	path := "/club/api/v2/modules/" + url.PathEscape(moduleID) + "/pages"
	var body array
	if err := c.get(ctx, call, path, url.Values{"product_id": {strconv.FormatInt(productID, 10)}}, &body); err != nil {
		return nil, nil, err
	}
	pages, skipped := decodeEach(call, body, decodePage)
	return pages, skipped, nil
}

func decodePage(position int, raw json.RawMessage) (Page, error) {
	var p pageJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return Page{}, err
	}
	if p.PageID == "" {
		return Page{}, errors.New("page_id is missing or empty")
	}
	pg := Page{ID: p.PageID, Type: p.Type, PageOrder: p.PageOrder, Published: p.Published, HasMedia: p.HasMedia, Position: position}
	if p.Name != nil {
		pg.Name = *p.Name
	}
	pg.Untitled = strings.TrimSpace(pg.Name) == ""
	return pg, nil
}

// get is a resource call: path (already escaped) under BaseURL.
func (c *Client) get(ctx context.Context, call, path string, q url.Values, out any) error {
	u := c.baseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return c.do(ctx, request{call: call, method: http.MethodGet, url: u, logURL: u, bearer: true}, out)
}

func fromEpochMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
