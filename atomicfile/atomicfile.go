// Package atomicfile replaces small files whole: the agent's own records
// (the status report, the last-good topology copy) that readers must see
// old or new, never in part. Host files go through hostfs, which adds root
// confinement, ownership and a fallback for bind mounts.
package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with data: a temporary file in the same directory,
// written and chmod-ed to mode, renamed over path. A reader sees the old or
// the new content, never a part, and the temporary file never outlives a
// failure. With durable, the file is fsync-ed before the rename and the
// directory after it, so the new content also survives a power loss.
func Write(path string, data []byte, mode os.FileMode, durable bool) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
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
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// tempInfix is in the name of every temporary file Write makes:
// ".NAME.tmp-RANDOM".
const tempInfix = ".tmp-"

// IsTemp reports whether name (a base name) is one of Write's temporary
// files, which a process killed during Write leaves behind.
func IsTemp(name string) bool {
	i := strings.LastIndex(name, tempInfix)
	if len(name) < 2 || name[0] != '.' || i < 1 {
		return false
	}
	digits := name[i+len(tempInfix):]
	return digits != "" && strings.Trim(digits, "0123456789") == "" // os.CreateTemp's random part
}

// SyncDir fsyncs a directory, making a rename, creation or removal in it
// survive a crash of the machine.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
