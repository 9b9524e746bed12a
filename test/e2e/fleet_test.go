//go:build integration

package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/service"
	"github.com/nodeagent/nodeagent/test/harness"
)

// Names the fleet's topology uses.
const (
	topologyBucket = "fleet-config"
	topologyKey    = "topology.json"
	releaseBucket  = "releases"
	product        = "shop"
	serverName     = "www.shop.example"
	webGroup       = "shop-web"
	launchHook     = "nodeagent-launch"
	terminateHook  = "nodeagent-terminate"
	healthPath     = "/nodeagent-health"
	stateDir       = "var/lib/nodeagent"
)

// fleetSeq gives every fleet of this process its own 127.N.M.0/24, so
// fleets (and other packages' tests) never share an address.
var fleetSeq atomic.Int32

// fleet is one simulated fleet: a MinIO holding the topology and the
// releases, a fake Auto Scaling endpoint, and the topology document the
// test edits and publishes.
type fleet struct {
	minio *harness.MinIO
	asg   *harness.AutoScaling
	net   string // "127.N.M." prefix of every address of this fleet

	apachePort    int
	memcachedPort int
	doc           nodeagent.Topology
	nodeSeq       int
}

// newFleet starts MinIO and the Auto Scaling fake, uploads release r and
// publishes a topology (serial 1) with db-a, db-b, cache-1 and the shop-web
// group serving shop.
func newFleet(t *testing.T, r release) *fleet {
	t.Helper()
	n := int(fleetSeq.Add(1))
	f := &fleet{
		minio:         harness.StartMinIO(t),
		asg:           harness.StartAutoScaling(t),
		net:           fmt.Sprintf("127.%d.%d.", 200+os.Getpid()%50, n%250+1),
		apachePort:    harness.FreePort(t),
		memcachedPort: harness.FreePort(t),
	}
	f.putRelease(t, r)
	f.doc = nodeagent.Topology{
		Schema: 1,
		Serial: 1,
		Domain: "internal",
		Nodes: map[string]nodeagent.Node{
			"db-a":    {IP: f.ip(31), Role: "db", AZ: "us-east-1a", InstanceID: instanceID(0xd1)},
			"db-b":    {IP: f.ip(32), Role: "db", AZ: "us-east-1b", InstanceID: instanceID(0xd2)},
			"cache-1": {IP: f.ip(20), Role: "cache", AZ: "us-east-1a", InstanceID: instanceID(0xc1)},
		},
		Aliases: map[string]string{"dbserver": "db-a", "replserver": "db-b"},
		Groups: map[string]nodeagent.Group{
			webGroup: {Role: "web", LaunchHook: launchHook, TerminateHook: terminateHook},
		},
		Roles: map[string]nodeagent.Role{
			"web":   {Services: []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM}, Products: []string{product}},
			"cache": {Services: []string{nodeagent.ServiceMemcached}, Memcached: &nodeagent.MemcachedSettings{MemoryMB: 16, Port: f.memcachedPort, MaxConnections: 64}},
			"db":    {Services: []string{}},
		},
		Products: map[string]nodeagent.Product{
			product: {
				ServerName:    serverName,
				ServerAliases: []string{"shop.example"},
				Docroot:       "public",
				Release:       &nodeagent.Release{ID: r.id, URL: r.url, SHA256: r.sha256},
				Database:      nodeagent.Database{Master: "dbserver", Replicas: []string{"replserver"}, Name: "shop", Port: 3306},
				Cache:         &nodeagent.Cache{Nodes: []string{"cache-1"}, Port: f.memcachedPort},
				Sessions:      nodeagent.SessionsMemcached,
				PHP:           nodeagent.PHPSettings{MemoryLimit: "64M", MaxChildren: 3, Env: map[string]string{"APP_ENV": "e2e"}},
				Smoke:         []nodeagent.SmokeCheck{{Name: "home", Path: "/", Status: 200, Contains: "Welcome"}},
			},
		},
		Health: nodeagent.Health{Path: healthPath},
		Apache: nodeagent.ApacheSettings{Port: f.apachePort, Bind: nodeagent.BindPrivate},
	}
	f.putTopology(t, topologyJSON(t, f.doc))
	return f
}

func (f *fleet) ip(host int) string { return f.net + strconv.Itoa(host) }

func itoa(i int) string { return strconv.Itoa(i) }

