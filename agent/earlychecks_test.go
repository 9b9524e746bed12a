package agent_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/smoke"
)

// TestEarlyChecks: an apply of the document last applied starts the smoke
// checks while it plans, and uses their results when it changes nothing;
// one that finds the host drifted stops them before it changes anything
// and checks again afterwards. A first apply, or a new document, checks
// only after its changes.
func TestEarlyChecks(t *testing.T) {
	var (
		requests atomic.Int64              // smoke requests that reached Apache
		arrived  = make(chan struct{}, 64) // one per request, as it arrives
		hold     atomic.Bool               // hold the next request until its client leaves
		held     = make(chan string, 1)    // how the held request ended
		waitPlan atomic.Bool               // the next Active waits for a request
		inPlan   atomic.Int64              // requests seen while a plan was built
	)
	apache := func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
		if hold.CompareAndSwap(true, false) {
			select {
			case <-r.Context().Done():
				held <- "cancelled"
			case <-time.After(10 * time.Second):
				held <- "still waiting after 10s: its client never left"
			}
			return
		}
		welcome(w, r)
	}
	store := &objectStore{}
	e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }, Apache: apache})
	// The agent's side of the checks: requests in flight, and how many
	// were at each BeforeChange (the apply's first change follows it).
	var inFlight atomic.Int64
	client := smoke.NewHTTPClient(5 * time.Second)
	client.Transport = countingTransport{next: client.Transport, n: &inFlight}
	e.agent.HTTPClient = client
	var atChange []int64
	e.agent.BeforeChange = func() { atChange = append(atChange, inFlight.Load()) }
	// plan.Build asks the service manager whether each service runs, after
	// the desired state is known and while it reads the host: a request
	// that has reached Apache by then was sent before the plan was done.
	e.services.ActiveFunc = func(ctx context.Context, _ string) {
		if !waitPlan.CompareAndSwap(true, false) {
			select {
			case <-arrived:
				inPlan.Add(1)
			default:
			}
			return
		}
		select {
		case <-arrived:
			inPlan.Add(1)
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
	}
	boot := func(what string) []smoke.Result {
		t.Helper()
		for len(arrived) > 0 {
			<-arrived
		}
		inPlan.Store(0)
		res, err := e.agent.Boot(t.Context())
		if err != nil {
			t.Fatalf("%s: Boot: %v", what, err)
		}
		if res.Outcome == nil || !res.Outcome.Ready {
			t.Fatalf("%s: the node is not ready: %+v", what, res)
		}
		for _, r := range res.Outcome.Smoke {
			if !r.OK {
				t.Errorf("%s: smoke check %s failed: %s", what, r.Name, r.Err)
			}
		}
		return res.Outcome.Smoke
	}

	store.put(document{Serial: 1, Port: e.port}.bytes())
	checks := len(boot("first apply"))
	if checks == 0 {
		t.Fatal("first apply: no smoke checks ran")
	}
	if n := inPlan.Load(); n != 0 {
		t.Errorf("first apply: %d smoke requests reached Apache while the plan was built, want none", n)
	}

	before := requests.Load()
	waitPlan.Store(true)
	boot("the same document, nothing to change")
	if inPlan.Load() == 0 {
		t.Error("the same document: no smoke request reached Apache while the plan was built; the checks did not start early")
	}
	if n := requests.Load() - before; n != int64(checks) {
		t.Errorf("the same document: %d smoke requests, want %d (each check once: the early results serve the apply)", n, checks)
	}

	// An operator edits the app config by hand: the same document now
	// has a file to put back. The early check that is still waiting for
	// Apache must be stopped, and the apply's own checks come after.
	appConfig := filepath.Join(e.root, "etc/nodeagent/products/shop.php")
	if err := os.WriteFile(appConfig, []byte("<?php // edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before = requests.Load()
	hold.Store(true)
	waitPlan.Store(true)
	atChange = nil
	results := boot("the same document, a file edited by hand")
	if len(atChange) == 0 {
		t.Fatal("drifted host: BeforeChange was never called")
	}
	if atChange[0] != 0 {
		t.Errorf("drifted host: %d smoke requests were in flight when the apply began to change the node, want none", atChange[0])
	}
	if inPlan.Load() == 0 {
		t.Error("drifted host: no smoke request reached Apache while the plan was built")
	}
	select {
	case how := <-held:
		if how != "cancelled" {
			t.Errorf("drifted host: the early check held by Apache was not stopped: %s", how)
		}
	case <-time.After(15 * time.Second):
		t.Error("drifted host: no smoke request was held")
	}
	// The stopped checks judged nothing: the log holds no result of theirs.
	if n := strings.Count(e.logs.String(), `"msg":"smoke check failed"`); n != 0 {
		t.Errorf("drifted host: the log holds %d failed smoke checks; the stopped early ones must not be logged as results", n)
	}
	if got := e.appConfig(); strings.Contains(got, "edited by hand") {
		t.Errorf("drifted host: the app config was not put back:\n%s", got)
	}
	if len(results) != checks {
		t.Errorf("drifted host: %d smoke results, want %d", len(results), checks)
	}
	// The held request plus each check at least once after the change.
	if n := requests.Load() - before; n < int64(checks)+1 {
		t.Errorf("drifted host: %d smoke requests, want the held one and %d after the change", n, checks)
	}

	store.put(document{Serial: 2, Port: e.port, Master: "db-b"}.bytes())
	boot("a new document")
	if n := inPlan.Load(); n != 0 {
		t.Errorf("a new document: %d smoke requests reached Apache while the plan was built, want none", n)
	}
}

// countingTransport counts the requests in flight through it.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	defer c.n.Add(-1)
	return c.next.RoundTrip(r)
}
