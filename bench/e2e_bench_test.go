//go:build bench

package bench_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/bench"
	"github.com/nodeagent/nodeagent/metadata"
	"github.com/nodeagent/nodeagent/service"
	"github.com/nodeagent/nodeagent/test/harness"
)

// Settings of the end-to-end runs; bench.sh sets them.
const (
	envBin     = "NODEAGENT_BENCH_BIN"     // the nodeagent binary to measure
	envOut     = "NODEAGENT_BENCH_OUT"     // where the figures go (JSON, bench.EndToEnd)
	envRelease = "NODEAGENT_BENCH_RELEASE" // release/internal/benchtool's archive
	envRuns    = "NODEAGENT_BENCH_RUNS"    // applies per no-change and cold series (default 15; bench.sh asks 31)
	envBoots   = "NODEAGENT_BENCH_BOOTS"   // boots of fresh web nodes (default 3)
	envSettle  = "NODEAGENT_BENCH_SETTLE"  // wait before the no-change series (default 20s)
	// envHold names a directory: once the nodes are converged and settled,
	// the test describes them there (hold) and keeps them up until a file
	// "stop" appears in it, for measurements by hand (bench/cmd/abtime).
	envHold = "NODEAGENT_BENCH_HOLD"
)

const (
	releaseID   = "2026.11.23-1"
	releaseKey  = "shop/" + releaseID + ".tar.gz"
	topologyKey = "topology.json"
	stateDir    = "var/lib/nodeagent" // the default --state-dir, under the root
	webGroup    = "shop-web"
	launchHook  = "nodeagent-launch"
)

