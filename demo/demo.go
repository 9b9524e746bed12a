package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// Time limits of the demo's steps.
const (
	readyLimit  = 3 * time.Minute // an agent's first apply, from boot to /ready
	changeLimit = 2 * time.Minute // a topology change, from publish to the page
	autoChange  = 30 * time.Second
)

// demo is one run of the demo: where it lives and what it started.
type demo struct {
	opt   options
	dir   string // absolute demo directory
	out   io.Writer
	h     *harnessTB
	state state

	s3         *harness.MinIO
	releaseSHA string
	agents     map[string]*agent
}

// runDemo is the demo from start to end; whatever happens, everything it
// started is stopped before it returns.
func runDemo(ctx context.Context, o options, stdin io.Reader, out io.Writer) (err error) {
	dir, err := filepath.Abs(o.root)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := prepareDir(ctx, dir, out); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d := &demo{
		opt: o, dir: dir, out: out,
		h:      newHarnessTB(filepath.Join(dir, "tmp"), out),
		state:  state{PID: os.Getpid(), Executable: exe, NodeRoots: map[string]string{}},
		agents: map[string]*agent{},
	}
	if err := writeState(dir, d.state); err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "\n== stopping everything the demo started")
		d.h.close()
		if serr := sweep(context.Background(), dir, d.state, out); serr != nil {
			err = errors.Join(err, fmt.Errorf("demo: clean up: %w", serr))
		}
		fmt.Fprintf(out, "stopped; agent logs kept in %s\n", filepath.Join(o.root, logsDir))
	}()

	if err := d.boot(ctx); err != nil {
		return interrupted(ctx, err)
	}
	if err := d.showSite(ctx); err != nil {
		return interrupted(ctx, err)
	}
	// From here on the shop is up: a stop (Ctrl-C, -stop) is the normal
	// end of an attended demo, and a failure only when unattended.
	stopped := func(err error) error {
		if ctx.Err() != nil && !o.unattended {
			return nil
		}
		return interrupted(ctx, err)
	}
	if err := d.waitForGo(ctx, stdin); err != nil {
		return stopped(err)
	}
	if err := d.moveMaster(ctx); err != nil {
		return stopped(err)
	}
	if err := d.brokenRollout(ctx); err != nil {
		return stopped(err)
	}
	if o.unattended {
		fmt.Fprintln(out, "\nunattended: the change was picked up, the broken release halted in wave 1; done.")
		return nil
	}
	fmt.Fprintf(out, "\nThe demo keeps running. Ctrl-C here, or `make demo-stop` elsewhere, stops everything.\n")
	return d.wait(ctx)
}

// interrupted turns an error caused by Ctrl-C into a plain message.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("demo: interrupted: %w", err)
	}
	return err
}

// prepareDir refuses to start beside a running demo, sweeps up what a
// dead one left, and leaves dir empty.
func prepareDir(ctx context.Context, dir string, out io.Writer) error {
	s, err := readState(dir)
	switch {
	case err == nil && s.running():
		return fmt.Errorf("demo: a demo is already running in %s (pid %d): stop it with `make demo-stop`", dir, s.PID)
	case err == nil:
		fmt.Fprintf(out, "a previous demo in %s did not stop cleanly; cleaning up after it\n", dir)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("demo: %w", err)
	}
	if err := sweep(ctx, dir, s, out); err != nil {
		return fmt.Errorf("demo: clean up %s: %w", dir, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, logsDir)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n== "+format+"\n", args...)
}

// boot starts the emulators, publishes the topology and release, and
// boots every node until its agent says ready.
func (d *demo) boot(ctx context.Context) error {
	d.step("starting the S3 emulator (MinIO)")
	if err := d.h.call(func() { d.s3 = harness.StartMinIO(d.h) }); err != nil {
		return fmt.Errorf("demo: start MinIO (built by `make tools`): %w", err)
	}
	fmt.Fprintf(d.out, "MinIO at %s\n", d.s3.Endpoint)

	d.step("publishing the example release and topology")
	app, err := fs.Sub(example, "example/app")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	archive, sum, err := releaseArchive(app)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.releaseSHA = sum
	if err := d.put(releaseBucket, releaseKey, archive); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "release  s3://%s/%s (%d bytes, sha256 %s)\n", releaseBucket, releaseKey, len(archive), sum)
	if err := d.publish(1, masterBefore); err != nil {
		return err
	}

	env := d.s3.Env()
	for _, n := range nodes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.step("booting %s (%s, %s, role %s)", n.Name, n.InstanceID, n.IP, n.Role)
		a, err := d.bootNode(n, env)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := a.waitReady(ctx, readyLimit); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		fmt.Fprintf(d.out, "%s is ready after %s (GET http://%s/ready → 200)\n", n.Name, time.Since(start).Round(100*time.Millisecond), n.listen())
	}
	// An operator's environment: the S3 endpoint and credentials, for
	// env $(cat agents/operator.env) nodeagent topology …
	opEnv := filepath.Join(d.dir, "agents", "operator.env")
	if err := os.WriteFile(opEnv, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.step("starting the control panel (nodeagent fleet serve, from the nodes' reports in S3)")
	fmt.Fprintf(d.out, "$ %s %s\n", d.opt.nodeagent, strings.Join(panelArgs(), " "))
	if err := d.startPanel(ctx, env); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "control panel at http://%s/\n", panelAddr)
	return nil
}

