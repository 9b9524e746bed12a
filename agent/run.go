package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/readiness"
)

// RunOptions are the run loop's outside world.
type RunOptions struct {
	Metrics *Metrics
	// Recheck asks for an immediate check of the source (SIGHUP).
	Recheck <-chan struct{}
	// Terminate asks the agent to stop (SIGTERM): it drains only when the
	// instance is terminating (see Run).
	Terminate <-chan struct{}
	// Notifier receives WATCHDOG=1 pings and STOPPING=1; nil for none.
	Notifier readiness.Notifier
	// Watchdog is the systemd watchdog ping interval; 0 disables pings.
	Watchdog time.Duration
	// LifecycleInterval spaces checks of the instance's target lifecycle
	// state (default DefaultLifecycleInterval).
	LifecycleInterval time.Duration
	// Listener serves the endpoints; nil means listen on Config.Listen.
	Listener net.Listener
	// Reports writes the node report when the applied topology names a
	// fleet.reports prefix; nil writes none. ReportInterval is the
	// heartbeat (default DefaultReportInterval); AgentVersion goes into
	// the report.
	Reports        ReportWriter
	ReportInterval time.Duration
	AgentVersion   string
}

// DefaultLifecycleInterval spaces checks of the target lifecycle state. A
// terminating instance waits in Terminating:Wait for the terminate hook
// (its heartbeat timeout is 30 s to 2 h, one hour by default), and without
// a hook systemd's SIGTERM drains the node anyway, so 15 s of detection
// latency before --drain-time costs nothing. Each check is an IMDS request
// that wakes the idle process; at 5 s these checks were six of every seven
// wake-ups at the default 30 s poll interval.
const DefaultLifecycleInterval = 15 * time.Second

// Run applies at start, serves /ready, /live, /status and /metrics, and
// re-applies whenever the topology changes, until it is stopped. A bad
// document is never applied; the node keeps the last good state and
// reports the failure.
//
// Stop is not terminate. When the instance's target lifecycle state turns
// Terminated, or a stop is asked for (SIGTERM: ctx ends or o.Terminate) and
// IMDS, asked at once, says the instance is terminating, Run drains: 503
// on the health path, --drain-time, the terminate hook, exit. Any other
// stop (systemctl stop or restart, a package upgrade) exits at once and
// leaves readiness, the health file and Auto Scaling alone, so the next
// process resumes serving without the load balancer seeing a flap.
func (a *Agent) Run(ctx context.Context, o RunOptions) error {
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.LifecycleInterval <= 0 {
		o.LifecycleInterval = DefaultLifecycleInterval
	}
	a.Readiness.Update(func(s *readiness.Status) {
		if s.Reason == "" {
			s.Reason = "booting"
		}
	})
	srv, err := a.serve(o)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	w := &worker{a: a, m: o.Metrics, rep: a.startReporter(o)}
	defer w.rep.close()
	// The first apply is the boot apply: launch hook included.
	w.start(ctx, func(ctx context.Context) { w.boot(ctx) })

	changes, stopWatch, err := a.watchSource(ctx, o)
	if err != nil {
		w.wait()
		return err
	}
	defer stopWatch()
	terminated := a.watchLifecycle(ctx, o.LifecycleInterval)

	var settle, splay *time.Timer
	var settleC, splayC <-chan time.Time
	var ping <-chan time.Time
	if o.Watchdog > 0 && o.Notifier != nil {
		t := time.NewTicker(o.Watchdog)
		defer t.Stop()
		ping = t.C
	}
	pending := false
	seen := make(chan struct{}, 1) // a poll found a changed document
	startSettle := func() {
		if settle == nil {
			settle = time.NewTimer(a.Config.Settle.D())
		} else {
			settle.Reset(a.Config.Settle.D())
		}
		settleC = settle.C
	}
	for {
		select {
		case <-ctx.Done():
			return a.stop(w, o)
		case <-o.Terminate:
			return a.stop(w, o)
		case <-terminated:
			w.rep.terminating()
			return a.drain(w, o, "instance lifecycle state is Terminated")
		case <-ping:
			if w.healthy(a.Config.BootDeadline()) {
				_ = o.Notifier.Notify("WATCHDOG=1")
			}
		case why := <-changes:
			a.Logger.Debug("topology source event", nodeagent.LogKeyReason, why)
			if why == "poll" {
				// A poll is one conditional GET, at once; only a changed
				// document goes through settle and splay. While a change
				// is on its way the poll is skipped: its check is coming.
				if settleC == nil && !pending && !w.busy() {
					w.start(ctx, func(ctx context.Context) { w.poll(ctx, seen) })
				}
				continue
			}
			startSettle()
		case <-seen:
			a.Logger.Debug("topology source event", nodeagent.LogKeyReason, "poll found a change")
			startSettle()
		case <-o.Recheck:
			a.Logger.Info("re-checking the topology source now (SIGHUP)")
			w.start(ctx, func(ctx context.Context) { w.check(ctx, false) })
		case <-settleC:
			settleC = nil
			if pending {
				continue // a splayed apply is already coming
			}
			pending = true
			d := a.splay()
			a.Logger.Debug("settled; waiting the splay before checking the source", nodeagent.LogKeySplay, d.String())
			splay = time.NewTimer(d)
			splayC = splay.C
		case <-splayC:
			splayC, pending = nil, false
			w.start(ctx, func(ctx context.Context) { w.check(ctx, true) })
		}
	}
}

