//go:build integration

package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// status is the part of `nodeagent status --json` the tests read.
type status struct {
	Ready       bool              `json:"ready"`
	Reason      string            `json:"reason"`
	LastApplyOK bool              `json:"last_apply_ok"`
	Serial      int64             `json:"serial"`
	Release     map[string]string `json:"release"`
	Instance    string            `json:"instance"`
	Role        string            `json:"role"`
	LastError   string            `json:"last_error"`
	Owed        []string          `json:"owed"`
}

func (n *node) status(t *testing.T) (status, result) {
	t.Helper()
	r := n.agent(t, "status", "--json")
	var st status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r)
	}
	return st, r
}

// currentRelease is where the product's current symlink points.
func (n *node) currentRelease(t *testing.T) string {
	t.Helper()
	dest, err := os.Readlink(n.path("var/www/" + product + "/current"))
	if err != nil {
		t.Fatalf("current release of %s: %v", product, err)
	}
	return dest
}

// launchCalls checks the CompleteLifecycleAction calls of the launch hook
// for n: exactly one, with result want, for the right group and instance.
func (n *node) checkLaunchHook(t *testing.T, want string) {
	t.Helper()
	var mine []harness.ASGCall
	for _, c := range n.fleet.hookCalls(launchHook) {
		if c.InstanceID == n.instanceID {
			mine = append(mine, c)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("launch hook completions for %s: %+v, want exactly one", n.instanceID, mine)
	}
	c := mine[0]
	if c.Result != want || c.Group != webGroup || c.Error != "" {
		t.Errorf("launch hook completion %+v, want %s for group %s accepted", c, want, webGroup)
	}
}

func TestLaunchToInService(t *testing.T) {
	r1 := buildRelease(t, "shop", "2026.02.01-1")
	f := newFleet(t, r1)
	cache := f.newNode(t, "cache-1", 20, "")
	cache.mustApply(t)
	web := f.newNode(t, "web", 10, webGroup)
	for _, rel := range []string{stateDir, "var/www"} {
		if _, err := os.Stat(web.path(rel)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("fresh node root already has %s (err %v)", rel, err)
		}
	}

	r := web.mustApply(t)
	if !strings.Contains(r.stdout, "launch hook completed with CONTINUE") {
		t.Errorf("apply does not report the launch hook:\n%s", r)
	}

	t.Run("files rendered and release active", func(t *testing.T) {
		ver := web.phpVersion(t)
		for _, rel := range []string{
			"etc/apache2/ports.conf",
			"etc/apache2/conf-enabled/nodeagent.conf",
			"etc/apache2/sites-enabled/00-nodeagent-default.conf",
			"etc/apache2/sites-enabled/nodeagent-shop.conf",
			"etc/php/" + ver + "/fpm/pool.d/nodeagent-shop.conf",
			"etc/nodeagent/products/shop.php",
			stateDir + "/probe/php-probe.php",
			stateDir + "/topology.json",
			"var/www/shop/releases/" + r1.id + "/public/index.php",
		} {
			if _, err := os.Stat(web.path(rel)); err != nil {
				t.Errorf("missing %s: %v", rel, err)
			}
		}
		if got, want := web.currentRelease(t), filepath.Join("releases", r1.id); got != want {
			t.Errorf("current -> %s, want %s", got, want)
		}
		checkConfigs(t, web)
	})

	t.Run("serves through Apache, PHP-FPM and memcached", func(t *testing.T) {
		checkServes(t, web, cache)
		smoke := web.agent(t, "smoke", "--smoke-deadline", "10s")
		if smoke.code != 0 {
			t.Errorf("nodeagent smoke failed on a converged node:\n%s", smoke)
		}
		for _, check := range []string{"shop/home", "shop/php-probe"} {
			if !strings.Contains(smoke.stdout, check) {
				t.Errorf("smoke table lacks %s:\n%s", check, smoke.stdout)
			}
		}
	})

	t.Run("ELB health path answers 200 through Apache", func(t *testing.T) {
		eventually(t, 5*time.Second, web.apacheURL(healthPath), serverName, 200, "")
		// The catch-all vhost answers the load balancer's requests by IP.
		eventually(t, 5*time.Second, web.apacheURL(healthPath), web.ip, 200, "")
		code, _, _, err := httpGet(web.apacheURL("/no-such-page"), web.ip)
		if err != nil || code != 404 {
			t.Errorf("catch-all vhost on another path: %d, %v; want 404", code, err)
		}
	})

	t.Run("status says ready", func(t *testing.T) {
		st, r := web.status(t)
		if r.code != 0 || !st.Ready || !st.LastApplyOK {
			t.Errorf("status: %+v, want ready:\n%s", st, r)
		}
		if st.Serial != f.doc.Serial || st.Release[product] != r1.id || st.Instance != web.instanceID || st.Role != "web" {
			t.Errorf("status %+v, want serial %d, release %s, instance %s, role web", st, f.doc.Serial, r1.id, web.instanceID)
		}
	})

	t.Run("launch hook completed once with CONTINUE", func(t *testing.T) {
		web.checkLaunchHook(t, "CONTINUE")
	})

	t.Run("run serves /ready and drains on SIGTERM while terminating", func(t *testing.T) {
		// The same instance, being terminated: its metadata says the
		// target lifecycle state is Terminated after a second. (A SIGTERM
		// while it says InService is a plain stop: TestRunRestartIsNotTerminate.)
		terminating := harness.StartIMDS(t, harness.IMDSConfig{
			InstanceID: web.instanceID, PrivateIP: web.ip, AZ: "us-east-1a", InstanceType: "t3.small", Group: webGroup,
			TerminateAfter: time.Second,
		})
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(nodeagentBin, "run", "--config", web.config, "--drain-time", "1s")
		cmd.Env = withEnv(web.env, "AWS_EC2_METADATA_SERVICE_ENDPOINT", terminating.URL)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				_ = cmd.Process.Kill()
				<-exited
			}
		})

		eventually(t, 60*time.Second, "http://"+web.listen+"/ready", web.listen, 200, "")
		time.Sleep(1500 * time.Millisecond) // past TerminateAfter
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Errorf("run exited with %v after SIGTERM, want 0\nstderr:\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("run did not exit within 30s of SIGTERM\nstderr:\n%s", stderr.String())
		}
		var term []harness.ASGCall
		for _, c := range f.hookCalls(terminateHook) {
			if c.InstanceID == web.instanceID {
				term = append(term, c)
			}
		}
		if len(term) != 1 || term[0].Result != "CONTINUE" || term[0].Group != webGroup || term[0].Error != "" {
			t.Errorf("terminate hook completions %+v, want one CONTINUE for %s", term, web.instanceID)
		}
		web.checkLaunchHook(t, "CONTINUE") // run did not complete the launch hook again
		code, _, _, err := httpGet(web.apacheURL(healthPath), serverName)
		if err != nil || code != 503 {
			t.Errorf("ELB health path after draining: %d, %v; want 503", code, err)
		}
	})
}

