package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	full, err := f.resolve(p)
	if err != nil {
		return err
	}
	a, err := f.attrs(o)
	if err != nil {
		return err
	}
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := regularOrMissing(full); err != nil {
		return err
	}

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(full)+tempInfix+"*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmpName)
		}
	}()
	if err := writeSynced(tmp, data, a); err != nil {
		return err
	}
	if err := f.rename(tmpName, full); err != nil {
		if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) {
			return err
		}
		return f.rewriteInPlace(p, full, data, a)
	}
	renamed = true
	return syncDir(dir)
}

// regularOrMissing refuses to replace anything but a regular file.
func regularOrMissing(full string) error {
	fi, err := os.Lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
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

// rewriteInPlace journals the new content, rewrites the target in place,
// then drops the journal entry.
func (f FS) rewriteInPlace(p, full string, data []byte, a attrs) error {
	entry, err := f.journal(p, data, a)
	if err != nil {
		return fmt.Errorf("in-place rewrite: %w", err)
	}
	if err := writeInPlace(full, data, a); err != nil {
		return fmt.Errorf("in-place rewrite (journaled in %s, Recover completes it): %w", entry, err)
	}
	if err := removeSynced(entry); err != nil {
		return fmt.Errorf("in-place rewrite: drop journal entry: %w", err)
	}
	return nil
}

// journal stores data durably as the journal entry for p: written to a
// temporary name, fsynced, renamed, directory fsynced. The entry's own
// mode and owner record the ones p must get (the journal dir is 0700, so
// the entry's mode exposes nothing). It returns the entry's path.
func (f FS) journal(p string, data []byte, a attrs) (string, error) {
	dir := f.journalDir()
	if err := f.confineDir(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, journalTempPrefix+"*")
	if err != nil {
		return "", err
	}
	if err := writeSynced(tmp, data, a); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	entry := filepath.Join(dir, url.PathEscape(p))
	// The journal lives in the state dir, never on a bind mount: a plain
	// rename, not the injectable one.
	if err := os.Rename(tmp.Name(), entry); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return entry, nil
}

// writeInPlace overwrites full's content, length, owner and mode through an
// open descriptor, keeping the inode (and so the mount) in place.
func writeInPlace(full string, data []byte, a attrs) error {
	if err := regularOrMissing(full); err != nil {
		return err
	}
	file, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE, a.mode.Perm())
	if err != nil {
		return err
	}
	return writeSynced(file, data, a)
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Recover completes in-place rewrites a crash interrupted: every file with
// an entry in <StateDir>/journal is rewritten in place with the journaled
// content, mode and owner, and the entry is removed. Entries still being
// written when the crash came are dropped (their target was never
// touched). Call it at the start of every apply, under the lock. Entries
// that cannot be replayed are reported together and left for the next
// call.
func (f FS) Recover() error {
	dir := f.journalDir()
	if err := f.confineDir(dir); err != nil {
		return fmt.Errorf("hostfs: recover: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hostfs: recover: %w", err)
	}
	var errs []error
	for _, e := range entries {
		entry := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), journalTempPrefix) {
			if err := os.Remove(entry); err != nil {
				errs = append(errs, fmt.Errorf("hostfs: recover: drop incomplete %s: %w", entry, err))
			}
			continue
		}
		if err := f.replay(entry, e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("hostfs: recover: %w", err))
		}
	}
	if err := syncDir(dir); err != nil {
		errs = append(errs, fmt.Errorf("hostfs: recover: %w", err))
	}
	return errors.Join(errs...)
}

// replay rewrites the target of one journal entry and removes the entry.
func (f FS) replay(entry, name string) error {
	p, err := url.PathUnescape(name)
	if err != nil || !validPath(p) {
		return fmt.Errorf("journal entry %s: not an escaped host path: %w", entry, ErrInvalidPath)
	}
	full, err := f.resolve(p)
	if err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	data, err := os.ReadFile(entry)
	if err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	fi, err := os.Stat(entry)
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
	if err := writeInPlace(full, data, a); err != nil {
		return fmt.Errorf("replay %s: %w", p, err)
	}
	if err := os.Remove(entry); err != nil {
		return fmt.Errorf("replay %s: drop journal entry: %w", p, err)
	}
	return nil
}
