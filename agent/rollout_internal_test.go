package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/source"
)

// rolloutAgent is an agent whose topology is a file beside which the test
// writes rollout objects and kept documents.
func rolloutAgent(t *testing.T) (*Agent, string) {
	t.Helper()
	dir, root := t.TempDir(), t.TempDir()
	src, err := source.New(context.Background(), "file://"+filepath.Join(dir, "topology.json"), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "rollouts"), filepath.Join(dir, "history"), filepath.Join(root, "var/lib/nodeagent")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &Agent{
		Config:    Config{StateDir: "/var/lib/nodeagent"},
		FS:        hostfs.FS{Root: root, StateDir: "/var/lib/nodeagent"},
		Source:    src,
		Readiness: readiness.New(readiness.Options{}),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, dir
}

func serialDoc(t *testing.T, serial int64) []byte {
	t.Helper()
	body, err := os.ReadFile("../topology/testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(body, []byte(`"serial": 42`), []byte(`"serial": `+itoa(serial)), 1)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func writeRollout(t *testing.T, dir string, r *rollout.Rollout) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, rollout.Rel(r.Serial)), r.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutGate: what a node does with a fetched document, by its
// rollout object.
func TestRolloutGate(t *testing.T) {
	ctx := context.Background()
	a, dir := rolloutAgent(t)
	body := serialDoc(t, 43)
	doc := NewDocument(body, "e43", "fetched", nodeagent.FormatJSON, false)
	r, err := rollout.New(rollout.Strategy{Waves: []int{30, 100}}, 43, 42, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// One node in each wave.
	var in, out string
	for i := 0; in == "" || out == ""; i++ {
		id := "i-" + itoa(int64(i))
		if rollout.WaveOf(id, 43, r.Waves) == 0 {
			in = id
		} else {
			out = id
		}
	}
	inst := func(id string) nodeagent.Instance { return nodeagent.Instance{ID: id} }
	var c rolloutCache

	if g := a.rolloutGate(ctx, &c, inst(out), doc, true); g.hold {
		t.Errorf("no rollout object: held (%s)", g.why)
	}
	writeRollout(t, dir, r)
	if g := a.rolloutGate(ctx, &c, inst(in), doc, true); g.hold {
		t.Errorf("rolling, node in wave 1: held (%s)", g.why)
	}
	if g := a.rolloutGate(ctx, &c, inst(out), doc, true); !g.hold || g.previous != 42 {
		t.Errorf("rolling, node in wave 2: %+v, want held with previous 42", g)
	}
	other := NewDocument(serialDoc(t, 43)[1:], "x", "fetched", nodeagent.FormatJSON, false) // not the rollout's document
	if g := a.rolloutGate(ctx, &c, inst(out), other, true); g.hold {
		t.Errorf("a rollout object of another document: held (%s)", g.why)
	}
	r.State = rollout.StateHalted
	writeRollout(t, dir, r)
	if g := a.rolloutGate(ctx, &c, inst(in), doc, true); !g.hold {
		t.Error("halted: a node of wave 1 that has not applied it applies it")
	}
	r.State = rollout.StateDone
	writeRollout(t, dir, r)
	if g := a.rolloutGate(ctx, &c, inst(out), doc, true); g.hold {
		t.Errorf("done: held (%s)", g.why)
	}
	if err := os.WriteFile(filepath.Join(dir, rollout.Rel(43)), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if g := a.rolloutGate(ctx, &c, inst(out), doc, true); !g.hold {
		t.Error("a corrupt rollout object: a serving node applies")
	}
	if g := a.rolloutGate(ctx, &c, inst(out), doc, false); g.hold {
		t.Error("a corrupt rollout object: a node with nothing applied holds")
	}

	// Booting held back with nothing applied: the previous serial from
	// history/; with a last-good copy: that copy.
	r.State = rollout.StateRolling
	writeRollout(t, dir, r)
	prev := serialDoc(t, 42)
	if err := os.WriteFile(filepath.Join(dir, "history", "42.json"), prev, 0o644); err != nil {
		t.Fatal(err)
	}
	got := a.bootDocument(ctx, &c, inst(out), doc)
	if !bytes.Equal(got.Body, prev) || got.From != "file://"+filepath.Join(dir, "history", "42.json") {
		t.Errorf("boot held back with nothing applied: %s from %s, want history/42.json", got.Body[:20], got.From)
	}
	if got := a.bootDocument(ctx, &c, inst(in), doc); !bytes.Equal(got.Body, body) {
		t.Error("boot in the wave: not the fetched document")
	}
	last := serialDoc(t, 41)
	if err := a.lastGood().Save(last, `"e41"`, nodeagent.FormatJSON); err != nil {
		t.Fatal(err)
	}
	if got := a.bootDocument(ctx, &c, inst(out), doc); !bytes.Equal(got.Body, last) {
		t.Error("boot held back with a last-good copy: not the copy")
	}
}
