package hostfs_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/hostfs"
)

func TestSweepTemp(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := []string{
		".hosts.nodeagent-123456", // hostfs's: swept
		".shop.php.nodeagent-42",  // hostfs's: swept
		".status.json.tmp-99",     // atomicfile's: swept only where asked
		".hosts.nodeagent-abc",    // not os.CreateTemp's digits: kept
		"hosts.nodeagent-1",       // not hidden: kept
		".bashrc",                 // kept
		"hosts",                   // kept
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.nodeagent-7"), 0o755); err != nil { // a directory: kept
		t.Fatal(err)
	}
	fsys := hostfs.FS{Root: root}

	// Files newer than the cut-off may be writes in flight: kept.
	removed, err := fsys.SweepTemp("/etc", time.Now().Add(-time.Hour), true)
	if err != nil || len(removed) != 0 {
		t.Fatalf("sweep with an old cut-off removed %v, %v; want nothing", removed, err)
	}
	removed, err = fsys.SweepTemp("/etc", time.Now().Add(time.Minute), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/.hosts.nodeagent-123456", "/etc/.shop.php.nodeagent-42"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	removed, err = fsys.SweepTemp("/etc", time.Now().Add(time.Minute), true)
	if err != nil || !slices.Equal(removed, []string{"/etc/.status.json.tmp-99"}) {
		t.Errorf("sweep with atomicfile's names removed %v, %v; want the .tmp- file", removed, err)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if want := []string{".bashrc", ".d.nodeagent-7", ".hosts.nodeagent-abc", "hosts", "hosts.nodeagent-1"}; !slices.Equal(names, want) {
		t.Errorf("left %v, want %v", names, want)
	}
	if removed, err := fsys.SweepTemp("/nonexistent", time.Now(), true); err != nil || len(removed) != 0 {
		t.Errorf("sweep of a missing dir: %v, %v", removed, err)
	}
}
