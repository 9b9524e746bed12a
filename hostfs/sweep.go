package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/atomicfile"
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
	full, err := f.resolve(filepath.Join(dir, "x"))
	if err != nil {
		return nil, fmt.Errorf("hostfs: sweep %s: %w", dir, err)
	}
	full = filepath.Dir(full)
	entries, err := os.ReadDir(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostfs: sweep %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(IsTemp(name) || alsoAtomic && atomicfile.IsTemp(name)) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(before) {
			continue // gone already, or a write in flight
		}
		if err := os.Remove(filepath.Join(full, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("hostfs: sweep %s: %w", dir, err))
			continue
		}
		removed = append(removed, filepath.Join(dir, name))
	}
	if len(removed) > 0 {
		if err := syncDir(full); err != nil {
			errs = append(errs, fmt.Errorf("hostfs: sweep %s: %w", dir, err))
		}
	}
	return removed, errors.Join(errs...)
}
