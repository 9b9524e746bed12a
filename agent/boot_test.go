package agent_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/metadata"
	"github.com/nodeagent/nodeagent/source"
)

// discoverAndFetchAgent is an agent with only what DiscoverAndFetch uses:
// metadata, a source, the state dir (for the last-good copy) and a log.
func discoverAndFetchAgent(t *testing.T, md *fakeMetadata, src *fakeSource, logs *bytes.Buffer) *agent.Agent {
	t.Helper()
	root := t.TempDir()
	cfg := agent.Config{StateDir: "/var/lib/nodeagent", Deadline: agent.Duration(time.Hour)}
	if err := os.MkdirAll(filepath.Join(root, cfg.StateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return &agent.Agent{
		Config:   cfg,
		Metadata: md,
		Source:   src,
		FS:       hostfs.FS{Root: root, StateDir: cfg.StateDir},
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	}
}

func TestDiscoverAndFetchOverlapsAndReturnsBoth(t *testing.T) {
	// Each side waits until the other has started: done one after the
	// other, this would never finish.
	fetchStarted, discoveryStarted := make(chan struct{}), make(chan struct{})
	md := &fakeMetadata{InstanceFunc: func(ctx context.Context) (nodeagent.Instance, error) {
		close(discoveryStarted)
		select {
		case <-fetchStarted:
			return nodeagent.Instance{ID: testInstanceID}, nil
		case <-ctx.Done():
			return nodeagent.Instance{}, ctx.Err()
		}
	}}
	src := &fakeSource{Name: "file:///t.json", FetchFunc: func(ctx context.Context, _ string) (nodeagent.Fetched, error) {
		close(fetchStarted)
		select {
		case <-discoveryStarted:
			return nodeagent.Fetched{Body: []byte(`{"serial": 1}`), ETag: `"e1"`}, nil
		case <-ctx.Done():
			return nodeagent.Fetched{}, ctx.Err()
		}
	}}
	var logs bytes.Buffer
	a := discoverAndFetchAgent(t, md, src, &logs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst, f, err := a.DiscoverAndFetch(ctx)
	if err != nil || f.Err != nil {
		t.Fatalf("DiscoverAndFetch: %v, fetch: %v", err, f.Err)
	}
	if inst.ID != testInstanceID || string(f.Doc.Body) != `{"serial": 1}` || f.Doc.ETag != `"e1"` || f.Doc.Stale {
		t.Errorf("got %+v, %+v", inst, f.Doc)
	}
}

// An apply on a node with a last-good copy asks the source whether the
// document changed since that copy's ETag: unchanged, the answer carries no
// body and the copy is the document; changed, the new body is.
func TestDiscoverAndFetchAsksWhetherTheCopyIsCurrent(t *testing.T) {
	store := &objectStore{}
	var logs bytes.Buffer
	md := &fakeMetadata{InstanceFunc: func(context.Context) (nodeagent.Instance, error) {
		return nodeagent.Instance{ID: testInstanceID}, nil
	}}
	a := discoverAndFetchAgent(t, md, store.source(), &logs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first := []byte(`{"serial": 1}`)
	store.put(first)
	_, f, err := a.DiscoverAndFetch(ctx)
	if err != nil || f.Err != nil {
		t.Fatalf("first DiscoverAndFetch: %v, fetch: %v", err, f.Err)
	}
	if fetches, conditional, _ := store.counts(); fetches != 1 || conditional != 0 {
		t.Fatalf("with no last-good copy: %d fetches, %d conditional; want one plain fetch", fetches, conditional)
	}
	copyOf := source.LastGood{Root: a.FS.Root, Path: "/var/lib/nodeagent/topology.json"}
	if err := copyOf.Save(f.Doc.Body, f.Doc.ETag, nodeagent.FormatJSON); err != nil {
		t.Fatal(err)
	}

	_, f, err = a.DiscoverAndFetch(ctx)
	if err != nil || f.Err != nil {
		t.Fatalf("second DiscoverAndFetch: %v, fetch: %v", err, f.Err)
	}
	fetches, conditional, notModified := store.counts()
	if fetches != 2 || conditional != 1 || notModified != 1 {
		t.Errorf("unchanged document: %d fetches, %d conditional, %d not modified; want the second conditional and not modified",
			fetches, conditional, notModified)
	}
	if !bytes.Equal(f.Doc.Body, first) || f.Doc.Stale || f.Doc.ETag != store.etag() || f.Doc.From != "s3://fleet/topology.json" {
		t.Errorf("unchanged document: got body %q etag %s stale %v from %q; want the copy's body, its ETag, from the source",
			f.Doc.Body, f.Doc.ETag, f.Doc.Stale, f.Doc.From)
	}

	second := []byte(`{"serial": 2}`)
	store.put(second)
	_, f, err = a.DiscoverAndFetch(ctx)
	if err != nil || f.Err != nil {
		t.Fatalf("third DiscoverAndFetch: %v, fetch: %v", err, f.Err)
	}
	if !bytes.Equal(f.Doc.Body, second) || f.Doc.ETag != store.etag() {
		t.Errorf("changed document: got body %q etag %s; want the new body and ETag", f.Doc.Body, f.Doc.ETag)
	}
}

func TestDiscoverAndFetchCancelsTheFetchWhenDiscoveryFails(t *testing.T) {
	imdsDown := errors.New("IMDS unreachable")
	md := &fakeMetadata{InstanceFunc: func(context.Context) (nodeagent.Instance, error) {
		return nodeagent.Instance{}, imdsDown
	}}
	// The fetch would take until the deadline (an hour) unless cancelled.
	fetchErr := make(chan error, 1)
	src := &fakeSource{Name: "s3://b/k", FetchFunc: func(ctx context.Context, _ string) (nodeagent.Fetched, error) {
		<-ctx.Done()
		fetchErr <- ctx.Err()
		return nodeagent.Fetched{}, ctx.Err()
	}}
	var logs bytes.Buffer
	a := discoverAndFetchAgent(t, md, src, &logs)
	// A last-good copy exists: it must not be announced for an apply that
	// cannot happen.
	if err := os.WriteFile(a.FS.Path("/var/lib/nodeagent/topology.json"), []byte(`{"serial": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	returned := make(chan error, 1)
	go func() {
		_, _, err := a.DiscoverAndFetch(context.Background())
		returned <- err
	}()
	select {
	case err := <-returned:
		if !errors.Is(err, imdsDown) || !strings.Contains(err.Error(), "discover instance") {
			t.Errorf("error = %v, want the discovery error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("DiscoverAndFetch waited for the fetch after discovery failed")
	}
	if err := <-fetchErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the fetch ended with %v, want context.Canceled", err)
	}
	if strings.Contains(logs.String(), "last-good") {
		t.Errorf("the log announces the last-good copy:\n%s", logs.String())
	}
}

// bootAgent is an agent with what a boot that never gets as far as an
// apply uses: metadata, a source, the state dir and the lifecycle hooks.
func bootAgent(t *testing.T, md *fakeMetadata, src *fakeSource, hooks *fakeHooks, deadline time.Duration) *agent.Agent {
	t.Helper()
	var logs bytes.Buffer
	a := discoverAndFetchAgent(t, md, src, &logs)
	a.Config.Deadline = agent.Duration(deadline)
	a.Config.LaunchAttempts = 1
	a.Hooks = hooks
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return a
}

var (
	imds503    = &metadata.Error{Path: metadata.PathInstanceID, Endpoint: "http://169.254.169.254", Attempts: 5, Status: 503, Err: errors.New("503 Service Unavailable")}
	imds403    = &metadata.Error{Path: metadata.PathInstanceID, Endpoint: "http://169.254.169.254", Attempts: 1, Status: 403, Err: errors.New("403 Forbidden")}
	s3SlowDown = &source.Error{URL: "s3://fleet/topology.json", Status: 503, Err: errors.New("api error SlowDown")}
	s3Denied   = &source.Error{URL: "s3://fleet/topology.json", Status: 403, Err: errors.New("api error AccessDenied")}
)

func testInstance() nodeagent.Instance {
	return nodeagent.Instance{ID: testInstanceID, PrivateIP: "10.0.1.10", AZ: "us-east-1a", Region: "us-east-1", Group: testGroup,
		MemoryBytes: 4 << 30, OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: testPHPVersion}
}

// TestBootPermanentFailuresFailAtOnce: 403 from IMDS or S3 is not retried,
// and no launch hook is completed.
func TestBootPermanentFailuresFailAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name    string
		imds    error
		s3      error
		wantErr error
	}{
		{"IMDS 403", imds403, nil, imds403},
		{"S3 403", nil, s3Denied, s3Denied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var discoveries, fetches atomic.Int32
			md := &fakeMetadata{InstanceFunc: func(context.Context) (nodeagent.Instance, error) {
				discoveries.Add(1)
				if tt.imds != nil {
					return nodeagent.Instance{}, tt.imds
				}
				return testInstance(), nil
			}}
			src := &fakeSource{Name: "s3://fleet/topology.json", FetchFunc: func(context.Context, string) (nodeagent.Fetched, error) {
				fetches.Add(1)
				if tt.s3 != nil {
					return nodeagent.Fetched{}, tt.s3
				}
				return nodeagent.Fetched{Body: document{Serial: 1, Port: 80}.bytes()}, nil
			}}
			hooks := &fakeHooks{}
			a := bootAgent(t, md, src, hooks, time.Hour)
			_, err := a.Boot(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Boot = %v, want %v", err, tt.wantErr)
			}
			if discoveries.Load() != 1 || fetches.Load() > 1 {
				t.Errorf("%d discoveries and %d fetches, want one each at most (no retry of a permanent failure)", discoveries.Load(), fetches.Load())
			}
			if got := hooks.list(); len(got) != 0 {
				t.Errorf("lifecycle actions %q, want none", got)
			}
		})
	}
}

// TestBootTransientOutageOutlastsTheDeadline: IMDS, then S3, answer 503
// for 15 s; with a 10 s deadline the boot gives up, learns the instance and
// the hook once they answer again, within the grace of one more deadline,
// and completes the launch hook with ABANDON exactly once. On exact time.
func TestBootTransientOutageOutlastsTheDeadline(t *testing.T) {
	for _, tt := range []struct {
		name     string
		imdsDown bool
	}{{"IMDS", true}, {"S3", false}} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				back := time.Now().Add(15 * time.Second)
				var discoveries, fetches atomic.Int32
				md := &fakeMetadata{InstanceFunc: func(context.Context) (nodeagent.Instance, error) {
					discoveries.Add(1)
					if tt.imdsDown && time.Now().Before(back) {
						return nodeagent.Instance{}, imds503
					}
					return testInstance(), nil
				}}
				src := &fakeSource{Name: "s3://fleet/topology.json", FetchFunc: func(context.Context, string) (nodeagent.Fetched, error) {
					fetches.Add(1)
					if !tt.imdsDown && time.Now().Before(back) {
						return nodeagent.Fetched{}, s3SlowDown
					}
					return nodeagent.Fetched{Body: document{Serial: 1, Port: 80}.bytes()}, nil
				}}
				hooks := &fakeHooks{}
				a := bootAgent(t, md, src, hooks, 10*time.Second)
				// apply starts catching signals at the first BeforeChange: it
				// must come before the first wait to retry, and so before
				// the ABANDON.
				firstAt := int32(-1)
				var calls atomic.Int32
				a.BeforeChange = func() {
					if calls.Add(1) == 1 {
						firstAt = discoveries.Load() + fetches.Load()
						if n := len(hooks.list()); n != 0 {
							t.Errorf("first BeforeChange after %d lifecycle actions, want before any", n)
						}
					}
				}
				start := time.Now()
				res, err := a.Boot(t.Context())
				if firstAt < 0 {
					t.Error("BeforeChange was never called, though the boot waited to retry and completed a lifecycle action")
				} else if firstAt > 2 {
					t.Errorf("first BeforeChange after %d discoveries and fetches, want it at the first failure (2: one of each), before the wait to retry", firstAt)
				}
				if err == nil || !strings.Contains(err.Error(), "ABANDON") {
					t.Errorf("Boot = %v, want it to say it abandoned", err)
				}
				if res == nil || res.Lifecycle != nodeagent.LifecycleAbandon {
					t.Errorf("result %+v, want the launch hook ABANDONed", res)
				}
				want := []string{testGroup + "/" + testLaunchHook + "/" + testInstanceID + " ABANDON"}
				if got := hooks.list(); !equal(got, want) {
					t.Errorf("lifecycle actions %q, want %q", got, want)
				}
				if took := time.Since(start); took < 15*time.Second || took > 20*time.Second {
					t.Errorf("Boot returned after %s, want after the outage (15s) and within the deadline and its grace (20s)", took)
				}
				if discoveries.Load() < 2 && fetches.Load() < 2 {
					t.Errorf("%d discoveries, %d fetches: the outage was not retried", discoveries.Load(), fetches.Load())
				}
				// The launch hook is done for this instance: recorded, so no
				// later process completes it again.
				if b, err := os.ReadFile(a.FS.Path("/var/lib/nodeagent/lifecycle.json")); err != nil || !strings.Contains(string(b), testInstanceID) || !strings.Contains(string(b), "ABANDON") {
					t.Errorf("lifecycle.json = %s, %v; want the ABANDON of %s recorded", b, err, testInstanceID)
				}
			})
		})
	}
}
