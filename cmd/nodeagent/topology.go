package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/publish"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/s3api"
	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/topology"
)

// topologyCommand is the operator's side of the topology document:
// `nodeagent topology publish|failover|rollback`. It runs off EC2: the
// region and credentials come from the environment (awsenv.NewOperator).
type topologyCommand struct {
	*cli
}

// opTimeout bounds the S3 work of one operator command (not a --wait).
const opTimeout = 2 * time.Minute

// raceAttempts is how many times failover and rollback compute and publish
// their document when other publishes land in between.
const raceAttempts = 3

func (c *topologyCommand) Run(ctx context.Context, args []string) error {
	return c.runSubcommands(ctx, "topology",
		"Credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN\n"+
			"and AWS_REGION; AWS_ENDPOINT_URL_S3 names another S3 endpoint.",
		[]subcommand{
			{"publish", "publish a document: nodeagent topology publish FILE --to s3://bucket/key", c.publish},
			{"failover", "move a database master: nodeagent topology failover --product P|--alias NAME --to NODE", c.failover},
			{"rollback", "republish a kept document as a new serial: nodeagent topology rollback --to SERIAL", c.rollback},
		}, args)
}

// parseInterspersed parses flags that may come after positional arguments
// ("publish FILE --to URL") and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// operator is what a topology subcommand talks to: the document's
// publisher, and the S3 client and AWS environment it was built from (for
// following the reports).
type operator struct {
	*publish.Publisher
	env *awsenv.Env
	api *s3api.Client
}

// publisher builds the S3 client from the operator's environment.
func (c *topologyCommand) publisher(ctx context.Context, url string) (*operator, error) {
	if url == "" {
		return nil, usagef("name the topology document: --topology s3://bucket/key (or NODEAGENT_TOPOLOGY)")
	}
	env := awsenv.NewOperator(c.getenv)
	api, err := source.NewS3Client(ctx, source.Options{AWS: env})
	if err != nil {
		return nil, err
	}
	p, err := publish.New(api, url)
	if err != nil {
		return nil, err
	}
	return &operator{Publisher: p, env: env, api: api}, nil
}

// waitFlags are --wait and its settings.
type waitFlags struct {
	wait     *bool
	timeout  *time.Duration
	interval *time.Duration
}

func addWaitFlags(fs *flag.FlagSet) waitFlags {
	return waitFlags{
		wait:     fs.Bool("wait", false, "follow the node reports (the topology's fleet.reports) and print when each live node applied the new serial; exit 1 if not all did within --timeout"),
		timeout:  fs.Duration("timeout", 10*time.Minute, "how long --wait waits"),
		interval: fs.Duration("report-interval", fleet.DefaultReportInterval, "the agents' --report-interval: a node without a report for 3 intervals is stale and not waited for"),
	}
}

// waitEvery is how often --wait reads the reports.
const waitEvery = 2 * time.Second

// follow waits until every live node reports serial applied.
func (c *topologyCommand) follow(ctx context.Context, op *operator, wf waitFlags, serial int64, published time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, *wf.timeout)
	defer cancel()
	src, err := source.New(ctx, op.URL(), source.Options{AWS: op.env, S3: op.api})
	if err != nil {
		return err
	}
	// One Loader: each read is a conditional GET of the topology, one LIST
	// and a GET per changed report.
	l := fleet.NewLoader(fleet.LoadInput{Topology: src, Reports: report.NewClientFromAPI(op.api), ReportInterval: *wf.interval})
	fmt.Fprintf(c.stdout, "waiting up to %s for every live node to apply serial %d…\n", *wf.timeout, serial)
	return publish.Wait(ctx, publish.WaitInput{
		Serial:    serial,
		Published: published,
		Load:      l.Load,
		Every:     waitEvery,
		Out:       c.stdout,
	})
}

