//go:build integration

package e2e_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
)

// cloneTopology deep-copies a document through JSON.
func cloneTopology(t *testing.T, doc nodeagent.Topology) nodeagent.Topology {
	t.Helper()
	var c nodeagent.Topology
	if err := json.Unmarshal(topologyJSON(t, doc), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBadInput(t *testing.T) {
	f, _, web := converge(t, buildRelease(t, "shop", "2026.05.01-1"))
	fresh := f.newNode(t, "web-5", 15, webGroup)

	tests := []struct {
		name     string
		edit     func(*nodeagent.Topology)
		wantPath string // the document path the error must name
	}{
		{
			name: "directive smuggled into server_name",
			edit: func(d *nodeagent.Topology) {
				p := d.Products[product]
				p.ServerName = "www.shop.example\n    Include /etc/shadow"
				d.Products[product] = p
			},
			wantPath: "products.shop.server_name",
		},
		{
			name: "directive smuggled into a server alias",
			edit: func(d *nodeagent.Topology) {
				p := d.Products[product]
				p.ServerAliases = []string{"shop.example Include /etc/shadow"}
				d.Products[product] = p
			},
			wantPath: "products.shop.server_aliases",
		},
		{
			name: "newline in a node name",
			edit: func(d *nodeagent.Topology) {
				d.Nodes["db-c\n10.0.0.1 www.bank.example"] = nodeagent.Node{IP: f.ip(33), Role: "db"}
			},
			wantPath: `nodes["db-c`,
		},
		{
			name: "quote and newline in a PHP env value",
			edit: func(d *nodeagent.Topology) {
				p := d.Products[product]
				p.PHP.Env = map[string]string{"APP_ENV": "e2e\"\nphp_admin_value[open_basedir] = \"/"}
				d.Products[product] = p
			},
			wantPath: "products.shop.php.env.APP_ENV",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := cloneTopology(t, f.doc)
			tt.edit(&doc)
			doc.Serial = f.doc.Serial + 1
			body := topologyJSON(t, doc)

			file := filepath.Join(t.TempDir(), "topology.json")
			if err := os.WriteFile(file, body, 0o644); err != nil {
				t.Fatal(err)
			}
			v := runAgent(t, web.env, "validate", file)
			if v.code != 1 {
				t.Errorf("validate: exit %d, want 1\n%s", v.code, v)
			}
			if !strings.Contains(v.stdout+v.stderr, tt.wantPath) {
				t.Errorf("validate does not name %s:\n%s", tt.wantPath, v)
			}

			f.putTopology(t, body)
			defer f.putTopology(t, topologyJSON(t, f.doc))

			t.Run("fresh node refuses it and writes nothing", func(t *testing.T) {
				before := snapshot(t, fresh.root)
				r := fresh.agent(t, "apply")
				if r.code != 1 {
					t.Fatalf("apply of an invalid document: exit %d, want 1\n%s", r.code, r)
				}
				if !strings.Contains(r.stderr, tt.wantPath) {
					t.Errorf("apply does not name %s:\n%s", tt.wantPath, r.stderr)
				}
				// The apply lock and the status file are the state dir's own.
				if diff := withoutPrefix(changed(before, snapshot(t, fresh.root), true), stateDir); len(diff) > 0 {
					t.Errorf("apply of an invalid document changed the node: %v", diff)
				}
				if _, err := os.Stat(fresh.path(stateDir + "/topology.json")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("invalid document kept as last-good copy (err %v)", err)
				}
				if got := fresh.execCalls(t); len(got) > 0 {
					t.Errorf("apply of an invalid document ran %v", got)
				}
			})

			t.Run("serving node refuses it, keeps serving and says why", func(t *testing.T) {
				before := snapshot(t, web.root)
				calls := len(web.execCalls(t))
				apachePid := web.pid(t, "apache2")
				r := web.agent(t, "apply")
				// The agent converges a serving node to its last-good copy
				// when a document is refused (agent commit 6beba34), so the
				// exit code is the last-good apply's; the refusal must be
				// reported and nothing may change.
				t.Logf("apply of an invalid document on a serving node: exit %d", r.code)
				// The refusal may only be in a log line, whose text format
				// escapes quotes.
				if !strings.Contains(strings.ReplaceAll(r.stderr, `\"`, `"`), tt.wantPath) {
					t.Errorf("apply does not name %s:\n%s", tt.wantPath, r.stderr)
				}
				if diff := withoutPrefix(changed(before, snapshot(t, web.root), true), bookkeeping...); len(diff) > 0 {
					t.Errorf("apply of an invalid document changed the node: %v", diff)
				}
				if got := web.execCalls(t)[calls:]; len(got) > 0 {
					t.Errorf("apply of an invalid document ran %v", got)
				}
				if now := web.pid(t, "apache2"); now != apachePid {
					t.Errorf("apache2 pid %d -> %d", apachePid, now)
				}
				st, _ := web.status(t)
				if !st.Ready || st.Serial != f.doc.Serial {
					t.Errorf("status after a refused document: %+v, want ready at serial %d", st, f.doc.Serial)
				}
				if !strings.Contains(st.LastError, tt.wantPath) {
					t.Errorf("status last_error %q does not name %s", st.LastError, tt.wantPath)
				}
				eventually(t, 5*time.Second, web.apacheURL(healthPath), serverName, 200, "")
			})
		})
	}

	t.Run("config refused by apache2ctl -t puts the previous files back", func(t *testing.T) {
		broken := web.path("etc/apache2/conf-enabled/zz-e2e-unmanaged.conf")
		if err := os.WriteFile(broken, []byte("ThisIsNotAnApacheDirective on\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := f.doc.Products[product]
		p.ServerAliases = append(p.ServerAliases, "shop2.example")
		f.doc.Products[product] = p
		f.publish(t)

		managed := []string{"etc/apache2/sites-enabled/nodeagent-shop.conf", "etc/apache2/ports.conf", "etc/hosts"}
		beforeBytes := fileBytes(t, web, managed...)
		before := snapshot(t, web.root)
		calls := len(web.execCalls(t))
		apachePid := web.pid(t, "apache2")

		r := web.agent(t, "apply")
		if r.code != 1 {
			t.Fatalf("apply with a tree apache2ctl refuses: exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "ThisIsNotAnApacheDirective") {
			t.Errorf("apply does not carry apache2ctl's reason:\n%s", r.stderr)
		}
		afterBytes := fileBytes(t, web, managed...)
		for _, rel := range managed {
			if beforeBytes[rel] != afterBytes[rel] {
				t.Errorf("%s not restored byte for byte:\n--- before\n%s\n--- after\n%s", rel, beforeBytes[rel], afterBytes[rel])
			}
		}
		if diff := withoutPrefix(changed(before, snapshot(t, web.root), false), bookkeeping...); len(diff) > 0 {
			t.Errorf("refused apply left changes behind: %v", diff)
		}
		if got := web.execCalls(t)[calls:]; len(got) > 0 {
			t.Errorf("refused apply ran %v, want no reload", got)
		}
		if now := web.pid(t, "apache2"); now != apachePid {
			t.Errorf("apache2 pid %d -> %d", apachePid, now)
		}
		t.Run("stays in service after the refused config", func(t *testing.T) {
			checkStaysInService(t, web)
		})

		// Once the operator removes the broken include, the same document
		// applies: only the vhost changes and only Apache reloads.
		if err := os.Remove(broken); err != nil {
			t.Fatal(err)
		}
		calls = len(web.execCalls(t))
		web.mustApply(t)
		if got := web.execCalls(t)[calls:]; len(got) != 1 || got[0] != "apache2 reload" {
			t.Errorf("apply after the fix ran %v, want [apache2 reload]", got)
		}
		eventually(t, 10*time.Second, web.apacheURL("/"), "shop2.example", 200, "Welcome")
	})
}
