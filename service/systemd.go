package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/nodeagent/nodeagent"
)

// Conn is the part of go-systemd's *dbus.Conn that Systemd calls.
type Conn interface {
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ReloadUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	GetUnitPropertyContext(ctx context.Context, unit, propertyName string) (*sddbus.Property, error)
}

// jobMode is the mode of every job the agent enqueues: replace conflicting
// queued jobs, as systemctl does by default.
const jobMode = "replace"

// Job results systemd reports (org.freedesktop.systemd1.Manager JobRemoved).
const jobDone = "done"

// Systemd drives units through systemd's D-Bus API. Each job is waited for
// until systemd reports its result, bounded by the caller's context.
type Systemd struct {
	conn  Conn
	close func()
}

var _ nodeagent.ServiceManager = (*Systemd)(nil)

// NewSystemd connects to the system bus. Close releases the connection.
func NewSystemd(ctx context.Context) (*Systemd, error) {
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("systemd: connect to the system bus: %w", err)
	}
	return &Systemd{conn: c, close: c.Close}, nil
}

// NewSystemdWith drives units through c (tests pass a recording fake).
func NewSystemdWith(c Conn) *Systemd { return &Systemd{conn: c} }

// Close closes the D-Bus connection NewSystemd opened.
func (s *Systemd) Close() {
	if s.close != nil {
		s.close()
	}
}

// Active reports whether the unit's ActiveState is "active" or "reloading",
// the states `systemctl is-active` accepts.
func (s *Systemd) Active(ctx context.Context, unit string) (bool, error) {
	unit = UnitName(unit)
	p, err := s.conn.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return false, fmt.Errorf("systemd: ActiveState of %s: %w", unit, err)
	}
	state, ok := p.Value.Value().(string)
	if !ok {
		return false, fmt.Errorf("systemd: ActiveState of %s: %w", unit, errNotString)
	}
	return state == "active" || state == "reloading", nil
}

var errNotString = errors.New("property is not a string")

// Start starts the unit and waits for the job.
func (s *Systemd) Start(ctx context.Context, unit string) error {
	return s.job(ctx, "start", unit, s.conn.StartUnitContext)
}

// Reload reloads the unit and waits for the job.
func (s *Systemd) Reload(ctx context.Context, unit string) error {
	return s.job(ctx, "reload", unit, s.conn.ReloadUnitContext)
}

// Restart restarts the unit and waits for the job.
func (s *Systemd) Restart(ctx context.Context, unit string) error {
	return s.job(ctx, "restart", unit, s.conn.RestartUnitContext)
}

// unitTypes are the unit type suffixes systemd knows.
var unitTypes = []string{
	".service", ".socket", ".target", ".timer", ".mount", ".automount",
	".path", ".swap", ".slice", ".scope", ".device",
}

// UnitName is the full unit name systemd's D-Bus API wants: "apache2"
// becomes "apache2.service" (systemctl does the same mangling on the command
// line; the D-Bus API does not). "php8.2-fpm" is a service too: a dot alone
// is not a type suffix.
func UnitName(unit string) string {
	for _, t := range unitTypes {
		if strings.HasSuffix(unit, t) {
			return unit
		}
	}
	return unit + ".service"
}

// JobError is a systemd job that finished with a result other than "done"
// (failed, timeout, canceled, dependency, skipped).
type JobError struct {
	Unit, Action, Result string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s job for %s finished with result %q (see journalctl -u %s)", e.Action, e.Unit, e.Result, e.Unit)
}

func (s *Systemd) job(ctx context.Context, action, unit string, enqueue func(context.Context, string, string, chan<- string) (int, error)) error {
	// Buffered: go-systemd sends the result while holding its job lock, and
	// this side may have stopped listening (ctx done).
	unit = UnitName(unit)
	ch := make(chan string, 1)
	if _, err := enqueue(ctx, unit, jobMode, ch); err != nil {
		return actionError("systemd", action, unit, err)
	}
	select {
	case res := <-ch:
		if res != jobDone {
			return actionError("systemd", action, unit, &JobError{Unit: unit, Action: action, Result: res})
		}
		return nil
	case <-ctx.Done():
		return actionError("systemd", action, unit, fmt.Errorf("waiting for the job: %w", ctx.Err()))
	}
}
