//go:build integration

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/test/harness"
)

// rolloutFleetSize is the number of light front agents of the rollout
// tests: enough for four waves to differ.
const rolloutFleetSize = 20

var topologyURL = "s3://" + topologyBucket + "/" + topologyKey

// appliedSerial is the serial of the node's last successful apply, from
// its status file; 0 when there is none yet.
func appliedSerial(root string) int64 {
	b, err := os.ReadFile(filepath.Join(root, "var/lib/nodeagent/status.json"))
	if err != nil {
		return 0
	}
	var st struct {
		Serial int64 `json:"serial"`
	}
	if json.Unmarshal(b, &st) != nil {
		return 0
	}
	return st.Serial
}

// readRollout reads the rollout object of serial from MinIO; nil when
// there is none.
func readRollout(t testing.TB, m *harness.MinIO, serial int64) *rollout.Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(topologyBucket), Key: aws.String(rollout.Key(topologyKey, serial))})
	if err != nil {
		return nil
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rollout.Decode(b, "rollout object")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// operatorProc is a running operator command (`topology publish --rollout`,
// `rollout resume`).
type operatorProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startOperator starts `nodeagent args…` against m as an operator off EC2.
func startOperator(t testing.TB, m *harness.MinIO, args ...string) *operatorProc {
	t.Helper()
	p := &operatorProc{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bins.nodeagent, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1"}, m.Env()...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *operatorProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// wait waits (bounded) for the command to exit and returns its code.
func (p *operatorProc) wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		p.kill()
		t.Fatalf("operator command still running after %s:\n%s", limit, p.out.String())
	}
	return -1
}

// documentFile writes the light fleet's document of serial (with its
// current workers) to a file for `topology publish`.
func (f *lightFleet) documentFile(t testing.TB, serial int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), fmt.Sprintf("topology-%d.json", serial))
	if err := os.WriteFile(p, f.document(serial), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waveSampler samples, until stopped, every node's applied serial and then
// the rollout object of serial, and records any node on serial whose wave
// the rollout had not reached, and any moment more nodes were on serial
// than the waves reached hold.
type waveSampler struct {
	stop, done chan struct{}
	mu         sync.Mutex
	bad        []string
	samples    int
	waves      map[int]bool // the waves seen
	maxOn      int
}

func sampleWaves(t testing.TB, f *lightFleet, nodes func() []*lightNode, serial int64) *waveSampler {
	s := &waveSampler{stop: make(chan struct{}), done: make(chan struct{}), waves: map[int]bool{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			ns := nodes()
			on := map[string]bool{}
			for _, n := range ns {
				if appliedSerial(n.root) >= serial {
					on[n.instanceID] = true
				}
			}
			// Read after the nodes: the wave can only have grown since.
			r := readRollout(t, f.minio, serial)
			s.mu.Lock()
			s.samples++
			if r == nil {
				if len(on) > 0 {
					s.bad = append(s.bad, fmt.Sprintf("%d node(s) on serial %d without its rollout object", len(on), serial))
				}
				s.mu.Unlock()
				continue
			}
			reached := r.Wave
			if r.State == rollout.StateDone {
				reached = len(r.Waves) - 1
			}
			s.waves[reached] = true
			allowed := 0
			for _, n := range ns {
				w := rollout.WaveOf(n.instanceID, serial, r.Waves)
				if w <= reached {
					allowed++
				} else if on[n.instanceID] {
					s.bad = append(s.bad, fmt.Sprintf("%s (wave %d) on serial %d while the rollout was at wave %d (%s)", n.name, w+1, serial, reached+1, r.State))
				}
			}
			if len(on) > allowed {
				s.bad = append(s.bad, fmt.Sprintf("%d nodes on serial %d, more than the %d the waves up to %d hold", len(on), serial, allowed, reached+1))
			}
			s.maxOn = max(s.maxOn, len(on))
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *waveSampler) end() *waveSampler {
	close(s.stop)
	<-s.done
	return s
}

// frontOutside is an instance id (from the ids after the fleet's) whose
// wave for serial is after the first.
func frontOutside(serial int64, waves []int, from int) (string, int) {
	for i := from; ; i++ {
		if id := frontID(i); rollout.WaveOf(id, serial, waves) > 0 {
			return id, i
		}
	}
}

// TestRollout runs a staged rollout on 20 light agents (front nodes: their
// Apache files are written and checked with apache2ctl -t; no services
// run) against MinIO, through the operator's commands:
//   - a good change rolls through 4 waves with a short bake, sampled
//     continuously: no node applies it before its wave; it ends done;
//   - the operator's command killed mid-rollout: nothing advances, `fleet
//     status` calls it unattended; a node launched meanwhile outside the
//     current wave boots to the previous serial and is ready; `rollout
//     resume` completes it;
//   - a serial published all at once during a rollout (as `topology
//     failover` publishes) supersedes it: every node applies it.
func TestRollout(t *testing.T) {
	f := newLightFleet(t)
	f.publish(1)
	var mu sync.Mutex
	var fronts []*lightNode
	for i := 1; i <= rolloutFleetSize; i++ {
		az := []string{"us-east-1a", "us-east-1b", "us-east-1c"}[i%3]
		fronts = append(fronts, f.start(fmt.Sprintf("front-%d", i), "front", az, frontID(i), fmt.Sprintf("127.0.40.%d", i), ""))
	}
	nodes := func() []*lightNode { mu.Lock(); defer mu.Unlock(); return slices.Clone(fronts) }
	allOn := func(serial int64) bool {
		for _, n := range nodes() {
			if appliedSerial(n.root) != serial || !agentReady(n) {
				return false
			}
		}
		return true
	}
	waitFor(t, 90*time.Second, "every agent ready on serial 1", func() bool { return allOn(1) })
	// The operator reads live nodes from their reports.
	waitFor(t, 30*time.Second, "a report from every agent", func() bool {
		s := f.status(t)
		return s.Summary.Live == rolloutFleetSize
	})

	follow := []string{"--report-interval", "1s", "--every", "250ms", "--heartbeat", "500ms"}

	t.Run("a good change rolls through 4 waves", func(t *testing.T) {
		f.workers = 48
		waves := []int{20, 40, 70, 100}
		perWave := make([]int, len(waves))
		for _, n := range nodes() {
			perWave[rollout.WaveOf(n.instanceID, 2, waves)]++
		}
		if slices.Contains(perWave, 0) {
			t.Fatalf("nodes per wave %v: an empty wave proves nothing; pick other shares", perWave)
		}
		s := sampleWaves(t, f, nodes, 2)
		op := startOperator(t, f.minio, slices.Concat([]string{"topology", "publish", f.documentFile(t, 2), "--to", topologyURL,
			"--rollout", "waves", "--waves", "20,40,70,100", "--bake", "2s", "--max-failed", "0"}, follow)...)
		code := op.wait(t, 3*time.Minute)
		s.end()
		if code != 0 {
			t.Fatalf("publish --rollout waves: exit %d\n%s", code, op.out.String())
		}
		for _, b := range s.bad {
			t.Error(b)
		}
		for w := range waves {
			if !s.waves[w] {
				t.Errorf("wave %d was never seen (samples %d)", w+1, s.samples)
			}
		}
		r := readRollout(t, f.minio, 2)
		if r == nil || r.State != rollout.StateDone {
			t.Fatalf("rollout object %+v, want done", r)
		}
		if !allOn(2) {
			t.Errorf("not every node is ready on serial 2 after done")
		}
		for _, want := range []string{"wave 2 of 4", "wave 4 of 4", "rollout of serial 2 done"} {
			if !strings.Contains(op.out.String(), want) {
				t.Errorf("the command's output lacks %q:\n%s", want, op.out.String())
			}
		}
		if s.samples < 10 {
			t.Errorf("only %d samples", s.samples)
		}
		t.Logf("nodes per wave %v; %d samples; at most %d nodes on serial 2 (done included)", perWave, s.samples, s.maxOn)
	})

	t.Run("killed operator: nothing advances; a new node boots to the previous serial; resume completes", func(t *testing.T) {
		f.workers = 64
		waves := []int{25, 50, 100}
		s := sampleWaves(t, f, nodes, 3)
		op := startOperator(t, f.minio, slices.Concat([]string{"topology", "publish", f.documentFile(t, 3), "--to", topologyURL,
			"--rollout", "waves", "--waves", "25,50,100", "--bake", "3s", "--max-failed", "0"}, follow)...)
		waitFor(t, 60*time.Second, "wave 1 of serial 3 complete", func() bool {
			r := readRollout(t, f.minio, 3)
			return r != nil && !r.WaveComplete.IsZero()
		})
		op.kill()
		before := readRollout(t, f.minio, 3)
		if before.Wave != 0 || before.State != rollout.StateRolling {
			t.Fatalf("rollout at wave %d %s when the operator was killed", before.Wave+1, before.State)
		}
		// A node launched now, outside wave 1: it boots to serial 2.
		id, i := frontOutside(3, waves, rolloutFleetSize+1)
		late := f.start(fmt.Sprintf("front-%d", i), "front", "us-east-1a", id, fmt.Sprintf("127.0.40.%d", i), "")
		waitFor(t, 60*time.Second, "the late node ready on serial 2", func() bool { return appliedSerial(late.root) == 2 && agentReady(late) })
		mu.Lock()
		fronts = append(fronts, late)
		mu.Unlock()
		if !strings.Contains(late.logTail(), "booting to the rollout's previous serial") {
			t.Errorf("the late node's log does not say it booted to the previous serial:\n%s", late.logTail())
		}
		// Well past the bake and the heartbeat's staleness: still wave 1.
		time.Sleep(5 * time.Second)
		after := readRollout(t, f.minio, 3)
		if after.Wave != 0 || after.State != rollout.StateRolling || !after.Heartbeat.Equal(before.Heartbeat) {
			t.Fatalf("the rollout moved without its operator: wave %d %s heartbeat %v -> %v", after.Wave+1, after.State, before.Heartbeat, after.Heartbeat)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code, out, errs := f.cli(ctx, "fleet", "status", "--topology", topologyURL, "--report-interval", "1s")
		cancel()
		if code != 0 || !strings.Contains(out, "UNATTENDED") || !strings.Contains(out, "rollout of serial 3 (after 2): ROLLING, wave 1 of 3") {
			t.Errorf("fleet status does not show the unattended rollout (exit %d):\n%s%s", code, out, errs)
		}
		if st := f.status(t); st.Rollout == nil || !st.Rollout.Unattended || st.Rollout.Serial != 3 || len(st.Rollout.Tally) != 3 {
			t.Errorf("fleet status --json rollout %+v", st.Rollout)
		}
		res := startOperator(t, f.minio, slices.Concat([]string{"rollout", "resume", "--topology", topologyURL}, follow)...)
		if code := res.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("rollout resume: exit %d\n%s", code, res.out.String())
		}
		s.end()
		for _, b := range s.bad {
			t.Error(b)
		}
		if r := readRollout(t, f.minio, 3); r == nil || r.State != rollout.StateDone {
			t.Fatalf("after resume: %+v", r)
		}
		waitFor(t, 30*time.Second, "every node, the late one included, ready on serial 3", func() bool { return allOn(3) })
	})

	t.Run("a serial published all at once supersedes a rollout", func(t *testing.T) {
		f.workers = 40
		op := startOperator(t, f.minio, "topology", "publish", f.documentFile(t, 4), "--to", topologyURL,
			"--rollout", "waves", "--waves", "10,100", "--bake", "1h", "--follow=false")
		if code := op.wait(t, time.Minute); code != 0 {
			t.Fatalf("publish --rollout waves --follow=false: exit %d\n%s", code, op.out.String())
		}
		// Held back for a few polls: the nodes of wave 2 keep serial 3.
		time.Sleep(3 * time.Second)
		held := 0
		for _, n := range nodes() {
			if rollout.WaveOf(n.instanceID, 4, []int{10, 100}) > 0 {
				if appliedSerial(n.root) != 3 {
					t.Errorf("%s (wave 2) applied serial %d", n.name, appliedSerial(n.root))
				}
				held++
			}
		}
		if held == 0 {
			t.Fatal("no node outside wave 1: the test proves nothing")
		}
		f.workers = 36
		op = startOperator(t, f.minio, "topology", "publish", f.documentFile(t, 5), "--to", topologyURL)
		if code := op.wait(t, time.Minute); code != 0 {
			t.Fatalf("publish serial 5: exit %d\n%s", code, op.out.String())
		}
		waitFor(t, 30*time.Second, "every node ready on serial 5", func() bool { return allOn(5) })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if code, _, errs := f.cli(ctx, "rollout", "resume", "--topology", topologyURL); code != 1 || !strings.Contains(errs, "published all at once") {
			t.Errorf("rollout resume on a serial published all at once: exit %d: %s", code, errs)
		}
	})
}
