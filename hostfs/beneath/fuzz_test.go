package beneath_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// FuzzMkdirAll creates directories and writes a file at fuzzed paths in a
// root holding symlinks out of it (absolute, relative, and to a file), and
// checks that nothing outside the root ever changes and that every
// directory opened is inside the root.
func FuzzMkdirAll(f *testing.F) {
	for _, s := range []string{"/a/b", "/out/x", "/rel/x", "/a/../out/x", "/file/x", "/a/b/c/d", "/", "/a/self/x"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, p string, walk bool) {
		if len(p) > 512 || strings.Count(p, "/") > 32 {
			return
		}
		if walk {
			beneath.ForceWalk(t)
		}
		root, outside := tree(t)
		for name, target := range map[string]string{
			"out":  outside,
			"rel":  "../outside",
			"file": filepath.Join(outside, "keep"),
		} {
			if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(root, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("..", filepath.Join(root, "a", "self")); err != nil {
			t.Fatal(err)
		}
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			t.Fatal(err)
		}
		d, err := beneath.MkdirAll(root, p, 0o755)
		if err == nil {
			at, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(d.Fd()))
			d.Close()
			if lerr != nil {
				t.Fatal(lerr)
			}
			if at != realRoot && !strings.HasPrefix(at, realRoot+"/") {
				t.Fatalf("MkdirAll(%q) opened %s, outside %s", p, at, realRoot)
			}
			if p != "/" {
				_ = beneath.WriteFile(root, p+"/f", []byte("x"), 0o644, false)
				_ = beneath.RemoveAll(root, p)
			}
		}
		checkOutside(t, outside)
	})
}
