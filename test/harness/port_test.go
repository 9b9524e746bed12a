package harness

import (
	"context"
	"testing"
	"time"
)

// TestStartOnFreePortTriesAnotherPort: a server that exits saying its port
// is taken (another test's server bound it first) is started again on
// another port; the one that comes up is returned with its port.
func TestStartOnFreePortTriesAnotherPort(t *testing.T) {
	var ports []int
	p, port := startOnFreePort(t, 5*time.Second, func(port int) *process {
		ports = append(ports, port)
		if len(ports) == 1 {
			return startProcess(t, "server", nil, "/bin/sh", "-c", "echo 'listen tcp 127.0.0.1: bind: address already in use' >&2; exit 1")
		}
		return startProcess(t, "server", nil, "/bin/sh", "-c", "sleep 30")
	}, func(ctx context.Context, port int) error {
		if port != ports[len(ports)-1] {
			t.Errorf("ready asked about port %d, not the one started last (%d)", port, ports[len(ports)-1])
		}
		if len(ports) == 1 {
			return errNotReady // nothing answers on a port the server could not bind
		}
		return nil
	})
	if len(ports) != 2 {
		t.Fatalf("%d starts, want 2 (the first found its port taken)", len(ports))
	}
	if port != ports[1] || p == nil {
		t.Errorf("returned port %d, want the second start's %d", port, ports[1])
	}
	select {
	case <-p.exited:
		t.Error("the returned process has exited")
	default:
	}
}
