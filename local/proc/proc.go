// Package proc runs the one-machine stack's child programs (emulators, the
// functions, the storage server) each in its own process group, and stops
// the whole group: a launcher script killed alone leaves its child (a JVM, a
// server) holding the port, and the next run fails.
package proc

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a started child program.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

// Start starts cmd in a new process group that dies with this process.
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return false, nil
	}
}

// Stop asks the group to terminate, kills it after a grace period, and then
// kills whatever of the group is left (a JVM may outlive its launcher for a
// moment). Safe to call more than once, and on nil.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// Kill kills the group at once, as a platform replacing a crashed instance
// does: no signal to clean up, requests in flight cut off. Safe to call more
// than once, and after Stop.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
}