func (a *Agent) splay() time.Duration {
	max := a.Config.Splay.D()
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(max)))
}

// serve starts the health, readiness, status and metrics endpoints.
func (a *Agent) serve(o RunOptions) (*http.Server, error) {
	ln := o.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", a.Config.Listen)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", a.Config.Listen, err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", o.Metrics.Registry)
	mux.Handle("/", a.Readiness.Handler(!a.Config.StatusPublic))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Logger.Error("endpoint server stopped", nodeagent.LogKeyError, err.Error())
		}
	}()
	a.Logger.Info("serving /ready /live /status /metrics", nodeagent.LogKeyListen, ln.Addr().String())
	return srv, nil
}

// watchSource turns source changes into events: the source's own watch
// when it has one (a file:// source watches its directory with fsnotify),
// a jittered poll otherwise.
func (a *Agent) watchSource(ctx context.Context, o RunOptions) (<-chan string, func(), error) {
	out := make(chan string, 1)
	send := func(why string) {
		select {
		case out <- why:
		default: // one pending event is enough: the check reads the latest
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }

	if w, ok := a.Source.(nodeagent.Watcher); ok {
		// Counted by the check that follows, once per settled burst, not
		// once per raw event.
		if err := w.Watch(ctx, send); err != nil {
			cancel()
			return nil, nil, err
		}
		return out, stop, nil
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		interval := a.Config.PollInterval.D()
		for {
			// ±10% jitter keeps a fleet's polls from lining up.
			jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(interval))
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval + jitter):
				send("poll")
			}
		}
	}()
	return out, stop, nil
}

// watchLifecycle polls the target lifecycle state and closes the returned
// channel once it says Terminated.
func (a *Agent) watchLifecycle(ctx context.Context, every time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				cctx, cancel := context.WithTimeout(ctx, every)
				state, err := a.Metadata.LifecycleState(cctx)
				cancel()
				if err != nil {
					a.Logger.Warn("read target lifecycle state", nodeagent.LogKeyError, err.Error())
					continue
				}
				if state == "Terminated" {
					close(done)
					return
				}
			}
		}
	}()
	return done
}

// stopLifecycleTimeout bounds the question "is this instance terminating?"
// that a stop asks IMDS: systemd waits for the answer.
const stopLifecycleTimeout = 3 * time.Second

// stop answers SIGTERM: a drain when IMDS says the instance is terminating
// (target lifecycle state Terminated, which it says from the start of the
// termination, through the terminate hook's wait), otherwise a prompt exit
// that changes nothing the load balancer or Auto Scaling sees. When IMDS
// cannot answer in time the stop is taken as a plain stop: draining a node
// that is only restarting would flap the load balancer, while a terminating
// node's hook still completes by its own heartbeat timeout.
func (a *Agent) stop(w *worker, o RunOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopLifecycleTimeout)
	state, err := a.Metadata.LifecycleState(ctx)
	cancel()
	if err == nil && state == "Terminated" {
		return a.drain(w, o, "stop requested (SIGTERM) and the instance is terminating (target lifecycle state Terminated)")
	}
	attrs := []any{"lifecycle_state", state}
	if err != nil {
		attrs = append(attrs, nodeagent.LogKeyError, err.Error())
	}
	a.Logger.Info("stop requested (SIGTERM) and the instance is not terminating: exiting without draining; readiness and the ELB health file stay for the next start", attrs...)
	w.cancelAndWait()
	if o.Notifier != nil {
		_ = o.Notifier.Notify("STOPPING=1")
	}
	return nil
}

