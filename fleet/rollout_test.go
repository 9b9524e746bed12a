package fleet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/rollout"
)

// TestBuildRollout: the snapshot carries the rollout of the current serial
// with each wave's done / pending / failed, and calls a rollout whose
// operator stopped writing its heartbeat unattended; the table and the
// JSON say the same.
func TestBuildRollout(t *testing.T) {
	r, err := rollout.New(rollout.Strategy{Waves: []int{30, 100}, Bake: time.Minute, MaxFailed: 2}, 42, 41, []byte("doc"), now.Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var entries []report.Entry
	want := make([]rollout.WaveTally, 2)
	want[0].Share, want[1].Share = 30, 100
	failedID := ""
	for i := range 20 {
		id := fmt.Sprintf("i-web-%02d", i)
		w := rollout.WaveOf(id, 42, r.Waves)
		switch {
		case w == 0 && failedID == "":
			failedID = id
			want[0].Failed++
			want[0].Nodes++
			entries = append(entries, entry(id, time.Second, func(rep *report.Report) {
				rep.SerialApplied = 41
				rep.LastApply = &report.Apply{Result: report.ResultFailed, Serial: 42, At: now, Error: "smoke checks failed: shop/home"}
			}))
		case w == 0:
			want[0].Done++
			want[0].Nodes++
			entries = append(entries, entry(id, time.Second, nil))
		default:
			want[1].Pending++
			want[1].Nodes++
			entries = append(entries, entry(id, time.Second, func(rep *report.Report) { rep.SerialApplied = 41 }))
		}
	}
	if failedID == "" || want[0].Done == 0 {
		t.Fatalf("waves %v: the test needs a failed and a done node in wave 1", want)
	}
	s := fleet.Build(fleet.Input{Topology: testTopology(), Entries: entries, Now: now, Rollout: r, RolloutURL: "s3://fleet/rollouts/42.json"})
	if s.Rollout == nil {
		t.Fatal("no rollout in the snapshot")
	}
	if fmt.Sprint(s.Rollout.Tally) != fmt.Sprint(want) {
		t.Errorf("tally %v, want %v", s.Rollout.Tally, want)
	}
	if len(s.Rollout.Failed) != 1 || s.Rollout.Failed[0].InstanceID != failedID {
		t.Errorf("failed %+v, want %s", s.Rollout.Failed, failedID)
	}
	if !s.Rollout.Unattended || s.Rollout.HeartbeatAgeSeconds != 600 {
		t.Errorf("unattended %v after %v s, want true after 600", s.Rollout.Unattended, s.Rollout.HeartbeatAgeSeconds)
	}
	var out bytes.Buffer
	if err := fleet.Format(&out, s); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"rollout of serial 42 (after 41): ROLLING, wave 1 of 2 (30%), bake 1m0s, max_failed 2",
		fmt.Sprintf("wave 1 ( 30%%): %d node(s): done %d, pending 0, failed 1  <- current", want[0].Nodes, want[0].Done),
		fmt.Sprintf("wave 2 (100%%): %d node(s): done 0, pending %d, failed 0", want[1].Nodes, want[1].Pending),
		"failed: " + failedID + " (wave 1): smoke checks failed: shop/home",
		"UNATTENDED: no operator command has followed this rollout for 10m",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("fleet status lacks %q:\n%s", line, out.String())
		}
	}
	b, err := fleet.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Rollout struct {
			State      string              `json:"state"`
			Wave       int                 `json:"wave"`
			Tally      []rollout.WaveTally `json:"tally"`
			Unattended bool                `json:"unattended"`
		} `json:"rollout"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Rollout.State != "rolling" || len(back.Rollout.Tally) != 2 || !back.Rollout.Unattended {
		t.Errorf("JSON rollout %+v (%v)", back.Rollout, err)
	}

	// A fresh heartbeat: attended. No rollout: no section.
	r.Heartbeat = now.Add(-time.Second)
	if s := fleet.Build(fleet.Input{Topology: testTopology(), Entries: entries, Now: now, Rollout: r}); s.Rollout.Unattended {
		t.Error("a rollout with a fresh heartbeat is unattended")
	}
	s = fleet.Build(fleet.Input{Topology: testTopology(), Entries: entries, Now: now})
	out.Reset()
	_ = fleet.Format(&out, s)
	if s.Rollout != nil || strings.Contains(out.String(), "rollout") {
		t.Errorf("a serial without a rollout shows one:\n%s", out.String())
	}
}
