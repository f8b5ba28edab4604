// Package emulators starts and stops the official Firestore and Pub/Sub
// emulators that ship with the Google Cloud CLI. Each emulator runs in its own
// process group and is stopped as a group: killing only the launcher leaves the
// Java process holding its port (DESIGN.md section 6).
package emulators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coursekb/pipeline/local/proc"
)

// Kind names an emulator.
type Kind string

const (
	Firestore Kind = "firestore"
	PubSub    Kind = "pubsub"
)

// EnvVar is the variable the Google Cloud client libraries read to find kind.
func (k Kind) EnvVar() string {
	if k == Firestore {
		return "FIRESTORE_EMULATOR_HOST"
	}
	return "PUBSUB_EMULATOR_HOST"
}

// Emulator is a running emulator.
type Emulator struct {
	Kind Kind
	// Host is host:port, the value of Kind.EnvVar().
	Host string

	proc   *proc.Process // nil when the emulator was already running
	output *lockedBuffer
}

// SDKRoot finds the Google Cloud CLI's installation directory.
func SDKRoot() (string, error) {
	if root := os.Getenv("CLOUDSDK_ROOT_DIR"); root != "" {
		return root, nil
	}
	for _, dir := range []string{"/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk"} {
		if _, err := os.Stat(filepath.Join(dir, "platform")); err == nil {
			return dir, nil
		}
	}
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", errors.New("Google Cloud CLI not found: install google-cloud-cli with its firestore and pubsub emulator components, or set CLOUDSDK_ROOT_DIR")
	}
	real, err := filepath.EvalSymlinks(gcloud)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", gcloud, err)
	}
	return filepath.Dir(filepath.Dir(real)), nil
}

func launcher(kind Kind, root string) (string, error) {
	var p string
	switch kind {
	case Firestore:
		p = filepath.Join(root, "platform", "cloud-firestore-emulator", "cloud_firestore_emulator")
	case PubSub:
		p = filepath.Join(root, "platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")
	default:
		return "", fmt.Errorf("unknown emulator %q", kind)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s emulator is not installed (%s missing): apt-get install google-cloud-cli-%s-emulator: %w", kind, p, kind, err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return "", fmt.Errorf("%s emulator needs Java: apt-get install default-jre-headless", kind)
	}
	return p, nil
}

// Start starts an emulator of kind on a free loopback port and waits until it
// answers. If kind's environment variable is already set, that emulator is
// used and nothing is started (so one `make test` can share emulators across
// packages).
func Start(ctx context.Context, kind Kind) (*Emulator, error) {
	if host := os.Getenv(kind.EnvVar()); host != "" {
		e := &Emulator{Kind: kind, Host: host, output: &lockedBuffer{}}
		if err := waitReady(ctx, e, 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s emulator at %s=%s: %w", kind, kind.EnvVar(), host, err)
		}
		return e, nil
	}
	root, err := SDKRoot()
	if err != nil {
		return nil, err
	}
	bin, err := launcher(kind, root)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--host=127.0.0.1", "--port=" + strconv.Itoa(port)}
	if kind == PubSub {
		dir, err := os.MkdirTemp("", "pubsub-emulator-")
		if err != nil {
			return nil, err
		}
		args = append(args, "--dir="+dir)
	}
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "JAVA_TOOL_OPTIONS=-Xmx512m")
	p, err := proc.Start(string(kind)+" emulator", cmd)
	if err != nil {
		return nil, err
	}
	e := &Emulator{Kind: kind, Host: host, proc: p, output: out}
	if err := waitReady(ctx, e, 90*time.Second); err != nil {
		e.Stop()
		return nil, fmt.Errorf("%s emulator did not become ready on %s: %w\n%s", kind, host, err, out.Tail(2000))
	}
	return e, nil
}

func waitReady(ctx context.Context, e *Emulator, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if e.proc != nil {
			if exited, err := e.proc.Exited(); exited {
				return err
			}
		}
		if answers(e.Host) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// answers reports whether an HTTP server listens on host: both emulators
// answer GET / once they serve requests.
func answers(host string) bool {
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("GET / HTTP/1.0\r\nHost: " + host + "\r\n\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 12)
	n, _ := conn.Read(buf)
	return n > 0 && strings.HasPrefix(string(buf[:n]), "HTTP/")
}

// Stop stops the emulator's whole process group. It is safe to call twice and
// does nothing for an emulator this package did not start.
func (e *Emulator) Stop() {
	if e != nil {
		e.proc.Stop()
	}
}

// Output returns the end of what the emulator printed, for error messages.
func (e *Emulator) Output() string { return e.output.Tail(4000) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
