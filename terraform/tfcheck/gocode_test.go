package tfcheck

// What the Go code of the module says, read from its source: the functions
// the root package registers, the topics shared/events names, and the
// messages the code logs. The contract tests compare Terraform with these.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// moduleRoot is the repository root, seen from terraform/tfcheck.
const moduleRoot = "../.."

const modulePath = "github.com/coursekb/pipeline"

// goPackage is one directory of parsed, non-test Go files.
type goPackage struct {
	Dir    string
	Name   string
	Files  []*ast.File
	Consts map[string]string // package-level string constants
}

var parsePackages = sync.OnceValues(func() (map[string]*goPackage, error) {
	pkgs := map[string]*goPackage{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(moduleRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != moduleRoot && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(moduleRoot, filepath.Dir(path))
		dir = filepath.ToSlash(dir)
		p := pkgs[dir]
		if p == nil {
			p = &goPackage{Dir: dir, Name: f.Name.Name, Consts: map[string]string{}}
			pkgs[dir] = p
		}
		p.Files = append(p.Files, f)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i]); ok {
							p.Consts[n.Name] = s
						}
					}
				}
			}
		}
		return nil
	})
	return pkgs, err
})

func goPackages(t *testing.T) map[string]*goPackage {
	t.Helper()
	pkgs, err := parsePackages()
	if err != nil {
		t.Fatalf("parsing the module's Go code: %v", err)
	}
	return pkgs
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// imports maps a file's import names (alias or last path element) to the
// package directory inside the module.
func imports(f *ast.File) map[string]string {
	out := map[string]string{}
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		rel, ok := strings.CutPrefix(path, modulePath+"/")
		if !ok {
			continue
		}
		name := rel[strings.LastIndex(rel, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		out[name] = rel
	}
	return out
}

// resolve returns the string value of a literal, a constant of the package,
// or pkg.Const of a module package.
func resolve(pkgs map[string]*goPackage, p *goPackage, f *ast.File, e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		return stringLit(x)
	case *ast.Ident:
		v, ok := p.Consts[x.Name]
		return v, ok
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		dir, ok := imports(f)[id.Name]
		if !ok || pkgs[dir] == nil {
			return "", false
		}
		v, ok := pkgs[dir].Consts[x.Sel.Name]
		return v, ok
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		a, ok1 := resolve(pkgs, p, f, x.X)
		b, ok2 := resolve(pkgs, p, f, x.Y)
		return a + b, ok1 && ok2
	}
	return "", false
}

// registeredFunction is a function package the root package imports.
type registeredFunction struct {
	Name       string // the package directory's base name: the Terraform key
	EntryPoint string
	Kind       string // "HTTP" or "CloudEvent"
}

// registeredFunctions reads functions.go's imports and, in each imported
// package, the functions.HTTP / functions.CloudEvent registration.
func registeredFunctions(t *testing.T) map[string]registeredFunction {
	t.Helper()
	pkgs := goPackages(t)
	root := pkgs["."]
	if root == nil {
		t.Fatal("no Go package at the module root (functions.go)")
	}
	out := map[string]registeredFunction{}
	for _, f := range root.Files {
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			dir, ok := strings.CutPrefix(path, modulePath+"/")
			if !ok || !strings.HasPrefix(dir, "functions/") {
				continue
			}
			p := pkgs[dir]
			if p == nil {
				t.Errorf("functions.go imports %s, which has no Go files", dir)
				continue
			}
			rf := registeredFunction{Name: filepath.Base(dir)}
			for _, pf := range p.Files {
				ast.Inspect(pf, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok || len(call.Args) < 2 {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "functions" {
						return true
					}
					if sel.Sel.Name != "HTTP" && sel.Sel.Name != "CloudEvent" {
						return true
					}
					if ep, ok := resolve(pkgs, p, pf, call.Args[0]); ok {
						rf.EntryPoint, rf.Kind = ep, sel.Sel.Name
					}
					return true
				})
			}
			if rf.EntryPoint == "" {
				t.Errorf("%s registers no functions.HTTP or functions.CloudEvent entry point", dir)
				continue
			}
			out[rf.Name] = rf
		}
	}
	if len(out) == 0 {
		t.Fatal("functions.go imports no function package")
	}
	return out
}

// eventTopics are the Topic* constants of shared/events: every topic the
// code publishes to or reads.
func eventTopics(t *testing.T) map[string]string {
	t.Helper()
	p := goPackages(t)["shared/events"]
	if p == nil {
		t.Fatal("no shared/events package")
	}
	out := map[string]string{}
	for name, v := range p.Consts {
		if strings.HasPrefix(name, "Topic") {
			out[name] = v
		}
	}
	if len(out) == 0 {
		t.Fatal("shared/events declares no Topic* constant")
	}
	return out
}

// logSeverity of the slog methods, as shared/logging names them in
// Cloud Logging; "" when the level is chosen at run time (Log, LogAttrs).
var logMethods = map[string]struct {
	severity string
	msgArg   int
}{
	"Debug": {"DEBUG", 0}, "DebugContext": {"DEBUG", 1},
	"Info": {"INFO", 0}, "InfoContext": {"INFO", 1},
	"Warn": {"WARNING", 0}, "WarnContext": {"WARNING", 1},
	"Error": {"ERROR", 0}, "ErrorContext": {"ERROR", 1},
	"Log": {"", 2}, "LogAttrs": {"", 2},
}

// loggedMessages returns every message the deployed code (the root package,
// functions/ and shared/) logs with log/slog, with the severities it is
// logged at ("" for a level chosen at run time), and where.
func loggedMessages(t *testing.T) map[string]map[string][]string {
	t.Helper()
	pkgs := goPackages(t)
	out := map[string]map[string][]string{}
	for dir, p := range pkgs {
		if dir != "." && !strings.HasPrefix(dir, "functions/") && !strings.HasPrefix(dir, "shared/") {
			continue
		}
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				m, ok := logMethods[sel.Sel.Name]
				if !ok || len(call.Args) <= m.msgArg {
					return true
				}
				msg, ok := resolve(pkgs, p, f, call.Args[m.msgArg])
				if !ok {
					return true
				}
				if out[msg] == nil {
					out[msg] = map[string][]string{}
				}
				out[msg][m.severity] = append(out[msg][m.severity], dir)
				return true
			})
		}
	}
	return out
}

// goStrings is every string literal and string constant of the deployed
// code: a log field the filters read must be one of them.
func goStrings(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for dir, p := range goPackages(t) {
		if dir != "." && !strings.HasPrefix(dir, "functions/") && !strings.HasPrefix(dir, "shared/") {
			continue
		}
		for _, v := range p.Consts {
			out[v] = true
		}
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				if s, ok := stringLit(exprOf(n)); ok {
					out[s] = true
				}
				return true
			})
		}
	}
	return out
}

func exprOf(n ast.Node) ast.Expr {
	if e, ok := n.(ast.Expr); ok {
		return e
	}
	return nil
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
