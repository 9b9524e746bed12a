package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/topology"
)

// validateCommand checks a topology document: `nodeagent validate FILE|URL`.
type validateCommand struct {
	*cli
}

func (c *validateCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("validate FILE|URL",
		"Check a topology document strictly (unknown fields, references, names, addresses, checksums)\n"+
			"and report every problem with its path in the document. Exit 0 valid, 1 invalid.",
		"nodeagent validate topology.json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one FILE or URL, got %d arguments", fs.NArg())
	}
	target := fs.Arg(0)
	var body []byte
	if strings.Contains(target, "://") {
		src, err := source.New(ctx, target, source.Options{Logger: newLogger(c.stderr, "text")})
		if err != nil {
			return err
		}
		f, err := src.Fetch(ctx, "")
		if err != nil {
			return err
		}
		body = f.Body
	} else {
		b, err := os.ReadFile(target)
		if err != nil {
			return fmt.Errorf("read topology: %w", err)
		}
		body = b
	}
	t, err := topology.Load(body, target)
	if err != nil {
		var verrs topology.Errors
		if errors.As(err, &verrs) {
			fmt.Fprintf(c.stdout, "%s: invalid, %d problem(s):\n", target, len(verrs))
			for _, e := range verrs {
				fmt.Fprintf(c.stdout, "  %s\n", e.Error())
			}
			return fmt.Errorf("%s is invalid; fix the fields above and validate again", target)
		}
		return err
	}
	fmt.Fprintf(c.stdout, "%s: valid (serial %d, %d nodes, %d roles, %d products)\n",
		target, t.Serial, len(t.Nodes), len(t.Roles), len(t.Products))
	return nil
}
