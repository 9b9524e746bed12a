package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/atomicfile"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// tempInfix is in the name of every temporary file WriteFile makes next to
// its target: ".NAME.nodeagent-RANDOM".
const tempInfix = ".nodeagent-"

// IsTemp reports whether name (a base name) is one of WriteFile's
// temporary files, which a process killed during a write leaves behind.
func IsTemp(name string) bool {
	i := strings.LastIndex(name, tempInfix)
	if len(name) < 2 || name[0] != '.' || i < 1 {
		return false
	}
	digits := name[i+len(tempInfix):]
	return digits != "" && strings.Trim(digits, "0123456789") == "" // os.CreateTemp's random part
}

// SweepTemp removes the temporary files interrupted writes left in the host
// directory dir: regular files named like WriteFile's (and, with
// alsoAtomic, like atomicfile.Write's, as in the state dir) last modified
// before before, so a write in flight keeps its file. It returns the host
// paths it removed. A missing dir has nothing to sweep.
func (f FS) SweepTemp(dir string, before time.Time, alsoAtomic bool) ([]string, error) {
	if !validPath(dir) {
		return nil, fmt.Errorf("hostfs: sweep %q: %w", dir, ErrInvalidPath)
	}
	// The directory is opened beneath the root without following a
	// symlink, and entries are removed through it.
	d, err := beneath.OpenDir(f.root(), dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostfs: sweep %s: %w", dir, err)
	}
	defer d.Close()
	entries, err := d.File().ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("hostfs: sweep %s: %w", dir, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(IsTemp(name) || alsoAtomic && atomicfile.IsTemp(name)) {
			continue
		}
		fi, err := d.Lstat(name)
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(before) {
			continue // gone already, or a write in flight
		}
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("hostfs: sweep %s: %w", dir, err))
			continue
		}
		removed = append(removed, filepath.Join(dir, name))
	}
	if len(removed) > 0 {
		if err := d.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("hostfs: sweep %s: sync dir: %w", dir, err))
		}
	}
	return removed, errors.Join(errs...)
}
