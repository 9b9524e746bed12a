package topology_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

func TestCheckSuccessor(t *testing.T) {
	prev := loadExample(t) // serial 42, nodes db-a db-b cache-1 cache-2
	next := func(serial int64, keep ...string) *nodeagent.Topology {
		n := *prev
		n.Serial = serial
		n.Nodes = map[string]nodeagent.Node{}
		for _, k := range keep {
			n.Nodes[k] = prev.Nodes[k]
		}
		return &n
	}
	all := []string{"db-a", "db-b", "cache-1", "cache-2"}
	tests := []struct {
		name    string
		prev    *nodeagent.Topology
		next    *nodeagent.Topology
		g       topology.Guards
		want    []error
		mention []string
	}{
		{name: "higher serial", prev: prev, next: next(43, all...)},
		{name: "equal serial is the same document again", prev: prev, next: next(42, all...)},
		{name: "nothing applied yet", prev: nil, next: next(1)},
		{
			name: "lower serial", prev: prev, next: next(41, all...),
			want: []error{topology.ErrStaleSerial}, mention: []string{"serial 41 is lower than the applied serial 42"},
		},
		{name: "lower serial allowed", prev: prev, next: next(41, all...), g: topology.Guards{AllowLowerSerial: true}},
		{
			name: "equal serial with different content", prev: prev, next: next(42, "db-a", "db-b", "cache-1"),
			want: []error{topology.ErrSameSerial}, mention: []string{"serial 42 is the applied serial but the document differs (nodes.cache-2)", "bump the serial"},
		},
		{name: "equal serial with different content allowed", prev: prev, next: next(42, "db-a", "db-b", "cache-1"), g: topology.Guards{AllowLowerSerial: true}},
		{name: "half the nodes dropped is fine", prev: prev, next: next(43, "db-a", "cache-1")},
		{
			name: "more than half dropped", prev: prev, next: next(43, "db-a"),
			want: []error{topology.ErrNodesDropped}, mention: []string{"drops 3 of 4 nodes (cache-1, cache-2, db-b)"},
		},
		{name: "drop allowed", prev: prev, next: next(43), g: topology.Guards{AllowNodeDrop: true}},
		{
			name: "both at once", prev: prev, next: next(40),
			want: []error{topology.ErrStaleSerial, topology.ErrNodesDropped},
		},
		{
			name: "both guards, only one relaxed", prev: prev, next: next(40), g: topology.Guards{AllowNodeDrop: true},
			want: []error{topology.ErrStaleSerial},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := topology.CheckSuccessor(tt.prev, tt.next, tt.g)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckSuccessor = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckSuccessor = nil, want an error")
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %v", err, w)
				}
			}
			for _, other := range []error{topology.ErrStaleSerial, topology.ErrNodesDropped} {
				if errors.Is(err, other) && !containsErr(tt.want, other) {
					t.Errorf("error %q is also %v", err, other)
				}
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not mention %q", err, m)
				}
			}
		})
	}
}

func containsErr(list []error, e error) bool {
	for _, l := range list {
		if l == e {
			return true
		}
	}
	return false
}

func TestCheckSuccessorNamesAtMostTenDroppedNodes(t *testing.T) {
	prev := &nodeagent.Topology{Serial: 1, Nodes: map[string]nodeagent.Node{}}
	for i := range 30 {
		prev.Nodes[fmt.Sprintf("n-%02d", i)] = nodeagent.Node{}
	}
	err := topology.CheckSuccessor(prev, &nodeagent.Topology{Serial: 2}, topology.Guards{})
	if !errors.Is(err, topology.ErrNodesDropped) {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "n-09, and 20 more") || strings.Contains(msg, "n-10") {
		t.Errorf("message %q", msg)
	}
}
