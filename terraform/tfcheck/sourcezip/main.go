// Command sourcezip writes the function source archive Cloud Functions
// builds every function from (`make package`): go.mod, go.sum and the files
// of the packages the module root imports (the root package registers every
// function), as `go list -deps` names them, embedded files included. Tests,
// tools, the local stack, benchmarks, caches and binaries stay out.
//
// The archive is reproducible: paths sorted, one fixed modification time,
// fixed modes. The same source makes the same bytes, so Terraform, which
// names the uploaded object by its SHA-256 (terraform/build.tf), redeploys
// the functions only when the source changed.
//
//	go run ./terraform/tfcheck/sourcezip -o bin/source.zip
package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	out := flag.String("o", "bin/source.zip", "archive to write")
	root := flag.String("C", ".", "module root")
	list := flag.Bool("v", false, "list the files archived")
	flag.Parse()
	files, err := Files(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sourcezip:", err)
		os.Exit(1)
	}
	sum, size, err := Write(*root, files, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sourcezip:", err)
		os.Exit(1)
	}
	if *list {
		for _, f := range files {
			fmt.Println(f)
		}
	}
	fmt.Printf("%s: %d files, %d bytes, sha256 %s\n", *out, len(files), size, sum)
}

// listedPackage is the part of `go list -json` read here.
type listedPackage struct {
	Dir        string
	ImportPath string
	Module     *struct {
		Path string
		Main bool
	}
	GoFiles, CgoFiles, IgnoredGoFiles, CFiles, HFiles, SFiles, SysoFiles, EmbedFiles []string
	Error                                                                            *struct{ Err string }
}

// Files returns the module-relative paths (slash-separated, sorted) of what
// the archive holds.
func Files(root string) ([]string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-deps", "-json", ".")
	cmd.Dir = abs
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps .: %v\n%s", err, stderr.Bytes())
	}
	set := map[string]bool{"go.mod": true}
	if _, err := os.Stat(filepath.Join(abs, "go.sum")); err == nil {
		set["go.sum"] = true
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // the standard library and dependencies: the build downloads them
		}
		if p.Error != nil {
			return nil, fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
		}
		rel, err := filepath.Rel(abs, p.Dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("package %s is outside the module root (%s)", p.ImportPath, p.Dir)
		}
		for _, group := range [][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles, p.CFiles, p.HFiles, p.SFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range group {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				set[filepath.ToSlash(filepath.Join(rel, f))] = true
			}
		}
	}
	files := make([]string, 0, len(set))
	for f := range set {
		files = append(files, f)
	}
	slices.Sort(files)
	return files, nil
}

// modTime is every entry's modification time: the zip format's earliest.
var modTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Write zips files (relative to root) into out, reproducibly, and returns
// the archive's SHA-256 and size.
func Write(root string, files []string, out string) (string, int64, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return "", 0, err
		}
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modTime}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return "", 0, err
		}
		if _, err := w.Write(data); err != nil {
			return "", 0, err
		}
	}
	if err := zw.Close(); err != nil {
		return "", 0, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", 0, err
	}
	// Written whole, then renamed: a reader never sees half an archive.
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), int64(buf.Len()), nil
}
