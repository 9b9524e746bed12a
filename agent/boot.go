package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
	"github.com/nodeagent/nodeagent/lifecycle"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/state"
	"github.com/nodeagent/nodeagent/topology"
)

// Converge takes the apply lock, replays interrupted writes, finishes or
// undoes the apply a dead process left (its journal), sweeps the temporary
// files such a process left, plans the document and applies it.
func (a *Agent) Converge(ctx context.Context, inst nodeagent.Instance, doc Document) (*Outcome, error) {
	a.seeSerial(doc)
	unlock, err := a.FS.Lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("take the apply lock in %s: %w", a.Config.StateDir, err)
	}
	defer func() { _ = unlock() }()
	if err := a.FS.Recover(); err != nil {
		return nil, fmt.Errorf("recover interrupted writes: %w", err)
	}
	recovered, adopted, err := a.recoverJournal(ctx)
	if err != nil {
		a.recordFailure(nil, err, nil)
		return nil, err
	}
	p, err := a.prepare(ctx, inst, doc, len(recovered) == 0 && adopted == nil)
	a.sweep(p)
	if err != nil {
		a.recordFailure(nil, err, nil)
		return nil, err
	}
	p.recovered, p.adopted = recovered, adopted
	return a.ApplyOnce(ctx, p)
}

// FetchResult is the outcome of one topology fetch: the document to apply
// (possibly the last-good copy, see Fetch) or why there is none.
type FetchResult struct {
	Doc Document
	Err error
}

// DiscoverAndFetch asks IMDS who this instance is and fetches the topology
// at the same time, each bounded by Config.Deadline: neither needs the
// other, so an apply waits for the slower of the two rather than both. A
// discovery error is returned as the error, at once: the fetch is
// cancelled, and no last-good copy is consulted for an apply that cannot
// happen. Otherwise the fetch's own outcome, good or not, is in the
// FetchResult.
func (a *Agent) DiscoverAndFetch(ctx context.Context) (nodeagent.Instance, FetchResult, error) {
	type fetched struct {
		f   nodeagent.Fetched
		err error
		doc Document // f decoded, when err is nil
	}
	done := make(chan fetched, 1)
	fctx, cancelFetch := context.WithTimeout(ctx, a.Config.Deadline.D())
	defer cancelFetch()
	go func() {
		r := fetched{}
		r.f, r.err = a.fetchSource(fctx)
		if r.err == nil {
			// Decoded here, while discovery may still be waiting for
			// IMDS.
			r.doc = NewDocument(r.f.Body, r.f.ETag, a.Source.String(), r.f.Format, false)
		}
		done <- r
	}()
	dctx, cancel := context.WithTimeout(ctx, a.Config.Deadline.D())
	inst, err := a.Metadata.Instance(dctx)
	cancel()
	if err != nil {
		cancelFetch()
		<-done // nothing of this apply outlives it
		return nodeagent.Instance{}, FetchResult{}, fmt.Errorf("discover instance: %w", err)
	}
	r := <-done
	if r.err == nil {
		return inst, FetchResult{Doc: r.doc}, nil
	}
	doc, err := a.document(r.f, r.err) // the last-good copy, said loudly
	return inst, FetchResult{doc, err}, nil
}

// BootResult says how a boot apply ended.
type BootResult struct {
	Outcome  *Outcome
	Attempts int
	// Lifecycle is the launch hook result sent ("CONTINUE", "ABANDON"), or
	// "" when no launch hook was pending.
	Lifecycle string
	// Refused is the fetched document's refusal when the node converged to
	// its last-good copy instead: the node serves, but the push was bad.
	Refused error
}

// bootRetry spaces the retries of transient failures at boot (IMDS or the
// source answering 5xx, throttling, refusing connections): 1 s doubling to
// 30 s, jittered, until --deadline.
var bootRetry = backoff.Policy{Base: time.Second, Max: 30 * time.Second}

// abandonGrace bounds what a boot that gave up still does to complete its
// launch hook with ABANDON: learn the instance id and the hook's name when
// the outage kept them from it (until at most one more --deadline after the
// retry window). Without them the hook is left to its own heartbeat timeout
// and default result.
const abandonGrace = 30 * time.Second

func (a *Agent) abandonGrace() time.Duration { return min(abandonGrace, a.Config.Deadline.D()) }

// graceRetry spaces the tries within abandonGrace: short, so that the
// moment the outage ends is not missed by a long backoff step.
var graceRetry = backoff.Policy{Base: 500 * time.Millisecond, Max: 2 * time.Second}

