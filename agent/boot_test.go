package agent_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/hostfs"
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
