package hostfs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
	"github.com/nodeagent/nodeagent/test/testroot"
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/bash\n" +
		"# a comment\n" +
		"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n" +
		"deploy:x:1001:1002:Deploy:/home/deploy:/bin/sh\n"
	testGroup = "root:x:0:\n" +
		"www-data:x:33:\n" +
		"deployers:x:1002:deploy\n"
)

// newFS returns an FS rooted in a fresh temp dir holding a fake host user
// database: root (0), www-data (33) and deploy (1001, group deployers 1002).
func newFS(t *testing.T) hostfs.FS {
	t.Helper()
	root := t.TempDir()
	writeHostFile(t, root, "/etc/passwd", testPasswd, 0o644)
	writeHostFile(t, root, "/etc/group", testGroup, 0o644)
	return hostfs.FS{Root: root, StateDir: "/var/lib/nodeagent"}
}

func writeHostFile(t *testing.T, root, p, content string, mode fs.FileMode) string {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return full
}

func stat(t *testing.T, full string) (fs.FileMode, uint32, uint32, uint64) {
	t.Helper()
	fi, err := os.Lstat(full)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid, st.Ino
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// assertNoTempFiles fails if dir holds a hidden file (WriteFile's temp
// files are ".<name>.nodeagent-*"; the test trees have no other).
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	for _, name := range dirNames(t, dir) {
		if strings.HasPrefix(name, ".") {
			t.Errorf("%s holds leftover temp file %s", dir, name)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	testroot.Require(t, "chown to other users")
}

func TestPath(t *testing.T) {
	tests := []struct {
		name, root, p, want string
	}{
		{name: "plain", root: "/mnt/img", p: "/etc/hosts", want: "/mnt/img/etc/hosts"},
		{name: "root slash", root: "/", p: "/etc/hosts", want: "/etc/hosts"},
		{name: "empty root is slash", root: "", p: "/etc/hosts", want: "/etc/hosts"},
		{name: "dot-dot cannot climb out", root: "/mnt/img", p: "/../../etc/shadow", want: "/mnt/img/etc/shadow"},
		{name: "relative is taken as rooted", root: "/mnt/img", p: "../etc/hosts", want: "/mnt/img/etc/hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (hostfs.FS{Root: tt.root}).Path(tt.p); got != tt.want {
				t.Errorf("Path(%q) = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
}

func TestInvalidPathRefused(t *testing.T) {
	for _, p := range []string{"", "etc/hosts", "/etc/../../outside", "/etc//hosts", "/etc/hosts/", "/./etc/hosts"} {
		t.Run(p, func(t *testing.T) {
			f := newFS(t)
			outside := filepath.Dir(f.Root)
			before := dirNames(t, outside)
			if err := f.WriteFile(p, []byte("x"), hostfs.WriteOptions{}); !errors.Is(err, hostfs.ErrInvalidPath) {
				t.Errorf("WriteFile(%q) error = %v, want ErrInvalidPath", p, err)
			}
			if _, err := f.ReadFile(p); !errors.Is(err, hostfs.ErrInvalidPath) {
				t.Errorf("ReadFile(%q) error = %v, want ErrInvalidPath", p, err)
			}
			if _, err := f.Lstat(p); !errors.Is(err, hostfs.ErrInvalidPath) {
				t.Errorf("Lstat(%q) error = %v, want ErrInvalidPath", p, err)
			}
			if err := f.Remove(p); !errors.Is(err, hostfs.ErrInvalidPath) {
				t.Errorf("Remove(%q) error = %v, want ErrInvalidPath", p, err)
			}
			if after := dirNames(t, outside); len(after) != len(before) {
				t.Errorf("entries next to the root changed: %v -> %v", before, after)
			}
		})
	}
}

// A symlink that stays inside the root is followed, under a root and with
// the root "/".
func TestReadFollowsSymlinkInsideRoot(t *testing.T) {
	f := newFS(t)
	writeHostFile(t, f.Root, "/etc/real.conf", "content\n", 0o644)
	if err := os.Symlink("real.conf", f.Path("/etc/link.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("etc", f.Path("/linked-etc")); err != nil {
		t.Fatal(err)
	}
	whole := hostfs.FS{Root: "/"}
	for _, c := range []struct {
		fsys hostfs.FS
		p    string
	}{
		{f, "/etc/link.conf"},
		{f, "/linked-etc/real.conf"},
		{f, "/linked-etc/link.conf"},
		{whole, f.Path("/etc/link.conf")},
		{whole, f.Path("/linked-etc/link.conf")},
	} {
		for name, read := range map[string]func(string) ([]byte, error){
			"FS":     c.fsys.ReadFile,
			"Reader": c.fsys.Reader().ReadFile,
		} {
			if got, err := read(c.p); err != nil || string(got) != "content\n" {
				t.Errorf("%s.ReadFile(%s) under %s = %q, %v; want the target's content", name, c.p, c.fsys.Root, got, err)
			}
		}
	}
}

func TestSymlinkEscapeRefused(t *testing.T) {
	f := newFS(t)
	outside := t.TempDir()
	writeHostFile(t, outside, "/secret", "host secret\n", 0o600)
	// An absolute symlink in the tree, as images have (/etc/resolv.conf ->
	// /run/...): followed naively it leads out of the root.
	if err := os.Symlink(outside, filepath.Join(f.Root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(f.Root, "etc", "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
	}{
		// Writes and removals never follow a symlink on the way
		// (beneath.ErrSymlink), reads one that leaves the root.
		{"write through a dir symlink", func() error {
			return f.WriteFile("/escape/sub/file", []byte("x"), hostfs.WriteOptions{})
		}},
		{"write a file symlink", func() error {
			return f.WriteFile("/etc/link", []byte("x"), hostfs.WriteOptions{})
		}},
		{"read through a dir symlink", func() error { _, err := f.ReadFile("/escape/secret"); return err }},
		{"read through a file symlink", func() error { _, err := f.ReadFile("/etc/link"); return err }},
		{"remove through a dir symlink", func() error { return f.Remove("/escape/secret") }},
		// A Reader checks each directory once; asking twice must still
		// refuse twice.
		{"reader: read through a dir symlink, twice", func() error {
			r := f.Reader()
			if _, err := r.ReadFile("/escape/secret"); !errors.Is(err, hostfs.ErrEscapesRoot) {
				return err
			}
			_, err := r.Lstat("/escape/secret")
			return err
		}},
		{"reader: read through a file symlink", func() error { _, err := f.Reader().ReadFile("/etc/link"); return err }},
		{"reader: owner through a dir symlink", func() error { _, _, err := f.Reader().Owner("/escape/secret"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, hostfs.ErrEscapesRoot) && !errors.Is(err, beneath.ErrSymlink) && !errors.Is(err, hostfs.ErrNotRegular) {
				t.Errorf("error = %v, want ErrEscapesRoot, beneath.ErrSymlink or ErrNotRegular", err)
			}
		})
	}
	if got := dirNames(t, outside); len(got) != 1 || got[0] != "secret" {
		t.Errorf("outside dir entries = %v, want only secret", got)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("outside file touched: %v", err)
	}
}

// One Reader shared by goroutines (as plan.Build shares it) gives each of
// them what a Reader of its own would: the contents and owners inside the
// root, and ErrEscapesRoot for every read through a symlink out of it,
// however the directory checks interleave. Run with -race.
func TestReaderConcurrentUse(t *testing.T) {
	f := newFS(t)
	outside := t.TempDir()
	writeHostFile(t, outside, "/secret", "host secret\n", 0o600)
	if err := os.Symlink(outside, filepath.Join(f.Root, "escape")); err != nil {
		t.Fatal(err)
	}
	var inside []string
	for _, dir := range []string{"/etc/a", "/etc/b", "/srv/c"} {
		for _, name := range []string{"1.conf", "2.conf", "3.conf"} {
			inside = append(inside, dir+"/"+name)
			writeHostFile(t, f.Root, dir+"/"+name, dir+"/"+name+"\n", 0o644)
		}
	}
	r := f.Reader()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, p := range inside {
				if _, err := r.Lstat(p); err != nil {
					t.Errorf("Lstat(%s): %v", p, err)
				}
				if got, err := r.ReadFile(p); err != nil || string(got) != p+"\n" {
					t.Errorf("ReadFile(%s) = %q, %v; want its content", p, got, err)
				}
				if user, group, err := r.Owner(p); err != nil || user == "" || group == "" {
					t.Errorf("Owner(%s) = %q, %q, %v", p, user, group, err)
				}
				if _, err := r.ReadFile("/escape/secret"); !errors.Is(err, hostfs.ErrEscapesRoot) {
					t.Errorf("ReadFile(/escape/secret) error = %v, want ErrEscapesRoot", err)
				}
			}
		})
	}
	wg.Wait()
}

func TestWriteFile(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name      string
		p         string
		existing  string // content at p before, "" for none
		data      string
		opts      hostfs.WriteOptions
		wantMode  fs.FileMode
		wantUID   uint32
		wantGID   uint32
		wantUser  string
		wantGroup string
	}{
		{
			name: "new file in new dirs owned by a host user",
			p:    "/etc/nodeagent/products/shop.php", data: "<?php return [];\n",
			opts:     hostfs.WriteOptions{Mode: 0o640, Owner: "root", Group: "www-data"},
			wantMode: 0o640, wantUID: 0, wantGID: 33, wantUser: "root", wantGroup: "www-data",
		},
		{
			name: "replace a root file with a deploy-owned one",
			p:    "/etc/apache2/ports.conf", existing: "Listen 80\nListen 443\n", data: "Listen 8080\n",
			opts:     hostfs.WriteOptions{Mode: 0o600, Owner: "deploy", Group: "deployers"},
			wantMode: 0o600, wantUID: 1001, wantGID: 1002, wantUser: "deploy", wantGroup: "deployers",
		},
		{
			name: "empty owner and group are root, zero mode is 0644",
			p:    "/etc/memcached.conf", data: "-m 64\n",
			opts:     hostfs.WriteOptions{},
			wantMode: 0o644, wantUID: 0, wantGID: 0, wantUser: "root", wantGroup: "root",
		},
		{
			name: "setgid survives the chown",
			p:    "/usr/local/bin/tool", data: "#!/bin/sh\n",
			opts:     hostfs.WriteOptions{Mode: 0o755 | fs.ModeSetgid, Owner: "www-data", Group: "www-data"},
			wantMode: 0o755 | fs.ModeSetgid, wantUID: 33, wantGID: 33, wantUser: "www-data", wantGroup: "www-data",
		},
		{
			name: "numeric owner unknown to the host",
			p:    "/srv/data", data: "x",
			opts:     hostfs.WriteOptions{Mode: 0o644, Owner: "4242", Group: "4343"},
			wantMode: 0o644, wantUID: 4242, wantGID: 4343, wantUser: "4242", wantGroup: "4343",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFS(t)
			full := f.Path(tt.p)
			if tt.existing != "" {
				writeHostFile(t, f.Root, tt.p, tt.existing, 0o644)
			}
			if err := f.WriteFile(tt.p, []byte(tt.data), tt.opts); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			got, err := f.ReadFile(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.data {
				t.Errorf("content = %q, want %q", got, tt.data)
			}
			mode, uid, gid, _ := stat(t, full)
			if mode != tt.wantMode || uid != tt.wantUID || gid != tt.wantGID {
				t.Errorf("mode/uid/gid = %v/%d/%d, want %v/%d/%d", mode, uid, gid, tt.wantMode, tt.wantUID, tt.wantGID)
			}
			user, group, err := f.Owner(tt.p)
			if err != nil || user != tt.wantUser || group != tt.wantGroup {
				t.Errorf("Owner() = %q, %q, %v; want %q, %q", user, group, err, tt.wantUser, tt.wantGroup)
			}
			assertNoTempFiles(t, filepath.Dir(full))
			if dmode, _, _, _ := stat(t, filepath.Dir(full)); dmode.Perm() != 0o755 {
				t.Errorf("parent dir mode = %v, want 0755", dmode.Perm())
			}
			if names := dirNames(t, filepath.Join(f.Path(f.StateDir), "journal")); len(names) != 0 {
				t.Errorf("journal holds %v after a plain write", names)
			}
		})
	}
}

func TestWriteFileRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, f hostfs.FS)
		p       string
		opts    hostfs.WriteOptions
		wantErr error
	}{
		{
			name: "unknown owner", p: "/etc/x.conf",
			opts: hostfs.WriteOptions{Owner: "nobody-here"}, wantErr: hostfs.ErrUnknownOwner,
		},
		{
			name: "unknown group", p: "/etc/x.conf",
			opts: hostfs.WriteOptions{Group: "nogroup-here"}, wantErr: hostfs.ErrUnknownOwner,
		},
		{
			name: "target is a symlink", p: "/etc/x.conf",
			setup: func(t *testing.T, f hostfs.FS) {
				if err := os.Symlink("passwd", f.Path("/etc/x.conf")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: hostfs.ErrNotRegular,
		},
		{
			name: "target is a directory", p: "/etc/x.conf",
			setup: func(t *testing.T, f hostfs.FS) {
				if err := os.Mkdir(f.Path("/etc/x.conf"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: hostfs.ErrNotRegular,
		},
		{
			name: "file type in the mode", p: "/etc/x.conf",
			opts: hostfs.WriteOptions{Mode: fs.ModeDir | 0o755}, wantErr: hostfs.ErrNotRegular,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFS(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			before := dirNames(t, f.Path("/etc"))
			err := f.WriteFile(tt.p, []byte("data"), tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteFile error = %v, want %v", err, tt.wantErr)
			}
			if after := dirNames(t, f.Path("/etc")); len(after) != len(before) {
				t.Errorf("/etc entries changed: %v -> %v", before, after)
			}
		})
	}
}

// failRename makes renames onto target fail with errno, as the kernel
// does for a bind-mounted file, and leaves every other rename alone.
func failRename(target string, errno syscall.Errno) func(string, string) error {
	return func(oldpath, newpath string) error {
		if newpath == target {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errno}
		}
		return os.Rename(oldpath, newpath)
	}
}

func TestWriteFileInPlaceFallback(t *testing.T) {
	requireRoot(t)
	for _, errno := range []syscall.Errno{syscall.EBUSY, syscall.EXDEV} {
		t.Run(errno.Error(), func(t *testing.T) {
			f := newFS(t)
			full := writeHostFile(t, f.Root, "/etc/hosts", "127.0.0.1 localhost\n# a much longer old content than the new one\n", 0o600)
			_, _, _, inode := stat(t, full)
			f.Rename = failRename(full, errno)

			data := "10.0.0.1\tweb-1\n"
			if err := f.WriteFile("/etc/hosts", []byte(data), hostfs.WriteOptions{Mode: 0o644, Group: "www-data"}); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			got, err := os.ReadFile(full)
			if err != nil || string(got) != data {
				t.Errorf("content = %q, %v; want %q (truncated to the new length)", got, err, data)
			}
			mode, uid, gid, newInode := stat(t, full)
			if newInode != inode {
				t.Errorf("inode changed %d -> %d: the file was replaced, not rewritten in place", inode, newInode)
			}
			if mode != 0o644 || uid != 0 || gid != 33 {
				t.Errorf("mode/uid/gid = %v/%d/%d, want -rw-r--r--/0/33", mode, uid, gid)
			}
			assertNoTempFiles(t, f.Path("/etc"))
			if names := dirNames(t, f.Path("/var/lib/nodeagent/journal")); len(names) != 0 {
				t.Errorf("journal holds %v after a completed rewrite", names)
			}
		})
	}
}

func TestWriteFileRenameErrorIsReturned(t *testing.T) {
	f := newFS(t)
	full := writeHostFile(t, f.Root, "/etc/hosts", "old\n", 0o644)
	f.Rename = failRename(full, syscall.EACCES)
	err := f.WriteFile("/etc/hosts", []byte("new\n"), hostfs.WriteOptions{})
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("WriteFile error = %v, want EACCES", err)
	}
	if got, _ := os.ReadFile(full); string(got) != "old\n" {
		t.Errorf("content = %q, want the old content untouched", got)
	}
	assertNoTempFiles(t, f.Path("/etc"))
}

// TestWriteFileBindMount bind-mounts a file onto <root>/etc/hosts, as
// container runtimes do, and writes through it with the production rename.
func TestWriteFileBindMount(t *testing.T) {
	requireRoot(t)
	f := newFS(t)
	target := writeHostFile(t, f.Root, "/etc/hosts", "placeholder\n", 0o644)
	source := writeHostFile(t, t.TempDir(), "/runtime-hosts", "127.0.0.1 localhost\n", 0o644)
	if err := syscall.Mount(source, target, "", syscall.MS_BIND, ""); err != nil {
		testroot.Unavailable(t, "bind mount not permitted here (%v); the fallback is covered by TestWriteFileInPlaceFallback", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})

	// The premise: rename onto a mount point fails with EBUSY.
	probe := writeHostFile(t, f.Root, "/etc/probe", "x", 0o644)
	if err := os.Rename(probe, target); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rename onto the bind mount: %v, want EBUSY", err)
	}
	os.Remove(probe)

	data := "127.0.0.1 localhost\n10.0.0.1\tweb-1\n"
	if err := f.WriteFile("/etc/hosts", []byte(data), hostfs.WriteOptions{Mode: 0o644}); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	for _, p := range []string{target, source} {
		if got, err := os.ReadFile(p); err != nil || string(got) != data {
			t.Errorf("%s = %q, %v; want %q", p, got, err, data)
		}
	}
	assertNoTempFiles(t, f.Path("/etc"))
	if names := dirNames(t, f.Path("/var/lib/nodeagent/journal")); len(names) != 0 {
		t.Errorf("journal holds %v after a completed rewrite", names)
	}
}

func TestReadFileMissing(t *testing.T) {
	f := newFS(t)
	for _, p := range []string{"/etc/missing", "/no/such/dir/file"} {
		if _, err := f.ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%q) error = %v, want ErrNotExist", p, err)
		}
		if _, err := f.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(%q) error = %v, want ErrNotExist", p, err)
		}
	}
}

