package hostfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// WriteOptions say what the written file's mode and owner are.
type WriteOptions struct {
	// Mode is the permission bits, setuid, setgid and sticky included;
	// 0 means 0644. File type bits are refused.
	Mode fs.FileMode
	// Owner and Group are names in the host's user database
	// (<Root>/etc/passwd, <Root>/etc/group); "" means root (uid/gid 0).
	Owner, Group string
}

// journalTempPrefix starts the names of journal entries still being
// written; an escaped host path always starts with "%2F", never with ".".
const journalTempPrefix = ".pending-"

// WriteFile writes data to the host file p atomically, with o's mode and
// owner.
//
// The usual way: a temporary file in the same directory, written, chowned,
// chmodded (in that order: chown clears setuid bits), fsynced, renamed
// over p, and the directory fsynced. Missing parent directories are
// created 0755. An existing p that is not a regular file (a symlink, a
// directory) is left alone: ErrNotRegular.
//
// When the rename is impossible because p is a mount point (a bind-mounted
// /etc/hosts: EBUSY, or EXDEV), WriteFile rewrites p in place without ever
// leaving it half-done: the new content, mode and owner are first journaled
// durably in <StateDir>/journal, then p is opened, overwritten, truncated
// to length, chowned, chmodded and fsynced, and the journal entry is
// removed. If that rewrite fails or the machine dies during it, the entry
// stays and Recover completes the rewrite.
func (f FS) WriteFile(p string, data []byte, o WriteOptions) error {
	if err := f.writeFile(p, data, o); err != nil {
		return fmt.Errorf("hostfs: write %s: %w", p, err)
	}
	return nil
}

// attrs are the resolved mode and owner of a file to write.
type attrs struct {
	mode     fs.FileMode
	uid, gid uint32
}

func (f FS) attrs(o WriteOptions) (attrs, error) {
	if o.Mode&fs.ModeType != 0 {
		return attrs{}, fmt.Errorf("mode %v: not a regular file mode: %w", o.Mode, ErrNotRegular)
	}
	a := attrs{mode: o.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	if a.mode == 0 {
		a.mode = 0o644
	}
	var err error
	if a.uid, err = passwdDB.id(f, o.Owner); err != nil {
		return attrs{}, err
	}
	if a.gid, err = groupDB.id(f, o.Group); err != nil {
		return attrs{}, err
	}
	return a, nil
}

func (f FS) writeFile(p string, data []byte, o WriteOptions) error {
	if !validPath(p) || p == "/" {
		return fmt.Errorf("%q: %w", p, ErrInvalidPath)
	}
	full := f.Path(p)
	a, err := f.attrs(o)
	if err != nil {
		return err
	}
	// The directory is opened (and made) beneath the root without
	// following a symlink; everything below happens through it.
	d, err := beneath.MkdirAll(f.root(), filepath.Dir(p), 0o755)
	if err != nil {
		return err
	}
	defer d.Close()
	base := filepath.Base(p)
	if err := regularOrMissing(d, base, full); err != nil {
		return err
	}

	tmp, tmpName, err := d.CreateTemp("." + base + tempInfix)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			d.Remove(tmpName)
		}
	}()
	if err := writeSynced(tmp, data, a); err != nil {
		return err
	}
	if err := f.renameIn(d, tmpName, base); err != nil {
		if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) {
			return err
		}
		return f.rewriteInPlace(p, d, data, a)
	}
	renamed = true
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", d.Path(), err)
	}
	return nil
}

// renameIn renames d's entry oldname to newname: with f.Rename when set
// (tests), through d otherwise.
func (f FS) renameIn(d *beneath.Dir, oldname, newname string) error {
	if f.Rename != nil {
		return f.Rename(filepath.Join(d.Path(), oldname), filepath.Join(d.Path(), newname))
	}
	return d.Rename(oldname, newname)
}

// regularOrMissing refuses to replace anything but a regular file: d's
// entry base, named full in messages.
func regularOrMissing(d *beneath.Dir, base, full string) error {
	fi, err := d.Lstat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() == fs.ModeSymlink:
		target, _ := d.Readlink(base)
		return fmt.Errorf("%w (%w)", &beneath.SymlinkError{Path: full, Target: target}, ErrNotRegular)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is %v: %w", full, fi.Mode().Type(), ErrNotRegular)
	}
	return nil
}

// writeSynced writes data to the start of file, truncates it to length,
// sets owner and mode, fsyncs and closes it.
func writeSynced(file *os.File, data []byte, a attrs) error {
	err := func() error {
		if _, err := file.WriteAt(data, 0); err != nil {
			return err
		}
		if err := file.Truncate(int64(len(data))); err != nil {
			return err
		}
		if err := setAttrs(file, a); err != nil {
			return err
		}
		return file.Sync()
	}()
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}

// setAttrs chowns (when needed) and then chmods an open file: chown after
// chmod would clear setuid and setgid bits.
func setAttrs(file *os.File, a attrs) error {
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid != a.uid || st.Gid != a.gid {
		if err := file.Chown(int(a.uid), int(a.gid)); err != nil {
			return err
		}
	}
	return file.Chmod(a.mode)
}

func (f FS) journalDir() string {
	return f.Path(filepath.Join(f.stateDir(), "journal"))
}

