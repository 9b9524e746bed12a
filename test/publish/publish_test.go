//go:build integration

package publish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// document is testdata/topology.json with its serial and domain set: the
// domain tells two documents of one serial apart.
func document(t *testing.T, serial int64, domain string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/topology.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"serial": 42`, fmt.Sprintf(`"serial": %d`, serial), 1)
	s = strings.Replace(s, `"domain": "internal"`, fmt.Sprintf(`"domain": %q`, domain), 1)
	return []byte(s)
}

// serialOf reads the serial of a stored document.
func serialOf(t *testing.T, body []byte) int64 {
	t.Helper()
	var v struct{ Serial int64 }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("stored document: %v\n%s", err, body)
	}
	return v.Serial
}

// TestPublish walks one document key through a publisher's day: the first
// publish, the refusals, a dry run, --bump, the node-drop guard.
func TestPublish(t *testing.T) {
	s := newStore(t)
	env := s.env()
	publish := func(t *testing.T, body []byte, flags ...string) result {
		t.Helper()
		file := writeFile(t, "topology.json", body)
		return run(t, env, append([]string{"topology", "publish", file, "--to", docURL}, flags...)...)
	}
	first := document(t, 1, "internal")

	t.Run("first publish creates the document", func(t *testing.T) {
		r := publish(t, first)
		if r.code != 0 || !strings.Contains(r.stdout, "nothing published yet; serial 1 is the first document") || !strings.Contains(r.stdout, "published serial 1 to "+docURL) {
			t.Fatalf("want a first publish:\n%s", r)
		}
		if got := s.get(key); !bytes.Equal(got, first) {
			t.Fatalf("stored document:\n%s\nwant the file's bytes:\n%s", got, first)
		}
		if ks := s.keys(); !slices.Equal(ks, []string{key}) {
			t.Errorf("objects %q, want only %s (nothing to keep before the first)", ks, key)
		}
	})

	t.Run("a first publish never replaces a document", func(t *testing.T) {
		// Someone created the document while this publisher believed
		// there was none: the If-None-Match write is refused.
		other := document(t, 9, "other.internal")
		s.proxy.order(nil, func(n int) {
			if n == 1 {
				// Replaced after the read, before the write.
				s.put(key, other)
			}
		})
		defer s.proxy.order(nil, nil)
		s.delete(key)
		r := publish(t, first)
		if r.code != 1 || !strings.Contains(r.stderr, "someone published serial 9 meanwhile at "+docURL+"; re-run to publish on top of it") {
			t.Fatalf("want a refusal naming serial 9:\n%s", r)
		}
		if got := s.get(key); !bytes.Equal(got, other) {
			t.Fatalf("stored document:\n%s\nwant the other publisher's", got)
		}
		s.put(key, first) // back to serial 1
	})

	t.Run("same serial refused", func(t *testing.T) {
		r := publish(t, document(t, 1, "changed.internal"))
		if r.code != 1 || !strings.Contains(r.stderr, "has serial 1, not above serial 1 at "+docURL) || !strings.Contains(r.stderr, "--bump to take serial 2") {
			t.Fatalf("want a refusal:\n%s", r)
		}
		if got := s.get(key); !bytes.Equal(got, first) {
			t.Fatal("a refused publish changed the document")
		}
	})

	t.Run("dry run writes nothing", func(t *testing.T) {
		r := publish(t, document(t, 2, "changed.internal"), "--dry-run")
		if r.code != 0 || !strings.Contains(r.stdout, docURL+": serial 1 -> 2, 2 changed path(s):\n  domain\n  serial\n") || !strings.Contains(r.stdout, "dry run: nothing written") {
			t.Fatalf("want the change printed:\n%s", r)
		}
		if got := s.get(key); !bytes.Equal(got, first) {
			t.Fatal("a dry run changed the document")
		}
		if ks := s.keys(); !slices.Equal(ks, []string{key}) {
			t.Errorf("objects %q after a dry run, want only %s", ks, key)
		}
	})

	t.Run("bump publishes current+1 and keeps the previous", func(t *testing.T) {
		body := document(t, 1, "changed.internal")
		r := publish(t, body, "--bump")
		if r.code != 0 || !strings.Contains(r.stdout, "serial 1 -> 2 (the document said 1)") ||
			!strings.Contains(r.stdout, "published serial 2 to "+docURL+"; serial 1 kept as s3://"+bucket+"/prod/history/1.json") {
			t.Fatalf("want serial 2 published:\n%s", r)
		}
		want := bytes.Replace(body, []byte(`"serial": 1`), []byte(`"serial": 2`), 1)
		if got := s.get(key); !bytes.Equal(got, want) {
			t.Fatalf("stored document:\n%s\nwant the file with only its serial changed:\n%s", got, want)
		}
		if got := s.get("prod/history/1.json"); !bytes.Equal(got, first) {
			t.Fatalf("history/1.json:\n%s\nwant serial 1 as it was published", got)
		}
	})

	t.Run("invalid document: validate's message", func(t *testing.T) {
		bad := bytes.Replace(document(t, 3, "internal"), []byte(`"master": "db-c"`), []byte(`"master": "db-x"`), 1)
		bad = bytes.Replace(bad, []byte(`"role": "cache"`), []byte(`"role": "cahce"`), 1)
		file := writeFile(t, "topology.json", bad)
		r := run(t, env, "topology", "publish", file, "--to", docURL)
		v := run(t, env, "validate", file)
		if r.code != 1 || v.code != 1 || r.stdout != v.stdout || !strings.Contains(r.stdout, "3 problem(s)") {
			t.Fatalf("want publish to say what validate says:\n%s\n%s", r, v)
		}
		if !strings.Contains(r.stderr, file+" is invalid; fix the fields above and validate again") {
			t.Errorf("stderr %q, want validate's advice", r.stderr)
		}
		if got := serialOf(t, s.get(key)); got != 2 {
			t.Fatalf("serial %d after an invalid publish, want 2", got)
		}
	})

	t.Run("node-drop guard", func(t *testing.T) {
		dropped := string(document(t, 3, "internal"))
		for _, cut := range []string{
			`"db-c":    {"ip": "10.0.3.10", "role": "db",    "az": "us-east-1c"},`,
			`"cache-1": {"ip": "10.0.1.20", "role": "cache", "az": "us-east-1a"},`,
			`"db-a":    {"ip": "10.0.1.10", "role": "db",    "az": "us-east-1a"},`,
		} {
			dropped = strings.Replace(dropped, cut, "", 1)
		}
		dropped = strings.NewReplacer(
			`"master": "db-c", "replicas": ["db-a"]`, `"master": "db-b"`,
			`"aliases": {"dbserver": "db-a", "replserver": "db-b"}`, `"aliases": {"dbserver": "db-b"}`,
			`"replicas": ["replserver"], `, ``,
			`["cache-1", "cache-2"]`, `["cache-2"]`,
		).Replace(dropped)
		r := publish(t, []byte(dropped))
		if r.code != 1 || !strings.Contains(r.stderr, "drops 3 of 5 nodes (cache-1, db-a, db-c)") || !strings.Contains(r.stderr, "--allow-node-drop") {
			t.Fatalf("want the guard:\n%s", r)
		}
		if got := serialOf(t, s.get(key)); got != 2 {
			t.Fatalf("serial %d after a guarded publish, want 2", got)
		}
		r = publish(t, []byte(dropped), "--allow-node-drop")
		if r.code != 0 {
			t.Fatalf("want --allow-node-drop to publish:\n%s", r)
		}
		if got := s.get(key); got == nil || !bytes.Equal(got, []byte(dropped)) {
			t.Fatalf("stored:\n%s\nwant the dropping document", got)
		}
	})
}

// TestConcurrentPublish: two operators publish serial 2 on top of serial 1
// at once. The proxy holds both writes until both have read serial 1, so
// the race happens every run. Exactly one lands; the other is told who won
// and changes nothing; the winner's document is current and serial 1 is
// kept. The same holds for two first publishes (If-None-Match).
func TestConcurrentPublish(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start []byte // the document before the race; nil: none
		want  int64  // the serial both publish
	}{
		{name: "on top of serial 1", start: document(t, 1, "internal"), want: 2},
		{name: "two first publishes", want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if tc.start != nil {
				s.put(key, tc.start)
			}
			hold := make(chan struct{})
			var once sync.Once
			s.proxy.order(hold, func(n int) {
				if n == 2 {
					once.Do(func() { close(hold) })
				}
			})
			docs := [2][]byte{document(t, tc.want, "alice.internal"), document(t, tc.want, "bob.internal")}
			var results [2]result
			var wg sync.WaitGroup
			for i := range docs {
				file := writeFile(t, fmt.Sprintf("topology-%d.json", i), docs[i])
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = run(t, s.env(), "topology", "publish", file, "--to", docURL)
				}()
			}
			wg.Wait()
			var won, lost []int
			for i, r := range results {
				switch r.code {
				case 0:
					won = append(won, i)
				case 1:
					lost = append(lost, i)
				}
			}
			if len(won) != 1 || len(lost) != 1 {
				t.Fatalf("want one success and one refusal:\n%s\n%s", results[0], results[1])
			}
			w, l := won[0], lost[0]
			msg := fmt.Sprintf("someone published serial %d meanwhile at %s; re-run to publish on top of it", tc.want, docURL)
			if !strings.Contains(results[l].stderr, msg) {
				t.Errorf("loser's stderr:\n%s\nwant %q", results[l].stderr, msg)
			}
			if got := s.get(key); !bytes.Equal(got, docs[w]) {
				t.Errorf("current document:\n%s\nwant the winner's:\n%s", got, docs[w])
			}
			if tc.start != nil {
				if got := s.get("prod/history/1.json"); !bytes.Equal(got, tc.start) {
					t.Errorf("history/1.json:\n%s\nwant serial 1 intact:\n%s", got, tc.start)
				}
			}
			// Nothing but the document and the one kept serial.
			want := []string{key}
			if tc.start != nil {
				want = []string{"prod/history/1.json", key}
			}
			if ks := s.keys(); !slices.Equal(ks, want) {
				t.Errorf("objects %q, want %q", ks, want)
			}
		})
	}
}
