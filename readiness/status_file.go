package readiness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteStatusFile writes st as JSON to path atomically (temporary file,
// rename), creating the directory if needed. It does not fsync: the file is
// a report that every apply rewrites, a reader never sees a part of it, and
// after a power loss the boot apply writes it again; two fsyncs would be
// most of the cost of recording a no-change apply.
func WriteStatusFile(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("readiness: encode status: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("readiness: write status file %s: %w", path, err)
	}
	if err := writeAtomic(path, append(b, '\n'), 0o644, false); err != nil {
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
// directory, written, chmod-ed, renamed over path. A reader sees the old or
// the new content, never a part. With durable, the file is fsync-ed before
// the rename and the directory after it, so the new content survives a
// power loss.
func writeAtomic(path string, data []byte, mode os.FileMode, durable bool) (err error) {
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
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
