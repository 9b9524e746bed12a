// Package hostsfile edits /etc/hosts without owning it: the agent's entries
// live between two marker comments, and every other line of the file stays
// exactly as the operator (or the image) wrote it, byte for byte.
//
// The package is pure: Merge takes the current bytes and the wanted entries
// and returns the new bytes plus whether anything changed, so the caller can
// skip the write (and the diff) when nothing did. Reading and writing the
// file is the hostfs package's job.
//
// How the current file is read:
//
//   - A marker line is a line whose text, ignoring leading and trailing
//     spaces and tabs (and the CR of a CRLF ending), is BeginMarker or
//     EndMarker.
//   - A block is a BEGIN marker line, the lines after it, and the first END
//     marker line that follows with no other BEGIN in between. Everything in
//     a block belongs to the agent.
//   - Every other marker line is stray: a BEGIN with no END after it, a BEGIN
//     followed by another BEGIN, or an END with no BEGIN before it. Only the
//     stray marker line itself is the agent's; the lines around it are the
//     operator's and are kept.
//   - Every other line is foreign and is kept byte for byte, in order.
//
// Merge always leaves exactly one block. It is put where the first block
// was; with no block, where the first stray BEGIN was (a BEGIN whose END was
// lost: the new entries come before the lines that followed it, so fresh
// addresses win a lookup, and none of those lines is dropped, since nothing
// proves they were the agent's); with neither, at the end of the file.
package hostsfile

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nodeagent/nodeagent"
)

// The marker lines around the managed block.
const (
	BeginMarker = "# BEGIN nodeagent managed block (do not edit)"
	EndMarker   = "# END nodeagent managed block"
)

// line kinds, as the scan classifies them.
const (
	kindForeign = iota
	kindBlock   // inside a block, markers included
	kindStray   // a stray marker line
)

// line is one line of the file, with its terminator ("\n", "\r\n", or
// nothing for an unterminated last line).
type line struct {
	text []byte // without the "\n"; a CR before it stays here
	eol  []byte // "\n" or nothing
	kind int
	// blockStart marks the BEGIN line of a block.
	blockStart bool
	// strayBegin marks a stray BEGIN line.
	strayBegin bool
}

// terminated reports whether the line ends in a line break.
func (l line) terminated() bool { return len(l.eol) > 0 }

// crlf reports whether the line ends in "\r\n".
func (l line) crlf() bool { return l.terminated() && bytes.HasSuffix(l.text, []byte("\r")) }

// Merge returns current with the managed block replaced by entries, and
// whether that differs from current.
//
// Each entry becomes one line, "IP<TAB>name1 name2 ...", in the order given.
// Lines outside the block stay byte for byte; a file with no block gets one
// at the end (after a line break if current does not end with one). The
// block's lines end the way the file's lines do: CRLF when the first kept
// line ending in the file is CRLF. Duplicate blocks are repaired: the first
// is replaced, later ones are removed. A BEGIN marker without an END is
// treated as described in the package comment: the marker line is replaced
// by the new block and every line after it is kept. An empty entries list
// leaves an empty block (the two markers only).
//
// Merge never writes a line break inside an entry. An IP or a name is
// dropped when it is empty, is not valid UTF-8, or contains whitespace, a
// control character or '#' (which starts a comment in /etc/hosts); an entry
// is dropped when its IP is, or when no name is left. Callers validate
// entries first; this is defense in depth.
//
// When the result equals current, changed is false and out is current
// itself.
func Merge(current []byte, entries []nodeagent.HostEntry) (out []byte, changed bool) {
	lines := scan(current)
	eol := lineEnding(lines)

	var b bytes.Buffer
	b.Grow(len(current) + 64*len(entries) + len(BeginMarker) + len(EndMarker) + 4)
	placed := false
	place := func() {
		writeBlock(&b, entries, eol)
		placed = true
	}
	hasBlock := false
	for _, l := range lines {
		if l.blockStart {
			hasBlock = true
			break
		}
	}
	for _, l := range lines {
		switch {
		case l.kind == kindForeign:
			b.Write(l.text)
			b.Write(l.eol)
		case l.blockStart && !placed:
			place()
		case l.strayBegin && !hasBlock && !placed:
			place()
		}
	}
	if !placed {
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			// Terminate the last line. A last line already ending in CR
			// only needs the LF (lineEnding chose CRLF for it).
			if eol == "\r\n" && bytes.HasSuffix(b.Bytes(), []byte("\r")) {
				b.WriteByte('\n')
			} else {
				b.WriteString(eol)
			}
		}
		place()
	}
	if bytes.Equal(b.Bytes(), current) {
		return current, false
	}
	return b.Bytes(), true
}

