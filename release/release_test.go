package release_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/test/testroot"
)

func newManager(t testing.TB, root string, store nodeagent.ReleaseStore) *release.Manager {
	return &release.Manager{Root: root, Store: store, Logger: testLogger(t), Now: newClock(time.Minute).Now}
}

func TestInstallActivateRollback(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	store := &fileStore{}
	m := newManager(t, root, store)
	ctx := context.Background()
	l := m.Layout("shop")
	r1 := publish(t, pub, "2026.11.20-1", goodArchive(t, "one"))
	r2 := publish(t, pub, "2026.11.20-2", goodArchive(t, "two"))

	if id, err := m.Active("shop"); err != nil || id != "" {
		t.Fatalf("Active before any release = %q, %v; want \"\", nil", id, err)
	}
	if m.Installed("shop", r1) {
		t.Fatal("Installed before Install")
	}
	if err := m.Install(ctx, "shop", r1); err != nil {
		t.Fatal(err)
	}
	if !m.Installed("shop", r1) {
		t.Fatal("not Installed after Install")
	}
	if m.Installed("shop", nodeagent.Release{ID: r1.ID, URL: r1.URL, SHA256: r2.SHA256}) {
		t.Fatal("Installed with another sha256")
	}
	// Twice: no second download.
	if err := m.Install(ctx, "shop", r1); err != nil {
		t.Fatal(err)
	}
	if n := store.opens.Load(); n != 1 {
		t.Fatalf("store opened %d times for one release installed twice, want 1", n)
	}

	// Modes: no group/other write, dirs 0755, the executable stays executable.
	for path, want := range map[string]fs.FileMode{
		"public/index.php":  0o644,
		"bin/console":       0o755,
		"config/secret.php": 0o600,
		"public":            fs.ModeDir | 0o755,
		"bin":               fs.ModeDir | 0o755,
		".":                 fs.ModeDir | 0o755,
	} {
		fi, err := os.Lstat(filepath.Join(l.Release(r1.ID), path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode(), want)
		}
	}
	fi, err := os.Stat(filepath.Join(l.Release(r1.ID), "public/index.php"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("mtime %v, want the archive's", fi.ModTime())
	}

	prev, err := m.Activate("shop", r1.ID)
	if err != nil || prev != "" {
		t.Fatalf("Activate first = %q, %v; want \"\", nil", prev, err)
	}
	if target, err := os.Readlink(l.Current()); err != nil || target != "releases/"+r1.ID {
		t.Fatalf("current -> %q, %v", target, err)
	}
	// The app writes into shared/ through its storage link.
	if err := os.MkdirAll(filepath.Join(l.Shared(), "storage"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.Current(), "storage", "session"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := m.Install(ctx, "shop", r2); err != nil {
		t.Fatal(err)
	}
	prev, err = m.Activate("shop", r2.ID)
	if err != nil || prev != r1.ID {
		t.Fatalf("Activate r2 = %q, %v; want %q", prev, err, r1.ID)
	}
	if b, err := os.ReadFile(filepath.Join(l.Current(), "public/index.php")); err != nil || string(b) != "<?php echo 'Welcome two';\n" {
		t.Fatalf("current/public/index.php = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(l.Current(), "storage", "session")); err != nil || string(b) != "kept" {
		t.Fatalf("shared file after switch = %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(l.Base, "current.tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("current.tmp left behind: %v", err)
	}

	// Smoke checks failed: roll back.
	back, err := m.Activate("shop", prev)
	if err != nil || back != r2.ID {
		t.Fatalf("rollback = %q, %v; want %q", back, err, r2.ID)
	}
	if id, _ := m.Active("shop"); id != r1.ID {
		t.Fatalf("Active after rollback = %q, want %q", id, r1.ID)
	}
	if b, err := os.ReadFile(filepath.Join(l.Current(), "storage", "session")); err != nil || string(b) != "kept" {
		t.Fatalf("shared file after rollback = %q, %v", b, err)
	}
	// Activating the active release changes nothing.
	if back, err := m.Activate("shop", r1.ID); err != nil || back != r1.ID {
		t.Fatalf("Activate active = %q, %v", back, err)
	}
	if n := store.opens.Load(); n != 2 {
		t.Fatalf("store opened %d times for two releases, want 2", n)
	}
	if _, err := os.Lstat(l.Staging()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("staging dir left: %v", err)
	}
}

func TestSharedOwner(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nwww-data:x:33:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, root, &fileStore{})
	m.Owner, m.Group = "www-data", "www-data"
	r := publish(t, pub, "r1", goodArchive(t, "one"))
	if err := m.Install(context.Background(), "shop", r); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Activate("shop", r.ID); err != nil {
		if os.Geteuid() != 0 {
			testroot.Unavailable(t, "chown to www-data needs root: %v", err)
		}
		t.Fatal(err)
	}
	uid, gid := owner(t, m.Layout("shop").Shared())
	if uid != 33 || gid != 33 {
		t.Fatalf("shared owned by %d:%d, want 33:33", uid, gid)
	}
	if uid, _ := owner(t, m.Layout("shop").Release(r.ID)+"/public/index.php"); uid != os.Geteuid() {
		t.Fatalf("release file owned by %d, want the agent's uid %d", uid, os.Geteuid())
	}

	m.Owner = "nobody-here"
	if _, err := m.Activate("shop", r.ID); err == nil {
		t.Fatal("Activate with an unknown owner succeeded")
	}
}

func TestPrune(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	m := newManager(t, root, &fileStore{})
	ctx := context.Background()
	ids := []string{"r1", "r2", "r3", "r4", "r5"}
	for _, id := range ids {
		r := publish(t, pub, id, goodArchive(t, id))
		if err := m.Install(ctx, "shop", r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Activate("shop", "r1"); err != nil {
		t.Fatal(err)
	}
	left := func() []string {
		entries, err := os.ReadDir(m.Layout("shop").Releases())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	tests := []struct {
		name        string
		activate    string
		wantRemoved []string
		wantLeft    []string
	}{
		{name: "oldest active is kept beside the newest three", activate: "r1", wantRemoved: []string{"r2"}, wantLeft: []string{"r1", "r3", "r4", "r5"}},
		{name: "newest active", activate: "r5", wantRemoved: []string{"r1"}, wantLeft: []string{"r3", "r4", "r5"}},
		{name: "converged", activate: "r5", wantRemoved: nil, wantLeft: []string{"r3", "r4", "r5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Activate("shop", tc.activate); err != nil {
				t.Fatal(err)
			}
			removed, err := m.Prune("shop")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(removed, tc.wantRemoved) {
				t.Errorf("removed %v, want %v", removed, tc.wantRemoved)
			}
			if got := left(); !slices.Equal(got, tc.wantLeft) {
				t.Errorf("left %v, want %v", got, tc.wantLeft)
			}
			if id, _ := m.Active("shop"); id != tc.activate {
				t.Errorf("active %q after prune, want %q", id, tc.activate)
			}
		})
	}
}

func TestInstallRefusesBadInput(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	m := newManager(t, root, &fileStore{})
	good := publish(t, pub, "r1", goodArchive(t, "one"))
	tests := []struct {
		name    string
		product string
		r       nodeagent.Release
	}{
		{name: "id with slash", product: "shop", r: nodeagent.Release{ID: "a/b", URL: good.URL, SHA256: good.SHA256}},
		{name: "id dot dot", product: "shop", r: nodeagent.Release{ID: "..", URL: good.URL, SHA256: good.SHA256}},
		{name: "product with slash", product: "../etc", r: good},
		{name: "short sha256", product: "shop", r: nodeagent.Release{ID: "r1", URL: good.URL, SHA256: "abc"}},
		{name: "no url", product: "shop", r: nodeagent.Release{ID: "r1", SHA256: good.SHA256}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Install(context.Background(), tc.product, tc.r); err == nil {
				t.Fatal("Install succeeded")
			}
		})
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("bad input wrote into the root: %v", entries)
	}
}

func TestActivateRefuses(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	m := newManager(t, root, &fileStore{})
	l := m.Layout("shop")
	if _, err := m.Activate("shop", "never-installed"); err == nil {
		t.Fatal("Activate of a release never installed succeeded")
	}
	r := publish(t, pub, "r1", goodArchive(t, "one"))
	if err := m.Install(context.Background(), "shop", r); err != nil {
		t.Fatal(err)
	}
	// A hand-made current directory is not replaced.
	if err := os.MkdirAll(filepath.Join(l.Current(), "index.html"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Active("shop"); err == nil {
		t.Fatal("Active with a current directory succeeded")
	}
	if _, err := m.Activate("shop", r.ID); err == nil {
		t.Fatal("Activate over a current directory succeeded")
	}
	if _, err := m.Prune("shop"); err == nil {
		t.Fatal("Prune without knowing the active release succeeded")
	}
}

func TestInstallReplacesStaleDirectory(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	m := newManager(t, root, &fileStore{})
	l := m.Layout("shop")
	ctx := context.Background()
	// A directory without a marker (copied by hand) is replaced.
	if err := os.MkdirAll(filepath.Join(l.Release("r1"), "junk"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := publish(t, pub, "r1", goodArchive(t, "one"))
	if err := m.Install(ctx, "shop", r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Release("r1"), "junk")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale content kept: %v", err)
	}
	// The active release re-published with another checksum is refused,
	// not overwritten under the running site.
	if _, err := m.Activate("shop", "r1"); err != nil {
		t.Fatal(err)
	}
	changed := publish(t, pub, "r1", goodArchive(t, "changed"))
	err := m.Install(ctx, "shop", changed)
	if err == nil {
		t.Fatal("Install over the active release with another sha256 succeeded")
	}
	if !m.Installed("shop", r) {
		t.Fatal("active release damaged")
	}
}
