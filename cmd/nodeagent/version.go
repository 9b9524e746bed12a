package main

import (
	"context"
	"fmt"
	"runtime"
)

// versionCommand prints the version: `nodeagent version`.
type versionCommand struct {
	*cli
}

func (c *versionCommand) Run(ctx context.Context, args []string) error {
	fs := c.newFlagSet("version", "Print the version, commit, build date and Go version.", "nodeagent version")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "nodeagent %s (commit %s, built %s, %s %s/%s)\n",
		Version, Commit, BuildDate, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
