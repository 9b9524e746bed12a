package state_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/state"
)

func newDir(t *testing.T) (state.Dir, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/nodeagent"), 0o711); err != nil {
		t.Fatal(err)
	}
	return state.Dir{FS: hostfs.FS{Root: root, StateDir: "/var/lib/nodeagent"}, Path: "/var/lib/nodeagent"}, root
}

// TestReadsOldRecords reads records as the agent wrote them before this
// package existed: an upgraded agent must keep what the old one recorded.
func TestReadsOldRecords(t *testing.T) {
	d, root := newDir(t)
	old := map[string]string{
		"applied.json": `{
  "serial": 7,
  "etag": "\"abc\"",
  "instance_id": "i-0123456789abcdef0",
  "identity": {"node": "web-1", "role": "web"},
  "releases": {"shop": "r42"},
  "at": "2026-01-02T03:04:05Z"
}
`,
		"lifecycle.json": `{
  "hook": {"Group": "web-asg", "Hook": "launch", "InstanceID": "i-0123456789abcdef0"},
  "result": "CONTINUE",
  "at": "2026-01-02T03:04:05Z"
}
`,
	}
	for name, body := range old {
		if err := os.WriteFile(filepath.Join(root, "var/lib/nodeagent", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err := d.ReadApplied()
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != 7 || a.ETag != `"abc"` || a.InstanceID != "i-0123456789abcdef0" || a.Releases["shop"] != "r42" || !a.At.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("applied.json read as %+v", a)
	}
	if !d.LaunchCompleted("i-0123456789abcdef0") {
		t.Error("LaunchCompleted(recorded instance) = false")
	}
	if d.LaunchCompleted("i-fffffffffffffffff") {
		t.Error("LaunchCompleted(another instance) = true: a new instance from a reused image must complete its own hook")
	}
}

func TestRoundTrip(t *testing.T) {
	d, root := newDir(t)
	if _, err := d.ReadApplied(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadApplied with no record: %v, want fs.ErrNotExist", err)
	}
	if d.LaunchCompleted("i-1") {
		t.Error("LaunchCompleted with no record = true")
	}
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	want := state.Applied{Serial: 3, InstanceID: "i-1", Identity: nodeagent.Identity{Node: "web-1"}, Releases: map[string]string{"p": "r1"}, At: at}
	if err := d.WriteApplied(want); err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadApplied()
	if err != nil || got.Serial != want.Serial || got.InstanceID != want.InstanceID || got.Releases["p"] != "r1" || !got.At.Equal(at) {
		t.Errorf("ReadApplied = %+v, %v; want %+v", got, err, want)
	}
	if err := d.WriteLifecycle(state.Lifecycle{Hook: nodeagent.LifecycleHook{Group: "g", Hook: "h", InstanceID: "i-1"}, Result: "CONTINUE", At: at}); err != nil {
		t.Fatal(err)
	}
	if !d.LaunchCompleted("i-1") {
		t.Error("LaunchCompleted after WriteLifecycle = false")
	}
	for _, name := range []string{state.AppliedFile, state.LifecycleFile} {
		fi, err := os.Stat(filepath.Join(root, "var/lib/nodeagent", name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", name, fi, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/nodeagent", state.AppliedFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadApplied(); err == nil {
		t.Error("ReadApplied of a corrupt record: no error")
	}
}