// TestEndToEnd measures the real binary on real components: boots of fresh
// web nodes (Apache, PHP-FPM, a 50 MB release from MinIO, the launch hook
// on the fake Auto Scaling endpoint), then series of applies with nothing
// to change on a web, a cache (memcached) and a db node, proving that they
// reload nothing and write nothing outside the agent's state dir, then a
// series of cold applies of the web node (every config file it created
// removed first), proving that each writes them all again, checks both
// trees and reloads both services once. It
// records figures for cmd/benchreport; it asserts correctness (the node
// gets ready, nothing reloads when nothing changed is reported as it is),
// never timings.
func TestEndToEnd(t *testing.T) {
	bin, out, archive := os.Getenv(envBin), os.Getenv(envOut), os.Getenv(envRelease)
	if bin == "" || out == "" || archive == "" {
		t.Fatalf("%s, %s and %s must be set: run bench/bench.sh", envBin, envOut, envRelease)
	}
	runs, boots := intEnv(t, envRuns, 15), intEnv(t, envBoots, 3)

	loadBefore := loadavg(t)
	kit := newKit(t)
	mc := harness.StartMinIO(t)
	asg := harness.StartAutoScaling(t)
	rel, sum := shopRelease(t, archive)
	mc.Put(t, "releases", releaseKey, rel)
	res := bench.EndToEnd{Date: time.Now().UTC(), ReleaseMB: float64(len(rel)) / 1e6, TransferMS: transferMS(t, mc)}

	fleet := newFleet(harness.FreePort(t), harness.FreePort(t), sum)
	doc, err := json.MarshalIndent(fleet, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	mc.Put(t, "fleet", topologyKey, doc)
	docFile := filepath.Join(t.TempDir(), "topology.json")
	if err := os.WriteFile(docFile, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	s3URL, fileURL := "s3://fleet/"+topologyKey, "file://"+docFile
	awsEnv := slices.Concat(mc.Env(), asg.Env())

	// Boot to ready: a fresh root each time; the last one stays up for the
	// no-change series.
	var web *node
	for i := range boots {
		inst := harness.IMDSConfig{InstanceID: fmt.Sprintf("i-0b0000000000%05d", i), PrivateIP: webIP(i),
			AZ: "us-east-1a", InstanceType: "m5.large", Group: webGroup}
		n := newNode(t, kit, bin, harness.StartIMDS(t, inst), awsEnv, s3URL)
		b := n.boot(t, asg, inst.InstanceID)
		t.Logf("boot %d: %.0f ms, phases %v, services %.0f ms, checks %.0f ms", i+1, b.WallMS, b.Phases, b.ServiceMS, b.ChecksMS)
		res.Boots = append(res.Boots, b)
		if i < boots-1 {
			n.stop(t)
			continue
		}
		web = n
	}

	cacheNode, dbNode := fleet.Nodes["cache-1"], fleet.Nodes["db-a"]
	cache := newNode(t, kit, bin, harness.StartIMDS(t, harness.IMDSConfig{InstanceID: cacheNode.InstanceID,
		PrivateIP: cacheNode.IP, AZ: cacheNode.AZ}), awsEnv, fileURL)
	cache.converge(t)
	db := newNode(t, kit, bin, harness.StartIMDS(t, harness.IMDSConfig{InstanceID: dbNode.InstanceID,
		PrivateIP: dbNode.IP, AZ: dbNode.AZ}), awsEnv, fileURL)
	db.converge(t)

	web.source = fileURL
	web.converge(t) // the same document, now read from a file: nothing to do
	// MinIO, Apache, PHP-FPM and memcached started moments ago and are
	// still busy with their own start-up (MinIO's first scans, the
	// servers' children): the series measure the agent once they are
	// idle, as on a node that has been serving for a while.
	settle := durEnv(t, envSettle, 20*time.Second)
	res.Settle = settle.String()
	time.Sleep(settle)
	if dir := os.Getenv(envHold); dir != "" {
		hold(t, dir, bin, map[string]*node{"web": web, "db": db, "cache": cache}, s3URL)
	}
	series := []struct {
		name   string
		n      *node
		source string
	}{
		{"db", db, fileURL},
		{"cache", cache, fileURL},
		{"web", web, fileURL},
		{"web", web, s3URL},
	}
	for _, s := range series {
		s.n.source = s.source
		for _, dry := range []bool{false, true} {
			nc := s.n.noChange(t, s.name, runs, dry)
			t.Logf("%s %s: median %.1f ms, %d service commands, %d checks, host writes %v, state writes %v",
				nc.Node, nc.Command, nc.Wall.Median, nc.ServiceCommands, nc.ConfigChecks, nc.HostWrites, nc.StateWrites)
			res.NoChange = append(res.NoChange, nc)
		}
	}
	web.source = fileURL
	res.Cold = web.cold(t, runs)
	t.Logf("web cold apply: through its checks median %.1f ms, wall %.1f ms, checks alone at once %.1f ms",
		res.Cold.ThroughChecks.Median, res.Cold.Wall.Median, res.Cold.ChecksAlone[3].Wall.Median)
	res.Floor, res.FloorCPU = floor(t, bin, runs)
	res.LoadBefore, res.LoadAfter = loadBefore, loadavg(t)
	if err := bench.WriteJSON(out, res); err != nil {
		t.Fatal(err)
	}
}

func intEnv(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

func durEnv(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration such as 20s", name, v)
	}
	return d
}

// versionOnce runs `nodeagent version` once and returns its wall and CPU
// time.
func versionOnce(t *testing.T, bin string) (wall, cpu float64) {
	t.Helper()
	cmd := exec.Command(bin, "version")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s version: %v: %s", bin, err, out)
	}
	return ms(time.Since(start)), ms(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime())
}

// floor runs `nodeagent version` runs times: wall and CPU of a process
// that starts, initializes every package and exits.
func floor(t *testing.T, bin string, runs int) (bench.Summary, bench.Summary) {
	t.Helper()
	var walls, cpus []float64
	for range runs {
		wall, cpu := versionOnce(t, bin)
		walls, cpus = append(walls, wall), append(cpus, cpu)
	}
	return bench.Summarize(walls), bench.Summarize(cpus)
}

func loadavg(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func webIP(i int) string { return fmt.Sprintf("127.77.0.%d", 10+i) }

// newFleet is the document of the end-to-end runs: a web group serving
// the shop (release from MinIO, memcached sessions on cache-1), a cache
// node and a database pair. Apache and memcached listen on free ports of
// each node's own loopback address.
func newFleet(apachePort, memcachedPort int, sum string) nodeagent.Topology {
	return nodeagent.Topology{
		Schema: 1, Serial: 7, Domain: "internal",
		Nodes: map[string]nodeagent.Node{
			"db-a":    {IP: "127.77.1.2", Role: "db", AZ: "us-east-1a", InstanceID: "i-0b000000000001002"},
			"db-b":    {IP: "127.77.1.3", Role: "db", AZ: "us-east-1b", InstanceID: "i-0b000000000001003"},
			"cache-1": {IP: "127.77.1.1", Role: "cache", AZ: "us-east-1a", InstanceID: "i-0b000000000001001"},
		},
		Aliases: map[string]string{"dbserver": "db-a", "replserver": "db-b"},
		Groups:  map[string]nodeagent.Group{webGroup: {Role: "web", LaunchHook: launchHook}},
		Roles: map[string]nodeagent.Role{
			"web":   {Services: []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM}, Products: []string{"shop"}},
			"cache": {Services: []string{nodeagent.ServiceMemcached}, Memcached: &nodeagent.MemcachedSettings{MemoryMB: 64, Port: memcachedPort}},
			"db":    {Services: []string{}},
		},
		Products: map[string]nodeagent.Product{"shop": {
			ServerName: "www.shop.example", ServerAliases: []string{"shop.example"}, Docroot: "public",
			Release:  &nodeagent.Release{ID: releaseID, URL: "s3://releases/" + releaseKey, SHA256: sum},
			Database: nodeagent.Database{Master: "dbserver", Replicas: []string{"replserver"}, Name: "shop", Port: 3306},
			Cache:    &nodeagent.Cache{Nodes: []string{"cache-1"}, Port: memcachedPort},
			Sessions: nodeagent.SessionsMemcached,
			PHP:      nodeagent.PHPSettings{MemoryLimit: "128M", MaxChildren: 4, Env: map[string]string{"APP_ENV": "production"}},
			Smoke:    []nodeagent.SmokeCheck{{Name: "home", Path: "/", Status: 200, Contains: "Welcome"}},
		}},
		Health: nodeagent.Health{Path: "/nodeagent-health"},
		Apache: nodeagent.ApacheSettings{Port: apachePort, MaxRequestWorkers: 16, Bind: nodeagent.BindPrivate},
	}
}

// shopRelease is benchtool's archive with the application's bootstrap
// added (its public/index.php requires app/bootstrap.php), so the home page
// answers; it returns the archive and its sha256.
func shopRelease(t *testing.T, archive string) ([]byte, string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		t.Fatalf("read %s: %v", archive, err)
	}
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tr, tw := tar.NewReader(gr), tar.NewWriter(gw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", archive, err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	boot := []byte("<?php\nheader('Content-Type: text/plain');\necho \"Welcome to the shop\\n\";\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "app/bootstrap.php", Mode: 0o644,
		Size: int64(len(boot)), ModTime: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(boot); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(h[:])
}

// transferMS is the median of three GETs of the release from MinIO, read
// to the end and discarded.
func transferMS(t *testing.T, mc *harness.MinIO) float64 {
	t.Helper()
	c := mc.Client()
	var xs []float64
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("releases"), Key: aws.String(releaseKey)})
		if err != nil {
			cancel()
			t.Fatalf("get the release from minio: %v", err)
		}
		_, err = io.Copy(io.Discard, o.Body)
		o.Body.Close()
		cancel()
		if err != nil {
			t.Fatalf("read the release from minio: %v", err)
		}
		xs = append(xs, ms(time.Since(start)))
	}
	return bench.Median(xs)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// kit holds the counting wrappers shared by every node: count runs a
