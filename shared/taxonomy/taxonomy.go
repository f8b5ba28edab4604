// Package taxonomy is the schools' taxonomy (taxonomy/taxonomy.yaml) and the
// classification of lessons against it by embedding similarity (DESIGN.md
// sections 1 and 3).
//
// Categories and lessons live in one embedding space: the same OpenAI model
// and dimensions embed both, or their cosine means nothing. So this package
// owns that space: the Embedder (OpenAI text-embedding-3-*, long texts
// embedded in parts and pooled), the Syncer that stores each category's
// embedding in Firestore once per taxonomy version (taxonomy/{categoryId},
// a firestore.Vector32), and the Classifier that finds a lesson's nearest
// categories with Firestore vector search.
package taxonomy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"

	taxfile "github.com/coursekb/pipeline/taxonomy"
)

// Taxonomy is a parsed, checked taxonomy file.
type Taxonomy struct {
	// Version is bumped on any change; it identifies the embeddings stored.
	Version int      `json:"version" yaml:"version"`
	Schools []School `json:"schools" yaml:"schools"`
}

// School is one school: its slug (COURSE_CATALOG's school), name, optional
// assistant configuration and categories.
type School struct {
	Slug       string     `json:"slug" yaml:"slug"`
	Name       string     `json:"name" yaml:"name"`
	Assistant  *Assistant `json:"assistant,omitempty" yaml:"assistant,omitempty"`
	Categories []Category `json:"categories" yaml:"categories"`
}

// Assistant is a school's assistant (the Responses API model and its
// instructions); either may be empty, meaning the asking command's default.
type Assistant struct {
	Model        string `json:"model,omitempty" yaml:"model,omitempty"`
	Instructions string `json:"instructions,omitempty" yaml:"instructions,omitempty"`
}

// Category is one category of a school.
type Category struct {
	ID          string `json:"id" yaml:"id"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description" yaml:"description"`
	// School is the slug of the school the category is listed under,
	// filled by Parse.
	School string `json:"-" yaml:"-"`
}

// EmbeddingText is what a category's embedding is made of: its name and
// its description, the words a lesson of it would say.
func (c Category) EmbeddingText() string {
	return strings.TrimSpace(c.Name) + ". " + strings.TrimSpace(c.Description)
}