// drain takes the node out of service: readiness goes 503 first, then the
// agent waits the drain time so the load balancer stops sending, then it
// completes the terminate hook and tells systemd it is stopping.
func (a *Agent) drain(w *worker, o RunOptions, why string) error {
	a.Logger.Warn("draining", nodeagent.LogKeyReason, why, nodeagent.LogKeyDrainTime, a.Config.DrainTime.D().String())
	a.Readiness.Drain()
	o.Metrics.Ready.Set(0)
	w.rep.draining()
	w.cancelAndWait()
	// Keep the watchdog fed while the load balancer drains: the unit is
	// still running, and a watchdog kill now would lose the terminate hook.
	wait := time.NewTimer(a.Config.DrainTime.D())
	var ping <-chan time.Time
	if o.Watchdog > 0 && o.Notifier != nil {
		t := time.NewTicker(o.Watchdog)
		defer t.Stop()
		ping = t.C
	}
	for waiting := true; waiting; {
		select {
		case <-wait.C:
			waiting = false
		case <-ping:
			_ = o.Notifier.Notify("WATCHDOG=1")
		}
	}
	var err error
	if id := w.identity(); id != nil && id.TerminateHook != "" && a.Hooks != nil {
		h := nodeagent.LifecycleHook{Group: id.Group, Hook: id.TerminateHook, InstanceID: w.instanceID()}
		err = a.completeHook(h, nodeagent.LifecycleContinue, false)
	}
	if o.Notifier != nil {
		_ = o.Notifier.Notify("STOPPING=1")
	}
	a.Logger.Info("drained; exiting")
	return err
}

// worker runs one apply at a time off the main loop, so that the loop keeps
// answering signals and pinging the watchdog while an apply runs.
type worker struct {
	a   *Agent
	m   *Metrics
	rep *reporter // nil: no reports

	mu      sync.Mutex
	running bool
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	inst    *nodeagent.Instance
	id      *nodeagent.Identity
	etag    string
	rerun   func(context.Context)
	parent  context.Context
}

// start runs f unless an apply is running; then f runs right after it.
func (w *worker) start(ctx context.Context, f func(context.Context)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		w.rerun, w.parent = f, ctx
		return
	}
	w.launch(ctx, f)
}

func (w *worker) launch(ctx context.Context, f func(context.Context)) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.a.Config.BootDeadline())
	w.running, w.started, w.cancel, w.done = true, time.Now(), cancel, make(chan struct{})
	done := w.done
	go func() {
		defer close(done)
		f(actx)
		cancel()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.running = false
		if next := w.rerun; next != nil {
			w.rerun = nil
			w.launch(w.parent, next)
		}
	}()
}

// healthy reports whether the loop should keep pinging the watchdog: no
// apply is running past its deadline.
func (w *worker) healthy(deadline time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.running || time.Since(w.started) < deadline+30*time.Second
}

// busy reports whether an apply or check is running or queued; a poll
// then has nothing to add.
func (w *worker) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running || w.rerun != nil
}

func (w *worker) wait() {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (w *worker) cancelAndWait() {
	w.mu.Lock()
	w.rerun = nil
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if done != nil {
		<-done
	}
}

func (w *worker) identity() *nodeagent.Identity {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id
}

func (w *worker) instanceID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inst == nil {
		return ""
	}
	return w.inst.ID
}

// remember keeps the identity of the last apply, and the ETag of a document
// that needs no second look: one applied, or one refused as invalid. A
// document whose apply failed (a release download, a service, a smoke
// check) keeps no ETag, so the next poll tries it again.
func (w *worker) remember(out *Outcome, etag string, settled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if out != nil && out.Prepared != nil {
		inst, id := out.Prepared.Instance, out.Prepared.Desired.Identity
		w.inst, w.id = &inst, &id
	}
	if settled {
		w.etag = etag
	} else {
		w.etag = ""
	}
}

