// Package beneath opens, creates, renames, removes and chowns paths under a
// root directory (the agent's --root) without ever following a symlink:
// every directory on the way is resolved beneath the root with openat2
// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS) where the
// kernel has it, and by a walk that opens one component at a time with
// O_NOFOLLOW where it does not (Linux before 5.6, or a seccomp filter
// answering ENOSYS or EPERM; detected once). The final component is then acted on
// through the parent's descriptor with the *at system calls, never
// following it either.
//
// The agent manages these trees itself (the state dir, /var/www/<product>,
// the rendered config files): none of their components is a symlink unless
// the agent made it, so a symlink on the way is something planted, and it
// is refused with a *SymlinkError naming it rather than followed, possibly
// out of the root. The few links the agent makes or keeps (a product's
// current -> releases/<id>, an operator's shared -> a volume) are read and
// replaced as links by the calls here, never traversed.
//
// The root itself may be reached through symlinks: it is what the operator
// named. Paths are host paths: absolute and clean ("/var/lib/nodeagent");
// anything else, ".." components included, is refused with ErrInvalidPath.
package beneath

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Errors callers can branch on (with errors.Is).
var (
	// ErrInvalidPath: the path is not absolute and clean.
	ErrInvalidPath = errors.New("path must be absolute and clean")
	// ErrSymlink: a component of the path is a symlink. The error is a
	// *SymlinkError naming it.
	ErrSymlink = errors.New("symlink in a path the agent manages")
	// ErrNotDir: a component of the path that must be a directory is not.
	ErrNotDir = errors.New("not a directory")
)

// SymlinkError is a symlink found where the agent manages a real directory
// or file.
type SymlinkError struct {
	Path   string // the symlink, joined onto the root
	Target string // what it points at, "" if unreadable
}

func (e *SymlinkError) Error() string {
	target := ""
	if e.Target != "" {
		target = " (to " + e.Target + ")"
	}
	return e.Path + " is a symlink" + target + ": nodeagent does not follow symlinks in the paths it manages under --root; replace it with a real directory or file"
}

// Unwrap makes the error match ErrSymlink.
func (e *SymlinkError) Unwrap() error { return ErrSymlink }

// noOpenat2 is set once openat2 answered ENOSYS: every later resolution
// walks.
var noOpenat2 atomic.Bool

// forceWalk makes resolution always walk (tests of the fallback).
var forceWalk atomic.Bool

// Join returns the host path p joined onto root, for messages and for
// callers that hand the path to another program.
func Join(root, p string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.Clean("/"+p))
}

// split checks p and returns its components ("/" has none).
func split(p string) ([]string, error) {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		return nil, fmt.Errorf("%q: %w", p, ErrInvalidPath)
	}
	if p == "/" {
		return nil, nil
	}
	return strings.Split(p[1:], "/"), nil
}

// openRoot opens the root directory, following symlinks: the operator
// named it.
func openRoot(root string) (int, error) {
	if root == "" {
		root = "/"
	}
	for {
		fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open root", Path: root, Err: err}
		}
		return fd, nil
	}
}

// Dir is an open directory resolved beneath a root: the *at operations on
// it act on its entries without following them. It is for one goroutine
// at a time, and its owner closes it: nothing closes a forgotten one.
type Dir struct {
	fd   int      // -1 once closed
	f    *os.File // fd as an *os.File, made by the first File call
	root string
	host string // its host path
}

// File returns the directory's descriptor as an *os.File; it stays owned
// by d, and is nil once d is closed. Most directories are only the base of
// *at calls and never need one: the descriptor is wrapped on demand.
func (d *Dir) File() *os.File {
	if d.f == nil && d.fd >= 0 {
		d.f = os.NewFile(uintptr(d.fd), d.Path())
	}
	return d.f
}

// Fd is the directory's descriptor, for *at system calls.
func (d *Dir) Fd() int { return d.fd }

// Path is the directory joined onto the root.
func (d *Dir) Path() string { return Join(d.root, d.host) }

