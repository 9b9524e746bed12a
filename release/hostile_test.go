package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/release"
)

// zeros is an io.Reader of n zero bytes.
func zeros(n int64) io.Reader { return io.LimitReader(zeroReader{}, n) }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bomb is a tar.gz with one highly compressible entry of size bytes.
func bomb(t testing.TB, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "public/video.bin", Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(tw, zeros(size)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lyingHeader is an entry whose header claims 512 bytes followed by 4 MiB
// of data: the excess must not be unpacked anywhere.
func lyingHeader(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "small.txt", Mode: 0o644, Size: 512}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bytes.Repeat([]byte("A"), 512)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := gz.Write(bytes.Repeat([]byte("A"), 4<<20)); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// appendGzip appends a second gzip member holding data.
func appendGzip(t testing.TB, archive []byte, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(archive)
	gz := gzip.NewWriter(&buf)
	gz.Write(data)
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHostileArchivesAreRefused(t *testing.T) {
	good := goodArchive(t, "good")
	tests := []struct {
		name      string
		archive   func(t testing.TB) []byte
		badSum    bool // publish with a wrong sha256
		maxBytes  int64
		maxFiles  int
		wantRule  release.Rule // "" for a checksum error
		wantEntry string       // named in the error
	}{
		{name: "path traversal", wantRule: release.RuleDotDot, wantEntry: "public/../../../../escape.php",
			archive: func(t testing.TB) []byte {
				return tarGz(t, file("public/index.php", "ok", 0o644), file("public/../../../../escape.php", "pwned", 0o644))
			}},
		{name: "leading dot dot", wantRule: release.RuleDotDot, wantEntry: "../escape.php",
			archive: func(t testing.TB) []byte { return tarGz(t, file("../escape.php", "pwned", 0o644)) }},
		{name: "absolute path", wantRule: release.RuleAbsolute, wantEntry: "/etc/cron.d/pwned",
			archive: func(t testing.TB) []byte {
				return tarGz(t, file("index.php", "ok", 0o644), file("/etc/cron.d/pwned", "* * * * * root sh", 0o644))
			}},
		{name: "symlink escape", wantRule: release.RuleLinkEscape, wantEntry: "etc",
			archive: func(t testing.TB) []byte {
				return tarGz(t, symlink("etc", "../../../../etc"), file("etc/passwd", "pwned", 0o644))
			}},
		{name: "symlink absolute target", wantRule: release.RuleLinkEscape, wantEntry: "passwd",
			archive: func(t testing.TB) []byte { return tarGz(t, symlink("passwd", "/etc/passwd")) }},
		{name: "symlink into another release", wantRule: release.RuleLinkEscape, wantEntry: "public/old",
			archive: func(t testing.TB) []byte { return tarGz(t, dir("public/"), symlink("public/old", "../../good/config")) }},
		{name: "symlink climbing back through a link", wantRule: release.RuleLinkEscape, wantEntry: "up",
			archive: func(t testing.TB) []byte {
				return tarGz(t, symlink("storage", "../../shared/storage"), symlink("up", "storage/../.."))
			}},
		{name: "write through an allowed link", wantRule: release.RuleDuplicate, wantEntry: "storage/evil.php",
			archive: func(t testing.TB) []byte {
				return tarGz(t, symlink("storage", "../../shared/storage"), file("storage/evil.php", "pwned", 0o644))
			}},
		{name: "replace a link with a file", wantRule: release.RuleDuplicate, wantEntry: "public",
			archive: func(t testing.TB) []byte {
				return tarGz(t, symlink("public", "../../shared/storage"), file("public", "pwned", 0o644))
			}},
		{name: "hard link escape", wantRule: release.RuleHardLink, wantEntry: "passwd",
			archive: func(t testing.TB) []byte { return tarGz(t, hardlink("passwd", "../../../../etc/passwd")) }},
		{name: "hard link absolute", wantRule: release.RuleHardLink, wantEntry: "shadow",
			archive: func(t testing.TB) []byte { return tarGz(t, hardlink("shadow", "/etc/shadow")) }},
		{name: "hard link to a later entry", wantRule: release.RuleHardLink, wantEntry: "a.php",
			archive: func(t testing.TB) []byte {
				return tarGz(t, hardlink("a.php", "b.php"), file("b.php", "later", 0o644))
			}},
		{name: "hard link to a symlink", wantRule: release.RuleHardLink, wantEntry: "h",
			archive: func(t testing.TB) []byte {
				return tarGz(t, symlink("storage", "../../shared/storage"), hardlink("h", "storage"))
			}},
		{name: "char device", wantRule: release.RuleDevice, wantEntry: "public/null",
			archive: func(t testing.TB) []byte {
				return tarGz(t, dir("public/"), entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "public/null", Mode: 0o666, Devmajor: 1, Devminor: 3}})
			}},
		{name: "block device", wantRule: release.RuleDevice, wantEntry: "sda",
			archive: func(t testing.TB) []byte {
				return tarGz(t, entry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Mode: 0o660, Devmajor: 8}})
			}},
		{name: "fifo", wantRule: release.RuleFifo, wantEntry: "pipe",
			archive: func(t testing.TB) []byte {
				return tarGz(t, entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o644}})
			}},
		{name: "setuid file", wantRule: release.RuleSpecialBits, wantEntry: "bin/su",
			archive: func(t testing.TB) []byte { return tarGz(t, file("bin/su", "#!/bin/sh\n", 0o4755)) }},
		{name: "setgid directory", wantRule: release.RuleSpecialBits, wantEntry: "cache/",
			archive: func(t testing.TB) []byte {
				return tarGz(t, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "cache/", Mode: 0o2775}})
			}},
		{name: "sticky directory", wantRule: release.RuleSpecialBits, wantEntry: "tmp/",
			archive: func(t testing.TB) []byte {
				return tarGz(t, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}})
			}},
		{name: "duplicate entry", wantRule: release.RuleDuplicate, wantEntry: "index.php",
			archive: func(t testing.TB) []byte {
				return tarGz(t, file("index.php", "one", 0o644), file("index.php", "two", 0o644))
			}},
		{name: "marker forged by the archive", wantRule: release.RuleReserved, wantEntry: release.MarkerName,
			archive: func(t testing.TB) []byte { return tarGz(t, file(release.MarkerName, "{}", 0o644)) }},
		{name: "sha256 mismatch", badSum: true, archive: func(t testing.TB) []byte { return good }},
		{name: "truncated gzip", wantRule: release.RuleCorrupt,
			archive: func(t testing.TB) []byte { return good[:len(good)/2] }},
		{name: "truncated inside the gzip trailer", wantRule: release.RuleCorrupt,
			archive: func(t testing.TB) []byte { return good[:len(good)-4] }},
		{name: "corrupt deflate data", wantRule: release.RuleCorrupt,
			archive: func(t testing.TB) []byte {
				b := slices.Clone(good)
				for i := 20; i < 60; i++ {
					b[i] ^= 0x5a
				}
				return b
			}},
		{name: "zip bomb", maxBytes: 1 << 20, wantRule: release.RuleSize, wantEntry: "public/video.bin",
			archive: func(t testing.TB) []byte { return bomb(t, 16<<20) }},
		{name: "many entries together past the size limit", maxBytes: 1 << 20, wantRule: release.RuleSize, wantEntry: "c.bin",
			archive: func(t testing.TB) []byte {
				half := strings.Repeat("x", 512<<10)
				return tarGz(t, file("a.bin", half, 0o644), file("b.bin", half, 0o644), file("c.bin", "x", 0o644))
			}},
		{name: "lying header", wantRule: release.RuleCorrupt,
			archive: lyingHeader},
		{name: "entry count", maxFiles: 10, wantRule: release.RuleFileCount, wantEntry: "f10",
			archive: func(t testing.TB) []byte {
				var es []entry
				for i := range 11 {
					es = append(es, file("f"+string(rune('0'+i/10))+string(rune('0'+i%10)), "x", 0o644))
				}
				es[10].hdr.Name = "f10"
				return tarGz(t, es...)
			}},
		{name: "zip file", wantRule: release.RuleFormat,
			archive: func(t testing.TB) []byte { return []byte("PK\x03\x04 not really a zip") }},
		{name: "uncompressed tar", wantRule: release.RuleFormat,
			archive: func(t testing.TB) []byte {
				gz, _ := gzip.NewReader(bytes.NewReader(good))
				b, _ := io.ReadAll(gz)
				return b
			}},
		{name: "empty file", wantRule: release.RuleFormat,
			archive: func(t testing.TB) []byte { return nil }},
		{name: "data after the end of the archive", wantRule: release.RuleTrailing,
			archive: func(t testing.TB) []byte { return appendGzip(t, good, []byte("#!/bin/sh\nrm -rf /\n")) }},
		{name: "garbage after the gzip stream", wantRule: release.RuleCorrupt,
			archive: func(t testing.TB) []byte { return append(slices.Clone(good), "garbage"...) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, pub := t.TempDir(), t.TempDir()
			store := &fileStore{}
			m := newManager(t, root, store)
			m.MaxBytes, m.MaxFiles = tc.maxBytes, tc.maxFiles
			ctx := context.Background()
			l := m.Layout("shop")

			// A node serving release "good", with content in shared/ and
			// a host file next door.
			okRel := publish(t, pub, "good", good)
			if err := m.Install(ctx, "shop", okRel); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Activate("shop", okRel.ID); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(l.Shared(), "storage"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(l.Shared(), "storage", "upload.jpg"), []byte("user data"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, root)

			bad := publish(t, pub, "bad", tc.archive(t))
			if tc.badSum {
				bad.SHA256 = strings.Repeat("ab", 32)
			}
			err := m.Install(ctx, "shop", bad)
			if err == nil {
				t.Fatal("hostile archive installed")
			}
			t.Logf("refused: %v", err)
			msg := err.Error()
			if !strings.Contains(msg, bad.URL) {
				t.Errorf("error does not name the url %s", bad.URL)
			}
			if tc.wantRule == "" {
				var ce *release.ChecksumError
				if !errors.As(err, &ce) {
					t.Fatalf("error is not a ChecksumError: %v", err)
				}
				if !strings.Contains(msg, bad.SHA256) || !strings.Contains(msg, okRel.SHA256) {
					t.Errorf("error does not name expected %s and actual %s", bad.SHA256, okRel.SHA256)
				}
			} else {
				var ae *release.ArchiveError
				if !errors.As(err, &ae) {
					t.Fatalf("error is not an ArchiveError: %v", err)
				}
				if ae.Rule != tc.wantRule {
					t.Errorf("rule %q, want %q", ae.Rule, tc.wantRule)
				}
				if !strings.Contains(msg, string(tc.wantRule)) {
					t.Errorf("error does not state the rule %q", tc.wantRule)
				}
				if tc.wantEntry != "" && (ae.Entry != tc.wantEntry || !strings.Contains(msg, tc.wantEntry)) {
					t.Errorf("entry %q, want %q named in the error", ae.Entry, tc.wantEntry)
				}
			}
			if after := snapshot(t, root); !slices.Equal(before, after) {
				t.Errorf("root changed by a refused archive:\nbefore %q\nafter  %q", before, after)
			}
			if id, err := m.Active("shop"); err != nil || id != okRel.ID {
				t.Errorf("active %q, %v after refusal; want %q", id, err, okRel.ID)
			}
			if m.Installed("shop", bad) {
				t.Error("refused release reported installed")
			}
		})
	}
}

