package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/source"
)

// Staged rollouts, the node's side. A serial published with `topology
// publish --rollout` has a rollout object beside the topology key
// (rollouts/<serial>.json). Before applying a fetched document the node
// reads it: no object (or one for another document) means apply at once;
// an object that has reached the node's wave, or is done, means apply;
// otherwise the node keeps what it has and holds the document back,
// polling the rollout object (one conditional GET per poll) until its wave
// comes, the rollout halts for good or a newer serial replaces it. A node
// that boots with nothing applied while it is held back converges to the
// previous serial, kept by publish under history/.

// rolloutCache is the last rollout object read, so that the next read of
// the same serial is a conditional GET.
type rolloutCache struct {
	mu     sync.Mutex
	serial int64
	etag   string
	obj    *rollout.Rollout // nil: no object for serial
	// held is the document held back by its rollout; nil when none.
	held *Document
}

// gate says what to do with a fetched document.
type gate struct {
	hold     bool
	serial   int64
	previous int64 // the rollout's previous serial, when held
	why      string
}

// beside is the source of an object beside the topology document.
func (a *Agent) beside(rel string) (nodeagent.TopologySource, error) {
	if a.Source == nil {
		return nil, errors.New("no topology source")
	}
	return source.Beside(a.Source, rel)
}

// rolloutGate decides whether the node applies doc now. It reads the
// rollout object of doc's serial (conditionally, through c). A document
// that does not decode, a serial the node already applied, a source with
// nothing beside it and a serial without a rollout object are applied.
// When the object cannot be read, a node that serves keeps what it has
// (hasState); one with nothing applied applies the document.
func (a *Agent) rolloutGate(ctx context.Context, c *rolloutCache, inst nodeagent.Instance, doc Document, hasState bool) gate {
	t, err := doc.load()
	if err != nil {
		return gate{}
	}
	g := gate{serial: t.Serial}
	if hasState && a.Readiness.Snapshot().Serial >= t.Serial {
		return g
	}
	src, err := a.beside(rollout.Rel(t.Serial))
	if err != nil {
		return g
	}
	c.mu.Lock()
	etag, cached := "", c.obj
	if c.serial == t.Serial {
		etag = c.etag
	} else {
		cached = nil
	}
	c.mu.Unlock()
	f, err := src.Fetch(ctx, etag)
	var obj *rollout.Rollout
	switch {
	case err != nil && source.IsNotFound(err):
		c.set(t.Serial, "", nil)
		return g
	case err != nil && forbidden(err):
		// Without s3:ListBucket S3 answers a missing object 403, not
		// 404: the agent cannot tell "no rollout" from "not allowed".
		// It applies, as agents did before rollouts, and says loudly what
		// to allow.
		a.Logger.Error("rollout object not readable (403); applying the serial at once: allow the instance profile s3:GetObject on rollouts/* and history/* beside the topology, and s3:ListBucket with the prefix rollouts/ (README, Staged rollouts)",
			LogKeySerial, t.Serial, LogKeySource, src.String(), nodeagent.LogKeyError, err.Error())
		return g
	case err != nil:
		if !hasState {
			a.Logger.Error("rollout object unreadable; a node with nothing applied applies the document", LogKeySerial, t.Serial, nodeagent.LogKeyError, err.Error())
			return g
		}
		return gate{hold: true, serial: t.Serial, why: "its rollout object is unreadable: " + err.Error()}
	case f.NotModified && cached != nil:
		obj = cached
	default:
		obj, err = rollout.Decode(f.Body, src.String())
		if err != nil {
			if !hasState {
				return g
			}
			return gate{hold: true, serial: t.Serial, why: err.Error()}
		}
		c.set(t.Serial, f.ETag, obj)
	}
	if obj.Serial != t.Serial || obj.DocumentSHA256 != rollout.Digest(doc.Body) {
		// Left behind by a publish that lost its race: not this document's.
		return g
	}
	if obj.Allowed(inst.ID) {
		return g
	}
	g.hold, g.previous = true, obj.Previous
	wave := rollout.WaveOf(inst.ID, obj.Serial, obj.Waves)
	switch obj.State {
	case rollout.StateRolling:
		g.why = fmt.Sprintf("rolling out: this node is in wave %d of %d, the rollout is at wave %d", wave+1, len(obj.Waves), obj.Wave+1)
	default:
		g.why = fmt.Sprintf("the rollout is %s: %s", obj.State, obj.Why)
	}
	return g
}