// service command (argv, or a signal to a pid file) and appends
// "unit action start end status" to a log; the apache2ctl and php-fpm
// wrappers, first on the agent's PATH, do the same for config checks.
//
// With NODEAGENT_BENCH_COUNT_ONLY set (the cold-apply series), a wrapper
// only counts: it appends "unit action - - -" and execs the real program
// (or sends the signal itself), about 3 ms of shell. Timing costs two
// date(1) processes per command, about 25 ms of CPU each here, which a
// series that times the agent's checks and reloads would charge to the
// agent.
type kit struct {
	dir   string // wrappers; first on PATH
	count string
}

const countScript = `#!/bin/sh
# count LOG UNIT ACTION -- ARGV... | count LOG UNIT ACTION --signal SIG PIDFILE
log=$1 unit=$2 action=$3
shift 3
if [ -n "$NODEAGENT_BENCH_COUNT_ONLY" ]; then
	echo "$unit $action - - -" >>"$log"
	if [ "$1" = --signal ]; then
		read -r pid <"$3"
		kill -s "$2" "$pid"
		exit
	fi
	shift
	exec "$@"
fi
start=$(date +%s.%N)
if [ "$1" = --signal ]; then
	kill -s "$2" "$(cat "$3")"
	rc=$?
else
	shift
	"$@"
	rc=$?
fi
echo "$unit $action $start $(date +%s.%N) $rc" >>"$log"
exit $rc
`

// checkScript wraps a config checker; NODEAGENT_BENCH_COUNT is the log.
const checkScript = `#!/bin/sh
if [ -n "$NODEAGENT_BENCH_COUNT_ONLY" ]; then
	echo "%[2]s check - - -" >>"$NODEAGENT_BENCH_COUNT"
	exec %[1]s "$@"
fi
start=$(date +%%s.%%N)
%[1]s "$@"
rc=$?
[ -n "$NODEAGENT_BENCH_COUNT" ] && echo "%[2]s check $start $(date +%%s.%%N) $rc" >>"$NODEAGENT_BENCH_COUNT"
exit $rc
`

func newKit(t *testing.T) *kit {
	t.Helper()
	k := &kit{dir: t.TempDir()}
	k.count = filepath.Join(k.dir, "bench-count")
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(k.count, countScript)
	real, _ := filepath.Glob("/usr/sbin/php-fpm*")
	real = append(real, "/usr/sbin/apache2ctl")
	for _, r := range real {
		name := filepath.Base(r)
		write(filepath.Join(k.dir, name), fmt.Sprintf(checkScript, r, name))
	}
	return k
}

