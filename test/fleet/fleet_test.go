//go:build integration

package fleet

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/test/harness"
)

// Fleet constants shared by the scenario and the benchmarks.
const (
	topologyBucket = "fleet"
	topologyKey    = "topology.json"
	releaseBucket  = "releases"
	releaseKey     = "shop/r1.tar.gz"
	releaseID      = "r1"
	webGroup       = "shop-web"
	launchHook     = "nodeagent-launch"
	terminateHook  = "nodeagent-terminate"
	serverName     = "www.shop.example"
	healthPath     = "/nodeagent-health"
	dbAIP          = "10.0.1.10"
	dbBIP          = "10.0.2.10"
)

// Binaries built once by TestMain.
var bins struct {
	nodeagent string
	countexec string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nodeagent-fleet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	bins.nodeagent = filepath.Join(dir, "nodeagent")
	bins.countexec = filepath.Join(dir, "countexec")
	buildEnv, err := readBuildEnv("../../packaging/build.env")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	for _, b := range []struct{ out, pkg string }{
		{bins.nodeagent, "github.com/nodeagent/nodeagent/cmd/nodeagent"},
		{bins.countexec, "./testdata/countexec"},
	} {
		// Built as `make build` builds the shipped binary (static, stripped,
		// packaging/build.env), so that the idle benchmark measures what
		// runs on a node.
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), buildEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "fleet: go build %s: %v\n%s", b.pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleetOptions size and tune a fleet.
type fleetOptions struct {
	Web, Cache   int
	PollInterval time.Duration
	Splay        time.Duration
	Settle       time.Duration
	DrainTime    time.Duration
	// SmokeDeadline is the agents' --smoke-deadline (default 60s).
	SmokeDeadline time.Duration
}

// fleet is one MinIO (behind a counting proxy), one fake Auto Scaling
// endpoint, a release in MinIO, and the nodes.
type fleet struct {
	t     testing.TB
	o     fleetOptions
	minio *harness.MinIO
	proxy *harness.CountingProxy
	asg   *harness.AutoScaling

	apachePort, memcachedPort, agentPort int
	releaseSum                           string

	mu    sync.Mutex
	nodes []*node
}

// node is one simulated instance: its metadata mock, node root and agent
// process.
type node struct {
	f          *fleet
	name       string // web-1, cache-3: the node name in the document
	role       string
	ip         string
	instanceID string
	root       string
	imds       *harness.IMDS
	addr       string // the agent's endpoints
	serviceLog string // countexec's record of service actions
	agentLog   string

	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	exitAt  time.Time
}

func newFleet(t testing.TB, o fleetOptions) *fleet {
	t.Helper()
	f := &fleet{t: t, o: o}
	f.minio = harness.StartMinIO(t)
	f.proxy = f.minio.CountingProxy(t)
	f.asg = harness.StartAutoScaling(t)
	f.apachePort = harness.FreePort(t)
	f.memcachedPort = harness.FreePort(t)
	f.agentPort = harness.FreePort(t)
	archive := shopRelease(t)
	sum := sha256.Sum256(archive)
	f.releaseSum = hex.EncodeToString(sum[:])
	f.minio.Put(t, releaseBucket, releaseKey, archive)
	return f
}

// shopRelease is a release of the shop: public/index.php greets and prints
// the database master's IP from the app config the agent renders.
func shopRelease(t testing.TB) []byte {
	t.Helper()
	index := `<?php
$c = require getenv('NODEAGENT_CONFIG');
header('Content-Type: text/plain');
echo "Welcome to the shop\n";
echo "master ", $c['database']['master']['ip'], "\n";
`
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	mod := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := tw.WriteHeader(&tar.Header{Name: "public/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "public/index.php", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(index)), ModTime: mod}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, index); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func webIP(i int) string   { return fmt.Sprintf("127.0.20.%d", i) }
func cacheIP(i int) string { return fmt.Sprintf("127.0.30.%d", i) }

// topology is the fleet's document: the shop's database master is the
// node the dbserver alias names ("db-a" or "db-b").
func (f *fleet) topology(serial int64, master string) []byte {
	f.t.Helper()
	replica := "db-b"
	if master == "db-b" {
		replica = "db-a"
	}
	nodes := map[string]nodeagent.Node{
		"db-a": {IP: dbAIP, Role: "db", AZ: "us-east-1a"},
		"db-b": {IP: dbBIP, Role: "db", AZ: "us-east-1b"},
	}
	var caches []string
	for i := 1; i <= f.o.Cache; i++ {
		name := fmt.Sprintf("cache-%d", i)
		nodes[name] = nodeagent.Node{IP: cacheIP(i), Role: "cache", AZ: "us-east-1a", InstanceID: cacheInstanceID(i)}
		caches = append(caches, name)
	}
	t := nodeagent.Topology{
		Schema: 1, Serial: serial, Domain: "internal",
		Nodes:   nodes,
		Aliases: map[string]string{"dbserver": master, "replserver": replica},
		Groups:  map[string]nodeagent.Group{webGroup: {Role: "web", LaunchHook: launchHook, TerminateHook: terminateHook}},
		Roles: map[string]nodeagent.Role{
			"web":   {Services: []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM}, Products: []string{"shop"}},
			"cache": {Services: []string{nodeagent.ServiceMemcached}, Memcached: &nodeagent.MemcachedSettings{MemoryMB: 16, Port: f.memcachedPort}},
			"db":    {Services: []string{}},
		},
		Products: map[string]nodeagent.Product{"shop": {
			ServerName: serverName,
			Docroot:    "public",
			Release:    &nodeagent.Release{ID: releaseID, URL: "s3://" + releaseBucket + "/" + releaseKey, SHA256: f.releaseSum},
			Database:   nodeagent.Database{Master: "dbserver", Replicas: []string{"replserver"}, Name: "shop"},
			Cache:      &nodeagent.Cache{Nodes: caches, Port: f.memcachedPort},
			Sessions:   nodeagent.SessionsMemcached,
			PHP:        nodeagent.PHPSettings{MaxChildren: 4},
			Smoke:      []nodeagent.SmokeCheck{{Name: "home", Path: "/", Status: 200, Contains: "Welcome"}},
		}},
		Health: nodeagent.Health{Path: healthPath},
		Apache: nodeagent.ApacheSettings{Port: f.apachePort, MaxRequestWorkers: 32, Bind: nodeagent.BindPrivate},
	}
	if len(caches) == 0 {
		// A fleet without cache nodes keeps sessions in files.
		shop := t.Products["shop"]
		shop.Cache, shop.Sessions = nil, nodeagent.SessionsFiles
		t.Products["shop"] = shop
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func cacheInstanceID(i int) string { return fmt.Sprintf("i-0cac4e%011x", i) }
func webInstanceID(i int) string   { return fmt.Sprintf("i-0eb0%013x", i) }

// publish puts a topology document in MinIO and returns when it is there.
func (f *fleet) publish(body []byte) time.Time {
	f.t.Helper()
	f.minio.Put(f.t, topologyBucket, topologyKey, body)
	return time.Now()
}

// startAll starts the configured web and cache nodes, all at once.
func (f *fleet) startAll() {
	f.t.Helper()
	for i := 1; i <= f.o.Web; i++ {
		f.startNode("web", i, 0)
	}
	for i := 1; i <= f.o.Cache; i++ {
		f.startNode("cache", i, 0)
	}
}

// startNode starts one simulated instance: its IMDS (which turns its
// lifecycle state to Terminated after terminateAfter, when set), its node
// root, and `nodeagent run`.
func (f *fleet) startNode(role string, i int, terminateAfter time.Duration) *node {
	t := f.t
	t.Helper()
	n := &node{f: f, role: role, name: fmt.Sprintf("%s-%d", role, i)}
	ic := harness.IMDSConfig{AZ: "us-east-1a", InstanceType: "m5.large", TerminateAfter: terminateAfter}
	switch role {
	case "web":
		n.ip, n.instanceID = webIP(i), webInstanceID(i)
		ic.Group = webGroup
	case "cache":
		n.ip, n.instanceID = cacheIP(i), cacheInstanceID(i)
	}
	ic.InstanceID, ic.PrivateIP = n.instanceID, n.ip
	n.imds = harness.StartIMDS(t, ic)
	n.root = harness.NodeRoot(t)
	n.addr = fmt.Sprintf("%s:%d", n.ip, f.agentPort)
	work := t.TempDir()
	n.serviceLog = filepath.Join(work, "services.log")
	n.agentLog = filepath.Join(work, "agent.log")

	cfg := map[string]any{"exec": f.countedCommands(n.serviceLog, harness.ServiceCommands(n.root))}
	cfgPath := filepath.Join(work, "config.json")
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(n.agentLog)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bins.nodeagent, "run",
		"--config", cfgPath,
		"--topology", "s3://"+topologyBucket+"/"+topologyKey,
		"--root", n.root, "--service-root", n.root,
		"--listen", n.addr,
		"--services", "exec",
		"--log-format", "json",
		"--poll-interval", f.o.PollInterval.String(),
		"--splay", f.o.Splay.String(),
		"--settle", f.o.Settle.String(),
		"--drain-time", f.o.DrainTime.String(),
		"--smoke-deadline", cmp.Or(f.o.SmokeDeadline, 60*time.Second).String(),
		"--deadline", "5m",
	)
	env := append(os.Environ(), n.imds.Env()...)
	env = append(env, f.proxy.Env()...)
	env = append(env, f.asg.Env()...)
	n.cmd.Env = env
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start agent %s: %v", n.name, err)
	}
	n.exited = make(chan struct{})
	go func() {
		n.exitErr = n.cmd.Wait()
		n.exitAt = time.Now()
		logFile.Close()
		close(n.exited)
	}()
	// Stop the agent before its node root's cleanup stops the services.
	t.Cleanup(func() { n.stop() })
	f.mu.Lock()
	f.nodes = append(f.nodes, n)
	f.mu.Unlock()
	return n
}

// stop sends SIGTERM (a plain stop: the agent exits without draining unless
// its metadata says Terminated) and waits, then kills.
func (n *node) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-n.exited:
		return
	case <-time.After(n.f.o.DrainTime + 15*time.Second):
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
}

// stopAll stops every agent at once.
func (f *fleet) stopAll() {
	var wg sync.WaitGroup
	for _, n := range f.all() {
		wg.Add(1)
		go func() { defer wg.Done(); n.stop() }()
	}
	wg.Wait()
}

func (f *fleet) all() []*node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*node(nil), f.nodes...)
}

