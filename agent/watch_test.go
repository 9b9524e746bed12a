package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
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

// watchEnv is a run test whose source reports changes as a watched file
// does, driven by the test on the bubble's clock.
func watchEnv(t *testing.T, settle, splay time.Duration) (*runEnv, *objectStore, *watchSource) {
	t.Helper()
	store := &objectStore{}
	src := &watchSource{fakeSource: store.source()}
	e := newRunEnv(t, runSettings{
		Source:   func(*runEnv) nodeagent.TopologySource { return src },
		Settle:   settle,
		Splay:    splay,
		InMemory: true,
	})
	return e, store, src
}

// TestRunSettleFoldsBurst: five versions written in quick succession are
// applied once, as the last one, exactly settle after the last change.
func TestRunSettleFoldsBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settle = 400 * time.Millisecond
		e, store, src := watchEnv(t, settle, 0)
		store.put(document{Serial: 1, Port: e.port}.bytes())
		e.start()
		synctest.Wait()
		e.checkApplied(1)

		reloads := e.phpReloads()
		masters := []string{"db-b", "db-a", "db-b", "db-a", "db-b"}
		var last time.Time
		for i, m := range masters {
			if i > 0 {
				time.Sleep(settle / 8)
			}
			store.put(document{Serial: int64(i + 2), Master: m, Port: e.port}.bytes())
			src.changed()
			last = time.Now()
		}
		time.Sleep(settle - time.Nanosecond)
		synctest.Wait()
		if n := len(store.fetchTimes()); n != 1 {
			t.Fatalf("%d fetches before the settle delay after the last change ended, want 1 (the boot fetch)", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		e.checkApplied(int64(len(masters) + 1))
		if times := store.fetchTimes(); len(times) != 2 || times[1].Sub(last) != settle {
			t.Errorf("fetches at %v, want the boot fetch and one %s after the last change (%v)", times, settle, last)
		}
		time.Sleep(10 * settle)
		synctest.Wait()
		if got := e.applies("ok"); got != 2 {
			t.Errorf("applies ok = %d, want 2: the burst of %d changes was not folded into one apply", got, len(masters))
		}
		if got := e.phpReloads() - reloads; got != 1 {
			t.Errorf("php-fpm reloaded %d times for the burst, want 1", got)
		}
	})
}

// TestRunSplayDelaysApply: with a splay, each change is checked no sooner
// than settle and sooner than settle + splay after it, and not always at
// the same point of the splay.
func TestRunSplayDelaysApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settle, splay = 100 * time.Millisecond, 500 * time.Millisecond
		e, store, src := watchEnv(t, settle, splay)
		store.put(document{Serial: 1, Port: e.port}.bytes())
		e.start()
		synctest.Wait()
		e.checkApplied(1)

		const changes = 20
		delays := map[time.Duration]bool{}
		for i := range changes {
			serial := int64(i + 2)
			store.put(document{Serial: serial, Port: e.port}.bytes())
			changed := time.Now()
			src.changed()
			time.Sleep(settle - time.Nanosecond)
			synctest.Wait()
			if n := len(store.fetchTimes()); n != i+1 {
				t.Fatalf("change %d: fetched before the settle delay", i)
			}
			time.Sleep(splay + time.Nanosecond)
			synctest.Wait()
			e.checkApplied(serial)
			times := store.fetchTimes()
			if len(times) != i+2 {
				t.Fatalf("change %d: %d fetches, want %d", i, len(times), i+2)
			}
			d := times[i+1].Sub(changed)
			if d < settle || d >= settle+splay {
				t.Errorf("change %d checked %s after it, want [%s, %s)", i, d, settle, settle+splay)
			}
			delays[d] = true
		}
		if len(delays) < 2 {
			t.Errorf("%d changes all checked %v after the change: the splay is not random", changes, delays)
		}
	})
}
