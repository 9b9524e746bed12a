package hostsfile_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostsfile"
)

// FuzzMerge checks Merge's promises on arbitrary files and entries: no
// panic, idempotence, exactly one block in the output holding exactly the
// safe entries, and every foreign byte of the input kept, in order, around
// that block.
//
// Entries are encoded in one string: entries separated by ';', fields by
// ',', the first field the IP.
func FuzzMerge(f *testing.F) {
	seeds := []struct{ current, entries string }{
		{"", ""},
		{"127.0.0.1 localhost\n", "10.0.0.1,web-1,web-1.internal;10.0.0.2,db"},
		{"127.0.0.1 localhost\r\n::1 localhost", "10.0.0.1,a"},
		{lf("# h", begin, "10.0.0.1\ta", end, "# m", begin, end, "# t"), "10.0.0.9,x"},
		{lf("a", begin, "b", begin, "c", end, end, "d"), ""},
		{lf(begin, "stale"), "10.0.0.1,a\nb,c d"},
		{"x\r", "1,a"},
		{end + "\r\nfoo\n" + begin + "\n" + end + "\n", "1,a"},
		{"  " + begin + "\t\r\n" + end, "1,#,a\x00,b"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.current), s.entries)
	}
	f.Fuzz(func(t *testing.T, current []byte, spec string) {
		entries := decodeEntries(spec)
		in := bytes.Clone(current)

		out, changed := hostsfile.Merge(current, entries)
		if !bytes.Equal(current, in) {
			t.Fatalf("Merge modified its input")
		}
		if changed == bytes.Equal(out, current) {
			t.Fatalf("changed = %v but output equal to input = %v", changed, bytes.Equal(out, current))
		}

		again, changedAgain := hostsfile.Merge(out, entries)
		if changedAgain || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\nfirst:  %q\nsecond: %q", out, again)
		}

		prefix, block, suffix := splitOnBlock(t, out)
		if got, want := hostsfile.Entries(out), safeEntries(entries); !cmp.Equal(got, want, cmpEmpty) {
			t.Fatalf("block entries mismatch (-want +got):\n%s\nblock: %q", cmp.Diff(want, got, cmpEmpty), block)
		}

		foreign := foreignBytes(current)
		kept := prefix + suffix
		switch {
		case kept == foreign:
		case suffix == "" && !strings.HasSuffix(foreign, "\n") &&
			(prefix == foreign+"\n" || prefix == foreign+"\r\n"):
			// The block was appended after an unterminated last line,
			// which got its line break.
		default:
			t.Fatalf("foreign bytes not kept in order:\ninput foreign: %q\nkept:          %q\noutput:        %q", foreign, kept, out)
		}
	})
}

var cmpEmpty = cmp.Comparer(func(a, b []nodeagent.HostEntry) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return cmp.Equal(a, b)
})

func decodeEntries(spec string) []nodeagent.HostEntry {
	if spec == "" {
		return nil
	}
	var entries []nodeagent.HostEntry
	for _, e := range strings.Split(spec, ";") {
		fields := strings.Split(e, ",")
		entries = append(entries, nodeagent.HostEntry{IP: fields[0], Names: fields[1:]})
	}
	return entries
}

// safeEntries is what the block must hold: the documented filter.
func safeEntries(entries []nodeagent.HostEntry) []nodeagent.HostEntry {
	safe := func(s string) bool {
		if s == "" || !utf8.ValidString(s) || strings.Contains(s, "#") {
			return false
		}
		return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
	}
	var out []nodeagent.HostEntry
	for _, e := range entries {
		if !safe(e.IP) {
			continue
		}
		var names []string
		for _, n := range e.Names {
			if safe(n) {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			out = append(out, nodeagent.HostEntry{IP: e.IP, Names: names})
		}
	}
	return out
}

// splitLines splits b after every '\n'.
func splitLines(b []byte) []string {
	return strings.SplitAfter(string(b), "\n")
}

func markerKind(l string) string {
	switch strings.Trim(strings.TrimSuffix(l, "\n"), " \t\r") {
	case begin:
		return "begin"
	case end:
		return "end"
	}
	return ""
}

// splitOnBlock checks that out has exactly one BEGIN and one END marker
// line, in that order, and returns the text before, of and after the block.
func splitOnBlock(t *testing.T, out []byte) (prefix, block, suffix string) {
	t.Helper()
	lines := splitLines(out)
	b, e, nb, ne := -1, -1, 0, 0
	for i, l := range lines {
		switch markerKind(l) {
		case "begin":
			b, nb = i, nb+1
		case "end":
			e, ne = i, ne+1
		}
	}
	if nb != 1 || ne != 1 || b > e {
		t.Fatalf("output has %d BEGIN and %d END marker lines (BEGIN at %d, END at %d): %q", nb, ne, b, e, out)
	}
	if !strings.HasSuffix(lines[e], "\n") {
		t.Fatalf("END marker line is not terminated: %q", out)
	}
	return strings.Join(lines[:b], ""), strings.Join(lines[b:e+1], ""), strings.Join(lines[e+1:], "")
}

// foreignBytes is the input's foreign text, worked out independently of
// the package: every END line closes the span back to the nearest earlier
// marker line when that marker is a BEGIN; such spans and every marker line
// are the agent's, the rest is foreign.
func foreignBytes(current []byte) string {
	lines := splitLines(current)
	ours := make([]bool, len(lines))
	for j, l := range lines {
		if markerKind(l) == "" {
			continue
		}
		ours[j] = true
		if markerKind(l) != "end" {
			continue
		}
		for i := j - 1; i >= 0; i-- {
			if k := markerKind(lines[i]); k != "" {
				if k == "begin" {
					for x := i; x <= j; x++ {
						ours[x] = true
					}
				}
				break
			}
		}
	}
	var b strings.Builder
	for i, l := range lines {
		if !ours[i] {
			b.WriteString(l)
		}
	}
	return b.String()
}
