package tfcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Problem is one finding, with the place in the configuration it is about.
type Problem struct {
	Range hcl.Range
	Msg   string
}

func (p Problem) String() string {
	if p.Range.Filename == "" {
		return p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", filepath.Base(p.Range.Filename), p.Range.Start.Line, p.Msg)
}

// Resource is a resource or data block.
type Resource struct {
	Mode  string // "resource" or "data"
	Type  string
	Name  string
	Block *hclsyntax.Block
}

// Addr is the block's address: google_x.name or data.google_x.name.
func (r *Resource) Addr() string {
	if r.Mode == "data" {
		return "data." + r.Type + "." + r.Name
	}
	return r.Type + "." + r.Name
}

// Attr returns the block's top-level argument name, or nil.
func (r *Resource) Attr(name string) *hclsyntax.Attribute { return r.Block.Body.Attributes[name] }

// HasInstances reports whether the block has count or for_each.
func (r *Resource) HasInstances() bool {
	return r.Attr("for_each") != nil || r.Attr("count") != nil
}

// Config is one directory of Terraform files, parsed.
type Config struct {
	Dir       string
	Src       map[string][]byte
	Files     map[string]*hclsyntax.Body
	Resources []*Resource
	Variables map[string]*hclsyntax.Block
	Locals    map[string]*hclsyntax.Attribute
	Outputs   map[string]*hclsyntax.Block
	// Other top-level blocks: terraform, provider, and anything unexpected.
	Other []*hclsyntax.Block
	// Problems found while parsing and collecting: syntax errors, duplicates.
	Problems []Problem
}

// Parse reads every *.tf file of dir.
func Parse(dir string) (*Config, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no *.tf files in %s", dir)
	}
	sort.Strings(paths)
	files := map[string][]byte{}
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files[p] = src
	}
	return ParseFiles(dir, files), nil
}

// ParseFiles parses the given files (name => content) as one configuration.
func ParseFiles(dir string, files map[string][]byte) *Config {
	c := &Config{
		Dir:       dir,
		Src:       files,
		Files:     map[string]*hclsyntax.Body{},
		Variables: map[string]*hclsyntax.Block{},
		Locals:    map[string]*hclsyntax.Attribute{},
		Outputs:   map[string]*hclsyntax.Block{},
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]hcl.Range{}
	declare := func(kind, name string, rng hcl.Range) {
		key := kind + " " + name
		if prev, dup := seen[key]; dup {
			c.add(rng, "%s %q is declared twice (first at %s:%d)", kind, name, filepath.Base(prev.Filename), prev.Start.Line)
			return
		}
		seen[key] = rng
	}
	for _, name := range names {
		f, diags := hclsyntax.ParseConfig(files[name], name, hcl.InitialPos)
		for _, d := range diags {
			rng := hcl.Range{Filename: name}
			if d.Subject != nil {
				rng = *d.Subject
			}
			c.add(rng, "syntax: %s: %s", d.Summary, d.Detail)
		}
		if f == nil {
			continue
		}
		body := f.Body.(*hclsyntax.Body)
		c.Files[name] = body
		for aname, a := range body.Attributes {
			c.add(a.SrcRange, "top-level argument %q: only blocks belong at the top level", aname)
		}
		for _, b := range body.Blocks {
			switch b.Type {
			case "resource", "data":
				if len(b.Labels) != 2 {
					c.add(b.DefRange(), "%s block needs a type and a name", b.Type)
					continue
				}
				r := &Resource{Mode: b.Type, Type: b.Labels[0], Name: b.Labels[1], Block: b}
				declare(b.Type, r.Addr(), b.DefRange())
				c.Resources = append(c.Resources, r)
			case "variable":
				if len(b.Labels) == 1 {
					declare("variable", b.Labels[0], b.DefRange())
					c.Variables[b.Labels[0]] = b
				}
			case "output":
				if len(b.Labels) == 1 {
					declare("output", b.Labels[0], b.DefRange())
					c.Outputs[b.Labels[0]] = b
				}
			case "locals":
				for lname, a := range b.Body.Attributes {
					declare("local", lname, a.SrcRange)
					c.Locals[lname] = a
				}
			default:
				c.Other = append(c.Other, b)
			}
		}
	}
	sort.Slice(c.Resources, func(i, j int) bool { return c.Resources[i].Addr() < c.Resources[j].Addr() })
	return c
}

// Text returns the source text of a range.
func (c *Config) Text(rng hcl.Range) string {
	src := c.Src[rng.Filename]
	if rng.End.Byte > len(src) || rng.Start.Byte > rng.End.Byte {
		return ""
	}
	return string(rng.SliceBytes(src))
}

// Find returns the resource (mode "resource") or data block with the address
// parts given, or nil.
func (c *Config) Find(mode, typ, name string) *Resource {
	for _, r := range c.Resources {
		if r.Mode == mode && r.Type == typ && r.Name == name {
			return r
		}
	}
	return nil
}

// OfType returns the resources (mode "resource") of one type.
func (c *Config) OfType(typ string) []*Resource {
	var out []*Resource
	for _, r := range c.Resources {
		if r.Mode == "resource" && r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func (c *Config) add(rng hcl.Range, format string, args ...any) {
	c.Problems = append(c.Problems, Problem{Range: rng, Msg: fmt.Sprintf(format, args...)})
}

// References returns the addresses (google_x.name, data.google_x.name) of
// the resources and data blocks an expression refers to.
func References(expr hclsyntax.Expression) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range hclsyntax.Variables(expr) {
		names := traversalNames(t)
		var addr string
		switch {
		case len(names) >= 3 && names[0] == "data":
			addr = names[0] + "." + names[1] + "." + names[2]
		case len(names) >= 2 && !builtinRoots[names[0]]:
			addr = names[0] + "." + names[1]
		default:
			continue
		}
		if !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	sort.Strings(out)
	return out
}

var builtinRoots = map[string]bool{
	"var": true, "local": true, "each": true, "count": true, "path": true,
	"terraform": true, "self": true, "module": true, "data": true,
}

// traversalNames returns the leading attribute names of a traversal, up to
// the first index.
func traversalNames(t hcl.Traversal) []string {
	var out []string
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			out = append(out, s.Name)
		case hcl.TraverseAttr:
			out = append(out, s.Name)
		default:
			return out
		}
	}
	return out
}
