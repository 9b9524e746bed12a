package fleet_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/report"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func testTopology() *nodeagent.Topology {
	return &nodeagent.Topology{
		Schema: 1, Serial: 42,
		Nodes: map[string]nodeagent.Node{
			"db-a":  {IP: "10.0.1.10", Role: "db", AZ: "az-a", InstanceID: "i-db-a"},
			"db-b":  {IP: "10.0.2.10", Role: "db", AZ: "az-b", InstanceID: "i-db-b"},
			"cache": {IP: "10.0.1.20", Role: "cache", AZ: "az-a"},
		},
		Groups: map[string]nodeagent.Group{"shop-web": {Role: "web"}},
		Roles: map[string]nodeagent.Role{
			"web": {Products: []string{"shop"}}, "db": {}, "cache": {},
		},
		Fleet: &nodeagent.Fleet{Reports: "s3://fleet/reports/"},
	}
}

func entry(id string, age time.Duration, f func(*report.Report)) report.Entry {
	r := &report.Report{Schema: 1, InstanceID: id, Role: "web", Group: "shop-web", AZ: "az-a", PrivateIP: "10.0.1.1",
		Products: []string{"shop"}, SerialApplied: 42, SerialSeen: 42, Ready: true, Reason: "ok",
		LastApply: &report.Apply{Result: report.ResultOK, At: now.Add(-age)}, ReportedAt: now.Add(-age)}
	if f != nil {
		f(r)
	}
	return report.Entry{Key: "reports/" + id + ".json", InstanceID: id, LastModified: now.Add(-age), Report: r}
}

func node(t *testing.T, s *fleet.Snapshot, id string) fleet.Node {
	t.Helper()
	for _, n := range s.Nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("no row %s", id)
	return fleet.Node{}
}

func TestBuild(t *testing.T) {
	entries := []report.Entry{
		entry("i-web-1", time.Minute, nil),
		entry("i-web-2", time.Minute, nil),
		entry("i-web-3", time.Minute, nil),
		entry("i-web-4", time.Minute, func(r *report.Report) { r.AZ = "az-b" }),
		entry("i-web-5", time.Minute, func(r *report.Report) {
			r.SerialApplied = 41
			r.LastApply = &report.Apply{Result: report.ResultFailed, Error: "apache2ctl -t refused"}
		}),
		entry("i-web-6", 20*time.Minute, nil), // stale at a 5m interval
		entry("i-web-7", time.Minute, func(r *report.Report) { r.Terminated, r.Draining, r.Ready = true, true, false }),
		entry("i-db-a", time.Minute, func(r *report.Report) { r.Role, r.Group, r.Products = "db", "", nil }),
		entry("i-stray", time.Minute, func(r *report.Report) { r.Group = "old-web" }),
		{Key: "reports/i-bad.json", InstanceID: "i-bad", Err: fmt.Errorf("get: %w", report.ErrCorrupt)},
		{Key: "reports/notes.txt", Err: fmt.Errorf("%w: key", report.ErrForeign)},
	}
	s := fleet.Build(fleet.Input{Topology: testTopology(), TopologyFrom: "s3://fleet/topology.json", Entries: entries,
		Now: now, ReportInterval: 5 * time.Minute})

	if got := len(s.Nodes); got != 11 { // 9 reports + db-b and cache missing
		t.Errorf("%d rows, want 11", got)
	}
	checks := []struct {
		id    string
		state string
		live  bool
		conv  bool
	}{
		{"i-web-1", fleet.StateOK, true, true},
		{"i-web-5", fleet.StateFailing, true, false},
		{"i-web-6", fleet.StateStale, false, false},
		{"i-web-7", fleet.StateTerminated, false, false},
		{"i-db-b", fleet.StateMissing, false, false},
		{"cache", fleet.StateMissing, false, false},
	}
	for _, c := range checks {
		n := node(t, s, c.id)
		if n.State != c.state || n.Live != c.live || n.Converged != c.conv {
			t.Errorf("%s: state %s live %v converged %v, want %s %v %v (flags %v)", c.id, n.State, n.Live, n.Converged, c.state, c.live, c.conv, n.Flags)
		}
	}
	if n := node(t, s, "i-db-a"); n.Name != "db-a" || !n.Listed || n.AZ != "az-a" {
		t.Errorf("db-a joined as %+v", n)
	}
	if n := node(t, s, "i-web-5"); !slices.Contains(n.Flags, fleet.StateBehind) {
		t.Errorf("i-web-5 flags %v, want behind", n.Flags)
	}
	if n := node(t, s, "i-stray"); !n.Unknown || n.Listed {
		t.Errorf("stray: %+v", n)
	}
	sum := s.Summary
	if sum.Live != 7 || sum.Ready != 7 || sum.OnCurrent != 6 || sum.Converged || !slices.Equal(sum.Laggards, []string{"i-web-5"}) {
		t.Errorf("summary %+v", sum)
	}
	if sum.BadReports != 2 || len(s.BadReports) != 2 || s.BadReports[0].Kind != "corrupt" || s.BadReports[1].Kind != "foreign" {
		t.Errorf("bad reports %+v", s.BadReports)
	}
	if !slices.Equal(sum.AZs, []string{"az-a", "az-b"}) || !slices.Equal(sum.Imbalanced, []string{"web"}) {
		t.Errorf("AZs %v imbalanced %v", sum.AZs, sum.Imbalanced)
	}
	for _, r := range sum.Roles {
		if r.Role == "web" && (r.PerAZ["az-a"] != 5 || r.PerAZ["az-b"] != 1 || r.Note != "5 in az-a, 1 in az-b") {
			t.Errorf("web row %+v", r)
		}
		if r.Role == "db" && (r.Imbalanced || r.PerAZ["az-b"] != 0) {
			t.Errorf("db row %+v", r)
		}
	}

	var out bytes.Buffer
	if err := fleet.Format(&out, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"IMBALANCED: 5 in az-a, 1 in az-b", "not converged: i-web-5: serial 41 of 42", "bad report reports/i-bad.json: corrupt",
		"stale", "missing", "ready 7/7"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBuildConverged(t *testing.T) {
	s := fleet.Build(fleet.Input{Topology: &nodeagent.Topology{Serial: 42, Groups: map[string]nodeagent.Group{"shop-web": {}}},
		Entries: []report.Entry{entry("i-1", time.Second, nil), entry("i-2", time.Second, nil)}, Now: now})
	if !s.Summary.Converged || s.Summary.CurrentShare != 1 {
		t.Errorf("summary %+v", s.Summary)
	}
	empty := fleet.Build(fleet.Input{Topology: &nodeagent.Topology{Serial: 42}, Now: now})
	if empty.Summary.Converged {
		t.Error("a fleet with no live node counts as converged")
	}
}

func TestFormatEscapes(t *testing.T) {
	e := entry("i-1", time.Second, func(r *report.Report) { r.AgentVersion = "1\x1b[2J\n\tx"; r.AZ = "a\tb" })
	s := fleet.Build(fleet.Input{Topology: testTopology(), Entries: []report.Entry{e}, Now: now})
	var out bytes.Buffer
	if err := fleet.Format(&out, s); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b") || !strings.Contains(out.String(), `1\u001b[2J\u000a\u0009x`) {
		t.Errorf("control characters reach the terminal:\n%q", out.String())
	}
}
