package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/test/memnet"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The node every run test simulates: a web node found through its Auto
// Scaling group, whose group has launch and terminate hooks.
const (
	testInstanceID = "i-0123456789abcdef0"
	testGroup      = "shop-web"
	testLaunchHook = "nodeagent-launch"
	testTermHook   = "nodeagent-terminate"
	testPHPVersion = "8.2"
	dbAIP          = "10.0.1.10"
	dbBIP          = "10.0.2.10"
)

// fakeMetadata is a MetadataSource of function fields.
type fakeMetadata struct {
	InstanceFunc       func(ctx context.Context) (nodeagent.Instance, error)
	LifecycleStateFunc func(ctx context.Context) (string, error)
}

var _ nodeagent.MetadataSource = (*fakeMetadata)(nil)

func (f *fakeMetadata) Instance(ctx context.Context) (nodeagent.Instance, error) {
	return f.InstanceFunc(ctx)
}

func (f *fakeMetadata) LifecycleState(ctx context.Context) (string, error) {
	if f.LifecycleStateFunc == nil {
		return "InService", nil
	}
	return f.LifecycleStateFunc(ctx)
}

// fakeSource is a TopologySource of function fields.
type fakeSource struct {
	FetchFunc func(ctx context.Context, etag string) (nodeagent.Fetched, error)
	Name      string
}

var _ nodeagent.TopologySource = (*fakeSource)(nil)

func (f *fakeSource) Fetch(ctx context.Context, etag string) (nodeagent.Fetched, error) {
	return f.FetchFunc(ctx, etag)
}

func (f *fakeSource) String() string { return f.Name }

// objectStore is an in-memory S3 object with S3's conditional GET: the
// ETag is the content's hash, and a matching If-None-Match answers "not
// modified". It counts fetches.
type objectStore struct {
	mu          sync.Mutex
	body        []byte
	fetches     int
	conditional int // fetches that sent an ETag
	notModified int
	fail        error
	times       []time.Time // of every fetch, on the test's clock
}

func (o *objectStore) put(body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.body = body
}

func (o *objectStore) setFail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = err
}

func (o *objectStore) counts() (fetches, conditional, notModified int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches, o.conditional, o.notModified
}

// etag is the ETag of the object as it is now.
func (o *objectStore) etag() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	sum := sha256.Sum256(o.body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func (o *objectStore) source() *fakeSource {
	return &fakeSource{Name: "s3://fleet/topology.json", FetchFunc: func(_ context.Context, etag string) (nodeagent.Fetched, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.fetches++
		o.times = append(o.times, time.Now())
		if etag != "" {
			o.conditional++
		}
		if o.fail != nil {
			return nodeagent.Fetched{}, o.fail
		}
		sum := sha256.Sum256(o.body)
		tag := `"` + hex.EncodeToString(sum[:16]) + `"`
		if etag == tag {
			o.notModified++
			return nodeagent.Fetched{ETag: tag, NotModified: true, Source: "s3://fleet/topology.json"}, nil
		}
		return nodeagent.Fetched{Body: bytes.Clone(o.body), ETag: tag, Source: "s3://fleet/topology.json"}, nil
	}}
}

// fakeServices is a ServiceManager of function fields that records every
// call as "method unit".
type fakeServices struct {
	ReloadFunc func(ctx context.Context, unit string) error
	ActiveFunc func(ctx context.Context, unit string) // called before Active answers

	mu    sync.Mutex
	calls []string
}

var _ nodeagent.ServiceManager = (*fakeServices)(nil)

func (f *fakeServices) record(method, unit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method+" "+unit)
}

func (f *fakeServices) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (f *fakeServices) Active(ctx context.Context, unit string) (bool, error) {
	if f.ActiveFunc != nil {
		f.ActiveFunc(ctx, unit)
	}
	return true, nil
}

func (f *fakeServices) Start(_ context.Context, unit string) error {
	f.record("start", unit)
	return nil
}

func (f *fakeServices) Reload(ctx context.Context, unit string) error {
	f.record("reload", unit)
	if f.ReloadFunc != nil {
		return f.ReloadFunc(ctx, unit)
	}
	return nil
}

func (f *fakeServices) Restart(_ context.Context, unit string) error {
	f.record("restart", unit)
	return nil
}

// fakeChecker is a ConfigChecker of a function field.
type fakeChecker struct {
	CheckFunc func(ctx context.Context, service string) error
}

func (f *fakeChecker) Check(ctx context.Context, service string) error {
	if f.CheckFunc == nil {
		return nil
	}
	return f.CheckFunc(ctx, service)
}

// fakeHooks is a LifecycleHooks of function fields that records completed
// actions.
type fakeHooks struct {
	CompleteFunc func(ctx context.Context, h nodeagent.LifecycleHook, result string) error

	mu        sync.Mutex
	completed []string // "group/hook/instance result"
}

var _ nodeagent.LifecycleHooks = (*fakeHooks)(nil)

func (f *fakeHooks) Heartbeat(context.Context, nodeagent.LifecycleHook) error { return nil }

func (f *fakeHooks) Complete(ctx context.Context, h nodeagent.LifecycleHook, result string) error {
	f.mu.Lock()
	f.completed = append(f.completed, h.Group+"/"+h.Hook+"/"+h.InstanceID+" "+result)
	f.mu.Unlock()
	if f.CompleteFunc != nil {
		return f.CompleteFunc(ctx, h, result)
	}
	return nil
}

func (f *fakeHooks) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.completed...)
}

// events is an ordered record of what happened during a drain, shared by
// the fakes that take part in it.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

// recordingNotifier records what the agent tells systemd.
type recordingNotifier struct {
	mu   sync.Mutex
	msgs []string
	ev   *events
}

func (n *recordingNotifier) Notify(state string) error {
	n.mu.Lock()
	n.msgs = append(n.msgs, state)
	n.mu.Unlock()
	if n.ev != nil && state == "STOPPING=1" {
		n.ev.add("STOPPING=1")
	}
	return nil
}

