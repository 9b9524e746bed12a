package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nodeagent/nodeagent/redact"
)

// Exit codes (SPEC section 2), kept in one place.
const (
	ExitOK     = 0 // success
	ExitFailed = 1 // the work failed; the message says what, where and what to do
	ExitUsage  = 2 // usage error
)

// usageError marks an error as the caller's misuse of the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

type commandInfo struct {
	summary string
	make    func(*cli) command
	// lateSignals: the command calls cli.catchSignals itself, once it has
	// work a signal should wind down (apply); every other command's
	// context is cancelled by SIGINT or SIGTERM from its start.
	lateSignals bool
}

var commands = map[string]commandInfo{
	"apply":    {summary: "converge this node once, then exit (--dry-run prints the plan and changes nothing)", make: func(c *cli) command { return &applyCommand{cli: c} }, lateSignals: true},
	"run":      {summary: "apply, then serve health/metrics and watch the topology for changes", make: func(c *cli) command { return &runCommand{cli: c} }},
	"validate": {summary: "check a topology document: nodeagent validate FILE|URL", make: func(c *cli) command { return &validateCommand{cli: c} }},
	"status":   {summary: "what the node last applied, and whether it is ready", make: func(c *cli) command { return &statusCommand{cli: c} }},
	"smoke":    {summary: "run this node's smoke checks now and print a table", make: func(c *cli) command { return &smokeCommand{cli: c} }},
	"version":  {summary: "print the version", make: func(c *cli) command { return &versionCommand{cli: c} }},
	"fleet":    {summary: "the operator's view: fleet status (table, --json, --wait-converged) and fleet serve (web page)", make: func(c *cli) command { return &fleetCommand{cli: c} }},
	"topology": {summary: "the operator's side: publish a document, fail over a database, roll back", make: func(c *cli) command { return &topologyCommand{cli: c} }},
	"rollout":  {summary: "follow a staged rollout: rollout resume (advance waves, halt on failures), rollout status", make: func(c *cli) command { return &rolloutCommand{cli: c} }},
}

// subcommand is one subcommand of a command that has several (fleet,
// rollout, topology).
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

// runSubcommands runs the subcommand args[0] names. -h, --help and help
// print the command's usage to stdout (exit 0); no subcommand, or an
// unknown one, prints it to stderr with a usage error. footer follows the
// usage (what the subcommands share, such as where credentials come from).
func (c *cli) runSubcommands(ctx context.Context, command, footer string, subs []subcommand, args []string) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: nodeagent %s %s [flags]\n\nSubcommands:\n", command, strings.Join(names, "|"))
		for _, s := range subs {
			fmt.Fprintf(w, "  %-9s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun 'nodeagent %s SUBCOMMAND --help' for its flags.\n", command)
		if footer != "" {
			fmt.Fprintln(w, footer)
		}
	}
	if len(args) == 0 {
		usage(c.stderr)
		return usagef("want a subcommand: %s", strings.Join(names, ", "))
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(c.stdout)
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:])
		}
	}
	usage(c.stderr)
	return usagef("unknown subcommand %q: want %s", args[0], strings.Join(names, ", "))
}

// cli carries the process's outside world so tests can drive commands
// in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// catchSignals makes SIGINT and SIGTERM cancel the command's context
	// from now on (main's interrupts.catch); nil in tests that drive
	// commands in-process.
	catchSignals func()
}

func newCLI(stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{stdout: stdout, stderr: stderr, getenv: getenv}
}

// Run runs the command line and returns the exit code.
func (c *cli) Run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		c.usage(c.stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	info, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "nodeagent: unknown command %q\n\n", args[0])
		c.usage(c.stderr)
		return ExitUsage
	}
	if !info.lateSignals {
		c.catch()
	}
	err := redact.Error(info.make(c).Run(ctx, args[1:]))
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(c.stderr, "nodeagent %s: %v\n", args[0], err)
		return ExitUsage
	default:
		fmt.Fprintf(c.stderr, "nodeagent %s: %v\n", args[0], err)
		return ExitFailed
	}
}

// catch calls catchSignals, when there is one.
func (c *cli) catch() {
	if c.catchSignals != nil {
		c.catchSignals()
	}
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "nodeagent turns a freshly booted EC2 instance into a working member of a PHP web fleet")
	fmt.Fprintln(w, "(Apache, PHP-FPM, memcached, /etc/hosts, code releases) and keeps it correct.")
	fmt.Fprintln(w, "\nUsage: nodeagent COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'nodeagent COMMAND --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 the work failed, 2 usage error.")
}

// newFlagSet returns a flag set whose errors come back as usage errors and
// whose help names the command, its purpose and an example.
func (c *cli) newFlagSet(name, synopsis, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: nodeagent %s\n\n%s\n\nExample:\n  %s\n\nFlags:\n", name, synopsis, example)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
