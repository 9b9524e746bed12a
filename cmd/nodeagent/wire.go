package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/lifecycle"
	"github.com/nodeagent/nodeagent/metadata"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/redact"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/service"
	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/state"
)

// newLogger configures the one log handler of the process.
func newLogger(w io.Writer, format string) *slog.Logger {
	json := format == "json"
	if format == "auto" {
		f, ok := w.(*os.File)
		json = !ok || !isTerminal(f)
	}
	// Every record goes through redact.Handler: no log line carries a
	// URL's userinfo or query string (a presigned URL's signature and
	// session token), whoever logs it.
	if json {
		return slog.New(redact.Handler(slog.NewJSONHandler(w, nil)))
	}
	return slog.New(redact.Handler(slog.NewTextHandler(w, nil)))
}

// wiring is what a command needs beyond the config.
type wiring struct {
	needSource bool // the command fetches the topology
	// mutate says the command may change the host: only then does the
	// agent manage the ELB health file and the status file.
	mutate bool
	// aws is the AWS configuration to share with the caller's own
	// clients (node reports); nil means a fresh one.
	aws *awsenv.Env
}

// newAgent builds an Agent with the real adapters for cfg.
func newAgent(ctx context.Context, cfg agent.Config, log *slog.Logger, w wiring) (*agent.Agent, error) {
	fsys := hostfs.FS{Root: cfg.Root, StateDir: cfg.StateDir}
	md, err := metadata.New(ctx, metadata.Options{Root: cfg.Root, Proc: cfg.Proc, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("instance metadata: %w", err)
	}
	// One AWS configuration for S3 and Auto Scaling: the region and the
	// instance profile are looked up once, through the discovery's IMDS
	// client (one session token, no proxy).
	awsEnv := w.aws
	if awsEnv == nil {
		awsEnv = awsenv.New(nil)
	}
	awsEnv.UseIMDS(md.Client())
	srcOpts := source.Options{Logger: log, AWS: awsEnv}
	var src nodeagent.TopologySource
	if w.needSource {
		if err := cfg.RequireTopology(); err != nil {
			return nil, usageError{err}
		}
		if src, err = source.New(ctx, cfg.Topology, srcOpts); err != nil {
			return nil, err
		}
	}
	opener, err := source.NewOpener(ctx, srcOpts)
	if err != nil {
		return nil, err
	}
	svc, err := newServices(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	hooks := lifecycle.New(awsEnv, log)
	ropts := readiness.Options{Logger: log}
	if w.mutate {
		ropts.Root = cfg.Root
		ropts.HealthFile = path.Join(cfg.StateDir, "health", "ready")
		ropts.StatusFile = path.Join(cfg.StateDir, state.StatusFile)
		ropts.Notifier = readiness.SystemdNotifier{}
		// Resume what the previous process recorded: a one-shot apply or a
		// restarted agent on a serving node keeps it in service until an
		// apply of its own says otherwise. Only within the same boot: after
		// a reboot nothing has checked the services yet (readiness.New).
		bootID, err := metadata.ReadBootID(cfg.Proc)
		if err != nil {
			log.Warn("kernel boot id unknown: readiness recorded by an earlier process is not resumed", nodeagent.LogKeyProc, cfg.Proc, nodeagent.LogKeyError, err.Error())
		}
		ropts.BootID = bootID
		if st, err := readiness.ReadStatusFile(ropts.Root, ropts.StatusFile); err == nil {
			ropts.Initial = &st
		}
	}
	ready := readiness.New(ropts)
	return &agent.Agent{
		Config:   cfg,
		Metadata: md,
		Source:   src,
		FS:       fsys,
		Services: svc,
		Checker: func(inst nodeagent.Instance) nodeagent.ConfigChecker {
			return service.NewChecker(service.CheckerInput{Root: cfg.Root, Instance: inst, Run: service.ExecRunner})
		},
		Releases: &release.Manager{
			Root:   cfg.Root,
			Store:  opener,
			Keep:   cfg.KeepReleases,
			Logger: log,
		},
		Hooks:     hooks,
		Readiness: ready,
		Logger:    log,
	}, nil
}

// newServices picks the service driver named by --services.
func newServices(ctx context.Context, cfg agent.Config, log *slog.Logger) (nodeagent.ServiceManager, error) {
	driver := cfg.Services
	if driver == "auto" {
		driver = service.Detect(cfg.Root)
	}
	switch driver {
	case "systemd":
		s, err := service.NewSystemd(ctx)
		if err != nil {
			return nil, fmt.Errorf("--services systemd: connect to systemd over D-Bus: %w", err)
		}
		return s, nil
	case "exec":
		return service.NewExec(cfg.Exec, service.ExecRunner, log), nil
	case "none":
		return service.None{}, nil
	}
	return nil, usagef("--services: unknown driver %q", driver)
}
