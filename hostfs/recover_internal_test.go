package hostfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nodeagent/nodeagent/test/testroot"
)

// TestRecover leaves the state a crash during an in-place rewrite leaves
// (journal entry written, target half rewritten; plus a journal entry that
// was itself still being written) and checks Recover converges.
func TestRecover(t *testing.T) {
	testroot.Require(t, "chown to other users")
	root := t.TempDir()
	f := FS{Root: root, StateDir: "/var/lib/nodeagent"}
	hosts := f.Path("/etc/hosts")
	if err := os.MkdirAll(filepath.Dir(hosts), 0o755); err != nil {
		t.Fatal(err)
	}
	const want = "127.0.0.1 localhost\n10.0.0.1\tweb-1\n"
	// Half of the new content over the old: what a crash mid-write leaves.
	if err := os.WriteFile(hosts, []byte(want[:20]+"old old old old old old old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inode := inodeOf(t, hosts)
	if _, err := f.journal("/etc/hosts", []byte(want), attrs{mode: 0o644, uid: 0, gid: 33}); err != nil {
		t.Fatalf("journal: %v", err)
	}
	// A journal entry for a file that does not exist yet.
	const wantNew = "created by replay\n"
	if _, err := f.journal("/etc/nodeagent/new.conf", []byte(wantNew), attrs{mode: 0o640, uid: 33, gid: 33}); err != nil {
		t.Fatalf("journal: %v", err)
	}
	if err := os.MkdirAll(f.Path("/etc/nodeagent"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An entry still being written when the crash came: its target must
	// stay untouched.
	incomplete := filepath.Join(f.journalDir(), journalTempPrefix+"123")
	if err := os.WriteFile(incomplete, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	for run := 1; run <= 2; run++ { // the second run finds nothing to do
		if err := f.Recover(); err != nil {
			t.Fatalf("Recover run %d: %v", run, err)
		}
		checkFile(t, hosts, want, 0o644, 0, 33)
		checkFile(t, f.Path("/etc/nodeagent/new.conf"), wantNew, 0o640, 33, 33)
		if got := inodeOf(t, hosts); got != inode {
			t.Errorf("run %d: inode changed %d -> %d, want an in-place rewrite", run, inode, got)
		}
		if entries, err := os.ReadDir(f.journalDir()); err != nil || len(entries) != 0 {
			t.Errorf("run %d: journal holds %v, %v; want empty", run, entries, err)
		}
	}
}

func TestRecoverWithoutJournal(t *testing.T) {
	f := FS{Root: t.TempDir()}
	if err := f.Recover(); err != nil {
		t.Errorf("Recover with no journal dir: %v", err)
	}
}

func TestRecoverRefusesForeignEntry(t *testing.T) {
	f := FS{Root: t.TempDir()}
	if err := os.MkdirAll(f.journalDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.journalDir(), "not-a-path"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Recover(); err == nil {
		t.Error("Recover accepted a journal entry that names no host path")
	}
}

func inodeOf(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func checkFile(t *testing.T, p, content string, mode fs.FileMode, uid, gid uint32) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != content {
		t.Errorf("%s = %q, %v; want %q", p, got, err, content)
		return
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s mode/uid/gid = %v/%d/%d, want %v/%d/%d", p, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}
