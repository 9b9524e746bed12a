//go:build integration

package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
)

// outsideTree makes a directory outside every node root holding a file and
// a subdirectory with a file: what a planted symlink points the agent at.
func outsideTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"file": "precious\n", "sub/data": "more\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestConfinement runs the built binary against node roots with symlinks
// planted out of the root at the paths the agent manages, and against
// FIFOs named as the topology and as a release: every apply exits 1 with a
// message naming the culprit, within its deadline, and nothing outside the
// root changes (a snapshot of modes, contents and inodes before and after).
func TestConfinement(t *testing.T) {
	f := newFleet(t, buildRelease(t, "shop", "2026.06.01-1"))
	// The cache node serves the shop's sessions: with it, an apply that
	// the planted link did not stop would succeed.
	cache := f.newNode(t, "cache-1", 20, "")
	cache.mustApply(t)
	// Started by hand, not by systemd with StateDirectoryMode=0711.
	if fi, err := os.Stat(cache.path(stateDir)); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("state dir after the first apply: %v, %v; want mode 0711", fi, err)
	}

	plants := []struct {
		at     string                      // path under the node root made a symlink
		target func(out string) string     // what it points at
		prep   func(t *testing.T, n *node) // what exists before
	}{
		{at: "var/www", target: func(out string) string { return out }},
		{at: "var/www/shop", target: func(out string) string { return out }},
		{at: "var/www/shop/releases", target: func(out string) string { return out }},
		{at: "var/www/shop/.staging", target: func(out string) string { return out }},
		{at: stateDir + "/lock", target: func(out string) string { return filepath.Join(out, "file") }},
		{at: stateDir + "/journal", target: func(out string) string { return filepath.Join(out, "sub") }},
		{at: stateDir, target: func(out string) string { return out }},
		{at: stateDir + "/topology.json", target: func(out string) string { return filepath.Join(out, "file") }},
		{at: stateDir + "/applied.json", target: func(out string) string { return filepath.Join(out, "file") }},
		{at: stateDir + "/status.json", target: func(out string) string { return filepath.Join(out, "file") }},
		{at: stateDir + "/probe", target: func(out string) string { return filepath.Join(out, "sub") }},
	}
	for i, p := range plants {
		t.Run("symlink at "+p.at, func(t *testing.T) {
			n := f.newNode(t, "web-"+itoa(40+i), 40+i, webGroup)
			out := outsideTree(t)
			link := n.path(p.at)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p.target(out), link); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, out)
			r := n.agent(t, "apply", "--deadline", "60s")
			if r.code != 1 {
				t.Errorf("apply with %s planted: exit %d, want 1\n%s", p.at, r.code, r)
			}
			if !strings.Contains(r.stderr, link+" is a symlink") && !strings.Contains(r.stderr, link+" resolves to") {
				t.Errorf("apply does not name the symlink %s:\n%s", link, r.stderr)
			}
			if diff := changed(before, snapshot(t, out), true); len(diff) > 0 {
				t.Errorf("apply with %s planted changed outside the root: %v", p.at, diff)
			}
		})
	}

	t.Run("symlink at the health dir", func(t *testing.T) {
		n := f.newNode(t, "web-60", 60, webGroup)
		out := outsideTree(t)
		link := n.path(stateDir + "/health")
		if err := os.MkdirAll(filepath.Dir(link), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(out, "sub"), link); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, out)
		r := n.agent(t, "apply", "--deadline", "60s")
		if r.code != 1 {
			t.Errorf("apply with the health dir planted: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, link+" is a symlink") {
			t.Errorf("apply does not name the symlink %s:\n%s", link, r)
		}
		if diff := changed(before, snapshot(t, out), true); len(diff) > 0 {
			t.Errorf("apply changed outside the root: %v", diff)
		}
		if code, _, _, err := httpGet(n.apacheURL(healthPath), serverName); err == nil && code == 200 {
			t.Errorf("health path answers 200 with no health file")
		}
	})

	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	const deadline = 15 * time.Second

	t.Run("FIFO as the topology", func(t *testing.T) {
		n := f.newNode(t, "web-61", 61, webGroup)
		before := snapshot(t, n.root)
		r := n.agent(t, "apply", "--topology", "file://"+fifo, "--deadline", deadline.String())
		if r.code != 1 {
			t.Errorf("apply of a FIFO topology: exit %d, want 1\n%s", r.code, r)
		}
		if r.duration > deadline {
			t.Errorf("apply of a FIFO topology took %s, past its deadline %s", r.duration, deadline)
		}
		if !strings.Contains(r.stderr, fifo+" is a fifo: not a regular file") {
			t.Errorf("message does not say the topology is a FIFO:\n%s", r.stderr)
		}
		if diff := withoutPrefix(changed(before, snapshot(t, n.root), true), stateDir); len(diff) > 0 {
			t.Errorf("apply of a FIFO topology changed the node: %v", diff)
		}
	})

	t.Run("FIFO as the release", func(t *testing.T) {
		doc := cloneTopology(t, f.doc)
		p := doc.Products[product]
		p.Release = &nodeagent.Release{ID: "fifo-1", URL: "file://" + fifo, SHA256: strings.Repeat("ab", 32)}
		doc.Products[product] = p
		f.putTopology(t, topologyJSON(t, doc))
		defer f.putTopology(t, topologyJSON(t, f.doc))
		n := f.newNode(t, "web-62", 62, webGroup)
		r := n.agent(t, "apply", "--deadline", deadline.String())
		if r.code != 1 {
			t.Errorf("apply of a FIFO release: exit %d, want 1\n%s", r.code, r)
		}
		if r.duration > deadline {
			t.Errorf("apply of a FIFO release took %s, past its deadline %s", r.duration, deadline)
		}
		if !strings.Contains(r.stderr, fifo+" is a fifo: not a regular file") {
			t.Errorf("message does not say the release is a FIFO:\n%s", r.stderr)
		}
	})
}
