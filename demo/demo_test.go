//go:build integration

package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// What the demo's example serves (example/topology.json).
const (
	webIP    = "127.77.0.11"
	cacheIP  = "127.77.0.21"
	siteHost = "www.shop.example"
	siteURL  = "http://" + webIP + ":8080/"
)

// panelAddr is where the demo's control panel listens.
const panelAddr = "127.77.0.1:9108"

// demoRun is a running nodeagent-demo whose output the test reads line by
// line.
type demoRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	mu     sync.Mutex
	out    strings.Builder
	exited chan struct{}
	err    error
}

// binaries builds the agent and the demo driver once per test binary.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "nodeagent-demo-bin-")
	if err != nil {
		return "", err
	}
	for target, pkg := range map[string]string{"nodeagent": "../cmd/nodeagent", "nodeagent-demo": "."} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, target), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := binaries(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// startDemo runs the demo on a fresh directory with extra arguments and
// environment; the test's cleanup stops it (and, through -stop, anything
// it left) if it is still running.
func startDemo(t *testing.T, root string, env []string, args ...string) *demoRun {
	t.Helper()
	harness.ToolsDir(t) // a clear failure when `make tools` has not run
	bin, err := binaries()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	argv := append([]string{"-root", root, "-nodeagent", filepath.Join(bin, "nodeagent")}, args...)
	cmd := exec.Command(filepath.Join(bin, "nodeagent-demo"), argv...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	r := &demoRun{cmd: cmd, stdin: stdin, lines: make(chan string, 1024), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start demo: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.mu.Lock()
			r.out.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			select {
			case r.lines <- sc.Text():
			default:
			}
		}
		close(r.lines)
		r.err = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
			return
		default:
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(90 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("demo did not stop within 90s of SIGTERM; output:\n%s", r.output())
		}
		stop := exec.Command(filepath.Join(bin, "nodeagent-demo"), "-stop", "-root", root)
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("demo -stop: %v\n%s", err, out)
		}
	})
	return r
}

func (r *demoRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// waitLine reads output until a line contains want, the demo exits or
// limit passes.
func (r *demoRun) waitLine(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				<-r.exited
				t.Fatalf("demo exited (%v) before printing %q; output:\n%s", r.err, want, r.output())
			}
			if strings.Contains(line, want) {
				return
			}
		case <-deadline:
			t.Fatalf("demo did not print %q within %s; output:\n%s", want, limit, r.output())
		}
	}
}

// wait waits for the demo to exit and returns its error.
func (r *demoRun) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	go func() {
		for range r.lines {
		}
	}()
	select {
	case <-r.exited:
		return r.err
	case <-time.After(limit):
		t.Fatalf("demo still running after %s; output:\n%s", limit, r.output())
		return nil
	}
}

var rootLineRe = regexp.MustCompile(`(?m)^root\s+\S+ -> (\S+)$`)

// nodeRoots are the node roots the demo reported.
func (r *demoRun) nodeRoots(t *testing.T) []string {
	t.Helper()
	var roots []string
	for _, m := range rootLineRe.FindAllStringSubmatch(r.output(), -1) {
		roots = append(roots, m[1])
	}
	if len(roots) != 2 {
		t.Fatalf("want 2 node roots in the output, got %q; output:\n%s", roots, r.output())
	}
	return roots
}