func (w *worker) boot(ctx context.Context) {
	start := time.Now()
	res, err := w.a.Boot(ctx)
	var out *Outcome
	if res != nil {
		out = res.Outcome
	}
	etag := ""
	if out != nil && out.Prepared != nil {
		etag = out.Prepared.ETag
	}
	w.finish(out, etag, err, start)
}

// poll does one conditional GET of the document and tells seen when it
// changed; the check after settle and splay fetches and applies it.
func (w *worker) poll(ctx context.Context, seen chan<- struct{}) {
	w.mu.Lock()
	etag, inst := w.etag, w.inst
	w.mu.Unlock()
	if inst != nil && etag != "" {
		if _, changed := w.fetch(ctx, etag); !changed && !w.a.heldRolloutChanged(ctx) {
			return
		}
	}
	// Changed, or nothing settled to compare with (no boot yet, or the
	// last apply failed and is to be retried).
	select {
	case seen <- struct{}{}:
	default:
	}
}

// fetch does a conditional GET of the document and reports whether it
// changed. An unreachable source is counted, logged and shown in /status;
// the node keeps its last good state.
func (w *worker) fetch(ctx context.Context, etag string) (nodeagent.Fetched, bool) {
	a := w.a
	f, err := a.Source.Fetch(ctx, etag)
	if err != nil {
		w.m.Polls.With("error").Inc()
		a.Logger.Error("topology source unreachable; keeping the last good state", nodeagent.LogKeySource, a.Source.String(), nodeagent.LogKeyError, err.Error())
		a.Readiness.Update(func(s *readiness.Status) { s.LastError, s.LastErrorAt = err.Error(), a.now() })
		return f, false
	}
	if f.NotModified {
		w.m.Polls.With("not_modified").Inc()
		return f, false
	}
	return f, true
}

// check fetches the document (conditionally) and applies it when it
// changed. A document that cannot be applied leaves the last good state.
func (w *worker) check(ctx context.Context, counted bool) {
	a := w.a
	w.mu.Lock()
	etag, inst := w.etag, w.inst
	w.mu.Unlock()
	if inst == nil {
		// The boot apply never got as far as discovery: boot again.
		w.boot(ctx)
		return
	}
	f, changed := w.fetch(ctx, etag)
	var doc Document
	switch held := a.rollouts.holding(); {
	case changed:
		if counted {
			w.m.Polls.With("changed").Inc()
		}
		doc = NewDocument(f.Body, f.ETag, a.Source.String(), f.Format, false)
	case f.NotModified && held != nil:
		doc = *held // its rollout may have reached this node
	default:
		return
	}
	doc, apply := w.rolloutDocument(ctx, *inst, doc)
	if !apply {
		return
	}
	start := time.Now()
	out, err := a.Converge(ctx, *inst, doc)
	w.finish(out, doc.ETag, err, start)
}

func (w *worker) finish(out *Outcome, etag string, err error, start time.Time) {
	a, m := w.a, w.m
	took := time.Since(start)
	refused := errors.As(err, new(*RefusedError))
	w.remember(out, etag, err == nil || refused)
	w.rep.applied(out, err, took)
	st := a.Readiness.Snapshot()
	m.SerialSeen.Set(float64(st.SeenSerial))
	switch {
	case err == nil:
		m.observeApply("ok", took)
		m.SerialApplied.Set(float64(st.Serial))
		m.LastSuccess.Set(float64(a.now().Unix()))
	case refused:
		m.observeApply("refused", took)
		a.Logger.Error("topology not applied; the node keeps its last good state", nodeagent.LogKeyError, err.Error(), nodeagent.LogKeyReady, st.Ready)
	default:
		m.observeApply("failed", took)
		a.Logger.Error("apply failed; the node keeps its last good state", nodeagent.LogKeyError, err.Error(), nodeagent.LogKeyReady, st.Ready)
	}
	for _, r := range st.Smoke {
		v := 0.0
		if r.OK {
			v = 1
		}
		m.Smoke.With(r.Name).Set(v)
	}
	if st.Ready {
		m.Ready.Set(1)
	} else {
		m.Ready.Set(0)
	}
	// What an apply allocated (documents, rendered files, diffs, archive
	// buffers) is garbage now, and the next apply may be hours away: give
	// it back to the OS at once rather than keep it resident until the
	// scavenger trickles it out. One forced GC per apply is cheap.
	debug.FreeOSMemory()
}
