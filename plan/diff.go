package plan

import (
	"bytes"
	"fmt"
	"strings"
)

// context is the number of unchanged lines around each change in a hunk,
// as diff -u prints them.
const contextLines = 3

// Diff returns a unified diff from old to new with path on both the --- and
// +++ lines, hunks with three lines of context, and "\ No newline at end of
// file" where a side does not end in a line break, in the format GNU diff -u
// and patch use. Equal inputs give "".
//
// Lines are matched with Myers' O(ND) algorithm in its linear-space form
// (the middle-snake divide and conquer), so the diff is a shortest edit
// script and memory stays proportional to the input.
func Diff(path string, old, new []byte) string {
	if bytes.Equal(old, new) {
		return ""
	}
	a, b := splitLines(old), splitLines(new)
	d := &differ{a: a, b: b, delA: make([]bool, len(a)), insB: make([]bool, len(b))}
	d.compare(0, len(a), 0, len(b))
	ops := d.script()

	var w strings.Builder
	fmt.Fprintf(&w, "--- %s\n+++ %s\n", path, path)
	for _, h := range hunks(ops) {
		writeHunk(&w, h, a, b)
	}
	return w.String()
}

// splitLines cuts s into lines, each keeping its "\n" (the last one may have
// none).
func splitLines(s []byte) []string {
	var lines []string
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, string(s))
			break
		}
		lines = append(lines, string(s[:i+1]))
		s = s[i+1:]
	}
	return lines
}

// differ marks which lines of a are deleted and which of b are inserted.
type differ struct {
	a, b       []string
	delA, insB []bool
	vf, vb     []int // scratch diagonals for middleSnake
}

// compare marks the edits between a[a0:a1] and b[b0:b1].
func (d *differ) compare(a0, a1, b0, b1 int) {
	for a0 < a1 && b0 < b1 && d.a[a0] == d.b[b0] {
		a0, b0 = a0+1, b0+1
	}
	for a0 < a1 && b0 < b1 && d.a[a1-1] == d.b[b1-1] {
		a1, b1 = a1-1, b1-1
	}
	switch {
	case a0 == a1:
		for j := b0; j < b1; j++ {
			d.insB[j] = true
		}
		return
	case b0 == b1:
		for i := a0; i < a1; i++ {
			d.delA[i] = true
		}
		return
	}
	x, y := d.middleSnake(a0, a1, b0, b1)
	if (x == a0 && y == b0) || (x == a1 && y == b1) {
		// Cannot happen for a shortest path; never recurse without progress.
		for i := a0; i < a1; i++ {
			d.delA[i] = true
		}
		for j := b0; j < b1; j++ {
			d.insB[j] = true
		}
		return
	}
	d.compare(a0, x, b0, y)
	d.compare(x, a1, y, b1)
}

// middleSnake finds a point (x, y) on a shortest edit path from (a0, b0) to
// (a1, b1), searching forward from the start and backward from the end
// until the two meet (Myers 1986, section 4b). Both ends differ (compare
// stripped the common prefix and suffix), so the point splits the problem
// into two strictly smaller ones.
func (d *differ) middleSnake(a0, a1, b0, b1 int) (int, int) {
	n, m := a1-a0, b1-b0
	delta := n - m
	odd := delta&1 != 0
	max := (n + m + 1) / 2
	off := max + 1
	size := 2*max + 3
	if cap(d.vf) < size {
		d.vf, d.vb = make([]int, size), make([]int, size)
	}
	vf, vb := d.vf[:size], d.vb[:size]
	// vf[off+k]: furthest x on forward diagonal k (x-y = k).
	// vb[off+k]: furthest distance from the end on reverse diagonal k,
	// where reverse diagonal k is forward diagonal delta-k.
	vf[off+1], vb[off+1] = 0, 0
	for dd := 0; dd <= max; dd++ {
		for k := -dd; k <= dd; k += 2 {
			var x int
			if k == -dd || (k != dd && vf[off+k-1] < vf[off+k+1]) {
				x = vf[off+k+1]
			} else {
				x = vf[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && d.a[a0+x] == d.b[b0+y] {
				x, y = x+1, y+1
			}
			vf[off+k] = x
			if kr := delta - k; odd && kr >= -(dd-1) && kr <= dd-1 && x+vb[off+kr] >= n {
				return a0 + x, b0 + y
			}
		}
		for k := -dd; k <= dd; k += 2 {
			var x int
			if k == -dd || (k != dd && vb[off+k-1] < vb[off+k+1]) {
				x = vb[off+k+1]
			} else {
				x = vb[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && d.a[a1-1-x] == d.b[b1-1-y] {
				x, y = x+1, y+1
			}
			vb[off+k] = x
			if kf := delta - k; !odd && kf >= -dd && kf <= dd && x+vf[off+kf] >= n {
				return a1 - x, b1 - y
			}
		}
	}
	return a0, b0 // unreachable: the searches meet by max
}

// op is one line of the edit script.
type op struct {
	kind byte // ' ', '-', '+'
	i, j int  // line index in a (for ' ' and '-') and in b (for ' ' and '+')
}

// script turns the marks into an edit script: deletions before insertions
// within a change, as diff prints them.
func (d *differ) script() []op {
	var ops []op
	i, j := 0, 0
	for i < len(d.a) || j < len(d.b) {
		switch {
		case i < len(d.a) && d.delA[i]:
			ops = append(ops, op{'-', i, j})
			i++
		case j < len(d.b) && d.insB[j]:
			ops = append(ops, op{'+', i, j})
			j++
		default:
			ops = append(ops, op{' ', i, j})
			i, j = i+1, j+1
		}
	}
	return ops
}

// hunks groups the script into hunks: each change with up to contextLines
// of unchanged lines around it, changes closer than twice that merged.
func hunks(ops []op) [][]op {
	var out [][]op
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(0, k-contextLines)
		end := k // one past the last change so far
		for end < len(ops) {
			// Extend over the change, then look at the gap to the next one.
			for end < len(ops) && ops[end].kind != ' ' {
				end++
			}
			gap := end
			for gap < len(ops) && ops[gap].kind == ' ' {
				gap++
			}
			if gap < len(ops) && gap-end <= 2*contextLines {
				end = gap
				continue
			}
			break
		}
		stop := min(len(ops), end+contextLines)
		out = append(out, ops[start:stop])
		k = stop
	}
	return out
}

func writeHunk(w *strings.Builder, h []op, a, b []string) {
	var na, nb int
	for _, o := range h {
		if o.kind != '+' {
			na++
		}
		if o.kind != '-' {
			nb++
		}
	}
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(h[0].i, na), hunkRange(h[0].j, nb))
	for _, o := range h {
		line := ""
		switch o.kind {
		case '+':
			line = b[o.j]
		default:
			line = a[o.i]
		}
		w.WriteByte(o.kind)
		w.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			w.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange is diff's "start,count" for a range starting at 0-based index
// first: a one-line range omits the count, an empty one names the line
// before it.
func hunkRange(first, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", first)
	case 1:
		return fmt.Sprintf("%d", first+1)
	default:
		return fmt.Sprintf("%d,%d", first+1, count)
	}
}