// node is one simulated instance: a NodeRoot with real services, its IMDS,
// its agent config and the log of its counted commands.
type node struct {
	bin, root, config, count string
	env                      []string
	source                   string
	wrappers                 string // the kit's directory, first on the agent's PATH
	// created are the host paths under /etc the node's boot logged as
	// "wrote file" for a "new file": the config files the agent owns whole.
	created []string
}

func newNode(t *testing.T, k *kit, bin string, imds *harness.IMDS, awsEnv []string, source string) *node {
	t.Helper()
	root := harness.NodeRoot(t)
	dir := t.TempDir() // outside the root: its files do not count as writes
	n := &node{bin: bin, root: root, config: filepath.Join(dir, "config.json"), count: filepath.Join(dir, "count.log"), source: source, wrappers: k.dir}
	execCfg := wrapCommands(t, k, n.count, harness.ServiceCommands(root))
	cfg := map[string]any{
		"root": root, "service_root": root, "services": "exec", "log_format": "json",
		"deadline": "5m", "smoke_deadline": "60s", "exec": execCfg,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NODEAGENT_") && !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "PATH=") {
			n.env = append(n.env, kv)
		}
	}
	n.env = slices.Concat(n.env, imds.Env(), awsEnv, []string{
		"PATH=" + k.dir + ":" + os.Getenv("PATH"),
		"NODEAGENT_BENCH_COUNT=" + n.count,
	})
	return n
}

// wrapCommands routes every start, stop, reload and restart command of
// the harness's exec config through the counting wrapper.
func wrapCommands(t *testing.T, k *kit, log string, cmds map[string]any) service.ExecConfig {
	t.Helper()
	b, err := json.Marshal(cmds)
	if err != nil {
		t.Fatal(err)
	}
	var cfg service.ExecConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for unit, u := range cfg {
		wrap := func(action string, c *service.Command) *service.Command {
			if c == nil {
				return nil
			}
			argv := []string{k.count, log, unit, action}
			if c.Signal != "" {
				argv = append(argv, "--signal", c.Signal, u.Pidfile)
			} else {
				argv = append(append(argv, "--"), c.Argv...)
			}
			return &service.Command{Argv: argv, Env: c.Env}
		}
		u.Start, u.Stop = wrap("start", u.Start), wrap("stop", u.Stop)
		u.Reload, u.Restart = wrap("reload", u.Reload), wrap("restart", u.Restart)
		cfg[unit] = u
	}
	return cfg
}

// record is one line of the agent's JSON log.
type record struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	Step     string    `json:"step"`
	Duration float64   `json:"duration_ms"`
	Path     string    `json:"path"`
	Reason   string    `json:"reason"`
	Ready    bool      `json:"ready"`
	Attempts int       `json:"attempts"`
}

// applyRun is one run of the binary.
type applyRun struct {
	start, end time.Time
	cpu        time.Duration // user+system, waited-for children included
	records    []record
	stdout     string
}

func (r applyRun) wallMS() float64 { return ms(r.end.Sub(r.start)) }

// apply runs `nodeagent apply --config C --topology SOURCE args...`; a
// failure fails the test with the agent's output.
func (n *node) apply(t *testing.T, args ...string) applyRun {
	t.Helper()
	return n.run(t, nil, args...)
}

// holdLimit bounds how long hold keeps the nodes up; so does the test's
// own deadline (go test -timeout), less holdMargin for the series after.
const (
	holdLimit  = 2 * time.Hour
	holdMargin = 5 * time.Minute
)

