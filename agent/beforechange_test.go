package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nodeagent/nodeagent"
)

// TestBeforeChangeComesFirst: `nodeagent apply` starts catching signals in
// Agent.BeforeChange, so it must come before anything a signal should wind
// down rather than cut. A first boot (files to write, services to start, a
// launch hook to complete) calls it before any of them; an apply that finds
// nothing to change never calls it; a changed document calls it again
// before the files change.
func TestBeforeChangeComesFirst(t *testing.T) {
	store := &objectStore{}
	e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }})
	store.put(document{Serial: 1, Port: e.port}.bytes())

	// What the node looked like at each call.
	type seen struct {
		appConfig string // "" while it does not exist
		services  int    // service manager calls so far
		hooks     int    // lifecycle actions completed so far
	}
	var mu sync.Mutex
	var calls []seen
	e.agent.BeforeChange = func() {
		b, _ := os.ReadFile(filepath.Join(e.root, "etc/nodeagent/products/shop.php"))
		e.services.mu.Lock()
		n := len(e.services.calls)
		e.services.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, seen{string(b), n, len(e.hooks.list())})
	}
	boot := func(what string) []seen {
		t.Helper()
		mu.Lock()
		before := len(calls)
		mu.Unlock()
		res, err := e.agent.Boot(t.Context())
		if err != nil {
			t.Fatalf("%s: Boot: %v", what, err)
		}
		if res.Outcome == nil || !res.Outcome.Ready {
			t.Fatalf("%s: the node is not ready: %+v", what, res)
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), calls[before:]...)
	}

	first := boot("first boot")
	if len(first) == 0 {
		t.Fatal("first boot: BeforeChange was never called")
	}
	if got := first[0]; got != (seen{}) {
		t.Errorf("first boot: at the first BeforeChange the node had already changed: %+v", got)
	}
	if got := e.hooks.list(); len(got) != 1 {
		t.Fatalf("first boot: lifecycle actions %q, want the launch hook's", got)
	}
	if e.services.count("start apache2")+e.services.count("reload apache2") == 0 {
		t.Fatalf("first boot: Apache was neither started nor reloaded: %q", e.services.calls)
	}

	if again := boot("the same document"); len(again) != 0 {
		t.Errorf("an apply with nothing to change called BeforeChange %d times, want none", len(again))
	}

	// A failover: the app config names the new master.
	store.put(document{Serial: 2, Port: e.port, Master: "db-b"}.bytes())
	changed := boot("a changed document")
	if len(changed) == 0 {
		t.Fatal("a changed document: BeforeChange was never called")
	}
	if got := changed[0].appConfig; !strings.Contains(got, dbAIP) || strings.Contains(got, dbBIP) {
		t.Errorf("a changed document: at the first BeforeChange the app config was already rewritten:\n%s", got)
	}
	if got := e.appConfig(); !strings.Contains(got, dbBIP) {
		t.Errorf("after the changed document the app config does not name the new master %s:\n%s", dbBIP, got)
	}
}
