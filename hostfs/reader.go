package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// Reader reads many host files in one pass, as a plan does: it checks each
// directory's confinement once (FS does it for every call: an lstat per
// path component when Root is not "/") and reads the user databases once.
// It assumes that what it has seen (directories, and the owners of files it
// lstat'ed) does not change while it is used, so make one per pass and
// drop it before writing anything; its methods otherwise behave as FS's. A
// Reader is safe for concurrent use, so a plan's reads can share what it
// has checked.
type Reader struct {
	fs FS

	// mu guards the fields below. It is held while a directory is first
	// checked, never while a file is read.
	mu sync.Mutex
	// confined holds the outcome of confineDir for each directory seen.
	confined map[string]error
	// seen holds what Lstat found at each full path, for Owner.
	seen map[string]fs.FileInfo
	// userNames and groupNames are the user databases by id, read on the
	// first Owner call.
	userNames, groupNames map[uint32]string
}

// Reader returns a Reader of f's files.
func (f FS) Reader() *Reader { return &Reader{fs: f} }

// ReadFile reads the host file p. A missing file gives an error matching
// os.ErrNotExist.
func (r *Reader) ReadFile(p string) ([]byte, error) {
	full, err := r.resolve(p)
	if err != nil {
		return nil, fmt.Errorf("hostfs: read %s: %w", p, err)
	}
	data, err := readRegular(full, false)
	if errors.Is(err, syscall.ELOOP) {
		// A symlink: follow it only if it stays inside the root.
		if err := r.fs.confineFile(full); err != nil {
			return nil, fmt.Errorf("hostfs: read %s: %w", p, err)
		}
		data, err = readRegular(full, true)
	}
	if err != nil {
		return nil, fmt.Errorf("hostfs: read %s: %w", p, err)
	}
	return data, nil
}

// errNotRegular: a path the agent reads as a file is a FIFO, socket,
// device or directory.
var errNotRegular = errors.New("not a regular file")

// readRegular is os.ReadFile for regular files only. Unless follow is set
// it refuses a final symlink (with ELOOP): a file opened so needs no
// confinement check of its own, which saves an lstat per file. The open is
// non-blocking and the file's type is checked before any read, so a FIFO
// planted where a config file belongs fails the read at once instead of
// hanging the plan. It works on the bare descriptor (beneath.ReadAll):
// an *os.File would try to register the file with the network poller, an
// fcntl and an epoll_ctl that a regular file cannot use.
func readRegular(name string, follow bool) ([]byte, error) {
	flags := syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if !follow {
		flags |= syscall.O_NOFOLLOW
	}
	fd, err := syscall.Open(name, flags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	for err = syscall.EINTR; err == syscall.EINTR; {
		err = syscall.Fstat(fd, &st)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w (%s)", errNotRegular, beneath.FileType(st.Mode))}
	}
	data, err := beneath.ReadAll(fd, st.Size)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// Lstat describes the host file p without following a final symlink.
func (r *Reader) Lstat(p string) (fs.FileInfo, error) {
	full, err := r.resolve(p)
	if err != nil {
		return nil, fmt.Errorf("hostfs: lstat %s: %w", p, err)
	}
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, fmt.Errorf("hostfs: lstat %s: %w", p, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]fs.FileInfo)
	}
	r.seen[full] = fi
	return fi, nil
}

// Owner returns the names of the user and group owning the host file p
// (not following a final symlink), from the host's passwd and group under
// Root, for change detection. An id the host does not name comes back as
// its number. A file this Reader already lstat'ed is not looked at again.
func (r *Reader) Owner(p string) (user, group string, err error) {
	r.mu.Lock()
	fi, ok := r.seen[r.fs.Path(p)]
	r.mu.Unlock()
	if !ok || !validPath(p) { // Lstat refuses an invalid path
		if fi, err = r.Lstat(p); err != nil {
			return "", "", fmt.Errorf("hostfs: owner: %w", err)
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", "", fmt.Errorf("hostfs: owner %s: no ownership information", p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.userNames == nil {
		if _, r.userNames, err = passwdDB.entries(r.fs); err != nil {
			return "", "", fmt.Errorf("hostfs: owner %s: %w", p, err)
		}
	}
	if r.groupNames == nil {
		if _, r.groupNames, err = groupDB.entries(r.fs); err != nil {
			return "", "", fmt.Errorf("hostfs: owner %s: %w", p, err)
		}
	}
	return nameOf(r.userNames, st.Uid), nameOf(r.groupNames, st.Gid), nil
}

// resolve is FS.resolve with each directory's confinement checked once.
func (r *Reader) resolve(p string) (string, error) {
	if !validPath(p) {
		return "", fmt.Errorf("%q: %w", p, ErrInvalidPath)
	}
	full := r.fs.Path(p)
	dir := filepath.Dir(full)
	// The check runs under the lock: a concurrent reader of the same
	// directory waits for its outcome rather than checking it again.
	r.mu.Lock()
	defer r.mu.Unlock()
	err, checked := r.confined[dir]
	if !checked {
		err = r.fs.confineDir(dir)
		if r.confined == nil {
			r.confined = make(map[string]error)
		}
		r.confined[dir] = err
	}
	if err != nil {
		return "", err
	}
	return full, nil
}
