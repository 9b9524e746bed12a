package publish

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/report"
)

// Progress follows a published serial through successive fleet snapshots:
// which live nodes have applied it (their report's serial_applied is at
// least Serial), and when.
type Progress struct {
	Serial    int64
	Published time.Time
	applied   map[string]bool // node IDs already announced
}

// NewProgress starts following serial, published at published.
func NewProgress(serial int64, published time.Time) *Progress {
	return &Progress{Serial: serial, Published: published, applied: map[string]bool{}}
}

// Applied is a node seen to have applied the serial.
type Applied struct {
	Node fleet.Node
	At   time.Time // the apply's time from the report, else when it was seen
}

// Observe takes a snapshot: the live nodes that have applied the serial
// since the last snapshot, and the live nodes that have not. done is true
// when at least one node is live and every live node applied it.
func (p *Progress) Observe(s *fleet.Snapshot, seen time.Time) (newly []Applied, pending []fleet.Node, done bool) {
	live := 0
	for _, n := range s.Nodes {
		if !n.Live || n.Report == nil {
			continue
		}
		live++
		if n.Report.SerialApplied < p.Serial {
			pending = append(pending, n)
			continue
		}
		if p.applied[n.ID] {
			continue
		}
		p.applied[n.ID] = true
		at := seen
		if a := n.Report.LastApply; a != nil && a.Result == report.ResultOK && a.Serial >= p.Serial && !a.At.IsZero() {
			at = a.At
		}
		newly = append(newly, Applied{Node: n, At: at})
	}
	return newly, pending, live > 0 && len(pending) == 0
}

// ErrWaitTimeout is wrapped when nodes have not applied the serial in
// time.
var ErrWaitTimeout = errors.New("not every live node applied the serial in time")

// WaitInput says what Wait follows and where it prints.
type WaitInput struct {
	Serial    int64
	Published time.Time
	// Load reads the fleet (fleet.Load with the topology and the reports).
	Load  func(ctx context.Context) (*fleet.Snapshot, error)
	Every time.Duration // between snapshots
	Out   io.Writer
	Now   func() time.Time
}

// Wait reads snapshots until every live node has applied the serial, and
// prints each node as it does. When ctx ends first it prints the laggards
// and returns an error wrapping ErrWaitTimeout that names them. A failed
// read is printed and tried again at the next tick.
func Wait(ctx context.Context, in WaitInput) error {
	now := in.Now
	if now == nil {
		now = time.Now
	}
	p := NewProgress(in.Serial, in.Published)
	var pending []fleet.Node
	var lastErr error
	every := in.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s, err := in.Load(ctx)
		switch {
		case errors.Is(err, fleet.ErrNoReports):
			return fmt.Errorf("wait: %w", err)
		case err != nil && ctx.Err() == nil:
			fmt.Fprintf(in.Out, "  (reading the reports failed, trying again: %v)\n", err)
			lastErr = err
		case err == nil:
			lastErr = nil
			var newly []Applied
			var done bool
			newly, pending, done = p.Observe(s, now())
			for _, a := range newly {
				fmt.Fprintf(in.Out, "  %s applied serial %d at %s (+%s)%s\n", describe(a.Node), in.Serial,
					a.At.UTC().Format("15:04:05"), a.At.Sub(in.Published).Round(100*time.Millisecond), readiness(a.Node))
			}
			if done {
				fmt.Fprintf(in.Out, "every live node (%d) applied serial %d in %s\n", len(p.applied), in.Serial, now().Sub(in.Published).Round(100*time.Millisecond))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return timedOut(in, pending, len(p.applied), lastErr)
		case <-tick.C:
		}
	}
}

func timedOut(in WaitInput, pending []fleet.Node, applied int, lastErr error) error {
	if len(pending) == 0 && applied == 0 {
		if lastErr != nil {
			return fmt.Errorf("wait for serial %d: %w: the reports could not be read: %w", in.Serial, ErrWaitTimeout, lastErr)
		}
		return fmt.Errorf("wait for serial %d: %w: no live node reports (check that the agents run and write their reports)", in.Serial, ErrWaitTimeout)
	}
	fmt.Fprintf(in.Out, "%d of %d live nodes have not applied serial %d:\n", len(pending), len(pending)+applied, in.Serial)
	names := make([]string, 0, len(pending))
	for _, n := range pending {
		names = append(names, cmp.Or(n.Name, n.ID))
		why := fmt.Sprintf("serial %d applied", n.Report.SerialApplied)
		if a := n.Report.LastApply; a != nil && a.Result != report.ResultOK {
			why += fmt.Sprintf(", last apply %s", a.Result)
			if a.Error != "" {
				why += ": " + a.Error
			}
		} else if n.Report.LastError != "" {
			why += ", " + n.Report.LastError
		}
		fmt.Fprintf(in.Out, "  %s: %s\n", describe(n), why)
	}
	return fmt.Errorf("wait for serial %d: %w: %s", in.Serial, ErrWaitTimeout, strings.Join(names, ", "))
}

// describe names a node for a line: name (or instance id), instance, IP,
// AZ.
func describe(n fleet.Node) string {
	parts := []string{cmp.Or(n.Name, n.ID)}
	if n.Name != "" && n.InstanceID != "" {
		parts = append(parts, n.InstanceID)
	}
	for _, s := range []string{n.IP, n.AZ} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return parts[0] + " (" + strings.Join(parts[1:], " ") + ")"
}

func readiness(n fleet.Node) string {
	if n.Report.Ready {
		return ", ready"
	}
	return ", not ready: " + n.Report.Reason
}
