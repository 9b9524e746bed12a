// Package hostfs is the host's filesystem as the agent sees it: every host
// path is joined onto a root (the agent's --root, "/" in production), so
// tests and image builds can target any directory tree.
//
// Writes are never half-done. WriteFile puts a temporary file next to the
// target and renames it over; where rename is impossible (a bind-mounted
// /etc/hosts, as container runtimes make it), it journals the new content in
// the state dir first and rewrites the file in place, and Recover finishes
// any such rewrite a crash interrupted. Owners are names from the host's own
// user database (<root>/etc/passwd and <root>/etc/group), never the agent's.
// Lock serializes applies with flock on <state dir>/lock.
//
// Confinement: paths handed to FS methods are host paths, absolute and
// clean; anything else is refused with ErrInvalidPath. Everything FS
// creates, replaces, removes or locks is reached through package beneath:
// the directories are resolved beneath the root without following any
// symlink, and the file itself is never followed, so a symlink planted on
// the way (to the build machine in an image build, to anywhere on a node)
// is refused with a *beneath.SymlinkError naming it. Reads (Reader) may
// follow a symlink as long as it resolves inside the root
// (ErrEscapesRoot otherwise): the plan reads what is there, and WriteFile
// replaces only regular files.
package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// DefaultStateDir is the state dir used when FS.StateDir is empty.
const DefaultStateDir = "/var/lib/nodeagent"

// StateDirMode is the state dir's mode, however the agent was started: the
// web server's user must reach the ELB health file and the PHP probe in it
// by name, but cannot list it or read the agent's records.
const StateDirMode = 0o711

// Errors callers can branch on (with errors.Is).
var (
	// ErrInvalidPath: the path is not absolute and clean.
	ErrInvalidPath = errors.New("path must be absolute and clean")
	// ErrEscapesRoot: the path resolves outside the root.
	ErrEscapesRoot = errors.New("path escapes the root")
	// ErrNotRegular: the target exists and is not a regular file (a
	// symlink, a directory, a device); WriteFile does not replace it.
	ErrNotRegular = errors.New("not a regular file")
	// ErrUnknownOwner: a user or group name is not in the host's user
	// database.
	ErrUnknownOwner = errors.New("unknown user or group")
)

// FS is the host filesystem under Root.
type FS struct {
	// Root is the host root, "/" in production; "" means "/".
	Root string
	// StateDir is the host path of the state dir ("/var/lib/nodeagent"),
	// joined onto Root; "" means DefaultStateDir. The journal lives in
	// <StateDir>/journal, the lock in <StateDir>/lock.
	StateDir string
	// Rename renames a file (full paths); nil renames through the
	// directory descriptor WriteFile resolved. Tests inject failures
	// here to exercise the in-place fallback.
	Rename func(oldpath, newpath string) error
}

// Path returns p joined onto Root. p is cleaned as if it were rooted first,
// so the result never lies outside Root lexically ("/../x" and "x" both
// give <Root>/x); the I/O methods refuse such paths instead (see
// ErrInvalidPath).
func (f FS) Path(p string) string {
	return filepath.Join(f.root(), filepath.Clean("/"+p))
}

// ReadFile reads the host file p. A missing file gives an error matching
// os.ErrNotExist.
func (f FS) ReadFile(p string) ([]byte, error) { return f.Reader().ReadFile(p) }

// Lstat describes the host file p without following a final symlink.
func (f FS) Lstat(p string) (fs.FileInfo, error) { return f.Reader().Lstat(p) }

