package beneath_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// bothWays runs a test with openat2 and with the O_NOFOLLOW walk.
func bothWays(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", f)
	t.Run("walk", func(t *testing.T) {
		beneath.ForceWalk(t)
		f(t)
	})
}

// tree makes a root and, beside it, an "outside" directory holding a file.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func mustSymlinkErr(t *testing.T, err error, wantPath string) {
	t.Helper()
	var se *beneath.SymlinkError
	if !errors.As(err, &se) || !errors.Is(err, beneath.ErrSymlink) {
		t.Fatalf("error %v: want a *SymlinkError", err)
	}
	if se.Path != wantPath {
		t.Fatalf("symlink error names %s, want %s", se.Path, wantPath)
	}
	if !strings.Contains(err.Error(), wantPath) {
		t.Fatalf("message %q does not name %s", err, wantPath)
	}
}

func checkOutside(t *testing.T, outside string) {
	t.Helper()
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "keep" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("outside dir now holds %v", names)
	}
	b, err := os.ReadFile(filepath.Join(outside, "keep"))
	if err != nil || string(b) != "outside" {
		t.Fatalf("outside file: %q, %v", b, err)
	}
}

func TestPlantedSymlinksAreRefused(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		for _, at := range []string{"/var", "/var/www", "/var/www/shop"} {
			t.Run(at, func(t *testing.T) {
				root, outside := tree(t)
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, at)), 0o755); err != nil {
					t.Fatal(err)
				}
				link := filepath.Join(root, at)
				if err := os.Symlink(outside, link); err != nil {
					t.Fatal(err)
				}
				_, err := beneath.MkdirAll(root, "/var/www/shop/releases", 0o755)
				mustSymlinkErr(t, err, link)
				_, err = beneath.OpenDir(root, "/var/www/shop")
				mustSymlinkErr(t, err, link)
				err = beneath.WriteFile(root, "/var/www/shop/keep", []byte("x"), 0o644, true)
				mustSymlinkErr(t, err, link)
				err = beneath.RemoveAll(root, "/var/www/shop/keep")
				mustSymlinkErr(t, err, link)
				err = beneath.Rename(root, "/a", "/var/www/shop/keep")
				if err == nil {
					t.Fatal("rename into a symlinked dir succeeded")
				}
				err = beneath.Lchown(root, "/var/www/shop/keep", 0, 0)
				mustSymlinkErr(t, err, link)
				checkOutside(t, outside)
			})
		}
	})
}

func TestFinalSymlink(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		root, outside := tree(t)
		if err := os.MkdirAll(filepath.Join(root, "state"), 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(root, "state", "lock")
		if err := os.Symlink(filepath.Join(outside, "keep"), link); err != nil {
			t.Fatal(err)
		}
		_, err := beneath.Open(root, "/state/lock", os.O_RDWR|os.O_CREATE, 0o644)
		mustSymlinkErr(t, err, link)
		err = beneath.WriteFile(root, "/state/lock", []byte("x"), 0o644, false)
		mustSymlinkErr(t, err, link)
		_, err = beneath.ReadFile(root, "/state/lock")
		mustSymlinkErr(t, err, link)
		// A symlink as the directory to open is refused too.
		dlink := filepath.Join(root, "state", "dir")
		if err := os.Symlink(outside, dlink); err != nil {
			t.Fatal(err)
		}
		_, err = beneath.OpenDir(root, "/state/dir")
		mustSymlinkErr(t, err, dlink)
		_, err = beneath.MkdirAll(root, "/state/dir", 0o755)
		mustSymlinkErr(t, err, dlink)

		// Links themselves are read, removed and replaced, not followed.
		if got, err := beneath.Readlink(root, "/state/dir"); err != nil || got != outside {
			t.Fatalf("readlink: %q, %v", got, err)
		}
		if fi, err := beneath.Lstat(root, "/state/dir"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
			t.Fatalf("lstat: %v, %v", fi, err)
		}
		if err := beneath.RemoveAll(root, "/state/dir"); err != nil {
			t.Fatal(err)
		}
		if err := beneath.Symlink(root, "elsewhere", "/state/new.tmp"); err != nil {
			t.Fatal(err)
		}
		if err := beneath.Rename(root, "/state/new.tmp", "/state/lock"); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(link); err != nil || got != "elsewhere" {
			t.Fatalf("after rename: %q, %v", got, err)
		}
		checkOutside(t, outside)
	})
}

func TestRemoveAllNeverFollows(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		root, outside := tree(t)
		dir := filepath.Join(root, "debris", "a", "b")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := beneath.RemoveAll(root, "/debris"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(root, "debris")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("debris still there: %v", err)
		}
		checkOutside(t, outside)
	})
}

func TestMkdirAllExactMode(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		root, _ := tree(t)
		d, err := beneath.MkdirAll(root, "/var/lib/nodeagent", 0o711)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, p := range []string{"var", "var/lib", "var/lib/nodeagent"} {
			fi, err := os.Stat(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o711 {
				t.Fatalf("%s: mode %v, want 0711", p, fi.Mode().Perm())
			}
		}
		if err := d.WriteFile("status.json", []byte("{}"), 0o600, true); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(root, "var/lib/nodeagent/status.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("status.json: %v, %v", fi, err)
		}
	})
}

func TestInvalidPaths(t *testing.T) {
	root, _ := tree(t)
	for _, p := range []string{"", "rel", "/a/../b", "/a/", "/a//b", "/a/./b", "/a\x00b"} {
		if _, err := beneath.OpenDir(root, p); !errors.Is(err, beneath.ErrInvalidPath) {
			t.Errorf("OpenDir(%q): %v, want ErrInvalidPath", p, err)
		}
	}
}

// A Dir closed twice does not close its old descriptor number again: by
// then it may be another file's. Closed with or without its *os.File.
func TestDirCloseTwiceClosesNothingElse(t *testing.T) {
	root, _ := tree(t)
	for _, wrapped := range []bool{false, true} {
		d, err := beneath.OpenDir(root, "/")
		if err != nil {
			t.Fatal(err)
		}
		fd := d.Fd()
		if wrapped && d.File() == nil {
			t.Fatal("File of an open Dir is nil")
		}
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		// Another file takes the number the Dir had.
		other, err := os.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Dup3(int(other.Fd()), fd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("wrapped=%v: second Close = %v, want fs.ErrClosed", wrapped, err)
		}
		if d.File() != nil {
			t.Errorf("wrapped=%v: File after Close is not nil", wrapped)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			t.Errorf("wrapped=%v: the second Close closed descriptor %d, which another file had taken: %v", wrapped, fd, err)
		}
		unix.Close(fd)
		other.Close()
	}
}
