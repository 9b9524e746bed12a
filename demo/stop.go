package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// logsDir, in the demo's directory, survives -stop so the agents' logs
// can still be read.
const logsDir = "logs"

// stopDemo is `-stop`: it asks a running demo to stop (SIGTERM: the demo
// stops what it started itself), then sweeps up whatever a demo that died
// left behind: the services under its node roots, any process naming the
// demo's directory, the node roots and the demo's files (the logs stay).
func stopDemo(ctx context.Context, root string, out io.Writer) error {
	dir, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	s, err := readState(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(out, "no demo state in %s; sweeping for leftovers\n", root)
	case err != nil:
		return fmt.Errorf("stop: %w", err)
	case s.running():
		fmt.Fprintf(out, "stopping the demo (pid %d)…\n", s.PID)
		if err := terminate([]int{s.PID}, 90*time.Second); err != nil {
			return fmt.Errorf("stop demo: %w", err)
		}
	}
	if err := sweep(ctx, dir, s, out); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	fmt.Fprintf(out, "demo stopped; agent logs kept in %s\n", filepath.Join(root, logsDir))
	return nil
}

// sweep stops and removes everything a demo in dir may have left: the
// services of every node root the state names, every process naming dir,
// the node roots, and dir's content except the logs.
func sweep(ctx context.Context, dir string, s state, out io.Writer) error {
	if err := checkOwned(dir); err != nil {
		return err
	}
	var errs []error
	if pids := processesUnder(dir); len(pids) > 0 {
		fmt.Fprintf(out, "stopping leftover processes %v\n", pids)
		errs = append(errs, terminate(pids, 15*time.Second))
	}
	for name, root := range s.NodeRoots {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := harness.StopServices(root); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		}
		if err := os.RemoveAll(root); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if e.Name() == logsDir {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
