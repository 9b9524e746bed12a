//go:build integration

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	fleetpkg "github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/test/harness"
)

// The reports fleet: light nodes (no services run; the "front" role's
// Apache configuration is written and checked with apache2ctl -t) that
// write reports to MinIO every reportInterval.
const (
	reportsBucket  = "fleet"
	reportsPrefix  = "reports/"
	reportsURL     = "s3://" + reportsBucket + "/" + reportsPrefix
	frontGroup     = "front"
	reportInterval = time.Second
)

// lightFleet is MinIO, a topology in it, and light agents.
type lightFleet struct {
	t          testing.TB
	minio      *harness.MinIO
	apachePort int
	workers    int // apache.max_request_workers: changing it changes every front node's Apache files
	// every is the agents' --report-interval (default reportInterval).
	every time.Duration
	// splay is the agents' --splay (default 0s).
	splay time.Duration
	mu    sync.Mutex
	nodes []*lightNode
}

type lightNode struct {
	name       string // the node name when listed, else front-N
	role       string
	az         string
	instanceID string
	ip         string
	root       string
	log        string
	cmd        *exec.Cmd
	exited     chan struct{}
	// terminating makes the node's metadata say its target lifecycle state
	// is Terminated (see terminate).
	terminating atomic.Bool
}

// terminate makes the node's instance metadata say the instance is being
// terminated, as Auto Scaling does before it stops the instance: a SIGTERM
// after this drains the node (a SIGTERM alone is a plain stop).
func (n *lightNode) terminate() { n.terminating.Store(true) }

// lifecycleSwitch is the node's IMDS as the agent sees it: the mock, except
// that the target lifecycle state says Terminated once n.terminate was
// called. (The mock can only turn Terminated after a fixed delay.)
func lifecycleSwitch(t testing.TB, n *lightNode, imds *harness.IMDS) string {
	t.Helper()
	target, err := url.Parse(imds.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.terminating.Load() && r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/autoscaling/target-lifecycle-state" {
			fmt.Fprint(w, "Terminated")
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func frontID(i int) string { return fmt.Sprintf("i-0f40%013x", i) }
func dbID(i int) string    { return fmt.Sprintf("i-0db0%013x", i) }

func newLightFleet(t testing.TB) *lightFleet {
	f := &lightFleet{t: t, minio: harness.StartMinIO(t), apachePort: harness.FreePort(t), workers: 32, every: reportInterval}
	return f
}

// document is the fleet's topology: db-a, db-b (agents) and db-c (no
// agent: missing) listed; front nodes found through their group.
func (f *lightFleet) document(serial int64) []byte {
	t := nodeagent.Topology{
		Schema: 1, Serial: serial, Domain: "internal",
		Nodes: map[string]nodeagent.Node{
			"db-a": {IP: "127.0.41.1", Role: "db", AZ: "us-east-1a", InstanceID: dbID(1)},
			"db-b": {IP: "127.0.41.2", Role: "db", AZ: "us-east-1b", InstanceID: dbID(2)},
			"db-c": {IP: "127.0.41.3", Role: "db", AZ: "us-east-1b", InstanceID: dbID(3)},
		},
		Aliases: map[string]string{"dbserver": "db-a"},
		Groups:  map[string]nodeagent.Group{frontGroup: {Role: "front"}},
		Roles: map[string]nodeagent.Role{
			"front": {Services: []string{nodeagent.ServiceApache}},
			"db":    {Services: []string{}},
		},
		Health: nodeagent.Health{Path: healthPath},
		Apache: nodeagent.ApacheSettings{Port: f.apachePort, MaxRequestWorkers: f.workers, Bind: nodeagent.BindPrivate},
		Fleet:  &nodeagent.Fleet{Reports: reportsURL},
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *lightFleet) publish(serial int64) {
	f.minio.Put(f.t, topologyBucket, topologyKey, f.document(serial))
}

// start starts one light agent. topology "" means the fleet's s3://
// document; env is added last (it can override the S3 credentials).
func (f *lightFleet) start(name, role, az, instanceID, ip, topology string, env ...string) *lightNode {
	t := f.t
	t.Helper()
	n := &lightNode{name: name, role: role, az: az, instanceID: instanceID, ip: ip}
	ic := harness.IMDSConfig{InstanceID: instanceID, PrivateIP: ip, AZ: az, InstanceType: "m5.large"}
	if role == "front" {
		ic.Group = frontGroup
	}
	imds := harness.StartIMDS(t, ic)
	n.root = harness.NodeRoot(t)
	n.log = filepath.Join(t.TempDir(), "agent.log")
	if topology == "" {
		topology = "s3://" + topologyBucket + "/" + topologyKey
	}
	logFile, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bins.nodeagent, "run",
		"--config", filepath.Join(n.root, "no-config.json"),
		"--topology", topology,
		"--root", n.root, "--service-root", n.root,
		"--listen", "127.0.0.1:0",
		"--services", "none",
		"--log-format", "json",
		"--poll-interval", "1s", "--splay", f.splay.String(), "--settle", "0s", "--drain-time", "0s",
		"--report-interval", f.every.String(),
	)
	n.cmd.Env = slices.Concat(os.Environ(), imds.Env(), f.minio.Env(),
		[]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + lifecycleSwitch(t, n, imds)}, env)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := os.WriteFile(filepath.Join(n.root, "no-config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start agent %s: %v", name, err)
	}
	n.exited = make(chan struct{})
	go func() { _ = n.cmd.Wait(); logFile.Close(); close(n.exited) }()
	t.Cleanup(func() { n.signal(syscall.SIGKILL) })
	f.mu.Lock()
	f.nodes = append(f.nodes, n)
	f.mu.Unlock()
	return n
}

// signal sends sig to the agent and waits (bounded) for it to exit.
func (n *lightNode) signal(sig syscall.Signal) {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = syscall.Kill(n.cmd.Process.Pid, sig)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
	}
}

