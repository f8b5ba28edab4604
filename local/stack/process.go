package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coursekb/pipeline/local/proc"
)

// ModuleRoot finds the directory holding this project's go.mod, from the
// working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/coursekb/pipeline\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the pipeline module: run from the repository")
		}
		dir = parent
	}
}

// Build compiles one of the project's commands (e.g. "./cmd/functions") into
// dir and returns the binary's path. The Go build cache makes repeated builds
// cheap.
func Build(ctx context.Context, pkg, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// waitHTTP waits until url answers any HTTP status, or p exits.
func waitHTTP(ctx context.Context, p *proc.Process, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if exited, err := p.Exited(); exited {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			// A front (local/cloudrun) answers 503 while the functions
			// behind it are still starting.
			if resp.StatusCode != http.StatusServiceUnavailable {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s within %s", url, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	if _, err := strconv.Atoi(port); err != nil {
		return ""
	}
	return port
}

func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}
