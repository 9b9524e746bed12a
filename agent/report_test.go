package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/report"
)

// reportSink is a ReportWriter that keeps every report it is given, or
// refuses them while fail is set.
type reportSink struct {
	mu      sync.Mutex
	reports []report.Report
	locs    []report.Location
	fail    error
}

func (s *reportSink) Put(_ context.Context, loc report.Location, r *report.Report) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	// Encode as the S3 client does, so bounds apply.
	b, err := report.Encode(r)
	if err != nil {
		return err
	}
	var got report.Report
	if err := json.Unmarshal(b, &got); err != nil {
		return err
	}
	s.reports = append(s.reports, got)
	s.locs = append(s.locs, loc)
	return nil
}

func (s *reportSink) last() (report.Report, report.Location, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reports) == 0 {
		return report.Report{}, report.Location{}, 0
	}
	return s.reports[len(s.reports)-1], s.locs[len(s.locs)-1], len(s.reports)
}

func (s *reportSink) count(f func(report.Report) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reports {
		if f(r) {
			n++
		}
	}
	return n
}

// withReports adds "fleet": {"reports": url} to a topology document.
func withReports(t *testing.T, doc []byte, url string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m["fleet"] = map[string]any{"reports": url}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 50 * time.Millisecond
		store := &objectStore{}
		sink := &reportSink{}
		e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() },
			Reports: sink, ReportInterval: interval, InMemory: true})
		store.put(withReports(t, document{Serial: 1, Port: e.port}.bytes(), "s3://fleet/reports/"))
		e.start()
		synctest.Wait()
		e.checkApplied(1)

		if n := sink.count(func(r report.Report) bool { return r.Event == report.EventApply && r.Ready }); n == 0 {
			t.Fatal("no report of the boot apply")
		}
		r, loc, before := sink.last()
		if loc.Bucket != "fleet" || loc.Prefix != "reports/" {
			t.Errorf("report location %+v", loc)
		}
		if r.Schema != report.Schema || r.InstanceID != testInstanceID || r.Role != "web" || r.Group != testGroup || r.AZ != "us-east-1a" ||
			r.PrivateIP != "127.0.0.1" || len(r.Products) != 1 || r.Products[0] != "shop" || r.SerialApplied != 1 || r.AgentVersion != "test-version" {
			t.Errorf("report %+v", r)
		}
		if a := r.LastApply; a == nil || a.Result != report.ResultOK || a.Serial != 1 || a.ChangedFiles == 0 || len(a.Changes) == 0 || a.Changes[0].Reason == "" {
			t.Errorf("last apply %+v", r.LastApply)
		}
		if len(r.Smoke) != 2 || !r.Smoke[0].OK || r.Smoke[0].Name != "shop/home" {
			t.Errorf("smoke %+v", r.Smoke)
		}
		// Heartbeats rewrite the same report (same bytes: the object keeps
		// its ETag at idle), one per interval after the last report.
		time.Sleep(interval - time.Nanosecond)
		synctest.Wait()
		if _, _, n := sink.last(); n != before {
			t.Errorf("%d reports before the first heartbeat was due, want none", n-before)
		}
		time.Sleep(time.Nanosecond + 4*interval)
		synctest.Wait()
		if _, _, n := sink.last(); n != before+5 {
			t.Errorf("%d heartbeat reports in 5 intervals of %s, want 5", n-before, interval)
		}
		if hb, _, _ := sink.last(); hb.Event != report.EventApply || !hb.ReportedAt.Equal(r.ReportedAt) || hb.LastApply == nil || !hb.LastApply.At.Equal(r.LastApply.At) {
			t.Errorf("a heartbeat changed the report: %+v, was %+v", hb, r)
		}

		// A refused document is an apply outcome: reported, the node stays
		// ready on serial 1.
		store.put(withReports(t, document{Serial: 2, Port: 70000}.bytes(), "s3://fleet/reports/")) // apache.port out of range
		e.recheck <- struct{}{}
		synctest.Wait()
		if n := sink.count(func(r report.Report) bool {
			return r.LastApply != nil && r.LastApply.Result == report.ResultRefused && r.SerialSeen == 2 && r.SerialApplied == 1 && r.Ready
		}); n != 1 {
			t.Errorf("%d reports of the refused document, want 1", n)
		}

		// Terminated: the last report says so, not ready.
		e.lifecycle.set("Terminated")
		if err := e.wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		r, _, n := sink.last()
		if !r.Terminated || !r.Draining || r.Ready || r.Event != report.EventDrain {
			t.Errorf("last report %+v, want terminated, draining, not ready", r)
		}
		if got := e.metric("nodeagent_reports_total", "result", "ok"); got != float64(n) {
			t.Errorf("nodeagent_reports_total{result=ok} = %v, want %d (the reports written)", got, n)
		}
	})
}

func TestRunReportFailureChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 20 * time.Millisecond
		store := &objectStore{}
		sink := &reportSink{fail: errors.New("403 Forbidden")}
		e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() },
			Reports: sink, ReportInterval: interval, InMemory: true})
		store.put(withReports(t, document{Serial: 1, Port: e.port}.bytes(), "s3://fleet/reports/"))
		e.start()
		synctest.Wait()
		e.checkApplied(1)
		before := e.metric("nodeagent_reports_total", "result", "error")
		if before == 0 {
			t.Error("the boot apply's failed report write not counted")
		}
		time.Sleep(3 * interval)
		synctest.Wait()
		if got := e.metric("nodeagent_reports_total", "result", "error") - before; got != 3 {
			t.Errorf("%v failed heartbeat writes counted in 3 intervals, want 3", got)
		}
		if st := e.agent.Readiness.Snapshot(); !st.Ready || !st.LastApplyOK {
			t.Errorf("status %+v, want ready after a good apply whatever the reports do", st)
		}
		if got := e.applies("ok"); got != 1 {
			t.Errorf("%v ok applies, want 1", got)
		}
	})
}

// blockingSink is a ReportWriter whose PUTs hang until released (an S3
// that accepts the connection and never answers).
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	started int
}

func (s *blockingSink) Put(ctx context.Context, _ report.Location, _ *report.Report) error {
	s.mu.Lock()
	s.started++
	s.mu.Unlock()
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *blockingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

func TestRunHungReportWriteDelaysNoApply(t *testing.T) {
	store := &objectStore{}
	sink := &blockingSink{release: make(chan struct{})}
	e := newRunEnv(t, runSettings{Source: func(*runEnv) nodeagent.TopologySource { return store.source() },
		Reports: sink, ReportInterval: time.Hour})
	store.put(withReports(t, document{Serial: 1, Port: e.port}.bytes(), "s3://fleet/reports/"))
	e.start()
	e.waitApplied(1, 10*time.Second)
	eventually(t, 5*time.Second, "the boot apply's report PUT under way", func() bool { return sink.count() == 1 })

	// The PUT hangs; the next document is applied all the same.
	store.put(withReports(t, document{Serial: 2, Master: "db-b", Port: e.port}.bytes(), "s3://fleet/reports/"))
	e.recheck <- struct{}{}
	e.waitApplied(2, 10*time.Second)
	if !strings.Contains(e.read("etc/hosts"), dbBIP+"\tdbserver") {
		t.Errorf("serial 2 not applied while a report write hung:\n%s", e.read("etc/hosts"))
	}
	if st := e.status(); !st.Ready {
		t.Errorf("not ready while a report write hung: %+v", st)
	}
	close(sink.release)
}
