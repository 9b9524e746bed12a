package hostfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestConfineDirAgreesWithFullResolution checks confineDir, which skips
// resolving directories reached below Root through no symlink, against the
// full resolution from "/" (confineDirFull, all confineDir did before
// plainBelow) on a tree with every kind of component: Root
// itself reached through a symlink, real directories, symlinks that stay
// inside, symlinks out of Root (absolute, relative and chained), a dangling
// symlink, a file where a directory is expected and missing components.
func TestConfineDirAgreesWithFullResolution(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "outside")
	real := filepath.Join(base, "real-root")
	for _, d := range []string{out, real, filepath.Join(real, "etc/apache2/sites-enabled"), filepath.Join(real, "var/lib/nodeagent"), filepath.Join(real, "srv/data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(real, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"etc/inside":       "apache2",                  // relative, stays inside
		"etc/inside-abs":   filepath.Join(real, "srv"), // absolute, to Root's real path
		"etc/out-abs":      out,                        // absolute, out of Root
		"etc/out-rel":      "../../outside",            // relative, out of Root
		"var/lib/chain":    "../../etc/out-rel",        // inside, then out
		"var/lib/dangling": "no-such-dir",
		"srv/up":           "..", // Root itself
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(real, name)); err != nil {
			t.Fatal(err)
		}
	}
	// Root as the operator names it: through a symlinked parent.
	viaLink := filepath.Join(base, "mnt")
	if err := os.Symlink(base, viaLink); err != nil {
		t.Fatal(err)
	}
	dirs := []string{
		"", "etc", "etc/apache2", "etc/apache2/sites-enabled", "etc/apache2/missing/deeper",
		"etc/hosts", "etc/hosts/below-a-file",
		"etc/inside", "etc/inside/sites-enabled", "etc/inside-abs", "etc/inside-abs/data",
		"etc/out-abs", "etc/out-abs/sub", "etc/out-rel", "etc/out-rel/missing",
		"var/lib/chain", "var/lib/chain/x", "var/lib/dangling", "var/lib/dangling/x",
		"srv/up", "srv/up/etc", "missing", "missing/a/b",
	}
	// A root with ".." after a symlink: the kernel goes up from the link's
	// target (other/), Path drops it lexically (real-root/).
	if err := os.MkdirAll(filepath.Join(base, "other/x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(base, "other/real-root/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "other/x"), filepath.Join(base, "lnk")); err != nil {
		t.Fatal(err)
	}
	dotdot := filepath.Join(base, "lnk") + "/../real-root"
	for _, root := range []string{real, filepath.Join(viaLink, "real-root"), dotdot, filepath.Join(base, "no-such-root")} {
		f := FS{Root: root}
		escapes := 0
		for _, d := range dirs {
			dir := filepath.Join(root, d)
			got, want := f.confineDir(dir), f.confineDirFull(dir)
			if errors.Is(got, ErrEscapesRoot) != errors.Is(want, ErrEscapesRoot) || (got == nil) != (want == nil) {
				t.Errorf("root %s, dir %q: confineDir = %v, full resolution = %v", root, d, got, want)
			}
			if errors.Is(want, ErrEscapesRoot) {
				escapes++
			}
		}
		// The tree must exercise both outcomes, or the comparison says little.
		want := 6
		switch root {
		case dotdot:
			// Every path Path builds is outside what the kernel calls the
			// root, but for the dangling link and below it, which the
			// full resolution lets through to fail at the open.
			want = len(dirs) - 2
		case filepath.Join(base, "no-such-root"):
			want = 0 // the full resolution fails to resolve the root instead
		}
		if escapes != want {
			t.Errorf("root %s: %d directories escape by full resolution, want %d (the tree changed?)", root, escapes, want)
		}
	}
}

// TestPlainBelow checks which paths take the shortcut: only those under
// root through no symlink.
func TestPlainBelow(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(root, "a/link")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir  string
		want bool
	}{
		{root, false}, // root itself: the full resolution checks that it exists
		{root + "/a", true},
		{root + "/a/b", true},
		{root + "/a/b/missing/deeper", true},
		{root + "/missing", false}, // root's first component missing: Root may be

		{root + "/a/link", false},
		{root + "/a/link/x", false},
		{root + "x/a", false},       // a sibling whose name starts with root's
		{filepath.Dir(root), false}, // above root
		{"/etc", false},             // elsewhere
	} {
		if got := plainBelow(root, tt.dir); got != tt.want {
			t.Errorf("plainBelow(root, %q) = %v, want %v", tt.dir, got, tt.want)
		}
	}
}