func (n *recordingNotifier) count(state string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if m == state {
			c++
		}
	}
	return c
}

// syncBuffer collects the agent's JSON log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// document is a topology for the simulated node: serial, the node the
// dbserver alias (the shop's database master) points at, and the port of
// the stand-in Apache that answers the smoke checks.
type document struct {
	Serial int64
	Master string // "db-a" or "db-b"
	Port   int
}

func (d document) bytes() []byte {
	master := d.Master
	if master == "" {
		master = "db-a"
	}
	return []byte(fmt.Sprintf(`{
  "schema": 1,
  "serial": %d,
  "domain": "internal",
  "nodes": {
    "db-a":    {"ip": %q, "role": "db"},
    "db-b":    {"ip": %q, "role": "db"},
    "cache-1": {"ip": "10.0.1.20", "role": "cache"}
  },
  "aliases": {"dbserver": %q},
  "groups": {%q: {"role": "web", "launch_hook": %q, "terminate_hook": %q}},
  "roles": {
    "web":   {"services": ["apache", "php-fpm"], "products": ["shop"]},
    "cache": {"services": ["memcached"], "memcached": {"memory_mb": 64}},
    "db":    {"services": []}
  },
  "products": {
    "shop": {
      "server_name": "www.shop.example",
      "database": {"master": "dbserver", "name": "shop"},
      "cache": {"nodes": ["cache-1"]},
      "sessions": "memcached",
      "smoke": [{"name": "home", "path": "/", "status": 200, "contains": "Welcome"}]
    }
  },
  "health": {"path": "/nodeagent-health"},
  "apache": {"port": %d}
}
`, d.Serial, dbAIP, dbBIP, master, testGroup, testLaunchHook, testTermHook, d.Port))
}

// runEnv is one agent under test: a node root in a temp dir, fakes for
// metadata, services, checks and lifecycle hooks, a stand-in Apache on
// 127.0.0.1 answering the smoke checks, and Run going in the background.
type runEnv struct {
	t         *testing.T
	root      string
	agent     *agent.Agent
	metrics   *agent.Metrics
	services  *fakeServices
	checker   *fakeChecker
	hooks     *fakeHooks
	notifier  *recordingNotifier
	events    *events
	logs      *syncBuffer
	port      int    // stand-in Apache
	addr      string // the agent's endpoints
	recheck   chan struct{}
	terminate chan struct{}
	lifecycle *lockedString
	// lifecycleChecks counts the agent's target lifecycle state requests.
	lifecycleChecks atomic.Int64
	cancel          context.CancelFunc
	done            chan error
	settings        runSettings
	client          *http.Client // to the agent's endpoints
}

type lockedString struct {
	mu sync.Mutex
	s  string
}

func (l *lockedString) set(s string) { l.mu.Lock(); l.s = s; l.mu.Unlock() }
func (l *lockedString) get() string  { l.mu.Lock(); defer l.mu.Unlock(); return l.s }

// runSettings are the knobs a test turns.
type runSettings struct {
	Source       func(e *runEnv) nodeagent.TopologySource
	Topology     string // Config.Topology; file:// switches on the file watch
	PollInterval time.Duration
	Settle       time.Duration
	Splay        time.Duration
	DrainTime    time.Duration
	Watchdog     time.Duration
	// Reports and ReportInterval go to RunOptions (node reports).
	Reports        agent.ReportWriter
	ReportInterval time.Duration
	// LifecycleInterval goes to RunOptions; 0 means 20ms.
	LifecycleInterval time.Duration
	// InMemory runs the agent with no socket, for a testing/synctest
	// bubble: its endpoints on a memnet.Listener (e.get reaches them
	// through it), the smoke checks answered by apacheTransport.
	InMemory bool
	// Apache answers the smoke checks in place of the stand-in's
	// welcome page (not with InMemory).
	Apache http.HandlerFunc
}

// welcome is the stand-in Apache's answer: what the web role's smoke
// checks expect.
func welcome(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "Welcome to the shop; nodeagent-php-ok")
}

// newRunEnv prepares a node; start runs the agent.
func newRunEnv(t *testing.T, s runSettings) *runEnv {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, f), b)
	}
	writeFile(t, filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost\n# an operator's line\n10.9.9.9 legacy\n"))

	// The stand-in Apache: a real server on 127.0.0.1, or in memory.
	port := 8080
	var smokeClient *http.Client
	if s.InMemory {
		smokeClient = &http.Client{
			Transport:     apacheTransport{},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	} else {
		h := s.Apache
		if h == nil {
			h = welcome
		}
		apache := httptest.NewServer(h)
		t.Cleanup(apache.Close)
		var err error
		port, err = strconv.Atoi(apache.URL[strings.LastIndexByte(apache.URL, ':')+1:])
		if err != nil {
			t.Fatal(err)
		}
	}

	e := &runEnv{
		t: t, root: root, port: port,
		services:  &fakeServices{},
		checker:   &fakeChecker{},
		hooks:     &fakeHooks{},
		events:    &events{},
		logs:      &syncBuffer{},
		recheck:   make(chan struct{}, 1),
		terminate: make(chan struct{}),
		lifecycle: &lockedString{s: "InService"},
		metrics:   agent.NewMetrics(),
	}
	e.notifier = &recordingNotifier{ev: e.events}

	cfg := agent.DefaultConfig()
	cfg.Root, cfg.ServiceRoot = root, root
	cfg.Topology = s.Topology
	cfg.Listen = "127.0.0.1:0"
	cfg.Deadline = agent.Duration(30 * time.Second)
	cfg.SmokeDeadline = agent.Duration(5 * time.Second)
	cfg.PollInterval = agent.Duration(s.PollInterval)
	if s.PollInterval == 0 {
		cfg.PollInterval = agent.Duration(time.Hour)
	}
	cfg.Settle = agent.Duration(s.Settle)
	cfg.Splay = agent.Duration(s.Splay)
	cfg.DrainTime = agent.Duration(s.DrainTime)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}

	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", e.logs)
		}
	})
	fsys := hostfs.FS{Root: root, StateDir: cfg.StateDir}
	e.agent = &agent.Agent{
		Config: cfg,
		Metadata: &fakeMetadata{
			InstanceFunc: func(context.Context) (nodeagent.Instance, error) {
				return nodeagent.Instance{
					ID: testInstanceID, PrivateIP: "127.0.0.1", AZ: "us-east-1a", Region: "us-east-1",
					Type: "m5.large", Group: testGroup, LifecycleState: "InService",
					MemoryBytes: 4 << 30, OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: testPHPVersion,
				}, nil
			},
			LifecycleStateFunc: func(context.Context) (string, error) {
				e.lifecycleChecks.Add(1)
				return e.lifecycle.get(), nil
			},
		},
		HTTPClient: smokeClient,
		FS:         fsys,
		Services:   e.services,
		Checker:    func(nodeagent.Instance) nodeagent.ConfigChecker { return e.checker },
		Releases:   &release.Manager{Root: root, Logger: log},
		Hooks:      e.hooks,
		Readiness: readiness.New(readiness.Options{
			HealthFile: fsys.Path("/var/lib/nodeagent/health/ready"),
			StatusFile: fsys.Path("/var/lib/nodeagent/status.json"),
			Logger:     log,
		}),
		Logger: log,
	}
	if s.Source != nil {
		e.agent.Source = s.Source(e)
	}
	e.settings = s
	return e
}