func (c *topologyCommand) publish(ctx context.Context, args []string) error {
	fs := c.newFlagSet("topology publish FILE --to s3://bucket/key [--bump] [--dry-run] [--allow-node-drop] [--rollout waves --waves 1,10,50,100 --bake 6m --max-failed 1 [--auto-rollback]]",
		"Publish a topology document: validate it exactly as the agents do, print what changes against\n"+
			"the current document, refuse a serial not above the current one (--bump takes current+1),\n"+
			"keep the current document as history/<serial>.json beside the key, and replace it only if\n"+
			"nobody published meanwhile (S3 conditional write). Exit 1 when refused or raced.\n"+
			"--rollout waves publishes a staged rollout: rollouts/<serial>.json beside the key says which\n"+
			"wave may apply it; this command then advances the waves from the node reports (as\n"+
			"`nodeagent rollout resume` does) and exits 0 when done, 1 when halted.",
		"nodeagent topology publish topology.json --to s3://fleet-config/topology.json --bump")
	to := fs.String("to", c.getenv("NODEAGENT_TOPOLOGY"), "the published document, s3://bucket/key (default $NODEAGENT_TOPOLOGY)")
	bump := fs.Bool("bump", false, "publish a serial not above the current one as current+1")
	dryRun := fs.Bool("dry-run", false, "print the change; write nothing")
	allowDrop := fs.Bool("allow-node-drop", false, "publish a document dropping more than half of the current nodes")
	mode := fs.String("rollout", "all", `"all": every node applies at once; "waves": a staged rollout (--waves, --bake, --max-failed), followed until done or halted`)
	waves := fs.String("waves", "1,10,50,100", "with --rollout waves: cumulative shares of the fleet in percent, the last 100")
	bake := fs.Duration("bake", 6*time.Minute, "with --rollout waves: how long a wave runs the serial, applied and ready, before the next wave starts")
	maxFailed := fs.Int("max-failed", 1, "with --rollout waves: halt when more than this many nodes fail to apply the serial")
	follow := fs.Bool("follow", true, "with --rollout waves: follow the rollout here (false: start it and leave it at wave 1 for `nodeagent rollout resume`)")
	rf := addRolloutFollowFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one FILE, got %d arguments", len(pos))
	}
	file := pos[0]
	var st *rollout.Strategy
	switch *mode {
	case "all", "":
	case "waves":
		w, err := rollout.ParseWaves(*waves)
		if err != nil {
			return usageError{fmt.Errorf("--waves: %w", err)}
		}
		if *maxFailed < 0 || *bake < 0 {
			return usagef("--max-failed and --bake must not be negative")
		}
		st = &rollout.Strategy{Waves: w, Bake: *bake, MaxFailed: *maxFailed, AutoRollback: *rf.rollback}
	default:
		return usagef("--rollout %q: want all or waves", *mode)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read topology: %w", err)
	}
	if st != nil {
		if err := reportsNamed(body, file, "--rollout waves"); err != nil {
			return err
		}
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	p, err := c.publisher(ctx, *to)
	if err != nil {
		return err
	}
	cur, err := p.Read(ctx)
	if err != nil {
		return err
	}
	if st != nil && !cur.Exists {
		return fmt.Errorf("publish: nothing is published at %s yet, so there is no previous serial for the nodes outside a wave to keep: publish the first document with --rollout all", p.URL())
	}
	ch, err := p.Prepare(cur, publish.Input{Body: body, Name: file, Bump: *bump, AllowNodeDrop: *allowDrop})
	if err != nil {
		return c.explainRefusal(file, err)
	}
	c.printChange(p.Publisher, cur, ch, true)
	if st != nil {
		fmt.Fprintf(c.stdout, "rollout: waves %v%%, bake %s, max_failed %d, auto-rollback %t\n", st.Waves, st.Bake, st.MaxFailed, st.AutoRollback)
	}
	if *dryRun {
		fmt.Fprintln(c.stdout, "dry run: nothing written")
		return nil
	}
	if st != nil {
		return c.publishRollout(outer, ctx, p, cur, ch, *st, *follow, rf)
	}
	res, err := p.Write(ctx, cur, ch)
	if err != nil {
		return err
	}
	c.printPublished(ch, res)
	return nil
}

// publishRollout starts a staged rollout of ch (the rollout object first,
// then the document) and follows it unless told not to.
func (c *topologyCommand) publishRollout(outer, ctx context.Context, p *operator, cur *publish.Current, ch *publish.Change, st rollout.Strategy, follow bool, rf rolloutFlags) error {
	store, err := rollout.NewStore(p.api, p.URL())
	if err != nil {
		return err
	}
	r, _, res, err := p.StartRollout(ctx, store, cur, ch, st, time.Now())
	if err != nil {
		return err
	}
	c.printPublished(ch, res)
	fmt.Fprintf(c.stdout, "rollout of serial %d started (%s): waves %v%%, bake %s, max_failed %d; nodes outside the current wave keep serial %d\n",
		r.Serial, store.URL(r.Serial), r.Waves, r.Bake(), r.MaxFailed, r.Previous)
	if !follow {
		fmt.Fprintf(c.stdout, "not following: the rollout stays at wave 1 until `nodeagent rollout resume --topology %s`\n", p.URL())
		return nil
	}
	return c.followRollout(outer, p, store, r.Serial, rf)
}