// A download that fails half way is a download error, not a corrupt
// archive, and leaves nothing behind.
func TestInstallDownloadFailure(t *testing.T) {
	archive := goodArchive(t, "one")
	broken := errors.New("connection reset by peer")
	tests := []struct {
		name string
		open func(ctx context.Context, url string) (io.ReadCloser, int64, error)
		want error
	}{
		{name: "open fails", want: broken, open: func(context.Context, string) (io.ReadCloser, int64, error) {
			return nil, 0, broken
		}},
		{name: "read fails half way", want: broken, open: func(context.Context, string) (io.ReadCloser, int64, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(archive[:len(archive)/2]), &failReader{err: broken})), int64(len(archive)), nil
		}},
		{name: "read fails at once", want: broken, open: func(context.Context, string) (io.ReadCloser, int64, error) {
			return io.NopCloser(&failReader{err: broken}), int64(len(archive)), nil
		}},
		{name: "body shorter than the size announced", want: nil, open: func(context.Context, string) (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(archive)), int64(len(archive)) + 10, nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			m := newManager(t, root, &fileStore{open: tc.open})
			r := publish(t, t.TempDir(), "r1", archive)
			err := m.Install(context.Background(), "shop", r)
			if err == nil {
				t.Fatal("Install succeeded")
			}
			var ae *release.ArchiveError
			if tc.want != nil && (!errors.Is(err, tc.want) || errors.As(err, &ae)) {
				t.Fatalf("error %v, want a download error wrapping %v", err, tc.want)
			}
			if tc.want == nil && (!errors.As(err, &ae) || ae.Rule != release.RuleCorrupt) {
				t.Fatalf("error %v, want a corrupt archive", err)
			}
			want := []string{". drwxr-xr-x", "var drwxr-xr-x", "var/www drwxr-xr-x", "var/www/shop drwxr-xr-x"}
			if got := snapshot(t, root); !slices.Equal(got, want) {
				t.Fatalf("left behind %q, want only the empty product dir %q", got, want)
			}
			if _, err := os.Lstat(m.Layout("shop").Staging()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("staging left: %v", err)
			}
		})
	}
}

type failReader struct{ err error }

func (f *failReader) Read([]byte) (int, error) { return 0, f.err }
