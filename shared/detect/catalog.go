package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// CatalogEntry says where a product's lessons live and which school they
// belong to.
type CatalogEntry struct {
	// Subdomain is the product's Hotmart Club subdomain (the modules call
	// takes it).
	Subdomain string `json:"subdomain"`
	// School is the school slug: it picks the vector store the lessons go to.
	School string `json:"school"`
}

// Catalog maps a Hotmart product id to its Club and school. Products the
// producer sells that are not in the catalog are not walked.
type Catalog map[int64]CatalogEntry

// slugPattern is what a school slug and a Club subdomain look like.
var slugPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseCatalog decodes the COURSE_CATALOG configuration, a JSON object keyed
// by product id:
//
//	{"4100001":{"subdomain":"python-desde-cero","school":"programacion"}}
//
// It names every problem at once: keys that are not positive integers,
// missing or malformed subdomains and schools, unknown fields.
func ParseCatalog(jsonText string) (Catalog, error) {
	if strings.TrimSpace(jsonText) == "" {
		return nil, errors.New(`course catalog is empty: want a JSON object such as {"4100001":{"subdomain":"python-desde-cero","school":"programacion"}}`)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(jsonText)))
	dec.DisallowUnknownFields()
	var raw map[string]CatalogEntry
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf(`course catalog is not a JSON object of {"subdomain":..,"school":..} by product id: %w`, err)
	}
	if dec.More() {
		return nil, errors.New("course catalog has trailing data after its JSON object")
	}
	if len(raw) == 0 {
		return nil, errors.New("course catalog lists no products: detection would remove every course")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	cat := make(Catalog, len(raw))
	subdomains := map[string]int64{}
	var problems []error
	for _, k := range keys {
		e := raw[k]
		id, err := strconv.ParseInt(strings.TrimSpace(k), 10, 64)
		if err != nil || id <= 0 {
			problems = append(problems, fmt.Errorf("key %q is not a Hotmart product id (a positive integer)", k))
			continue
		}
		if _, dup := cat[id]; dup {
			problems = append(problems, fmt.Errorf("product %d is listed twice", id))
			continue
		}
		switch {
		case e.Subdomain == "":
			problems = append(problems, fmt.Errorf("product %d: subdomain is missing", id))
		case !slugPattern.MatchString(e.Subdomain):
			problems = append(problems, fmt.Errorf("product %d: subdomain %q is not a Club subdomain (lower-case letters, digits and '-')", id, e.Subdomain))
		default:
			if other, dup := subdomains[e.Subdomain]; dup {
				problems = append(problems, fmt.Errorf("products %d and %d share subdomain %q", other, id, e.Subdomain))
			}
			subdomains[e.Subdomain] = id
		}
		switch {
		case e.School == "":
			problems = append(problems, fmt.Errorf("product %d: school is missing", id))
		case !slugPattern.MatchString(e.School):
			problems = append(problems, fmt.Errorf("product %d: school %q is not a school slug (lower-case letters, digits and '-')", id, e.School))
		}
		cat[id] = e
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("course catalog: %w", errors.Join(problems...))
	}
	return cat, nil
}
