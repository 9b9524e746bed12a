// Package state owns the agent's own records in its state dir
// (<root>/var/lib/nodeagent): applied.json, what the last successful apply
// converged to, and lifecycle.json, the launch hook completed for this
// instance. It also names every file other packages keep there, so the
// state dir's layout is written down in one place: the last-good copy
// (source.LastGood), the apply journal (package journal keeps its logic and
// format), status.json (readiness).
//
// Records are JSON, written whole through hostfs (confined under --root,
// mode 0600); their names and formats are those older agents wrote, so an
// upgraded agent reads what the old one left.
package state

import (
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
)

// File names in the state dir.
const (
	AppliedFile   = "applied.json"   // Applied: the last successful apply
	LifecycleFile = "lifecycle.json" // Lifecycle: the launch hook completed for this instance
	LastGoodFile  = "topology.json"  // the last good document (source.LastGood)
	JournalFile   = "apply.json"     // the apply journal (package journal)
	StatusFile    = "status.json"    // readiness status (package readiness)
)

// Dir is the state dir: FS under its root, at the host path Path
// (/var/lib/nodeagent).
type Dir struct {
	FS   hostfs.FS
	Path string
}

// File is the host path of name in the state dir.
func (d Dir) File(name string) string { return path.Join(d.Path, name) }

// Applied records the last successful apply.
type Applied struct {
	Serial     int64              `json:"serial"`
	ETag       string             `json:"etag,omitempty"`
	InstanceID string             `json:"instance_id"`
	Identity   nodeagent.Identity `json:"identity"`
	Releases   map[string]string  `json:"releases,omitempty"`
	At         time.Time          `json:"at"`
}

// Lifecycle records the completion of an instance's launch hook: an
// instance launches once, so no later process completes it again.
type Lifecycle struct {
	Hook   nodeagent.LifecycleHook `json:"hook"`
	Result string                  `json:"result"`
	At     time.Time               `json:"at"`
}

// ReadApplied reads applied.json; an error wrapping fs.ErrNotExist when no
// apply has succeeded yet.
func (d Dir) ReadApplied() (Applied, error) {
	var a Applied
	return a, d.read(AppliedFile, &a)
}

// WriteApplied replaces applied.json.
func (d Dir) WriteApplied(a Applied) error { return d.write(AppliedFile, a) }

// ReadLifecycle reads lifecycle.json; an error wrapping fs.ErrNotExist when
// no launch hook was completed on this node.
func (d Dir) ReadLifecycle() (Lifecycle, error) {
	var l Lifecycle
	return l, d.read(LifecycleFile, &l)
}

// WriteLifecycle replaces lifecycle.json.
func (d Dir) WriteLifecycle(l Lifecycle) error { return d.write(LifecycleFile, l) }

// LaunchCompleted says whether instanceID's launch hook was completed (or
// found gone) by this or an earlier process. An unreadable record counts as
// not completed: completing again is answered by Auto Scaling as "no active
// action", which is harmless. (Older agents recorded the terminate hook here
// too; it is of the same instance, which launched before it terminated.)
func (d Dir) LaunchCompleted(instanceID string) bool {
	l, err := d.ReadLifecycle()
	return err == nil && l.Hook.InstanceID == instanceID
}

func (d Dir) read(name string, v any) error {
	b, err := d.FS.ReadFile(d.File(name))
	if err != nil {
		return err // names the path; matches fs.ErrNotExist when absent
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w (remove the file to let the next apply rewrite it)", d.File(name), err)
	}
	return nil
}

func (d Dir) write(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", d.File(name), err)
	}
	// hostfs names the path in its errors.
	return d.FS.WriteFile(d.File(name), append(b, '\n'), hostfs.WriteOptions{Mode: 0o600})
}
