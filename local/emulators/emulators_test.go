package emulators

import (
	"net"
	"testing"
	"time"
)

// Both emulators start, answer, and leave their port free once stopped: the
// Java process must not outlive Stop.
func TestStartStop(t *testing.T) {
	for _, kind := range []Kind{Firestore, PubSub} {
		t.Run(string(kind), func(t *testing.T) {
			t.Setenv(kind.EnvVar(), "")
			e, err := Start(t.Context(), kind)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			if !answers(e.Host) {
				t.Fatalf("%s does not answer on %s", kind, e.Host)
			}
			e.Stop()
			deadline := time.Now().Add(10 * time.Second)
			for {
				l, err := net.Listen("tcp", e.Host)
				if err == nil {
					l.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("port %s still taken after Stop: %v", e.Host, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