// Remove removes the host file p (or empty directory) and syncs its
// directory. A missing file is not an error.
func (f FS) Remove(p string) error {
	if !validPath(p) || p == "/" {
		return fmt.Errorf("hostfs: remove %q: %w", p, ErrInvalidPath)
	}
	d, err := beneath.OpenDir(f.root(), filepath.Dir(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hostfs: remove %s: %w", p, err)
	}
	defer d.Close()
	if err := d.Remove(filepath.Base(p)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("hostfs: remove %s: %w", p, err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("hostfs: remove %s: sync dir: %w", p, err)
	}
	return nil
}

// OpenStateDir opens the state dir beneath the root without following a
// symlink, creating it with StateDirMode (its missing parents 0755). A
// state dir at 0755, which earlier versions made outside systemd, is
// tightened to StateDirMode; any other mode is the operator's choice and
// left alone.
//
// The agent never makes a symlink in its state dir, so one there (a
// planted status.json, topology.json, health or probe link) is refused
// here, naming it, before any apply writes a thing: a *beneath.SymlinkError.
func (f FS) OpenStateDir() (*beneath.Dir, error) {
	d, err := f.openStateDir()
	if err != nil {
		return nil, err
	}
	if err := noSymlinks(d, "health"); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// noSymlinks refuses a symlink among d's entries and, when it is a
// directory, among those of its subdirectory sub.
func noSymlinks(d *beneath.Dir, sub string) error {
	entries, err := d.File().ReadDir(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.Path(), err)
	}
	if _, err := d.File().Seek(0, 0); err != nil {
		return fmt.Errorf("read %s: %w", d.Path(), err)
	}
	for _, e := range entries {
		if e.Type() == fs.ModeSymlink {
			target, _ := d.Readlink(e.Name())
			return &beneath.SymlinkError{Path: filepath.Join(d.Path(), e.Name()), Target: target}
		}
		if e.Name() == sub && e.IsDir() {
			sd, err := d.Sub(sub)
			if err != nil {
				return err
			}
			err = noSymlinks(sd, "")
			sd.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (f FS) openStateDir() (*beneath.Dir, error) {
	sd := f.stateDir()
	if sd == "/" {
		return beneath.OpenDir(f.root(), sd)
	}
	parent, err := beneath.MkdirAll(f.root(), filepath.Dir(sd), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	if err := parent.Mkdir(filepath.Base(sd), StateDirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	d, err := parent.Sub(filepath.Base(sd))
	if err != nil {
		return nil, err
	}
	if fi, err := d.File().Stat(); err == nil && fi.Mode().Perm() == 0o755 {
		if err := d.File().Chmod(StateDirMode); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

func (f FS) root() string {
	if f.Root == "" {
		return "/"
	}
	return f.Root
}

func (f FS) stateDir() string {
	if f.StateDir == "" {
		return DefaultStateDir
	}
	return f.StateDir
}

// validPath reports whether p is an absolute, clean host path.
func validPath(p string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p
}

// confineDir checks that dir, or its deepest existing ancestor, resolves
// inside Root. Nothing to check when Root is "/".
func (f FS) confineDir(dir string) error {
	root := filepath.Clean(f.root())
	if root == "/" {
		return nil
	}
	// A root with a ".." in it names a different directory for the
	// kernel (which applies ".." after following a symlink) than for
	// Path (which drops it lexically): only the full resolution compares
	// the two.
	if !strings.Contains(f.root()+"/", "/../") && plainBelow(root, dir) {
		return nil
	}
	return f.confineDirFull(dir)
}

// confineDirFull resolves dir's deepest existing ancestor from "/" and
// checks that it lies inside Root resolved.
func (f FS) confineDirFull(dir string) error {
	for {
		if _, err := os.Lstat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
	return f.within(dir)
}

// confineFile checks that full, if it is a symlink, resolves inside Root.
func (f FS) confineFile(full string) error {
	if filepath.Clean(f.root()) == "/" {
		return nil
	}
	fi, err := os.Lstat(full)
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		return nil // a missing file fails in the caller with ErrNotExist
	}
	return f.within(full)
}

// plainBelow reports whether dir lies under root through directories none
// of which is a symlink, down to dir or to its first missing component
// (when that is not root's first: a missing root is for the full
// resolution to report).
// Such a path resolves to root's own real path joined with the rest, inside
// Root whatever Root's parents are, so it needs no resolution from "/" (an
// lstat per component of Root, and Root resolved again for every directory
// checked). A symlink anywhere below root says false: within resolves the
// path then.
func plainBelow(root, dir string) bool {
	rel, ok := strings.CutPrefix(dir, root)
	if !ok || rel == "" || rel[0] != '/' {
		return false // elsewhere, or root itself: the full resolution checks it exists
	}
	var st syscall.Stat_t
	first := true
	for i := 1; i <= len(rel); i++ {
		if i < len(rel) && rel[i] != '/' {
			continue
		}
		err := syscall.Lstat(root+rel[:i], &st)
		switch {
		case (err == syscall.ENOENT || err == syscall.ENOTDIR) && !first:
			return true // nothing below it exists to escape through
		case err != nil:
			// The first component missing (Root itself may be), or an
			// error that says nothing of what is there: resolve in full.
			return false
		case st.Mode&syscall.S_IFMT == syscall.S_IFLNK:
			return false
		}
		first = false
	}
	return true
}

// within checks that the existing path p resolves inside Root.
func (f FS) within(p string) error {
	root, err := filepath.EvalSymlinks(f.root())
	if err != nil {
		return fmt.Errorf("resolve root: %w", err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // dangling: whatever opens it fails with ErrNotExist
		}
		return err
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s resolves to %s: %w", p, real, ErrEscapesRoot)
	}
	return nil
}
