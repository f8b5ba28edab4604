package tfcheck

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// CheckSchema checks every resource and data block of cfg against the
// provider schema s, and every reference against the declarations of cfg.
// It returns the problems sorted by file and line, parse problems included.
func CheckSchema(cfg *Config, s *Schema) []Problem {
	c := &checker{cfg: cfg, s: s}
	c.problems = append(c.problems, cfg.Problems...)
	for _, b := range cfg.Other {
		c.checkOther(b)
	}
	for _, r := range cfg.Resources {
		c.checkResource(r)
	}
	for _, name := range sortedKeys(cfg.Locals) {
		c.checkExpr(cfg.Locals[name].Expr, scope{})
	}
	for _, name := range sortedKeys(cfg.Outputs) {
		c.checkPlainBody(cfg.Outputs[name].Body, scope{}, "output "+name, map[string]bool{"value": true, "description": true, "sensitive": true, "depends_on": true, "ephemeral": true}, map[string]bool{"precondition": true})
	}
	for _, name := range sortedKeys(cfg.Variables) {
		v := cfg.Variables[name]
		c.checkPlainBody(v.Body, scope{}, "variable "+name, map[string]bool{"type": true, "default": true, "description": true, "sensitive": true, "nullable": true, "ephemeral": true}, map[string]bool{"validation": true})
	}
	sort.SliceStable(c.problems, func(i, j int) bool {
		a, b := c.problems[i].Range, c.problems[j].Range
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Line < b.Start.Line
	})
	// Nested references are checked once per level: keep one of each.
	seen := map[string]bool{}
	out := c.problems[:0]
	for _, p := range c.problems {
		if !seen[p.String()] {
			seen[p.String()] = true
			out = append(out, p)
		}
	}
	return out
}

type checker struct {
	cfg      *Config
	s        *Schema
	problems []Problem
}

// scope is what an expression may refer to besides declarations.
type scope struct {
	each, count bool
	iterators   map[string]bool
}

func (sc scope) with(iterator string) scope {
	its := map[string]bool{iterator: true}
	for k := range sc.iterators {
		its[k] = true
	}
	return scope{each: sc.each, count: sc.count, iterators: its}
}

func (c *checker) add(rng hcl.Range, format string, args ...any) {
	c.problems = append(c.problems, Problem{Range: rng, Msg: fmt.Sprintf(format, args...)})
}

var resourceMeta = map[string]bool{"count": true, "for_each": true, "depends_on": true, "provider": true}

func (c *checker) checkOther(b *hclsyntax.Block) {
	switch b.Type {
	case "terraform":
		for _, rp := range b.Body.Blocks {
			if rp.Type != "required_providers" {
				continue
			}
			for name, a := range rp.Body.Attributes {
				if name != "google" {
					c.add(a.SrcRange, "required_providers: only hashicorp/google is used here, not %q", name)
				}
				c.checkExpr(a.Expr, scope{})
			}
		}
	case "provider":
		if len(b.Labels) != 1 || b.Labels[0] != "google" {
			c.add(b.DefRange(), "provider %v: only the google provider is configured here", b.Labels)
		}
		for _, a := range b.Body.Attributes {
			c.checkExpr(a.Expr, scope{})
		}
	case "moved", "import", "removed", "check":
		// Terraform's own blocks; nothing of the provider to check.
	case "module":
		c.add(b.DefRange(), "module blocks are not used in this configuration")
	default:
		c.add(b.DefRange(), "unknown top-level block %q", b.Type)
	}
}

// builtinResources are the resource types Terraform itself provides
// (terraform.io/builtin/terraform), which need no provider: terraform_data
// holds the configuration's waits (a local-exec provisioner).
var builtinResources = map[string]*Block{
	"terraform_data": {
		Attributes: map[string]*Attribute{
			"input":            {},
			"triggers_replace": {},
			"output":           {Computed: true},
			"id":               {Computed: true},
		},
		Blocks: map[string]*NestedBlock{},
	},
}

