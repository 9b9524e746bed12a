//go:build integration

package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// closedEndpoint is an address on 127.0.0.1 where nothing listens.
func closedEndpoint(t *testing.T) string {
	return fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
}

func TestFaults(t *testing.T) {
	f, _, web := converge(t, buildRelease(t, "shop", "2026.04.01-1"))

	t.Run("IMDS unreachable fails within the deadline", func(t *testing.T) {
		n := f.newNode(t, "web-3", 13, webGroup)
		n.env = withEnv(n.env, "AWS_EC2_METADATA_SERVICE_ENDPOINT", closedEndpoint(t))
		before := snapshot(t, n.root)
		const deadline = 5 * time.Second
		r := n.agent(t, "apply", "--deadline", deadline.String())
		if r.code != 1 {
			t.Fatalf("apply without IMDS: exit %d, want 1\n%s", r.code, r)
		}
		// A refused connection is transient: retried until the deadline,
		// then at most one more deadline to learn the instance and
		// complete its launch hook with ABANDON.
		if r.duration > 2*deadline+10*time.Second {
			t.Errorf("apply without IMDS took %s, deadline %s", r.duration, deadline)
		}
		if !strings.Contains(r.stderr, "discover instance") || !strings.Contains(strings.ToLower(r.stderr), "metadata") {
			t.Errorf("message does not say instance metadata failed:\n%s", r.stderr)
		}
		if diff := changed(before, snapshot(t, n.root), true); len(diff) > 0 {
			t.Errorf("apply without IMDS changed the node: %v", diff)
		}
	})

	t.Run("S3 unreachable boots from the last-good copy", func(t *testing.T) {
		env := web.env
		web.env = withEnv(web.env, "AWS_ENDPOINT_URL_S3", closedEndpoint(t))
		defer func() { web.env = env }()
		calls := len(web.execCalls(t))
		r := web.agent(t, "apply", "--deadline", "60s")
		if r.code != 0 {
			t.Fatalf("apply with S3 down and a last-good copy: exit %d, want 0\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "last-good copy") {
			t.Errorf("apply does not say it used the last-good copy:\n%s", r.stderr)
		}
		if got := web.execCalls(t)[calls:]; len(got) > 0 {
			t.Errorf("booting from the unchanged last-good copy ran %v, want nothing", got)
		}
		eventually(t, 5*time.Second, web.apacheURL("/"), serverName, 200, "Welcome")
	})

	t.Run("S3 unreachable without a last-good copy fails", func(t *testing.T) {
		n := f.newNode(t, "web-4", 14, webGroup)
		n.env = withEnv(n.env, "AWS_ENDPOINT_URL_S3", closedEndpoint(t))
		r := n.agent(t, "apply", "--deadline", "60s")
		if r.code != 1 {
			t.Fatalf("apply with S3 down and no last-good copy: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "no last-good copy") || !strings.Contains(r.stderr, topologyKey) {
			t.Errorf("message does not name the topology and the missing last-good copy:\n%s", r.stderr)
		}
	})
}