// hold describes the converged nodes in dir and waits, at most holdLimit,
// for dir/stop to exist. For each node NAME it writes NAME.env (the
// agent's environment, a VAR=value a line) and NAME.args (the arguments
// of its no-change apply, one a line); web-s3.args is the web node's apply
// from S3, with web.env. bin is the binary the nodes were converged with.
// bench/cmd/abtime reads these files.
func hold(t *testing.T, dir, bin string, nodes map[string]*node, s3URL string) {
	t.Helper()
	write := func(name string, lines []string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatalf("hold: %v", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("hold: %v", err)
	}
	_ = os.Remove(filepath.Join(dir, "stop"))
	for name, n := range nodes {
		write(name+".env", n.env)
		write(name+".args", n.command())
	}
	web := *nodes["web"]
	web.source = s3URL
	write("web-s3.args", web.command())
	write("bin", []string{bin})
	t.Logf("hold: nodes described in %s; touch %s to go on", dir, filepath.Join(dir, "stop"))
	deadline := time.Now().Add(holdLimit)
	if d, ok := t.Deadline(); ok && d.Add(-holdMargin).Before(deadline) {
		deadline = d.Add(-holdMargin)
	}
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
	t.Logf("hold: the hold's time passed without %s/stop; going on", dir)
}

func (n *node) command(args ...string) []string {
	return append([]string{"apply", "--config", n.config, "--topology", n.source}, args...)
}

func (n *node) run(t *testing.T, prefix []string, args ...string) applyRun {
	t.Helper()
	argv := slices.Concat(prefix, []string{n.bin}, n.command(args...))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = n.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err := cmd.Run()
	end := time.Now()
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), err, stdout.String(), tail(stderr.String(), 6000))
	}
	r := applyRun{start: start, end: end, stdout: stdout.String(),
		cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	for _, line := range strings.Split(stderr.String(), "\n") {
		var rec record
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg != "" {
			r.records = append(r.records, rec)
		}
	}
	return r
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// phases splits a run by the agent's log: discover (start to "discovered
// instance"), fetch+plan (to the start of the first step), each "step
// done" duration in the order logged, and exit (last step to process
// exit). A --dry-run logs no steps and gets none.
func (r applyRun) phases() []bench.Phase {
	var steps []bench.Phase
	var discovered, firstStep, lastStep time.Time
	for _, rec := range r.records {
		switch rec.Msg {
		case "discovered instance":
			discovered = rec.Time
		case "step done":
			steps = append(steps, bench.Phase{Name: rec.Step, MS: rec.Duration})
			if firstStep.IsZero() {
				firstStep = rec.Time.Add(-time.Duration(rec.Duration * float64(time.Millisecond)))
			}
			lastStep = rec.Time
		}
	}
	var p []bench.Phase
	if !discovered.IsZero() {
		p = append(p, bench.Phase{Name: "discover", MS: ms(discovered.Sub(r.start))})
		if !firstStep.IsZero() {
			p = append(p, bench.Phase{Name: "fetch+plan", MS: ms(firstStep.Sub(discovered))})
		}
	}
	p = append(p, steps...)
	if !lastStep.IsZero() {
		p = append(p, bench.Phase{Name: "exit", MS: ms(r.end.Sub(lastStep))})
	}
	return p
}

// counted is one line of the counting log.
type counted struct {
	unit, action string
	ms           float64 // 0 when only counted (NODEAGENT_BENCH_COUNT_ONLY)
}

// cold runs the cold-apply series: runs times, remove the config files the
// boot created, apply, and check what happened (every removed file written
// again and nothing else, exactly two config checks and two reloads, no
// start, the smoke checks passed); after each apply, the two config checks
// again from the harness (checkBench). One unmeasured cold apply first, as
// the no-change series do. The wrappers only count during the series (see
// kit).
func (n *node) cold(t *testing.T, runs int) *bench.Cold {
	t.Helper()
	if len(n.created) == 0 {
		t.Fatal("cold apply: the boot logged no new file under /etc to remove")
	}
	env := n.env
	n.env = append(slices.Clone(env), "NODEAGENT_BENCH_COUNT_ONLY=1")
	defer func() { n.env = env }()
	facts, err := metadata.ReadHostFacts(n.root, "")
	if err != nil {
		t.Fatal(err)
	}
	inst := nodeagent.Instance{OSFamily: facts.OSFamily, PHPVersion: facts.PHPVersion}
	bare := newCheckBench(n, inst, filepath.SplitList(os.Getenv("PATH")), "")
	wrapped := newCheckBench(n, inst, slices.Concat([]string{n.wrappers}, filepath.SplitList(os.Getenv("PATH"))),
		filepath.Join(t.TempDir(), "count.log"))
	both := []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM}

	c := &bench.Cold{Command: "nodeagent " + strings.Join(n.command(), " "), Runs: runs, Removed: slices.Sorted(slices.Values(n.created))}
	n.coldApply(t, c.Removed)
	var through, walls, cpus, attempts []float64
	var phases [][]bench.Phase
	alone := make([]struct{ walls, cpus []float64 }, 5)
	var commands [5]string
	var programs [2]string
	for i := range runs {
		r, marks, cs := n.coldApply(t, c.Removed)
		through, walls, cpus = append(through, marks.ThroughChecksMS()), append(walls, r.wallMS()), append(cpus, ms(r.cpu))
		phases = append(phases, marks.Phases())
		var checks, reloads, starts, other int
		for _, x := range cs {
			switch x.action {
			case "check":
				checks++
			case "reload":
				reloads++
			case "start":
				starts++
			default:
				other++
			}
		}
		if checks != 2 || reloads != 2 || starts != 0 || other != 0 {
			t.Errorf("cold apply %d: %d config checks, %d reloads, %d starts, %d other service commands; want 2, 2, 0, 0", i+1, checks, reloads, starts, other)
		}
		c.Checks, c.Reloads, c.Starts, c.OtherCommands = c.Checks+checks, c.Reloads+reloads, c.Starts+starts, c.OtherCommands+other
		attempts = append(attempts, float64(smokeAttempts(r)))
		if smokePassed(r) {
			c.SmokePassed++
		} else {
			t.Errorf("cold apply %d: smoke checks not all passed, or not ready: stdout %q", i+1, r.stdout)
		}

		// The checks alone, on the tree the apply just checked.
		seq := bare.run(t, false, both...)
		for j, x := range seq.each {
			alone[j].walls, alone[j].cpus = append(alone[j].walls, x.wall), append(alone[j].cpus, x.cpu)
			commands[j], programs[j] = x.command, x.program
		}
		alone[2].walls, alone[2].cpus = append(alone[2].walls, seq.wall), append(alone[2].cpus, seq.cpu)
		commands[2] = commands[0] + "; " + commands[1]
		at := bare.run(t, true, both...)
		alone[3].walls, alone[3].cpus = append(alone[3].walls, at.wall), append(alone[3].cpus, at.cpu)
		commands[3] = commands[0] + " & " + commands[1]
		w := wrapped.run(t, true, both...)
		alone[4].walls, alone[4].cpus = append(alone[4].walls, w.wall), append(alone[4].cpus, w.cpu)
		commands[4] = "PATH=<wrappers>:$PATH NODEAGENT_BENCH_COUNT=<log> NODEAGENT_BENCH_COUNT_ONLY=1 " + commands[3]
	}
	c.ThroughChecks, c.Wall, c.CPU = bench.Summarize(through), bench.Summarize(walls), bench.Summarize(cpus)
	c.Phases, c.SmokeAttempts = bench.SummarizeColdPhases(phases), bench.Summarize(attempts)
	names := [5]string{programs[0] + " -t alone", programs[1] + " -t alone", "both, one after the other", "both at once",
		"both at once, through the counting wrappers (count only, as in the agent's runs)"}
	for j := range alone {
		c.ChecksAlone = append(c.ChecksAlone, bench.CheckTiming{Name: names[j], Command: commands[j],
			Wall: bench.Summarize(alone[j].walls), CPU: bench.Summarize(alone[j].cpus)})
	}
	return c
}

