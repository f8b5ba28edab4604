package main

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// moduleRoot is the repository root, seen from this package.
const moduleRoot = "../../.."

// TestArchiveIsReproducibleAndComplete builds the archive twice (the same
// bytes), checks what it holds and leaves out, and unpacks it to prove the
// module root resolves, with every import and embedded file, from the
// archive alone.
func TestArchiveIsReproducibleAndComplete(t *testing.T) {
	files, err := Files(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum1, _, err := Write(moduleRoot, files, filepath.Join(dir, "a.zip"))
	if err != nil {
		t.Fatal(err)
	}
	sum2, _, err := Write(moduleRoot, files, filepath.Join(dir, "b.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if sum1 != sum2 {
		t.Errorf("two archives of the same source differ: %s and %s", sum1, sum2)
	}

	for _, want := range []string{"go.mod", "go.sum", "functions.go", "functions/detector/detector.go", "shared/events/events.go", "taxonomy/taxonomy.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("the archive lacks %s", want)
		}
	}
	for _, f := range files {
		switch {
		case strings.HasSuffix(f, "_test.go"),
			strings.HasPrefix(f, "."), strings.Contains(f, "/."),
			strings.HasPrefix(f, "terraform/"), strings.HasPrefix(f, "local/"), strings.HasPrefix(f, "bench/"),
			strings.HasPrefix(f, "cmd/"), strings.HasPrefix(f, "bin/"), f == "pipeline":
			t.Errorf("the archive holds %s, which no function needs", f)
		}
	}

	// Unpack and resolve the root package from the archive alone.
	data, err := os.ReadFile(filepath.Join(dir, "a.zip"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	for _, f := range zr.File {
		if !f.Modified.Equal(modTime) {
			t.Errorf("%s: modified %s, want the fixed %s", f.Name, f.Modified, modTime)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(src, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}{{range .DepsErrors}}{{.}}{{end}}", ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("the unpacked archive does not resolve: %v\n%s", err, out)
	}
}
