package fleet

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Format writes the snapshot as `fleet status` prints it: one line per
// node, the bad reports, then the summary. Every value from a report is
// printed with control characters escaped, so a hostile report cannot
// rewrite the operator's terminal.
func Format(w io.Writer, s *Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tINSTANCE\tROLE\tPRODUCTS\tAZ\tIP\tSERIAL\tRELEASE\tREADY\tLAST APPLY\tREPORTED\tAGENT\tMARKS\n")
	for _, n := range s.Nodes {
		name := n.Name
		if name == "" {
			name = "-"
		}
		serial, release, ready, last, age, agent := "-", "-", "-", "-", "-", "-"
		if r := n.Report; r != nil {
			serial = fmt.Sprintf("%d/%d", r.SerialApplied, s.Serial)
			var rel []string
			for _, p := range n.Products {
				if id, ok := r.Releases[p]; ok {
					rel = append(rel, p+"="+id)
				}
			}
			if len(rel) > 0 {
				release = strings.Join(rel, ",")
			}
			ready = "no"
			if r.Ready {
				ready = "yes"
			}
			if a := r.LastApply; a != nil {
				last = fmt.Sprintf("%s %s ago", a.Result, Age(s.GeneratedAt.Sub(a.At)))
			}
			age = Age(time.Duration(n.AgeSeconds*float64(time.Second))) + " ago"
			agent = r.AgentVersion
		}
		marks := strings.Join(n.Flags, ",")
		if marks == "" {
			marks = "ok"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			clean(name), clean(dash(n.InstanceID)), clean(dash(n.Role)), clean(dash(strings.Join(n.Products, ","))),
			clean(dash(n.AZ)), clean(dash(n.IP)), serial, clean(release), ready, clean(last), age, clean(agent), marks)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range s.BadReports {
		fmt.Fprintf(w, "bad report %s: %s: %s\n", clean(b.Key), b.Kind, clean(b.Error))
	}
	sum := s.Summary
	fmt.Fprintf(w, "\nserial %d from %s; reports %s (stale after %s)\n", s.Serial, clean(s.Topology), clean(s.Reports),
		Age(time.Duration(s.StaleAfterSeconds*float64(time.Second))))
	fmt.Fprintf(w, "nodes %d: live %d, ready %d/%d, on serial %d %d/%d (%.0f%%)", sum.Nodes, sum.Live, sum.Ready, sum.Live,
		s.Serial, sum.OnCurrent, sum.Live, 100*sum.CurrentShare)
	for _, c := range []struct {
		n    int
		what string
	}{{sum.Missing, "missing"}, {sum.Stale, "stale"}, {sum.Behind, "behind"}, {sum.Failing, "failing"},
		{sum.Terminated, "terminated"}, {sum.Unknown, "unknown"}, {sum.BadReports, "bad reports"}} {
		if c.n > 0 {
			fmt.Fprintf(w, ", %s %d", c.what, c.n)
		}
	}
	fmt.Fprintln(w)
	if len(sum.Roles) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "ROLE \\ AZ")
		for _, az := range sum.AZs {
			fmt.Fprintf(tw, "\t%s", clean(az))
		}
		fmt.Fprintf(tw, "\tTOTAL\t\n")
		for _, r := range sum.Roles {
			fmt.Fprintf(tw, "%s", clean(dash(r.Role)))
			for _, az := range sum.AZs {
				fmt.Fprintf(tw, "\t%d", r.PerAZ[az])
			}
			note := ""
			if r.Imbalanced {
				note = "IMBALANCED: " + clean(r.Note)
			}
			fmt.Fprintf(tw, "\t%d\t%s\n", r.Total, note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	FormatRollout(w, s)
	switch {
	case sum.Converged:
		fmt.Fprintf(w, "converged: every live node runs serial %d and is ready\n", s.Serial)
	case len(sum.Laggards) > 0:
		fmt.Fprintf(w, "not converged: %s\n", clean(strings.Join(Laggards(s), ", ")))
	default:
		fmt.Fprintln(w, "not converged: no live node reports")
	}
	return nil
}

// Laggards describes each live node that is not converged: "web-1
// (i-…): serial 41 of 42, not ready: apply failed".
func Laggards(s *Snapshot) []string {
	var out []string
	for _, n := range s.Nodes {
		if !n.Live || n.Converged {
			continue
		}
		who := n.ID
		if n.Name != "" && n.Name != n.ID {
			who = n.Name + " (" + n.ID + ")"
		}
		r := n.Report
		why := fmt.Sprintf("serial %d of %d", r.SerialApplied, s.Serial)
		if !r.Ready {
			why += ", not ready: " + r.Reason
		}
		if a := r.LastApply; a != nil && a.Result != "ok" && a.Error != "" {
			why += ", last apply " + a.Result + ": " + a.Error
		}
		out = append(out, who+": "+why)
	}
	return out
}

// Age prints a duration the way the table does: 45s, 12m, 3h, 2d.
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean escapes control and other non-printing characters, and tabs (the
// table's separator).
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '\t' }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) && r != '\t' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// FormatRollout writes the rollout section of `fleet status`: the state,
// the wave, each wave's nodes done / pending / failed, the failures, and
// whether anything is following it. Nothing when there is no rollout.
func FormatRollout(w io.Writer, s *Snapshot) {
	if s.RolloutError != "" {
		fmt.Fprintf(w, "rollout: unreadable: %s\n", clean(s.RolloutError))
	}
	r := s.Rollout
	if r == nil {
		return
	}
	fmt.Fprintf(w, "rollout of serial %d (after %d): %s, wave %d of %d (%d%%), bake %s, max_failed %d\n",
		r.Serial, r.Previous, strings.ToUpper(r.State), r.Wave+1, len(r.Waves), r.Waves[r.Wave],
		time.Duration(r.BakeSeconds*float64(time.Second)), r.MaxFailed)
	for i, t := range r.Tally {
		cur := ""
		if i == r.Wave && r.State == "rolling" {
			cur = "  <- current"
		}
		fmt.Fprintf(w, "  wave %d (%3d%%): %d node(s): done %d, pending %d, failed %d%s\n", i+1, t.Share, t.Nodes, t.Done, t.Pending, t.Failed, cur)
	}
	if r.Why != "" {
		fmt.Fprintf(w, "  why: %s\n", clean(r.Why))
	}
	for _, f := range r.Failed {
		who := f.InstanceID
		if f.Name != "" {
			who = f.Name + " (" + f.InstanceID + ")"
		}
		fmt.Fprintf(w, "  failed: %s (wave %d): %s\n", clean(who), f.Wave+1, clean(f.Error))
	}
	if r.RolledBackTo != 0 {
		fmt.Fprintf(w, "  rolled back: serial %d republishes serial %d\n", r.RolledBackTo, r.Previous)
	}
	if r.Unattended {
		fmt.Fprintf(w, "  UNATTENDED: no operator command has followed this rollout for %s; it stays at wave %d until `nodeagent rollout resume`\n",
			Age(time.Duration(r.HeartbeatAgeSeconds*float64(time.Second))), r.Wave+1)
	}
}
