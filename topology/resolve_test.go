package topology_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

func loadExample(t testing.TB) *nodeagent.Topology {
	t.Helper()
	top, err := topology.Load(readTestdata(t, "example.json"), "example.json", nodeagent.FormatOf("example.json"))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name string
		inst nodeagent.Instance
		o    nodeagent.Overrides
		want nodeagent.Identity
	}{
		{
			name: "instance id in nodes",
			inst: nodeagent.Instance{ID: "i-0a1b2c3d4e5f60003"},
			want: nodeagent.Identity{Node: "cache-1", Role: "cache", Why: "instance id i-0a1b2c3d4e5f60003 in nodes as cache-1"},
		},
		{
			name: "auto scaling group",
			inst: nodeagent.Instance{ID: "i-00000000000000abc", Group: "shop-web"},
			want: nodeagent.Identity{Role: "web", Products: []string{"shop"}, Group: "shop-web",
				LaunchHook: "nodeagent-launch", TerminateHook: "nodeagent-terminate", Why: "group shop-web"},
		},
		{
			name: "instance id wins over group",
			inst: nodeagent.Instance{ID: "i-0a1b2c3d4e5f60001", Group: "shop-web"},
			want: nodeagent.Identity{Node: "db-a", Role: "db", Group: "shop-web",
				LaunchHook: "nodeagent-launch", TerminateHook: "nodeagent-terminate", Why: "instance id i-0a1b2c3d4e5f60001 in nodes as db-a"},
		},
		{
			name: "role override keeps node name and hooks",
			inst: nodeagent.Instance{ID: "i-0a1b2c3d4e5f60001", Group: "shop-web"},
			o:    nodeagent.Overrides{Role: "web"},
			want: nodeagent.Identity{Node: "db-a", Role: "web", Products: []string{"shop"}, Group: "shop-web",
				LaunchHook: "nodeagent-launch", TerminateHook: "nodeagent-terminate", Why: "--role override"},
		},
		{
			name: "group override",
			inst: nodeagent.Instance{ID: "i-00000000000000abc"},
			o:    nodeagent.Overrides{Group: "shop-web"},
			want: nodeagent.Identity{Role: "web", Products: []string{"shop"}, Group: "shop-web",
				LaunchHook: "nodeagent-launch", TerminateHook: "nodeagent-terminate", Why: "--group override shop-web"},
		},
		{
			name: "role and products override",
			inst: nodeagent.Instance{},
			o:    nodeagent.Overrides{Role: "web", Products: []string{"shop"}},
			want: nodeagent.Identity{Role: "web", Products: []string{"shop"}, Why: "--role override, --products override"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := topology.Resolve(loadExample(t), tt.inst, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveFails(t *testing.T) {
	tests := []struct {
		name      string
		inst      nodeagent.Instance
		o         nodeagent.Overrides
		notFound  bool
		mentioned []string
	}{
		{
			name:      "unknown instance and group",
			inst:      nodeagent.Instance{ID: "i-0fffffffffffffff0", Group: "blog-web"},
			notFound:  true,
			mentioned: []string{"i-0fffffffffffffff0", "blog-web", "add the instance id to a node", "groups", "--role"},
		},
		{
			name:      "unknown instance without a group",
			inst:      nodeagent.Instance{ID: "i-0fffffffffffffff0"},
			notFound:  true,
			mentioned: []string{"i-0fffffffffffffff0", "no Auto Scaling group", "--role"},
		},
		{
			name:      "unknown role override",
			o:         nodeagent.Overrides{Role: "mail"},
			notFound:  true,
			mentioned: []string{"--role mail", "known: cache, db, web"},
		},
		{
			name:      "unknown group override",
			o:         nodeagent.Overrides{Group: "blog-web"},
			notFound:  true,
			mentioned: []string{"--group blog-web", "known: shop-web"},
		},
		{
			name:      "unknown product override",
			o:         nodeagent.Overrides{Role: "web", Products: []string{"blog"}},
			mentioned: []string{"--products blog", "known: shop"},
		},
		{
			name:      "products on a role without apache",
			o:         nodeagent.Overrides{Role: "cache", Products: []string{"shop"}},
			mentioned: []string{"role cache runs memcached"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := topology.Resolve(loadExample(t), tt.inst, tt.o)
			if err == nil {
				t.Fatalf("Resolve = %+v, want an error", id)
			}
			if got := errors.Is(err, topology.ErrNoIdentity); got != tt.notFound {
				t.Errorf("errors.Is(ErrNoIdentity) = %v, want %v (%v)", got, tt.notFound, err)
			}
			for _, m := range tt.mentioned {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestResolveDoesNotShareSlices(t *testing.T) {
	top := loadExample(t)
	id, err := topology.Resolve(top, nodeagent.Instance{Group: "shop-web"}, nodeagent.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	id.Products[0] = "changed"
	if got := top.Roles["web"].Products[0]; got != "shop" {
		t.Errorf("changing the identity changed the topology: roles.web.products[0] = %q", got)
	}
}
