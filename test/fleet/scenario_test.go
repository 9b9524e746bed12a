//go:build integration

package fleet

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFleet runs 10 agents (4 web, 6 cache) as separate processes and
// pushes a database failover, a broken document and a fix through them,
// with a load balancer probing the web nodes and load on one of them; then
// a fifth web node is told to terminate.
func TestFleet(t *testing.T) {
	o := fleetOptions{Web: 4, Cache: 6, PollInterval: time.Second, Splay: time.Second, Settle: 200 * time.Millisecond, DrainTime: 2 * time.Second}
	// A change reaches every node within the interval (±10% jitter), the
	// splay and 2 seconds for the settle delay and the apply itself.
	budget := o.PollInterval + o.PollInterval/10 + o.Splay + 2*time.Second
	f := newFleet(t, o)
	f.publish(f.topology(1, "db-a"))
	f.startAll()
	f.waitReady(3 * time.Minute)
	t.Cleanup(f.stopAll)

	lb := newLoadBalancer(250 * time.Millisecond)
	t.Cleanup(lb.close)
	for _, n := range f.byRole("web") {
		lb.register(fmt.Sprintf("%s:%d", n.ip, f.apachePort))
	}
	waitFor(t, 10*time.Second, "every web node healthy at the load balancer", func() bool {
		for _, n := range f.byRole("web") {
			if lb.stateOf(fmt.Sprintf("%s:%d", n.ip, f.apachePort)) != lbHealthy {
				return false
			}
		}
		return true
	})
	t.Run("boot", func(t *testing.T) {
		for _, n := range f.all() {
			if !n.converged(dbAIP) {
				t.Errorf("%s: hosts %q app %q served %q, want master %s", n.name, n.hostsMaster(), n.appMaster(), n.servedMaster(), dbAIP)
			}
			if n.role == "web" {
				if got := f.asgCompleted(n.instanceID, launchHook); !slices.Equal(got, []string{"CONTINUE"}) {
					t.Errorf("%s: launch hook completions %q, want one CONTINUE", n.name, got)
				}
			}
		}
	})
	lbFrom := time.Now()
	ready := f.probeReady(100 * time.Millisecond)

	push := func(t *testing.T, serial int64, master string) {
		t.Helper()
		before := map[string]map[string]int{}
		applied := map[string]float64{}
		for _, n := range f.all() {
			before[n.name] = n.actions()
			applied[n.name] = n.mustMetric(`nodeagent_applies_total{result="ok"}`)
		}
		published := f.publish(f.topology(serial, master))
		took := f.waitConverged(masterIP(master), published, budget)
		var worst time.Duration
		for _, d := range took {
			worst = max(worst, d)
		}
		t.Logf("serial %d (master %s) on all %d nodes in %s (budget %s): %v", serial, master, len(took), worst, budget, took)
		// Let any second apply happen before counting.
		time.Sleep(o.PollInterval + o.Splay + o.Settle + time.Second)
		for _, n := range f.all() {
			if got := n.mustMetric(`nodeagent_applies_total{result="ok"}`) - applied[n.name]; got != 1 {
				t.Errorf("%s: %v applies for serial %d, want exactly 1", n.name, got, serial)
			}
			if got := n.mustMetric("nodeagent_topology_serial_applied"); got != float64(serial) {
				t.Errorf("%s: serial applied %v, want %d", n.name, got, serial)
			}
			after := n.actions()
			diff := map[string]int{}
			for k, v := range after {
				if d := v - before[n.name][k]; d != 0 {
					diff[k] = d
				}
			}
			switch n.role {
			case "web":
				// Only the app config changes: php-fpm reloads once,
				// Apache not at all.
				if want := map[string]int{n.phpUnit() + " reload": 1}; !maps.Equal(diff, want) {
					t.Errorf("%s: service actions %v, want exactly one php-fpm reload", n.name, diff)
				}
			default:
				if len(diff) != 0 {
					t.Errorf("%s: service actions %v, want none (only /etc/hosts changes)", n.name, diff)
				}
			}
		}
	}

	web1 := f.byRole("web")[0]
	var traffic *load
	t.Run("failover reaches every node once", func(t *testing.T) {
		traffic = startLoad(web1.apacheURL("/"), 4, 10*time.Millisecond)
		push(t, 2, "db-b")
	})
	if traffic != nil {
		t.Run("no failed request through Apache during the reload", func(t *testing.T) {
			n, failures := traffic.end()
			t.Logf("%d requests to %s during the failover", n, web1.name)
			if n < 100 {
				t.Errorf("only %d requests: the load did not cover the reload", n)
			}
			if len(failures) > 0 {
				t.Errorf("%d failed requests of %d: %q", len(failures), n, failures)
			}
		})
	}

	t.Run("broken document changes nothing and is reported", func(t *testing.T) {
		sums := f.fileSums()
		before := map[string]map[string]int{}
		for _, n := range f.all() {
			before[n.name] = n.actions()
		}
		// Valid JSON whose master names a node that does not exist.
		broken := strings.Replace(string(f.topology(3, "db-a")), `"dbserver": "db-a"`, `"dbserver": "db-gone"`, 1)
		if broken == string(f.topology(3, "db-a")) {
			t.Fatal("the broken document is not broken")
		}
		f.publish([]byte(broken))
		waitFor(t, budget, "every node reports the broken document", func() bool {
			for _, n := range f.all() {
				st, err := n.status()
				if err != nil || !strings.Contains(st.LastError, "db-gone") {
					return false
				}
			}
			return true
		})
		time.Sleep(o.PollInterval + o.Splay + time.Second)
		for _, n := range f.all() {
			st, err := n.status()
			if err != nil {
				t.Fatal(err)
			}
			if !st.Ready || st.Serial != 2 || st.SeenSerial != 3 {
				t.Errorf("%s: ready %v serial %d seen %d, want ready, serial 2 applied, 3 seen", n.name, st.Ready, st.Serial, st.SeenSerial)
			}
			if got := n.mustMetric(`nodeagent_applies_total{result="refused"}`); got != 1 {
				t.Errorf("%s: refused applies %v, want 1", n.name, got)
			}
			if !maps.Equal(n.actions(), before[n.name]) {
				t.Errorf("%s: service actions %v after the broken push, were %v", n.name, n.actions(), before[n.name])
			}
		}
		if after := f.fileSums(); !maps.Equal(sums, after) {
			t.Errorf("files changed by the broken push:\nbefore %v\nafter  %v", sums, after)
		}
	})

	t.Run("fixed document converges", func(t *testing.T) {
		push(t, 4, "db-a")
	})

	t.Run("never unready, never unhealthy", func(t *testing.T) {
		bad, probes := ready.end()
		if len(bad) > 0 {
			t.Errorf("%d of %d /ready probes failed: %q", len(bad), probes, bad)
		}
		if tr := lb.transitionsSince(lbFrom); len(tr) > 0 {
			t.Errorf("load balancer transitions during the pushes: %+v", tr)
		}
	})

	t.Run("terminated node drains before it exits", func(t *testing.T) {
		// Its metadata says Terminated 20s after it starts: time to boot
		// and turn healthy first.
		n := f.startNode("web", o.Web+1, 20*time.Second)
		target := fmt.Sprintf("%s:%d", n.ip, f.apachePort)
		lb.register(target)
		waitFor(t, 20*time.Second, n.name+" healthy at the load balancer", func() bool { return lb.stateOf(target) == lbHealthy })
		select {
		case <-n.exited:
		case <-time.After(40 * time.Second):
			t.Fatalf("%s did not exit after its lifecycle state turned Terminated; log:\n%s", n.name, n.logTail())
		}
		if n.exitErr != nil {
			t.Errorf("%s exited with %v, want 0", n.name, n.exitErr)
		}
		var unhealthy time.Time
		for _, tr := range lb.transitionsSince(lbFrom) {
			if tr.Target == target && tr.To == lbUnhealthy {
				unhealthy = tr.At
			}
		}
		switch {
		case unhealthy.IsZero():
			t.Errorf("%s never turned unhealthy at the load balancer", n.name)
		case !unhealthy.Before(n.exitAt):
			t.Errorf("%s turned unhealthy at %s, after its process exited at %s", n.name, unhealthy.Format("15:04:05.000"), n.exitAt.Format("15:04:05.000"))
		default:
			t.Logf("%s unhealthy %s before its agent exited", n.name, n.exitAt.Sub(unhealthy))
		}
		if got := f.asgCompleted(n.instanceID, terminateHook); !slices.Equal(got, []string{"CONTINUE"}) {
			t.Errorf("%s: terminate hook completions %q, want one CONTINUE", n.name, got)
		}
		code, _, err := get(n.apacheURL(healthPath), "")
		if err == nil && code == http.StatusOK {
			t.Errorf("%s: health path still 200 after the drain", n.name)
		}
	})
}
