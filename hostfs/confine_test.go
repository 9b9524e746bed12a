package hostfs_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// treeSnapshot lists every path under dir with its mode, owner and
// content (or link target).
func treeSnapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		desc := rel + " " + fi.Mode().String() + " " + string(rune('0'+st.Uid%10)) + ":" + string(rune('0'+st.Gid%10))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		out = append(out, desc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func outside(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPlantedSymlinksInTheStateDir plants symlinks out of the root at the
// state dir, the lock, the journal and a rendered file's directory: each
// operation is refused naming the link, and nothing outside changes.
func TestPlantedSymlinksInTheStateDir(t *testing.T) {
	tests := []struct {
		name   string
		link   string // host path of the planted link
		target func(out string) string
		op     func(f hostfs.FS) error
	}{
		{name: "lock file", link: "/var/lib/nodeagent/lock",
			target: func(out string) string { return filepath.Join(out, "file") },
			op: func(f hostfs.FS) error {
				unlock, err := f.Lock(context.Background())
				if err == nil {
					unlock()
				}
				return err
			}},
		{name: "run lock file", link: "/var/lib/nodeagent/run.lock",
			target: func(out string) string { return filepath.Join(out, "file") },
			op: func(f hostfs.FS) error {
				unlock, err := f.TryLockRun()
				if err == nil {
					unlock()
				}
				return err
			}},
		{name: "state dir", link: "/var/lib/nodeagent",
			target: func(out string) string { return out },
			op: func(f hostfs.FS) error {
				unlock, err := f.Lock(context.Background())
				if err == nil {
					unlock()
				}
				return err
			}},
		{name: "var/lib", link: "/var/lib",
			target: func(out string) string { return out },
			op: func(f hostfs.FS) error {
				return f.WriteFile("/var/lib/nodeagent/applied.json", []byte("{}"), hostfs.WriteOptions{Mode: 0o600})
			}},
		{name: "state file", link: "/var/lib/nodeagent/applied.json",
			target: func(out string) string { return filepath.Join(out, "file") },
			op: func(f hostfs.FS) error {
				return f.WriteFile("/var/lib/nodeagent/applied.json", []byte("{}"), hostfs.WriteOptions{Mode: 0o600})
			}},
		{name: "journal dir", link: "/var/lib/nodeagent/journal",
			target: func(out string) string { return filepath.Join(out, "sub") },
			op: func(f hostfs.FS) error {
				f.Rename = func(string, string) error { return syscall.EBUSY } // forces the journaled rewrite
				return f.WriteFile("/etc/hosts", []byte("127.0.0.1 localhost\n"), hostfs.WriteOptions{})
			}},
		{name: "probe dir", link: "/var/lib/nodeagent/probe",
			target: func(out string) string { return filepath.Join(out, "sub") },
			op: func(f hostfs.FS) error {
				return f.WriteFile("/var/lib/nodeagent/probe/php-probe.php", []byte("<?php"), hostfs.WriteOptions{})
			}},
		{name: "apache sites dir", link: "/etc/apache2/sites-enabled",
			target: func(out string) string { return filepath.Join(out, "sub") },
			op: func(f hostfs.FS) error {
				return f.WriteFile("/etc/apache2/sites-enabled/nodeagent-shop.conf", []byte("x"), hostfs.WriteOptions{})
			}},
		{name: "remove through a dir link", link: "/var/lib/nodeagent/health",
			target: func(out string) string { return out },
			op:     func(f hostfs.FS) error { return f.Remove("/var/lib/nodeagent/health/file") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFS(t)
			out := outside(t)
			writeHostFile(t, f.Root, "/etc/hosts", "old\n", 0o644)
			link := filepath.Join(f.Root, tc.link)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.target(out), link); err != nil {
				t.Fatal(err)
			}
			before := treeSnapshot(t, out)
			err := tc.op(f)
			if !errors.Is(err, beneath.ErrSymlink) || !strings.Contains(err.Error(), link) {
				t.Errorf("error %v; want a refusal naming %s", err, link)
			}
			if after := treeSnapshot(t, out); !slices.Equal(before, after) {
				t.Errorf("outside the root changed:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// TestStateDirMode: the state dir is 0711 whoever creates it, and the 0755
// earlier versions made is tightened.
func TestStateDirMode(t *testing.T) {
	f := newFS(t)
	unlock, err := f.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	state := filepath.Join(f.Root, "var/lib/nodeagent")
	if mode, _, _, _ := stat(t, state); mode.Perm() != 0o711 {
		t.Errorf("state dir created %v, want 0711", mode.Perm())
	}
	if mode, _, _, _ := stat(t, filepath.Dir(state)); mode.Perm() != 0o755 {
		t.Errorf("its parent created %v, want 0755", mode.Perm())
	}
	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if unlock, err = f.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	unlock()
	if mode, _, _, _ := stat(t, state); mode.Perm() != 0o711 {
		t.Errorf("state dir left %v, want 0711", mode.Perm())
	}
}
