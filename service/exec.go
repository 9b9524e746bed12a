package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nodeagent/nodeagent"
)

// Command is one configured way to act on a unit: a program to run (argv,
// never a shell) with optional extra environment, or a signal sent to the
// pid in the unit's pidfile. Exactly one of Argv and Signal is set.
type Command struct {
	Argv []string `json:"argv,omitempty"`
	Env  []string `json:"env,omitempty"` // KEY=value, appended to the agent's environment
	// Signal is a signal name ("HUP", "USR1", "USR2", "TERM"; a "SIG"
	// prefix is allowed) sent to the pid in UnitCommands.Pidfile.
	Signal string `json:"signal,omitempty"`
}

// UnitCommands configure the exec driver for one unit. Nil commands take
// the defaults described on Exec.
type UnitCommands struct {
	// Pidfile is the unit's pid file as the service writes it (a path the
	// service sees, not joined onto --root). When set, a live pid in it is
	// what "active" means.
	Pidfile string   `json:"pidfile,omitempty"`
	Start   *Command `json:"start,omitempty"`
	Stop    *Command `json:"stop,omitempty"`
	Reload  *Command `json:"reload,omitempty"`
	Restart *Command `json:"restart,omitempty"`
	Status  *Command `json:"status,omitempty"`
}

// ExecConfig configures the exec driver, by unit name.
type ExecConfig map[string]UnitCommands

