package rollout_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/rollout"
)

func TestWaveOfStable(t *testing.T) {
	waves := []int{1, 10, 50, 100}
	// Fixed values: the hash is part of the contract between the
	// operator's command and every agent version.
	if got := rollout.Bucket("i-0123456789abcdef0", 42); got != rollout.Bucket("i-0123456789abcdef0", 42) {
		t.Fatal("Bucket is not stable")
	}
	same := 0
	for i := range 1000 {
		id := fmt.Sprintf("i-%017x", i)
		if rollout.WaveOf(id, 7, waves) == rollout.WaveOf(id, 8, waves) {
			same++
		}
	}
	// Waves differ per serial: about half the nodes (the 50% of the last
	// wave twice) keep the same wave, far from all.
	if same > 700 {
		t.Errorf("%d of 1000 nodes have the same wave for serials 7 and 8: the hash does not depend on the serial", same)
	}
}

func TestWaveSpread(t *testing.T) {
	for _, waves := range [][]int{{1, 10, 50, 100}, {25, 50, 75, 100}, {100}} {
		for _, serial := range []int64{1, 2, 1000} {
			counts := make([]int, len(waves))
			const n = 1000
			for i := range n {
				counts[rollout.WaveOf(fmt.Sprintf("i-0f40%013x", i), serial, waves)]++
			}
			cum := 0
			for w, c := range counts {
				cum += c
				got := 100 * float64(cum) / n
				if math.Abs(got-float64(waves[w])) > 4 {
					t.Errorf("waves %v serial %d: wave %d takes %.1f%% cumulatively, want %d%% ± 4", waves, serial, w, got, waves[w])
				}
			}
		}
	}
}