// Close closes the directory. Closing it again returns fs.ErrClosed and
// closes nothing: the descriptor's number may belong to another file by
// then.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return fs.ErrClosed
	}
	fd, f := d.fd, d.f
	d.fd, d.f = -1, nil
	if f != nil {
		return f.Close()
	}
	return unix.Close(fd)
}

// OpenDir opens the existing directory p beneath root, refusing a symlink
// anywhere on the way (p itself included) with a *SymlinkError.
func OpenDir(root, p string) (*Dir, error) {
	comps, err := split(p)
	if err != nil {
		return nil, err
	}
	rfd, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := resolve(rfd, root, comps)
	if err != nil {
		return nil, err
	}
	return &Dir{fd: fd, root: root, host: p}, nil
}

// resolve opens the directory comps beneath rfd with no symlink followed.
func resolve(rfd int, root string, comps []string) (int, error) {
	rel := strings.Join(comps, "/")
	if rel == "" {
		rel = "."
	}
	if !noOpenat2.Load() && !forceWalk.Load() {
		how := &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		for tries := 0; ; tries++ {
			fd, err := unix.Openat2(rfd, rel, how)
			if err == nil {
				return fd, nil
			}
			// EAGAIN: a rename raced the lookup; the kernel asks for a
			// retry. EINTR likewise.
			if (err == unix.EAGAIN || err == unix.EINTR) && tries < 16 {
				continue
			}
			// ENOSYS: a kernel before 5.6, or a seccomp filter's
			// answer; EPERM: an older container runtime's filter (openat2
			// itself has no EPERM of its own for these flags). Walk from
			// now on.
			if err == unix.ENOSYS || err == unix.EPERM {
				noOpenat2.Store(true)
				break
			}
			return -1, resolveErr(rfd, root, comps, err)
		}
	}
	return walk(rfd, root, comps)
}

// walk opens comps one at a time, each with O_NOFOLLOW.
func walk(rfd int, root string, comps []string) (int, error) {
	cur, err := unix.Dup(rfd)
	if err != nil {
		return -1, err
	}
	for i, c := range comps {
		next, err := openat(cur, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, resolveErr(rfd, root, comps[:i+1], err)
		}
		cur = next
	}
	return cur, nil
}

func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// resolveErr turns a failed resolution of comps into an error naming the
// component at fault: the first symlink, or the first non-directory.
func resolveErr(rfd int, root string, comps []string, err error) error {
	full := Join(root, "/"+strings.Join(comps, "/"))
	for i := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		var st unix.Stat_t
		if serr := unix.Fstatat(rfd, prefix, &st, unix.AT_SYMLINK_NOFOLLOW); serr != nil {
			break // missing: err says so
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			buf := make([]byte, 4096)
			target := ""
			if n, rerr := unix.Readlinkat(rfd, prefix, buf); rerr == nil {
				target = string(buf[:n])
			}
			return &SymlinkError{Path: Join(root, "/"+prefix), Target: target}
		case unix.S_IFDIR:
		default:
			return &fs.PathError{Op: "open", Path: Join(root, "/"+prefix), Err: ErrNotDir}
		}
	}
	return &fs.PathError{Op: "open", Path: full, Err: err}
}