// checkStaysInService asserts SPEC section 7: one bad push must never take
// a node out of the load balancer. After a failed apply that put the
// previous state back, the node is still ready and its ELB health path
// answers 200.
func checkStaysInService(t *testing.T, n *node) {
	t.Helper()
	if st, r := n.status(t); !st.Ready {
		t.Errorf("node not ready after a failed apply that restored its previous state: %+v\n%s", st, r)
	}
	code, _, _, err := httpGet(n.apacheURL(healthPath), serverName)
	if err != nil || code != 200 {
		t.Errorf("ELB health path after a failed apply that restored the previous state: %d, %v; want 200", code, err)
	}
}

func TestBrokenRelease(t *testing.T) {
	good := buildRelease(t, "shop", "2026.03.01-1")
	broken := buildRelease(t, "shop-broken", "2026.03.02-1")
	f, cache, web := converge(t, good)
	f.putRelease(t, broken)
	f.setRelease(broken)
	f.publish(t)

	t.Run("serving node switches back to the previous release", func(t *testing.T) {
		r := web.agent(t, "apply", "--smoke-deadline", "3s")
		if r.code != 1 {
			t.Fatalf("apply of a release failing its smoke check: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "switched back") || !strings.Contains(r.stderr, good.id) {
			t.Errorf("apply does not say it switched back to %s:\n%s", good.id, r.stderr)
		}
		if got, want := web.currentRelease(t), filepath.Join("releases", good.id); got != want {
			t.Errorf("current -> %s, want %s (switched back)", got, want)
		}
		checkServes(t, web, cache)
	})

	t.Run("stays in service after the rollback", func(t *testing.T) {
		checkStaysInService(t, web)
	})

	t.Run("fresh node with only a broken release abandons its launch", func(t *testing.T) {
		fresh := f.newNode(t, "web-2", 11, webGroup)
		start := time.Now()
		r := fresh.agent(t, "apply", "--launch-attempts", "2", "--smoke-deadline", "3s")
		if r.code != 1 {
			t.Fatalf("boot with a broken release: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "ABANDON") || !strings.Contains(r.stderr, "attempt=2") {
			t.Errorf("apply does not report two attempts and ABANDON:\n%s", r.stderr)
		}
		fresh.checkLaunchHook(t, "ABANDON")
		// There was no release before the broken one: current stays on
		// it (the node is not ready, and the operator can look at it),
		// and the messages say so rather than claim a switch back.
		if got, want := fresh.currentRelease(t), filepath.Join("releases", broken.id); got != want {
			t.Errorf("current -> %s, want %s (nothing to switch back to)", got, want)
		}
		if strings.Contains(r.stderr, "switched back") || !strings.Contains(r.stderr, "release "+broken.id+" of shop stays active") {
			t.Errorf("a failed first boot does not say its release stays active (or claims a switch back):\n%s", r.stderr)
		}
		if st, _ := fresh.status(t); st.Ready {
			t.Errorf("fresh node with a broken release says ready: %+v", st)
		}
		t.Logf("two boot attempts took %s", time.Since(start).Round(time.Millisecond))
	})
}
