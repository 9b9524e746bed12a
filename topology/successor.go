package topology

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nodeagent/nodeagent"
)

// Guards relaxes the successor checks on the operator's word.
type Guards struct {
	AllowLowerSerial bool // accept a serial below the applied one (a deliberate rollback), or the same serial with other content
	AllowNodeDrop    bool // accept a document that drops more than half of the nodes
}

// Successor check failures, wrapped with the details.
var (
	ErrStaleSerial  = errors.New("stale serial: a lower serial would roll the fleet back; allow a lower serial to do it on purpose")
	ErrSameSerial   = errors.New("same serial, different content: a changed document needs a higher serial; bump the serial and publish it again")
	ErrNodesDropped = errors.New("nodes dropped: more than half of the nodes are gone; allow dropping nodes to do it on purpose")
)

// maxListed is how many dropped nodes a message names.
const maxListed = 10

// CheckSuccessor decides whether next may follow prev, the last applied
// document. A lower serial is refused, and so is the same serial with
// different content (an equal serial must be the same document applied
// again; a change republished without a bump would reach some nodes and
// not others, unseen), and so is a document that drops more than half of prev's
// nodes, unless g allows it. Both failures are reported together. A nil
// prev accepts anything.
func CheckSuccessor(prev, next *nodeagent.Topology, g Guards) error {
	if prev == nil {
		return nil
	}
	if next == nil {
		return errors.New("topology: successor: no new document")
	}
	var errs []error
	if next.Serial < prev.Serial && !g.AllowLowerSerial {
		errs = append(errs, fmt.Errorf("topology: serial %d is lower than the applied serial %d: %w", next.Serial, prev.Serial, ErrStaleSerial))
	}
	if next.Serial == prev.Serial && !g.AllowLowerSerial {
		if changed := Changes(prev, next); len(changed) > 0 {
			shown := changed
			if len(shown) > maxListed {
				shown = append(slices.Clone(shown[:maxListed]), fmt.Sprintf("and %d more", len(changed)-maxListed))
			}
			errs = append(errs, fmt.Errorf("topology: serial %d is the applied serial but the document differs (%s): %w", next.Serial, strings.Join(shown, ", "), ErrSameSerial))
		}
	}
	var dropped []string
	for _, name := range slices.Sorted(maps.Keys(prev.Nodes)) {
		if _, ok := next.Nodes[name]; !ok {
			dropped = append(dropped, name)
		}
	}
	if 2*len(dropped) > len(prev.Nodes) && !g.AllowNodeDrop {
		shown := dropped
		if len(shown) > maxListed {
			shown = append(slices.Clone(shown[:maxListed]), fmt.Sprintf("and %d more", len(dropped)-maxListed))
		}
		errs = append(errs, fmt.Errorf("topology: serial %d drops %d of %d nodes (%s): %w", next.Serial, len(dropped), len(prev.Nodes), strings.Join(shown, ", "), ErrNodesDropped))
	}
	return errors.Join(errs...)
}
