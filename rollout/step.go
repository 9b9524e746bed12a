package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/report"
)

// Node is what Step needs of one node of the fleet (fleet.Snapshot has it).
type Node struct {
	InstanceID string
	Name       string
	// Live: a fresh report from a node that is not draining or terminated.
	Live   bool
	Report *report.Report
}

// Fleet is the fleet as Step sees it: the serial published now and the
// nodes.
type Fleet struct {
	Serial int64
	Nodes  []Node
}

// WaveTally is one wave's progress.
type WaveTally struct {
	Share int `json:"share"` // cumulative percent
	// Nodes are the live nodes whose wave this is; Done those of them
	// that report the serial applied and ready, Failed the nodes of this
	// wave that reported a failed apply of the serial (live or not),
	// Pending the live ones neither done nor failed.
	Nodes   int `json:"nodes"`
	Done    int `json:"done"`
	Pending int `json:"pending"`
	Failed  int `json:"failed"`
}

// Tally counts each wave's nodes and lists the failures.
func Tally(r *Rollout, f Fleet) ([]WaveTally, []Failure) {
	waves := make([]WaveTally, len(r.Waves))
	for i, p := range r.Waves {
		waves[i].Share = p
	}
	var failed []Failure
	for _, n := range f.Nodes {
		if n.InstanceID == "" || n.Report == nil {
			continue
		}
		w := WaveOf(n.InstanceID, r.Serial, r.Waves)
		rep := n.Report
		applied := rep.SerialApplied >= r.Serial
		a := rep.LastApply
		if !applied && a != nil && a.Result != report.ResultOK && a.Serial == r.Serial {
			failed = append(failed, Failure{InstanceID: n.InstanceID, Name: n.Name, Wave: w, At: a.At.UTC(), Error: a.Error})
			waves[w].Failed++
			if n.Live {
				waves[w].Nodes++
			}
			continue
		}
		if !n.Live {
			continue
		}
		waves[w].Nodes++
		if applied && rep.Ready {
			waves[w].Done++
		} else {
			waves[w].Pending++
		}
	}
	slices.SortFunc(failed, func(a, b Failure) int { return cmp.Compare(a.InstanceID, b.InstanceID) })
	return waves, failed
}

// Event is what a Step did, for the operator's command to print and act
// on.
type Event struct {
	Kind string // EventAdvanced, EventHalted, EventDone, EventSuperseded, EventWaveComplete
	Text string
}

// Event kinds.
const (
	EventWaveComplete = "wave-complete" // the current wave converged; the bake runs
	EventAdvanced     = "advanced"
	EventHalted       = "halted"
	EventDone         = "done"
	EventSuperseded   = "superseded"
)

// Step is the rollout's state machine: from the rollout object, the fleet
// and the time, the next rollout object and what happened. It is pure.
//
//   - A newer serial published: superseded.
//   - More than MaxFailed nodes reported a failed apply of the serial:
//     halted, naming them.
//   - Every live node of the waves up to the current one reports the
//     serial applied and ready: the wave is complete (WaveComplete set);
//     once Bake has passed since then the next wave starts, and after the
//     last wave the rollout is done. A wave that no node falls in needs no
//     bake.
//
// A halted, done or superseded rollout does not change. The returned
// rollout's UpdatedAt is now when anything changed.
func Step(cur Rollout, f Fleet, now time.Time) (Rollout, []Event) {
	r := cur
	r.Waves = slices.Clone(cur.Waves)
	now = now.UTC()
	if r.State != StateRolling {
		return r, nil
	}
	var evs []Event
	if f.Serial > r.Serial {
		r.State, r.Why, r.UpdatedAt = StateSuperseded, fmt.Sprintf("serial %d was published over it", f.Serial), now
		return r, []Event{{EventSuperseded, r.Why}}
	}
	tally, failed := Tally(&r, f)
	r.Failed = failed
	if len(failed) > r.MaxFailed {
		var names []string
		for _, fl := range failed {
			names = append(names, cmp.Or(fl.Name, fl.InstanceID))
		}
		r.State, r.UpdatedAt = StateHalted, now
		r.Why = fmt.Sprintf("%d node(s) failed to apply serial %d (max_failed %d): %s", len(failed), r.Serial, r.MaxFailed, strings.Join(names, ", "))
		return r, []Event{{EventHalted, r.Why}}
	}
	for {
		nodes, pending := 0, 0
		for _, t := range tally[:r.Wave+1] {
			nodes += t.Nodes
			pending += t.Pending + t.Failed
		}
		if pending > 0 {
			return r, evs
		}
		if r.WaveComplete.IsZero() {
			r.WaveComplete, r.UpdatedAt = now, now
			evs = append(evs, Event{EventWaveComplete, fmt.Sprintf("wave %d (%d%%): %d node(s) on serial %d and ready", r.Wave+1, r.Waves[r.Wave], tally[r.Wave].Done, r.Serial)})
		}
		if r.Wave == len(r.Waves)-1 {
			r.State, r.Why, r.UpdatedAt = StateDone, fmt.Sprintf("every live node (%d) applied serial %d", nodes, r.Serial), now
			return r, append(evs, Event{EventDone, r.Why})
		}
		if tally[r.Wave].Nodes > 0 && now.Sub(r.WaveComplete) < r.Bake() {
			return r, evs
		}
		r.Wave++
		r.WaveStarted, r.WaveComplete, r.UpdatedAt = now, time.Time{}, now
		evs = append(evs, Event{EventAdvanced, fmt.Sprintf("wave %d of %d: %d%% of the nodes may apply serial %d", r.Wave+1, len(r.Waves), r.Waves[r.Wave], r.Serial)})
		// The next wave may be complete already (no node in it): go on.
	}
}