func (c *topologyCommand) failover(ctx context.Context, args []string) error {
	fs := c.newFlagSet("topology failover --product P|--alias NAME --to NODE [--topology URL] [--old-master-as-replica] [--dry-run] [--wait --timeout D]",
		"Move a database master (the seeds' failover script) and publish the result as the next serial.\n"+
			"--product moves one product's master; --alias retargets an alias, moving every product whose\n"+
			"master it is. NODE must be a node of the master's role. The new master leaves the replica\n"+
			"lists; --old-master-as-replica puts the old master there instead (a replica alias of the new\n"+
			"master then points at the old one). Computed from the current document and published with a\n"+
			"conditional write, recomputed if someone publishes meanwhile. --wait then follows the node\n"+
			"reports and prints when each live node applied it.",
		"nodeagent topology failover --alias dbserver --to db-b --old-master-as-replica --topology s3://fleet-config/topology.json")
	url := fs.String("topology", c.getenv("NODEAGENT_TOPOLOGY"), "the published document, s3://bucket/key (default $NODEAGENT_TOPOLOGY)")
	var f publish.Failover
	fs.StringVar(&f.Product, "product", "", "the product whose database master moves")
	fs.StringVar(&f.Alias, "alias", "", "the alias that moves (every product using it follows)")
	fs.StringVar(&f.To, "to", "", "the node that becomes the master")
	fs.BoolVar(&f.OldMasterAsReplica, "old-master-as-replica", false, "the old master becomes a replica")
	dryRun := fs.Bool("dry-run", false, "print the change; write nothing")
	wf := addWaitFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if (f.Product == "") == (f.Alias == "") {
		return usagef("name exactly one of --product and --alias")
	}
	if f.To == "" {
		return usagef("name the new master: --to NODE")
	}
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	p, err := c.publisher(opCtx, *url)
	if err != nil {
		return err
	}
	var moved publish.Moved
	published := time.Now()
	out, err := p.Update(opCtx, raceAttempts, *dryRun, func(cur *publish.Current) (publish.Input, error) {
		body, mv, err := f.Edit(cur)
		moved = mv
		if err == nil && *wf.wait {
			err = reportsNamed(body, p.URL())
		}
		return publish.Input{Body: body, Name: p.URL(), Serial: cur.Serial + 1}, err
	})
	if errors.Is(err, publish.ErrAlreadyMaster) {
		fmt.Fprintf(c.stdout, "%s is already the master of %v at %s (serial %d): nothing to publish\n", f.To, moved.Products, p.URL(), out.Prev.Serial)
		return nil
	}
	if err != nil {
		return c.explainRefusal(p.URL(), err)
	}
	fmt.Fprintf(c.stdout, "failover: database master %s -> %s for %v\n", moved.From, moved.To, moved.Products)
	for _, n := range moved.Notes {
		fmt.Fprintf(c.stdout, "  %s\n", n)
	}
	return c.reportUpdate(ctx, p, out, *dryRun, wf, published)
}

func (c *topologyCommand) rollback(ctx context.Context, args []string) error {
	fs := c.newFlagSet("topology rollback --to SERIAL [--topology URL] [--dry-run] [--allow-node-drop] [--wait --timeout D]",
		"Republish the kept document of SERIAL (history/<SERIAL>.json beside the key) as a new serial,\n"+
			"current+1, through the same checks and conditional write as publish.",
		"nodeagent topology rollback --to 41 --topology s3://fleet-config/topology.json")
	url := fs.String("topology", c.getenv("NODEAGENT_TOPOLOGY"), "the published document, s3://bucket/key (default $NODEAGENT_TOPOLOGY)")
	to := fs.String("to", "", "the serial whose kept document is republished")
	dryRun := fs.Bool("dry-run", false, "print the change; write nothing")
	allowDrop := fs.Bool("allow-node-drop", false, "publish a document dropping more than half of the current nodes")
	wf := addWaitFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	serial, err := strconv.ParseInt(*to, 10, 64)
	if err != nil || serial <= 0 {
		return usagef("--to: want the serial to roll back to (a positive whole number), got %q", *to)
	}
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	p, err := c.publisher(opCtx, *url)
	if err != nil {
		return err
	}
	// The published document is kept once it is replaced (and at once
	// when published in waves): rolling back to it is no rollback.
	if cur, rerr := p.Read(opCtx); rerr == nil && cur.Exists && cur.Serial == serial {
		return fmt.Errorf("rollback: serial %d is the document published now at %s: nothing to roll back", serial, p.URL())
	}
	body, name, err := p.History(opCtx, serial)
	if err != nil {
		return err
	}
	published := time.Now()
	if *wf.wait {
		if err := reportsNamed(body, name); err != nil {
			return err
		}
	}
	out, err := p.Update(opCtx, raceAttempts, *dryRun, func(cur *publish.Current) (publish.Input, error) {
		return publish.Input{Body: body, Name: name, Serial: cur.Serial + 1, AllowNodeDrop: *allowDrop}, nil
	})
	if err != nil {
		return c.explainRefusal(name, err)
	}
	fmt.Fprintf(c.stdout, "rollback: the document of serial %d (%s) as serial %d\n", serial, name, out.Change.To)
	return c.reportUpdate(ctx, p, out, *dryRun, wf, published)
}

