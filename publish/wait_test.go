package publish_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/fleet"
	"github.com/nodeagent/nodeagent/publish"
	"github.com/nodeagent/nodeagent/report"
)

func node(name string, live bool, applied int64) fleet.Node {
	return fleet.Node{ID: "i-" + name, Name: name, InstanceID: "i-" + name, IP: "10.0.0.1", AZ: "us-east-1a", Live: live,
		Report: &report.Report{SerialApplied: applied, Ready: true, LastError: "source unreachable"}}
}

// snapshots returns a Load that answers each snapshot in turn, then the
// last one again, and cancels ctx when it has answered them all (cancel
// may be nil).
func snapshots(cancel context.CancelFunc, ss ...[]fleet.Node) func(context.Context) (*fleet.Snapshot, error) {
	i := 0
	return func(context.Context) (*fleet.Snapshot, error) {
		s := &fleet.Snapshot{Nodes: ss[min(i, len(ss)-1)]}
		i++
		if i >= len(ss) && cancel != nil {
			cancel()
		}
		return s, nil
	}
}

func TestWait(t *testing.T) {
	published := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	t.Run("every live node applies", func(t *testing.T) {
		var out strings.Builder
		err := publish.Wait(context.Background(), publish.WaitInput{
			Serial: 7, Published: published, Every: time.Millisecond, Out: &out,
			Now: func() time.Time { return published.Add(3 * time.Second) },
			Load: snapshots(nil,
				[]fleet.Node{node("web-1", true, 7), node("web-2", true, 6), node("gone", false, 3)},
				[]fleet.Node{node("web-1", true, 7), node("web-2", true, 7), node("gone", false, 3)},
			),
		})
		if err != nil {
			t.Fatalf("Wait: %v\n%s", err, &out)
		}
		got := out.String()
		for _, want := range []string{
			"  web-1 (i-web-1 10.0.0.1 us-east-1a) applied serial 7 at 12:00:03 (+3s), ready\n  web-2 (i-web-2",
			"every live node (2) applied serial 7",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("output:\n%s\nwant %q", got, want)
			}
		}
		if strings.Contains(got, "gone") {
			t.Errorf("a node that is not live was waited for:\n%s", got)
		}
	})
	t.Run("timeout names the laggards", func(t *testing.T) {
		var out strings.Builder
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		err := publish.Wait(ctx, publish.WaitInput{
			Serial: 7, Published: published, Every: time.Hour, Out: &out,
			Load: snapshots(cancel, []fleet.Node{node("web-1", true, 7), node("web-2", true, 6)}),
		})
		if !errors.Is(err, publish.ErrWaitTimeout) || !strings.HasSuffix(err.Error(), ": web-2") {
			t.Fatalf("Wait error = %v, want a timeout naming web-2", err)
		}
		if want := "1 of 2 live nodes have not applied serial 7:\n  web-2 (i-web-2 10.0.0.1 us-east-1a): serial 6 applied, source unreachable\n"; !strings.Contains(out.String(), want) {
			t.Errorf("output:\n%s\nwant %q", &out, want)
		}
	})
	t.Run("no reports prefix", func(t *testing.T) {
		err := publish.Wait(context.Background(), publish.WaitInput{Serial: 7, Every: time.Millisecond, Out: &strings.Builder{},
			Load: func(context.Context) (*fleet.Snapshot, error) { return nil, fleet.ErrNoReports }})
		if !errors.Is(err, fleet.ErrNoReports) {
			t.Fatalf("Wait error = %v, want ErrNoReports", err)
		}
	})
}