func (f *fleet) byRole(role string) []*node {
	var out []*node
	for _, n := range f.all() {
		if n.role == role {
			out = append(out, n)
		}
	}
	return out
}

// countedCommands wraps every command of the harness's exec config with
// countexec, so each start, reload, restart and stop is recorded in log.
func (f *fleet) countedCommands(log string, units map[string]any) map[string]any {
	b, err := json.Marshal(units)
	if err != nil {
		f.t.Fatal(err)
	}
	var cfg map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		f.t.Fatal(err)
	}
	type command struct {
		Argv   []string `json:"argv,omitempty"`
		Env    []string `json:"env,omitempty"`
		Signal string   `json:"signal,omitempty"`
	}
	out := map[string]any{}
	for unit, u := range cfg {
		var pidfile string
		if raw, ok := u["pidfile"]; ok {
			if err := json.Unmarshal(raw, &pidfile); err != nil {
				f.t.Fatal(err)
			}
		}
		wrapped := map[string]any{}
		for key, raw := range u {
			if key == "pidfile" {
				wrapped[key] = pidfile
				continue
			}
			var c command
			if err := json.Unmarshal(raw, &c); err != nil {
				f.t.Fatalf("exec.%s.%s: %v", unit, key, err)
			}
			argv := []string{bins.countexec, log, unit, key}
			if c.Signal != "" {
				argv = append(argv, "signal", c.Signal, pidfile)
			} else {
				argv = append(append(argv, "--"), c.Argv...)
			}
			wrapped[key] = command{Argv: argv, Env: c.Env}
		}
		out[unit] = wrapped
	}
	return out
}