// instanceID is a well-formed EC2 instance id numbered n.
func instanceID(n int) string { return fmt.Sprintf("i-0e2e%013x", n) }

func topologyJSON(t *testing.T, doc nodeagent.Topology) []byte {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatalf("marshal topology: %v", err)
	}
	return b
}

// publish bumps the serial of the edited document and uploads it.
func (f *fleet) publish(t *testing.T) {
	t.Helper()
	f.doc.Serial++
	f.putTopology(t, topologyJSON(t, f.doc))
}

func (f *fleet) putTopology(t *testing.T, body []byte) {
	t.Helper()
	f.minio.Put(t, topologyBucket, topologyKey, body)
}

// setRelease points the shop at r (uploaded already).
func (f *fleet) setRelease(r release) {
	p := f.doc.Products[product]
	p.Release = &nodeagent.Release{ID: r.id, URL: r.url, SHA256: r.sha256}
	f.doc.Products[product] = p
}

// release is a code release archive built from testdata.
type release struct {
	id     string
	url    string
	sha256 string
	body   []byte
}

// fixedTime is every archive entry's mtime: the same app gives the same
// archive.
var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// buildRelease packs testdata/<app> as release id: a .tar.gz whose paths
// are relative to the release root (public/index.php).
func buildRelease(t *testing.T, app, id string) release {
	t.Helper()
	body, sum, err := harness.ReleaseArchive(os.DirFS(filepath.Join("testdata", app)), fixedTime)
	if err != nil {
		t.Fatalf("build release %s from testdata/%s: %v", id, app, err)
	}
	return release{
		id:     id,
		url:    fmt.Sprintf("s3://%s/%s/%s.tar.gz", releaseBucket, product, id),
		sha256: sum,
		body:   body,
	}
}

func (f *fleet) putRelease(t *testing.T, r release) {
	t.Helper()
	f.minio.Put(t, releaseBucket, product+"/"+r.id+".tar.gz", r.body)
}

// node is one simulated instance: its own metadata mock, node root and
// agent config.
type node struct {
	fleet      *fleet
	name       string
	ip         string
	instanceID string
	imds       *harness.IMDS
	root       string
	config     string // agent config file
	execLog    string // the recording wrapper's log: "UNIT ACTION" per line
	listen     string
	env        []string
}

// newNode starts a metadata mock for an instance at 127.N.M.host and makes
// its node root and agent config. group is its Auto Scaling group tag ("" for
// none).
func (f *fleet) newNode(t *testing.T, name string, host int, group string) *node {
	t.Helper()
	f.nodeSeq++
	n := &node{
		fleet:      f,
		name:       name,
		ip:         f.ip(host),
		instanceID: instanceID(0xa00 + host),
		root:       harness.NodeRoot(t),
	}
	if nd, ok := f.doc.Nodes[name]; ok {
		n.ip, n.instanceID = nd.IP, nd.InstanceID
	}
	n.imds = harness.StartIMDS(t, harness.IMDSConfig{
		InstanceID: n.instanceID, PrivateIP: n.ip, AZ: "us-east-1a", InstanceType: "t3.small", Group: group,
	})
	t.Cleanup(func() { n.dumpLogs(t) })
	dir := t.TempDir()
	n.config = filepath.Join(dir, "config.json")
	n.execLog = filepath.Join(dir, "exec.log")
	n.listen = net.JoinHostPort(n.ip, strconv.Itoa(harness.FreePort(t)))
	cfg := map[string]any{
		"topology":           "s3://" + topologyBucket + "/" + topologyKey,
		"root":               n.root,
		"service_root":       n.root,
		"services":           "exec",
		"exec":               wrapCommands(t, n.root, n.execLog),
		"log_format":         "text",
		"listen":             n.listen,
		"deadline":           "2m",
		"smoke_deadline":     "20s",
		"launch_attempts":    1,
		"heartbeat_interval": "10s",
		"poll_interval":      "1s",
		"settle":             "100ms",
		"splay":              "0s",
		"drain_time":         "1s",
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, b, 0o644); err != nil {
		t.Fatal(err)
	}
	n.env = agentEnv(n.imds.Env(), f.minio.Env(), f.asg.Env())
	return n
}