func (n *lightNode) logTail() string {
	b, _ := os.ReadFile(n.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// cli runs `nodeagent args…` against the fleet's MinIO.
func (f *lightFleet) cli(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	cmd := exec.CommandContext(ctx, bins.nodeagent, args...)
	cmd.Env = slices.Concat(os.Environ(), f.minio.Env())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		f.t.Fatalf("nodeagent %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// status runs fleet status --json and decodes the snapshot.
func (f *lightFleet) status(t testing.TB) *fleetpkg.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, out, errs := f.cli(ctx, "fleet", "status", "--json", "--topology", "s3://"+topologyBucket+"/"+topologyKey, "--report-interval", reportInterval.String())
	if code != 0 {
		t.Fatalf("fleet status --json: exit %d\n%s", code, errs)
	}
	var s fleetpkg.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("fleet status --json: %v\n%s", err, out)
	}
	return &s
}

func row(s *fleetpkg.Snapshot, id string) *fleetpkg.Node {
	for i := range s.Nodes {
		if s.Nodes[i].ID == id {
			return &s.Nodes[i]
		}
	}
	return nil
}

// TestFleetReports runs 12 agents against MinIO: 8 front nodes (6 in
// us-east-1a, 2 in us-east-1b: an imbalance), db-a and db-b, one front
// node whose credentials may not write reports (403) and one whose
// reports bucket does not exist (404). db-c is listed without an agent.
func TestFleetReports(t *testing.T) {
	f := newLightFleet(t)
	f.publish(1)
	var fronts []*lightNode
	for i := 1; i <= 8; i++ {
		az := "us-east-1a"
		if i > 6 {
			az = "us-east-1b"
		}
		fronts = append(fronts, f.start(fmt.Sprintf("front-%d", i), "front", az, frontID(i), fmt.Sprintf("127.0.40.%d", i), ""))
	}
	f.start("db-a", "db", "us-east-1a", dbID(1), "127.0.41.1", "")
	f.start("db-b", "db", "us-east-1b", dbID(2), "127.0.41.2", "")
	// The 403 node reads the same document from a file and signs its
	// report PUTs with a key MinIO does not know: every PUT is refused.
	docFile := filepath.Join(t.TempDir(), "topology.json")
	if err := os.WriteFile(docFile, f.document(1), 0o644); err != nil {
		t.Fatal(err)
	}
	denied := f.start("front-9", "front", "us-east-1b", frontID(9), "127.0.40.9", "file://"+docFile,
		"AWS_ACCESS_KEY_ID=not-a-key", "AWS_SECRET_ACCESS_KEY=not-a-secret")
	// The no-bucket node's document names a reports bucket that does not
	// exist (MinIO answers 404 NoSuchBucket).
	var doc map[string]any
	if err := json.Unmarshal(f.document(1), &doc); err != nil {
		t.Fatal(err)
	}
	doc["fleet"] = map[string]any{"reports": "s3://no-such-bucket/reports/"}
	noBucketDoc, _ := json.Marshal(doc)
	noBucketFile := filepath.Join(t.TempDir(), "topology.json")
	if err := os.WriteFile(noBucketFile, noBucketDoc, 0o644); err != nil {
		t.Fatal(err)
	}
	noBucket := f.start("front-10", "front", "us-east-1b", frontID(10), "127.0.40.10", "file://"+noBucketFile)
	reporting := slices.Concat(fronts, []*lightNode{f.nodes[8], f.nodes[9]})

	t.Run("every agent's report appears", func(t *testing.T) {
		waitFor(t, 60*time.Second, "a report from each of the 10 agents, ready on serial 1", func() bool {
			s := f.status(t)
			for _, n := range reporting {
				r := row(s, n.instanceID)
				if r == nil || r.Report == nil || !r.Report.Ready || r.Report.SerialApplied != 1 {
					return false
				}
			}
			return true
		})
	})

	t.Run("fleet status shows every node and the AZ summary", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, out, errs := f.cli(ctx, "fleet", "status", "--topology", "s3://"+topologyBucket+"/"+topologyKey, "--report-interval", "1s")
		if code != 0 {
			t.Fatalf("fleet status: exit %d\n%s", code, errs)
		}
		for _, n := range reporting {
			if !strings.Contains(out, n.instanceID) {
				t.Errorf("fleet status does not list %s (%s):\n%s", n.name, n.instanceID, out)
			}
		}
		for _, want := range []string{"db-a", "db-b", "db-c", "missing", "IMBALANCED: 6 in us-east-1a, 2 in us-east-1b",
			"ready 10/10", "converged: every live node runs serial 1"} {
			if !strings.Contains(out, want) {
				t.Errorf("fleet status lacks %q:\n%s", want, out)
			}
		}
		s := f.status(t)
		if s.Summary.Live != 10 || !slices.Equal(s.Summary.Imbalanced, []string{"front"}) || s.Summary.Missing != 1 {
			t.Errorf("summary %+v", s.Summary)
		}
		if r := row(s, dbID(1)); r == nil || r.Name != "db-a" || r.AZ != "us-east-1a" || r.Report.AgentVersion == "" || r.Report.LastApply == nil ||
			r.Report.LastApply.ChangedFiles == 0 || len(r.Report.LastApply.Changes) == 0 {
			t.Errorf("db-a row %+v", r)
		}
	})

	t.Run("a node that may not write reports serves and is ready", func(t *testing.T) {
		waitFor(t, 30*time.Second, "front-9 ready with failed report writes counted", func() bool {
			return agentReady(denied) && strings.Contains(denied.logTail(), "node report not written")
		})
		if !strings.Contains(denied.logTail(), "403") || !strings.Contains(denied.logTail(), "allow s3:PutObject on arn:aws:s3:::fleet/reports/*") {
			t.Errorf("front-9's log does not say the report PUT was refused (403) and what to allow:\n%s", denied.logTail())
		}
		if s := f.status(t); row(s, frontID(9)) != nil {
			t.Errorf("a report of front-9 appeared although its PUTs are refused")
		}
	})

	t.Run("a node whose reports bucket does not exist serves and is ready", func(t *testing.T) {
		waitFor(t, 30*time.Second, "front-10 ready with failed report writes logged", func() bool {
			return agentReady(noBucket) && strings.Contains(noBucket.logTail(), "node report not written")
		})
		if !strings.Contains(noBucket.logTail(), `bucket \"no-such-bucket\" does not exist`) {
			t.Errorf("front-10's log does not say the reports bucket is missing:\n%s", noBucket.logTail())
		}
	})

	t.Run("corrupt and foreign reports are shown, never fatal", func(t *testing.T) {
		other, _ := report.Encode(&report.Report{Schema: 1, InstanceID: "i-0someoneelse"})
		for key, body := range map[string]string{
			"i-0corrupt.json": `{"schema": 1, "instance_id": "i-0corr`,
			"i-0foreign.json": string(other),
			"i-0future.json":  `{"schema": 2, "instance_id": "i-0future"}`,
			"README.txt":      "not a report",
		} {
			f.minio.Put(t, reportsBucket, reportsPrefix+key, []byte(body))
		}
		s := f.status(t)
		kinds := map[string]string{}
		for _, b := range s.BadReports {
			kinds[b.Key] = b.Kind
		}
		want := map[string]string{reportsPrefix + "i-0corrupt.json": "corrupt", reportsPrefix + "i-0foreign.json": "foreign",
			reportsPrefix + "i-0future.json": "schema", reportsPrefix + "README.txt": "foreign"}
		for k, v := range want {
			if kinds[k] != v {
				t.Errorf("bad report %s: kind %q, want %q (all: %v)", k, kinds[k], v, kinds)
			}
		}
		if s.Summary.Live != 10 {
			t.Errorf("bad reports changed the live count: %d", s.Summary.Live)
		}
	})

	t.Run("the control panel in a browser", func(t *testing.T) {
		testPanel(t, f, fronts[0])
	})

	t.Run("wait-converged names a node held back", func(t *testing.T) {
		held := fronts[1]
		broken := filepath.Join(held.root, "etc/apache2/conf-enabled/zz-reports-test.conf")
		if err := os.WriteFile(broken, []byte("ThisIsNotAnApacheDirective on\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f.workers = 100 // 32 renders as 50 (rounded up to 25s), 100 as 100
		f.publish(2)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		code, out, errs := f.cli(ctx, "fleet", "status", "--wait-converged", "--timeout", "15s", "--every", "1s",
			"--topology", "s3://"+topologyBucket+"/"+topologyKey, "--report-interval", "1s")
		if code != 1 {
			t.Fatalf("fleet status --wait-converged: exit %d, want 1\n%s\n%s", code, out, errs)
		}
		if !strings.Contains(errs, "laggards: "+held.instanceID+": serial 1 of 2") || !strings.Contains(errs, "ThisIsNotAnApacheDirective") {
			t.Errorf("--wait-converged does not name %s with its reason:\n%s", held.name, errs)
		}
		s := f.status(t)
		for _, n := range reporting {
			r := row(s, n.instanceID)
			switch {
			case n == fronts[0]: // drained by the panel test
			case n == held:
				if r.State != fleetpkg.StateFailing || !slices.Contains(r.Flags, fleetpkg.StateBehind) || !r.Report.Ready {
					t.Errorf("held-back node: state %s flags %v ready %v, want failing, behind, still ready", r.State, r.Flags, r.Report.Ready)
				}
			default:
				if !r.Converged {
					t.Errorf("%s not converged on serial 2: %+v", n.name, r)
				}
			}
		}

		// Fixed: the gate opens.
		if err := os.Remove(broken); err != nil {
			t.Fatal(err)
		}
		f.publish(3)
		code, out, errs = f.cli(ctx, "fleet", "status", "--wait-converged", "--timeout", "30s", "--every", "1s",
			"--topology", "s3://"+topologyBucket+"/"+topologyKey, "--report-interval", "1s")
		if code != 0 {
			t.Fatalf("fleet status --wait-converged after the fix: exit %d\n%s\n%s", code, out, errs)
		}
	})

	t.Run("a failover published with --wait reaches every node", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		code, out, errs := f.cli(ctx, "topology", "failover", "--alias", "dbserver", "--to", "db-b",
			"--topology", "s3://"+topologyBucket+"/"+topologyKey, "--wait", "--timeout", "60s")
		if code != 0 {
			t.Fatalf("topology failover --wait: exit %d\n%s\n%s", code, out, errs)
		}
		s := f.status(t)
		if !strings.Contains(out, fmt.Sprintf("every live node (%d) applied serial %d", s.Summary.Live, s.Serial)) {
			t.Errorf("failover --wait does not report every live node (%d) on serial %d:\n%s", s.Summary.Live, s.Serial, out)
		}
		for _, n := range reporting {
			if n == fronts[0] { // drained by the panel test
				continue
			}
			if !strings.Contains(out, n.instanceID) && !strings.Contains(out, n.name) {
				t.Errorf("failover --wait output does not name %s:\n%s", n.name, out)
			}
			if n.role != "front" {
				continue
			}
			hosts, err := os.ReadFile(filepath.Join(n.root, "etc/hosts"))
			if err != nil || !strings.Contains(string(hosts), "127.0.41.2\tdbserver ") {
				t.Errorf("%s: /etc/hosts does not send dbserver to db-b (%v):\n%s", n.name, err, hosts)
			}
		}
	})

	t.Run("a stopped agent turns stale", func(t *testing.T) {
		dead := fronts[2]
		dead.signal(syscall.SIGKILL) // no drain, no last report: a crashed node
		waitFor(t, 20*time.Second, "the killed agent marked stale", func() bool {
			r := row(f.status(t), dead.instanceID)
			return r != nil && r.State == fleetpkg.StateStale && !r.Live
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, out, _ := f.cli(ctx, "fleet", "status", "--topology", "s3://"+topologyBucket+"/"+topologyKey, "--report-interval", "1s")
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, dead.instanceID) && !strings.Contains(line, "stale") {
				t.Errorf("the table does not mark the stopped agent stale: %s", line)
			}
		}
	})
}

// agentReady reads the agent's readiness from its status file, and
// checks the ELB health file agrees.
func agentReady(n *lightNode) bool {
	b, err := os.ReadFile(filepath.Join(n.root, "var/lib/nodeagent/status.json"))
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(n.root, "var/lib/nodeagent/health/ready")); err != nil {
		return false
	}
	var st struct {
		Ready bool `json:"ready"`
	}
	return json.Unmarshal(b, &st) == nil && st.Ready
}
