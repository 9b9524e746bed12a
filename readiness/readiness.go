// Package readiness holds the node's readiness state and shows it three ways
// that always agree (SPEC section 6): the HTTP endpoints (/ready, /live,
// /status), the ELB health file that Apache's health location serves (present
// only while ready), and systemd notifications (READY=1, STATUS=, and
// WATCHDOG=1 pings).
//
// The node is ready when its last apply succeeded, its smoke checks passed
// and it is not draining. Every change goes through State.Update, which puts
// the health file in its new state before the endpoints answer differently
// and before systemd hears about it. The endpoints only read the state: a
// probe never runs a check.
package readiness

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
	"github.com/nodeagent/nodeagent/redact"
	"github.com/nodeagent/nodeagent/smoke"
)

// HealthFileContent is what the health file holds while the node is ready.
const HealthFileContent = "ok\n"

// Reasons the node is not ready, as /ready reports them. They say why without
// leaking details; /status has the details.
const (
	ReasonDraining      = "draining"
	ReasonNotApplied    = "not applied yet"
	ReasonApplyFailed   = "last apply failed"
	ReasonSmokeFailed   = "smoke checks failed" // followed by ": <check names>"
	ReasonHealthFileErr = "cannot create the ELB health file"
)

// Status is the node's state as /status and `nodeagent status` show it.
type Status struct {
	Ready    bool      `json:"ready"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since,omitzero"` // when Ready or Reason last changed
	Draining bool      `json:"draining"`

	LastApply   time.Time `json:"last_apply,omitzero"`
	LastApplyOK bool      `json:"last_apply_ok"`
	ApplyError  string    `json:"apply_error,omitempty"`
	// Serial is the topology serial of the last successful apply; SeenSerial
	// the newest serial seen, applied or not.
	Serial     int64             `json:"serial"`
	SeenSerial int64             `json:"seen_serial"`
	Release    map[string]string `json:"release,omitempty"` // product -> active release id
	Smoke      []smoke.Result    `json:"smoke,omitempty"`

	// LastError is the latest failure that did not change readiness (a bad
	// topology document refused while the node keeps its last good state).
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`

	Instance string `json:"instance,omitempty"`
	Role     string `json:"role,omitempty"`
	Node     string `json:"node,omitempty"`

	// Owed are the service actions an apply owes and has not done yet
	// ("reload php-fpm (php8.2-fpm)"), kept in the state dir's apply
	// journal and retried by the next apply. The running services serve
	// what they last loaded: with an owed undo reload, the previous state.
	Owed    []string `json:"owed,omitempty"`
	OwedWhy string   `json:"owed_why,omitempty"`

	// BootID is the kernel boot id of the boot this status was judged in
	// (/proc/sys/kernel/random/boot_id): readiness resumes only within it.
	BootID string `json:"boot_id,omitempty"`
}

func (st Status) clone() Status {
	st.Release = maps.Clone(st.Release)
	st.Smoke = slices.Clone(st.Smoke)
	st.Owed = slices.Clone(st.Owed)
	return st
}

// redact takes URL secrets (userinfo, query strings: a presigned release
// URL's signature and token) out of the status's free text, so that
// status.json, /status and `nodeagent status` never show them. st's Smoke
// slice must be its own (clone first).
func (st *Status) redact() {
	st.ApplyError = redact.Text(st.ApplyError)
	st.LastError = redact.Text(st.LastError)
	for i := range st.Smoke {
		st.Smoke[i].Err = redact.Text(st.Smoke[i].Err)
	}
}

// evaluate computes readiness from the rest of the status. A node with no
// smoke checks at all (a database node) passes them vacuously; the agent
// records apply and smoke results in one Update.
func evaluate(st *Status) (bool, string) {
	switch {
	case st.Draining:
		return false, ReasonDraining
	case !st.LastApplyOK && st.LastApply.IsZero():
		return false, ReasonNotApplied
	case !st.LastApplyOK:
		return false, ReasonApplyFailed
	}
	var failed []string
	for _, r := range st.Smoke {
		if !r.OK {
			failed = append(failed, r.Name)
		}
	}
	if len(failed) > 0 {
		return false, ReasonSmokeFailed + ": " + strings.Join(failed, ", ")
	}
	reason := fmt.Sprintf("serial %d applied, %d smoke checks passed", st.Serial, len(st.Smoke))
	if len(st.Owed) > 0 {
		reason += "; owed, retried by the next apply: " + strings.Join(st.Owed, ", ")
	}
	return true, reason
}

// Notifier sends a state string to the service manager (sd_notify).
type Notifier interface {
	Notify(state string) error
}

// Options configure a State.
type Options struct {
	// Root is the agent's --root; "" means "/". HealthFile and StatusFile
	// are host paths under it, created, replaced and removed without
	// following a symlink anywhere on the way (package beneath): a planted
	// link is refused and logged, naming it.
	Root string
	// HealthFile is the host path of the ELB health file
	// (/var/lib/nodeagent/health/ready). "" manages none.
	HealthFile string
	// StatusFile, when set, receives the status as JSON after every change
	// (/var/lib/nodeagent/status.json), for `nodeagent status`.
	StatusFile string
	// Notifier receives READY=1 and STATUS= notifications; nil sends none.
	Notifier Notifier
	// Logger receives transitions and file or notify failures; nil discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Initial, when set, is the status recorded by an earlier process
	// (ReadStatusFile): the State starts from it instead of from nothing,
	// when it was recorded in this boot (BootID).
	Initial *Status
	// BootID is the kernel boot id of the running boot. An Initial status
	// of another boot (or of an unknown one, BootID "") is not resumed:
	// after a reboot the node is not ready until an apply and smoke checks
	// of this boot pass.
	BootID string
}

// State is the node's readiness state. It is safe for concurrent use.
type State struct {
	o   Options
	log *slog.Logger

	// update serializes changes: file, publication and notification happen
	// in that order for one change before the next change starts.
	update   sync.Mutex
	notified string // last STATUS= sent

	mu sync.RWMutex
	st Status
}

// New returns a State that is not ready, or, with Options.Initial, the
// state an earlier process recorded. A node that is not ready gets any
// health file left by an earlier process removed, so Apache does not report
// a node ready that no process has checked; a resumed ready node keeps its
// file, so restarting the agent never flaps the load balancer.
func New(o Options) *State {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &State{o: o, log: o.Logger}
	if o.Initial != nil {
		s.st = o.Initial.clone()
		s.st.Draining = false
		s.st.redact() // recorded by an older agent, perhaps unredacted
		if o.BootID == "" || o.Initial.BootID != o.BootID {
			// What the node serves now was never checked in this boot:
			// keep what was applied for /status, not its verdict.
			s.log.Info("readiness: the recorded status is from another boot; not ready until this boot's apply and smoke checks pass",
				nodeagent.LogKeyRecordedBootID, o.Initial.BootID, nodeagent.LogKeyBootID, o.BootID)
			s.st.LastApply, s.st.LastApplyOK, s.st.ApplyError, s.st.Smoke = time.Time{}, false, "", nil
		}
	}
	s.st.BootID = o.BootID
	s.st.Ready, s.st.Reason = evaluate(&s.st)
	s.st.Since = o.Now()
	if s.st.Ready {
		if err := s.createHealthFile(); err != nil {
			s.log.Error("readiness: node stays not ready", nodeagent.LogKeyPath, o.HealthFile, nodeagent.LogKeyError, err)
			s.st.Ready, s.st.Reason = false, ReasonHealthFileErr
		}
		return s
	}
	if err := s.removeHealthFile(); err != nil {
		s.log.Error("readiness: stale ELB health file stays; the load balancer may see this node ready",
			nodeagent.LogKeyPath, o.HealthFile, nodeagent.LogKeyError, err)
	}
	return s
}

// Update changes the status with f and recomputes readiness. The health file
// is created (ready) or removed (not ready) before the new state is visible
// to the endpoints, and systemd is told after: READY=1 with STATUS= on
// becoming ready, STATUS= on any other change of readiness or reason. If the
// health file cannot be created the node stays not ready, so the three faces
// still agree.
func (s *State) Update(f func(*Status)) {
	s.update.Lock()
	defer s.update.Unlock()

	s.mu.RLock()
	prev := s.st.clone()
	s.mu.RUnlock()
	next := prev.clone()
	f(&next)
	next.Smoke = slices.Clone(next.Smoke) // f may have set the caller's slice
	next.redact()
	next.Ready, next.Reason = evaluate(&next)

	if next.Ready {
		if err := s.createHealthFile(); err != nil {
			s.log.Error("readiness: node stays not ready", nodeagent.LogKeyPath, s.o.HealthFile, nodeagent.LogKeyError, err)
			next.Ready, next.Reason = false, ReasonHealthFileErr
		}
	} else if err := s.removeHealthFile(); err != nil {
		// The node is not ready but Apache may still say it is; say so
		// loudly. The next Update tries again.
		s.log.Error("readiness: cannot remove the ELB health file; the load balancer may still see this node ready",
			nodeagent.LogKeyPath, s.o.HealthFile, nodeagent.LogKeyError, err)
	}
	if next.Ready != prev.Ready || next.Reason != prev.Reason {
		next.Since = s.o.Now()
	}

	s.mu.Lock()
	s.st = next
	s.mu.Unlock()

	if next.Ready != prev.Ready {
		s.log.Info("readiness changed", nodeagent.LogKeyReady, next.Ready, nodeagent.LogKeyReason, next.Reason)
	}
	if s.o.StatusFile != "" {
		if err := WriteStatusFile(s.o.Root, s.o.StatusFile, next); err != nil {
			s.log.Error("readiness: status file not updated", nodeagent.LogKeyError, err)
		}
	}
	s.notify(prev, next)
}

// notify tells systemd about a change; called with s.update held.
func (s *State) notify(prev, next Status) {
	if s.o.Notifier == nil {
		return
	}
	var status string
	switch {
	case next.Ready:
		status = "STATUS=ready: " + next.Reason
	case next.Draining:
		status = "STATUS=draining"
	default:
		status = "STATUS=not ready: " + next.Reason
	}
	msg := status
	if next.Ready && !prev.Ready {
		msg = "READY=1\n" + status
	} else if status == s.notified {
		return
	}
	if err := s.o.Notifier.Notify(msg); err != nil {
		s.log.Warn("readiness: systemd notify failed", nodeagent.LogKeyState, msg, nodeagent.LogKeyError, err)
		return
	}
	s.notified = status
}

// Snapshot returns a copy of the current status.
func (s *State) Snapshot() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.clone()
}

// Drain marks the node draining: not ready, health file removed, systemd told
// STATUS=draining. An Update that sets Draining to false ends it.
func (s *State) Drain() {
	s.Update(func(st *Status) { st.Draining = true })
}

// createHealthFile puts HealthFileContent at HealthFile atomically.
func (s *State) createHealthFile() error {
	if s.o.HealthFile == "" {
		return nil
	}
	if b, err := beneath.ReadFile(s.o.Root, s.o.HealthFile); err == nil && string(b) == HealthFileContent {
		return nil
	}
	d, err := beneath.MkdirAll(s.o.Root, filepath.Dir(s.o.HealthFile), stateDirMode)
	if err != nil {
		return fmt.Errorf("readiness: create health file %s: %w", s.o.HealthFile, err)
	}
	defer d.Close()
	if err := d.WriteFile(filepath.Base(s.o.HealthFile), []byte(HealthFileContent), 0o644, true); err != nil {
		return fmt.Errorf("readiness: create health file: %w", err)
	}
	return nil
}

// removeHealthFile removes HealthFile; a missing file is fine.
func (s *State) removeHealthFile() error {
	if s.o.HealthFile == "" {
		return nil
	}
	if err := beneath.Remove(s.o.Root, s.o.HealthFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("readiness: remove health file: %w", err)
	}
	return nil
}
