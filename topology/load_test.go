package topology_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		check func(t *testing.T, top *nodeagent.Topology)
	}{
		{
			name: "spec example",
			file: "example.json",
			check: func(t *testing.T, top *nodeagent.Topology) {
				if top.Serial != 42 || top.Domain != "internal" || len(top.Nodes) != 4 {
					t.Errorf("serial %d domain %q nodes %d, want 42 internal 4", top.Serial, top.Domain, len(top.Nodes))
				}
				shop := top.Products["shop"]
				if shop.Database.Master != "dbserver" || shop.Release.ID != "2026.11.20-1" || shop.Sessions != nodeagent.SessionsMemcached {
					t.Errorf("shop = %+v", shop)
				}
				if got := top.Groups["shop-web"].LaunchHook; got != "nodeagent-launch" {
					t.Errorf("launch hook %q", got)
				}
			},
		},
		{
			name: "spec example as yaml",
			file: "example.yaml",
			check: func(t *testing.T, top *nodeagent.Topology) {
				want, err := topology.Load(readTestdata(t, "example.json"), "example.json", nodeagent.FormatOf("example.json"))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, top); diff != "" {
					t.Errorf("yaml and json differ (-json +yaml):\n%s", diff)
				}
			},
		},
		{
			name: "cache only, defaults filled",
			file: "cache-only.json",
			check: func(t *testing.T, top *nodeagent.Topology) {
				m := top.Roles["cache"].Memcached
				if m == nil || m.Port != 11211 || m.MaxConnections != 1024 || m.MemoryMB != 0 {
					t.Errorf("memcached settings = %+v, want port 11211, 1024 connections, memory from the machine", m)
				}
				if top.Health.Path != "/nodeagent-health" || top.Apache.Port != 80 || top.Apache.Bind != nodeagent.BindAll {
					t.Errorf("health %+v apache %+v", top.Health, top.Apache)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := topology.Load(readTestdata(t, tt.file), tt.file, nodeagent.FormatOf(tt.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, top)
		})
	}
}

func TestApplyDefaults(t *testing.T) {
	d := exampleDoc(t)
	d.del(t, "products", "shop", "database", "port")
	d.del(t, "products", "shop", "cache", "port")
	d.del(t, "products", "shop", "sessions")
	d.del(t, "products", "shop", "php", "memory_limit")
	d.set(t, []any{map[string]any{"name": "home", "path": "/"}}, "products", "shop", "smoke")
	d.del(t, "health")
	d.del(t, "apache")
	d.del(t, "roles", "cache", "memcached")
	top, err := topology.Load(d.bytes(t), "defaults.json", nodeagent.FormatOf("defaults.json"))
	if err != nil {
		t.Fatal(err)
	}
	shop := top.Products["shop"]
	got := []any{shop.Database.Port, shop.Cache.Port, shop.Sessions, shop.PHP.MemoryLimit, shop.Smoke[0].Status,
		top.Health.Path, top.Apache.Port, top.Apache.Bind, top.Roles["cache"].Memcached.Port, top.Roles["cache"].Memcached.MaxConnections}
	want := []any{3306, 11211, "files", "128M", 200, "/nodeagent-health", 80, "all", 11211, 1024}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if top.Roles["db"].Memcached != nil {
		t.Errorf("db role got memcached settings: %+v", top.Roles["db"].Memcached)
	}

	again := *top
	topology.ApplyDefaults(&again)
	if diff := cmp.Diff(top, &again); diff != "" {
		t.Errorf("second ApplyDefaults changed the document:\n%s", diff)
	}
}

func TestApplyDefaultsKeepsSetValues(t *testing.T) {
	d := exampleDoc(t)
	d.set(t, 3307, "products", "shop", "database", "port")
	d.set(t, "private", "apache", "bind")
	d.set(t, map[string]any{"memory_mb": 64, "port": 11311, "max_connections": 10}, "roles", "cache", "memcached")
	top, err := topology.Load(d.bytes(t), "set.json", nodeagent.FormatOf("set.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := top.Products["shop"].Database.Port; got != 3307 {
		t.Errorf("database port %d, want 3307", got)
	}
	if top.Apache.Bind != "private" {
		t.Errorf("bind %q, want private", top.Apache.Bind)
	}
	if got := *top.Roles["cache"].Memcached; got != (nodeagent.MemcachedSettings{MemoryMB: 64, Port: 11311, MaxConnections: 10}) {
		t.Errorf("memcached %+v", got)
	}
}

func TestErrorsAs(t *testing.T) {
	d := exampleDoc(t).set(t, "nope", "products", "shop", "release", "sha256")
	_, err := topology.Load(d.bytes(t), "s3://b/topology.json", nodeagent.FormatOf("s3://b/topology.json"))
	if err == nil {
		t.Fatal("Load accepted a bad sha256")
	}
	if !strings.HasPrefix(err.Error(), "topology s3://b/topology.json: products.shop.release.sha256: must be 64 lowercase hex characters") {
		t.Errorf("message %q", err)
	}
	var ptr *topology.Errors
	if !errors.As(err, &ptr) || len(*ptr) != 1 {
		t.Fatalf("errors.As(*Errors) = %v, %v", ptr, err)
	}
	var val topology.Errors
	if !errors.As(err, &val) || len(val) != 1 || val[0].Path != "products.shop.release.sha256" {
		t.Fatalf("errors.As(Errors) = %v", val)
	}
	if got := val[0].Error(); got != "products.shop.release.sha256: must be 64 lowercase hex characters" {
		t.Errorf("FieldError.Error() = %q", got)
	}
}

func TestValidateNil(t *testing.T) {
	var errs *topology.Errors
	if err := topology.Validate(nil); !errors.As(err, &errs) {
		t.Fatalf("Validate(nil) = %v, want *Errors", err)
	}
}

func TestFleetReports(t *testing.T) {
	for _, reports := range []string{"s3://fleet-config/reports/", "s3://fleet-config/", "s3://fleet.config-1/a/b/"} {
		d := exampleDoc(t)
		d.set(t, map[string]any{"reports": reports}, "fleet")
		top, err := topology.Load(d.bytes(t), "fleet.json", nodeagent.FormatOf("fleet.json"))
		if err != nil {
			t.Fatalf("%s: %v", reports, err)
		}
		if top.Fleet == nil || top.Fleet.Reports != reports {
			t.Errorf("fleet %+v, want reports %s", top.Fleet, reports)
		}
	}
	bucket, prefix, err := topology.ParseReportsURL("s3://fleet-config/reports/eu/")
	if err != nil || bucket != "fleet-config" || prefix != "reports/eu/" {
		t.Errorf("ParseReportsURL = %q, %q, %v", bucket, prefix, err)
	}
}
