package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

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
//
// Systemd owns its connection: it is dialled on no caller's context (a
// go-systemd connection dies with the context it was dialled on, and the
// undo after a timed-out apply runs on a deadline of its own), each dial is
// bounded by DialTimeout, and a connection found lost (D-Bus restarted) is
// dialled again before the next call, or once more after a call that found
// it closed.
type Systemd struct {
	dial        Dialer
	dialTimeout time.Duration

	mu    sync.Mutex
	conn  Conn
	close func()
}

var _ nodeagent.ServiceManager = (*Systemd)(nil)

// Dialer opens a connection to systemd on ctx, which bounds the connection's
// life (go-systemd's NewSystemConnectionContext), and returns it with the
// function that closes it.
type Dialer func(ctx context.Context) (Conn, func(), error)

// DialTimeout bounds one dial of the system bus.
const DialTimeout = 10 * time.Second

// DialSystemBus dials the system bus with go-systemd.
func DialSystemBus(ctx context.Context) (Conn, func(), error) {
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

// NewSystemd connects to the system bus now, so that a host without a
// reachable systemd fails at start, bounded by DialTimeout (ctx only bounds
// this first wait, not the connection's life). Close releases the
// connection.
func NewSystemd(ctx context.Context) (*Systemd, error) {
	return NewSystemdDialer(ctx, DialSystemBus, DialTimeout)
}

// NewSystemdDialer is NewSystemd with the dialer and its timeout given
// (tests pass a dialer of recording fakes).
func NewSystemdDialer(ctx context.Context, dial Dialer, timeout time.Duration) (*Systemd, error) {
	s := &Systemd{dial: dial, dialTimeout: timeout}
	if _, err := s.connection(ctx, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// NewSystemdWith drives units through c, never redialled (tests pass a
// recording fake).
func NewSystemdWith(c Conn) *Systemd { return &Systemd{conn: c} }

// Close closes the D-Bus connection Systemd opened.
func (s *Systemd) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.close != nil {
		s.close()
	}
	s.conn, s.close = nil, nil
}

// connection returns the live connection, dialling one when there is none,
// when the current one says it is no longer connected, or when it is
// broken (the connection a call just found closed).
func (s *Systemd) connection(ctx context.Context, broken Conn) (Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn != broken {
		if c, ok := s.conn.(interface{ Connected() bool }); !ok || c.Connected() {
			return s.conn, nil
		}
	}
	if s.dial == nil {
		if s.conn == nil {
			return nil, errors.New("systemd: no connection")
		}
		return s.conn, nil
	}
	if s.close != nil {
		s.close()
		s.conn, s.close = nil, nil
	}
	c, closeFn, err := dialWithin(ctx, s.dial, s.dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("systemd: connect to the system bus: %w", err)
	}
	s.conn, s.close = c, closeFn
	return c, nil
}

// errDialTimeout is a dial of the system bus that did not finish in time.
var errDialTimeout = errors.New("no answer from the system bus (is dbus running?)")

// dialWithin dials on a context of the connection's own (never ctx, which
// would end the connection with it) and waits at most timeout, or until ctx
// ends; a dial that finishes after the wait is closed.
func dialWithin(ctx context.Context, dial Dialer, timeout time.Duration) (Conn, func(), error) {
	type dialed struct {
		c     Conn
		close func()
		err   error
	}
	done := make(chan dialed, 1)
	life, cancel := context.WithCancel(context.Background())
	go func() {
		c, closeFn, err := dial(life)
		done <- dialed{c, closeFn, err}
	}()
	abandon := func() {
		go func() {
			if d := <-done; d.err == nil && d.close != nil {
				d.close()
			}
			cancel()
		}()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case d := <-done:
		if d.err != nil {
			cancel()
			return nil, nil, d.err
		}
		closeFn := func() {
			if d.close != nil {
				d.close()
			}
			cancel()
		}
		return d.c, closeFn, nil
	case <-t.C:
		abandon()
		return nil, nil, fmt.Errorf("dial within %s: %w", timeout, errDialTimeout)
	case <-ctx.Done():
		abandon()
		return nil, nil, ctx.Err()
	}
}

// call runs f on the live connection, and once more on a fresh one when f
// found the connection closed (D-Bus restarted since the last call).
func call[T any](ctx context.Context, s *Systemd, f func(Conn) (T, error)) (T, error) {
	c, err := s.connection(ctx, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := f(c)
	if err == nil || !errors.Is(err, dbus.ErrClosed) || s.dial == nil {
		return v, err
	}
	if c, err = s.connection(ctx, c); err != nil {
		var zero T
		return zero, err
	}
	return f(c)
}

// Active reports whether the unit's ActiveState is "active" or "reloading",
// the states `systemctl is-active` accepts.
func (s *Systemd) Active(ctx context.Context, unit string) (bool, error) {
	unit = UnitName(unit)
	p, err := call(ctx, s, func(c Conn) (*sddbus.Property, error) {
		return c.GetUnitPropertyContext(ctx, unit, "ActiveState")
	})
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
	return s.job(ctx, "start", unit, Conn.StartUnitContext)
}

// Reload reloads the unit and waits for the job.
func (s *Systemd) Reload(ctx context.Context, unit string) error {
	return s.job(ctx, "reload", unit, Conn.ReloadUnitContext)
}

// Restart restarts the unit and waits for the job.
func (s *Systemd) Restart(ctx context.Context, unit string) error {
	return s.job(ctx, "restart", unit, Conn.RestartUnitContext)
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

func (s *Systemd) job(ctx context.Context, action, unit string, enqueue func(Conn, context.Context, string, string, chan<- string) (int, error)) error {
	// Buffered: go-systemd sends the result while holding its job lock, and
	// this side may have stopped listening (ctx done).
	unit = UnitName(unit)
	ch := make(chan string, 1)
	if _, err := call(ctx, s, func(c Conn) (int, error) { return enqueue(c, ctx, unit, jobMode, ch) }); err != nil {
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
