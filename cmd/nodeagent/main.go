// Command nodeagent turns a freshly booted EC2 instance into a working member
// of a PHP web fleet and keeps it correct.
//
// Usage:
//
//	nodeagent apply [--dry-run] [flags]   converge this node once, then exit
//	nodeagent run [flags]                 apply, then serve health/metrics and watch for changes
//	nodeagent validate FILE|URL           check a topology document; exit 0 valid, 1 invalid
//	nodeagent status [--json] [flags]     what the node last applied, and whether it is ready
//	nodeagent smoke [flags]               run this node's smoke checks now
//	nodeagent fleet status [--json] [--wait-converged --timeout D] --topology URL
//	                                      every node's report: table, JSON or a pipeline gate
//	nodeagent fleet serve [--listen ADDR] --topology URL
//	                                      the control panel: the same data as a web page
//	nodeagent version
//	nodeagent topology publish FILE --to s3://bucket/key [--bump] [--dry-run] [--allow-node-drop]
//	nodeagent topology failover --product P|--alias NAME --to NODE [--topology URL] [--old-master-as-replica] [--dry-run] [--wait --timeout D]
//	nodeagent topology rollback --to SERIAL [--topology URL] [--dry-run] [--allow-node-drop] [--wait --timeout D]
//	nodeagent topology publish FILE --rollout waves [--waves 1,10,50,100] [--bake 6m] [--max-failed 1] [--auto-rollback]
//	                           [--follow=false] [--every 2s] [--heartbeat 10s] [--report-interval 5m] [--timeout 24h]
//	nodeagent rollout resume [--topology URL] [--auto-rollback] [--every D] [--heartbeat D] [--report-interval D] [--timeout D]
//	nodeagent rollout status [--topology URL] [--report-interval D]
//
// The topology and rollout commands are the operator's: they run off EC2 and never ask
// instance metadata; the region and credentials come from AWS_REGION and
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN (package publish).
//
// Exit codes: 0 success; 1 the work failed; 2 usage error.
//
// Every flag can also be set in the config file (--config, default
// /etc/nodeagent/config.json, JSON with the flag names in snake_case) and by
// an environment variable NODEAGENT_<FLAG_IN_UPPER_SNAKE>; a flag beats the
// environment, which beats the file.
//
//	--config FILE              agent config file
//	--topology URL             s3://bucket/key, file:///path or https://… (required somewhere)
//	--root DIR                 prefix for every host path read or written (default /)
//	--service-root DIR         prefix for paths inside rendered configs (default /)
//	--state-dir DIR            state under --root (default /var/lib/nodeagent)
//	--proc DIR                 the running host's procfs: memory, boot id (default /proc, never under --root)
//	--role NAME                override the role
//	--products a,b             override the role's products
//	--group NAME               override the Auto Scaling group
//	--listen ADDR              health/readiness/status/metrics endpoint for run (default :9107)
//	--services auto|systemd|exec|none   service driver (default auto)
//	--log-format auto|json|text         log format (default auto)
//	--deadline D               deadline of one apply (default 15m)
//	--smoke-deadline D         deadline of the smoke checks (default 1m)
//	--launch-attempts N        applies tried at boot before ABANDON (default 3)
//	--heartbeat-interval D     lifecycle heartbeat interval (default 1m)
//	--poll-interval D          topology poll interval in run (default 30s)
//	--settle D                 settle delay for bursts of changes (default 2s)
//	--splay D                  maximum random delay before a re-apply (default 5s)
//	--drain-time D             wait between unready and the terminate hook (default 30s)
//	--report-interval D        heartbeat of the node report under fleet.reports (default 5m)
//	--keep-releases N          releases kept per product (default 3)
//	--allow-lower-serial       accept a lower topology serial (deliberate rollback)
//	--allow-node-drop          accept a topology dropping more than half the nodes
//	--status-public            serve /status to non-loopback clients
//
// AWS endpoints follow the SDK's variables: AWS_EC2_METADATA_SERVICE_ENDPOINT,
// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_AUTO_SCALING, AWS_ENDPOINT_URL. The
// region is AWS_REGION, AWS_DEFAULT_REGION or the instance's from IMDS;
// credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else the
// instance profile (package awsenv).
package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Set by the linker: -X main.Version=… -X main.Commit=… -X main.BuildDate=….
var (
	Version   = "dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

func main() {
	sig := newInterrupts()
	c := newCLI(os.Stdout, os.Stderr, os.Getenv)
	c.catchSignals = sig.catch
	code := c.Run(sig.ctx, os.Args[1:])
	sig.stop()
	os.Exit(code)
}

// interrupts is the context of a command, cancelled by SIGINT or SIGTERM
// once catch has been called. Catching signals costs a thread that waits
// for them (os/signal), about a millisecond of a 28 ms no-change apply on
// the benchmark VM, so apply catches them only once it has work that a
// signal should wind down rather than cut (agent.Agent.BeforeChange);
// every other command catches them from its start.
type interrupts struct {
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu          sync.Mutex
	stopSignals func() // nil until catch
	stopped     bool
}

func newInterrupts() *interrupts {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &interrupts{ctx: ctx, cancel: cancel}
}

// catch starts catching SIGINT and SIGTERM: the first cancels ctx (a
// second is caught too, as with signal.NotifyContext, until stop). Calls
// after the first, or after stop, do nothing; it is safe for concurrent
// use.
func (i *interrupts) catch() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.stopSignals != nil || i.stopped {
		return
	}
	sctx, stop := signal.NotifyContext(i.ctx, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(sctx, func() { i.cancel(context.Cause(sctx)) })
	i.stopSignals = stop
}

// stop stops catching signals, for good, and cancels ctx.
func (i *interrupts) stop() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.stopped = true
	if i.stopSignals != nil {
		i.stopSignals()
	}
	i.cancel(context.Canceled)
}
