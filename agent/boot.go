package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/lifecycle"
	"github.com/nodeagent/nodeagent/readiness"
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
	p, err := a.Prepare(ctx, inst, doc)
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
	}
	done := make(chan fetched, 1)
	fctx, cancelFetch := context.WithTimeout(ctx, a.Config.Deadline.D())
	defer cancelFetch()
	go func() {
		f, err := a.Source.Fetch(fctx, "")
		done <- fetched{f, err}
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
	doc, err := a.document(r.f, r.err)
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

// Boot converges the node and, when its group has a launch hook that has
// not been completed yet, completes it: CONTINUE once the node is ready,
// ABANDON after Config.LaunchAttempts failed applies so that the Auto
// Scaling group replaces the instance. Heartbeats keep the hook alive while
// the work runs. Boot returns only when the node is ready or has given up.
func (a *Agent) Boot(ctx context.Context) (*BootResult, error) {
	inst, first, err := a.DiscoverAndFetch(ctx)
	if err != nil {
		return nil, err
	}
	a.Logger.Info("discovered instance", "instance_id", inst.ID, "private_ip", inst.PrivateIP, "az", inst.AZ,
		"group", inst.Group, "os", inst.OSFamily, "memory_mb", inst.MemoryBytes>>20)

	res := &BootResult{}
	var hook *nodeagent.LifecycleHook
	stopHeartbeats := func() {}
	defer func() { stopHeartbeats() }()

	attempts := 1
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		res.Attempts = attempt
		actx, cancel := context.WithTimeout(ctx, a.Config.Deadline.D())
		doc, err := first.Doc, first.Err
		if attempt > 1 {
			doc, err = a.Fetch(actx)
		}
		if err == nil {
			if hook == nil {
				if h, ok := a.hookFor(inst, doc); ok {
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
		a.Logger.Error("boot apply failed", "attempt", attempt, "of", attempts, "error", err.Error())
		if attempt < attempts {
			// Back off 5s, 10s, … with up to 50% jitter.
			base := time.Duration(attempt) * 5 * time.Second
			wait := base + time.Duration(rand.Int64N(int64(base/2)))
			select {
			case <-ctx.Done():
				lastErr = fmt.Errorf("%w (gave up waiting to retry: %w)", lastErr, ctx.Err())
				attempt = attempts
			case <-time.After(wait):
			}
		}
	}
	stopHeartbeats()

	if hook != nil {
		result := nodeagent.LifecycleContinue
		if lastErr != nil {
			result = nodeagent.LifecycleAbandon
		}
		res.Lifecycle = result
		if err := a.completeHook(*hook, result); err != nil {
			return res, errors.Join(lastErr, err)
		}
	}
	if lastErr != nil {
		if hook != nil {
			return res, fmt.Errorf("gave up after %d attempts, launch hook completed with ABANDON so the group replaces this instance: %w", res.Attempts, lastErr)
		}
		return res, lastErr
	}
	return res, nil
}

// convergeLastGood is the answer to a refused document at boot: a node
// that has a last-good copy converges to it and serves, and reports the
// refused document, instead of staying out of service over one bad push.
func (a *Agent) convergeLastGood(ctx context.Context, inst nodeagent.Instance, refused error) (*Outcome, error) {
	doc, err := a.LastApplied()
	if err != nil {
		return nil, refused
	}
	a.Logger.Error("topology refused; converging to the last-good copy instead", "error", refused.Error(), "copy", a.statePath("topology.json"))
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

// completeHook completes a lifecycle action with its own short deadline, so
// that an apply that ran out of time can still tell Auto Scaling.
func (a *Agent) completeHook(h nodeagent.LifecycleHook, result string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := a.Hooks.Complete(ctx, h, result)
	if errors.Is(err, lifecycle.ErrNoActiveAction) {
		// The hook already timed out or was completed elsewhere: there is
		// nothing left to tell Auto Scaling.
		a.Logger.Warn("lifecycle hook has no active action; nothing to complete", "group", h.Group, "hook", h.Hook, "instance_id", h.InstanceID, "result", result)
		return a.writeState("lifecycle.json", lifecycleRecord{Hook: h, Result: "none active", At: a.now().UTC()})
	}
	if err != nil {
		return fmt.Errorf("complete lifecycle hook %s of group %s with %s: %w", h.Hook, h.Group, result, err)
	}
	a.Logger.Info("lifecycle hook completed", "group", h.Group, "hook", h.Hook, "instance_id", h.InstanceID, "result", result)
	return a.writeState("lifecycle.json", lifecycleRecord{Hook: h, Result: result, At: a.now().UTC()})
}
