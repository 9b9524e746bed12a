// Command nodeagent-demo is `make demo`: nodeagent's main job on an
// embedded example, on this machine, with real services.
//
// It starts a local S3 (MinIO) and one instance metadata mock
// (amazon-ec2-metadata-mock, IMDSv2) per simulated instance, publishes the
// embedded topology (example/topology.json) and a release built from the
// embedded app (example/app), and boots two nodes, each a `nodeagent run`
// with its own 127.77.0.x address and its own root under DIR/<node>:
//
//   - cache-1 (found by its instance id in the topology's nodes) runs
//     memcached on 127.77.0.21:11211;
//   - web-1 (found by its Auto Scaling group tag shop-web) runs Apache on
//     127.77.0.11:8080 and PHP-FPM serving the shop, with sessions in
//     cache-1's memcached.
//
// When both are ready it checks the site (real PHP through Apache, a
// session counter that grows), prints where to look, and then moves the
// database master from db-a to db-b in a new topology serial, waiting until
// the web node's app shows the new master. Then it keeps running until
// Ctrl-C or `nodeagent-demo -stop` (`make demo-stop`), which stop
// everything it started. With -unattended (or DEMO_UNATTENDED=1) it stops
// everything and exits 0 once the change has been picked up.
//
// Usage:
//
//	nodeagent-demo [-root DIR] [-nodeagent BIN] [-unattended] [-wait-stdin]
//	nodeagent-demo -stop [-root DIR]
//
// Flags:
//
//	-root DIR        the demo's directory (default demo-root): node roots,
//	                 agent configs, logs, emulator data, the state file
//	-nodeagent BIN   the agent binary (default bin/nodeagent)
//	-unattended      exit once the topology change is picked up
//	                 (also DEMO_UNATTENDED=1)
//	-wait-stdin      before the change, wait for a line (or EOF) on stdin;
//	                 lets a test look at the site first
//	-stop            stop a running demo and everything it started
//
// The tool binaries come from $NODEAGENT_TOOLS_DIR (`make tools`); the
// services are this machine's apache2, php-fpm, php-memcached and memcached
// (`make deps`). Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// options are the command line.
type options struct {
	root       string // as given, for the hints printed to the user
	nodeagent  string
	unattended bool
	waitStdin  bool
	stop       bool
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("nodeagent-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.root, "root", "demo-root", "the demo's directory: node roots, agent configs, logs, emulator data")
	fs.StringVar(&o.nodeagent, "nodeagent", "bin/nodeagent", "the agent binary")
	fs.BoolVar(&o.unattended, "unattended", getenv("DEMO_UNATTENDED") == "1", "exit once the topology change is picked up (env DEMO_UNATTENDED=1)")
	fs.BoolVar(&o.waitStdin, "wait-stdin", false, "before the topology change, wait for a line or EOF on stdin")
	fs.BoolVar(&o.stop, "stop", false, "stop a running demo and everything it started")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nodeagent-demo: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	var err error
	if o.stop {
		err = stopDemo(ctx, o.root, stdout)
	} else {
		err = runDemo(ctx, o, stdin, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nodeagent-demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}
