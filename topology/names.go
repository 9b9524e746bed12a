package topology

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The document's names and values are checked by the functions below, each
// the written-out form of the anchored pattern in its comment (a fuzz
// target in names_internal_test.go holds each one to its pattern). None
// admits whitespace, quotes or control characters, so a value that passes
// cannot break the line of a rendered file. They are functions rather
// than regexps because compiling the patterns at start-up cost every
// nodeagent command about 1.5 ms, and a regexp match costs about 0.4 µs
// where a fleet document has thousands of nodes.

// isAWSName: ^[A-Za-z0-9._-]{1,255}$ (Auto Scaling group and hook names).
func isAWSName(s string) bool { return len(s) >= 1 && len(s) <= 255 && all(s, nameByte) }

// isReleaseID: ^[A-Za-z0-9._-]{1,128}$.
func isReleaseID(s string) bool { return len(s) >= 1 && len(s) <= 128 && all(s, nameByte) }

// isSHA256: ^[0-9a-f]{64}$.
func isSHA256(s string) bool { return len(s) == 64 && all(s, lowerHex) }

// isDBName: ^[A-Za-z0-9_]{1,64}$.
func isDBName(s string) bool { return len(s) >= 1 && len(s) <= 64 && all(s, wordByte) }

// isMemoryLimit: ^(-1|[0-9]+[KMG]?)$ (PHP's memory_limit).
func isMemoryLimit(s string) bool {
	if s == "-1" {
		return true
	}
	if n := len(s); n > 1 && (s[n-1] == 'K' || s[n-1] == 'M' || s[n-1] == 'G') {
		s = s[:n-1]
	}
	return s != "" && all(s, digit)
}

// isEnvKey: ^[A-Za-z_][A-Za-z0-9_]*$.
func isEnvKey(s string) bool { return s != "" && !digit(s[0]) && all(s, wordByte) }

// isPathChars: ^[A-Za-z0-9._/-]+$.
func isPathChars(s string) bool {
	return s != "" && all(s, func(c byte) bool { return nameByte(c) || c == '/' })
}

// isS3Bucket: ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$.
func isS3Bucket(s string) bool {
	inner := func(c byte) bool { return lowerAlnum(c) || c == '.' || c == '-' }
	n := len(s)
	return n >= 3 && n <= 63 && lowerAlnum(s[0]) && lowerAlnum(s[n-1]) && all(s, inner)
}

// all reports whether every byte of s satisfies ok.
func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func digit(c byte) bool      { return c >= '0' && c <= '9' }
func lowerHex(c byte) bool   { return digit(c) || c >= 'a' && c <= 'f' }
func lowerAlnum(c byte) bool { return digit(c) || c >= 'a' && c <= 'z' }
func wordByte(c byte) bool   { return lowerAlnum(c) || c >= 'A' && c <= 'Z' || c == '_' }
func nameByte(c byte) bool   { return wordByte(c) || c == '.' || c == '-' }

// Reasons shared by several rules.
const (
	reasonLabel   = "must be a DNS label: 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen"
	reasonDNSName = "must be a DNS name: dot-separated labels of 1-63 lowercase letters, digits or hyphens, 253 characters at most"
	reasonAWSName = "must be 1-255 characters of letters, digits, '.', '_' or '-'"
)

// isLabel reports whether s is a DNS label as the document uses them:
// lowercase letters, digits and hyphens, 1-63 long, no hyphen at either end.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isInstanceID reports whether s is an EC2 instance id:
// ^i-[0-9a-f]{8,17}$.
func isInstanceID(s string) bool {
	hex, ok := strings.CutPrefix(s, "i-")
	if !ok || len(hex) < 8 || len(hex) > 17 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isAZ reports whether s is an availability zone name such as us-east-1a:
// ^[a-z]{2}-[a-z]+-[0-9][a-z]$.
func isAZ(s string) bool {
	lower := func(c byte) bool { return c >= 'a' && c <= 'z' }
	n := len(s)
	// The shortest is "xx-y-1a": 7 bytes.
	if n < 7 || !lower(s[0]) || !lower(s[1]) || s[2] != '-' ||
		s[n-3] != '-' || s[n-2] < '0' || s[n-2] > '9' || !lower(s[n-1]) {
		return false
	}
	for i := 3; i < n-3; i++ {
		if !lower(s[i]) {
			return false
		}
	}
	return true
}

// isDNSName reports whether s is one or more DNS labels joined by dots,
// 253 characters at most, with no trailing dot.
func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isLabel(l) {
			return false
		}
	}
	return true
}

// controlFree reports whether s is valid UTF-8 with no control characters
// (C0 such as newline, CR and NUL; DEL; C1), no Unicode line or paragraph
// separator and no bidirectional control, so it cannot end a line of a
// rendered file, hide a NUL, or make a file read differently on screen
// than it does to the program that parses it (Trojan Source, CVE-2021-42574).
func controlFree(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return textFree(s[i:])
		}
	}
	return true // plain printable ASCII, the common case
}

func textFree(s string) bool {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) || isBidi(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
		s = s[n:]
	}
	return true
}

// isBidi reports whether r is a bidirectional formatting character: the
// marks (LRM, RLM, ALM), embeddings and overrides (LRE, RLE, PDF, LRO, RLO)
// and isolates (LRI, RLI, FSI, PDI).
func isBidi(r rune) bool {
	return r == '\u200e' || r == '\u200f' || r == '\u061c' ||
		r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}