// MkdirAll opens directory p beneath root, creating it and its missing
// parents with perm (exactly perm, whatever the umask) on the way. Existing
// directories keep their mode. A symlink on the way is refused. A missing
// root is created 0755 first, as mkdir -p would (the root is the
// operator's: a fresh image or test tree).
func MkdirAll(root, p string, perm fs.FileMode) (*Dir, error) {
	comps, err := split(p)
	if err != nil {
		return nil, err
	}
	rfd, err := openRoot(root)
	if errors.Is(err, fs.ErrNotExist) {
		if merr := os.MkdirAll(root, 0o755); merr != nil {
			return nil, merr
		}
		rfd, err = openRoot(root)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := resolve(rfd, root, comps)
	if err == nil {
		return &Dir{fd: fd, root: root, host: p}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// Walk, creating what is missing.
	cur, err := unix.Dup(rfd)
	if err != nil {
		return nil, err
	}
	for i, c := range comps {
		next, err := openat(cur, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			if merr := unix.Mkdirat(cur, c, uint32(perm.Perm())); merr != nil && merr != unix.EEXIST {
				unix.Close(cur)
				return nil, &fs.PathError{Op: "mkdir", Path: Join(root, "/"+strings.Join(comps[:i+1], "/")), Err: merr}
			}
			next, err = openat(cur, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				// Exact mode whatever the umask (0711 is not what
				// 0777&^022 gives).
				err = unix.Fchmod(next, uint32(perm.Perm()))
				if err != nil {
					unix.Close(next)
				}
			}
		}
		unix.Close(cur)
		if err != nil {
			return nil, resolveErr(rfd, root, comps[:i+1], err)
		}
		cur = next
	}
	return &Dir{fd: cur, root: root, host: p}, nil
}

// parent opens the directory holding p and returns it with p's last
// element. p must not be "/".
func parent(root, p string) (*Dir, string, error) {
	if _, err := split(p); err != nil {
		return nil, "", err
	}
	if p == "/" {
		return nil, "", fmt.Errorf("%q: the root has no parent: %w", p, ErrInvalidPath)
	}
	d, err := OpenDir(root, path.Dir(p))
	if err != nil {
		return nil, "", err
	}
	return d, path.Base(p), nil
}

// Open opens the file p beneath root with flag (os.O_* flags) and perm for
// a created file. Neither a directory on the way nor p itself is followed
// if it is a symlink: *SymlinkError. The file is not registered with the
// runtime poller (a FIFO could block the calling thread; this is for
// regular files and directories).
func Open(root, p string, flag int, perm fs.FileMode) (*os.File, error) {
	d, base, err := parent(root, p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Open(base, flag, perm)
}

// Open opens the entry name of d (a single element) as Open does.
func (d *Dir) Open(name string, flag int, perm fs.FileMode) (*os.File, error) {
	fd, err := d.openFd(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.Path(), name)), nil
}

// openFd is Open's descriptor.
func (d *Dir) openFd(name string, flag int, perm fs.FileMode) (int, error) {
	fd, err := openat(d.fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err == unix.ELOOP || (err == unix.ENOTDIR && flag&unix.O_DIRECTORY != 0) {
		if lerr := d.symlinkErr(name); lerr != nil {
			return -1, lerr
		}
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: filepath.Join(d.Path(), name), Err: err}
	}
	return fd, nil
}

// symlinkErr is a *SymlinkError when d's entry name is a symlink, else nil.
func (d *Dir) symlinkErr(name string) error {
	var st unix.Stat_t
	if unix.Fstatat(d.Fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return nil
	}
	target, _ := d.Readlink(name)
	return &SymlinkError{Path: filepath.Join(d.Path(), name), Target: target}
}

// ReadFile reads the regular file p beneath root. It works on the bare
// descriptors: the agent reads a dozen small files in every apply, and an
// *os.File for each costs more system calls than the read itself.
func ReadFile(root, p string) ([]byte, error) {
	d, base, err := parent(root, p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	// O_NONBLOCK: a FIFO planted in its place cannot block the open.
	fd, err := d.openFd(base, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	full := filepath.Join(d.Path(), base)
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: full, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: full, Err: fmt.Errorf("%v is not a regular file", FileType(st.Mode))}
	}
	b, err := ReadAll(fd, st.Size)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: full, Err: err}
	}
	return b, nil
}