// actions counts the node's recorded service actions ("php8.2-fpm reload").
func (n *node) actions() map[string]int {
	b, err := os.ReadFile(n.serviceLog)
	if err != nil && !os.IsNotExist(err) {
		n.f.t.Fatalf("%s: %v", n.name, err)
	}
	m := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			m[line]++
		}
	}
	return m
}

// phpUnit is the node's PHP-FPM unit ("php8.2-fpm"), from the one PHP
// version in its root.
func (n *node) phpUnit() string {
	n.f.t.Helper()
	confs, _ := filepath.Glob(filepath.Join(n.root, "etc/php/*/fpm/php-fpm.conf"))
	if len(confs) != 1 {
		n.f.t.Fatalf("%s: want one PHP-FPM version in the root, found %q", n.name, confs)
	}
	return "php" + filepath.Base(filepath.Dir(filepath.Dir(confs[0]))) + "-fpm"
}

var client = &http.Client{Timeout: 5 * time.Second}

// get fetches a URL; err is set on transport failures.
func get(url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// status reads the agent's /status.
func (n *node) status() (readiness.Status, error) {
	code, body, err := get("http://"+n.addr+"/status", "")
	if err != nil {
		return readiness.Status{}, err
	}
	if code != http.StatusOK {
		return readiness.Status{}, fmt.Errorf("%s /status: %d %s", n.name, code, body)
	}
	var st readiness.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return readiness.Status{}, fmt.Errorf("%s /status: %w", n.name, err)
	}
	return st, nil
}

