package topology_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

func TestChanges(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, d doc)
		want   []string
	}{
		{name: "same document", mutate: func(*testing.T, doc) {}, want: nil},
		{
			name: "master alias moves to the replica",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "db-b", "aliases", "dbserver")
				d.set(t, "db-a", "aliases", "replserver")
			},
			want: []string{"aliases.dbserver", "aliases.replserver"},
		},
		{
			name: "new release",
			mutate: func(t *testing.T, d doc) {
				d.set(t, 43, "serial")
				d.set(t, "2026.11.21-1", "products", "shop", "release", "id")
				d.set(t, "s3://releases/shop/2026.11.21-1.tar.gz", "products", "shop", "release", "url")
			},
			want: []string{"products.shop.release.id", "products.shop.release.url", "serial"},
		},
		{
			name: "cache node added",
			mutate: func(t *testing.T, d doc) {
				d.set(t, map[string]any{"ip": "10.0.3.20", "role": "cache"}, "nodes", "cache-3")
				d.set(t, []any{"cache-1", "cache-2", "cache-3"}, "products", "shop", "cache", "nodes")
			},
			want: []string{"nodes.cache-3", "products.shop.cache.nodes"},
		},
		{
			name:   "node ip changes",
			mutate: func(t *testing.T, d doc) { d.set(t, "10.0.2.11", "nodes", "db-b", "ip") },
			want:   []string{"nodes.db-b.ip"},
		},
		{
			name: "node removed",
			mutate: func(t *testing.T, d doc) {
				d.del(t, "nodes", "db-b").del(t, "aliases", "replserver").del(t, "products", "shop", "database", "replicas")
			},
			want: []string{"aliases.replserver", "nodes.db-b", "products.shop.database.replicas"},
		},
		{
			name:   "database master renamed directly",
			mutate: func(t *testing.T, d doc) { d.set(t, "db-b", "products", "shop", "database", "master") },
			want:   []string{"products.shop.database.master"},
		},
		{
			name:   "release removed",
			mutate: func(t *testing.T, d doc) { d.del(t, "products", "shop", "release") },
			want:   []string{"products.shop.release"},
		},
		{
			name: "env value and smoke check",
			mutate: func(t *testing.T, d doc) {
				d.set(t, "staging", "products", "shop", "php", "env", "APP_ENV")
				d.set(t, []any{}, "products", "shop", "smoke")
			},
			want: []string{"products.shop.php.env.APP_ENV", "products.shop.smoke"},
		},
		{
			name:   "memcached memory",
			mutate: func(t *testing.T, d doc) { d.set(t, 512, "roles", "cache", "memcached", "memory_mb") },
			want:   []string{"roles.cache.memcached.memory_mb"},
		},
	}
	prev := loadExample(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := exampleDoc(t)
			tt.mutate(t, d)
			next, err := topology.Load(d.bytes(t), "next.json", nodeagent.FormatOf("next.json"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, topology.Changes(prev, next)); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangesEdges(t *testing.T) {
	next := loadExample(t)
	if got := topology.Changes(nil, next); got != nil {
		t.Errorf("Changes(nil, next) = %v, want nil", got)
	}
	empty := &nodeagent.Topology{Aliases: map[string]string{}}
	if got := topology.Changes(empty, &nodeagent.Topology{}); got != nil {
		t.Errorf("an empty and a nil map differ: %v", got)
	}
	got := topology.Changes(&nodeagent.Topology{Serial: 1}, &nodeagent.Topology{Serial: 1, Health: nodeagent.Health{Path: "/h"}})
	if diff := cmp.Diff([]string{"health.path"}, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}
