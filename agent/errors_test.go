package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/source"
)

// Errors are wrapped once, by the layer that knows the key: no layer repeats
// a prefix or a name another layer already gave.

// TestPlanErrorSaysPlanOnce provokes a plan error (a desired file's path is
// a directory) and checks that the message says "plan:" once and names the
// file once.
func TestPlanErrorSaysPlanOnce(t *testing.T) {
	e := newRunEnv(t, runSettings{})
	const file = "/etc/apache2/ports.conf"
	if err := os.MkdirAll(filepath.Join(e.root, file), 0o755); err != nil {
		t.Fatal(err)
	}
	doc := agent.NewDocument(document{Serial: 1, Port: e.port}.bytes(), `"e1"`, "test source", nodeagent.FormatJSON, false)
	_, err := e.agent.Prepare(context.Background(), testInstance(), doc)
	if err == nil {
		t.Fatalf("Prepare with %s a directory: no error", file)
	}
	msg := err.Error()
	if n := strings.Count(msg, "plan:"); n != 1 {
		t.Errorf("error says \"plan:\" %d times, want once: %s", n, msg)
	}
	if n := strings.Count(msg, file); n != 1 {
		t.Errorf("error names %s %d times, want once: %s", file, n, msg)
	}
	if !strings.Contains(msg, "not a regular file") {
		t.Errorf("error does not say what is wrong with %s: %s", file, msg)
	}
}

// TestReleaseDownloadErrorNamesReleaseOnce provokes a release download
// failure (the archive is missing) through the real release store and
// checks that the message names the release id, the product and the URL
// once each, and says nothing was changed.
func TestReleaseDownloadErrorNamesReleaseOnce(t *testing.T) {
	e := newRunEnv(t, runSettings{})
	opener, err := source.NewOpener(context.Background(), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.agent.Releases.Store = opener

	const id = "2026-05-06.1"
	url := "file://" + filepath.Join(t.TempDir(), "archives", "shop.tar.gz")
	body := strings.Replace(string(document{Serial: 1, Port: e.port}.bytes()),
		`"sessions": "memcached",`,
		`"sessions": "memcached", "release": {"id": "`+id+`", "url": "`+url+`", "sha256": "`+strings.Repeat("ab", 32)+`"},`, 1)
	doc := agent.NewDocument([]byte(body), `"e1"`, "test source", nodeagent.FormatJSON, false)
	p, err := e.agent.Prepare(context.Background(), testInstance(), doc)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	_, err = e.agent.ApplyOnce(context.Background(), p)
	if err == nil {
		t.Fatal("ApplyOnce with a missing release archive: no error")
	}
	msg := err.Error()
	t.Log(msg)
	for _, s := range []string{id, url, "release:"} {
		if n := strings.Count(msg, s); n != 1 {
			t.Errorf("error has %q %d times, want once: %s", s, n, msg)
		}
	}
	for _, s := range []string{"shop", "no such file", "nothing was changed"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not say %q: %s", s, msg)
		}
	}
}

// TestInvalidDocumentNamesItsSourceOnce refuses an invalid document and
// checks that the message names where it came from once.
func TestInvalidDocumentNamesItsSourceOnce(t *testing.T) {
	e := newRunEnv(t, runSettings{})
	const from = "s3://bucket/topology.json"
	body := strings.Replace(string(document{Serial: 1, Port: e.port}.bytes()), `"role": "cache"`, `"role": "nosuchrole"`, 1)
	_, err := e.agent.Prepare(context.Background(), testInstance(), agent.NewDocument([]byte(body), `"e1"`, from, nodeagent.FormatJSON, false))
	var refused *agent.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("Prepare of an invalid document: %v, want a RefusedError", err)
	}
	msg := err.Error()
	t.Log(msg)
	if n := strings.Count(msg, from); n != 1 {
		t.Errorf("error names %s %d times, want once: %s", from, n, msg)
	}
	for _, s := range []string{"nosuchrole", "refused", "nothing was changed"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not say %q: %s", s, msg)
		}
	}
}