// Boot converges the node and, when its group has a launch hook that has
// not been completed yet, completes it: CONTINUE once the node is ready,
// ABANDON after Config.LaunchAttempts failed applies, or when transient
// failures of IMDS or the source (5xx, throttling, refused connections)
// outlast Config.Deadline, so that the Auto Scaling group replaces the
// instance. Those are retried with backoff until then; permanent failures
// (403, no such key, an invalid document) fail at once. Heartbeats keep the
// hook alive while the work runs. Boot returns only when the node is ready
// or has given up. A cancelled ctx (the agent is stopping, not the
// instance) completes nothing.
func (a *Agent) Boot(ctx context.Context) (*BootResult, error) {
	res := &BootResult{}
	// ABANDON, if it comes to that, is sent at the latest one grace after
	// the retry window ends.
	graceUntil := time.Now().Add(a.Config.Deadline.D() + a.abandonGrace())
	wctx, cancelWindow := context.WithTimeout(ctx, a.Config.Deadline.D())
	inst, first, err := a.discoverRetrying(wctx)
	outOfTime := wctx.Err() != nil
	cancelWindow()
	if err != nil {
		if a.mayAbandon(ctx, err, outOfTime) {
			return a.abandon(ctx, res, nil, err, graceUntil)
		}
		return nil, err
	}
	a.Logger.Info("discovered instance", nodeagent.LogKeyInstance, inst.ID, nodeagent.LogKeyPrivateIP, inst.PrivateIP, nodeagent.LogKeyAZ, inst.AZ,
		nodeagent.LogKeyGroup, inst.Group, nodeagent.LogKeyOS, inst.OSFamily, nodeagent.LogKeyMemoryMB, inst.MemoryBytes>>20)

	var hook *nodeagent.LifecycleHook
	stopHeartbeats := func() {}
	defer func() { stopHeartbeats() }()

	attempts := 1
	gaveUp := false // transient failures outlasted the deadline
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		res.Attempts = attempt
		actx, cancel := context.WithTimeout(ctx, a.Config.Deadline.D())
		doc, err := first.Doc, first.Err
		if attempt > 1 {
			doc, err = a.Fetch(actx)
		} else if err != nil {
			gaveUp = a.mayAbandon(ctx, err, outOfTime)
		}
		if err == nil {
			doc = a.bootDocument(actx, &a.rollouts, inst, doc)
		}
		if err == nil {
			if hook == nil {
				if h, ok := a.hookFor(inst, doc); ok {
					a.beforeChange()
					hook = &h
					attempts = a.Config.LaunchAttempts
					stopHeartbeats = a.startHeartbeats(ctx, h)
				}
			}
			var out *Outcome
			out, err = a.Converge(actx, inst, doc)
			if refused := new(RefusedError); errors.As(err, &refused) && !doc.Stale {
				res.Refused = err
				out, err = a.convergeLastGood(actx, inst, err)
			}
			res.Outcome = out
			if err == nil && out.Ready {
				cancel()
				lastErr = nil
				break
			}
			if err == nil {
				err = errors.New("apply succeeded but the node is not ready: " + a.Readiness.Snapshot().Reason)
			}
		}
		cancel()
		lastErr = err
		a.beforeChange() // a retry, or the launch hook's ABANDON, follows
		a.Logger.Error("boot apply failed", nodeagent.LogKeyAttempt, attempt, nodeagent.LogKeyAttempts, attempts, nodeagent.LogKeyError, err.Error())
		if attempt < attempts {
			// Back off 5-10 s, then 10-20 s, … (jittered).
			wait := backoff.Policy{Base: 10 * time.Second, Max: time.Minute}.Delay(attempt - 1)
			if serr := backoff.Sleep(ctx, wait); serr != nil {
				lastErr = fmt.Errorf("%w (gave up waiting to retry: %w)", lastErr, serr)
				attempt = attempts
			}
		}
	}
	stopHeartbeats()

	if hook == nil && gaveUp {
		return a.abandon(ctx, res, &inst, lastErr, graceUntil)
	}
	if hook != nil && (lastErr == nil || !errors.Is(ctx.Err(), context.Canceled)) {
		result := nodeagent.LifecycleContinue
		if lastErr != nil {
			result = nodeagent.LifecycleAbandon
		}
		res.Lifecycle = result
		if err := a.completeHook(*hook, result, true); err != nil {
			return res, errors.Join(lastErr, err)
		}
	}
	if lastErr != nil {
		if res.Lifecycle == nodeagent.LifecycleAbandon {
			return res, fmt.Errorf("gave up after %d attempts, launch hook completed with ABANDON so the group replaces this instance: %w", res.Attempts, lastErr)
		}
		return res, lastErr
	}
	return res, nil
}

