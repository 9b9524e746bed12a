package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/source"
)

// fleetCommand is the operator's view of the fleet: `nodeagent fleet
// status|serve`.
type fleetCommand struct {
	*cli
}

func (c *fleetCommand) Run(ctx context.Context, args []string) error {
	return c.runSubcommands(ctx, "fleet", "", []subcommand{
		{"status", "every node's report as a table (--json; --wait-converged as a pipeline gate)", c.status},
		{"serve", "the control panel: the same data as a web page on --listen", c.serve},
	}, args)
}

// fleetFlags are the flags both subcommands share.
type fleetFlags struct {
	topology string
	interval time.Duration
	logFmt   string
}

func (c *fleetCommand) register(fs *flag.FlagSet) *fleetFlags {
	f := &fleetFlags{}
	fs.StringVar(&f.topology, "topology", "", "topology document URL (s3://bucket/key, file:///path, https://…) (env NODEAGENT_TOPOLOGY)")
	fs.DurationVar(&f.interval, "report-interval", fleet.DefaultReportInterval,
		"the agents' --report-interval: a node is stale after 3 intervals without a report (env NODEAGENT_REPORT_INTERVAL)")
	fs.StringVar(&f.logFmt, "log-format", "text", "log format: text or json")
	return f
}

// loader checks the shared flags and builds the fleet loader.
func (c *fleetCommand) loader(ctx context.Context, fs *flag.FlagSet, f *fleetFlags) (*fleet.Loader, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if !set["topology"] {
		f.topology = c.getenv("NODEAGENT_TOPOLOGY")
	}
	if !set["report-interval"] {
		if v := c.getenv("NODEAGENT_REPORT_INTERVAL"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, usagef("NODEAGENT_REPORT_INTERVAL=%q: want a duration such as 5m: %v", v, err)
			}
			f.interval = d
		}
	}
	if f.topology == "" {
		return nil, usagef("--topology is required (or NODEAGENT_TOPOLOGY): the document whose fleet.reports names the reports")
	}
	if f.interval <= 0 {
		return nil, usagef("--report-interval must be positive, got %s", f.interval)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected arguments %q", fs.Args())
	}
	env := awsenv.New(c.getenv)
	src, err := source.New(ctx, f.topology, source.Options{AWS: env})
	if err != nil {
		return nil, err
	}
	return fleet.NewLoader(fleet.LoadInput{Topology: src, Reports: report.NewClient(env), ReportInterval: f.interval}), nil
}