// start runs the agent in the background; the test's cleanup stops it.
func (e *runEnv) start() {
	e.t.Helper()
	var ln net.Listener
	if e.settings.InMemory {
		mem := memnet.Listen("agent.test:9100")
		ln, e.addr = mem, mem.Addr().String()
		e.client = &http.Client{Transport: &http.Transport{DialContext: mem.Dial, DisableKeepAlives: true}}
	} else {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.t.Fatal(err)
		}
		e.addr = ln.Addr().String()
	}
	lifecycleInterval := e.settings.LifecycleInterval
	if lifecycleInterval == 0 {
		lifecycleInterval = 20 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	opts := agent.RunOptions{
		Metrics:           e.metrics,
		Recheck:           e.recheck,
		Terminate:         e.terminate,
		Notifier:          e.notifier,
		Watchdog:          e.settings.Watchdog,
		LifecycleInterval: lifecycleInterval,
		Listener:          ln,
		Reports:           e.settings.Reports,
		ReportInterval:    e.settings.ReportInterval,
		AgentVersion:      "test-version",
	}
	go func() { e.done <- e.agent.Run(ctx, opts) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(20 * time.Second):
			e.t.Error("Run did not return within 20s of its context ending")
		}
	})
}

// wait waits for Run to return and gives its error.
func (e *runEnv) wait(limit time.Duration) error {
	e.t.Helper()
	select {
	case err := <-e.done:
		e.done <- err // for the cleanup
		return err
	case <-time.After(limit):
		e.t.Fatalf("Run did not return within %s", limit)
		return nil
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *runEnv) read(p string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, p))
	if err != nil {
		e.t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// appConfig is the app-readable config of the shop product.
func (e *runEnv) appConfig() string { return e.read("etc/nodeagent/products/shop.php") }

// httpClient reaches the agent's endpoints.
func (e *runEnv) httpClient() *http.Client {
	if e.client != nil {
		return e.client
	}
	return http.DefaultClient
}

// get fetches an endpoint of the agent.
func (e *runEnv) get(path string) (int, string) {
	e.t.Helper()
	resp, err := e.httpClient().Get("http://" + e.addr + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *runEnv) status() readiness.Status {
	e.t.Helper()
	code, body := e.get("/status")
	if code != http.StatusOK {
		e.t.Fatalf("/status: %d %s", code, body)
	}
	var st readiness.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		e.t.Fatalf("/status: %v: %s", err, body)
	}
	return st
}

func (e *runEnv) applies(result string) int {
	return int(e.metric("nodeagent_applies_total", "result", result))
}

func (e *runEnv) polls(outcome string) int {
	return int(e.metric("nodeagent_source_polls_total", "outcome", outcome))
}

// metric reads one series from the agent's exposition, parsed by the
// Prometheus project's text parser: a counter's or gauge's value, a
// histogram's sample count. label is a name and value pair, or nothing. A
// missing series fails the test.
func (e *runEnv) metric(name string, label ...string) float64 {
	e.t.Helper()
	var text bytes.Buffer
	if _, err := e.metrics.Registry.WriteTo(&text); err != nil {
		e.t.Fatalf("write metrics: %v", err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(&text)
	if err != nil {
		e.t.Fatalf("parse metrics: %v", err)
	}
	if f, ok := families[name]; ok {
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(label); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == label[i] && l.GetValue() == label[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	e.t.Fatalf("no metric %s %v", name, label)
	return 0
}

// eventually polls cond every 10ms until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitApplied waits until serial is applied and the node is ready.
func (e *runEnv) waitApplied(serial int64, limit time.Duration) {
	e.t.Helper()
	eventually(e.t, limit, fmt.Sprintf("serial %d applied and ready", serial), func() bool {
		st := e.agent.Readiness.Snapshot()
		// The metrics are the last thing an apply updates.
		return st.Serial == serial && st.Ready && e.metric("nodeagent_topology_serial_applied") == float64(serial)
	})
}

// readyWatch polls /ready every 5ms in the background and remembers every
// answer that was not 200.
type readyWatch struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	bad     []string
	answers int
}

func (e *runEnv) watchReady() *readyWatch {
	w := &readyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	url := "http://" + e.addr + "/ready"
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			resp, err := e.httpClient().Get(url)
			w.mu.Lock()
			w.answers++
			if err != nil {
				w.bad = append(w.bad, err.Error())
			} else {
				if resp.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(resp.Body)
					w.bad = append(w.bad, fmt.Sprintf("%d %s", resp.StatusCode, b))
				}
				resp.Body.Close()
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the watch and returns the bad answers and the number of probes.
func (w *readyWatch) end() ([]string, int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bad, w.answers
}

func TestRunAppliesAtStartAndServes(t *testing.T) {
	store := &objectStore{}
	e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }})
	store.put(document{Serial: 7, Port: e.port}.bytes())
	e.start()
	e.waitApplied(7, 10*time.Second)

	tests := []struct {
		path     string
		code     int
		contains string
	}{
		{"/ready", http.StatusOK, `"ready":true`},
		{"/live", http.StatusOK, `"live":true`},
		{"/status", http.StatusOK, `"serial":7`},
		{"/metrics", http.StatusOK, "nodeagent_topology_serial_applied 7"},
		{"/metrics", http.StatusOK, `nodeagent_applies_total{result="ok"} 1`},
		{"/metrics", http.StatusOK, "nodeagent_apply_duration_seconds_count 1"},
		{"/metrics", http.StatusOK, "nodeagent_ready 1"},
		{"/metrics", http.StatusOK, `nodeagent_smoke_check_ok{check="shop/home"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.contains, func(t *testing.T) {
			code, body := e.get(tt.path)
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("GET %s = %d, want %d containing %q; body:\n%.2000s", tt.path, code, tt.code, tt.contains, body)
			}
		})
	}
	if got := e.read("var/lib/nodeagent/health/ready"); got == "" {
		t.Error("ELB health file is empty")
	}
	if want := []string{testGroup + "/" + testLaunchHook + "/" + testInstanceID + " CONTINUE"}; !equal(e.hooks.list(), want) {
		t.Errorf("lifecycle actions = %q, want %q", e.hooks.list(), want)
	}
	hosts := e.read("etc/hosts")
	if !strings.HasPrefix(hosts, "127.0.0.1 localhost\n# an operator's line\n10.9.9.9 legacy\n") || !strings.Contains(hosts, hostsLine(dbAIP, "dbserver")) {
		t.Errorf("/etc/hosts lost its own lines or lacks %q:\n%s", hostsLine(dbAIP, "dbserver"), hosts)
	}

	// One structured record per apply step, each with the apply id and
	// its duration; every step of one apply shares the id.
	steps := map[string]string{}
	for _, r := range e.logs.records(t) {
		if r["msg"] != "step done" {
			continue
		}
		id, _ := r[agent.LogKeyApply].(string)
		if id == "" {
			t.Errorf("step record without %s: %v", agent.LogKeyApply, r)
		}
		if _, ok := r[agent.LogKeyDuration].(float64); !ok {
			t.Errorf("step record without a numeric %s: %v", agent.LogKeyDuration, r)
		}
		steps[r[agent.LogKeyStep].(string)] = id
	}
	for _, s := range []string{"files", "smoke", "record"} {
		if steps[s] == "" {
			t.Errorf("no step record for %q; steps: %v", s, steps)
		}
		if steps[s] != steps["files"] {
			t.Errorf("step %q has apply id %q, files has %q", s, steps[s], steps["files"])
		}
	}
}

// hostsLine is the managed /etc/hosts line of a name in the test domain.
func hostsLine(ip, name string) string { return ip + "\t" + name + " " + name + ".internal\n" }

// phpReloads counts the agent's php-fpm reloads so far.
func (e *runEnv) phpReloads() int { return e.services.count("reload php" + testPHPVersion + "-fpm") }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRunKeepsLastGoodState pushes documents that must not be applied: the
// node keeps its files, stays ready the whole time, and reports the
// failure on /status, in the log and in a metric.
func TestRunKeepsLastGoodState(t *testing.T) {
	tests := []struct {
		name string
		// body is the bad document for a node that applied serial 5 with
		// db-a as master; port is the stand-in Apache.
		body      func(port int) []byte
		failCheck bool
		result    string // applies_total label
		wantErr   string // in /status last_error
	}{
		{"unparsable", func(int) []byte { return []byte(`{"schema": 1, "serial": 6,`) }, false, "refused", "invalid"},
		{"unknown field", func(p int) []byte {
			return bytes.Replace(document{Serial: 6, Master: "db-b", Port: p}.bytes(), []byte(`"domain"`), []byte(`"domian"`), 1)
		}, false, "refused", "domian"},
		{"dangling reference", func(p int) []byte {
			return bytes.Replace(document{Serial: 6, Master: "db-b", Port: p}.bytes(), []byte(`"dbserver": "db-b"`), []byte(`"dbserver": "db-c"`), 1)
		}, false, "refused", "db-c"},
		{"lower serial", func(p int) []byte { return document{Serial: 4, Master: "db-b", Port: p}.bytes() }, false, "refused", "serial"},
		{"rendered config refused by its check", func(p int) []byte { return document{Serial: 6, Master: "db-b", Port: p}.bytes() }, true, "failed", "php-fpm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &objectStore{}
			e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }})
			store.put(document{Serial: 5, Port: e.port}.bytes())
			e.start()
			e.waitApplied(5, 10*time.Second)
			hosts, app := e.read("etc/hosts"), e.appConfig()
			reloads := e.phpReloads()

			if tt.failCheck {
				e.checker.CheckFunc = func(_ context.Context, service string) error {
					if service == nodeagent.ServicePHPFPM {
						return errors.New("php-fpm -t: ERROR: syntax error in pool nodeagent-shop.conf")
					}
					return nil
				}
			}
			w := e.watchReady()
			store.put(tt.body(e.port))
			e.recheck <- struct{}{}
			eventually(t, 10*time.Second, "the bad document reported", func() bool { return e.applies(tt.result) == 1 })
			time.Sleep(50 * time.Millisecond)
			bad, n := w.end()
			if len(bad) > 0 || n == 0 {
				t.Errorf("/ready answered %d probes, %d not 200: %q", n, len(bad), bad)
			}

			if got := e.read("etc/hosts"); got != hosts {
				t.Errorf("/etc/hosts changed:\n%s\nwant:\n%s", got, hosts)
			}
			if got := e.appConfig(); got != app {
				t.Errorf("app config changed:\n%s\nwant:\n%s", got, app)
			}
			if got := e.phpReloads(); got != reloads {
				t.Errorf("php-fpm reloaded %d more times", got-reloads)
			}
			st := e.status()
			if !st.Ready || st.Serial != 5 || !strings.Contains(st.LastError, tt.wantErr) {
				t.Errorf("/status ready=%v serial=%d last_error=%q; want ready, serial 5, error naming %q", st.Ready, st.Serial, st.LastError, tt.wantErr)
			}
			if got := e.applies("ok"); got != 1 {
				t.Errorf("applies ok = %d, want 1 (the boot apply)", got)
			}
			if got := e.metric("nodeagent_topology_serial_applied"); got != 5 {
				t.Errorf("serial applied metric = %v, want 5", got)
			}
			if got := e.metric("nodeagent_ready"); got != 1 {
				t.Errorf("ready metric = %v, want 1", got)
			}
			logged := false
			for _, r := range e.logs.records(t) {
				if r["level"] == "ERROR" && strings.Contains(fmt.Sprint(r["msg"]), "last good state") {
					logged = true
				}
			}
			if !logged {
				t.Error("no ERROR record saying the node keeps its last good state")
			}

			// A refused document is not tried again on the next check; an
			// apply that failed is retried, since its cause may be passing.
			e.recheck <- struct{}{}
			if tt.result == "refused" {
				eventually(t, 5*time.Second, "a not-modified check", func() bool { return e.polls("not_modified") >= 1 })
				if got := e.applies(tt.result); got != 1 {
					t.Errorf("applies %s = %d after a recheck of the same document, want 1", tt.result, got)
				}
			} else {
				eventually(t, 10*time.Second, "the failed apply retried", func() bool { return e.applies(tt.result) == 2 })
				if got := e.read("etc/hosts"); got != hosts {
					t.Errorf("/etc/hosts changed by the retry:\n%s\nwant:\n%s", got, hosts)
				}
			}

			// A good document afterwards converges.
			e.checker.CheckFunc = nil
			store.put(document{Serial: 7, Master: "db-b", Port: e.port}.bytes())
			e.recheck <- struct{}{}
			e.waitApplied(7, 10*time.Second)
			if !strings.Contains(e.appConfig(), dbBIP) {
				t.Errorf("app config after the fix lacks the new master %s:\n%s", dbBIP, e.appConfig())
			}
		})
	}
}

func TestRunRecheckAppliesAtOnce(t *testing.T) {
	store := &objectStore{}
	e := newRunEnv(t, runSettings{
		Source:       func(*runEnv) nodeagent.TopologySource { return store.source() },
		PollInterval: time.Hour,
		Settle:       time.Hour, // a recheck does not wait for settle or splay
		Splay:        time.Hour,
	})
	store.put(document{Serial: 1, Port: e.port}.bytes())
	e.start()
	e.waitApplied(1, 10*time.Second)

	reloads := e.phpReloads()
	store.put(document{Serial: 2, Master: "db-b", Port: e.port}.bytes())
	start := time.Now()
	e.recheck <- struct{}{}
	e.waitApplied(2, 5*time.Second)
	t.Logf("recheck applied in %s", time.Since(start))
	if !strings.Contains(e.appConfig(), dbBIP) || !strings.Contains(e.read("etc/hosts"), hostsLine(dbBIP, "dbserver")) {
		t.Errorf("app config or /etc/hosts lacks the new master %s:\n%s\n%s", dbBIP, e.appConfig(), e.read("etc/hosts"))
	}
	if got := e.phpReloads() - reloads; got != 1 {
		t.Errorf("php-fpm reloaded %d times for the change, want 1", got)
	}
}

// pollBounds is how many polls a jittered poll loop started at time 0 has
// done by time window: each wait is the interval ±10% (the upper bound
// excluded), so the k-th poll comes in [0.9k, 1.1k) intervals.
func pollBounds(window, interval time.Duration) (lo, hi int) {
	// k polls are surely done when 1.1k·interval <= window; none past
	// 0.9k·interval > window.
	return int(window * 10 / (interval * 11)), int(window * 10 / (interval * 9))
}

// untilNextPoll sleeps until the next poll surely came, and no other did:
// the next one is due before 1.1 intervals after the last fetch, the one
// after it no sooner than 1.8 intervals after it.
func untilNextPoll(store *objectStore, interval time.Duration) {
	times := store.fetchTimes()
	time.Sleep(time.Until(times[len(times)-1].Add(interval * 11 / 10)))
	synctest.Wait()
}

// checkPollGaps fails the test unless every gap between two consecutive
// fetches (the first measured from start) is the poll interval ±10%.
func checkPollGaps(t *testing.T, start time.Time, times []time.Time, interval time.Duration) {
	t.Helper()
	lo, hi := interval*9/10, interval*11/10
	prev := start
	for i, at := range times {
		if gap := at.Sub(prev); gap < lo || gap >= hi {
			t.Errorf("fetch %d came %s after the one before, want [%s, %s)", i, gap, lo, hi)
		}
		prev = at
	}
}

// TestRunPollsConditionally runs on the bubble's clock: the boot fetch,
// then one conditional GET per jittered interval, exactly.
func TestRunPollsConditionally(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 50 * time.Millisecond
		store := &objectStore{}
		e := newRunEnv(t, runSettings{
			Source:       func(*runEnv) nodeagent.TopologySource { return store.source() },
			PollInterval: interval,
			InMemory:     true,
		})
		store.put(document{Serial: 1, Port: e.port}.bytes())
		start := time.Now()
		e.start()
		synctest.Wait()
		e.checkApplied(1)

		const window = 10 * interval
		time.Sleep(window)
		synctest.Wait()
		times := store.fetchTimes()
		if len(times) == 0 || !times[0].Equal(start) {
			t.Fatalf("fetches at %v, want the boot fetch at %v", times, start)
		}
		checkPollGaps(t, start, times[1:], interval)
		lo, hi := pollBounds(window, interval)
		fetches, conditional, notModified := store.counts()
		if polls := fetches - 1; polls < lo || polls > hi || e.polls("not_modified") != polls {
			t.Errorf("%d polls (%d counted not modified) in %s at a %s ±10%% interval, want %d to %d",
				polls, e.polls("not_modified"), window, interval, lo, hi)
		}
		if conditional != fetches-1 {
			t.Errorf("%d of %d fetches were conditional, want all but the boot fetch", conditional, fetches)
		}
		if notModified != conditional {
			t.Errorf("%d conditional fetches, %d not modified: an unchanged document was transferred", conditional, notModified)
		}
		if got := e.applies("ok"); got != 1 {
			t.Errorf("applies ok = %d with an unchanged document, want 1", got)
		}

		// A change is seen by the next poll and applied at once (no settle,
		// no splay): at the instant of that poll.
		store.put(document{Serial: 2, Master: "db-b", Port: e.port}.bytes())
		before := len(store.fetchTimes())
		untilNextPoll(store, interval)
		e.checkApplied(2)
		times = store.fetchTimes()
		if len(times) != before+2 {
			t.Fatalf("%d fetches after the change within one interval, want 2 (the poll and the apply's check)", len(times)-before)
		}
		if !times[before].Equal(times[before+1]) {
			t.Errorf("the apply's fetch came %s after the poll that saw the change, want at once", times[before+1].Sub(times[before]))
		}
		if got := e.polls("changed"); got != 1 {
			t.Errorf("polls changed = %d, want 1", got)
		}

		// An unreachable source is counted and reported; the node stays ready.
		store.setFail(errors.New("s3: get object topology.json: connection refused"))
		untilNextPoll(store, interval)
		if got := e.polls("error"); got != 1 {
			t.Errorf("polls error = %d after the next poll, want 1", got)
		}
		st := e.agent.Readiness.Snapshot()
		if !st.Ready || !strings.Contains(st.LastError, "connection refused") {
			t.Errorf("status ready=%v last_error=%q; want ready and the fetch error", st.Ready, st.LastError)
		}
		if got := e.applies("ok"); got != 2 {
			t.Errorf("applies ok = %d, want 2", got)
		}
	})
}

func TestRunMetricValues(t *testing.T) {
	store := &objectStore{}
	e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }})
	store.put(document{Serial: 3, Port: e.port}.bytes())
	before := time.Now().Unix()
	e.start()
	e.waitApplied(3, 10*time.Second)
	store.put(document{Serial: 4, Master: "db-b", Port: e.port}.bytes())
	e.recheck <- struct{}{}
	e.waitApplied(4, 10*time.Second)
	// Valid JSON, but the master names no node: refused, serial 9 seen.
	store.put(bytes.Replace(document{Serial: 9, Port: e.port}.bytes(), []byte(`"dbserver": "db-a"`), []byte(`"dbserver": "db-z"`), 1))
	e.recheck <- struct{}{}
	eventually(t, 10*time.Second, "the refused document counted", func() bool { return e.applies("refused") == 1 })

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"applies ok", e.metric("nodeagent_applies_total", "result", "ok"), 2},
		{"applies refused", e.metric("nodeagent_applies_total", "result", "refused"), 1},
		{"applies failed", e.metric("nodeagent_applies_total", "result", "failed"), 0},
		{"apply duration count", e.metric("nodeagent_apply_duration_seconds"), 3},
		{"serial applied", e.metric("nodeagent_topology_serial_applied"), 4},
		{"serial seen", e.metric("nodeagent_topology_serial_seen"), 9},
		{"ready", e.metric("nodeagent_ready"), 1},
		{"smoke shop/home", e.metric("nodeagent_smoke_check_ok", "check", "shop/home"), 1},
		{"smoke shop/php-probe", e.metric("nodeagent_smoke_check_ok", "check", "shop/php-probe"), 1},
		{"polls changed", e.metric("nodeagent_source_polls_total", "outcome", "changed"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}
	if last := e.metric("nodeagent_last_success_timestamp_seconds"); last < float64(before) || last > float64(time.Now().Unix()) {
		t.Errorf("last success = %v, want between %d and now", last, before)
	}
}

// TestRunDrains checks the drain order: readiness (and the ELB health
// file) goes 503 first, the agent waits the drain time, completes the
// terminate hook with CONTINUE, tells systemd STOPPING=1, and Run returns
// nil.
func TestRunDrains(t *testing.T) {
	const drain = 300 * time.Millisecond
	const lifecycleEvery = 20 * time.Millisecond
	tests := []struct {
		name    string
		trigger func(e *runEnv)
		// seen is how long after the trigger the agent learns of it.
		seen time.Duration
	}{
		// A SIGTERM (o.Terminate, or the context) drains only an instance
		// that IMDS says is terminating, which the stop asks at once.
		{"SIGTERM while terminating", func(e *runEnv) { e.lifecycle.set("Terminated"); close(e.terminate) }, 0},
		// Otherwise the lifecycle watcher sees it at its next check: the
		// trigger comes at the start, the first check one interval later.
		{"lifecycle state Terminated", func(e *runEnv) { e.lifecycle.set("Terminated") }, lifecycleEvery},
		{"context ended while terminating", func(e *runEnv) { e.lifecycle.set("Terminated"); e.cancel() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// On a synctest bubble's clock: every wait below is exact.
			synctest.Test(t, func(t *testing.T) {
				store := &objectStore{}
				e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() },
					DrainTime: drain, LifecycleInterval: lifecycleEvery, InMemory: true})
				store.put(document{Serial: 1, Port: e.port}.bytes())
				health := filepath.Join(e.root, "var/lib/nodeagent/health/ready")
				var triggered time.Time
				var waited time.Duration
				e.hooks.CompleteFunc = func(_ context.Context, h nodeagent.LifecycleHook, result string) error {
					if h.Hook != testTermHook {
						return nil
					}
					waited = time.Since(triggered)
					code, body := e.get("/ready")
					_, statErr := os.Stat(health)
					e.events.add(fmt.Sprintf("terminate hook %s; /ready %d %s; health file gone %v",
						result, code, strings.TrimSpace(body), errors.Is(statErr, os.ErrNotExist)))
					return nil
				}
				e.start()
				synctest.Wait()
				e.checkApplied(1)

				w := e.watchReady()
				triggered = time.Now()
				tt.trigger(e)
				if tt.seen > 0 {
					time.Sleep(tt.seen - time.Nanosecond)
					synctest.Wait()
					if code, _ := e.get("/ready"); code != http.StatusOK {
						t.Errorf("/ready %d before the agent could know of the termination, want 200", code)
					}
					time.Sleep(time.Nanosecond)
				}
				synctest.Wait()
				if code, _ := e.get("/ready"); code != http.StatusServiceUnavailable {
					t.Errorf("/ready %d %s after the trigger, want 503 at once", code, time.Since(triggered))
				}
				if _, err := os.Stat(health); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("ELB health file still there while draining: %v", err)
				}
				if err := e.wait(10 * time.Second); err != nil {
					t.Errorf("Run = %v, want nil after a drain", err)
				}
				w.end()
				want := []string{
					`terminate hook CONTINUE; /ready 503 {"ready":false,"reason":"draining"}; health file gone true`,
					"STOPPING=1",
				}
				if waited != tt.seen+drain {
					t.Errorf("terminate hook completed %s after the trigger, want %s: the drain time after the agent saw it", waited, tt.seen+drain)
				}
				if got := e.events.all(); !equal(got, want) {
					t.Errorf("drain events:\n%q\nwant:\n%q", got, want)
				}
				completed := e.hooks.list()
				if len(completed) != 2 || completed[1] != testGroup+"/"+testTermHook+"/"+testInstanceID+" CONTINUE" {
					t.Errorf("lifecycle actions = %q, want the launch hook then the terminate hook", completed)
				}
				if got := e.metric("nodeagent_ready"); got != 0 {
					t.Errorf("ready metric = %v after the drain, want 0", got)
				}
				// lifecycle.json still says the launch hook was completed: a
				// later start must never complete it again.
				if rec := e.read("var/lib/nodeagent/lifecycle.json"); !strings.Contains(rec, testLaunchHook) || strings.Contains(rec, testTermHook) {
					t.Errorf("lifecycle.json after the drain:\n%s\nwant the launch hook's record, not the terminate hook's", rec)
				}
			})
		})
	}
}

// TestRunStopIsNotTerminate: a SIGTERM while IMDS says the instance is in
// service (systemctl restart, a package upgrade), or cannot say, exits at
// once without draining: no 503, the health file and the ready status stay
// for the next process, no terminate hook.
func TestRunStopIsNotTerminate(t *testing.T) {
	tests := []struct {
		name    string
		state   func(context.Context) (string, error)
		trigger func(e *runEnv)
	}{
		{"SIGTERM in service", nil, func(e *runEnv) { close(e.terminate) }},
		{"context ended in service", nil, func(e *runEnv) { e.cancel() }},
		{"SIGTERM with IMDS unreachable", func(context.Context) (string, error) {
			return "", errors.New("metadata: get autoscaling/target-lifecycle-state: connection refused")
		}, func(e *runEnv) { close(e.terminate) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &objectStore{}
			// A drain time no test waits for: a drain would show.
			e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }, DrainTime: time.Hour})
			store.put(document{Serial: 1, Port: e.port}.bytes())
			if tt.state != nil {
				e.agent.Metadata.(*fakeMetadata).LifecycleStateFunc = tt.state
			}
			e.start()
			e.waitApplied(1, 10*time.Second)
			w := e.watchReady()
			tt.trigger(e)
			if err := e.wait(10 * time.Second); err != nil {
				t.Errorf("Run = %v, want nil after a plain stop", err)
			}
			bad, _ := w.end()
			for _, b := range bad {
				if strings.HasPrefix(b, "503") {
					t.Errorf("/ready answered %s during a plain stop", b)
				}
			}
			if _, err := os.Stat(filepath.Join(e.root, "var/lib/nodeagent/health/ready")); err != nil {
				t.Errorf("ELB health file gone after a plain stop: %v", err)
			}
			st, err := readiness.ReadStatusFile(e.root, "/var/lib/nodeagent/status.json")
			if err != nil || !st.Ready || st.Draining {
				t.Errorf("status.json after a plain stop: %+v, %v; want ready, not draining", st, err)
			}
			if got := e.hooks.list(); len(got) != 1 || !strings.Contains(got[0], testLaunchHook) {
				t.Errorf("lifecycle actions = %q, want only the launch hook (no terminate hook on a plain stop)", got)
			}
			if got, want := e.events.all(), []string{"STOPPING=1"}; !equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}

// TestRunPingsWatchdog: one WATCHDOG=1 per watchdog interval, exactly,
// on the bubble's clock.
func TestRunPingsWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const watchdog = 20 * time.Millisecond
		store := &objectStore{}
		e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }, Watchdog: watchdog, InMemory: true})
		store.put(document{Serial: 1, Port: e.port}.bytes())
		e.start()
		synctest.Wait()
		e.checkApplied(1)
		if got := e.notifier.count("WATCHDOG=1"); got != 0 {
			t.Errorf("%d watchdog pings before the first interval, want 0", got)
		}
		for want := 1; want <= 5; want++ {
			time.Sleep(watchdog)
			synctest.Wait()
			if got := e.notifier.count("WATCHDOG=1"); got != want {
				t.Fatalf("%d watchdog pings after %d intervals, want %d", got, want, want)
			}
		}
	})
}

// TestRunChecksLifecycleEveryInterval: one target lifecycle state request
// per lifecycle interval, exactly, on the bubble's clock.
func TestRunChecksLifecycleEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 15 * time.Second
		store := &objectStore{}
		e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() },
			LifecycleInterval: every, InMemory: true})
		store.put(document{Serial: 1, Port: e.port}.bytes())
		e.start()
		synctest.Wait()
		e.checkApplied(1)
		base := e.lifecycleChecks.Load() // the boot apply's own requests, if any
		time.Sleep(every - time.Nanosecond)
		synctest.Wait()
		if got := e.lifecycleChecks.Load() - base; got != 0 {
			t.Errorf("%d lifecycle state requests before the first interval, want 0", got)
		}
		time.Sleep(time.Nanosecond + 19*every)
		synctest.Wait()
		if got := e.lifecycleChecks.Load() - base; got != 20 {
			t.Errorf("%d lifecycle state requests in 20 intervals of %s, want 20", got, every)
		}
		// Terminated is seen by the next check: the drain follows.
		e.lifecycle.set("Terminated")
		time.Sleep(every)
		synctest.Wait()
		if got := e.lifecycleChecks.Load() - base; got != 21 {
			t.Errorf("%d lifecycle state requests, want 21", got)
		}
		if st := e.agent.Readiness.Snapshot(); st.Ready || !st.Draining {
			t.Errorf("status %+v one interval after Terminated, want draining", st)
		}
	})
}

// TestRunBootsFromLastGoodCopy: a node whose source is unreachable at start
// but that has a last-good copy converges to it, says so, and picks up the
// source once it answers.
func TestRunBootsFromLastGoodCopy(t *testing.T) {
	store := &objectStore{}
	e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() }})
	body := document{Serial: 3, Port: e.port}.bytes()
	lg := source.LastGood{Path: filepath.Join(e.root, "var/lib/nodeagent/topology.json")}
	if err := os.MkdirAll(filepath.Dir(lg.Path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := lg.Save(body, "", nodeagent.FormatJSON); err != nil {
		t.Fatal(err)
	}
	store.setFail(errors.New("dial tcp: connection refused"))
	e.start()
	e.waitApplied(3, 10*time.Second)
	if !strings.Contains(e.logs.String(), "last-good copy") {
		t.Error("the log does not say the node booted from its last-good copy")
	}
	store.setFail(nil)
	store.put(document{Serial: 4, Master: "db-b", Port: e.port}.bytes())
	e.recheck <- struct{}{}
	e.waitApplied(4, 10*time.Second)
}

// TestRunPollsWhenSettleExceedsInterval: polls are not changes, so a
// settle delay longer than the poll interval must not keep pushing the
// check back for ever: a change is applied exactly settle after the poll
// that saw it.
func TestRunPollsWhenSettleExceedsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, settle = 50 * time.Millisecond, 300 * time.Millisecond
		store := &objectStore{}
		e := newRunEnv(t, runSettings{
			Source:       func(*runEnv) nodeagent.TopologySource { return store.source() },
			PollInterval: interval,
			Settle:       settle,
			InMemory:     true,
		})
		store.put(document{Serial: 1, Port: e.port}.bytes())
		e.start()
		synctest.Wait()
		e.checkApplied(1)
		store.put(document{Serial: 2, Master: "db-b", Port: e.port}.bytes())
		before := len(store.fetchTimes())
		untilNextPoll(store, interval) // sees the change
		times := store.fetchTimes()
		if len(times) != before+1 {
			t.Fatalf("%d fetches by the next poll, want 1", len(times)-before)
		}
		time.Sleep(time.Until(times[before].Add(settle - time.Nanosecond)))
		synctest.Wait()
		if n := len(store.fetchTimes()); n != before+1 {
			t.Fatalf("%d fetches before the settle delay ended, want none: a poll while a change settles has nothing to add", n-before-1)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		e.checkApplied(2)
		times = store.fetchTimes()
		if len(times) != before+2 {
			t.Fatalf("%d fetches, want 2: the poll that saw the change and the check after settle", len(times)-before)
		}
		if got := times[before+1].Sub(times[before]); got != settle {
			t.Errorf("applied %s after the poll that saw the change, want the settle delay %s", got, settle)
		}
	})
}

// TestRunPollsEveryIntervalDespiteSplay: the splay delays applies, not
// polls: an idle node does one conditional GET per interval even when
// settle and splay are longer than the interval.
func TestRunPollsEveryIntervalDespiteSplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 50 * time.Millisecond
		store := &objectStore{}
		e := newRunEnv(t, runSettings{
			Source:       func(*runEnv) nodeagent.TopologySource { return store.source() },
			PollInterval: interval,
			Settle:       4 * interval,
			Splay:        20 * interval,
			InMemory:     true,
		})
		store.put(document{Serial: 1, Port: e.port}.bytes())
		start := time.Now()
		e.start()
		synctest.Wait()
		e.checkApplied(1)
		const window = 40 * interval
		time.Sleep(window)
		synctest.Wait()
		times := store.fetchTimes()
		_, conditional, notModified := store.counts()
		lo, hi := pollBounds(window, interval)
		if conditional < lo || conditional > hi || conditional != len(times)-1 {
			t.Errorf("%d conditional GETs in %s at a %s ±10%% interval, want %d to %d", conditional, window, interval, lo, hi)
		}
		checkPollGaps(t, start, times[1:], interval)
		if notModified != conditional {
			t.Errorf("%d of %d conditional GETs not modified, want all", notModified, conditional)
		}
		if got := e.applies("ok"); got != 1 {
			t.Errorf("applies ok = %d while idle, want 1", got)
		}
	})
}

// checkApplied fails the test unless serial is applied and the node ready
// now: in a bubble, after synctest.Wait, there is nothing to wait for.
func (e *runEnv) checkApplied(serial int64) {
	e.t.Helper()
	st := e.agent.Readiness.Snapshot()
	if st.Serial != serial || !st.Ready || e.metric("nodeagent_topology_serial_applied") != float64(serial) {
		e.t.Fatalf("serial %d not applied and ready: status serial %d ready %v (%s), metric %v",
			serial, st.Serial, st.Ready, st.LastError, e.metric("nodeagent_topology_serial_applied"))
	}
}
