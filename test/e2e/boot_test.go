//go:build integration

package e2e_test

import (
	"bytes"
	"encoding/json"

	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/test/harness"
)

// launchCompletions are the fake's CompleteLifecycleAction calls of the
// launch hook for n, in order.
func (n *node) launchCompletions() []harness.ASGCall {
	var mine []harness.ASGCall
	for _, c := range n.fleet.hookCalls(launchHook) {
		if c.InstanceID == n.instanceID {
			mine = append(mine, c)
		}
	}
	return mine
}

// TestBootTransientOutage: `apply` at boot (what cloud-init runs) rides out
// a transient IMDS or S3 outage shorter than --deadline and completes the
// launch hook with CONTINUE, and one longer than --deadline ends with the
// launch hook completed with ABANDON, exactly once, so the group replaces
// the instance. The outage is a fault proxy answering 503 (S3's SlowDown)
// in front of the real AEMM or MinIO.
func TestBootTransientOutage(t *testing.T) {
	f := newFleet(t, buildRelease(t, "shop", "2026.05.01-1"))
	cache := f.newNode(t, "cache-1", 20, "")
	cache.mustApply(t)

	tests := []struct {
		name     string
		host     int
		s3       bool // the outage is S3's; otherwise IMDS's
		outage   time.Duration
		deadline time.Duration
		want     string
	}{
		{"IMDS outage shorter than the deadline", 41, false, 5 * time.Second, 30 * time.Second, nodeagent.LifecycleContinue},
		{"IMDS outage longer than the deadline", 42, false, 14 * time.Second, 8 * time.Second, nodeagent.LifecycleAbandon},
		{"S3 outage shorter than the deadline", 43, true, 5 * time.Second, 30 * time.Second, nodeagent.LifecycleContinue},
		{"S3 outage longer than the deadline", 44, true, 14 * time.Second, 8 * time.Second, nodeagent.LifecycleAbandon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := f.newNode(t, fmt.Sprintf("web-%d", tt.host), tt.host, webGroup)
			var proxy *harness.FaultProxy
			if tt.s3 {
				proxy = harness.StartFaultProxy(t, f.minio.Endpoint)
				n.env = withEnv(n.env, "AWS_ENDPOINT_URL_S3", proxy.URL)
			} else {
				proxy = harness.StartFaultProxy(t, n.imds.URL)
				n.env = withEnv(n.env, "AWS_EC2_METADATA_SERVICE_ENDPOINT", proxy.URL)
			}
			start := time.Now()
			until := proxy.FailFor(tt.outage)
			r := n.agent(t, "apply", "--deadline", tt.deadline.String())
			failed, passed := proxy.Counts()
			t.Logf("fault proxy: %d requests answered 503, %d passed through; outage of %s, apply took %s",
				failed, passed, until.Sub(start).Round(time.Millisecond), r.duration.Round(time.Millisecond))
			if failed < 2 {
				t.Fatalf("the agent sent %d requests into the outage; the test did not test it\n%s", failed, r)
			}
			calls := n.launchCompletions()
			if len(calls) != 1 || calls[0].Result != tt.want || calls[0].Group != webGroup || calls[0].Error != "" {
				t.Fatalf("launch hook completions %+v, want exactly one %s\n%s", calls, tt.want, r)
			}
			if tt.want == nodeagent.LifecycleContinue {
				if r.code != 0 {
					t.Fatalf("boot through a %s outage: exit %d, want 0\n%s", tt.outage, r.code, r)
				}
				if !strings.Contains(r.stderr, "transient failure; retrying") {
					t.Errorf("apply does not say it retried a transient failure:\n%s", r.stderr)
				}
				eventually(t, 15*time.Second, n.apacheURL(healthPath), serverName, 200, "")
				checkServes(t, n, cache)
				return
			}
			if r.code != 1 {
				t.Fatalf("boot through a %s outage with --deadline %s: exit %d, want 1\n%s", tt.outage, tt.deadline, r.code, r)
			}
			if !strings.Contains(r.stderr, "ABANDON") || !strings.Contains(r.stderr, "--deadline "+tt.deadline.String()) {
				t.Errorf("apply does not say it gave up at the deadline and abandoned:\n%s", r.stderr)
			}
			if r := n.agent(t, "status", "--json"); r.code == 0 {
				var st status
				if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Ready {
					t.Errorf("node that abandoned its launch: status %+v, %v; want not ready", st, err)
				}
			} else if !strings.Contains(r.stderr, "has not run an apply") {
				t.Errorf("status of a node that abandoned its launch before any apply:\n%s", r)
			}
			// Nothing completes the launch hook again: a second apply (a
			// restarted cloud-init) and the outage long over.
			n.agent(t, "apply", "--deadline", tt.deadline.String())
			if calls := n.launchCompletions(); len(calls) != 1 {
				t.Errorf("launch hook completions after a second apply: %+v, want still exactly one", calls)
			}
		})
	}
}

