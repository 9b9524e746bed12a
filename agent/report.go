package agent

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/report"
)

// ReportWriter writes the node's report; *report.Client is one.
type ReportWriter interface {
	Put(ctx context.Context, loc report.Location, r *report.Report) error
}

// DefaultReportInterval is the heartbeat of node reports.
const DefaultReportInterval = 5 * time.Minute

// reportFlushTimeout bounds the last report written while run exits.
const reportFlushTimeout = 10 * time.Second

// reporter keeps the node's report in S3 up to date when the applied
// topology names a fleet.reports prefix: after each apply outcome, on
// drain, and every interval. It runs on its own goroutine: the run loop
// and the applies only note what happened (never blocking), and the
// reporter writes the latest state, so a slow or refused PUT never delays
// an apply, and a burst of changes is one PUT.
type reporter struct {
	a        *Agent
	w        ReportWriter
	m        *Metrics
	interval time.Duration
	version  string
	boot     time.Time

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	loc        *report.Location
	inst       *nodeagent.Instance
	id         *nodeagent.Identity
	last       *report.Apply
	event      string    // the event of the pending report; "" when none
	lastEvent  string    // the event of the last report written for a change
	lastAt     time.Time // when that event happened
	terminated bool
	failing    bool // the last PUT failed (logged once until it works again)
}

// startReporter starts the reporter, or returns nil when o has no writer.
func (a *Agent) startReporter(o RunOptions) *reporter {
	if o.Reports == nil {
		return nil
	}
	r := &reporter{a: a, w: o.Reports, m: o.Metrics, interval: o.ReportInterval, version: o.AgentVersion, boot: a.now().UTC(),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if r.interval <= 0 {
		r.interval = DefaultReportInterval
	}
	go r.loop()
	return r
}

// note records that something changed and asks for a report.
func (r *reporter) note(event string, f func(*reporter)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if f != nil {
		f(r)
	}
	r.event = event
	r.lastEvent, r.lastAt = event, r.a.now().UTC()
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a report is coming: it will carry this change too
	}
}

// applied records an apply outcome: out may be nil (nothing was
// discovered), err nil for success.
func (r *reporter) applied(out *Outcome, err error, took time.Duration) {
	if r == nil {
		return
	}
	res := report.ResultOK
	switch {
	case errors.As(err, new(*RefusedError)):
		res = report.ResultRefused
	case err != nil:
		res = report.ResultFailed
	}
	ap := &report.Apply{Result: res, At: r.a.now().UTC().Add(-took), DurationMS: took.Milliseconds()}
	if err != nil {
		ap.Error = err.Error()
	}
	var p *Prepared
	if out != nil {
		p = out.Prepared
		for _, s := range out.Smoke {
			if !s.OK {
				ap.FailedSmoke = append(ap.FailedSmoke, s.Name)
			}
		}
	}
	r.note(report.EventApply, func(r *reporter) {
		r.last = ap
		if p == nil {
			return
		}
		if p.Topology != nil {
			ap.Serial = p.Topology.Serial
			// Take the reports prefix from a document that was applied, or
			// from a valid one when nothing was applied yet.
			if err == nil || r.loc == nil {
				r.loc = nil
				if f := p.Topology.Fleet; f != nil && f.Reports != "" {
					if loc, lerr := report.ParseLocation(f.Reports); lerr == nil {
						r.loc = &loc
					}
				}
			}
		}
		if p.Plan != nil {
			ap.ChangedFiles = len(p.Plan.Files)
			for _, f := range p.Plan.Files[:min(len(p.Plan.Files), report.MaxChanges)] {
				ap.Changes = append(ap.Changes, report.Change{Path: f.Path, Reason: f.Reason})
			}
		}
		inst := p.Instance
		r.inst = &inst
		if p.Desired != nil {
			id := p.Desired.Identity
			r.id = &id
		}
	})
}

// terminating records that the instance is being terminated; the drain
// report that follows says so.
func (r *reporter) terminating() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.terminated = true
	r.mu.Unlock()
}

