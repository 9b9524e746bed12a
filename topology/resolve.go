package topology

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nodeagent/nodeagent"
)

// ErrNoIdentity means the topology says nothing about this node: neither
// an override, nor its instance id in nodes, nor its group in groups.
var ErrNoIdentity = errors.New("node not found in the topology")

// Resolve finds what this node is in a validated topology, in order: the
// operator's overrides (--role, --group), the instance id in nodes, the
// Auto Scaling group in groups. Products come from the role, or from
// o.Products, each of which must exist. The lifecycle hooks come from the
// node's group (the override, else the instance's own) when the document
// lists it. Identity.Why says how the identity was found.
func Resolve(t *nodeagent.Topology, inst nodeagent.Instance, o nodeagent.Overrides) (nodeagent.Identity, error) {
	if t == nil {
		return nodeagent.Identity{}, errors.New("topology: resolve: no topology")
	}
	var id nodeagent.Identity
	if inst.ID != "" {
		for _, name := range slices.Sorted(maps.Keys(t.Nodes)) {
			if t.Nodes[name].InstanceID == inst.ID {
				id.Node = name
				break
			}
		}
	}
	id.Group = inst.Group
	if o.Group != "" {
		if _, ok := t.Groups[o.Group]; !ok {
			return nodeagent.Identity{}, fmt.Errorf("topology: resolve: --group %s is not in groups (%s): %w", o.Group, names(t.Groups), ErrNoIdentity)
		}
		id.Group = o.Group
	}
	group, groupKnown := t.Groups[id.Group]
	switch {
	case o.Role != "":
		if _, ok := t.Roles[o.Role]; !ok {
			return nodeagent.Identity{}, fmt.Errorf("topology: resolve: --role %s is not in roles (%s): %w", o.Role, names(t.Roles), ErrNoIdentity)
		}
		id.Role, id.Why = o.Role, "--role override"
		if o.Group != "" {
			id.Why += ", --group override " + o.Group
		}
	case o.Group != "":
		id.Role, id.Why = group.Role, "--group override "+o.Group
	case id.Node != "":
		id.Role, id.Why = t.Nodes[id.Node].Role, fmt.Sprintf("instance id %s in nodes as %s", inst.ID, id.Node)
	case groupKnown:
		id.Role, id.Why = group.Role, "group "+id.Group
	default:
		return nodeagent.Identity{}, notFound(inst)
	}
	if groupKnown {
		id.LaunchHook, id.TerminateHook = group.LaunchHook, group.TerminateHook
	}

	role := t.Roles[id.Role]
	id.Products = slices.Clone(role.Products)
	if len(o.Products) > 0 {
		for _, p := range o.Products {
			if _, ok := t.Products[p]; !ok {
				return nodeagent.Identity{}, fmt.Errorf("topology: resolve: --products %s is not in products (%s)", p, names(t.Products))
			}
		}
		if !slices.Contains(role.Services, nodeagent.ServiceApache) || !slices.Contains(role.Services, nodeagent.ServicePHPFPM) {
			return nodeagent.Identity{}, fmt.Errorf("topology: resolve: --products needs a role that runs apache and php-fpm; role %s runs %s", id.Role, serviceList(role.Services))
		}
		id.Products = slices.Clone(o.Products)
		id.Why += ", --products override"
	}
	return id, nil
}

func notFound(inst nodeagent.Instance) error {
	who := "this instance has no instance id"
	if inst.ID != "" {
		who = fmt.Sprintf("no node has instance_id %s", inst.ID)
	}
	group := "it is in no Auto Scaling group (no aws:autoscaling:groupName tag)"
	if inst.Group != "" {
		group = fmt.Sprintf("its Auto Scaling group %s is not in groups", inst.Group)
	}
	return fmt.Errorf("topology: resolve: %s and %s; add the instance id to a node or the group to groups, or pass --role: %w", who, group, ErrNoIdentity)
}

func serviceList(s []string) string {
	if len(s) == 0 {
		return "no services"
	}
	return strings.Join(s, ", ")
}
