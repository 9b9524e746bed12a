package readiness

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// stateDirMode is the mode of directories readiness creates (the state dir
// and health/ in it): the web server's user reaches the health file by
// name, nobody lists them. hostfs.StateDirMode says the same.
const stateDirMode = 0o711

// WriteStatusFile writes st as JSON to path under root atomically
// (temporary file, rename), creating the directory if needed, never
// following a symlink (package beneath). The file is 0600: its errors
// are redacted, but they still name hosts and paths that only root (who
// runs `nodeagent status`) needs to see. It does not fsync: the file is
// a report that every apply rewrites, a reader never sees a part of it, and
// after a power loss the boot apply writes it again; two fsyncs would be
// most of the cost of recording a no-change apply.
func WriteStatusFile(root, path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("readiness: encode status: %w", err)
	}
	d, err := beneath.MkdirAll(root, filepath.Dir(path), stateDirMode)
	if err != nil {
		return fmt.Errorf("readiness: write status file %s: %w", path, err)
	}
	defer d.Close()
	if err := d.WriteFile(filepath.Base(path), append(b, '\n'), statusFileMode, false); err != nil {
		return fmt.Errorf("readiness: write status file: %w", err)
	}
	return nil
}

const statusFileMode = 0o600

// ReadStatusFile reads a status written by WriteStatusFile (path under
// root, never through a symlink), redacted.
func ReadStatusFile(root, path string) (Status, error) {
	b, err := beneath.ReadFile(root, path)
	if err != nil {
		return Status{}, fmt.Errorf("readiness: read status file: %w", err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("readiness: read status file %s: %w", path, err)
	}
	st.redact() // a file an older agent wrote may hold URL secrets
	return st, nil
}
