package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/publish"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/source"
)

// rolloutCommand is the operator's command that advances a staged
// rollout: `nodeagent rollout resume|status`. `topology publish --rollout
// waves` starts a rollout and runs the same loop.
type rolloutCommand struct {
	*cli
}

func (c *rolloutCommand) Run(ctx context.Context, args []string) error {
	return c.runSubcommands(ctx, "rollout", "", []subcommand{
		{"resume", "follow the rollout of the published serial: advance its waves from the node reports,\n" +
			"            halt it on failures (and with --auto-rollback republish the previous serial)", c.resume},
		{"status", "print the rollout of the published serial and each wave's nodes", c.status},
	}, args)
}

// rolloutFlags are the flags of the following loop.
type rolloutFlags struct {
	every    *time.Duration
	interval *time.Duration
	timeout  *time.Duration
	rollback *bool
	beat     *time.Duration
}

func addRolloutFollowFlags(fs *flag.FlagSet) rolloutFlags {
	return rolloutFlags{
		every:    fs.Duration("every", 2*time.Second, "how often the reports are read and the rollout advanced"),
		interval: fs.Duration("report-interval", fleet.DefaultReportInterval, "the agents' --report-interval: a node without a report for 3 intervals is stale and not waited for"),
		timeout:  fs.Duration("timeout", 24*time.Hour, "give up following after this long (the rollout stays where it is)"),
		rollback: fs.Bool("auto-rollback", false, "when the rollout halts, publish the previous document as a new serial (topology rollback)"),
		beat:     fs.Duration("heartbeat", rollout.HeartbeatEvery, "how often this command writes its heartbeat into the rollout object; `fleet status` calls the rollout unattended after 6 missed"),
	}
}

// operatorName names this command in the rollout object.
func operatorName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// follow runs the rollout of serial until it is done, halted or
// superseded.
func (c *cli) followRollout(ctx context.Context, op *operator, store *rollout.Store, serial int64, rf rolloutFlags) error {
	ctx, cancel := context.WithTimeout(ctx, *rf.timeout)
	defer cancel()
	src, err := source.New(ctx, op.URL(), source.Options{AWS: op.env, S3: op.api})
	if err != nil {
		return err
	}
	l := fleet.NewLoader(fleet.LoadInput{Topology: src, Reports: report.NewClientFromAPI(op.api), ReportInterval: *rf.interval})
	var rb func(context.Context, *rollout.Rollout) (int64, error)
	if *rf.rollback {
		rb = func(ctx context.Context, r *rollout.Rollout) (int64, error) { return rollbackTo(ctx, op, r.Previous) }
	}
	fmt.Fprintf(c.stdout, "following the rollout of serial %d (%s); stop with Ctrl-C: the rollout then stays at its wave until `nodeagent rollout resume`\n", serial, store.URL(serial))
	return publish.FollowRollout(ctx, publish.FollowInput{
		Store: store, Serial: serial, Load: l.Load, Rollback: rb, Operator: operatorName(), Heartbeat: *rf.beat, Every: *rf.every, Out: c.stdout,
	})
}

// rollbackTo republishes the kept document of serial as current+1.
func rollbackTo(ctx context.Context, op *operator, serial int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	body, name, err := op.History(ctx, serial)
	if err != nil {
		return 0, err
	}
	out, err := op.Update(ctx, raceAttempts, false, func(cur *publish.Current) (publish.Input, error) {
		return publish.Input{Body: body, Name: name, Serial: cur.Serial + 1}, nil
	})
	if err != nil {
		return 0, err
	}
	return out.Change.To, nil
}

// rolloutOf reads the published serial and its rollout object.
func (c *rolloutCommand) rolloutOf(ctx context.Context, url string) (*operator, *rollout.Store, *rollout.Rollout, error) {
	op, err := (&topologyCommand{cli: c.cli}).publisher(ctx, url)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := rollout.NewStore(op.api, op.URL())
	if err != nil {
		return nil, nil, nil, err
	}
	cur, err := op.Read(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if !cur.Exists {
		return nil, nil, nil, fmt.Errorf("rollout: nothing is published at %s", op.URL())
	}
	r, _, err := store.Read(ctx, cur.Serial)
	if errors.Is(err, rollout.ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("rollout: serial %d at %s was published all at once: there is no rollout to follow (%s does not exist)", cur.Serial, op.URL(), store.URL(cur.Serial))
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if r.DocumentSHA256 != rollout.Digest(cur.Body) {
		return nil, nil, nil, fmt.Errorf("rollout: %s is not the rollout of the document published now (a publish that lost its race left it); serial %d was published all at once", store.URL(cur.Serial), cur.Serial)
	}
	return op, store, r, nil
}

func (c *rolloutCommand) resume(ctx context.Context, args []string) error {
	fs := c.newFlagSet("rollout resume [--topology URL] [--auto-rollback] [--every D] [--report-interval D]",
		"Follow the rollout of the published serial: advance to the next wave when every live node of the\n"+
			"current wave reports the serial applied and ready and the bake time has passed; halt when more\n"+
			"than max_failed nodes report a failed apply, print them, and with --auto-rollback publish the\n"+
			"previous document as a new serial. Exit 0 when done or superseded, 1 when halted.",
		"nodeagent rollout resume --topology s3://fleet-config/topology.json --report-interval 30s")
	url := fs.String("topology", c.getenv("NODEAGENT_TOPOLOGY"), "the published document, s3://bucket/key (default $NODEAGENT_TOPOLOGY)")
	rf := addRolloutFollowFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	op, store, r, err := c.rolloutOf(opCtx, *url)
	cancel()
	if err != nil {
		return err
	}
	if *rf.rollback && !r.AutoRollback && r.State == rollout.StateRolling {
		fmt.Fprintln(c.stdout, "auto-rollback: on (from --auto-rollback)")
	}
	if !*rf.rollback && r.AutoRollback {
		*rf.rollback = true // the publisher asked for it
	}
	return c.followRollout(ctx, op, store, r.Serial, rf)
}

func (c *rolloutCommand) status(ctx context.Context, args []string) error {
	fs := c.newFlagSet("rollout status [--topology URL] [--report-interval D]",
		"Print the rollout of the published serial: state, wave, each wave's nodes done / pending /\n"+
			"failed, why it halted, and whether an operator command is following it.",
		"nodeagent rollout status --topology s3://fleet-config/topology.json")
	url := fs.String("topology", c.getenv("NODEAGENT_TOPOLOGY"), "the published document, s3://bucket/key (default $NODEAGENT_TOPOLOGY)")
	interval := fs.Duration("report-interval", fleet.DefaultReportInterval, "the agents' --report-interval")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	op, _, _, err := c.rolloutOf(ctx, *url)
	if err != nil {
		return err
	}
	src, err := source.New(ctx, op.URL(), source.Options{AWS: op.env, S3: op.api})
	if err != nil {
		return err
	}
	s, err := fleet.Load(ctx, fleet.LoadInput{Topology: src, Reports: report.NewClientFromAPI(op.api), ReportInterval: *interval})
	if err != nil {
		return err
	}
	fleet.FormatRollout(c.stdout, s)
	return nil
}