// openJournal opens <StateDir>/journal beneath the root, creating it (and
// the state dir) when create is set.
func (f FS) openJournal(create bool) (*beneath.Dir, error) {
	if !create {
		return beneath.OpenDir(f.root(), filepath.Join(f.stateDir(), "journal"))
	}
	sd, err := f.OpenStateDir()
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	if err := sd.Mkdir("journal", 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return sd.Sub("journal")
}

// rewriteInPlace journals the new content, rewrites p (d's entry) in
// place, then drops the journal entry.
func (f FS) rewriteInPlace(p string, d *beneath.Dir, data []byte, a attrs) error {
	entry, err := f.journal(p, data, a)
	if err != nil {
		return fmt.Errorf("in-place rewrite: %w", err)
	}
	if err := writeInPlace(d, filepath.Base(p), f.Path(p), data, a); err != nil {
		return fmt.Errorf("in-place rewrite (journaled in %s, Recover completes it): %w", entry, err)
	}
	jd, err := f.openJournal(false)
	if err != nil {
		return fmt.Errorf("in-place rewrite: drop journal entry: %w", err)
	}
	defer jd.Close()
	if err := jd.Remove(filepath.Base(entry)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("in-place rewrite: drop journal entry: %w", err)
	}
	if err := jd.Sync(); err != nil {
		return fmt.Errorf("in-place rewrite: drop journal entry: %w", err)
	}
	return nil
}

// journal stores data durably as the journal entry for p: written to a
// temporary name, fsynced, renamed, directory fsynced. The entry's own
// mode and owner record the ones p must get (the journal dir is 0700, so
// the entry's mode exposes nothing). It returns the entry's path.
func (f FS) journal(p string, data []byte, a attrs) (string, error) {
	jd, err := f.openJournal(true)
	if err != nil {
		return "", err
	}
	defer jd.Close()
	tmp, tmpName, err := jd.CreateTemp(journalTempPrefix)
	if err != nil {
		return "", err
	}
	if err := writeSynced(tmp, data, a); err != nil {
		jd.Remove(tmpName)
		return "", err
	}
	entry := url.PathEscape(p)
	// The journal lives in the state dir, never on a bind mount: a plain
	// rename, not the injectable one.
	if err := jd.Rename(tmpName, entry); err != nil {
		jd.Remove(tmpName)
		return "", err
	}
	if err := jd.Sync(); err != nil {
		return "", err
	}
	return filepath.Join(jd.Path(), entry), nil
}

// writeInPlace overwrites the content, length, owner and mode of d's entry
// base (full in messages) through an open descriptor, keeping the inode
// (and so the mount) in place.
func writeInPlace(d *beneath.Dir, base, full string, data []byte, a attrs) error {
	if err := regularOrMissing(d, base, full); err != nil {
		return err
	}
	file, err := d.Open(base, os.O_WRONLY|os.O_CREATE, a.mode.Perm())
	if err != nil {
		return err
	}
	return writeSynced(file, data, a)
}

// Recover completes in-place rewrites a crash interrupted: every file with
// an entry in <StateDir>/journal is rewritten in place with the journaled
// content, mode and owner, and the entry is removed. Entries still being
// written when the crash came are dropped (their target was never
// touched). Call it at the start of every apply, under the lock. Entries
// that cannot be replayed are reported together and left for the next
// call.
func (f FS) Recover() error {
	jd, err := f.openJournal(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hostfs: recover: %w", err)
	}
	defer jd.Close()
	names, err := jd.File().Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("hostfs: recover: %w", err)
	}
	var errs []error
	for _, name := range names {
		if strings.HasPrefix(name, journalTempPrefix) {
			if err := jd.Remove(name); err != nil {
				errs = append(errs, fmt.Errorf("hostfs: recover: drop incomplete: %w", err))
			}
			continue
		}
		if err := f.replay(jd, name); err != nil {
			errs = append(errs, fmt.Errorf("hostfs: recover: %w", err))
		}
	}
	if err := jd.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("hostfs: recover: sync dir %s: %w", jd.Path(), err))
	}
	return errors.Join(errs...)
}

// replay rewrites the target of journal entry name (in jd) and removes
// the entry.
func (f FS) replay(jd *beneath.Dir, name string) error {
	entry := filepath.Join(jd.Path(), name)
	p, err := url.PathUnescape(name)
	if err != nil || !validPath(p) || p == "/" {
		return fmt.Errorf("journal entry %s: not an escaped host path: %w", entry, ErrInvalidPath)
	}
	file, err := jd.Open(name, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("replay %s: journal entry %s is %v: %w", p, entry, fi.Mode().Type(), ErrNotRegular)
	}
	data, err := io.ReadAll(file)
	if err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("replay %s: journal entry %s has no ownership information", p, entry)
	}
	a := attrs{
		mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		uid:  st.Uid,
		gid:  st.Gid,
	}
	d, err := beneath.OpenDir(f.root(), filepath.Dir(p))
	if err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	defer d.Close()
	if err := writeInPlace(d, filepath.Base(p), f.Path(p), data, a); err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	if err := jd.Remove(name); err != nil {
		return fmt.Errorf("replay %s: drop journal entry: %w", p, err)
	}
	return nil
}