func (c *checker) checkResource(r *Resource) {
	schemas, kind := c.s.Resource, "resource"
	if r.Mode == "data" {
		schemas, kind = c.s.Data, "data source"
	}
	if b, ok := builtinResources[r.Type]; ok && r.Mode == "resource" {
		sc := scope{each: r.Attr("for_each") != nil, count: r.Attr("count") != nil}
		c.checkBody(r.Block.Body, b, r.Addr(), sc, true)
		return
	}
	sc := scope{each: r.Attr("for_each") != nil, count: r.Attr("count") != nil}
	if sc.each && sc.count {
		c.add(r.Block.DefRange(), "%s: count and for_each cannot both be set", r.Addr())
	}
	b, ok := schemas[r.Type]
	if !ok {
		c.add(r.Block.LabelRanges[0], "%s: %s type %q does not exist in provider %s %s%s",
			r.Addr(), kind, r.Type, c.s.Provider, c.s.Version, suggest(r.Type, sortedKeys(schemas)))
	}
	c.checkBody(r.Block.Body, b, r.Addr(), sc, true)
}

// resourceSchema is the schema of a resource type: the provider's, or
// Terraform's own for a built-in type.
func (c *checker) resourceSchema(typ string) *Block {
	if b, ok := builtinResources[typ]; ok {
		return b
	}
	return c.s.Resource[typ]
}

// checkBody checks a block body against b (nil: unknown, references only).
func (c *checker) checkBody(body *hclsyntax.Body, b *Block, where string, sc scope, top bool) {
	for _, name := range sortedKeys(body.Attributes) {
		a := body.Attributes[name]
		c.checkExpr(a.Expr, sc)
		if (top && resourceMeta[name]) || b == nil {
			continue
		}
		sa, ok := b.Attributes[name]
		switch {
		case !ok && b.Blocks[name] != nil:
			c.add(a.SrcRange, "%s: %q is a block: write %s { ... }, not %s = ...", where, name, name, name)
		case !ok:
			c.add(a.NameRange, "%s: unknown argument %q%s", where, name, suggest(name, blockNames(b)))
		case sa.Computed:
			c.add(a.NameRange, "%s: %q is computed by the provider and cannot be set", where, name)
		}
	}
	if b != nil {
		for _, name := range sortedKeys(b.Attributes) {
			if b.Attributes[name].Required && body.Attributes[name] == nil {
				c.add(body.SrcRange, "%s: required argument %q is missing", where, name)
			}
		}
	}
	counts := map[string]int{}
	dynamic := map[string]bool{}
	for _, blk := range body.Blocks {
		switch {
		case top && (blk.Type == "lifecycle" || blk.Type == "provisioner" || blk.Type == "connection"):
			continue // Terraform's, not the provider's.
		case blk.Type == "dynamic":
			c.checkDynamic(blk, b, where, sc)
			if len(blk.Labels) == 1 {
				dynamic[blk.Labels[0]] = true
			}
			continue
		}
		var nested *Block
		if b != nil {
			nb, ok := b.Blocks[blk.Type]
			switch {
			case !ok && b.Attributes[blk.Type] != nil:
				c.add(blk.TypeRange, "%s: %q is an argument: write %s = ..., not a block", where, blk.Type, blk.Type)
			case !ok:
				c.add(blk.TypeRange, "%s: unknown block %q%s", where, blk.Type, suggest(blk.Type, blockNames(b)))
			default:
				nested = nb.Block
				counts[blk.Type]++
				if !nb.List && counts[blk.Type] == 2 {
					c.add(blk.TypeRange, "%s: block %q may appear at most once", where, blk.Type)
				}
			}
		}
		if len(blk.Labels) > 0 {
			c.add(blk.TypeRange, "%s: block %q takes no labels", where, blk.Type)
		}
		c.checkBody(blk.Body, nested, where+"."+blk.Type, sc, false)
	}
	if b != nil {
		for _, name := range sortedKeys(b.Blocks) {
			if b.Blocks[name].Required && counts[name] == 0 && !dynamic[name] {
				c.add(body.SrcRange, "%s: required block %q is missing", where, name)
			}
		}
	}
}

