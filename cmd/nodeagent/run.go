package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/report"
)

// runCommand is the long-running agent: `nodeagent run`.
type runCommand struct {
	*cli
}

func (c *runCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("run [flags]",
		"Apply at start (completing the launch hook), then serve /ready, /live, /status and /metrics on\n"+
			"--listen and re-apply whenever the topology changes: s3:// and https:// are polled with a\n"+
			"conditional GET every --poll-interval, file:// is watched. SIGHUP re-checks at once. A bad\n"+
			"document is never applied: the node keeps serving its last good state and reports it. When\n"+
			"the instance's lifecycle state becomes Terminated, or on SIGTERM while IMDS says it is\n"+
			"terminating, the node drains: /ready and the ELB health path go 503, it waits --drain-time,\n"+
			"completes the terminate hook and exits 0. Any other SIGTERM (systemctl stop or restart, a\n"+
			"package upgrade) exits at once and leaves the node in service for the next start. When the\n"+
			"topology names fleet.reports, the node writes its report there after every apply outcome,\n"+
			"on drain and every --report-interval.",
		"nodeagent run --topology s3://fleet-config/topology.json")
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
	log.Info("nodeagent starting", nodeagent.LogKeyVersion, Version, nodeagent.LogKeyCommit, Commit)
	awsEnv := awsenv.New(nil)
	a, err := newAgent(ctx, cfg, log, wiring{needSource: true, mutate: true, aws: awsEnv})
	if err != nil {
		return err
	}

	// The run lock tells a one-shot apply that this process manages the
	// node; one already running is waited for.
	unlockRun, err := a.FS.LockRun(ctx)
	if err != nil {
		return fmt.Errorf("take the run lock: %w", err)
	}
	defer func() { _ = unlockRun() }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hup) }()
	recheck := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case recheck <- struct{}{}:
			default:
			}
		}
	}()
	notifier := readiness.SystemdNotifier{}
	interval, _ := readiness.WatchdogInterval()
	return a.Run(ctx, agent.RunOptions{Recheck: recheck, Notifier: notifier, Watchdog: interval,
		Reports: report.NewClient(awsEnv), ReportInterval: cfg.ReportInterval.D(), AgentVersion: Version})
}