// agentProc is a `nodeagent run` started in the background.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuf
	exited chan error
	done   bool
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runInBackground starts `nodeagent run` for n; the test's cleanup kills it if it
// is still running.
func (n *node) runInBackground(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{stderr: &lockedBuf{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(nodeagentBin, append([]string{"run", "--config", n.config}, args...)...)
	p.cmd.Env = n.env
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.done {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGTERM and waits (at most limit) for a clean exit.
func (p *agentProc) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.done = true
		if err != nil {
			t.Errorf("run exited with %v after SIGTERM, want 0\nstderr:\n%s", err, p.stderr)
		}
	case <-time.After(limit):
		t.Fatalf("run did not exit within %s of SIGTERM\nstderr:\n%s", limit, p.stderr)
	}
	return time.Since(start)
}

// healthSampler GETs the node's ELB health path through Apache every 20 ms
// until stopped (at most limit), recording every answer that is not 200.
type healthSampler struct {
	stopC   chan struct{}
	done    chan struct{}
	samples atomic.Int64
	mu      sync.Mutex
	bad     []string
}

func (n *node) sampleHealth(limit time.Duration) *healthSampler {
	s := &healthSampler{stopC: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		end := time.After(limit)
		for {
			select {
			case <-s.stopC:
				return
			case <-end:
				s.mu.Lock()
				s.bad = append(s.bad, fmt.Sprintf("sampling ran out of its %s bound", limit))
				s.mu.Unlock()
				return
			case <-time.After(20 * time.Millisecond):
			}
			code, body, _, err := httpGet(n.apacheURL(healthPath), serverName)
			s.samples.Add(1)
			if err != nil || code != 200 {
				s.mu.Lock()
				s.bad = append(s.bad, fmt.Sprintf("%s: %d %v %q", time.Now().Format("15:04:05.000"), code, err, strings.TrimSpace(body)))
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *healthSampler) stop() (bad []string, samples int64) {
	close(s.stopC)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad, s.samples.Load()
}

// TestRunRestartIsNotTerminate: `systemctl restart nodeagent` (SIGTERM while
// IMDS says InService, then a new `run`) never takes the node out of the
// load balancer and tells Auto Scaling nothing: the health path answers 200
// throughout, no terminate hook is completed, and the launch hook is not
// completed a second time.
func TestRunRestartIsNotTerminate(t *testing.T) {
	_, _, web := converge(t, buildRelease(t, "shop", "2026.05.02-1"))
	web.checkLaunchHook(t, nodeagent.LifecycleContinue)
	// A drain time far longer than the test waits: a drain would show.
	first := web.runInBackground(t, "--drain-time", "5m")
	eventually(t, 60*time.Second, "http://"+web.listen+"/ready", web.listen, 200, "")

	sampler := web.sampleHealth(2 * time.Minute)
	time.Sleep(200 * time.Millisecond)
	took := first.stop(t, 30*time.Second)
	if strings.Contains(first.stderr.String(), "msg=draining") {
		t.Errorf("run drained on a plain stop:\n%s", first.stderr)
	}
	second := web.runInBackground(t, "--drain-time", "5m")
	eventually(t, 60*time.Second, "http://"+web.listen+"/ready", web.listen, 200, "")
	time.Sleep(500 * time.Millisecond)
	bad, samples := sampler.stop()
	t.Logf("first run exited %s after SIGTERM; health path sampled %d times through the restart", took.Round(time.Millisecond), samples)
	if samples < 10 {
		t.Errorf("health path sampled only %d times; the restart was not observed", samples)
	}
	if len(bad) > 0 {
		t.Errorf("health path did not answer 200 throughout the restart:\n%s", strings.Join(bad, "\n"))
	}
	for _, c := range web.fleet.hookCalls(terminateHook) {
		if c.InstanceID == web.instanceID {
			t.Errorf("terminate hook completed on a restart: %+v", c)
		}
	}
	web.checkLaunchHook(t, nodeagent.LifecycleContinue) // still exactly one
	second.stop(t, 30*time.Second)
	for _, c := range web.fleet.hookCalls(terminateHook) {
		if c.InstanceID == web.instanceID {
			t.Errorf("terminate hook completed on a plain stop: %+v", c)
		}
	}
}

// fakeProc is a procfs for the agent's --proc: the host's meminfo and a
// boot id the test changes to simulate a reboot.
func fakeProc(t *testing.T, bootID string) string {
	t.Helper()
	dir := t.TempDir()
	mem, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meminfo"), mem, 0o644); err != nil {
		t.Fatal(err)
	}
	setBootID(t, dir, bootID)
	return dir
}

func setBootID(t *testing.T, proc, id string) {
	t.Helper()
	p := filepath.Join(proc, "sys/kernel/random/boot_id")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(id+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
}

// TestRebootIsNotReady: readiness survives an agent restart but not a
// reboot. After a reboot (a changed kernel boot id) the health path answers
// 503 until this boot's apply and smoke checks pass, although Apache serves
// and the health file and status.json of the last boot are still there.
func TestRebootIsNotReady(t *testing.T) {
	f := newFleet(t, buildRelease(t, "shop", "2026.05.04-1"))
	cache := f.newNode(t, "cache-1", 20, "")
	cache.mustApply(t)
	web := f.newNode(t, "web", 10, webGroup)
	proc := fakeProc(t, "11111111-aaaa-4bbb-8ccc-000000000001")
	web.env = withEnv(web.env, "NODEAGENT_PROC", proc)
	web.mustApply(t)
	eventually(t, 15*time.Second, web.apacheURL(healthPath), serverName, 200, "")

	// The reboot: a new boot id. Apache was started at boot by systemd
	// before the agent and serves the health file the last boot left.
	const newBoot = "22222222-aaaa-4bbb-8ccc-000000000002"
	setBootID(t, proc, newBoot)
	if code, _, _, err := httpGet(web.apacheURL(healthPath), serverName); err != nil || code != 200 {
		t.Fatalf("before the agent starts in the new boot the stale health file should still be there: %d, %v", code, err)
	}
	// IMDS is slow to come up in this boot: the boot apply waits for it.
	proxy := harness.StartFaultProxy(t, web.imds.URL)
	web.env = withEnv(web.env, "AWS_EC2_METADATA_SERVICE_ENDPOINT", proxy.URL)
	proxy.FailFor(6 * time.Second)
	p := web.runInBackground(t)

	// Once the agent is asking IMDS, it is past its start and has judged
	// the recorded readiness: a 503 from here until the apply passes.
	deadline := time.Now().Add(30 * time.Second)
	for failed, _ := proxy.Counts(); failed == 0; failed, _ = proxy.Counts() {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never asked IMDS\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sawNotReady := 0
	for proxy.Failing() {
		code, _, _, err := httpGet(web.apacheURL(healthPath), serverName)
		if err != nil || code != 503 {
			t.Fatalf("health path during the new boot, before any apply of it: %d, %v; want 503\n%s", code, err, p.stderr)
		}
		sawNotReady++
		time.Sleep(100 * time.Millisecond)
	}
	if sawNotReady == 0 {
		t.Fatalf("the IMDS outage ended before the health path was sampled")
	}
	eventually(t, 60*time.Second, web.apacheURL(healthPath), serverName, 200, "")
	b, err := os.ReadFile(web.path(stateDir + "/status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Ready  bool   `json:"ready"`
		BootID string `json:"boot_id"`
	}
	if err := json.Unmarshal(b, &st); err != nil || !st.Ready || st.BootID != newBoot {
		t.Errorf("status.json after the new boot's apply: %+v, %v; want ready in boot %s", st, err, newBoot)
	}
	p.stop(t, 30*time.Second)
	web.checkLaunchHook(t, nodeagent.LifecycleContinue) // not again after the reboot
}

// TestSmokeRedirect: smoke checks see Apache's own answer. A check may
// expect a redirect (status 301 and its Location); a check expecting 200 on
// a path that redirects fails, and the redirect's target is never asked.
func TestSmokeRedirect(t *testing.T) {
	f, cache, web := converge(t, buildRelease(t, "shop", "2026.05.05-1"))
	var followed atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		fmt.Fprintln(w, "Welcome to the old fleet")
	}))
	defer elsewhere.Close()
	target := elsewhere.URL + "/"
	moved := "/moved.php?to=" + target

	p := f.doc.Products[product]
	home := p.Smoke
	p.Smoke = append(home, nodeagent.SmokeCheck{Name: "tls", Path: moved, Status: 301, Location: target})
	f.doc.Products[product] = p
	f.publish(t)
	r := web.mustApply(t)
	if !strings.Contains(r.stderr, "shop/tls") {
		t.Errorf("apply did not run the redirect check:\n%s", r.stderr)
	}
	if st, _ := web.status(t); !st.Ready || st.Serial != f.doc.Serial {
		t.Errorf("status after a passing redirect check: %+v, want ready at serial %d", st, f.doc.Serial)
	}

	p.Smoke = append(home, nodeagent.SmokeCheck{Name: "moved", Path: moved, Status: 200, Contains: "Welcome"})
	f.doc.Products[product] = p
	f.publish(t)
	r = web.agent(t, "apply", "--smoke-deadline", "3s")
	if r.code != 1 {
		t.Fatalf("apply with a check expecting 200 on a redirecting path: exit %d, want 1\n%s", r.code, r)
	}
	if !strings.Contains(r.stderr, "want status 200, got 301") {
		t.Errorf("apply does not say the check got the 301:\n%s", r.stderr)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect target was requested %d times by smoke checks, want never", n)
	}
	checkServes(t, web, cache)
	checkStaysInService(t, web)
}
