package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/topology"
)

// validateCommand checks a topology document: `nodeagent validate FILE|URL`.
// It reads the document exactly as apply does (the same source, the same
// size limit, source.MaxDocument) and runs exactly apply's checks before
// planning: topology.Load. Whatever it calls valid, apply does not refuse
// as invalid (TestValidateAgreesWithApply).
type validateCommand struct {
	*cli
}

func (c *validateCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("validate FILE|URL",
		"Check a topology document strictly, exactly as apply does before planning (unknown fields,\n"+
			"references, names, addresses, checksums, bounds, reserved names and paths) and report\n"+
			"every problem with its path in the document. Exit 0 valid, 1 invalid.",
		"nodeagent validate topology.json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one FILE or URL, got %d arguments", fs.NArg())
	}
	target := fs.Arg(0)
	raw := target
	if !strings.Contains(target, "://") {
		// A local file is read through the file:// source, like a
		// --topology file:///path: a FIFO or device is refused, and
		// nothing beyond source.MaxDocument is read.
		abs, err := filepath.Abs(target)
		if err != nil {
			return fmt.Errorf("read topology %s: %w", target, err)
		}
		raw = (&url.URL{Scheme: "file", Path: abs}).String()
	}
	src, err := source.New(ctx, raw, source.Options{Logger: newLogger(c.stderr, "text")})
	if err != nil {
		return err
	}
	f, err := src.Fetch(ctx, "")
	if err != nil {
		return err
	}
	// Messages name the file as typed, or the URL as the source shows it
	// (credentials and query string redacted).
	name := src.String()
	if raw != target {
		name = target
	}
	t, err := topology.Load(f.Body, name, f.Format)
	if err != nil {
		var verrs topology.Errors
		if errors.As(err, &verrs) {
			fmt.Fprintf(c.stdout, "%s: invalid, %d problem(s):\n", name, len(verrs))
			for _, e := range verrs {
				fmt.Fprintf(c.stdout, "  %s\n", e.Error())
			}
			return fmt.Errorf("%s is invalid; fix the fields above and validate again", name)
		}
		return err
	}
	fmt.Fprintf(c.stdout, "%s: valid (serial %d, %d nodes, %d roles, %d products)\n",
		name, t.Serial, len(t.Nodes), len(t.Roles), len(t.Products))
	return nil
}
