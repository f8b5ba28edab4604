package proc

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Stopping a launcher stops what it launched: the grandchild must not
// survive, or it would keep holding its port.
func TestStopKillsTheWholeGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $!; wait")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start("launcher", cmd)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no child pid printed: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("no child pid printed: %q", line)
	}
	p.Stop()
	p.Stop() // twice is fine
	if exited, _ := p.Exited(); !exited {
		t.Fatal("launcher still running after Stop")
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived Stop", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
