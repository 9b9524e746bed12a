package source_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/source"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestLastGoodRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "nodeagent")
	lg := source.LastGood{Path: filepath.Join(dir, "topology.json")}

	_, _, _, err := lg.Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of nothing = %v, want ErrNotExist", err)
	}
	if lg.Exists() {
		t.Error("Exists with nothing saved = true")
	}

	steps := []struct {
		body, etag string
		format     nodeagent.Format
	}{
		{docV1, `"etag-1"`, nodeagent.FormatJSON},
		{docV2, `"etag-2"`, ""},
		{docV1, "", nodeagent.FormatJSON}, // a source without ETags: the old ETag must not survive
		{"serial: 3\n", `"etag-3"`, nodeagent.FormatYAML},
		{docV2, `"etag-4"`, nodeagent.FormatJSON}, // nor the old format
	}
	for i, s := range steps {
		if err := lg.Save([]byte(s.body), s.etag, s.format); err != nil {
			t.Fatalf("step %d: Save: %v", i, err)
		}
		body, etag, format, err := lg.Load()
		if err != nil {
			t.Fatalf("step %d: Load: %v", i, err)
		}
		if !lg.Exists() {
			t.Errorf("step %d: Exists after Save = false", i)
		}
		wantFormat := s.format
		if wantFormat == "" {
			wantFormat = nodeagent.FormatJSON
		}
		if string(body) != s.body || etag != s.etag || format != wantFormat {
			t.Errorf("step %d: Load = %q, %q, %q; want %q, %q, %q", i, body, etag, format, s.body, s.etag, wantFormat)
		}
		want := []string{"topology.json"}
		if s.etag != "" {
			want = append(want, "topology.json.etag")
		}
		if s.format == nodeagent.FormatYAML {
			want = append(want, "topology.json.format")
		}
		if got := dirNames(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("step %d: state dir holds %q, want %q (no temporary files)", i, got, want)
		}
	}
	fi, err := os.Stat(lg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the document may hold a presigned URL)", fi.Mode().Perm())
	}
}

// Exists is true only for a regular file: a directory or a symlink in the
// copy's place is no copy (Load refuses both).
func TestLastGoodExistsOnlyForAFile(t *testing.T) {
	dir := t.TempDir()
	for name, plant := range map[string]func(p string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
		"symlink":   func(p string) error { return os.Symlink("elsewhere.json", p) },
	} {
		lg := source.LastGood{Path: filepath.Join(dir, name+".json")}
		if err := plant(lg.Path); err != nil {
			t.Fatal(err)
		}
		if lg.Exists() {
			t.Errorf("Exists with a %s in place = true", name)
		}
		if _, _, _, err := lg.Load(); err == nil {
			t.Errorf("Load of a %s: no error", name)
		}
	}
}

func TestLastGoodFailedSaveLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: the rename must fail.
	target := filepath.Join(dir, "topology.json")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := source.LastGood{Path: target}.Save([]byte(docV1), `"e"`, nodeagent.FormatJSON)
	if err == nil {
		t.Fatal("Save onto a directory succeeded")
	}
	wantErrContains(t, err, "topology.json")
	if got := dirNames(t, dir); fmt.Sprint(got) != "[topology.json]" {
		t.Errorf("dir holds %q after a failed save, want only the directory", got)
	}
}

// TestLastGoodReadersNeverSeeATornWrite saves large documents while others
// load: every load is one whole document.
func TestLastGoodReadersNeverSeeATornWrite(t *testing.T) {
	lg := source.LastGood{Path: filepath.Join(t.TempDir(), "topology.json")}
	docs := [][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 1<<20), bytes.Repeat([]byte("c"), 1<<19)}
	if err := lg.Save(docs[0], "", nodeagent.FormatJSON); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 2 {
		wg.Go(func() {
			for i := range 10 {
				if err := lg.Save(docs[(w+i)%len(docs)], "", nodeagent.FormatJSON); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 30 {
				body, _, _, err := lg.Load()
				if err != nil {
					errs <- err
					return
				}
				whole := false
				for _, d := range docs {
					whole = whole || bytes.Equal(body, d)
				}
				if !whole {
					errs <- fmt.Errorf("torn read: %d bytes", len(body))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := dirNames(t, filepath.Dir(lg.Path)); fmt.Sprint(got) != "[topology.json]" {
		t.Errorf("dir holds %q, want no temporary files", got)
	}
}
