// Command countexec records one service action, then does it. The fleet
// test wraps every exec-driver command with it, so the test counts the
// reloads and restarts each agent really made:
//
//	countexec LOG UNIT ACTION -- ARGV...            run ARGV (exec, same pid)
//	countexec LOG UNIT ACTION signal SIG PIDFILE     send SIG to the pid in PIDFILE
//
// It appends "UNIT ACTION" to LOG before acting.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "WINCH": syscall.SIGWINCH,
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "countexec:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 5 {
		return fmt.Errorf("usage: countexec LOG UNIT ACTION (-- ARGV... | signal SIG PIDFILE)")
	}
	logPath, unit, action, rest := args[0], args[1], args[2], args[3:]
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s\n", unit, action)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	switch rest[0] {
	case "--":
		path, err := exec.LookPath(rest[1])
		if err != nil {
			return err
		}
		return syscall.Exec(path, rest[1:], os.Environ())
	case "signal":
		if len(rest) != 3 {
			return fmt.Errorf("signal wants SIG PIDFILE")
		}
		sig, ok := signals[strings.TrimPrefix(rest[1], "SIG")]
		if !ok {
			return fmt.Errorf("unknown signal %q", rest[1])
		}
		b, err := os.ReadFile(rest[2])
		if err != nil {
			return err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return fmt.Errorf("pidfile %s: bad pid %q", rest[2], b)
		}
		return syscall.Kill(pid, sig)
	}
	return fmt.Errorf("want -- or signal, got %q", rest[0])
}
