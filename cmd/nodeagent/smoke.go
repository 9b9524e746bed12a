package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nodeagent/nodeagent/smoke"
)

// smokeCommand runs the node's smoke checks now: `nodeagent smoke`.
type smokeCommand struct {
	*cli
}

func (c *smokeCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("smoke [flags]",
		"Run this node's smoke checks against its real local services (every product's HTTP checks\n"+
			"through the local Apache, the PHP probe, memcached) using the last applied topology, and\n"+
			"print a table. Exit 1 if any check fails.",
		"nodeagent smoke --smoke-deadline 10s")
	common := registerCommon(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := common.load(c.getenv)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(c.stderr, cfg.LogFormat)
	a, err := newAgent(ctx, cfg, log, wiring{})
	if err != nil {
		return err
	}
	inst, err := a.Metadata.Instance(ctx)
	if err != nil {
		return fmt.Errorf("discover instance: %w", err)
	}
	doc, err := a.LastApplied()
	if err != nil {
		return err
	}
	p, err := a.Prepare(ctx, inst, doc)
	if err != nil {
		return err
	}
	results := a.Smoke(ctx, p.Desired)
	if err := smoke.WriteTable(c.stdout, results); err != nil {
		return err
	}
	if smoke.Failed(results) {
		return errors.New("smoke checks failed")
	}
	return nil
}