// reportUpdate prints what an edit of the current document (failover,
// rollback) changed and published, and with --wait follows the reports
// until every node applied it.
func (c *topologyCommand) reportUpdate(ctx context.Context, p *operator, out publish.Outcome, dryRun bool, wf waitFlags, published time.Time) error {
	c.printChange(p.Publisher, out.Prev, out.Change, false)
	if dryRun {
		fmt.Fprintln(c.stdout, "dry run: nothing written")
		return nil
	}
	c.printPublished(out.Change, out.Result)
	if *wf.wait {
		return c.follow(ctx, p, wf, out.Change.To, published)
	}
	return nil
}

// reportsNamed refuses --wait, before anything is published, for a
// document that names no reports prefix: there would be nothing to follow.
// A document that does not decode is left to the publish's own checks.
func reportsNamed(body []byte, name string, what ...string) error {
	t, err := topology.Decode(body, name, nodeagent.FormatOf(name))
	if err != nil || (t.Fleet != nil && t.Fleet.Reports != "") {
		return nil
	}
	flag := "--wait"
	if len(what) > 0 {
		flag = what[0]
	}
	return usagef("%s follows the node reports, but %s names none (fleet.reports): publish without %s, or add \"fleet\": {\"reports\": \"s3://bucket/prefix/\"} first", flag, name, flag)
}

// explainRefusal prints an invalid document's problems exactly as validate
// does, and adds the flag that lifts the node-drop guard.
func (c *topologyCommand) explainRefusal(name string, err error) error {
	var verrs topology.Errors
	if errors.As(err, &verrs) {
		fmt.Fprintf(c.stdout, "%s: invalid, %d problem(s):\n", name, len(verrs))
		for _, e := range verrs {
			fmt.Fprintf(c.stdout, "  %s\n", e.Error())
		}
		return fmt.Errorf("%s is invalid; fix the fields above and validate again", name)
	}
	if errors.Is(err, topology.ErrNodesDropped) {
		return fmt.Errorf("%w; if that is the intent, run again with --allow-node-drop", err)
	}
	return err
}

// printChange says what replaces what, and which document paths change.
// bumpNote says the input carried a serial of its own worth showing (a
// published file), unlike the documents failover and rollback compute.
func (c *topologyCommand) printChange(p *publish.Publisher, cur *publish.Current, ch *publish.Change, bumpNote bool) {
	w := c.stdout
	switch {
	case !cur.Exists:
		fmt.Fprintf(w, "%s: nothing published yet; serial %d is the first document\n", p.URL(), ch.To)
		return
	case cur.Doc == nil:
		fmt.Fprintf(w, "%s: serial %d -> %d (the current document is not valid: %v)\n", p.URL(), ch.From, ch.To, cur.Invalid)
		return
	}
	bumped := ""
	if ch.Bumped && bumpNote {
		bumped = fmt.Sprintf(" (the document said %d)", ch.Given)
	}
	fmt.Fprintf(w, "%s: serial %d -> %d%s, %d changed path(s):\n", p.URL(), ch.From, ch.To, bumped, len(ch.Paths))
	printPaths(w, ch.Paths)
}

func printPaths(w io.Writer, paths []string) {
	for _, p := range paths {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func (c *topologyCommand) printPublished(ch *publish.Change, res publish.Result) {
	if res.HistoryURL != "" {
		fmt.Fprintf(c.stdout, "published serial %d to %s; serial %d kept as %s\n", ch.To, res.URL, ch.From, res.HistoryURL)
		return
	}
	fmt.Fprintf(c.stdout, "published serial %d to %s\n", ch.To, res.URL)
}
