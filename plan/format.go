package plan

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/nodeagent/nodeagent"
)

// Format writes the plan for an operator: a header (instance, identity and
// why, topology serial previous -> new), then every file change with its
// reason, mode and owner and a unified diff of its content, every service
// action, release and lifecycle action with its reason; "no changes" when
// the plan is empty.
//
// Files that are not world-readable (secrets) are diffed too: the operator
// running the agent is root and can read them anyway; their header says so.
func Format(w io.Writer, p *nodeagent.Plan) error {
	var b bytes.Buffer
	writeHeader(&b, p)
	if p.Empty() {
		b.WriteString("\nno changes\n")
		_, err := w.Write(b.Bytes())
		return err
	}
	if len(p.Files) > 0 {
		fmt.Fprintf(&b, "\nfiles (%d):\n", len(p.Files))
		for _, f := range p.Files {
			writeFile(&b, f)
		}
	}
	if len(p.Services) > 0 {
		b.WriteString("\nservices:\n")
		for _, s := range p.Services {
			fmt.Fprintf(&b, "  %s %s (%s): %s\n", s.Kind, s.Service, s.Unit, s.Reason)
		}
	}
	if len(p.Releases) > 0 {
		b.WriteString("\nreleases:\n")
		for _, r := range p.Releases {
			from := r.From
			if from == "" {
				from = "(none)"
			}
			how := "already unpacked"
			if r.Download {
				how = "download"
			}
			fmt.Fprintf(&b, "  %s: %s -> %s (%s): %s\n", r.Product, from, r.To, how, r.Reason)
		}
	}
	if l := p.Lifecycle; l != nil {
		b.WriteString("\nlifecycle:\n")
		fmt.Fprintf(&b, "  complete hook %s of group %s for %s with %s: %s\n", l.Hook.Hook, l.Hook.Group, l.Hook.InstanceID, l.Result, l.Reason)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeHeader(b *bytes.Buffer, p *nodeagent.Plan) {
	in, id := p.Instance, p.Identity
	fmt.Fprintf(b, "plan for %s", orDash(in.ID))
	if in.PrivateIP != "" {
		fmt.Fprintf(b, " (%s)", in.PrivateIP)
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "identity: role %s", orDash(id.Role))
	if id.Node != "" {
		fmt.Fprintf(b, ", node %s", id.Node)
	}
	if len(id.Products) > 0 {
		fmt.Fprintf(b, ", products %s", strings.Join(id.Products, ", "))
	}
	if id.Group != "" {
		fmt.Fprintf(b, ", group %s", id.Group)
	}
	if id.Why != "" {
		fmt.Fprintf(b, " (from %s)", id.Why)
	}
	b.WriteString("\n")
	if p.PreviousSerial == 0 {
		fmt.Fprintf(b, "topology serial %d (first apply)\n", p.Serial)
	} else {
		fmt.Fprintf(b, "topology serial %d -> %d\n", p.PreviousSerial, p.Serial)
	}
}

func writeFile(b *bytes.Buffer, f nodeagent.FileChange) {
	mark := "~"
	if !f.Existed {
		mark = "+"
	}
	note := ""
	if f.Mode&0o004 == 0 {
		note = ", not world-readable"
	}
	fmt.Fprintf(b, "\n%s %s (mode %s, %s:%s%s): %s\n", mark, f.Path, octal(f.Mode), orRoot(f.Owner), orRoot(f.Group), note, f.Reason)
	switch {
	case !f.Existed && len(f.Content) == 0:
		b.WriteString("  (empty file)\n")
	case bytes.Equal(f.Old, f.Content):
		b.WriteString("  (content unchanged)\n")
	case binary(f.Old) || binary(f.Content):
		fmt.Fprintf(b, "  (binary content differs: %d -> %d bytes)\n", len(f.Old), len(f.Content))
	default:
		b.WriteString(Diff(f.Path, f.Old, f.Content))
	}
}

// binary reports whether b looks like something a terminal should not get.
func binary(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