func TestParseWaves(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"1,10,50,100", "[1 10 50 100]"},
		{"25%, 100%", "[25 100]"},
		{"100", "[100]"},
		{"10,5,100", "must rise"},
		{"10,50", "last wave must be 100%"},
		{"0,100", "not in 1..100"},
		{"a,100", "not a whole percentage"},
	} {
		w, err := rollout.ParseWaves(tc.in)
		got := fmt.Sprint(w)
		if err != nil {
			got = err.Error()
			if !errors.Is(err, rollout.ErrStrategy) {
				t.Errorf("%q: %v does not wrap ErrStrategy", tc.in, err)
			}
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("ParseWaves(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// fleetOf is n live nodes; applied says which instance ids report the
// serial applied and ready, failed which report a failed apply of it.
func fleetOf(n int, serial int64, applied, failed func(id string) bool) rollout.Fleet {
	f := rollout.Fleet{Serial: serial}
	for i := range n {
		id := fmt.Sprintf("i-%017x", i)
		r := &report.Report{InstanceID: id, SerialApplied: serial - 1, Ready: true}
		switch {
		case failed(id):
			r.LastApply = &report.Apply{Result: report.ResultFailed, Serial: serial, Error: "smoke check shop failed"}
		case applied(id):
			r.SerialApplied = serial
		}
		f.Nodes = append(f.Nodes, rollout.Node{InstanceID: id, Live: true, Report: r})
	}
	return f
}

func none(string) bool { return false }

func TestStepAdvancesWithBake(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	st := rollout.Strategy{Waves: []int{10, 50, 100}, Bake: time.Minute, MaxFailed: 1}
	r0, err := rollout.New(st, 8, 7, []byte("doc"), t0)
	if err != nil {
		t.Fatal(err)
	}
	r := *r0
	inWaves := func(upto int) func(string) bool {
		return func(id string) bool { return rollout.WaveOf(id, 8, r.Waves) <= upto }
	}

	// Nobody applied yet: nothing moves.
	r, evs := rollout.Step(r, fleetOf(100, 8, none, none), t0.Add(time.Hour))
	if r.Wave != 0 || r.State != rollout.StateRolling || len(evs) != 0 || !r.WaveComplete.IsZero() {
		t.Fatalf("before any apply: wave %d state %s events %v", r.Wave, r.State, evs)
	}
	// Wave 1 done: the bake starts, no advance yet.
	t1 := t0.Add(2 * time.Hour)
	r, evs = rollout.Step(r, fleetOf(100, 8, inWaves(0), none), t1)
	if r.Wave != 0 || !r.WaveComplete.Equal(t1) || len(evs) != 1 || evs[0].Kind != rollout.EventWaveComplete {
		t.Fatalf("wave 1 complete: wave %d complete %v events %v", r.Wave, r.WaveComplete, evs)
	}
	// One second short of the bake: still wave 1.
	r, _ = rollout.Step(r, fleetOf(100, 8, inWaves(0), none), t1.Add(time.Minute-time.Second))
	if r.Wave != 0 {
		t.Fatalf("advanced before the bake ended")
	}
	// The bake has passed: wave 2.
	r, evs = rollout.Step(r, fleetOf(100, 8, inWaves(0), none), t1.Add(time.Minute))
	if r.Wave != 1 || len(evs) != 1 || evs[0].Kind != rollout.EventAdvanced || !r.WaveComplete.IsZero() {
		t.Fatalf("after the bake: wave %d events %v", r.Wave, evs)
	}
	// A node of wave 3 applying early does not count; wave 2 pending.
	r, _ = rollout.Step(r, fleetOf(100, 8, inWaves(0), none), t1.Add(time.Hour))
	if r.Wave != 1 {
		t.Fatalf("advanced with wave 2 pending")
	}
	r, _ = rollout.Step(r, fleetOf(100, 8, inWaves(1), none), t1.Add(2*time.Hour))
	r, _ = rollout.Step(r, fleetOf(100, 8, inWaves(1), none), t1.Add(2*time.Hour+time.Minute))
	if r.Wave != 2 {
		t.Fatalf("wave %d, want 3", r.Wave+1)
	}
	// Last wave complete: done at once, no bake after the last wave.
	r, evs = rollout.Step(r, fleetOf(100, 8, inWaves(2), none), t1.Add(3*time.Hour))
	if r.State != rollout.StateDone || evs[len(evs)-1].Kind != rollout.EventDone {
		t.Fatalf("state %s events %v, want done", r.State, evs)
	}
	// Done does not change.
	r2, evs := rollout.Step(r, fleetOf(100, 9, none, none), t1.Add(4*time.Hour))
	if r2.State != rollout.StateDone || evs != nil {
		t.Fatalf("a done rollout changed: %s %v", r2.State, evs)
	}
}

func TestStepBakeZeroRunsThroughEmptyWaves(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r0, _ := rollout.New(rollout.Strategy{Waves: []int{1, 2, 100}, Bake: time.Hour}, 3, 2, nil, t0)
	// Three nodes: the 1% and 2% waves are most likely empty; whatever
	// they hold, with every node applied the rollout ends done in one step.
	all := func(string) bool { return true }
	r, evs := rollout.Step(*r0, fleetOf(3, 3, all, none), t0)
	if r.State != rollout.StateDone {
		// Only when a small wave has nodes does the bake hold it.
		nonEmpty := false
		for i := range 3 {
			if rollout.WaveOf(fmt.Sprintf("i-%017x", i), 3, r.Waves) < 2 {
				nonEmpty = true
			}
		}
		if !nonEmpty {
			t.Fatalf("empty waves held the rollout: state %s wave %d events %v", r.State, r.Wave, evs)
		}
	}
}

func TestStepHalts(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r0, _ := rollout.New(rollout.Strategy{Waves: []int{20, 100}, MaxFailed: 1}, 5, 4, nil, t0)
	var failing []string
	for i := 0; len(failing) < 2; i++ {
		if id := fmt.Sprintf("i-%017x", i); rollout.WaveOf(id, 5, r0.Waves) == 0 {
			failing = append(failing, id)
		}
	}
	one := func(id string) bool { return id == failing[0] }
	r, evs := rollout.Step(*r0, fleetOf(50, 5, none, one), t0)
	if r.State != rollout.StateRolling || len(r.Failed) != 1 || evs != nil {
		t.Fatalf("one failure (max_failed 1): state %s failed %v events %v", r.State, r.Failed, evs)
	}
	two := func(id string) bool { return id == failing[0] || id == failing[1] }
	r, evs = rollout.Step(r, fleetOf(50, 5, none, two), t0.Add(time.Second))
	if r.State != rollout.StateHalted || len(evs) != 1 || evs[0].Kind != rollout.EventHalted {
		t.Fatalf("two failures: state %s events %v", r.State, evs)
	}
	for _, id := range failing {
		if !strings.Contains(r.Why, id) {
			t.Errorf("why %q does not name %s", r.Why, id)
		}
	}
	if r.Failed[0].Error != "smoke check shop failed" {
		t.Errorf("failure error %q", r.Failed[0].Error)
	}
	// Halted: nobody may apply, and Step changes nothing.
	for i := range 50 {
		if r.Allowed(fmt.Sprintf("i-%017x", i)) {
			t.Fatal("a halted rollout allows a node")
		}
	}
	if r2, evs := rollout.Step(r, fleetOf(50, 5, func(string) bool { return true }, none), t0.Add(time.Hour)); r2.State != rollout.StateHalted || evs != nil {
		t.Fatalf("a halted rollout moved: %s", r2.State)
	}
}

func TestStepSuperseded(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r0, _ := rollout.New(rollout.Strategy{Waves: []int{50, 100}}, 5, 4, nil, t0)
	r, evs := rollout.Step(*r0, fleetOf(10, 6, none, none), t0)
	if r.State != rollout.StateSuperseded || len(evs) != 1 || evs[0].Kind != rollout.EventSuperseded {
		t.Fatalf("state %s events %v, want superseded", r.State, evs)
	}
}

func TestStepIgnoresStaleNodes(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r0, _ := rollout.New(rollout.Strategy{Waves: []int{100}}, 5, 4, nil, t0)
	f := fleetOf(4, 5, func(string) bool { return true }, none)
	f.Nodes = append(f.Nodes, rollout.Node{InstanceID: "i-dead", Live: false, Report: &report.Report{InstanceID: "i-dead", SerialApplied: 4}})
	if r, _ := rollout.Step(*r0, f, t0); r.State != rollout.StateDone {
		t.Fatalf("a stale node held the rollout: %s", r.State)
	}
}

func TestAllowedAndUnattended(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r, _ := rollout.New(rollout.Strategy{Waves: []int{30, 100}}, 5, 4, nil, t0)
	in, out := 0, 0
	for i := range 200 {
		id := fmt.Sprintf("i-%017x", i)
		if r.Allowed(id) != (rollout.WaveOf(id, 5, r.Waves) == 0) {
			t.Fatalf("%s: Allowed disagrees with WaveOf", id)
		}
		if r.Allowed(id) {
			in++
		} else {
			out++
		}
	}
	if in == 0 || out == 0 {
		t.Fatalf("in %d out %d", in, out)
	}
	stale := rollout.StaleBeats * rollout.HeartbeatEvery
	if r.Unattended(t0.Add(stale)) || !r.Unattended(t0.Add(stale+time.Second)) {
		t.Error("Unattended does not follow the heartbeat")
	}
	r.HeartbeatEverySeconds = 1
	if r.Unattended(t0.Add(6*time.Second)) || !r.Unattended(t0.Add(7*time.Second)) {
		t.Error("Unattended does not follow the heartbeat interval")
	}
	r.State = rollout.StateDone
	for i := range 20 {
		if !r.Allowed(fmt.Sprintf("i-%017x", i)) {
			t.Fatal("done does not allow every node")
		}
	}
}

func TestDecode(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r, _ := rollout.New(rollout.Strategy{Waves: []int{10, 100}, Bake: 6 * time.Minute, MaxFailed: 2}, 9, 8, []byte("x"), t0)
	got, err := rollout.Decode(r.Encode(), "r")
	if err != nil || got.Serial != 9 || got.Bake() != 6*time.Minute || got.DocumentSHA256 != rollout.Digest([]byte("x")) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{`{`, `{"schema":2}`, `{"schema":1,"serial":1,"waves":[10],"state":"rolling"}`,
		`{"schema":1,"serial":1,"waves":[100],"state":"paused"}`, `{"schema":1,"serial":1,"waves":[100],"wave":1,"state":"rolling"}`} {
		if _, err := rollout.Decode([]byte(bad), "r"); err == nil {
			t.Errorf("Decode(%s) accepted", bad)
		}
	}
}
