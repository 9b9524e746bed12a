package release_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
	"github.com/nodeagent/nodeagent/release"
)

// outsideDir makes a directory beside the root with content the agent must
// never touch, and returns it.
func outsideDir(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "outside")
	if err := os.MkdirAll(filepath.Join(out, "keep"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "keep", "data"), []byte("precious"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "file"), []byte("precious too"), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlantedSymlinksAreRefused plants a symlink out of the root at each
// directory of the product tree: installing, activating and pruning are
// refused with an error naming the link, and nothing outside the root
// changes (a snapshot of the tree, contents and modes, before and after).
func TestPlantedSymlinksAreRefused(t *testing.T) {
	for _, at := range []string{"var/www", "var/www/shop", "var/www/shop/releases", "var/www/shop/.staging"} {
		t.Run(at, func(t *testing.T) {
			root, pub := t.TempDir(), t.TempDir()
			out := outsideDir(t)
			m := newManager(t, root, &fileStore{})
			m.Owner, m.Group = "1234", "1234"
			link := filepath.Join(root, at)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(out, link); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, out)
			r := publish(t, pub, "r1", goodArchive(t, "one"))

			err := m.Install(context.Background(), "shop", r)
			if !errors.Is(err, beneath.ErrSymlink) || !strings.Contains(err.Error(), link) {
				t.Errorf("install: %v; want a refusal naming %s", err, link)
			}
			if _, err := m.Activate("shop", r.ID); err == nil {
				t.Error("activate succeeded")
			}
			if _, err := m.Prune("shop"); !errors.Is(err, beneath.ErrSymlink) && !strings.HasSuffix(at, "releases") {
				t.Errorf("prune: %v; want a refusal naming %s", err, link)
			}
			if after := snapshot(t, out); !slices.Equal(before, after) {
				t.Errorf("outside the root changed:\nbefore %q\nafter  %q", before, after)
			}
			uid, gid := owner(t, out)
			if uid == 1234 || gid == 1234 {
				t.Errorf("outside dir chowned to %d:%d", uid, gid)
			}
		})
	}
}

// TestSharedSymlinkLeftAlone: shared may be an operator's link to a volume;
// the agent neither chowns nor writes through it.
func TestSharedSymlinkLeftAlone(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	out := outsideDir(t)
	m := newManager(t, root, &fileStore{})
	m.Owner, m.Group = "1234", "1234"
	if err := os.MkdirAll(m.Layout("shop").Base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, m.Layout("shop").Shared()); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, out)
	r := publish(t, pub, "r1", goodArchive(t, "one"))
	if err := m.Install(context.Background(), "shop", r); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Activate("shop", r.ID); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, out); !slices.Equal(before, after) {
		t.Errorf("outside the root changed:\nbefore %q\nafter  %q", before, after)
	}
	if uid, gid := owner(t, out); uid == 1234 || gid == 1234 {
		t.Errorf("shared's target chowned to %d:%d", uid, gid)
	}
}

// deepArchive is the hostile release: n empty files each under
// depth directories (z<i>/d/d/.../f), tiny compressed, made of implicit
// directories.
func deepArchive(t testing.TB, n, depth int) []byte {
	var entries []entry
	for i := range n {
		name := "z" + strconv.Itoa(i) + strings.Repeat("/d", depth-1) + "/f"
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Format: tar.FormatPAX}})
	}
	return tarGz(t, entries...)
}

func TestImplicitDirectoriesAreCounted(t *testing.T) {
	tests := []struct {
		name    string
		archive func(t testing.TB) []byte
		set     func(m *release.Manager)
		rule    release.Rule
	}{
		{name: "900 levels (the issue's 2.3 KB release)", rule: release.RulePathLength,
			archive: func(t testing.TB) []byte { return deepArchive(t, 100, 900) }},
		{name: "deeper than the limit", rule: release.RuleDepth,
			archive: func(t testing.TB) []byte { return deepArchive(t, 1, release.DefaultMaxDepth+1) }},
		{name: "implicit directories past the inode limit", rule: release.RuleInodes,
			archive: func(t testing.TB) []byte { return deepArchive(t, 10, 10) },
			set:     func(m *release.Manager) { m.MaxInodes = 50 }},
		{name: "long path", rule: release.RulePathLength,
			archive: func(t testing.TB) []byte {
				return tarGz(t, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("a", 2000), Mode: 0o644, Format: tar.FormatPAX}})
			}},
		{name: "long link target", rule: release.RulePathLength,
			archive: func(t testing.TB) []byte {
				return tarGz(t, symlink("l", strings.Repeat("a/", 600)+"b"))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, pub := t.TempDir(), t.TempDir()
			m := newManager(t, root, &fileStore{})
			if tc.set != nil {
				tc.set(m)
			}
			archive := tc.archive(t)
			t.Logf("archive: %d bytes", len(archive))
			err := m.Install(context.Background(), "shop", publish(t, pub, "deep", archive))
			var ae *release.ArchiveError
			if !errors.As(err, &ae) || ae.Rule != tc.rule {
				t.Fatalf("install: %v; want refusal by %q", err, tc.rule)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("message is %d bytes long", len(err.Error()))
			}
			t.Logf("refused: %v", err)
			if left := snapshot(t, filepath.Join(root, "var/www/shop")); len(left) != 1 {
				t.Errorf("left behind: %q", left)
			}
		})
	}
}

// TestRefusalEchoesNoContent: a release URL naming a file that is not an
// archive at all (file:///etc/shadow) is refused without a byte of it in
// the message, which reaches logs and status.json.
func TestRefusalEchoesNoContent(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	m := newManager(t, root, &fileStore{})
	secret := []byte("root:$6$saltsalt$hash:19000:0:99999:7:::\n")
	err := m.Install(context.Background(), "shop", publish(t, pub, "shadow", secret))
	var ae *release.ArchiveError
	if !errors.As(err, &ae) || ae.Rule != release.RuleFormat {
		t.Fatalf("install: %v; want a refusal by %q", err, release.RuleFormat)
	}
	msg := strings.ToLower(err.Error())
	for _, leak := range []string{"72 6f", "726f", "root", "$6$"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q holds %q from the file", err, leak)
		}
	}
}
