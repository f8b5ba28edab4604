package hotmart

import (
	"context"
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
}

// Wire shapes (DESIGN.md section 5).
type (
	productsBody struct {
		Items    []productJSON `json:"items"`
		PageInfo struct {
			NextPageToken  string `json:"next_page_token"`
			ResultsPerPage int    `json:"results_per_page"`
		} `json:"page_info"`
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
		PageID    string `json:"page_id"`
		Name      string `json:"name"`
		Type      string `json:"type"`
		PageOrder int    `json:"page_order"`
		Published bool   `json:"published"`
		HasMedia  bool   `json:"has_media"`
	}
)

// Products lists every product of the account, following the cursor until
// the last page.
func (c *Client) Products(ctx context.Context) ([]Product, error) {
	var out []Product
	seen := map[string]bool{}
	token := ""
	for page := 1; ; page++ {
		q := url.Values{"max_results": {strconv.Itoa(productsPageSize)}}
		if token != "" {
			q.Set("page_token", token)
		}
		var body productsBody
		if err := c.get(ctx, fmt.Sprintf("list products (page %d)", page), "/products/api/v1/products", q, &body); err != nil {
			return nil, err
		}
		for _, p := range body.Items {
			out = append(out, Product{ID: p.ID, Name: p.Name, Ucode: p.Ucode, Status: p.Status,
				Format: p.Format, CreatedAt: fromEpochMillis(p.CreatedAt)})
		}
		token = body.PageInfo.NextPageToken
		if token == "" {
			return out, nil
		}
		if seen[token] {
			return nil, failure.Permanentf("hotmart: list products (page %d): next_page_token %q repeats an earlier page", page, token)
		}
		seen[token] = true
	}
}

// Modules lists the Club modules of the club at subdomain.
func (c *Client) Modules(ctx context.Context, subdomain string) ([]Module, error) {
	call := fmt.Sprintf("list modules of club %q", subdomain)
	if strings.TrimSpace(subdomain) == "" {
		return nil, failure.Permanentf("hotmart: %s: no subdomain given", call)
	}
	var body []moduleJSON
	if err := c.get(ctx, call, "/club/api/v1/modules", url.Values{"subdomain": {subdomain}}, &body); err != nil {
		return nil, err
	}
	out := make([]Module, 0, len(body))
	for _, m := range body {
		out = append(out, Module{ID: m.ModuleID, Name: m.Name, Sequence: m.Sequence,
			IsExtra: m.IsExtra, IsPublic: m.IsPublic, TotalPages: m.TotalPages})
	}
	return out, nil
}

// Pages lists the pages of module moduleID of product productID.
func (c *Client) Pages(ctx context.Context, productID int64, moduleID string) ([]Page, error) {
	call := fmt.Sprintf("list pages of module %s of product %d", moduleID, productID)
	if productID <= 0 || moduleID == "" {
		return nil, failure.Permanentf("hotmart: %s: needs a product id and a module id", call)
	}
	path := "/club/api/v2/modules/" + url.PathEscape(moduleID) + "/pages"
	var body []pageJSON
	if err := c.get(ctx, call, path, url.Values{"product_id": {strconv.FormatInt(productID, 10)}}, &body); err != nil {
		return nil, err
	}
	out := make([]Page, 0, len(body))
	for _, p := range body {
		out = append(out, Page{ID: p.PageID, Name: p.Name, Type: p.Type, PageOrder: p.PageOrder,
			Published: p.Published, HasMedia: p.HasMedia})
	}
	return out, nil
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
