//go:build integration

package publish

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// stored decodes the current document's aliases and databases.
type stored struct {
	Serial   int64
	Domain   string
	Aliases  map[string]string
	Products map[string]struct {
		Database struct {
			Master   string
			Replicas []string
		}
	}
}

func (s *store) current(t *testing.T) stored {
	t.Helper()
	var v stored
	if err := json.Unmarshal(s.get(key), &v); err != nil {
		t.Fatalf("current document: %v", err)
	}
	return v
}

// TestFailoverAndRollback: the seeds' failover on MinIO (the alias swap, a
// product's own master, "already the master"), a failover recomputed when
// another publish lands between its read and its write, and a rollback to
// a kept serial.
func TestFailoverAndRollback(t *testing.T) {
	s := newStore(t)
	env := s.env()
	first := document(t, 1, "internal")
	s.put(key, first)
	topo := "--topology=" + docURL

	t.Run("alias failover swaps master and replica", func(t *testing.T) {
		r := run(t, env, "topology", "failover", "--alias", "dbserver", "--to", "db-b", "--old-master-as-replica", topo)
		if r.code != 0 || !strings.Contains(r.stdout, "failover: database master db-a -> db-b for [shop]") ||
			!strings.Contains(r.stdout, "published serial 2 to "+docURL+"; serial 1 kept as s3://"+bucket+"/prod/history/1.json") {
			t.Fatalf("want serial 2 published:\n%s", r)
		}
		cur := s.current(t)
		if cur.Serial != 2 || cur.Aliases["dbserver"] != "db-b" || cur.Aliases["replserver"] != "db-a" {
			t.Fatalf("current: serial %d, aliases %v; want 2, dbserver db-b, replserver db-a", cur.Serial, cur.Aliases)
		}
		if got := s.get("prod/history/1.json"); !bytes.Equal(got, first) {
			t.Fatal("history/1.json is not serial 1 as published")
		}
	})

	t.Run("already the master publishes nothing", func(t *testing.T) {
		r := run(t, env, "topology", "failover", "--alias", "dbserver", "--to", "db-b", topo)
		if r.code != 0 || !strings.Contains(r.stdout, "db-b is already the master") {
			t.Fatalf("want nothing to do:\n%s", r)
		}
		if got := s.current(t).Serial; got != 2 {
			t.Fatalf("serial %d, want 2", got)
		}
	})

	t.Run("--wait without reports publishes nothing", func(t *testing.T) {
		r := run(t, env, "topology", "failover", "--product", "shop", "--to", "db-a", topo, "--wait")
		if r.code != 2 || !strings.Contains(r.stderr, "--wait follows the node reports, but "+docURL+" names none") {
			t.Fatalf("want a usage error:\n%s", r)
		}
		if got := s.current(t).Serial; got != 2 {
			t.Fatalf("serial %d, want 2 (nothing published)", got)
		}
	})

	t.Run("not a database node", func(t *testing.T) {
		r := run(t, env, "topology", "failover", "--product", "shop", "--to", "cache-1", topo)
		if r.code != 1 || !strings.Contains(r.stderr, `cache-1 has role "cache", but the master db-b has role "db"`) {
			t.Fatalf("want a refusal:\n%s", r)
		}
	})

	t.Run("recomputed when someone publishes meanwhile", func(t *testing.T) {
		// After the failover read serial 2, another operator publishes
		// serial 3 (a new domain) before the failover writes.
		hold := make(chan struct{})
		s.proxy.order(hold, func(n int) {
			if n == 1 {
				s.put(key, document3(t, s))
				close(hold)
			}
		})
		defer s.proxy.order(nil, nil)
		r := run(t, env, "topology", "failover", "--product", "blog", "--to", "db-b", topo)
		if r.code != 0 || !strings.Contains(r.stdout, "published serial 4") {
			t.Fatalf("want serial 4 published on top of the other publish:\n%s", r)
		}
		cur := s.current(t)
		blog := cur.Products["blog"].Database
		if cur.Serial != 4 || cur.Domain != "other.internal" || blog.Master != "db-b" || len(blog.Replicas) != 1 || blog.Replicas[0] != "db-a" {
			t.Fatalf("current: %+v; want serial 4, the other publish's domain, blog master db-b", cur)
		}
		if got := s.current(t).Aliases["dbserver"]; got != "db-b" {
			t.Errorf("a product failover moved aliases.dbserver to %s", got)
		}
		if h := s.get("prod/history/3.json"); h == nil || !strings.Contains(string(h), "other.internal") {
			t.Errorf("history/3.json:\n%s\nwant the other operator's serial 3", h)
		}
	})

	t.Run("rollback republishes a kept serial", func(t *testing.T) {
		r := run(t, env, "topology", "rollback", "--to", "1", topo)
		if r.code != 0 || !strings.Contains(r.stdout, "rollback: the document of serial 1 (s3://"+bucket+"/prod/history/1.json) as serial 5") ||
			!strings.Contains(r.stdout, "published serial 5") {
			t.Fatalf("want serial 5 published:\n%s", r)
		}
		want := bytes.Replace(first, []byte(`"serial": 1`), []byte(`"serial": 5`), 1)
		if got := s.get(key); !bytes.Equal(got, want) {
			t.Fatalf("current:\n%s\nwant serial 1's bytes as serial 5:\n%s", got, want)
		}
		if h := s.get("prod/history/4.json"); h == nil || !strings.Contains(string(h), `"serial": 4`) {
			t.Errorf("history/4.json missing or wrong:\n%s", h)
		}
	})

	t.Run("rollback to the current serial", func(t *testing.T) {
		r := run(t, env, "topology", "rollback", "--to", "5", topo)
		if r.code != 1 || !strings.Contains(r.stderr, "serial 5 is the document published now") {
			t.Fatalf("want a refusal:\n%s", r)
		}
	})

	t.Run("rollback to a serial never kept", func(t *testing.T) {
		r := run(t, env, "topology", "rollback", "--to", "99", topo)
		if r.code != 1 || !strings.Contains(r.stderr, "no s3://"+bucket+"/prod/history/99.json") {
			t.Fatalf("want a refusal naming the missing history:\n%s", r)
		}
	})
}

// document3 is serial 2 as stored with the serial 3 and another domain:
// what another operator publishes in between.
func document3(t *testing.T, s *store) []byte {
	t.Helper()
	b := s.get(key)
	b = bytes.Replace(b, []byte(`"serial": 2`), []byte(`"serial": 3`), 1)
	return bytes.Replace(b, []byte(`"domain": "internal"`), []byte(`"domain": "other.internal"`), 1)
}
