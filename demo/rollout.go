package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/topology"
)

// The broken release of the staged rollout: its home page no longer says
// "Welcome to the shop", so the shop's smoke check fails.
const (
	brokenKey    = "shop/demo-2-broken.tar.gz"
	brokenID     = "demo-2"
	brokenSerial = 3 // after the failover's serial 2
)

// brokenRollout publishes a broken release in waves, the way an operator
// would (`topology publish --rollout waves`): the web node of the first
// wave tries it, fails its smoke check and reverts, the rollout halts, and
// the shop keeps serving the good release. Then it prints the rollout as
// `nodeagent rollout status` (and the control panel) show it.
func (d *demo) brokenRollout(ctx context.Context) error {
	web := d.web()
	d.step("a broken release, published in waves: the rollout halts, the shop stays up")
	archive, sum, err := releaseArchive(fstest.MapFS{"public/index.php": {Data: []byte("<?php\nheader('Content-Type: text/plain');\necho \"Out of order\\n\";\n")}})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := d.put(releaseBucket, brokenKey, archive); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "release  s3://%s/%s: its home page says \"Out of order\", so the shop's smoke check fails\n", releaseBucket, brokenKey)
	body, err := brokenTopology(d.releaseSHA, sum)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	file := filepath.Join(d.dir, "agents", "broken-topology.json")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// With two nodes a wave is one node: the first wave's share is chosen
	// so that it holds the web node (a node's wave is a hash of its
	// instance id and the serial).
	first := min(rollout.Bucket(web.InstanceID, brokenSerial)/100+1, 99)
	fmt.Fprintf(d.out, "first wave %d%%: with two nodes, the share that holds %s for serial %d\n", first, web.Name, brokenSerial)
	args := []string{"topology", "publish", file, "--to", "s3://" + topologyBucket + "/" + topologyKey,
		"--rollout", "waves", "--waves", strconv.Itoa(first) + ",100", "--bake", "30s", "--max-failed", "0", "--every", "1s", "--timeout", changeLimit.String()}
	fmt.Fprintf(d.out, "$ %s %s\n", d.opt.nodeagent, strings.Join(args, " "))
	cctx, cancel := context.WithTimeout(ctx, changeLimit+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, d.opt.nodeagent, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, d.s3.Env()...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return errors.New("demo: the rollout of the broken release did not halt")
	case errors.As(err, &exit) && exit.ExitCode() == 1 && ctx.Err() == nil:
		fmt.Fprintln(d.out, "(exit 1: halted, as it should)")
	default:
		return fmt.Errorf("demo: nodeagent topology publish --rollout waves: %w", err)
	}

	v, err := newVisitor(web)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	p, err := v.get(ctx)
	if err != nil || !strings.Contains(p.Body, "Welcome to the shop") {
		return fmt.Errorf("demo: after the halted rollout the shop serves %q (%v), want the good release", p.Body, err)
	}
	fmt.Fprintf(d.out, "\nthe shop still serves the good release (%s reverted itself):\n%s\n", web.Name, indent(strings.TrimSpace(p.Body)))

	args = []string{"rollout", "status", "--topology", "s3://" + topologyBucket + "/" + topologyKey}
	fmt.Fprintf(d.out, "\n$ %s %s\n", d.opt.nodeagent, strings.Join(args, " "))
	cmd = exec.CommandContext(cctx, d.opt.nodeagent, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, d.s3.Env()...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("demo: nodeagent rollout status: %w", err)
	}
	fmt.Fprintf(d.out, "(the control panel at http://%s/ shows the same; `nodeagent topology rollback --to 2` republishes the good document)\n", panelAddr)
	return nil
}

// brokenTopology is the demo's document after the failover (master db-b),
// with the shop at the broken release.
func brokenTopology(goodSHA, brokenSHA string) ([]byte, error) {
	body, err := exampleTopology(brokenSerial, goodSHA, masterAfter)
	if err != nil {
		return nil, err
	}
	var t nodeagent.Topology
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("broken topology: %w", err)
	}
	p := t.Products[product]
	p.Release = &nodeagent.Release{ID: brokenID, URL: "s3://" + releaseBucket + "/" + brokenKey, SHA256: brokenSHA}
	t.Products[product] = p
	out, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("broken topology: %w", err)
	}
	if _, err := topology.Load(out, topologyKey, nodeagent.FormatJSON); err != nil {
		return nil, fmt.Errorf("broken topology: %w", err)
	}
	return out, nil
}
