package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/bench"
)

func TestColdApplyNotMeasured(t *testing.T) {
	// Figures recorded before the cold series have no cold_apply.
	var e bench.EndToEnd
	if err := json.Unmarshal([]byte(`{"no_change": [], "boots": []}`), &e); err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	r := &report{}
	coldApply(&w, r, e.Cold)
	if !strings.Contains(w.String(), "Not measured") {
		t.Errorf("section without figures does not say so:\n%s", w.String())
	}
	want := [][]string{{"2b. cold apply through its config checks, web node", "not measured", "≤ 150 ms", "**fail**"}}
	if diff := cmp.Diff(want, r.summary); diff != "" {
		t.Errorf("summary rows (-want +got):\n%s", diff)
	}
}

func TestColdApply(t *testing.T) {
	s := func(median float64) bench.Summary {
		return bench.Summary{Median: median, Min: median - 1, Max: median + 2, P90: median + 1}
	}
	c := &bench.Cold{
		Command: "nodeagent apply --config /tmp/x/001/config.json --topology file:///tmp/x/002/topology.json",
		Runs:    3, Removed: []string{"/etc/apache2/conf-enabled/nodeagent.conf", "/etc/nodeagent/products/shop.php"},
		ThroughChecks: s(140), Wall: s(500), CPU: s(300),
		Phases: []bench.PhaseSummary{
			{Name: bench.ColdUpToFirstWrite, Summary: s(40)},
			{Name: bench.ColdDiscover, Part: true, Summary: s(30)},
			{Name: bench.ColdChecks, Summary: s(90)},
		},
		Checks: 6, Reloads: 6, SmokePassed: 3, SmokeAttempts: s(2),
		ChecksAlone: []bench.CheckTiming{
			{Name: "apache2ctl -t alone", Command: "APACHE_CONFDIR=<root>/etc/apache2 apache2ctl -t", Wall: s(60), CPU: s(40)},
			{Name: "both at once", Command: "a & b", Wall: s(84), CPU: s(110)},
		},
	}
	tests := []struct {
		name     string
		change   func(*bench.Cold)
		wantRows [][]string
	}{
		{"within the target", func(*bench.Cold) {}, [][]string{
			{"2b. cold apply through its config checks, web node", "140.0 ms median", "≤ 150 ms", "pass"},
			{"2b. cold apply: commands per run, web node", "6 checks, 6 reloads, 0 starts, 0 other in 3 runs; smoke passed in 3", "2 checks, 2 reloads, 0 starts per run; smoke passed in every run", "pass"},
		}},
		{"over the target, a start, a smoke failure", func(c *bench.Cold) { c.ThroughChecks.Median, c.Starts, c.SmokePassed = 151, 1, 2 }, [][]string{
			{"2b. cold apply through its config checks, web node", "151.0 ms median", "≤ 150 ms", "**fail**"},
			{"2b. cold apply: commands per run, web node", "6 checks, 6 reloads, 1 starts, 0 other in 3 runs; smoke passed in 2", "2 checks, 2 reloads, 0 starts per run; smoke passed in every run", "**fail**"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			tc.change(&cc)
			var w bytes.Buffer
			r := &report{cmds: map[string]string{"cold": "# the cold series"}}
			coldApply(&w, r, &cc)
			if diff := cmp.Diff(tc.wantRows, r.summary); diff != "" {
				t.Errorf("summary rows (-want +got):\n%s", diff)
			}
			for _, want := range []string{
				"| **through its config checks** | " + strings.Fields(tc.wantRows[0][1])[0] + " | 139.0 | 141.0 |",
				"| · discover | 30.0 | 29.0 | 31.0 |",
				"| both at once | 84.0 (83.0–85.0) | 110.0 | `a & b` |",
				"`/etc/nodeagent/products/shop.php`",
				"nodeagent apply --config <tmp>/config.json --topology file://<tmp>/topology.json\n# the cold series",
			} {
				if !strings.Contains(w.String(), want) {
					t.Errorf("section lacks %q:\n%s", want, w.String())
				}
			}
		})
	}
}
