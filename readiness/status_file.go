package readiness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nodeagent/nodeagent/atomicfile"
)

// WriteStatusFile writes st as JSON to path atomically (temporary file,
// rename), creating the directory if needed. The file is 0600: its errors
// are redacted, but they still name hosts and paths that only root (who
// runs `nodeagent status`) needs to see. It does not fsync: the file is
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
	if err := atomicfile.Write(path, append(b, '\n'), statusFileMode, false); err != nil {
		return fmt.Errorf("readiness: write status file: %w", err)
	}
	return nil
}

const statusFileMode = 0o600

// ReadStatusFile reads a status written by WriteStatusFile, redacted.
func ReadStatusFile(path string) (Status, error) {
	b, err := os.ReadFile(path)
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