func (c *fleetCommand) status(ctx context.Context, args []string) error {
	fs := c.newFlagSet("fleet status [--json] [--wait-converged --timeout D] --topology URL",
		"Read the topology and every node report under its fleet.reports prefix and print one line per\n"+
			"node (role, products, AZ, IP, serial applied/current, release, readiness, last apply, agent),\n"+
			"marking nodes missing, stale (no report for 3 --report-interval), behind, failing, then a\n"+
			"summary: ready counts, share of live nodes on the current serial, roles x AZs with imbalance.\n"+
			"--wait-converged re-reads until every live node runs the current serial and is ready (exit 0)\n"+
			"or --timeout passes (exit 1, naming the laggards): a deploy pipeline's gate.",
		"nodeagent fleet status --topology s3://fleet-config/topology.json --wait-converged --timeout 10m")
	f := c.register(fs)
	asJSON := fs.Bool("json", false, "print the snapshot as JSON (the same document fleet serve answers on /api/fleet)")
	wait := fs.Bool("wait-converged", false, "wait until every live node reports the current serial applied and ready")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --wait-converged: how long to wait")
	every := fs.Duration("every", 5*time.Second, "with --wait-converged: time between reads")
	if err := parse(fs, args); err != nil {
		return err
	}
	// A short-lived reader of thousands of small objects: collect less
	// often (about a quarter of its CPU went to the collector at the
	// default 100), for a heap of a few tens of MB.
	debug.SetGCPercent(400)
	if *wait && (*timeout <= 0 || *every <= 0) {
		return usagef("--timeout and --every must be positive")
	}
	l, err := c.loader(ctx, fs, f)
	if err != nil {
		return err
	}
	print := func(s *fleet.Snapshot) error {
		if *asJSON {
			b, err := fleet.Marshal(s)
			if err != nil {
				return err
			}
			_, err = c.stdout.Write(b)
			return err
		}
		return fleet.Format(c.stdout, s)
	}
	if !*wait {
		s, err := l.Load(ctx)
		if err != nil {
			return err
		}
		return print(s)
	}

	deadline := time.Now().Add(*timeout)
	var s *fleet.Snapshot
	lastLine := ""
	for {
		s, err = l.Load(ctx)
		if err != nil {
			// A read that fails while waiting is said and retried: the
			// gate fails on the timeout, not on one S3 hiccup.
			fmt.Fprintf(c.stderr, "fleet status: %v (retrying)\n", err)
		} else {
			if s.Summary.Converged {
				fmt.Fprintf(c.stderr, "converged: %d live nodes run serial %d and are ready\n", s.Summary.Live, s.Serial)
				return print(s)
			}
			line := fmt.Sprintf("waiting: %d of %d live nodes converged on serial %d", s.Summary.Live-len(s.Summary.Laggards), s.Summary.Live, s.Serial)
			if line != lastLine {
				fmt.Fprintln(c.stderr, line)
				lastLine = line
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(*every, left)):
		}
	}
	if s == nil {
		return fmt.Errorf("not converged after %s: the fleet could not be read: %w", *timeout, err)
	}
	if perr := print(s); perr != nil {
		return perr
	}
	if s.Summary.Live == 0 {
		return fmt.Errorf("not converged after %s: no live node reports under %s", *timeout, s.Reports)
	}
	return fmt.Errorf("not converged after %s on serial %d; laggards: %s", *timeout, s.Serial, strings.Join(fleet.Laggards(s), "; "))
}

// DefaultFleetListen is where `fleet serve` listens: loopback only.
const DefaultFleetListen = "127.0.0.1:9108"

func (c *fleetCommand) serve(ctx context.Context, args []string) error {
	fs := c.newFlagSet("fleet serve [--listen ADDR] --topology URL",
		"Serve the control panel: the fleet table, the roles x AZs matrix (colour per AZ, imbalance\n"+
			"shown) and each node's last apply and smoke checks, refreshing itself. Read-only; the data\n"+
			"is reloaded from S3 every --refresh (one LIST, and a GET per changed report) and is the same\n"+
			"JSON as fleet status --json (GET /api/fleet). Listens on loopback by default: reach it\n"+
			"through an SSH tunnel rather than exposing it.",
		"nodeagent fleet serve --topology s3://fleet-config/topology.json --listen 127.0.0.1:9108")
	f := c.register(fs)
	listen := fs.String("listen", DefaultFleetListen, "address to serve the page on")
	refresh := fs.Duration("refresh", fleet.DefaultRefresh, "how often the fleet is reloaded, and the page refreshes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *refresh <= 0 {
		return usagef("--refresh must be positive, got %s", *refresh)
	}
	l, err := c.loader(ctx, fs, f)
	if err != nil {
		return err
	}
	log := newLogger(c.stderr, f.logFmt)
	srv := &fleet.Server{Loader: l, Refresh: *refresh, Logger: log}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", *listen, err)
	}
	if err := srv.Load(ctx); err != nil {
		log.Warn("first load of the fleet failed; the page says so and the next reload tries again", nodeagent.LogKeyError, err.Error())
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go srv.Run(ctx)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("fleet control panel", nodeagent.LogKeyURL, "http://"+ln.Addr().String()+"/", nodeagent.LogKeySource, f.topology, slog.Duration(nodeagent.LogKeyRefresh, *refresh))
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
