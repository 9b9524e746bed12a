package publish

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/rollout"
)

// StartRollout writes the rollout object of ch's serial (state rolling,
// wave 1) and then the document, in that order: a node never sees the new
// serial without its rollout object. A rollout object left for the same
// serial by a publish that lost its race (another document) is replaced.
// The published document is kept under history/<serial>.json too, so
// every serial of a rollout can be fetched. It returns the object as
// written and its ETag with the write's Result.
func (p *Publisher) StartRollout(ctx context.Context, store *rollout.Store, cur *Current, ch *Change, st rollout.Strategy, now time.Time) (*rollout.Rollout, string, Result, error) {
	r, err := rollout.New(st, ch.To, cur.Serial, ch.Body, now)
	if err != nil {
		return nil, "", Result{}, err
	}
	etag, err := store.Create(ctx, r)
	if errors.Is(err, rollout.ErrChanged) {
		old, oldTag, rerr := store.Read(ctx, ch.To)
		switch {
		case rerr != nil && !errors.Is(rerr, rollout.ErrNotFound) && !errors.Is(rerr, rollout.ErrCorrupt):
			return nil, "", Result{}, rerr
		case old != nil && old.DocumentSHA256 == r.DocumentSHA256 && old.State != rollout.StateRolling:
			return nil, "", Result{}, fmt.Errorf("publish: serial %d was rolled out already (%s): publish with --bump", ch.To, old.State)
		case old != nil:
			etag, err = store.Update(ctx, r, oldTag)
		}
	}
	if err != nil {
		return nil, "", Result{}, err
	}
	res, err := p.Write(ctx, cur, ch)
	if err == nil {
		p.keepNew(ctx, ch, &res)
	}
	return r, etag, res, err
}

// ErrHalted is wrapped when a followed rollout halted.
var ErrHalted = errors.New("the rollout halted")

// FollowInput is what FollowRollout follows and how.
type FollowInput struct {
	Store  *rollout.Store
	Serial int64
	// Load reads the fleet (a fleet.Loader's Load).
	Load func(ctx context.Context) (*fleet.Snapshot, error)
	// Rollback publishes the previous document as a new serial and
	// returns that serial; nil: no auto-rollback.
	Rollback func(ctx context.Context, r *rollout.Rollout) (int64, error)
	// Operator names this command in the object (host and pid);
	// Heartbeat is how often it writes its heartbeat there (default
	// rollout.HeartbeatEvery).
	Operator  string
	Heartbeat time.Duration
	Every     time.Duration // between snapshots
	Out       io.Writer
	Now       func() time.Time
}