// coldApply removes the files, applies, and fails the test unless the
// agent wrote exactly those files again and its log has every mark of a
// cold apply. It returns the run, its marks and the commands counted
// during it.
func (n *node) coldApply(t *testing.T, files []string) (applyRun, bench.ColdMarks, []counted) {
	t.Helper()
	for _, f := range files {
		if err := os.Remove(filepath.Join(n.root, f)); err != nil {
			t.Fatalf("cold apply: remove the agent's file: %v", err)
		}
	}
	before := len(n.counted(t))
	r := n.apply(t)
	cs := n.counted(t)[before:]
	m := bench.ColdMarks{Start: r.start, End: r.end}
	var wrote []string
	for _, rec := range r.records {
		switch rec.Msg {
		case "discovered instance":
			m.Discovered = rec.Time
		case "wrote file":
			wrote = append(wrote, rec.Path)
			if m.FirstWrite.IsZero() {
				m.FirstWrite = rec.Time
			}
			m.LastWrite = rec.Time
		case "config check passed":
			m.ChecksPassed = rec.Time
		case "step done":
			switch rec.Step {
			case "files":
				m.FilesStart, m.FilesDone = rec.Time.Add(-time.Duration(rec.Duration*float64(time.Millisecond))), rec.Time
			case "smoke":
				m.SmokeDone = rec.Time
			}
		case "apply done":
			m.ApplyDone = rec.Time
		}
	}
	if err := m.Check(); err != nil {
		t.Fatalf("%v\nstdout: %s", err, r.stdout)
	}
	slices.Sort(wrote)
	if !slices.Equal(wrote, files) {
		t.Errorf("cold apply wrote %v, want exactly the removed files %v", wrote, files)
	}
	return r, m, cs
}

// smokePassed says the apply ended ready, its smoke checks logged as passed.
func smokePassed(r applyRun) bool {
	passed, ready := 0, false
	for _, rec := range r.records {
		switch rec.Msg {
		case "smoke check passed":
			passed++
		case "apply done":
			ready = rec.Ready
		}
	}
	return passed > 0 && ready && strings.HasPrefix(r.stdout, "ready:")
}

// smokeAttempts is the most attempts any smoke check of the run took.
func smokeAttempts(r applyRun) int {
	most := 0
	for _, rec := range r.records {
		if rec.Msg == "smoke check passed" || rec.Msg == "smoke check failed" {
			most = max(most, rec.Attempts)
		}
	}
	return most
}

// checkBench runs config checks from the harness with the agent's own
// service.Checker (the argv and extra environment it gives each check),
// on the node's root, in the agent's environment with a PATH of choice,
// and times each program it starts.
type checkBench struct {
	checker *service.Checker
	mu      sync.Mutex
	done    []timedCheck
}

type timedCheck struct {
	program   string // argv[0]
	command   string // extra environment and argv, the root shown as <root>
	wall, cpu float64
}