// discoverRetrying is DiscoverAndFetch retried with backoff while IMDS or
// the source fail transiently, until ctx ends. Once the instance is known
// only the fetch is retried. A fetch that still fails is returned in the
// FetchResult, as DiscoverAndFetch does.
func (a *Agent) discoverRetrying(ctx context.Context) (nodeagent.Instance, FetchResult, error) {
	var inst nodeagent.Instance
	var fr FetchResult
	known := false
	n, err := backoff.Retry(ctx, bootRetry, transient, func(ctx context.Context) error {
		if !known {
			i, r, err := a.DiscoverAndFetch(ctx)
			if err != nil {
				a.logTransient(ctx, err)
				return err
			}
			inst, fr, known = i, r, true
		} else {
			doc, err := a.Fetch(ctx)
			fr = FetchResult{Doc: doc, Err: err}
		}
		if fr.Err != nil && transient(fr.Err) {
			a.logTransient(ctx, fr.Err)
			return fr.Err
		}
		return nil
	})
	if n > 1 && err == nil && fr.Err == nil {
		a.Logger.Info("boot: transient failures are over", nodeagent.LogKeyAttempts, n)
	}
	if !known {
		return inst, fr, err
	}
	if fr.Err != nil && err != nil {
		fr.Err = err // the last error, and why the retries stopped
	}
	return inst, fr, nil
}

func (a *Agent) logTransient(ctx context.Context, err error) {
	if !transient(err) || ctx.Err() != nil {
		return
	}
	a.beforeChange() // a wait to retry follows
	attrs := []any{nodeagent.LogKeyError, err.Error()}
	if dl, ok := ctx.Deadline(); ok {
		attrs = append(attrs, nodeagent.LogKeyRetryUntil, dl.UTC().Format(time.RFC3339))
	}
	a.Logger.Warn("boot: transient failure; retrying with backoff until --deadline", attrs...)
}

// mayAbandon says whether a boot that failed with err gave up on a
// transient outage (rather than a permanent failure, or being stopped): then
// the launch hook is completed with ABANDON.
func (a *Agent) mayAbandon(ctx context.Context, err error, outOfTime bool) bool {
	if errors.Is(ctx.Err(), context.Canceled) || errors.As(err, new(*RefusedError)) {
		return false
	}
	return transient(err) || outOfTime
}

// abandon completes the launch hook with ABANDON for a boot that gave up on
// a transient outage. inst is nil when the outage kept the boot from
// learning who the instance is; abandon then tries until until to learn it,
// and the hook's name from the topology (or the last-good copy).
func (a *Agent) abandon(ctx context.Context, res *BootResult, inst *nodeagent.Instance, cause error, until time.Time) (*BootResult, error) {
	a.beforeChange()
	gctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), until)
	defer cancel()
	a.Logger.Error("boot gave up: transient failures outlasted --deadline; completing the launch hook with ABANDON",
		nodeagent.LogKeyDeadline, a.Config.Deadline.D().String(), nodeagent.LogKeyError, cause.Error())
	var doc Document
	_, err := backoff.Retry(gctx, graceRetry, func(error) bool { return true }, func(ctx context.Context) error {
		if inst == nil {
			i, err := a.Metadata.Instance(ctx)
			if err != nil {
				return fmt.Errorf("discover instance: %w", err)
			}
			inst = &i
		}
		d, err := a.Fetch(ctx)
		if err != nil {
			return err
		}
		doc = d
		return nil
	})
	if err != nil {
		a.Logger.Error("launch hook not completed: the instance or its launch hook is still unknown; Auto Scaling applies the hook's default result when its heartbeat timeout passes",
			nodeagent.LogKeyGrace, a.abandonGrace().String(), nodeagent.LogKeyError, err.Error())
		return res, fmt.Errorf("gave up at --deadline %s on a transient failure (the launch hook, if any, was not completed: %v): %w",
			a.Config.Deadline.D(), err, cause)
	}
	h, ok := a.hookFor(*inst, doc)
	if !ok {
		return res, fmt.Errorf("gave up at --deadline %s on a transient failure: %w", a.Config.Deadline.D(), cause)
	}
	res.Lifecycle = nodeagent.LifecycleAbandon
	if err := a.completeHook(h, nodeagent.LifecycleAbandon, true); err != nil {
		return res, errors.Join(cause, err)
	}
	return res, fmt.Errorf("gave up at --deadline %s on a transient failure, launch hook completed with ABANDON so the group replaces this instance: %w",
		a.Config.Deadline.D(), cause)
}

