package roles

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/nodeagent/nodeagent"
)

// hosts derives the managed /etc/hosts block: every node (ip name
// name.domain), every alias (the node's ip, alias alias.domain), then this
// instance by its id when it is not a listed node, each group sorted by
// name. A name that would appear twice is an error: two lines would
// compete for it.
func hosts(t *nodeagent.Topology, inst nodeagent.Instance, id nodeagent.Identity) ([]nodeagent.HostEntry, error) {
	entries := len(t.Nodes) + len(t.Aliases) + 1
	perEntry := 1 // names per entry
	if t.Domain != "" {
		perEntry = 2
	}
	owner := make(map[string]string, entries*perEntry) // host name -> what claimed it, for the error
	entry := func(what, ip, name string) (nodeagent.HostEntry, error) {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nodeagent.HostEntry{}, fmt.Errorf("roles: hosts: %s: ip %q: %w", what, ip, err)
		}
		names := make([]string, 1, perEntry)
		names[0] = name
		if t.Domain != "" {
			names = append(names, name+"."+t.Domain)
		}
		for _, n := range names {
			if !isHostName(n) {
				return nodeagent.HostEntry{}, fmt.Errorf("roles: hosts: %s: %q is not a host name", what, n)
			}
			if first, ok := owner[n]; ok {
				return nodeagent.HostEntry{}, fmt.Errorf("roles: hosts: duplicate host name %s: both %s and %s", n, first, what)
			}
			owner[n] = what
		}
		return nodeagent.HostEntry{IP: ip, Names: names}, nil
	}

	out := make([]nodeagent.HostEntry, 0, entries)
	for _, name := range slices.Sorted(maps.Keys(t.Nodes)) {
		e, err := entry("nodes."+name, t.Nodes[name].IP, name)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	for _, alias := range slices.Sorted(maps.Keys(t.Aliases)) {
		target := t.Aliases[alias]
		node, ok := t.Nodes[target]
		if !ok {
			return nil, fmt.Errorf("roles: hosts: aliases.%s: node %q is not in nodes", alias, target)
		}
		e, err := entry("aliases."+alias, node.IP, alias)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if id.Node == "" {
		if inst.ID == "" || inst.PrivateIP == "" {
			return nil, fmt.Errorf("roles: hosts: own name: instance id %q and private ip %q are both needed", inst.ID, inst.PrivateIP)
		}
		e, err := entry("this instance "+inst.ID, inst.PrivateIP, inst.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// isHostName reports whether s is dot-separated labels of lowercase
// letters, digits and hyphens: safe on an /etc/hosts line.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			label++
		case c == '-':
			if label == 0 || i+1 == len(s) || s[i+1] == '.' {
				return false
			}
			label++
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		default:
			return false
		}
		if label > 63 {
			return false
		}
	}
	return label > 0
}
