package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodeagent/nodeagent/atomicfile"
)

func TestWrite(t *testing.T) {
	for _, durable := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "status.json")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.Write(path, []byte("new\n"), 0o640, durable); err != nil {
			t.Fatalf("Write (durable %v): %v", durable, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != "new\n" {
			t.Errorf("durable %v: content %q, %v; want %q", durable, got, err, "new\n")
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o640 {
			t.Errorf("durable %v: mode %v, %v; want 0640", durable, info.Mode().Perm(), err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("durable %v: directory holds %d entries, want only the file (no temporary left)", durable, len(entries))
		}
	}
}

func TestWriteFailureLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	// Renaming a file over a directory fails after the temporary exists.
	target := filepath.Join(dir, "taken")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(target, []byte("x"), 0o644, true); err == nil {
		t.Fatal("Write over a directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "taken" {
		t.Errorf("after a failed Write the directory holds %v, want only the directory it could not replace", entries)
	}
}
