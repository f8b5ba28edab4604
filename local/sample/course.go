// Package sample is the bundled sample course: its description (course.yaml,
// as the Hotmart API would describe it, plus what each lesson says and shows)
// and the script that turns each lesson into a short real video. Every local
// server reads this one description, so they cannot disagree.
package sample

import (
	_ "embed"
	"fmt"

	"github.com/goccy/go-yaml"
)

//go:embed course.yaml
var courseYAML []byte

// Questions is the project's own evaluation of the sample course: the
// questions `pipeline eval` asks after `make run`, in its file format.
//
//go:embed questions.yaml
var Questions []byte

// Catalog is the producer's whole sample: products, modules, pages.
type Catalog struct {
	Producer string    `yaml:"producer"`
	Products []Product `yaml:"products"`
}

// Product is a Hotmart product (a course) with its Club structure.
type Product struct {
	ID            int64    `yaml:"id"`
	Name          string   `yaml:"name"`
	Ucode         string   `yaml:"ucode"`
	Status        string   `yaml:"status"`
	Format        string   `yaml:"format"`
	ClubSubdomain string   `yaml:"club_subdomain"`
	School        string   `yaml:"school"`
	Language      string   `yaml:"language"`
	Modules       []Module `yaml:"modules"`
}

// Module is a Club module.
type Module struct {
	ModuleID string `yaml:"module_id"`
	Name     string `yaml:"name"`
	Sequence int    `yaml:"sequence"`
	IsExtra  bool   `yaml:"is_extra"`
	IsPublic bool   `yaml:"is_public"`
	Pages    []Page `yaml:"pages"`
}

// Page is a Club page (a lesson) with what its video says and shows.
type Page struct {
	PageID    string  `yaml:"page_id"`
	Name      string  `yaml:"name"`
	Type      string  `yaml:"type"`
	PageOrder int     `yaml:"page_order"`
	Published bool    `yaml:"published"`
	HasMedia  bool    `yaml:"has_media"`
	Media     string  `yaml:"media"` // "missing": the producer has not provided the file
	Narration string  `yaml:"narration"`
	Slides    []Slide `yaml:"slides"`
}

// Slide is what the video shows from second At on.
type Slide struct {
	At    float64 `yaml:"at"`
	Title string  `yaml:"title"`
	Text  string  `yaml:"text"`
	Code  string  `yaml:"code"`
}

// HasVideo reports whether the sample provides a video for the page.
func (p Page) HasVideo() bool { return p.HasMedia && p.Media != "missing" }

// Load returns the bundled sample course.
func Load() (Catalog, error) { return Parse(courseYAML) }

// Parse reads a catalog in the course.yaml format.
func Parse(b []byte) (Catalog, error) {
	var c Catalog
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("parse sample course: %w", err)
	}
	if len(c.Products) == 0 {
		return c, fmt.Errorf("parse sample course: no products")
	}
	return c, nil
}

// Pages calls fn for every page with its product and module.
func (c Catalog) Pages(fn func(Product, Module, Page)) {
	for _, p := range c.Products {
		for _, m := range p.Modules {
			for _, pg := range m.Pages {
				fn(p, m, pg)
			}
		}
	}
}