// checkPair is one run of checkBench.run: the wall time of the whole,
// the CPU summed over the programs, and each program's figures.
type checkPair struct {
	wall, cpu float64
	each      []timedCheck
}

// newCheckBench finds programs in dirs (the agent's PATH lookup);
// countLog, when set, is the wrappers' NODEAGENT_BENCH_COUNT (a log apart
// from the node's, so these runs are not counted as the agent's).
func newCheckBench(n *node, inst nodeagent.Instance, dirs []string, countLog string) *checkBench {
	var env []string
	for _, kv := range n.env {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "NODEAGENT_BENCH_COUNT=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+strings.Join(dirs, string(filepath.ListSeparator)))
	if countLog != "" {
		env = append(env, "NODEAGENT_BENCH_COUNT="+countLog)
	}
	b := &checkBench{}
	run := func(ctx context.Context, extra []string, name string, args ...string) ([]byte, error) {
		bin, err := lookIn(dirs, name)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Args[0] = name
		cmd.Env = slices.Concat(env, extra)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			return out, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, out)
		}
		line := strings.ReplaceAll(strings.Join(slices.Concat(extra, cmd.Args), " "), n.root, "<root>")
		b.mu.Lock()
		b.done = append(b.done, timedCheck{program: name, command: line, wall: ms(wall), cpu: ms(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime())})
		b.mu.Unlock()
		return out, nil
	}
	b.checker = service.NewChecker(service.CheckerInput{Root: n.root, Instance: inst, Run: run})
	return b
}

// run checks services one after the other, or all at once as plan.Apply
// does; a refused check fails the test.
func (b *checkBench) run(t *testing.T, atOnce bool, services ...string) checkPair {
	t.Helper()
	b.done = nil
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make([]error, len(services))
	start := time.Now()
	if atOnce {
		var wg sync.WaitGroup
		for i, s := range services {
			wg.Go(func() { errs[i] = b.checker.Check(ctx, s) })
		}
		wg.Wait()
	} else {
		for i, s := range services {
			errs[i] = b.checker.Check(ctx, s)
		}
	}
	p := checkPair{wall: ms(time.Since(start))}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("config checks from the harness: %v", err)
	}
	if len(b.done) != len(services) {
		t.Fatalf("config checks from the harness: %d programs ran for %d services", len(b.done), len(services))
	}
	if !atOnce {
		p.each = slices.Clone(b.done)
	}
	for _, x := range b.done {
		p.cpu += x.cpu
	}
	return p
}

// lookIn finds name in dirs, as exec.LookPath does in PATH.
func lookIn(dirs []string, name string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, strings.Join(dirs, ":"))
}

func (n *node) counted(t *testing.T) []counted {
	t.Helper()
	b, err := os.ReadFile(n.count)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []counted
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		if f[2] == "-" { // counted, not timed (NODEAGENT_BENCH_COUNT_ONLY)
			out = append(out, counted{unit: f[0], action: f[1]})
			continue
		}
		start, err1 := strconv.ParseFloat(f[2], 64)
		end, err2 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("count log line %q", line)
		}
		out = append(out, counted{unit: f[0], action: f[1], ms: (end - start) * 1000})
	}
	return out
}

// boot is the first apply of a fresh web node, timed whole and by phase.
func (n *node) boot(t *testing.T, asg *harness.AutoScaling, instanceID string) bench.Boot {
	t.Helper()
	r := n.apply(t)
	if !strings.HasPrefix(r.stdout, "ready:") {
		t.Fatalf("boot did not end ready: %q", r.stdout)
	}
	b := bench.Boot{WallMS: r.wallMS(), CPUMS: ms(r.cpu), Phases: r.phases(), Ready: true}
	for _, rec := range r.records {
		if rec.Msg == "wrote file" && rec.Reason == "new file" && under(rec.Path, "/etc") {
			n.created = append(n.created, rec.Path)
		}
	}
	for _, c := range n.counted(t) {
		if c.action == "check" {
			b.Checks++
			b.ChecksMS += c.ms
		} else {
			b.Services++
			b.ServiceMS += c.ms
		}
	}
	for _, c := range asg.Calls() {
		if c.Action == harness.ActionCompleteLifecycleAction && c.InstanceID == instanceID && c.Error == "" {
			b.Hook = c.Result
		}
	}
	if b.Hook != nodeagent.LifecycleContinue {
		t.Errorf("boot of %s: launch hook completed with %q, want CONTINUE", instanceID, b.Hook)
	}
	return b
}

// converge applies once and fails unless the node ends ready.
func (n *node) converge(t *testing.T) {
	t.Helper()
	if r := n.apply(t); !strings.HasPrefix(r.stdout, "ready:") {
		t.Fatalf("apply did not end ready: %q", r.stdout)
	}
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := harness.StopServices(n.root); err != nil {
		t.Fatal(err)
	}
}

