package agent

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/topology"
)

// A re-check that fetched the last-good document again does not decode it
// a second time; any other document still gets the last-good one decoded.
func TestPreviousTopologyReusesAnIdenticalDocument(t *testing.T) {
	body, err := os.ReadFile("../topology/testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	a := &Agent{
		Config: Config{StateDir: "/var/lib/nodeagent"},
		FS:     hostfs.FS{Root: root, StateDir: "/var/lib/nodeagent"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/nodeagent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if last, err := a.previousTopology(body, nodeagent.FormatJSON, nil); err != nil || last.topology != nil || last.body != nil {
		t.Fatalf("no last-good copy: %+v, %v", last, err)
	}
	if err := a.lastGood().Save(body, `"e1"`, nodeagent.FormatJSON); err != nil {
		t.Fatal(err)
	}

	same, err := topology.Load(body, "fetched", nodeagent.FormatOf("fetched"))
	if err != nil {
		t.Fatal(err)
	}
	last, err := a.previousTopology(body, nodeagent.FormatJSON, same)
	if err != nil || last.topology != same || !bytes.Equal(last.body, body) || last.etag != `"e1"` {
		t.Errorf("identical document: topology %p (want %p), etag %q, err %v", last.topology, same, last.etag, err)
	}

	edited := bytes.Replace(body, []byte(`"serial": 42`), []byte(`"serial": 43`), 1)
	next, err := topology.Load(edited, "fetched", nodeagent.FormatOf("fetched"))
	if err != nil || next.Serial != 43 {
		t.Fatalf("edited document: serial %d, %v", next.Serial, err)
	}
	last, err = a.previousTopology(edited, nodeagent.FormatJSON, next)
	if err != nil || last.topology == nil || last.topology == next || last.topology.Serial != 42 {
		t.Errorf("different document: got %+v, %v; want the last-good copy decoded (serial 42)", last.topology, err)
	}

	// What this process saved, with its decoding, serves while the copy
	// on disk is still those bytes.
	a.saved.Store(&lastApplied{body: body, etag: `"e1"`, format: nodeagent.FormatJSON, topology: same})
	last, err = a.previousTopology(edited, nodeagent.FormatJSON, next)
	if err != nil || last.topology != same {
		t.Errorf("saved copy: topology %p, want the saved decoding %p (%v)", last.topology, same, err)
	}
	if err := a.lastGood().Save(edited, `"e2"`, nodeagent.FormatJSON); err != nil {
		t.Fatal(err)
	}
	last, err = a.previousTopology(body, nodeagent.FormatJSON, same)
	if err != nil || last.topology == nil || last.topology == same || last.topology.Serial != 43 {
		t.Errorf("copy on disk changed since: got %+v, %v; want the copy decoded (serial 43)", last.topology, err)
	}
}