func (c *checker) checkDynamic(blk *hclsyntax.Block, b *Block, where string, sc scope) {
	if len(blk.Labels) != 1 {
		c.add(blk.DefRange(), "%s: a dynamic block needs one label, the block type", where)
		return
	}
	name := blk.Labels[0]
	var nested *Block
	if b != nil {
		nb, ok := b.Blocks[name]
		if !ok {
			c.add(blk.LabelRanges[0], "%s: dynamic %q: unknown block%s", where, name, suggest(name, blockNames(b)))
		} else {
			nested = nb.Block
		}
	}
	iterator := name
	for aname, a := range blk.Body.Attributes {
		switch aname {
		case "for_each", "labels":
			c.checkExpr(a.Expr, sc)
		case "iterator":
			if t, ok := a.Expr.(*hclsyntax.ScopeTraversalExpr); ok {
				iterator = t.Traversal.RootName()
			}
		default:
			c.add(a.NameRange, "%s: dynamic %q: unexpected argument %q (for_each, iterator, labels only)", where, name, aname)
		}
	}
	if blk.Body.Attributes["for_each"] == nil {
		c.add(blk.DefRange(), "%s: dynamic %q needs for_each", where, name)
	}
	contents := 0
	for _, inner := range blk.Body.Blocks {
		if inner.Type != "content" {
			c.add(inner.TypeRange, "%s: dynamic %q: unexpected block %q (content only)", where, name, inner.Type)
			continue
		}
		contents++
		c.checkBody(inner.Body, nested, where+"."+name, sc.with(iterator), false)
	}
	if contents != 1 {
		c.add(blk.DefRange(), "%s: dynamic %q needs exactly one content block", where, name)
	}
}

// checkPlainBody checks the arguments and references of a variable or output.
func (c *checker) checkPlainBody(body *hclsyntax.Body, sc scope, where string, attrs, blocks map[string]bool) {
	for _, name := range sortedKeys(body.Attributes) {
		a := body.Attributes[name]
		if !attrs[name] {
			c.add(a.NameRange, "%s: unknown argument %q", where, name)
		}
		if name != "type" { // a type constraint is not an expression of values
			c.checkExpr(a.Expr, sc)
		}
	}
	for _, blk := range body.Blocks {
		if !blocks[blk.Type] {
			c.add(blk.TypeRange, "%s: unknown block %q", where, blk.Type)
		}
		for _, a := range blk.Body.Attributes {
			c.checkExpr(a.Expr, sc)
		}
	}
}

// checkExpr checks every reference of an expression.
func (c *checker) checkExpr(expr hclsyntax.Expression, sc scope) {
	for _, t := range hclsyntax.Variables(expr) {
		c.checkTraversal(t, sc)
	}
	// An index that is not a literal (google_x.y[each.key].attr) splits a
	// reference in two: hcl reports only google_x.y as a variable. Join the
	// parts again to check the attributes read after the index.
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		rel, ok := n.(*hclsyntax.RelativeTraversalExpr)
		if !ok {
			return nil
		}
		base, ok := joinedTraversal(rel.Source)
		if !ok {
			return nil
		}
		full := append(append(hcl.Traversal{}, base...), rel.Traversal...)
		root := full.RootName()
		if sc.iterators[root] || (builtinRoots[root] && root != "data") {
			return nil
		}
		names := traversalNames(full)
		switch {
		case root == "data" && len(names) >= 3:
			if r := c.cfg.Find("data", names[1], names[2]); r != nil {
				c.checkRefPath(full, 3, r, c.s.Data[r.Type])
			}
		case root != "data" && len(names) >= 2:
			if r := c.cfg.Find("resource", names[0], names[1]); r != nil {
				c.checkRefPath(full, 2, r, c.resourceSchema(r.Type))
			}
		}
		return nil
	})
}

// joinedTraversal rebuilds the traversal of a chain of scope traversals,
// indexes and relative traversals; the index keys are left unknown.
func joinedTraversal(expr hclsyntax.Expression) (hcl.Traversal, bool) {
	switch e := expr.(type) {
	case *hclsyntax.ScopeTraversalExpr:
		return e.Traversal, true
	case *hclsyntax.IndexExpr:
		base, ok := joinedTraversal(e.Collection)
		if !ok {
			return nil, false
		}
		return append(append(hcl.Traversal{}, base...), hcl.TraverseIndex{Key: cty.DynamicVal, SrcRange: e.SrcRange}), true
	case *hclsyntax.RelativeTraversalExpr:
		base, ok := joinedTraversal(e.Source)
		if !ok {
			return nil, false
		}
		return append(append(hcl.Traversal{}, base...), e.Traversal...), true
	}
	return nil, false
}