func TestRemove(t *testing.T) {
	f := newFS(t)
	full := writeHostFile(t, f.Root, "/etc/apache2/sites-enabled/old.conf", "x", 0o644)
	if err := f.Remove("/etc/apache2/sites-enabled/old.conf"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Lstat(full); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	if err := f.Remove("/etc/apache2/sites-enabled/old.conf"); err != nil {
		t.Errorf("Remove of a missing file: %v, want nil", err)
	}
	if err := f.Remove("/no/such/dir/file"); err != nil {
		t.Errorf("Remove under a missing dir: %v, want nil", err)
	}
}

func TestOwnerWithoutUserDB(t *testing.T) {
	f := hostfs.FS{Root: t.TempDir()}
	writeHostFile(t, f.Root, "/etc/hosts", "x", 0o644)
	if err := os.Lchown(f.Path("/etc/hosts"), 0, 0); err != nil {
		testroot.Unavailable(t, "cannot chown to root here: %v", err)
	}
	user, group, err := f.Owner("/etc/hosts")
	if err != nil || user != "root" || group != "root" {
		t.Errorf("Owner() = %q, %q, %v; want root, root", user, group, err)
	}
	if _, _, err := f.Owner("/etc/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Owner of a missing file: %v, want ErrNotExist", err)
	}
}

// TestReaderRefusesNonRegularFiles: a FIFO planted where a config file
// belongs fails the plan's read at once (the old read blocked for a
// writer that never comes); so does one behind a symlink, and a directory.
func TestReaderRefusesNonRegularFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc", "apache2", "sites-enabled")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "nodeagent-shop.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nodeagent-shop.conf", filepath.Join(dir, "nodeagent-blog.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "nodeagent-wiki.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := hostfs.FS{Root: root}.Reader()
	for _, name := range []string{"nodeagent-shop.conf", "nodeagent-blog.conf", "nodeagent-wiki.conf"} {
		done := make(chan error, 1)
		go func() {
			_, err := r.ReadFile("/etc/apache2/sites-enabled/" + name)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: err = %v, want not a regular file", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: read still blocked after 10s", name)
		}
	}
}