// bootNode starts the node's metadata mock, makes its root and starts its
// agent. Every one of them is stopped by d.h.close, the agent first.
func (d *demo) bootNode(n node, s3Env []string) (*agent, error) {
	var imds *harness.IMDS
	var root string
	err := d.h.call(func() {
		imds = harness.StartIMDS(d.h, harness.IMDSConfig{
			InstanceID: n.InstanceID, PrivateIP: n.IP, AZ: n.AZ, Group: n.Group,
		})
		root = harness.NodeRoot(d.h)
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %s: %w", n.Name, err)
	}
	d.state.NodeRoots[n.Name] = root
	if err := writeState(d.dir, d.state); err != nil {
		return nil, err
	}
	link := filepath.Join(d.dir, n.Name)
	if err := os.Symlink(root, link); err != nil {
		return nil, fmt.Errorf("demo: %s: %w", n.Name, err)
	}
	group := n.Group
	if group == "" {
		group = "(none)"
	}
	fmt.Fprintf(d.out, "metadata  %s (instance %s, local-ipv4 %s, group tag %s)\n", imds.URL, n.InstanceID, n.IP, group)
	fmt.Fprintf(d.out, "root      %s -> %s\n", filepath.Join(d.opt.root, n.Name), root)

	a, err := startAgent(startAgentInput{
		Binary: d.opt.nodeagent, Node: n, Root: root, Dir: d.dir,
		Env: append(imds.Env(), s3Env...),
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	d.agents[n.Name] = a
	d.h.Cleanup(func() {
		if err := a.stop(20 * time.Second); err != nil {
			d.h.Errorf("demo: %v", err)
		}
	})
	fmt.Fprintf(d.out, "agent     %s run --config %s (log %s)\n", d.opt.nodeagent,
		filepath.Join(d.opt.root, "agents", n.Name+".json"), filepath.Join(d.opt.root, logsDir, n.Name+".log"))
	return a, nil
}

// put stores an object in the demo's S3.
func (d *demo) put(bucket, key string, body []byte) error {
	if err := d.h.call(func() { d.s3.Put(d.h, bucket, key, body) }); err != nil {
		return fmt.Errorf("demo: publish: %w", err)
	}
	return nil
}

// publish puts the topology at serial with the database master master.
func (d *demo) publish(serial int64, master string) error {
	body, err := exampleTopology(serial, d.releaseSHA, master)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := d.put(topologyBucket, topologyKey, body); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "topology  s3://%s/%s (serial %d, aliases.dbserver = %s)\n", topologyBucket, topologyKey, serial, master)
	return nil
}

func (d *demo) web() node   { return nodeNamed("web-1") }
func (d *demo) cache() node { return nodeNamed("cache-1") }

func nodeNamed(name string) node {
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	panic("demo: no node " + name)
}

// showSite checks the site and memcached for real and prints where to
// look.
func (d *demo) showSite(ctx context.Context) error {
	web, cache := d.web(), d.cache()
	d.step("the shop, served by the web node")
	first, second, err := checkSite(ctx, web)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(d.out, "GET http://%s:%d/ (Host: %s) → 200, Server: %s\n%s\n", web.IP, sitePort, siteHost, first.Server, indent(strings.TrimSpace(first.Body)))
	fmt.Fprintf(d.out, "the same visitor again → visit %d: the session lives in memcached on %s\n", second.Visit(), cache.Name)
	version, err := memcachedVersion(ctx, cache.IP+":11211")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(d.out, "memcached %s answers on %s:11211\n", version, cache.IP)

	// Files as the user named the directory; --root wants it absolute.
	root := d.opt.root
	fmt.Fprintf(d.out, `
== where to look
  site       curl -H 'Host: %[1]s' http://%[2]s:%[3]d/
  health     curl -H 'Host: %[1]s' http://%[2]s:%[3]d/nodeagent-health
  readiness  curl http://%[4]s/ready     (cache-1: curl http://%[5]s/ready)
  status     curl http://%[4]s/status
  metrics    curl http://%[4]s/metrics
  agent      %[6]s status --root %[8]s/web-1
             %[6]s status --root %[8]s/cache-1
  dry run    env $(cat %[7]s/agents/web-1.env) %[6]s apply --dry-run --config %[7]s/agents/web-1.json
  files      %[7]s/web-1/etc/apache2/sites-enabled/nodeagent-shop.conf
             %[7]s/web-1/etc/nodeagent/products/shop.php
             %[7]s/cache-1/etc/memcached.conf
  logs       %[7]s/logs/web-1.log, %[7]s/logs/cache-1.log
  panel      http://%[10]s/   (the same as: env $(cat %[7]s/agents/operator.env) %[6]s fleet status --topology %[11]s)
  operator   env $(cat %[7]s/agents/operator.env) %[6]s %[9]s --dry-run
`, siteHost, web.IP, sitePort, web.listen(), cache.listen(), d.opt.nodeagent, root, d.dir, strings.Join(failoverArgs(), " "),
		panelAddr, "s3://"+topologyBucket+"/"+topologyKey)
	return nil
}

// waitForGo waits before the live change: for a line or EOF on stdin with
// -wait-stdin; not at all when unattended; else for Enter, EOF or
// autoChange.
func (d *demo) waitForGo(ctx context.Context, stdin io.Reader) error {
	var limit time.Duration
	switch {
	case d.opt.waitStdin:
		fmt.Fprintln(d.out, "\nwaiting for a line on stdin before moving the database master…")
		limit = changeLimit + readyLimit
	case d.opt.unattended:
		return nil
	default:
		fmt.Fprintf(d.out, "\nPress Enter to move the database master from %s to %s (it moves by itself in %s)…\n", masterBefore, masterAfter, autoChange)
		limit = autoChange
	}
	line := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(stdin).ReadString('\n')
		close(line)
	}()
	select {
	case <-line:
	case <-time.After(limit):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// moveMaster moves the database master to db-b the way an operator does,
// with `nodeagent topology failover --wait` (a conditional publish of the
// next serial, then the node reports followed until every node applied
// it), and waits until the shop's page shows it; then it prints what the
// web node's agent logged about it.
func (d *demo) moveMaster(ctx context.Context) error {
	web := d.web()
	a := d.agents[web.Name]
	offset := fileSize(a.log)
	d.step("a live topology change: the database master moves from %s to %s", masterBefore, masterAfter)
	start := time.Now()
	if err := d.failover(ctx); err != nil {
		return err
	}
	v, err := newVisitor(web)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, changeLimit)
	defer cancel()
	var p page
	for p.Master() != masterAfter {
		select {
		case <-a.exited:
			return fmt.Errorf("demo: agent %s exited (%v); the end of %s:\n%s", web.Name, a.err, a.log, tail(a.log, 30))
		case <-ctx.Done():
			return fmt.Errorf("demo: the page still shows master %q %s after the change (want %s); the end of %s:\n%s",
				p.Master(), changeLimit, masterAfter, a.log, tail(a.log, 30))
		case <-time.After(500 * time.Millisecond):
		}
		p, _ = v.get(ctx)
	}
	fmt.Fprintf(d.out, "picked up after %s; the shop now says:\n%s\n", time.Since(start).Round(100*time.Millisecond), indent(strings.TrimSpace(p.Body)))
	// The page turns before the apply ends (smoke checks, the record):
	// show the log once the agent says the apply is done.
	logged := applyLog(ctx, a.log, offset, 2)
	fmt.Fprintf(d.out, "\nwhat the %s agent logged (%s):\n%s\n", web.Name, a.log, indent(lastLines(logged, 40)))
	return nil
}

// failoverArgs is the operator's failover command of the demo.
func failoverArgs() []string {
	return []string{"topology", "failover", "--alias", "dbserver", "--to", masterAfter, "--old-master-as-replica",
		"--topology", "s3://" + topologyBucket + "/" + topologyKey}
}

// failover runs `nodeagent topology failover … --wait` as an operator off
// EC2 would (credentials, region and endpoint from the environment, no
// instance metadata), its output shown as it comes.
func (d *demo) failover(ctx context.Context) error {
	args := append(failoverArgs(), "--wait", "--timeout", changeLimit.String())
	fmt.Fprintf(d.out, "$ %s %s\n", d.opt.nodeagent, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(ctx, changeLimit+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.opt.nodeagent, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, d.s3.Env()...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("demo: nodeagent topology failover: %w", err)
	}
	return nil
}

// applyLog waits (briefly) until the agent log from offset on reports the
// apply of serial done, and returns those lines without the watcher's
// chatter.
func applyLog(ctx context.Context, path string, offset, serial int64) string {
	const done = `msg="apply done"`
	want := fmt.Sprintf("serial=%d ", serial)
	var text string
	for range 40 {
		text = readFrom(path, offset)
		if strings.Contains(text, done) && strings.Contains(text, want) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.Contains(line, `msg="topology source event"`) || strings.Contains(line, `msg="change settled`) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// wait blocks until Ctrl-C or -stop (ctx ends) or an agent exits.
func (d *demo) wait(ctx context.Context) error {
	exited := make(chan *agent, len(d.agents))
	for _, a := range d.agents {
		go func() {
			select {
			case <-a.exited:
				exited <- a
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case a := <-exited:
		return fmt.Errorf("demo: agent %s exited (%v); the end of %s:\n%s", a.node.Name, a.err, a.log, tail(a.log, 30))
	}
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// readFrom returns a file's content from offset on.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
}