func (c *checker) checkTraversal(t hcl.Traversal, sc scope) {
	root := t.RootName()
	rng := t.SourceRange()
	attr := func(i int) (string, bool) {
		if i < len(t) {
			if a, ok := t[i].(hcl.TraverseAttr); ok {
				return a.Name, true
			}
		}
		return "", false
	}
	switch root {
	case "var":
		name, ok := attr(1)
		if !ok || c.cfg.Variables[name] == nil {
			c.add(rng, "var.%s is not declared (variables.tf)%s", name, suggest(name, sortedKeys(c.cfg.Variables)))
		}
	case "local":
		name, ok := attr(1)
		if !ok || c.cfg.Locals[name] == nil {
			c.add(rng, "local.%s is not declared in any locals block%s", name, suggest(name, sortedKeys(c.cfg.Locals)))
		}
	case "each":
		name, _ := attr(1)
		switch {
		case !sc.each:
			c.add(rng, "each.%s is used outside a block with for_each", name)
		case name != "key" && name != "value":
			c.add(rng, "each.%s: only each.key and each.value exist", name)
		}
	case "count":
		if name, _ := attr(1); !sc.count || name != "index" {
			c.add(rng, "count.%s is used outside a block with count (only count.index exists)", name)
		}
	case "path":
		if name, _ := attr(1); name != "module" && name != "root" && name != "cwd" {
			c.add(rng, "path.%s does not exist (module, root, cwd)", name)
		}
	case "terraform":
		if name, _ := attr(1); name != "workspace" {
			c.add(rng, "terraform.%s does not exist", name)
		}
	case "self", "module":
		c.add(rng, "%s.* references are not used in this configuration", root)
	case "data":
		typ, ok1 := attr(1)
		name, ok2 := attr(2)
		if !ok1 || !ok2 {
			c.add(rng, "a data reference needs data.TYPE.NAME")
			return
		}
		r := c.cfg.Find("data", typ, name)
		if r == nil {
			c.add(rng, "data.%s.%s is not declared", typ, name)
			return
		}
		c.checkRefPath(t, 3, r, c.s.Data[typ])
	default:
		if sc.iterators[root] {
			return
		}
		name, ok := attr(1)
		if !ok {
			c.add(rng, "unknown name %q (not a resource type, variable or iterator in scope)", root)
			return
		}
		r := c.cfg.Find("resource", root, name)
		if r == nil {
			var declared []string
			for _, x := range c.cfg.OfType(root) {
				declared = append(declared, x.Name)
			}
			c.add(rng, "%s.%s is not declared%s", root, name, suggest(name, declared))
			return
		}
		c.checkRefPath(t, 2, r, c.resourceSchema(root))
	}
}

// checkRefPath checks the steps of t from i on against the schema b of r.
func (c *checker) checkRefPath(t hcl.Traversal, i int, r *Resource, b *Block) {
	rng := t.SourceRange()
	if i < len(t) {
		if _, isIndex := t[i].(hcl.TraverseIndex); isIndex {
			if !r.HasInstances() {
				c.add(rng, "%s has no count or for_each: it cannot be indexed", r.Addr())
			}
			i++
		} else if r.HasInstances() {
			c.add(rng, "%s has count or for_each: index it (%s[...]) before reading an attribute", r.Addr(), r.Addr())
			return
		}
	}
	if b == nil {
		return // unknown type, reported already
	}
	where := r.Addr()
	for i < len(t) {
		step, ok := t[i].(hcl.TraverseAttr)
		if !ok {
			return
		}
		if _, isAttr := b.Attributes[step.Name]; isAttr || step.Name == "id" {
			return // values inside an attribute are not described further
		}
		nb, isBlock := b.Blocks[step.Name]
		if !isBlock {
			c.add(rng, "%s has no attribute %q%s", where, step.Name, suggest(step.Name, blockNames(b)))
			return
		}
		where += "." + step.Name
		i++
		if i < len(t) {
			if _, isIndex := t[i].(hcl.TraverseIndex); isIndex {
				i++
			} else {
				c.add(rng, "%s is a list of blocks: index it (%s[0].%s)", where, step.Name, attrName(t[i]))
				return
			}
		}
		b = nb.Block
	}
}

func attrName(s hcl.Traverser) string {
	if a, ok := s.(hcl.TraverseAttr); ok {
		return a.Name
	}
	return "..."
}

func blockNames(b *Block) []string {
	names := sortedKeys(b.Attributes)
	return append(names, sortedKeys(b.Blocks)...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns ` (did you mean "x"?)` for the closest candidate, if close.
func suggest(name string, candidates []string) string {
	best, bestD := "", 4
	for _, cand := range candidates {
		if d := distance(name, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	if best == "" && len(name) >= 4 {
		for _, cand := range candidates {
			if strings.HasPrefix(cand, name) || strings.HasPrefix(name, cand) {
				return fmt.Sprintf(" (did you mean %q?)", cand)
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	if strings.EqualFold(a, b) {
		return 0
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