// transient reports whether err is a failure that may pass if the work is
// tried again later: the adapters that know say so (metadata.Error,
// source.Error); Auto Scaling's are classified by package lifecycle. A
// refused document is never transient.
func transient(err error) bool {
	if err == nil || errors.As(err, new(*RefusedError)) {
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	return lifecycle.Transient(err)
}

// convergeLastGood is the answer to a refused document at boot: a node
// that has a last-good copy converges to it and serves, and reports the
// refused document, instead of staying out of service over one bad push.
func (a *Agent) convergeLastGood(ctx context.Context, inst nodeagent.Instance, refused error) (*Outcome, error) {
	doc, err := a.LastApplied()
	if err != nil {
		return nil, refused
	}
	a.Logger.Error("topology refused; converging to the last-good copy instead", nodeagent.LogKeyError, refused.Error(), nodeagent.LogKeyPath, a.statePath(state.LastGoodFile))
	out, err := a.Converge(ctx, inst, doc)
	if err != nil {
		return out, fmt.Errorf("%w; the last-good copy failed too: %w", refused, err)
	}
	a.Readiness.Update(func(s *readiness.Status) { s.LastError, s.LastErrorAt = refused.Error(), a.now() })
	return out, nil
}

// hookFor finds the launch hook still pending for this instance, if any. An
// invalid document has none here; Converge reports it in full.
func (a *Agent) hookFor(inst nodeagent.Instance, doc Document) (nodeagent.LifecycleHook, bool) {
	if a.Hooks == nil {
		return nodeagent.LifecycleHook{}, false
	}
	t, err := doc.load()
	if err != nil {
		return nodeagent.LifecycleHook{}, false
	}
	id, err := topology.Resolve(t, inst, a.overrides())
	if err != nil {
		return nodeagent.LifecycleHook{}, false
	}
	return a.pendingLaunchHook(inst, id)
}

func (a *Agent) startHeartbeats(ctx context.Context, h nodeagent.LifecycleHook) func() {
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lifecycle.Heartbeats(hctx, a.Hooks, h, a.Config.HeartbeatInterval.D(), a.Logger)
	}()
	return func() { cancel(); <-done }
}

// hookCompleteWithin bounds the completion of a lifecycle action, retries
// of transient Auto Scaling failures included.
const hookCompleteWithin = time.Minute

// completeHook completes a lifecycle action with its own deadline, so that
// an apply that ran out of time can still tell Auto Scaling; transient
// failures (5xx, throttling) are retried with backoff until then. A launch
// hook's completion is recorded in lifecycle.json, so that no later process
// completes it again for this instance.
func (a *Agent) completeHook(h nodeagent.LifecycleHook, result string, launch bool) error {
	a.beforeChange()
	ctx, cancel := context.WithTimeout(context.Background(), hookCompleteWithin)
	defer cancel()
	_, err := backoff.Retry(ctx, bootRetry, lifecycle.Transient, func(ctx context.Context) error {
		return a.Hooks.Complete(ctx, h, result)
	})
	record := func(result string) error {
		if !launch {
			return nil
		}
		return a.stateDir().WriteLifecycle(state.Lifecycle{Hook: h, Result: result, At: a.now().UTC()})
	}
	if errors.Is(err, lifecycle.ErrNoActiveAction) {
		// The hook already timed out or was completed elsewhere: there is
		// nothing left to tell Auto Scaling.
		a.Logger.Warn("lifecycle hook has no active action; nothing to complete", nodeagent.LogKeyGroup, h.Group, nodeagent.LogKeyHook, h.Hook, nodeagent.LogKeyInstance, h.InstanceID, nodeagent.LogKeyResult, result)
		return record("none active")
	}
	if err != nil {
		return err // the client names the hook, group, instance and result
	}
	a.Logger.Info("lifecycle hook completed", nodeagent.LogKeyGroup, h.Group, nodeagent.LogKeyHook, h.Hook, nodeagent.LogKeyInstance, h.InstanceID, nodeagent.LogKeyResult, result)
	return record(result)
}
