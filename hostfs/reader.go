package hostfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Reader reads many host files in one pass, as a plan does: it checks each
// directory's confinement once (FS does it for every call: an lstat per
// path component when Root is not "/") and reads the user databases once.
// It assumes the directories it has seen do not change while it is used,
// so make one per pass and drop it before writing anything; its methods
// otherwise behave as FS's. A Reader is not safe for concurrent use.
type Reader struct {
	fs FS
	// confined holds the outcome of confineDir for each directory seen.
	confined map[string]error
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
	if err := r.fs.confineFile(full); err != nil {
		return nil, fmt.Errorf("hostfs: read %s: %w", p, err)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return nil, fmt.Errorf("hostfs: read %s: %w", p, err)
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
	return fi, nil
}

// Owner returns the names of the user and group owning the host file p
// (not following a final symlink), from the host's passwd and group under
// Root, for change detection. An id the host does not name comes back as
// its number.
func (r *Reader) Owner(p string) (user, group string, err error) {
	fi, err := r.Lstat(p)
	if err != nil {
		return "", "", fmt.Errorf("hostfs: owner: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", "", fmt.Errorf("hostfs: owner %s: no ownership information", p)
	}
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
