// Package service controls the node's system services and validates their
// configuration trees.
//
// Three drivers implement nodeagent.ServiceManager:
//
//   - Systemd drives units over D-Bus (go-systemd) and waits for each job's
//     result;
//   - Exec runs per-unit commands from the agent config (argv, never a
//     shell), with `service <unit> <action>` defaults, or sends a signal to
//     the pid in the unit's pidfile;
//   - None does nothing and reports every unit active (--services none).
//
// Checker implements nodeagent.ConfigChecker with the services' own
// validators (apache2ctl -t / httpd -t, php-fpm -t) run on the whole tree
// under the agent's root.
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent"
)

// Runner runs the program name with args (argv, never through a shell), with
// env appended to the agent's own environment, and returns its combined
// output. A non-zero exit is an error.
type Runner func(ctx context.Context, env []string, name string, args ...string) ([]byte, error)

// waitDelay bounds how long ExecRunner waits for the output pipe to close
// after the program exited, when a daemon it started kept it open.
const waitDelay = 2 * time.Second

// ExecRunner is the Runner that starts real processes with os/exec.
//
// A program that daemonizes and leaves a child holding its output open (a
// service start script whose daemon keeps stdout) does not hang the agent:
// once the program itself has exited successfully, ExecRunner stops waiting
// for the output after a short delay and reports success with the output it
// has.
func ExecRunner(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = waitDelay
	out, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	if err != nil {
		return out, &CommandError{Argv: append([]string{name}, args...), Env: env, Out: out, Err: err}
	}
	return out, nil
}

// CommandError is a command that failed, with its combined output.
type CommandError struct {
	Argv []string
	Env  []string // the extra environment it ran with
	Out  []byte
	Err  error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	for _, kv := range e.Env {
		b.WriteString(kv)
		b.WriteByte(' ')
	}
	b.WriteString(strings.Join(e.Argv, " "))
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if out := e.Output(); out != "" {
		b.WriteString(": ")
		b.WriteString(out)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// Output is the command's combined output, trimmed.
func (e *CommandError) Output() string { return strings.TrimSpace(string(e.Out)) }

// run calls r and makes sure a failure is a *CommandError carrying the
// output, whatever Runner produced it.
func run(ctx context.Context, r Runner, env []string, argv []string) ([]byte, error) {
	out, err := r(ctx, env, argv[0], argv[1:]...)
	if err == nil {
		return out, nil
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		return out, err
	}
	return out, &CommandError{Argv: argv, Env: env, Out: out, Err: err}
}

// None is the driver for --services none: it changes nothing and reports
// every unit active, so a plan never asks to start anything.
type None struct{}

var _ nodeagent.ServiceManager = None{}

// Active reports true.
func (None) Active(context.Context, string) (bool, error) { return true, nil }

// Start does nothing.
func (None) Start(context.Context, string) error { return nil }

// Reload does nothing.
func (None) Reload(context.Context, string) error { return nil }

// Restart does nothing.
func (None) Restart(context.Context, string) error { return nil }

// Detect answers --services auto: "systemd" when the agent manages the host
// itself (root is "/") and the running host was booted with systemd
// (/run/systemd/system exists, the test sd_booted(3) makes); otherwise
// "exec".
//
// The systemd test reads the running host's /run, never <root>/run: the
// D-Bus peer is the systemd of the machine the agent runs on, whatever tree
// --root points at, and a tree under --root (a mounted image) has no running
// init of its own. For the same reason a root other than "/" never selects
// systemd: that host's units are not the rooted tree's services (tests and
// the demo run them through exec commands; an image build wants
// --services none, which must be chosen explicitly).
func Detect(root string) string {
	return detect(root, "/run/systemd/system")
}

func detect(root, marker string) string {
	if root != "" && filepath.Clean(root) != "/" {
		return "exec"
	}
	if fi, err := os.Stat(marker); err == nil && fi.IsDir() {
		return "systemd"
	}
	return "exec"
}

// actionError names the unit and the action that failed.
func actionError(driver, action, unit string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", driver, action, unit, err)
}
