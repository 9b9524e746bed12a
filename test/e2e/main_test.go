//go:build integration

package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodeagentBin is the binary under test, built once by TestMain.
var nodeagentBin string

// selfBin is this test binary; it doubles as the exec driver's recording
// wrapper (see wrapMain).
var selfBin string

// wrapEnv switches this test binary into wrapper mode.
const wrapEnv = "NODEAGENT_E2E_WRAP"

func TestMain(m *testing.M) {
	if os.Getenv(wrapEnv) == "1" {
		os.Exit(wrapMain(os.Args[1:]))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nodeagent-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: find the test binary:", err)
		return 1
	}
	selfBin = self
	nodeagentBin = filepath.Join(dir, "nodeagent")
	build := exec.Command("go", "build", "-o", nodeagentBin, "./cmd/nodeagent")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/nodeagent: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// wrapMain is the exec driver's recording wrapper: it appends
// "UNIT ACTION" to LOG, then does what the real command does.
//
//	wrap LOG UNIT ACTION exec ARGV...          (replaces itself with ARGV)
//	wrap LOG UNIT ACTION signal NAME PIDFILE   (signals the pid in PIDFILE)
func wrapMain(args []string) int {
	if len(args) < 5 {
		fmt.Fprintln(os.Stderr, "wrap: usage: LOG UNIT ACTION exec ARGV... | signal NAME PIDFILE")
		return 2
	}
	log, unit, action, mode, rest := args[0], args[1], args[2], args[3], args[4:]
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wrap:", err)
		return 1
	}
	fmt.Fprintf(f, "%s %s\n", unit, action)
	f.Close()
	switch when := trap(log, unit, action); when {
	case "before":
		// The agent dies as it starts this action: nothing of it happens.
		return killAgent()
	case "after":
		// The action happens, then the agent dies before it hears so.
		if code := runAction(mode, rest); code != 0 {
			return code
		}
		return killAgent()
	case "term":
		// The agent is asked to stop as it starts this action (systemctl
		// stop, a shutdown), which then happens all the same.
		if err := syscall.Kill(os.Getppid(), syscall.SIGTERM); err != nil {
			fmt.Fprintln(os.Stderr, "wrap: signal the agent:", err)
			return 1
		}
		return runAction(mode, rest)
	case "":
	default:
		fmt.Fprintf(os.Stderr, "wrap: unknown trap %q in %s: want before, after or term\n", when, log+trapSuffix)
		return 2
	}
	switch mode {
	case "exec":
		if err := syscall.Exec(rest[0], rest, os.Environ()); err != nil {
			fmt.Fprintf(os.Stderr, "wrap: exec %s: %v\n", rest[0], err)
			return 1
		}
	case "signal":
		if len(rest) != 2 {
			fmt.Fprintln(os.Stderr, "wrap: signal NAME PIDFILE")
			return 2
		}
		sig, ok := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM}[strings.TrimPrefix(rest[0], "SIG")]
		if !ok {
			fmt.Fprintf(os.Stderr, "wrap: unknown signal %s\n", rest[0])
			return 2
		}
		pid, err := readPidfile(rest[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "wrap:", err)
			return 1
		}
		if err := syscall.Kill(pid, sig); err != nil {
			fmt.Fprintf(os.Stderr, "wrap: kill %d: %v\n", pid, err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "wrap: unknown mode %q\n", mode)
		return 2
	}
	return 0
}

// readPidfile reads the pid in a daemon's pidfile. A daemon rewrites it as
// it re-executes itself (PHP-FPM on USR2 truncates it, then writes its
// pid), so an empty or partial file is read again, for up to 2 s, before
// it counts as bad: two reloads a moment apart (a dead apply's owed reload,
// then the apply's own) otherwise catch PHP-FPM between the two.
func readPidfile(path string) (int, error) {
	var b []byte
	for range 40 {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return 0, err
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			return pid, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("bad pid in %s: %q", path, b)
}

// trapSuffix names the file, next to the wrapper's LOG, that arms a kill:
// "UNIT ACTION before" kills the agent (the wrapper's parent, which runs
// service commands directly, never through a shell) with SIGKILL as that
// action starts, "UNIT ACTION after" once the action is done. The trap
// fires once: the wrapper removes the file. A test kills the agent at a
// precise step of an apply this way, as a crash or an OOM kill would.
// "UNIT ACTION term" sends SIGTERM instead, as the action starts, and the
// action goes ahead.
const trapSuffix = ".trap"

// trap returns the armed trap's when ("before", "after" or "term") if it
// matches unit and action, and disarms it; "" when none does.
func trap(log, unit, action string) string {
	b, err := os.ReadFile(log + trapSuffix)
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != unit || f[1] != action {
		return ""
	}
	os.Remove(log + trapSuffix)
	return f[2]
}

// runAction does what the wrapped command does, as a child, and waits.
func runAction(mode string, rest []string) int {
	switch mode {
	case "exec":
		cmd := exec.Command(rest[0], rest[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "wrap: %s: %v\n", rest[0], err)
			return 1
		}
	case "signal":
		sig := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM}[strings.TrimPrefix(rest[0], "SIG")]
		pid, err := readPidfile(rest[1])
		if err != nil || sig == 0 {
			fmt.Fprintf(os.Stderr, "wrap: %v, or a bad signal %s\n", err, rest[0])
			return 1
		}
		if err := syscall.Kill(pid, sig); err != nil {
			fmt.Fprintf(os.Stderr, "wrap: kill %d: %v\n", pid, err)
			return 1
		}
	}
	return 0
}

// killAgent sends SIGKILL to the wrapper's parent, the agent.
func killAgent() int {
	if err := syscall.Kill(os.Getppid(), syscall.SIGKILL); err != nil {
		fmt.Fprintln(os.Stderr, "wrap: kill the agent:", err)
		return 1
	}
	return 1
}
