package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
)

// fileStore is a ReleaseStore over local files: file:///path URLs.
type fileStore struct {
	open  func(ctx context.Context, url string) (io.ReadCloser, int64, error)
	opens atomic.Int64
}

var _ nodeagent.ReleaseStore = (*fileStore)(nil)

func (s *fileStore) Open(ctx context.Context, url string) (io.ReadCloser, int64, error) {
	s.opens.Add(1)
	if s.open != nil {
		return s.open(ctx, url)
	}
	return openFileURL(url)
}

func openFileURL(url string) (io.ReadCloser, int64, error) {
	p, ok := strings.CutPrefix(url, "file://")
	if !ok {
		return nil, 0, errors.New("test store: not a file:// url: " + url)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// entry is one tar entry to write.
type entry struct {
	hdr  tar.Header
	body []byte
}

func file(name, content string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)}, body: []byte(content)}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

// tarGz builds a tar.gz from entries.
func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %s: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %s: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// publish writes an archive into dir and returns the release naming it.
func publish(t testing.TB, dir, id string, archive []byte) nodeagent.Release {
	t.Helper()
	p := filepath.Join(dir, id+".tar.gz")
	if err := os.WriteFile(p, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	return nodeagent.Release{ID: id, URL: "file://" + p, SHA256: sum(archive)}
}

// goodArchive is a small realistic release.
func goodArchive(t testing.TB, version string) []byte {
	return tarGz(t,
		dir("public/"),
		file("public/index.php", "<?php echo 'Welcome "+version+"';\n", 0o664),
		file("bin/console", "#!/usr/bin/env php\n", 0o777),
		file("config/secret.php", "<?php return [];\n", 0o600),
		symlink("storage", "../../shared/storage"),
		symlink("public/app", "../config"),
		hardlink("public/index2.php", "public/index.php"),
	)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// clock is a fake clock advancing by step on every reading.
type clock struct {
	now  atomic.Int64
	step time.Duration
}

func newClock(step time.Duration) *clock {
	c := &clock{step: step}
	c.now.Store(time.Date(2020, 1, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time { return time.Unix(0, c.now.Add(int64(c.step))).UTC() }

// snapshot lists every path under root with its type, size and link target.
func snapshot(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + sum(b)
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

func owner(t testing.TB, path string) (uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