// agentEnv is this process's environment without any AWS_ or NODEAGENT_
// variable, plus extra.
func agentEnv(extra ...[]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "NODEAGENT_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AWS_CONFIG_FILE=/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-credentials")
	for _, e := range extra {
		env = append(env, e...)
	}
	return env
}

// withEnv returns env with key set to value (replacing it).
func withEnv(env []string, key, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(out, key+"="+value)
}

// wrapCommands is the harness's exec-driver config for root with every
// start, reload and restart going through the recording wrapper (this test
// binary), so a test sees exactly which service actions the agent took.
func wrapCommands(t *testing.T, root, log string) service.ExecConfig {
	t.Helper()
	raw, err := json.Marshal(harness.ServiceCommands(root))
	if err != nil {
		t.Fatal(err)
	}
	var cfg service.ExecConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("harness.ServiceCommands is not a service.ExecConfig: %v", err)
	}
	wrap := func(unit, action, pidfile string, c *service.Command) *service.Command {
		if c == nil {
			return nil
		}
		argv := []string{selfBin, log, unit, action}
		if c.Signal != "" {
			argv = append(argv, "signal", c.Signal, pidfile)
		} else {
			argv = append(append(argv, "exec"), c.Argv...)
		}
		return &service.Command{Argv: argv, Env: append(slices.Clone(c.Env), wrapEnv+"=1")}
	}
	for unit, u := range cfg {
		u.Start = wrap(unit, "start", u.Pidfile, u.Start)
		u.Reload = wrap(unit, "reload", u.Pidfile, u.Reload)
		u.Restart = wrap(unit, "restart", u.Pidfile, u.Restart)
		cfg[unit] = u
	}
	return cfg
}

