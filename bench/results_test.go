package bench_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/bench"
)

func TestMedianPhases(t *testing.T) {
	tests := []struct {
		name string
		runs [][]bench.Phase
		want []bench.Phase
	}{
		{"none", nil, []bench.Phase{}},
		{
			"order of first appearance, median per name",
			[][]bench.Phase{
				{{"discover", 10}, {"files", 3}, {"exit", 5}},
				{{"discover", 30}, {"files", 1}, {"smoke", 8}, {"exit", 7}},
				{{"discover", 20}, {"files", 2}, {"exit", 6}},
			},
			[]bench.Phase{{"discover", 20}, {"files", 2}, {"exit", 6}, {"smoke", 8}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, bench.MedianPhases(tc.runs)); diff != "" {
				t.Errorf("MedianPhases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBootShares(t *testing.T) {
	b := bench.Boot{
		WallMS: 5000, ServiceMS: 700, ChecksMS: 800,
		Phases: []bench.Phase{{"discover", 50}, {"files", 1500}, {"download shop", 2000}, {"release web", 500}, {"activate shop", 5}, {"smoke", 300}},
	}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"release steps are the download and release phases", b.ReleaseMS(), 2500},
		{"agent share less a 100 ms transfer", b.AgentMS(100), 3400},
		{"agent share less the release steps", b.AgentMS(b.ReleaseMS()), 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestColdMarks(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	m := bench.ColdMarks{
		Start: at(0), Discovered: at(30), FilesStart: at(34), FirstWrite: at(40), LastWrite: at(55),
		ChecksPassed: at(200), FilesDone: at(350), SmokeDone: at(560), ApplyDone: at(570), End: at(574),
	}
	if err := m.Check(); err != nil {
		t.Fatalf("Check of complete marks: %v", err)
	}
	if got := m.ThroughChecksMS(); got != 200 {
		t.Errorf("ThroughChecksMS = %v, want 200", got)
	}
	want := []bench.Phase{
		{bench.ColdUpToFirstWrite, 40}, {bench.ColdDiscover, 30}, {bench.ColdFetchPlan, 4}, {bench.ColdJournal, 6},
		{bench.ColdWrite, 15}, {bench.ColdChecks, 145}, {bench.ColdReloads, 150}, {bench.ColdSmoke, 210},
		{bench.ColdRecord, 10}, {bench.ColdExit, 4},
	}
	got := m.Phases()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Phases (-want +got):\n%s", diff)
	}
	var total float64
	for _, p := range got {
		if !bench.ColdPart(p.Name) {
			total += p.MS
		}
	}
	if total != 574 {
		t.Errorf("phases that are not parts add up to %v ms, want the wall time 574", total)
	}

	tests := []struct {
		name   string
		change func(*bench.ColdMarks)
		want   string
	}{
		{"no check passed", func(m *bench.ColdMarks) { m.ChecksPassed = time.Time{} }, `no "config check passed"`},
		{"no file written", func(m *bench.ColdMarks) { m.FirstWrite, m.LastWrite = time.Time{}, time.Time{} }, `no first "wrote file"`},
		{"checks before the last write", func(m *bench.ColdMarks) { m.ChecksPassed = at(50) }, `"config check passed" (2026-12-04T15:00:00.05Z) before last "wrote file"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := m
			tc.change(&bad)
			err := bad.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSummarizeColdPhases(t *testing.T) {
	runs := [][]bench.Phase{
		{{bench.ColdUpToFirstWrite, 40}, {bench.ColdDiscover, 30}, {bench.ColdChecks, 150}},
		{{bench.ColdUpToFirstWrite, 50}, {bench.ColdDiscover, 35}, {bench.ColdChecks, 120}},
		{{bench.ColdUpToFirstWrite, 45}, {bench.ColdDiscover, 20}, {bench.ColdChecks, 200}},
	}
	want := []bench.PhaseSummary{
		{Name: bench.ColdUpToFirstWrite, Summary: bench.Summary{Median: 45, Min: 40, Max: 50, P90: 50}},
		{Name: bench.ColdDiscover, Part: true, Summary: bench.Summary{Median: 30, Min: 20, Max: 35, P90: 35}},
		{Name: bench.ColdChecks, Summary: bench.Summary{Median: 150, Min: 120, Max: 200, P90: 200}},
	}
	if diff := cmp.Diff(want, bench.SummarizeColdPhases(runs)); diff != "" {
		t.Errorf("SummarizeColdPhases (-want +got):\n%s", diff)
	}
}
