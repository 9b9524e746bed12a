package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/plan"
)

// applyCommand converges the node once: `nodeagent apply [--dry-run]`.
type applyCommand struct {
	*cli
}

func (c *applyCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("apply [--dry-run] [flags]",
		"Converge this node once: discover it, fetch and validate the topology, write its configs,\n"+
			"reload what changed, activate the code release, run the smoke checks, complete the launch\n"+
			"hook. With --dry-run, print the plan (a unified diff of every file, every service action,\n"+
			"the release switch and the lifecycle action, each with its reason) and change nothing.",
		"nodeagent apply --dry-run --topology s3://fleet-config/topology.json")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing on the host, on S3 or in AWS")
	common := registerCommon(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	cfg, err := common.load(c.getenv)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(c.stderr, cfg.LogFormat)
	// A dry run is one plan; a real apply may take several attempts, each
	// bounded by --deadline.
	bound := cfg.Deadline.D()
	if !*dryRun {
		bound = cfg.BootDeadline()
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	a, err := newAgent(ctx, cfg, log, wiring{needSource: true, mutate: !*dryRun})
	if err != nil {
		return err
	}
	// Until the apply has something to change, complete or wait for, a
	// signal's default action ends it, as a kill would: nothing it may
	// have done by then is owed (see Agent.BeforeChange). From then on a
	// signal winds the work down.
	a.BeforeChange = c.catch

	if *dryRun {
		inst, fetched, err := a.DiscoverAndFetch(ctx)
		if err != nil {
			return err
		}
		if fetched.Err != nil {
			return fetched.Err
		}
		doc := fetched.Doc
		p, err := a.Prepare(ctx, inst, doc)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "topology: %s\n", doc.From)
		return plan.Format(c.stdout, p.Plan)
	}

	unlockRun, err := a.FS.TryLockRun()
	if err != nil {
		return runningDaemon(err)
	}
	defer func() { _ = unlockRun() }()
	res, err := a.Boot(ctx)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(ctx.Err(), context.Canceled) && cause != context.Canceled {
			// A signal: say so. "signal: killed" alone reads as a crash
			// of the service command it interrupted.
			return fmt.Errorf("stopped (%v): %w", cause, err)
		}
		return err
	}
	if res.Refused != nil {
		return fmt.Errorf("the node serves its last good state (serial %d), but %w", a.Readiness.Snapshot().Serial, res.Refused)
	}
	st := a.Readiness.Snapshot()
	fmt.Fprintf(c.stdout, "ready: %s is serving as %s (serial %d", st.Instance, st.Role, st.Serial)
	if res.Lifecycle != "" {
		fmt.Fprintf(c.stdout, ", launch hook completed with %s", res.Lifecycle)
	}
	fmt.Fprintln(c.stdout, ")")
	return nil
}

// runningDaemon explains a run lock that a one-shot apply could not take:
// `nodeagent run` manages the node, and an apply beside it would change the
// node under the daemon's readiness and status.
func runningDaemon(err error) error {
	var held *hostfs.LockedError
	if !errors.As(err, &held) {
		return err
	}
	who := "nodeagent run"
	hup := "systemctl reload nodeagent"
	if held.PID > 0 {
		who = fmt.Sprintf("nodeagent run (pid %d)", held.PID)
		hup += fmt.Sprintf(" or kill -HUP %d", held.PID)
	}
	return fmt.Errorf("%s manages this node (it holds %s) and applies topology changes itself; "+
		"to re-check the topology now: %s; to apply by hand, stop it first (systemctl stop nodeagent); "+
		"to see what would change: nodeagent apply --dry-run", who, held.Path, hup)
}
