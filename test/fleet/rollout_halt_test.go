//go:build integration

package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nodeagent/nodeagent"
	fleetpkg "github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/test/harness"
)

// haltWaves are the shares of TestRolloutHaltsBrokenRelease.
var haltWaves = []int{25, 50, 100}

// TestRolloutHaltsBrokenRelease: a release whose code fails the shop's
// smoke check everywhere, published in waves to 20 agents: 2 real web
// nodes (Apache and PHP-FPM serving the shop) and 18 light front nodes.
// The serial is picked so that both web nodes fall in the first wave.
// Only the first wave tries it; the web nodes fail their smoke check and
// revert; the rollout halts and names them; not one node outside the first
// wave ever applies the serial; the number of ready nodes (sampled
// continuously: /ready of the web nodes and the health file of the light
// ones) never falls below the fleet minus the first wave; and with
// --auto-rollback the previous document is republished, which every node
// applies, the web nodes serving the good release. Then a good change
// rolls out with nobody advancing it, and a database failover published
// meanwhile reaches every node at once (it supersedes the rollout).
func TestRolloutHaltsBrokenRelease(t *testing.T) {
	f := newFleet(t, fleetOptions{Web: 2, PollInterval: time.Second, Settle: 0, Splay: 0, SmokeDeadline: 3 * time.Second})
	// The serial of the broken release: both web nodes in wave 1.
	bad := int64(2)
	for ; ; bad++ {
		if rollout.WaveOf(webInstanceID(1), bad, haltWaves) == 0 && rollout.WaveOf(webInstanceID(2), bad, haltWaves) == 0 {
			break
		}
	}
	good := f.rolloutDocument(bad-1, releaseID, releaseKey, f.releaseSum)
	f.publish(good)
	f.startAll()
	lf := &lightFleet{t: t, minio: f.minio, apachePort: f.apachePort, workers: 32, every: time.Second}
	var lights []*lightNode
	for i := 1; i <= 18; i++ {
		lights = append(lights, lf.start(fmt.Sprintf("front-%d", i), "front", []string{"us-east-1a", "us-east-1b"}[i%2], frontID(i), fmt.Sprintf("127.0.40.%d", i), ""))
	}
	f.waitReady(2 * time.Minute)
	waitFor(t, time.Minute, "the light nodes ready on the first serial", func() bool {
		for _, n := range lights {
			if !agentReady(n) || appliedSerial(n.root) != bad-1 {
				return false
			}
		}
		return true
	})
	type member struct {
		name, id, root string
		ready          func() bool
	}
	var all []member
	for _, n := range f.all() {
		n := n
		all = append(all, member{n.name, n.instanceID, n.root, func() bool {
			code, _, err := get("http://"+n.addr+"/ready", "")
			return err == nil && code == http.StatusOK
		}})
	}
	for _, n := range lights {
		n := n
		all = append(all, member{n.name, n.instanceID, n.root, func() bool { return agentReady(n) }})
	}
	firstWave := 0
	for _, m := range all {
		if rollout.WaveOf(m.id, bad, haltWaves) == 0 {
			firstWave++
		}
	}
	if firstWave == len(all) {
		t.Fatal("every node is in the first wave: the test proves nothing")
	}
	waitFor(t, 30*time.Second, "a report from all 20 agents", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, out, _ := lf.cli(ctx, "fleet", "status", "--json", "--topology", topologyURL, "--report-interval", "5m")
		var s fleetpkg.Snapshot
		return code == 0 && json.Unmarshal([]byte(out), &s) == nil && s.Summary.Live == len(all)
	})

	// The broken release: the shop's home page no longer says Welcome.
	archive, sum, err := harness.ReleaseArchive(fstest.MapFS{"public/index.php": {Data: []byte("<?php echo \"Out of order\\n\";\n")}}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	f.minio.Put(t, releaseBucket, "shop/r2.tar.gz", archive)
	file := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(file, f.rolloutDocument(bad, "r2", "shop/r2.tar.gz", sum), 0o644); err != nil {
		t.Fatal(err)
	}

	// Sample every node continuously: its applied serial and readiness.
	var mu sync.Mutex
	var applied []string
	minReady, samples := len(all), 0
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ready := 0
			for _, m := range all {
				if m.ready() {
					ready++
				}
				if appliedSerial(m.root) == bad && rollout.WaveOf(m.id, bad, haltWaves) > 0 {
					mu.Lock()
					applied = append(applied, m.name)
					mu.Unlock()
				}
			}
			mu.Lock()
			minReady, samples = min(minReady, ready), samples+1
			mu.Unlock()
		}
	}()

	op := startOperator(t, f.minio, "topology", "publish", file, "--to", topologyURL, "--rollout", "waves", "--waves", "25,50,100",
		// The web agents run with the default --report-interval (5m).
		"--bake", "1s", "--max-failed", "1", "--auto-rollback", "--report-interval", "5m", "--every", "250ms")
	code := op.wait(t, 3*time.Minute)
	out := op.out.String()
	if code != 1 {
		t.Fatalf("publish of a broken release: exit %d, want 1 (halted)\n%s", code, out)
	}
	r := readRollout(t, f.minio, bad)
	if r == nil || r.State != rollout.StateHalted || r.Wave != 0 || r.RolledBackTo != bad+1 {
		t.Fatalf("rollout object %+v, want halted at wave 1 and rolled back to %d", r, bad+1)
	}
	for _, n := range f.all() {
		if !strings.Contains(out, n.name) && !strings.Contains(out, n.instanceID) {
			t.Errorf("the command does not name the failed node %s:\n%s", n.name, out)
		}
	}
	for _, want := range []string{"HALTED at wave 1 of 3", "smoke", fmt.Sprintf("auto-rollback: published serial %d", bad+1)} {
		if !strings.Contains(out, want) {
			t.Errorf("the command's output lacks %q:\n%s", want, out)
		}
	}
	// The rollback reaches everyone; the web nodes serve the good release.
	waitFor(t, time.Minute, "every node ready on the rollback serial", func() bool {
		for _, m := range all {
			if appliedSerial(m.root) != bad+1 || !m.ready() {
				return false
			}
		}
		return true
	})
	close(stop)
	<-done
	if len(applied) > 0 {
		t.Errorf("nodes outside the first wave applied the broken serial: %v", slices.Compact(slices.Sorted(slices.Values(applied))))
	}
	if minReady < len(all)-firstWave {
		t.Errorf("ready nodes fell to %d, below the fleet (%d) minus the first wave (%d)", minReady, len(all), firstWave)
	}
	for _, n := range f.all() {
		if code, body, err := get(n.apacheURL("/"), serverName); err != nil || code != 200 || !strings.Contains(body, "Welcome") {
			t.Errorf("%s serves %d %q %v after the rollback", n.name, code, body, err)
		}
	}
	t.Logf("first wave %d of %d nodes; ready never below %d over %d samples", firstWave, len(all), minReady, samples)

	// A failover published during a rollout reaches every node at once:
	// a good change of the shop rolls out with nobody advancing it (held
	// at wave 1), then `topology failover` publishes the next serial
	// without a rollout.
	change := bad + 2
	file = filepath.Join(t.TempDir(), "change.json")
	if err := os.WriteFile(file, f.rolloutDocument(change, releaseID, releaseKey, f.releaseSum, func(t *nodeagent.Topology) {
		shop := t.Products["shop"]
		shop.PHP.MaxChildren = 5
		t.Products["shop"] = shop
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	op = startOperator(t, f.minio, "topology", "publish", file, "--to", topologyURL, "--rollout", "waves", "--waves", "25,50,100",
		"--bake", "1h", "--follow=false")
	if code := op.wait(t, time.Minute); code != 0 {
		t.Fatalf("publish --rollout waves --follow=false: exit %d\n%s", code, op.out.String())
	}
	var outside []member
	for _, m := range all {
		if rollout.WaveOf(m.id, change, haltWaves) > 0 {
			outside = append(outside, m)
		}
	}
	waitFor(t, 30*time.Second, "wave 1 of the change applied", func() bool {
		for _, m := range all {
			if rollout.WaveOf(m.id, change, haltWaves) == 0 && appliedSerial(m.root) != change {
				return false
			}
		}
		return true
	})
	for _, m := range outside {
		if got := appliedSerial(m.root); got != bad+1 {
			t.Errorf("%s (outside wave 1) is on serial %d, want %d", m.name, got, bad+1)
		}
	}
	code, fout, ferr := f.operator(t, 2*time.Minute, "topology", "failover", "--alias", "dbserver", "--to", "db-b", "--topology", topologyURL,
		"--wait", "--timeout", "90s", "--report-interval", "5m")
	if code != 0 {
		t.Fatalf("failover --wait: exit %d\n%s%s", code, fout, ferr)
	}
	for _, m := range all {
		if got := appliedSerial(m.root); got != change+1 {
			t.Errorf("%s is on serial %d after the failover, want %d", m.name, got, change+1)
		}
	}
	for _, n := range f.all() {
		if !n.converged(masterIP("db-b")) {
			t.Errorf("%s does not show db-b as the master after the failover", n.name)
		}
	}
}

// rolloutDocument is the fleet's document with the light front nodes'
// group and role, the reports prefix, and the shop at release id.
func (f *fleet) rolloutDocument(serial int64, id, key, sum string, edits ...func(*nodeagent.Topology)) []byte {
	f.t.Helper()
	var t nodeagent.Topology
	if err := json.Unmarshal(f.topology(serial, "db-a"), &t); err != nil {
		f.t.Fatal(err)
	}
	t.Groups[frontGroup] = nodeagent.Group{Role: "front"}
	t.Roles["front"] = nodeagent.Role{Services: []string{nodeagent.ServiceApache}}
	shop := t.Products["shop"]
	shop.Release = &nodeagent.Release{ID: id, URL: "s3://" + releaseBucket + "/" + key, SHA256: sum}
	t.Products["shop"] = shop
	t.Fleet = &nodeagent.Fleet{Reports: reportsURL}
	for _, e := range edits {
		e(&t)
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}