// metric reads one sample of the agent's /metrics ("nodeagent_applies_total{result=\"ok\"}").
func (n *node) metric(series string) (float64, error) {
	code, body, err := get("http://"+n.addr+"/metrics", "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: %d", n.name, code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s /metrics: no %s", n.name, series)
}

func (n *node) mustMetric(series string) float64 {
	n.f.t.Helper()
	v, err := n.metric(series)
	if err != nil {
		n.f.t.Fatal(err)
	}
	return v
}

// hostsMaster is the IP the node's /etc/hosts gives dbserver.
func (n *node) hostsMaster() string {
	b, _ := os.ReadFile(filepath.Join(n.root, "etc/hosts"))
	m := hostsRE.FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

var hostsRE = regexp.MustCompile(`(?m)^(\S+)\s+dbserver\s`)

// appMaster is the database master IP in the node's app config.
func (n *node) appMaster() string {
	b, _ := os.ReadFile(filepath.Join(n.root, "etc/nodeagent/products/shop.php"))
	m := appRE.FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

var appRE = regexp.MustCompile(`'master' => \[[^\]]*'ip' => '([^']+)'`)

// servedMaster is the master the shop prints through the node's Apache.
func (n *node) servedMaster() string {
	code, body, err := get(n.apacheURL("/"), serverName)
	if err != nil || code != http.StatusOK {
		return ""
	}
	m := servedRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

var servedRE = regexp.MustCompile(`(?m)^master (\S+)$`)

func (n *node) apacheURL(path string) string {
	return fmt.Sprintf("http://%s:%d%s", n.ip, n.f.apachePort, path)
}

// converged says the node shows master everywhere it should.
func (n *node) converged(master string) bool {
	if n.hostsMaster() != master {
		return false
	}
	if n.role != "web" {
		return true
	}
	return n.appMaster() == master && n.servedMaster() == master
}

// waitReady waits until every agent answers /ready 200.
func (f *fleet) waitReady(limit time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for _, n := range f.all() {
		for {
			code, _, err := get("http://"+n.addr+"/ready", "")
			if err == nil && code == http.StatusOK {
				break
			}
			select {
			case <-n.exited:
				f.t.Fatalf("%s exited before it was ready (%v); log:\n%s", n.name, n.exitErr, n.logTail())
			default:
			}
			if time.Now().After(deadline) {
				st, _ := n.status()
				f.t.Fatalf("%s not ready after %s (code %d, err %v, status %+v); log:\n%s", n.name, limit, code, err, st, n.logTail())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// logTail is the end of the agent's log, for failure messages.
func (n *node) logTail() string {
	b, _ := os.ReadFile(n.agentLog)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// waitConverged waits until every node shows master and returns how long
// after since each node took (by name).
func (f *fleet) waitConverged(master string, since time.Time, limit time.Duration) map[string]time.Duration {
	f.t.Helper()
	took := map[string]time.Duration{}
	deadline := since.Add(limit)
	nodes := f.all()
	for len(took) < len(nodes) {
		for _, n := range nodes {
			if _, done := took[n.name]; done {
				continue
			}
			if n.converged(master) {
				took[n.name] = time.Since(since)
			}
		}
		if len(took) == len(nodes) {
			break
		}
		if time.Now().After(deadline) {
			var late []string
			for _, n := range nodes {
				if _, ok := took[n.name]; !ok {
					late = append(late, fmt.Sprintf("%s (hosts %q app %q served %q)", n.name, n.hostsMaster(), n.appMaster(), n.servedMaster()))
				}
			}
			f.t.Fatalf("not converged to %s within %s: %s", master, limit, strings.Join(late, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return took
}

// masterIP is the IP of the named database node.
func masterIP(name string) string {
	if name == "db-b" {
		return dbBIP
	}
	return dbAIP
}

// readyProbe polls every agent's /ready in the background and records
// every answer that was not 200.
type readyProbe struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	bad  []string
	n    int
}

func (f *fleet) probeReady(every time.Duration) *readyProbe {
	p := &readyProbe{stop: make(chan struct{}), done: make(chan struct{})}
	nodes := f.all()
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			for _, n := range nodes {
				code, body, err := get("http://"+n.addr+"/ready", "")
				p.mu.Lock()
				p.n++
				if err != nil || code != http.StatusOK {
					p.bad = append(p.bad, fmt.Sprintf("%s at %s: %d %s %v", n.name, time.Now().Format("15:04:05.000"), code, strings.TrimSpace(body), err))
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *readyProbe) end() (bad []string, probes int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bad, p.n
}

// loadBalancer simulates an ELB target group: it probes every target's
// health path on an interval; a target turns healthy after 2 successes in
// a row and unhealthy after 2 failures in a row.
type loadBalancer struct {
	stop chan struct{}
	done chan struct{}

	mu          sync.Mutex
	state       map[string]string // target -> "initial", "healthy", "unhealthy"
	ok, fail    map[string]int    // consecutive results
	transitions []lbTransition
}

type lbTransition struct {
	Target string
	To     string
	At     time.Time
}

const (
	lbHealthy   = "healthy"
	lbUnhealthy = "unhealthy"
	lbThreshold = 2
)

func newLoadBalancer(every time.Duration) *loadBalancer {
	lb := &loadBalancer{
		stop: make(chan struct{}), done: make(chan struct{}),
		state: map[string]string{}, ok: map[string]int{}, fail: map[string]int{},
	}
	go func() {
		defer close(lb.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-lb.stop:
				return
			case <-t.C:
			}
			lb.mu.Lock()
			targets := make([]string, 0, len(lb.state))
			for target := range lb.state {
				targets = append(targets, target)
			}
			lb.mu.Unlock()
			for _, target := range targets {
				code, _, err := get("http://"+target+healthPath, "")
				lb.observe(target, err == nil && code == http.StatusOK)
			}
		}
	}()
	return lb
}

// register adds a target ("ip:port").
func (lb *loadBalancer) register(target string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.state[target] = "initial"
}

func (lb *loadBalancer) observe(target string, ok bool) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if ok {
		lb.ok[target]++
		lb.fail[target] = 0
	} else {
		lb.fail[target]++
		lb.ok[target] = 0
	}
	to := ""
	switch {
	case lb.ok[target] >= lbThreshold && lb.state[target] != lbHealthy:
		to = lbHealthy
	case lb.fail[target] >= lbThreshold && lb.state[target] != lbUnhealthy:
		to = lbUnhealthy
	}
	if to != "" {
		lb.state[target] = to
		lb.transitions = append(lb.transitions, lbTransition{Target: target, To: to, At: time.Now()})
	}
}

func (lb *loadBalancer) stateOf(target string) string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.state[target]
}

// transitionsSince lists the transitions after t.
func (lb *loadBalancer) transitionsSince(t time.Time) []lbTransition {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []lbTransition
	for _, tr := range lb.transitions {
		if tr.At.After(t) {
			out = append(out, tr)
		}
	}
	return out
}

func (lb *loadBalancer) close() {
	close(lb.stop)
	<-lb.done
}

// load sends requests for the shop through one node's Apache from a few
// workers until stopped, counting failures.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	requests int
	failures []string
}

func startLoad(url string, workers int, pause time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				code, body, err := get(url, serverName)
				l.mu.Lock()
				l.requests++
				if err != nil || code != http.StatusOK || !strings.Contains(body, "Welcome") {
					if len(l.failures) < 20 {
						l.failures = append(l.failures, fmt.Sprintf("%s: %d %v %.200q", time.Now().Format("15:04:05.000"), code, err, body))
					} else {
						l.failures = append(l.failures[:20], "…")
					}
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) end() (requests int, failures []string) {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests, l.failures
}

// asgCompleted lists the successful CompleteLifecycleAction calls for an
// instance and hook, as their results.
func (f *fleet) asgCompleted(instanceID, hook string) []string {
	var out []string
	for _, c := range f.asg.Calls() {
		if c.Action == harness.ActionCompleteLifecycleAction && c.InstanceID == instanceID && c.Hook == hook && c.Error == "" {
			out = append(out, c.Result)
		}
	}
	return out
}

// waitFor polls cond every 50ms until it holds or limit passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileSums hashes the files an apply could change on every node.
func (f *fleet) fileSums() map[string]string {
	sums := map[string]string{}
	for _, n := range f.all() {
		for _, p := range []string{"etc/hosts", "etc/nodeagent/products/shop.php", "etc/memcached.conf"} {
			b, err := os.ReadFile(filepath.Join(n.root, p))
			if err != nil {
				continue
			}
			s := sha256.Sum256(b)
			sums[n.name+":"+p] = hex.EncodeToString(s[:8])
		}
	}
	return sums
}

// readBuildEnv reads the VAR=value lines of packaging/build.env.
func readBuildEnv(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the shipped binary's build environment: %w", err)
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") && strings.Contains(line, "=") {
			env = append(env, line)
		}
	}
	return env, nil
}