// Validate checks every command: exactly one of argv and signal, a known
// signal, a pidfile wherever a signal is used, and no signal for start or
// status. Errors name the config key ("exec.memcached.reload").
func (c ExecConfig) Validate() error {
	var errs []error
	for _, unit := range slices.Sorted(maps.Keys(c)) {
		u := c[unit]
		for _, k := range []struct {
			name      string
			cmd       *Command
			signalsOK bool
		}{
			{"start", u.Start, false},
			{"stop", u.Stop, true},
			{"reload", u.Reload, true},
			{"restart", u.Restart, true},
			{"status", u.Status, false},
		} {
			if err := k.cmd.validate(u.Pidfile, k.signalsOK); err != nil {
				errs = append(errs, fmt.Errorf("exec.%s.%s: %w", unit, k.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

var (
	errArgvAndSignal = errors.New("set either argv or signal, not both")
	errEmpty         = errors.New("set argv or signal")
	errNoSignal      = errors.New("a signal cannot do this; set argv")
	errNoPidfile     = errors.New("signal needs the unit's pidfile")
)

func (c *Command) validate(pidfile string, signalsOK bool) error {
	switch {
	case c == nil:
		return nil
	case len(c.Argv) > 0 && c.Signal != "":
		return errArgvAndSignal
	case len(c.Argv) == 0 && c.Signal == "":
		return errEmpty
	case c.Signal != "" && !signalsOK:
		return errNoSignal
	case c.Signal != "" && pidfile == "":
		return errNoPidfile
	case c.Signal != "":
		_, err := parseSignal(c.Signal)
		return err
	case c.Argv[0] == "":
		return errors.New("argv[0] is empty")
	}
	return nil
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"TERM": syscall.SIGTERM, "WINCH": syscall.SIGWINCH,
}

func parseSignal(name string) (syscall.Signal, error) {
	s, ok := signals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	if !ok {
		return 0, fmt.Errorf("unknown signal %q (want HUP, INT, QUIT, KILL, USR1, USR2, TERM or WINCH)", name)
	}
	return s, nil
}

// Exec controls units by running configured commands.
//
//   - Active: a live pid in the pidfile when one is configured, else the
//     status command exits 0 (default `service <unit> status`).
//   - Start: the start command (default `service <unit> start`); nothing
//     when the pidfile already names a live pid. With a pidfile, Start then
//     waits (bounded) for a live pid in it.
//   - Reload: the reload command or signal (default `service <unit> reload`).
//   - Restart: the restart command when configured; else, when a stop
//     command or a pidfile is configured, Stop then Start; else
//     `service <unit> restart`.
//   - Stop: the stop command when configured; else SIGTERM to the pidfile's
//     pid, waiting (bounded) for it to exit; else `service <unit> stop`.
//
// Failures name the unit and the action and carry the command's output.
type Exec struct {
	cfg ExecConfig
	run Runner
	log *slog.Logger

	startWait time.Duration // for a live pid after start
	stopWait  time.Duration // for the pid to exit after a stop signal
	poll      time.Duration
	proc      string // procfs mount, to tell zombies from live processes
}

var _ nodeagent.ServiceManager = (*Exec)(nil)

// NewExec returns the exec driver. cfg may be nil (defaults everywhere).
func NewExec(cfg ExecConfig, run Runner, log *slog.Logger) *Exec {
	if run == nil {
		run = ExecRunner
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Exec{
		cfg: cfg, run: run, log: log.With(nodeagent.LogKeyDriver, "exec"),
		startWait: 10 * time.Second, stopWait: 10 * time.Second,
		poll: 50 * time.Millisecond, proc: "/proc",
	}
}

// Active reports whether the unit runs.
func (e *Exec) Active(ctx context.Context, unit string) (bool, error) {
	u := e.cfg[unit]
	if u.Pidfile != "" {
		_, live, err := e.livePid(u.Pidfile)
		if err != nil {
			return false, actionError("exec", "status", unit, err)
		}
		return live, nil
	}
	c := e.command(u.Status, unit, "status")
	_, err := run(ctx, e.run, c.Env, c.Argv)
	if err == nil {
		return true, nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return false, nil
	}
	return false, actionError("exec", "status", unit, err)
}

// Start starts the unit unless its pidfile names a live pid.
func (e *Exec) Start(ctx context.Context, unit string) error {
	u := e.cfg[unit]
	if u.Pidfile != "" {
		pid, live, err := e.livePid(u.Pidfile)
		if err != nil {
			return actionError("exec", "start", unit, err)
		}
		if live {
			e.log.Info("already running", nodeagent.LogKeyUnit, unit, nodeagent.LogKeyPID, pid)
			return nil
		}
	}
	if err := e.do(ctx, unit, "start", e.command(u.Start, unit, "start")); err != nil {
		return err
	}
	return e.waitStarted(ctx, unit)
}

// Reload reloads the unit.
func (e *Exec) Reload(ctx context.Context, unit string) error {
	return e.do(ctx, unit, "reload", e.command(e.cfg[unit].Reload, unit, "reload"))
}

// Restart restarts the unit.
func (e *Exec) Restart(ctx context.Context, unit string) error {
	u := e.cfg[unit]
	switch {
	case u.Restart != nil:
		if err := e.do(ctx, unit, "restart", *u.Restart); err != nil {
			return err
		}
		return e.waitStarted(ctx, unit)
	case u.Stop != nil || u.Pidfile != "":
		if err := e.Stop(ctx, unit); err != nil {
			return err
		}
		return e.Start(ctx, unit)
	default:
		return e.do(ctx, unit, "restart", e.command(nil, unit, "restart"))
	}
}

// Stop stops the unit.
func (e *Exec) Stop(ctx context.Context, unit string) error {
	u := e.cfg[unit]
	switch {
	case u.Stop != nil:
		return e.do(ctx, unit, "stop", *u.Stop)
	case u.Pidfile != "":
		return e.do(ctx, unit, "stop", Command{Signal: "TERM"})
	default:
		return e.do(ctx, unit, "stop", e.command(nil, unit, "stop"))
	}
}

// command is the configured command, or `service <unit> <action>`.
func (e *Exec) command(c *Command, unit, action string) Command {
	if c != nil {
		return *c
	}
	return Command{Argv: []string{"service", unit, action}}
}

// do runs c for action on unit. A stop signal (TERM, INT, QUIT, KILL) is
// followed by a bounded wait for the process to exit.
func (e *Exec) do(ctx context.Context, unit, action string, c Command) error {
	if err := c.validate(e.cfg[unit].Pidfile, action != "start" && action != "status"); err != nil {
		return actionError("exec", action, unit, err)
	}
	if c.Signal == "" {
		e.log.Info("running", nodeagent.LogKeyUnit, unit, nodeagent.LogKeyAction, action, nodeagent.LogKeyArgv, c.Argv)
		if _, err := run(ctx, e.run, c.Env, c.Argv); err != nil {
			return actionError("exec", action, unit, err)
		}
		return nil
	}
	pidfile := e.cfg[unit].Pidfile
	sig, _ := parseSignal(c.Signal) // validated above
	pid, live, rewriting, err := e.pidState(pidfile)
	if err == nil && rewriting {
		// A daemon re-executing itself rewrites its pidfile (PHP-FPM on
		// USR2 truncates it, then writes its pid): a reload a moment after
		// another finds it empty. Read it again until it names a pid.
		_ = e.waitFor(ctx, pidfileWait, func() bool {
			pid, live, rewriting, err = e.pidState(pidfile)
			return err != nil || !rewriting
		})
	}
	if err != nil {
		return actionError("exec", action, unit, err)
	}
	if !live {
		if action == "stop" {
			e.log.Info("not running", nodeagent.LogKeyUnit, unit, nodeagent.LogKeyPidfile, pidfile)
			return nil
		}
		return actionError("exec", action, unit, fmt.Errorf("no live pid in %s to send %s", pidfile, c.Signal))
	}
	e.log.Info("signalling", nodeagent.LogKeyUnit, unit, nodeagent.LogKeyAction, action, nodeagent.LogKeySignal, c.Signal, nodeagent.LogKeyPID, pid)
	if err := syscall.Kill(pid, sig); err != nil {
		return actionError("exec", action, unit, fmt.Errorf("send %s to pid %d from %s: %w", c.Signal, pid, pidfile, err))
	}
	if action != "stop" {
		return nil
	}
	if err := e.waitFor(ctx, e.stopWait, func() bool { return !e.alive(pid) }); err != nil {
		return actionError("exec", action, unit, fmt.Errorf("pid %d from %s did not exit after %s: %w", pid, pidfile, c.Signal, err))
	}
	return nil
}

// waitStarted waits for a live pid in the unit's pidfile, if it has one.
func (e *Exec) waitStarted(ctx context.Context, unit string) error {
	pidfile := e.cfg[unit].Pidfile
	if pidfile == "" {
		return nil
	}
	err := e.waitFor(ctx, e.startWait, func() bool {
		_, live, err := e.livePid(pidfile)
		return err == nil && live
	})
	if err != nil {
		return actionError("exec", "start", unit, fmt.Errorf("started but no live pid in %s: %w", pidfile, err))
	}
	return nil
}

var errTimeout = errors.New("timed out")

// waitFor polls cond until it holds, for at most limit and while ctx lasts.
func (e *Exec) waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	t := time.NewTicker(e.poll)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("%w after %s", errTimeout, limit)
		case <-t.C:
		}
	}
}

// pidfileWait bounds the wait for a pidfile that is being rewritten.
const pidfileWait = 2 * time.Second

// livePid reads the pidfile: a missing, empty or unparsable pidfile means
// "not running"; other read errors are returned.
func (e *Exec) livePid(pidfile string) (int, bool, error) {
	pid, live, _, err := e.pidState(pidfile)
	return pid, live, err
}

// pidState is livePid, from one read of the pidfile, and whether the file
// exists but names no number yet (empty, or cut short of one), as while
// its daemon rewrites it.
func (e *Exec) pidState(pidfile string) (pid int, live, rewriting bool, err error) {
	b, err := os.ReadFile(pidfile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err = strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0, false, true, nil
	}
	if pid <= 1 {
		// Never signal pid 0, -1 or init because of a damaged pidfile.
		return 0, false, false, nil
	}
	return pid, e.alive(pid), false, nil
}

// alive reports whether pid exists and is not a zombie (a daemon whose
// parent is an init that does not reap still answers kill(pid, 0)).
func (e *Exec) alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join(e.proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	return stat[i+2] != 'Z' && stat[i+2] != 'X'
}