var (
	slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	// idPattern keeps category ids usable as Firestore document ids and as
	// vector-store attribute values without escaping; MarkerID (which
	// starts with "_") can never match it.
	idPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// Limits of the file's texts, so that one category's embedding text stays
// far below the model's input limit and a document far below Firestore's.
const (
	maxNameRunes        = 120
	maxDescriptionRunes = 2000
)

// Default parses the taxonomy compiled into the binary (taxonomy/taxonomy.yaml).
func Default() (*Taxonomy, error) {
	t, err := Parse(taxfile.YAML)
	if err != nil {
		return nil, fmt.Errorf("taxonomy/taxonomy.yaml: %w", err)
	}
	return t, nil
}

// Parse decodes and checks a taxonomy file, naming every problem at once.
// Unknown keys are errors: a misspelt "descripton" would otherwise leave a
// category without the text it is matched on.
func Parse(b []byte) (*Taxonomy, error) {
	var t Taxonomy
	if err := yaml.UnmarshalWithOptions(b, &t, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("taxonomy: %w", err)
	}
	for i := range t.Schools {
		s := &t.Schools[i]
		for j := range s.Categories {
			c := &s.Categories[j]
			c.ID = strings.TrimSpace(c.ID)
			c.Name = strings.TrimSpace(c.Name)
			c.Description = strings.TrimSpace(c.Description)
			c.School = s.Slug
		}
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

func (t *Taxonomy) validate() error {
	var errs []error
	if t.Version < 1 {
		errs = append(errs, fmt.Errorf("version %d: want a whole number from 1, bumped on every change", t.Version))
	}
	if len(t.Schools) == 0 {
		errs = append(errs, errors.New("no schools"))
	}
	slugs := map[string]bool{}
	ids := map[string]string{}
	for i, s := range t.Schools {
		where := fmt.Sprintf("schools[%d] (%s)", i, s.Slug)
		switch {
		case !slugPattern.MatchString(s.Slug):
			errs = append(errs, fmt.Errorf("%s: slug %q: want lowercase letters, digits and hyphens", where, s.Slug))
		case slugs[s.Slug]:
			errs = append(errs, fmt.Errorf("%s: slug %q is listed twice", where, s.Slug))
		}
		slugs[s.Slug] = true
		if strings.TrimSpace(s.Name) == "" {
			errs = append(errs, fmt.Errorf("%s: name is empty", where))
		}
		if len(s.Categories) == 0 {
			errs = append(errs, fmt.Errorf("%s: no categories: its lessons could not be classified", where))
		}
		for j, c := range s.Categories {
			cw := fmt.Sprintf("%s.categories[%d] (%s)", where, j, c.ID)
			switch {
			case !idPattern.MatchString(c.ID):
				errs = append(errs, fmt.Errorf("%s: id %q: want lowercase letters, digits and hyphens", cw, c.ID))
			case !strings.HasPrefix(c.ID, s.Slug+"-"):
				errs = append(errs, fmt.Errorf("%s: id %q must start with the school's slug and a hyphen (%s-...)", cw, c.ID, s.Slug))
			case ids[c.ID] != "":
				errs = append(errs, fmt.Errorf("%s: id %q is already used in %s", cw, c.ID, ids[c.ID]))
			}
			ids[c.ID] = cw
			if c.Name == "" || len([]rune(c.Name)) > maxNameRunes {
				errs = append(errs, fmt.Errorf("%s: name must have 1 to %d characters", cw, maxNameRunes))
			}
			if c.Description == "" || len([]rune(c.Description)) > maxDescriptionRunes {
				errs = append(errs, fmt.Errorf("%s: description must have 1 to %d characters: it is what lessons are compared with", cw, maxDescriptionRunes))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("taxonomy: %w", errors.Join(errs...))
	}
	return nil
}

// School returns the school with slug, and whether there is one.
func (t *Taxonomy) School(slug string) (School, bool) {
	for _, s := range t.Schools {
		if s.Slug == slug {
			return s, true
		}
	}
	return School{}, false
}

// Categories lists every category of every school, in file order.
func (t *Taxonomy) Categories() []Category {
	var out []Category
	for _, s := range t.Schools {
		out = append(out, s.Categories...)
	}
	return out
}

// Slugs lists the schools' slugs, in file order.
func (t *Taxonomy) Slugs() []string {
	out := make([]string, len(t.Schools))
	for i, s := range t.Schools {
		out[i] = s.Slug
	}
	return out
}

// Fingerprint is a hash of everything the file says (comments and layout
// aside). The sync marker keeps it: a file changed without a version bump
// shows as a fingerprint that differs under the same version.
func (t *Taxonomy) Fingerprint() string {
	b, err := json.Marshal(t)
	if err != nil {
		// Strings and ints only: Marshal cannot fail.
		panic(fmt.Sprintf("taxonomy: fingerprint: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ErrNoCategories marks a school the taxonomy has no categories for: its
// lessons cannot be classified until the file lists it, so retrying is
// useless.
var ErrNoCategories = errors.New("no taxonomy categories for the school")

// NoCategoriesError names the school and what to fix.
func NoCategoriesError(school string, version int) error {
	if school == "" {
		return fmt.Errorf("%w: the lesson has no school (its product is missing from COURSE_CATALOG?)", ErrNoCategories)
	}
	return fmt.Errorf("%w %q in taxonomy version %d: add the school to taxonomy/taxonomy.yaml (its slug must match COURSE_CATALOG's school) and bump the version",
		ErrNoCategories, school, version)
}
