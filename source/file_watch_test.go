package source_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/source"
)

// TestFileSourceWatch: the file source says when its document changes,
// including an editor's replace-by-rename, and says nothing for a sibling
// file. Real fsnotify, so the waits are bounded, not exact.
func TestFileSourceWatch(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "topology.json")
	if err := os.WriteFile(doc, []byte(`{"serial": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := source.New(context.Background(), "file://"+doc, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, ok := s.(nodeagent.Watcher)
	if !ok {
		t.Fatalf("file source %T does not implement nodeagent.Watcher", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan string, 16)
	if err := w.Watch(ctx, func(why string) { events <- why }); err != nil {
		t.Fatal(err)
	}

	// A sibling file: no event for the document.
	if err := os.WriteFile(filepath.Join(dir, "other.json"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An editor's save: write a temp file, rename it over the document.
	tmp := filepath.Join(dir, ".topology.json.swp")
	if err := os.WriteFile(tmp, []byte(`{"serial": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, doc); err != nil {
		t.Fatal(err)
	}
	select {
	case why := <-events:
		if why == "" {
			t.Error("empty reason")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported within 10s of renaming a new document over the watched one")
	}
}

func TestNonFileSourcesAreNotWatchers(t *testing.T) {
	for _, url := range []string{"s3://bucket/topology.json", "https://config.example/topology.json"} {
		s, err := source.New(context.Background(), url, source.Options{AWS: nil, S3: s3ClientFor(t, "http://127.0.0.1:1")})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.(nodeagent.Watcher); ok {
			t.Errorf("%s: %T implements Watcher; the run loop would stop polling it", url, s)
		}
	}
}