// ReadAll reads the open regular file fd to its end. The buffer is sized
// from size (the file's, from fstat) with a byte to spare, so that the
// read that fills it is followed by the one that finds the end, as
// os.ReadFile does; a file that grew since still reads whole, and a huge
// or sparse one planted where the agent reads grows the buffer as it is
// read instead of sizing it at once (at most maxPresize up front). The
// error is the system call's, for the caller to name the file.
func ReadAll(fd int, size int64) ([]byte, error) {
	b := make([]byte, 0, min(max(size, 0), maxPresize)+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		err := ignoringEINTR(func() (err error) {
			n, err = unix.Read(fd, b[len(b):cap(b)])
			return err
		})
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// maxPresize bounds the buffer ReadAll allocates before reading: the
// agent's own files are far smaller (a 5,000-node topology is 1 MB).
const maxPresize = 4 << 20

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// FileType is the fs.FileMode type bits of a stat mode, as os.Stat gives
// them.
func FileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// Lstat describes p beneath root without following it.
func Lstat(root, p string) (fs.FileInfo, error) {
	d, base, err := parent(root, p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Lstat(base)
}

// Lstat describes d's entry name without following it.
func (d *Dir) Lstat(name string) (fs.FileInfo, error) {
	// An O_PATH descriptor of the entry itself (a symlink included):
	// os.File.Stat then gives the usual FileInfo.
	fd, err := openat(d.Fd(), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(d.Path(), name), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.Path(), name))
	defer f.Close()
	return f.Stat()
}

// Readlink returns the target of the symlink p beneath root.
func Readlink(root, p string) (string, error) {
	d, base, err := parent(root, p)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return d.Readlink(base)
}

// Readlink returns the target of d's symlink name.
func (d *Dir) Readlink(name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(d.Fd(), name, buf)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: filepath.Join(d.Path(), name), Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Symlink creates the symlink p beneath root pointing at target (which is
// stored, not resolved).
func Symlink(root, target, p string) error {
	d, base, err := parent(root, p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Symlinkat(target, d.Fd(), base); err != nil {
		return &fs.PathError{Op: "symlink", Path: filepath.Join(d.Path(), base), Err: err}
	}
	return nil
}

// Remove removes the file, symlink (not what it points at) or empty
// directory p beneath root. A missing p gives an error matching
// fs.ErrNotExist.
func Remove(root, p string) error {
	d, base, err := parent(root, p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Remove(base)
}

// Remove removes d's entry name as Remove does.
func (d *Dir) Remove(name string) error {
	err := unix.Unlinkat(d.Fd(), name, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(d.Fd(), name, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return &fs.PathError{Op: "remove", Path: filepath.Join(d.Path(), name), Err: err}
	}
	return nil
}

// RemoveAll removes p beneath root and everything in it, never following a
// symlink (a symlink in the tree is removed, not what it points at). A
// missing p is not an error.
func RemoveAll(root, p string) error {
	d, base, err := parent(root, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	return d.RemoveAll(base)
}

// RemoveAll removes d's entry name as RemoveAll does.
func (d *Dir) RemoveAll(name string) error {
	if err := removeTree(d.Fd(), name, filepath.Join(d.Path(), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func removeTree(dirfd int, name, full string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return &fs.PathError{Op: "remove", Path: full, Err: err}
	}
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return &fs.PathError{Op: "remove", Path: full, Err: err}
	}
	f := os.NewFile(uintptr(fd), full)
	var errs []error
	for {
		names, rerr := f.Readdirnames(1024)
		for _, n := range names {
			if err := removeTree(fd, n, filepath.Join(full, n)); err != nil {
				errs = append(errs, err)
			}
		}
		if rerr == io.EOF || len(names) == 0 {
			break
		}
		if rerr != nil {
			errs = append(errs, rerr)
			break
		}
		if len(errs) > 0 {
			break
		}
		// Entries were removed: read the directory from its start again
		// (removing while reading may skip entries).
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			errs = append(errs, err)
			break
		}
	}
	f.Close()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "remove", Path: full, Err: err}
	}
	return nil
}

// Rename renames oldp to newp beneath root (replacing a file or an empty
// directory at newp, or a symlink there as itself).
func Rename(root, oldp, newp string) error {
	od, obase, err := parent(root, oldp)
	if err != nil {
		return err
	}
	defer od.Close()
	nd, nbase, err := parent(root, newp)
	if err != nil {
		return err
	}
	defer nd.Close()
	if err := unix.Renameat(od.Fd(), obase, nd.Fd(), nbase); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(od.Path(), obase), New: filepath.Join(nd.Path(), nbase), Err: err}
	}
	return nil
}

// Rename renames d's entry oldname to newname in the same directory.
func (d *Dir) Rename(oldname, newname string) error {
	if err := unix.Renameat(d.Fd(), oldname, d.Fd(), newname); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(d.Path(), oldname), New: filepath.Join(d.Path(), newname), Err: err}
	}
	return nil
}

// Lchown changes the owner of p beneath root (of a symlink itself, never
// what it points at). -1 leaves an id unchanged.
func Lchown(root, p string, uid, gid int) error {
	d, base, err := parent(root, p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Fchownat(d.Fd(), base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lchown", Path: filepath.Join(d.Path(), base), Err: err}
	}
	return nil
}

// Mkdir creates directory name in d with exactly perm.
func (d *Dir) Mkdir(name string, perm fs.FileMode) error {
	full := filepath.Join(d.Path(), name)
	if err := unix.Mkdirat(d.Fd(), name, uint32(perm.Perm())); err != nil {
		return &fs.PathError{Op: "mkdir", Path: full, Err: err}
	}
	f, err := d.Open(name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(perm.Perm())
}

// MkdirTemp creates a new directory in d named prefix followed by random
// digits, mode 0700, and returns its name.
func (d *Dir) MkdirTemp(prefix string) (string, error) {
	for range 10000 {
		name := prefix + strconv.FormatUint(rand.Uint64()%1e10, 10)
		err := unix.Mkdirat(d.Fd(), name, 0o700)
		if err == nil {
			return name, nil
		}
		if err != unix.EEXIST {
			return "", &fs.PathError{Op: "mkdirtemp", Path: filepath.Join(d.Path(), name), Err: err}
		}
	}
	return "", &fs.PathError{Op: "mkdirtemp", Path: filepath.Join(d.Path(), prefix+"*"), Err: fs.ErrExist}
}

// CreateTemp creates a new regular file in d named prefix followed by
// random digits, mode 0600, open for writing, and returns it with its name.
func (d *Dir) CreateTemp(prefix string) (*os.File, string, error) {
	for range 10000 {
		name := prefix + strconv.FormatUint(rand.Uint64()%1e10, 10)
		f, err := d.Open(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
	}
	return nil, "", &fs.PathError{Op: "createtemp", Path: filepath.Join(d.Path(), prefix+"*"), Err: fs.ErrExist}
}

// Sub opens d's subdirectory name, refusing a symlink (*SymlinkError).
func (d *Dir) Sub(name string) (*Dir, error) {
	fd, err := d.openFd(name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{fd: fd, root: d.root, host: path.Join(d.host, name)}, nil
}

// Sync fsyncs the directory, making a rename, creation or removal in it
// survive a crash of the machine.
func (d *Dir) Sync() error { return d.File().Sync() }

// ReadDirNames returns the names in directory p beneath root.
func ReadDirNames(root, p string) ([]string, error) {
	d, err := OpenDir(root, p)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.File().Readdirnames(-1)
}

// WriteFile replaces the file p beneath root whole, as atomicfile.Write
// does (temporary file in the same directory, chmod to mode, rename over
// p; with durable, fsync of the file before and of the directory after the
// rename). The directory must exist. An existing p that is a symlink is
// refused (*SymlinkError), not replaced.
func WriteFile(root, p string, data []byte, mode fs.FileMode, durable bool) error {
	d, base, err := parent(root, p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteFile(base, data, mode, durable)
}

// WriteFile replaces d's entry name as WriteFile does.
func (d *Dir) WriteFile(name string, data []byte, mode fs.FileMode, durable bool) (err error) {
	if err := d.symlinkErr(name); err != nil {
		return err
	}
	// The temporary name is atomicfile's: ".<name>.tmp-<digits>".
	f, tmp, err := d.CreateTemp("." + name + ".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(d.Fd(), tmp, 0)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode.Perm()); err != nil {
		return err
	}
	if durable {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = d.Rename(tmp, name); err != nil {
		return err
	}
	if durable {
		return d.Sync()
	}
	return nil
}