// assertAllStopped checks that nothing the demo started is left: no
// service process and no node root, no process naming the demo's
// directory, nothing listening on the web node's ports, and only the logs
// left in the directory.
func assertAllStopped(t *testing.T, root string, nodeRoots []string) {
	t.Helper()
	for _, nr := range nodeRoots {
		if pids := harness.ProcessesNaming(nr); len(pids) > 0 {
			t.Errorf("services still running under %s: pids %v", nr, pids)
		}
		if _, err := os.Stat(nr); !os.IsNotExist(err) {
			t.Errorf("node root %s still there (stat: %v)", nr, err)
		}
	}
	if pids := processesNaming(root); len(pids) > 0 {
		t.Errorf("processes naming %s still running: %v", root, pids)
	}
	for _, addr := range []string{webIP + ":8080", webIP + ":9107", cacheIP + ":11211", cacheIP + ":9107", panelAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", addr)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("read demo dir: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "logs" {
		t.Errorf("demo dir holds %q after the stop, want only [logs]", names)
	}
}

// processesNaming lists live processes whose command line names dir.
func processesNaming(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid == os.Getpid() || !harness.Alive(pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// shopPage fetches the shop through the web node's Apache with its Host
// header.
func shopPage(t *testing.T, c *http.Client) (server, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, siteURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = siteHost
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", siteURL, siteHost, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", siteURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s (Host %s): status %d: %s", siteURL, siteHost, resp.StatusCode, b)
	}
	return resp.Header.Get("Server"), string(b)
}

func status(t *testing.T, url, host string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var visitRe = regexp.MustCompile(`(?m)^session:\s+visit (\d+) `)

// TestDemoUnattended runs the demo as CI does (DEMO_UNATTENDED=1) and,
// while the shop is up, checks it for itself: real PHP under PHP-FPM
// through Apache, a session counter kept in memcached, readiness on the
// agent and on Apache's health path. Then the demo moves the database
// master, must see it picked up and exit 0 with everything stopped.
func TestDemoUnattended(t *testing.T) {
	root := filepath.Join(t.TempDir(), "demo-root")
	r := startDemo(t, root, []string{"DEMO_UNATTENDED=1"}, "-wait-stdin")
	r.waitLine(t, "waiting for a line on stdin", 4*time.Minute)

	t.Run("site", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		var visits []string
		for range 3 {
			server, body := shopPage(t, c)
			if !strings.HasPrefix(server, "Apache/") {
				t.Errorf("Server header %q, want Apache", server)
			}
			for _, want := range []string{"Welcome to the shop", "(fpm-fcgi)", "master db-a (127.77.0.31:3306)", "save handler memcached at 127.77.0.21:11211"} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q:\n%s", want, body)
				}
			}
			m := visitRe.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("page shows no session counter:\n%s", body)
			}
			visits = append(visits, m[1])
		}
		if got := strings.Join(visits, ","); got != "1,2,3" {
			t.Errorf("session counter went %s over three requests with one cookie jar, want 1,2,3", got)
		}
	})
	t.Run("readiness", func(t *testing.T) {
		for _, url := range []string{"http://" + webIP + ":9107/ready", "http://" + cacheIP + ":9107/ready"} {
			if got := status(t, url, ""); got != http.StatusOK {
				t.Errorf("GET %s: %d, want 200", url, got)
			}
		}
		if got := status(t, siteURL+"nodeagent-health", siteHost); got != http.StatusOK {
			t.Errorf("Apache health path: %d, want 200", got)
		}
	})

	t.Run("control panel", func(t *testing.T) {
		// nodeagent fleet serve, from both agents' reports in MinIO.
		resp, err := http.Get("http://" + panelAddr + "/api/fleet")
		if err != nil {
			t.Fatalf("control panel: %v", err)
		}
		defer resp.Body.Close()
		var snap struct {
			Serial int64
			Nodes  []struct {
				InstanceID string `json:"instance_id"`
				Live       bool
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("control panel /api/fleet: %d, %v", resp.StatusCode, err)
		}
		live := map[string]bool{}
		for _, n := range snap.Nodes {
			live[n.InstanceID] = n.Live
		}
		for _, id := range []string{"i-0de000000000a0001", "i-0de000000000c0001"} {
			if !live[id] {
				t.Errorf("control panel: %s not live in %+v", id, snap)
			}
		}
		if !strings.Contains(r.output(), "control panel at http://"+panelAddr+"/") {
			t.Error("the demo does not print the control panel's URL")
		}
	})

	t.Run("status", func(t *testing.T) {
		bin, err := binaries()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(bin, "nodeagent"), "status", "--root", filepath.Join(root, "web-1")).CombinedOutput()
		if err != nil {
			t.Fatalf("nodeagent status: %v\n%s", err, out)
		}
		if !strings.HasPrefix(string(out), "READY\n") || !strings.Contains(string(out), "shop demo-1") {
			t.Errorf("nodeagent status says:\n%s", out)
		}
	})

	nodeRoots := r.nodeRoots(t)
	if _, err := io.WriteString(r.stdin, "\n"); err != nil {
		t.Fatalf("write demo stdin: %v", err)
	}
	if err := r.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("demo: %v; output:\n%s", err, r.output())
	}
	out := r.output()
	for _, want := range []string{
		"master db-b (127.77.0.32:3306)",
		`reason="aliases.dbserver, aliases.replserver changed"`,
		// The operator's failover, followed through the node reports.
		"topology failover --alias dbserver --to db-b --old-master-as-replica",
		"published serial 2 to s3://demo-topology/shop/topology.json; serial 1 kept as s3://demo-topology/shop/history/1.json",
		"every live node (2) applied serial 2",
		// The broken release in waves: halted in wave 1, the shop up.
		"rollout of serial 3 HALTED at wave 1 of 2",
		"(exit 1: halted, as it should)",
		"the shop still serves the good release (web-1 reverted itself)",
		"rollout of serial 3 (after 2): HALTED, wave 1 of 2",
		"unattended: the change was picked up, the broken release halted in wave 1; done.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q; output:\n%s", want, out)
		}
	}
	assertAllStopped(t, root, nodeRoots)
}

// TestDemoStop runs an attended demo and stops it from outside, as
// `make demo-stop` does: both exit 0 and nothing is left running.
func TestDemoStop(t *testing.T) {
	root := filepath.Join(t.TempDir(), "demo-root")
	r := startDemo(t, root, []string{"DEMO_UNATTENDED="}, "-wait-stdin")
	r.waitLine(t, "waiting for a line on stdin", 4*time.Minute)
	nodeRoots := r.nodeRoots(t)

	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "nodeagent-demo"), "-stop", "-root", root).CombinedOutput()
	if err != nil {
		t.Fatalf("demo -stop: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "demo stopped") {
		t.Errorf("demo -stop said:\n%s", out)
	}
	if err := r.wait(t, time.Minute); err != nil {
		t.Errorf("stopped demo exited with %v, want 0; output:\n%s", err, r.output())
	}
	assertAllStopped(t, root, nodeRoots)
}