func (c *rolloutCache) set(serial int64, etag string, obj *rollout.Rollout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serial, c.etag, c.obj = serial, etag, obj
}

// holding is the document held back, if any.
func (c *rolloutCache) holding() *Document {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

func (c *rolloutCache) hold(d *Document) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = d
}

// rolloutChanged does the one conditional GET of the rollout object of the
// held document and reports whether it changed (an unreadable object
// counts as changed: the check that follows decides).
func (a *Agent) rolloutChanged(ctx context.Context, c *rolloutCache) bool {
	c.mu.Lock()
	serial, etag := c.serial, c.etag
	c.mu.Unlock()
	src, err := a.beside(rollout.Rel(serial))
	if err != nil {
		return false
	}
	f, err := src.Fetch(ctx, etag)
	return err != nil || !f.NotModified
}

// bootDocument is the document a booting node converges to: doc, unless
// its rollout holds it back. Then a node with a last-good copy converges
// to that copy, and one with nothing applied to the rollout's previous
// serial, kept under history/ beside the topology.
func (a *Agent) bootDocument(ctx context.Context, c *rolloutCache, inst nodeagent.Instance, doc Document) Document {
	if doc.Stale {
		return doc
	}
	applied := a.hasApplied()
	g := a.rolloutGate(ctx, c, inst, doc, applied)
	if !g.hold {
		return doc
	}
	a.Logger.Info("serial held back by its rollout", LogKeySerial, g.serial, nodeagent.LogKeyReason, g.why)
	if applied {
		last, err := a.LastApplied()
		if err == nil {
			return last
		}
		a.Logger.Error("the node cannot stay on its last-good copy, which is unreadable; it goes on as a node with nothing applied", nodeagent.LogKeyError, err.Error())
	}
	if g.previous <= 0 {
		return doc
	}
	src, err := a.beside(rollout.HistoryRel(a.Source.String(), g.previous))
	if err == nil {
		var f nodeagent.Fetched
		if f, err = src.Fetch(ctx, ""); err == nil {
			a.Logger.Info("booting to the rollout's previous serial", LogKeySerial, g.previous, LogKeySource, src.String())
			return NewDocument(f.Body, f.ETag, src.String(), f.Format, false)
		}
	}
	a.Logger.Error("the rollout's previous serial is not readable; applying the held-back serial", LogKeySerial, g.serial, nodeagent.LogKeyPrevious, g.previous, nodeagent.LogKeyError, err.Error())
	return doc
}

// heldRolloutChanged is the poll's one extra conditional GET while a
// document is held back: whether its rollout object changed.
func (a *Agent) heldRolloutChanged(ctx context.Context) bool {
	return a.rollouts.holding() != nil && a.rolloutChanged(ctx, &a.rollouts)
}

// rolloutDocument is the run loop's gate: the document to apply and
// whether to apply one. A document its rollout holds back is kept (the
// topology's ETag is remembered, so polls stay conditional, and the poll
// then reads the rollout object too); a node with nothing applied boots to
// the rollout's previous serial instead.
func (w *worker) rolloutDocument(ctx context.Context, inst nodeagent.Instance, doc Document) (Document, bool) {
	a := w.a
	if !a.hasApplied() {
		a.rollouts.hold(nil)
		return a.bootDocument(ctx, &a.rollouts, inst, doc), true
	}
	g := a.rolloutGate(ctx, &a.rollouts, inst, doc, true)
	if !g.hold {
		a.rollouts.hold(nil)
		return doc, true
	}
	prev := a.rollouts.holding()
	held := doc
	a.rollouts.hold(&held)
	a.seeSerial(doc)
	w.remember(nil, doc.ETag, true)
	if prev == nil || prev.ETag != doc.ETag {
		a.Logger.Info("serial held back by its rollout; the node keeps what it has", LogKeySerial, g.serial, nodeagent.LogKeyReason, g.why)
	} else {
		a.Logger.Debug("serial still held back by its rollout", LogKeySerial, g.serial, nodeagent.LogKeyReason, g.why)
	}
	return doc, false
}

// forbidden reports whether err is an HTTP 403 from the source.
func forbidden(err error) bool {
	var e *source.Error
	return errors.As(err, &e) && e.Status == http.StatusForbidden
}
