package readiness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteStatusFile writes st as JSON to path atomically (temporary file,
// fsync, rename, directory fsync), creating the directory if needed.
func WriteStatusFile(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("readiness: encode status: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("readiness: write status file %s: %w", path, err)
	}
	if err := writeAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("readiness: write status file: %w", err)
	}
	return nil
}

// ReadStatusFile reads a status written by WriteStatusFile.
func ReadStatusFile(path string) (Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, fmt.Errorf("readiness: read status file: %w", err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("readiness: read status file %s: %w", path, err)
	}
	return st, nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, written, chmod-ed and fsync-ed, renamed over path, then the
// directory fsync-ed. A reader sees the old or the new content, never a part.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
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
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