// draining asks for the drain report (readiness already says draining).
func (r *reporter) draining() { r.note(report.EventDrain, nil) }

// close writes a pending report (bounded) and stops the reporter.
func (r *reporter) close() {
	if r == nil {
		return
	}
	close(r.stop)
	<-r.done
}

func (r *reporter) loop() {
	defer close(r.done)
	heartbeat := time.NewTimer(r.interval)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.stop:
			r.mu.Lock()
			pending := r.event != ""
			r.mu.Unlock()
			if pending {
				ctx, cancel := context.WithTimeout(context.Background(), reportFlushTimeout)
				r.send(ctx, "")
				cancel()
			}
			return
		case <-r.kick:
			r.send(context.Background(), "")
		case <-heartbeat.C:
			r.send(context.Background(), report.EventHeartbeat)
		}
		heartbeat.Reset(r.interval)
	}
}

// send writes the current report; the client bounds the PUT. A
// heartbeat re-sends the last report with the current state and keeps its
// event and time, so an idle node rewrites the same bytes: its object
// keeps its ETag (readers that cache by ETag skip it) while S3's
// LastModified says the node is alive.
func (r *reporter) send(ctx context.Context, event string) {
	rep, loc := r.build(event)
	if rep == nil {
		return
	}
	err := r.w.Put(ctx, *loc, rep)
	r.mu.Lock()
	was := r.failing
	r.failing = err != nil
	r.mu.Unlock()
	log := r.a.Logger.With(nodeagent.LogKeyReport, loc.URLOf(rep.InstanceID), nodeagent.LogKeyEvent, rep.Event)
	if err != nil {
		r.m.Reports.With("error").Inc()
		if !was {
			log.Warn("node report not written; applies and readiness are not affected, the next report tries again", nodeagent.LogKeyError, err.Error())
		} else {
			log.Debug("node report not written", nodeagent.LogKeyError, err.Error())
		}
		return
	}
	r.m.Reports.With("ok").Inc()
	if was {
		log.Info("node report written again")
	} else {
		log.Debug("node report written")
	}
}

// build makes the report of the current state, or nil while the node
// does not know its instance or its reports prefix yet.
func (r *reporter) build(event string) (*report.Report, *report.Location) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if event == "" {
		event = r.event
	}
	r.event = ""
	if r.loc == nil || r.inst == nil {
		return nil, nil
	}
	st := r.a.Readiness.Snapshot()
	rep := &report.Report{
		Schema: report.Schema, InstanceID: r.inst.ID, PrivateIP: r.inst.PrivateIP, AZ: r.inst.AZ, Group: r.inst.Group,
		SerialApplied: st.Serial, SerialSeen: st.SeenSerial, Releases: st.Release,
		Ready: st.Ready, Reason: st.Reason, Draining: st.Draining, Terminated: r.terminated,
		LastApply: r.last, LastError: st.LastError,
		AgentVersion: r.version, BootTime: r.boot, ReportedAt: r.lastAt, Event: r.lastEvent,
	}
	if r.lastEvent == "" {
		// Nothing happened yet that a report describes (cannot be: the
		// reporter knows the instance from an apply outcome).
		rep.Event, rep.ReportedAt = cmp.Or(event, report.EventHeartbeat), r.a.now().UTC()
	}
	if id := r.id; id != nil {
		rep.Name, rep.Role, rep.Products = id.Node, id.Role, slices.Clone(id.Products)
		if id.Group != "" {
			rep.Group = id.Group
		}
	}
	for _, s := range st.Smoke {
		rep.Smoke = append(rep.Smoke, smokeResult(s.Name, s.OK, s.Err, s.Duration))
	}
	return rep, r.loc
}

func smokeResult(name string, ok bool, err string, d time.Duration) report.SmokeResult {
	return report.SmokeResult{Name: name, OK: ok, Error: err, DurationMS: d.Milliseconds()}
}
