package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/source"
)

// yamlDocument is d written as YAML (block style, not the JSON subset).
func yamlDocument(t *testing.T, d document) []byte {
	t.Helper()
	y, err := yaml.JSONToYAML(d.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(strings.TrimSpace(string(y)), "{") {
		t.Fatalf("not block YAML:\n%s", y)
	}
	return y
}

// A YAML topology's last-good copy keeps its format: a re-check compares
// the next document against it, and a node whose source is unreachable
// boots from it. (The copy is saved as topology.json; reading it back by
// that name as JSON failed.)
func TestRunYAMLSourceLastGoodCopyKeepsItsFormat(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "topology.yaml")
	url := "file://" + doc
	fileSource := func(*runEnv) nodeagent.TopologySource {
		s, err := source.New(context.Background(), url, source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	e := newRunEnv(t, runSettings{Source: fileSource})
	writeFile(t, doc, yamlDocument(t, document{Serial: 3, Port: e.port}))
	e.start()
	e.waitApplied(3, 10*time.Second)

	// A re-check with a new document compares it with the last-good copy.
	writeFile(t, doc, yamlDocument(t, document{Serial: 4, Master: "db-b", Port: e.port}))
	e.recheck <- struct{}{}
	e.waitApplied(4, 10*time.Second)
	if logs := e.logs.String(); strings.Contains(logs, "no longer validates") {
		t.Errorf("the re-check could not read the last-good copy of the YAML document:\n%s", logs)
	}
	e.cancel()
	if err := e.wait(20 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}

	// The node reboots with the source gone: it boots from the copy.
	if err := os.Remove(doc); err != nil {
		t.Fatal(err)
	}
	next := newRunEnv(t, runSettings{Source: fileSource})
	state := "var/lib/nodeagent"
	entries, err := os.ReadDir(filepath.Join(e.root, state))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), "topology.json") {
			b, err := os.ReadFile(filepath.Join(e.root, state, de.Name()))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(next.root, state, de.Name()), b)
		}
	}
	next.start()
	next.waitApplied(4, 10*time.Second)
	if !strings.Contains(next.logs.String(), "last-good copy") {
		t.Error("the log does not say the node booted from its last-good copy")
	}
}
