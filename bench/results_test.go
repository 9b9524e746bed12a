package bench_test

import (
	"testing"

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