// execCalls returns the service actions recorded so far ("apache2 start").
func (n *node) execCalls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(n.execLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// result is how one nodeagent invocation ended.
type result struct {
	args     []string
	code     int
	stdout   string
	stderr   string
	duration time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("nodeagent %s: exit %d after %s\n--- stdout:\n%s\n--- stderr:\n%s",
		strings.Join(r.args, " "), r.code, r.duration.Round(time.Millisecond), r.stdout, r.stderr)
}

// agent runs `nodeagent ARGS --config FILE` for the node with its
// environment, bounded by three minutes.
func (n *node) agent(t *testing.T, args ...string) result {
	t.Helper()
	return runAgent(t, n.env, append(args, "--config", n.config)...)
}

func runAgent(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeagentBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), duration: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		r.code = exit.ExitCode()
	case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled():
		// Killed (a test's trap, see wrapMain): the shell's convention.
		r.code = 128 + int(exit.Sys().(syscall.WaitStatus).Signal())
	default:
		t.Fatalf("nodeagent %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	t.Logf("nodeagent %s: exit %d in %s", strings.Join(args, " "), r.code, r.duration.Round(time.Millisecond))
	return r
}

// mustApply runs `nodeagent apply` and fails the test unless it exits 0.
func (n *node) mustApply(t *testing.T, args ...string) result {
	t.Helper()
	r := n.agent(t, append([]string{"apply"}, args...)...)
	if r.code != 0 {
		t.Fatalf("apply on %s failed:\n%s", n.name, r)
	}
	return r
}

// Paths under a node root.

func (n *node) path(rel string) string { return filepath.Join(n.root, rel) }

func (n *node) phpVersion(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob(n.path("etc/php/*/fpm/php-fpm.conf"))
	if len(m) != 1 {
		t.Fatalf("want one PHP-FPM version under %s, found %v", n.root, m)
	}
	return filepath.Base(filepath.Dir(filepath.Dir(m[0])))
}

// pidfiles of the services ServiceCommands runs, by unit.
func (n *node) pidfiles(t *testing.T) map[string]string {
	t.Helper()
	var cfg service.ExecConfig
	raw, _ := json.Marshal(harness.ServiceCommands(n.root))
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for unit, u := range cfg {
		out[unit] = u.Pidfile
	}
	return out
}

// pid returns the live pid of unit, or 0.
func (n *node) pid(t *testing.T, unit string) int {
	t.Helper()
	b, err := os.ReadFile(n.pidfiles(t)[unit])
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !harness.Alive(pid) {
		return 0
	}
	return pid
}

func (n *node) apacheURL(path string) string {
	return "http://" + net.JoinHostPort(n.ip, strconv.Itoa(n.fleet.apachePort)) + path
}

// httpGet requests url with Host host, following no redirects.
func httpGet(url, host string, cookies ...*http.Cookie) (int, string, []*http.Cookie, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Host = host
	for _, c := range cookies {
		req.AddCookie(c)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Cookies(), err
}

// eventually retries get until it answers status with a body containing
// want, for at most limit (services may still be reloading); it fails the
// test with the last answer otherwise.
func eventually(t *testing.T, limit time.Duration, url, host string, status int, want string) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for {
		code, body, _, err := httpGet(url, host)
		if err == nil && code == status && strings.Contains(body, want) {
			return body
		}
		last = fmt.Sprintf("status %d, error %v, body %q", code, err, body)
		if time.Now().After(deadline) {
			t.Fatalf("GET %s (Host %s): want %d containing %q within %s; last: %s", url, host, status, want, limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// memcachedGet reads key from the memcached at addr with the text
// protocol; ok is false when the key is absent.
func memcachedGet(addr, key string) (string, bool, error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(conn, "get %s\r\n", key); err != nil {
		return "", false, err
	}
	var buf bytes.Buffer
	tmp := make([]byte, 4096)
	for !bytes.HasSuffix(buf.Bytes(), []byte("END\r\n")) {
		k, err := conn.Read(tmp)
		buf.Write(tmp[:k])
		if err != nil {
			return "", false, fmt.Errorf("read %q: %w", buf.String(), err)
		}
	}
	lines := strings.Split(buf.String(), "\r\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "VALUE ") {
		return "", false, nil
	}
	return lines[1], true, nil
}

// entry is one path of a snapshot.
type entry struct {
	mode  fs.FileMode
	sum   string // content sha256, or link target
	ino   uint64
	mtime time.Time
}

// volatile paths change whenever the services or the agent run, whatever
// the apply did: runtime files, logs, the status file and the lock.
func volatile(rel string) bool {
	for _, p := range []string{"run/", "var/log/", "tmp/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	switch rel {
	case stateDir + "/status.json", stateDir + "/lock", stateDir + "/run.lock":
		return true
	}
	return false
}

// snapshot records every non-volatile path under root.
func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	snap := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || volatile(rel) || volatile(rel+"/") {
			if d.IsDir() && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode(), mtime: info.ModTime()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			e.ino = st.Ino
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.sum, err = os.Readlink(p)
		case info.Mode().IsRegular():
			var b []byte
			b, err = os.ReadFile(p)
			s := sha256.Sum256(b)
			e.sum = hex.EncodeToString(s[:])
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			e.mtime = time.Time{} // a directory's mtime moves with temp files
		}
		snap[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return snap
}

// changed lists the paths whose existence, mode or content differ between
// two snapshots; with touched, also those rewritten with the same content
// (another inode or mtime).
func changed(before, after map[string]entry, touched bool) []string {
	var out []string
	for p, a := range after {
		b, ok := before[p]
		switch {
		case !ok:
			out = append(out, "+"+p)
		case a.mode != b.mode || a.sum != b.sum:
			out = append(out, "~"+p)
		case touched && (a.ino != b.ino || !a.mtime.Equal(b.mtime)):
			out = append(out, "touched "+p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, "-"+p)
		}
	}
	slices.Sort(out)
	return out
}

// withoutPrefix drops the entries of list (as changed returns them) under
// any of prefixes.
func withoutPrefix(list []string, prefixes ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool {
		s = strings.TrimPrefix(s, "touched ")
		s = strings.TrimLeft(s, "+-~")
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	})
}

// hookCalls are the fake's CompleteLifecycleAction calls for hook.
func (f *fleet) hookCalls(hook string) []harness.ASGCall {
	var out []harness.ASGCall
	for _, c := range f.asg.Calls() {
		if c.Action == harness.ActionCompleteLifecycleAction && c.Hook == hook {
			out = append(out, c)
		}
	}
	return out
}

// dumpLogs logs the tail of the node's service logs when the test failed.
func (n *node) dumpLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	logs, _ := filepath.Glob(n.path("var/log/*.log"))
	more, _ := filepath.Glob(n.path("var/log/apache2/*.log"))
	for _, l := range append(logs, more...) {
		b, err := os.ReadFile(l)
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("%s %s:\n%s", n.name, strings.TrimPrefix(l, n.root), b)
	}
}