// FollowRollout advances the rollout of in.Serial until it is done,
// halted or superseded: each tick it loads the fleet, runs rollout.Step,
// and writes the object back (conditional on its ETag) when it changed or
// the heartbeat is due. It prints each event; on a halt it prints the
// failed nodes and why, runs Rollback when given, and returns an error
// wrapping ErrHalted. When ctx ends it returns ctx's error: the rollout
// stays where it is, and `nodeagent rollout resume` picks it up.
func FollowRollout(ctx context.Context, in FollowInput) error {
	now := in.Now
	if now == nil {
		now = time.Now
	}
	every := cmp.Or(in.Every, 2*time.Second)
	in.Heartbeat = cmp.Or(in.Heartbeat, rollout.HeartbeatEvery)
	tick := time.NewTicker(every)
	defer tick.Stop()
	announced := -1
	for {
		r, etag, err := in.Store.Read(ctx, in.Serial)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, rollout.ErrNotFound) || errors.Is(err, rollout.ErrCorrupt) || errors.Is(err, rollout.ErrSchema) {
				return err
			}
			fmt.Fprintf(in.Out, "  (reading the rollout object failed, trying again: %v)\n", err)
		} else {
			if r.Wave != announced && r.State == rollout.StateRolling {
				fmt.Fprintf(in.Out, "serial %d: wave %d of %d (%d%% of the nodes)\n", r.Serial, r.Wave+1, len(r.Waves), r.Waves[r.Wave])
				announced = r.Wave
			}
			if r.State != rollout.StateRolling {
				return finished(ctx, in, r, etag, now)
			}
			if err := step(ctx, in, r, etag, now, &announced); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// step is one tick of a rolling rollout.
func step(ctx context.Context, in FollowInput, r *rollout.Rollout, etag string, now func() time.Time, announced *int) error {
	s, err := in.Load(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, fleet.ErrNoReports) {
			return fmt.Errorf("rollout: %w", err)
		}
		fmt.Fprintf(in.Out, "  (reading the reports failed, trying again: %v)\n", err)
		return nil
	}
	t := now()
	next, evs := rollout.Step(*r, fleet.RolloutFleet(s), t)
	beat := in.Heartbeat.Seconds()
	if len(evs) == 0 && t.Sub(r.Heartbeat) < in.Heartbeat && next.Operator == in.Operator && len(next.Failed) == len(r.Failed) &&
		next.HeartbeatEverySeconds == beat {
		return nil
	}
	next.Heartbeat, next.Operator, next.HeartbeatEverySeconds = t.UTC(), in.Operator, beat
	if len(evs) == 0 {
		next.UpdatedAt = r.UpdatedAt
	}
	if _, err := in.Store.Update(ctx, &next, etag); err != nil {
		if errors.Is(err, rollout.ErrChanged) {
			fmt.Fprintf(in.Out, "  (the rollout object changed meanwhile (another operator?); reading it again)\n")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(in.Out, "  (writing the rollout object failed, trying again: %v)\n", err)
		return nil
	}
	for _, e := range evs {
		switch e.Kind {
		case rollout.EventAdvanced:
			fmt.Fprintf(in.Out, "serial %d: %s\n", next.Serial, e.Text)
			*announced = next.Wave
		default:
			fmt.Fprintf(in.Out, "  %s\n", e.Text)
		}
	}
	return nil
}

// finished reports a rollout that is no longer rolling, and rolls back a
// halted one when asked (once: RolledBackTo records it).
func finished(ctx context.Context, in FollowInput, r *rollout.Rollout, etag string, now func() time.Time) error {
	switch r.State {
	case rollout.StateDone:
		fmt.Fprintf(in.Out, "rollout of serial %d done: %s\n", r.Serial, r.Why)
		return nil
	case rollout.StateSuperseded:
		fmt.Fprintf(in.Out, "rollout of serial %d superseded: %s\n", r.Serial, r.Why)
		return nil
	}
	fmt.Fprintf(in.Out, "rollout of serial %d HALTED at wave %d of %d: %s\n", r.Serial, r.Wave+1, len(r.Waves), r.Why)
	for _, f := range r.Failed {
		fmt.Fprintf(in.Out, "  %s (wave %d) failed at %s: %s\n", cmp.Or(f.Name, f.InstanceID), f.Wave+1, f.At.Format("15:04:05"), f.Error)
	}
	fmt.Fprintf(in.Out, "nodes that did not apply serial %d keep serial %d; the nodes that failed reverted themselves\n", r.Serial, r.Previous)
	if r.RolledBackTo != 0 {
		fmt.Fprintf(in.Out, "rolled back: serial %d republished serial %d\n", r.RolledBackTo, r.Previous)
	} else if in.Rollback != nil && r.AutoRollback {
		to, err := in.Rollback(ctx, r)
		if err != nil {
			return fmt.Errorf("rollout of serial %d: %w; auto-rollback failed: %w", r.Serial, ErrHalted, err)
		}
		r.RolledBackTo, r.UpdatedAt, r.Heartbeat = to, now().UTC(), now().UTC()
		if _, err := in.Store.Update(ctx, r, etag); err != nil {
			fmt.Fprintf(in.Out, "  (recording the rollback in the rollout object failed: %v)\n", err)
		}
		fmt.Fprintf(in.Out, "auto-rollback: published serial %d with the document of serial %d\n", to, r.Previous)
	}
	return fmt.Errorf("rollout of serial %d: %w: %s", r.Serial, ErrHalted, r.Why)
}
