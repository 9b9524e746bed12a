package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/source"
)

// fileEnv is a run test whose topology is a file:// document, watched with
// fsnotify through the real file source.
func fileEnv(t *testing.T, settle, splay time.Duration) (*runEnv, string) {
	t.Helper()
	doc := filepath.Join(t.TempDir(), "topology.json")
	url := "file://" + doc
	e := newRunEnv(t, runSettings{
		Topology: url,
		Settle:   settle,
		Splay:    splay,
		Source: func(*runEnv) nodeagent.TopologySource {
			s, err := source.New(context.Background(), url, source.Options{})
			if err != nil {
				t.Fatalf("file source: %v", err)
			}
			return s
		},
	})
	return e, doc
}

// replace writes b next to path and renames it over path, as editors and
// deploy tools do.
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".topology.json.swp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRunWatchesTopologyFile: each way of changing the file is seen, and
// applied exactly once, with one php-fpm reload.
func TestRunWatchesTopologyFile(t *testing.T) {
	const settle = 300 * time.Millisecond
	tests := []struct {
		name   string
		change func(t *testing.T, path string, b []byte)
	}{
		{"replaced by rename", func(t *testing.T, path string, b []byte) { replace(t, path, b) }},
		{"edited in place, written in two parts", func(t *testing.T, path string, b []byte) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			half := len(b) / 2
			if _, err := f.Write(b[:half]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(settle / 5) // a half-written document is never applied
			if _, err := f.Write(b[half:]); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted and recreated at once", func(t *testing.T, path string, b []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			time.Sleep(settle / 5)
			writeFile(t, path, b)
		}},
		{"deleted, then recreated after the settle delay", func(t *testing.T, path string, b []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * settle)
			writeFile(t, path, b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, path := fileEnv(t, settle, 0)
			writeFile(t, path, document{Serial: 1, Port: e.port}.bytes())
			e.start()
			e.waitApplied(1, 10*time.Second)
			if strings.Contains(e.appConfig(), dbBIP) {
				t.Fatalf("app config names %s before the change", dbBIP)
			}

			reloads := e.phpReloads()
			w := e.watchReady()
			tt.change(t, path, document{Serial: 2, Master: "db-b", Port: e.port}.bytes())
			e.waitApplied(2, 10*time.Second)
			time.Sleep(3 * settle) // any second apply would come now
			if bad, n := w.end(); len(bad) > 0 {
				t.Errorf("/ready: %d of %d probes not 200: %q", len(bad), n, bad)
			}

			if !strings.Contains(e.appConfig(), dbBIP) || !strings.Contains(e.read("etc/hosts"), hostsLine(dbBIP, "dbserver")) {
				t.Errorf("app config or /etc/hosts lacks the new master %s:\n%s\n%s", dbBIP, e.appConfig(), e.read("etc/hosts"))
			}
			if got := e.applies("ok"); got != 2 {
				t.Errorf("applies ok = %d, want 2 (boot and the change)", got)
			}
			if got := e.polls("changed"); got != 1 {
				t.Errorf("polls changed = %d, want 1", got)
			}
			for _, r := range []string{"refused", "failed"} {
				if got := e.applies(r); got != 0 {
					t.Errorf("applies %s = %d, want 0", r, got)
				}
			}
			if got := e.phpReloads() - reloads; got != 1 {
				t.Errorf("php-fpm reloaded %d times for the change, want 1", got)
			}
		})
	}
}

// TestRunSettleFoldsBurst: five versions written in quick succession are
// applied once, as the last one.
func TestRunSettleFoldsBurst(t *testing.T) {
	const settle = 400 * time.Millisecond
	e, path := fileEnv(t, settle, 0)
	writeFile(t, path, document{Serial: 1, Port: e.port}.bytes())
	e.start()
	e.waitApplied(1, 10*time.Second)

	reloads := e.phpReloads()
	masters := []string{"db-b", "db-a", "db-b", "db-a", "db-b"}
	for i, m := range masters {
		replace(t, path, document{Serial: int64(i + 2), Master: m, Port: e.port}.bytes())
		time.Sleep(settle / 8)
	}
	e.waitApplied(int64(len(masters)+1), 10*time.Second)
	time.Sleep(2 * settle)
	if got := e.applies("ok"); got != 2 {
		t.Errorf("applies ok = %d, want 2: the burst of %d changes was not folded into one apply", got, len(masters))
	}
	if got := e.phpReloads() - reloads; got != 1 {
		t.Errorf("php-fpm reloaded %d times for the burst, want 1", got)
	}
}

// TestRunSplayDelaysApply: with a splay, the apply comes after settle and
// no later than settle + splay.
func TestRunSplayDelaysApply(t *testing.T) {
	const settle, splay = 100 * time.Millisecond, 500 * time.Millisecond
	e, path := fileEnv(t, settle, splay)
	writeFile(t, path, document{Serial: 1, Port: e.port}.bytes())
	e.start()
	e.waitApplied(1, 10*time.Second)

	start := time.Now()
	replace(t, path, document{Serial: 2, Master: "db-b", Port: e.port}.bytes())
	e.waitApplied(2, 10*time.Second)
	took := time.Since(start)
	if took < settle || took > settle+splay+2*time.Second {
		t.Errorf("applied %s after the change, want between %s and %s plus the apply", took, settle, settle+splay)
	}
}