// Entries parses the entries of the first managed block in current (for
// status and tests). Blank lines and comments in the block are skipped, and
// so is a line with an address but no name. It returns nil when current has
// no block.
func Entries(current []byte) []nodeagent.HostEntry {
	lines := scan(current)
	first := -1
	for i, l := range lines {
		if l.blockStart {
			first = i
			break
		}
	}
	if first < 0 {
		return nil
	}
	entries := []nodeagent.HostEntry{}
	for _, l := range lines[first+1:] {
		if isMarker(l.text, EndMarker) {
			break
		}
		text := string(l.text)
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		if fields := strings.Fields(text); len(fields) >= 2 {
			entries = append(entries, nodeagent.HostEntry{IP: fields[0], Names: fields[1:]})
		}
	}
	return entries
}

// scan splits b into lines and classifies them.
func scan(b []byte) []line {
	var lines []line
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, line{text: b})
			break
		}
		lines = append(lines, line{text: b[:i], eol: b[i : i+1]})
		b = b[i+1:]
	}
	open := -1 // index of the BEGIN of the block being read
	for i := range lines {
		switch {
		case isMarker(lines[i].text, BeginMarker):
			if open >= 0 {
				// The earlier BEGIN never got its END: it is stray, and
				// the lines after it were never provably ours.
				markStray(lines, open)
			}
			open = i
		case isMarker(lines[i].text, EndMarker):
			if open < 0 {
				lines[i].kind = kindStray
				continue
			}
			for j := open; j <= i; j++ {
				lines[j].kind = kindBlock
			}
			lines[open].blockStart = true
			open = -1
		}
	}
	if open >= 0 {
		markStray(lines, open)
	}
	return lines
}

func markStray(lines []line, i int) {
	lines[i].kind = kindStray
	lines[i].strayBegin = true
}

// isMarker reports whether text (a line without its LF) is the marker m,
// ignoring leading and trailing blanks and a trailing CR.
func isMarker(text []byte, m string) bool {
	return string(bytes.Trim(text, " \t\r")) == m
}

// lineEnding picks the block's line ending: the ending of the first kept
// (foreign) terminated line; without one, CRLF when the unterminated last
// line ends in CR (the LF Merge adds completes a CRLF); otherwise the ending
// of the first terminated line anywhere (an old block's); LF by default.
// Choosing from kept lines only makes Merge idempotent: the output's first
// foreign ending is the input's.
func lineEnding(lines []line) string {
	ending := func(l line) string {
		if l.crlf() {
			return "\r\n"
		}
		return "\n"
	}
	for _, l := range lines {
		if l.kind == kindForeign && l.terminated() {
			return ending(l)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; l.kind == kindForeign {
			if !l.terminated() && bytes.HasSuffix(l.text, []byte("\r")) {
				return "\r\n"
			}
			break
		}
	}
	for _, l := range lines {
		if l.terminated() {
			return ending(l)
		}
	}
	return "\n"
}

// writeBlock writes the markers and one line per valid entry.
func writeBlock(b *bytes.Buffer, entries []nodeagent.HostEntry, eol string) {
	b.WriteString(BeginMarker)
	b.WriteString(eol)
	for _, e := range entries {
		if !safeField(e.IP) {
			continue
		}
		n := 0
		for _, name := range e.Names {
			if !safeField(name) {
				continue
			}
			if n == 0 {
				b.WriteString(e.IP)
				b.WriteByte('\t')
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(name)
			n++
		}
		if n > 0 {
			b.WriteString(eol)
		}
	}
	b.WriteString(EndMarker)
	b.WriteString(eol)
}

// safeField reports whether s can go into a hosts line as one field: not
// empty, valid UTF-8, no whitespace, no control character, and no '#'
// (which would turn the rest of the line into a comment).
func safeField(s string) bool {
	if s == "" || !utf8.ValidString(s) || strings.ContainsRune(s, '#') {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
