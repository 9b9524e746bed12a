package publish_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/publish"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/rollout"
)

// TestStartRolloutOrder: the rollout object is written before the
// document (a node never sees the serial without it), and the new
// document is kept under history/ like the one it replaces.
func TestStartRolloutOrder(t *testing.T) {
	f := newFakeS3()
	f.store("prod/topology.json", withSerial(t, 42))
	var order []string
	f.beforePut = func(key string, _ []byte) error { order = append(order, key); return nil }
	p, err := publish.New(f, "s3://fleet/prod/topology.json")
	if err != nil {
		t.Fatal(err)
	}
	store, _ := rollout.NewStore(f, "s3://fleet/prod/topology.json")
	ctx := context.Background()
	cur, err := p.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := p.Prepare(cur, publish.Input{Body: withSerial(t, 43), Name: "t.json"})
	if err != nil {
		t.Fatal(err)
	}
	r, _, res, err := p.StartRollout(ctx, store, cur, ch, rollout.Strategy{Waves: []int{10, 100}, Bake: time.Minute}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := "[prod/rollouts/43.json prod/history/42.json prod/topology.json prod/history/43.json]"
	if fmt.Sprint(order) != want {
		t.Errorf("writes %v, want %s", order, want)
	}
	if r.Previous != 42 || r.Serial != 43 || r.DocumentSHA256 != rollout.Digest(f.objects["prod/topology.json"]) {
		t.Errorf("rollout %+v", r)
	}
	if res.KeptURL != "s3://fleet/prod/history/43.json" || !bytes.Equal(f.objects["prod/history/43.json"], ch.Body) {
		t.Errorf("the new document is not kept: %+v", res)
	}
}

// snapshotOf is a fleet on serial with each node's applied serial and
// last apply.
func snapshotOf(serial int64, nodes map[string]*report.Report) *fleet.Snapshot {
	s := &fleet.Snapshot{Serial: serial}
	for id, r := range nodes {
		r.InstanceID = id
		s.Nodes = append(s.Nodes, fleet.Node{ID: id, InstanceID: id, Live: true, Report: r})
	}
	return s
}

// TestFollowRolloutHaltsAndRollsBack: the command follows a rollout whose
// first wave fails: it halts, prints the failed nodes, rolls back once,
// records it, and returns ErrHalted.
func TestFollowRolloutHaltsAndRollsBack(t *testing.T) {
	f := newFakeS3()
	store, _ := rollout.NewStore(f, "s3://fleet/prod/topology.json")
	ctx := context.Background()
	r, _ := rollout.New(rollout.Strategy{Waves: []int{50, 100}, MaxFailed: 0, AutoRollback: true}, 43, 42, []byte("doc"), time.Now())
	if _, err := store.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	var first string
	for i := 0; first == ""; i++ {
		if id := fmt.Sprintf("i-%d", i); rollout.WaveOf(id, 43, r.Waves) == 0 {
			first = id
		}
	}
	nodes := map[string]*report.Report{
		first:   {SerialApplied: 42, Ready: true, LastApply: &report.Apply{Result: report.ResultFailed, Serial: 43, Error: "smoke checks failed: shop/home"}},
		"i-999": {SerialApplied: 42, Ready: true},
	}
	rollbacks := 0
	var out bytes.Buffer
	err := publish.FollowRollout(ctx, publish.FollowInput{
		Store: store, Serial: 43, Every: time.Millisecond, Out: &out, Operator: "test",
		Load: func(context.Context) (*fleet.Snapshot, error) { return snapshotOf(43, nodes), nil },
		Rollback: func(_ context.Context, r *rollout.Rollout) (int64, error) {
			rollbacks++
			return 44, nil
		},
	})
	if !errors.Is(err, publish.ErrHalted) {
		t.Fatalf("err %v, want ErrHalted", err)
	}
	for _, want := range []string{"HALTED at wave 1 of 2", first + " (wave 1) failed", "smoke checks failed: shop/home", "auto-rollback: published serial 44 with the document of serial 42"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	got, _, err := store.Read(ctx, 43)
	if err != nil || got.State != rollout.StateHalted || got.RolledBackTo != 44 || rollbacks != 1 {
		t.Fatalf("rollout %+v (%v), %d rollbacks", got, err, rollbacks)
	}
	// Following it again (rollout resume) rolls back no second time.
	err = publish.FollowRollout(ctx, publish.FollowInput{Store: store, Serial: 43, Every: time.Millisecond, Out: &out,
		Load:     func(context.Context) (*fleet.Snapshot, error) { return snapshotOf(44, nodes), nil },
		Rollback: func(context.Context, *rollout.Rollout) (int64, error) { rollbacks++; return 45, nil }})
	if !errors.Is(err, publish.ErrHalted) || rollbacks != 1 {
		t.Errorf("second follow: %v, %d rollbacks", err, rollbacks)
	}
}

// TestFollowRolloutDone: every node applying and ready walks the rollout
// through its waves to done, the heartbeat and operator recorded.
func TestFollowRolloutDone(t *testing.T) {
	f := newFakeS3()
	store, _ := rollout.NewStore(f, "s3://fleet/topology.json")
	ctx := context.Background()
	r, _ := rollout.New(rollout.Strategy{Waves: []int{10, 50, 100}}, 7, 6, []byte("doc"), time.Now())
	if _, err := store.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*report.Report{}
	for i := range 10 {
		nodes[fmt.Sprintf("i-%d", i)] = &report.Report{SerialApplied: 7, Ready: true}
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := publish.FollowRollout(ctx, publish.FollowInput{Store: store, Serial: 7, Every: time.Millisecond, Out: &out, Operator: "op-1",
		Load: func(context.Context) (*fleet.Snapshot, error) { return snapshotOf(7, nodes), nil }})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got, _, _ := store.Read(ctx, 7)
	if got.State != rollout.StateDone || got.Operator != "op-1" || !strings.Contains(out.String(), "rollout of serial 7 done") {
		t.Errorf("rollout %+v\n%s", got, out.String())
	}
}
