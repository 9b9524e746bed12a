//go:build integration

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
)

// waitReportsURL is where the agents of TestFailoverWait write their
// reports.
const waitReportsURL = "s3://" + topologyBucket + "/reports/"

// withReports is a topology document with fleet.reports set.
func (f *fleet) withReports(body []byte) []byte {
	f.t.Helper()
	var t nodeagent.Topology
	if err := json.Unmarshal(body, &t); err != nil {
		f.t.Fatal(err)
	}
	t.Fleet = &nodeagent.Fleet{Reports: waitReportsURL}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// operator runs `nodeagent ARGS…` as an operator off EC2 would: MinIO's
// credentials and region, no instance metadata.
func (f *fleet) operator(t *testing.T, limit time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.nodeagent, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1"}, f.minio.Env()...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("nodeagent %s: %v\n%s%s", strings.Join(args, " "), err, &out, &errb)
	}
	return code, out.String(), errb.String()
}

// TestFailoverWait: `nodeagent topology failover --wait` on a fleet of
// real agents that report to MinIO. The failover is published, every
// agent applies it (its /etc/hosts, app config and the page Apache serves
// show the new master), and the command prints each node as its report
// says it applied the serial, then exits 0. With one agent frozen
// (SIGSTOP: its last report is fresh, so it is live, but it applies
// nothing), the next failover's --wait times out, exits 1 and names it.
func TestFailoverWait(t *testing.T) {
	o := fleetOptions{Web: 3, Cache: 2, PollInterval: time.Second, Splay: time.Second, Settle: 200 * time.Millisecond, DrainTime: 2 * time.Second}
	f := newFleet(t, o)
	f.publish(f.withReports(f.topology(1, "db-a")))
	f.startAll()
	f.waitReady(3 * time.Minute)
	t.Cleanup(f.stopAll)
	topo := "--topology=s3://" + topologyBucket + "/" + topologyKey

	t.Run("every node applies the failover and the command says so", func(t *testing.T) {
		code, out, errs := f.operator(t, 2*time.Minute, "topology", "failover", "--alias", "dbserver", "--to", "db-b",
			"--old-master-as-replica", topo, "--wait", "--timeout", "90s")
		if code != 0 {
			t.Fatalf("failover --wait: exit %d\n%s\n%s", code, out, errs)
		}
		t.Logf("failover --wait:\n%s", out)
		for _, n := range f.all() {
			if !strings.Contains(out, n.instanceID) || !regexpLine(out, n.instanceID, "applied serial 2 at") {
				t.Errorf("output does not say %s (%s) applied serial 2", n.name, n.instanceID)
			}
			if !n.converged(dbBIP) {
				t.Errorf("%s: hosts %q app %q served %q, want master %s", n.name, n.hostsMaster(), n.appMaster(), n.servedMaster(), dbBIP)
			}
		}
		if want := "every live node (5) applied serial 2"; !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	})

	t.Run("a frozen node is named when --wait times out", func(t *testing.T) {
		frozen := f.byRole("web")[0]
		if err := syscall.Kill(frozen.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(frozen.cmd.Process.Pid, syscall.SIGCONT)
		code, out, errs := f.operator(t, 2*time.Minute, "topology", "failover", "--alias", "dbserver", "--to", "db-a",
			"--old-master-as-replica", topo, "--wait", "--timeout", "20s")
		if code != 1 || !strings.Contains(out, "1 of 5 live nodes have not applied serial 3") ||
			!regexpLine(out, frozen.instanceID, "serial 2 applied") || !strings.HasSuffix(strings.TrimSpace(errs), frozen.instanceID) {
			t.Fatalf("failover --wait with %s frozen: exit %d\n%s\n%s", frozen.name, code, out, errs)
		}
		for _, n := range f.all() {
			if n != frozen && !regexpLine(out, n.instanceID, "applied serial 3 at") {
				t.Errorf("output does not say %s applied serial 3", n.name)
			}
		}
	})
}

// regexpLine says whether a line of out contains both a and b.
func regexpLine(out, a, b string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, a) && strings.Contains(l, b) {
			return true
		}
	}
	return false
}
