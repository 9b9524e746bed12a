package topology

import (
	"regexp"
	"strings"
	"unicode"
)

// Patterns for the document's names and values. Each is anchored and
// admits no whitespace, quotes or control characters, so a value that
// passes cannot break the line of a rendered file. The two checked on
// every node (isInstanceID, isAZ) are written out below instead: a regexp
// match costs about 0.4 µs, and a fleet document has thousands of nodes.
var (
	awsNameRe     = boundedRe{regexp.MustCompile(`^[A-Za-z0-9._-]+$`), 1, 255}
	releaseIDRe   = boundedRe{regexp.MustCompile(`^[A-Za-z0-9._-]+$`), 1, 128}
	sha256Re      = boundedRe{regexp.MustCompile(`^[0-9a-f]+$`), 64, 64}
	dbNameRe      = boundedRe{regexp.MustCompile(`^[A-Za-z0-9_]+$`), 1, 64}
	memoryLimitRe = regexp.MustCompile(`^(-1|[0-9]+[KMG]?)$`)
	envKeyRe      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	pathCharsRe   = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	s3BucketRe    = boundedRe{regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`), 3, 63}
)

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

// controlFree reports whether s has no control characters (C0 such as
// newline, CR and NUL; DEL; C1) and no Unicode line or paragraph separator,
// so it cannot end a line of a rendered file or hide a NUL.
func controlFree(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// boundedRe is a character-class pattern with its length bounds checked
// apart: a regexp such as [a-z]{1,255} compiles into 255 copies of the
// class, which cost milliseconds at every process start.
type boundedRe struct {
	re       *regexp.Regexp
	min, max int
}

func (b boundedRe) MatchString(s string) bool {
	return len(s) >= b.min && len(s) <= b.max && b.re.MatchString(s)
}