// noChange runs apply (or apply --dry-run) runs times on the converged
// node, then once more under strace, and reports timings, counted
// commands and every path that changed.
func (n *node) noChange(t *testing.T, name string, runs int, dry bool) bench.NoChange {
	t.Helper()
	var args []string
	if dry {
		args = []string{"--dry-run"}
	}
	// One apply first, not measured: a node that converged from another
	// source (the web node's s3:// series follows its file:// series)
	// records the new source's ETag once; the series measures the steady
	// state after that.
	n.apply(t, args...)
	before, countedBefore := snapshot(t, n.root), len(n.counted(t))
	var walls, cpus, floors []float64
	var phases [][]bench.Phase
	for range runs {
		r := n.apply(t, args...)
		walls, cpus = append(walls, r.wallMS()), append(cpus, ms(r.cpu))
		phases = append(phases, r.phases())
		// The process floor, side by side: whatever else the machine is
		// doing in these minutes weighs on both.
		floorMS, _ := versionOnce(t, n.bin)
		floors = append(floors, floorMS)
	}
	after, all := snapshot(t, n.root), n.counted(t)
	nc := bench.NoChange{
		Node: name, Source: strings.SplitAfter(n.source, "://")[0], Runs: runs,
		Wall: bench.Summarize(walls), CPU: bench.Summarize(cpus),
		Command: "nodeagent " + strings.Join(n.command(args...), " "),
		Steps:   bench.MedianPhases(phases),
		Floor:   bench.Summarize(floors),
	}
	for _, c := range all[countedBefore:] {
		if c.action == "check" {
			nc.ConfigChecks++
		} else {
			nc.ServiceCommands++
		}
	}
	for _, p := range changed(before, after) {
		switch {
		case under(p, stateDir):
			nc.StateWrites = append(nc.StateWrites, p)
		case under(p, "run") || under(p, "var/log") || under(p, "tmp"):
			nc.ServiceWrites = append(nc.ServiceWrites, p)
		default:
			nc.HostWrites = append(nc.HostWrites, p)
		}
	}
	nc.Traced = n.traced(t, args)
	return nc
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// stamp is what tells a file was written: inode (a rename gives a new
// one), modification time and size.
type stamp struct {
	ino   uint64
	mtime int64
	size  int64
}

// snapshot stamps every file and directory under root, by relative path.
func snapshot(t *testing.T, root string) map[string]stamp {
	t.Helper()
	m := map[string]stamp{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a pid file, a socket)
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st, _ := info.Sys().(*syscall.Stat_t)
		s := stamp{mtime: info.ModTime().UnixNano(), size: info.Size()}
		if st != nil {
			s.ino = st.Ino
		}
		m[rel] = s
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return m
}

// changed lists the paths that appeared, vanished or changed, sorted.
func changed(before, after map[string]stamp) []string {
	var out []string
	for p, a := range after {
		if b, ok := before[p]; !ok || a != b {
			out = append(out, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// tracedCalls are the system calls that write, create, rename or remove.
var tracedCalls = []string{"openat", "open", "creat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
	"mkdir", "mkdirat", "rmdir", "symlink", "symlinkat", "link", "linkat", "fchmodat", "fchownat", "truncate"}

// traced runs one more apply under strace -f and lists the paths it
// changed (opened for writing, created, renamed, removed), with the call;
// nil when strace is not installed.
func (n *node) traced(t *testing.T, args []string) []string {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		return nil
	}
	prefix := filepath.Join(t.TempDir(), "trace")
	n.run(t, []string{strace, "-f", "-ff", "-qq", "-z", "-o", prefix, "-e", "trace=" + strings.Join(tracedCalls, ",")}, args...)
	files, _ := filepath.Glob(prefix + ".*")
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if s := writeOf(line); s != "" {
				seen[strings.Replace(s, n.root, "<root>", 1)] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// writeOf returns "call path" for a traced line that changes a file, ""
// for reads and for /dev and /proc.
func writeOf(line string) string {
	call, rest, ok := strings.Cut(line, "(")
	if !ok || !slices.Contains(tracedCalls, call) {
		return ""
	}
	if strings.HasPrefix(call, "open") || call == "creat" {
		if !strings.Contains(rest, "O_WRONLY") && !strings.Contains(rest, "O_RDWR") && !strings.Contains(rest, "O_CREAT") {
			return ""
		}
	}
	// The quoted arguments are the paths: one, or two for rename and link.
	parts := strings.Split(rest, `"`)
	var paths []string
	for i := 1; i < len(parts); i += 2 {
		paths = append(paths, parts[i])
	}
	if len(paths) == 0 || strings.HasPrefix(paths[0], "/dev/") || strings.HasPrefix(paths[0], "/proc/") {
		return ""
	}
	return call + " " + strings.Join(paths, " -> ")
}
