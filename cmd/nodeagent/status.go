package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"time"

	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/state"
)

// statusCommand shows what the node last applied: `nodeagent status [--json]`.
type statusCommand struct {
	*cli
}

func (c *statusCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("status [--json] [flags]",
		"Show what this node last applied (serial, role, releases, smoke results) and whether it\n"+
			"is ready, from the state dir. Exit 1 when the node is not ready.",
		"nodeagent status --json")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	common := registerCommon(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := common.load(c.getenv)
	if err != nil {
		return usageError{err}
	}
	file := hostfs.FS{Root: cfg.Root, StateDir: cfg.StateDir}.Path(path.Join(cfg.StateDir, state.StatusFile))
	st, err := readiness.ReadStatusFile(cfg.Root, path.Join(cfg.StateDir, state.StatusFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no status in %s: this node has not run an apply yet (run nodeagent apply)", file)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		w := c.stdout
		state := "READY"
		if !st.Ready {
			state = "NOT READY: " + st.Reason
		}
		fmt.Fprintf(w, "%s\n", state)
		fmt.Fprintf(w, "instance   %s (role %s", st.Instance, st.Role)
		if st.Node != "" {
			fmt.Fprintf(w, ", node %s", st.Node)
		}
		fmt.Fprintln(w, ")")
		fmt.Fprintf(w, "serial     %d applied, %d seen\n", st.Serial, st.SeenSerial)
		if !st.LastApply.IsZero() {
			fmt.Fprintf(w, "last apply %s (%s ago), ok=%t\n", st.LastApply.Format(time.RFC3339), time.Since(st.LastApply).Round(time.Second), st.LastApplyOK)
		}
		products := make([]string, 0, len(st.Release))
		for p := range st.Release {
			products = append(products, p)
		}
		sort.Strings(products)
		for _, p := range products {
			fmt.Fprintf(w, "release    %s %s\n", p, st.Release[p])
		}
		for _, r := range st.Smoke {
			res := "ok"
			if !r.OK {
				res = "FAIL " + r.Err
			}
			fmt.Fprintf(w, "smoke      %-20s %s (%s)\n", r.Name, res, r.Duration.Round(time.Millisecond))
		}
		if st.LastError != "" {
			fmt.Fprintf(w, "last error %s: %s\n", st.LastErrorAt.Format(time.RFC3339), st.LastError)
		}
	}
	if !st.Ready {
		return errors.New("node is not ready")
	}
	return nil
}
