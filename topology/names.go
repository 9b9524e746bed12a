package topology

import (
	"regexp"
	"strings"
	"unicode"
)

// Patterns for the document's names and values. Each is anchored and
// admits no whitespace, quotes or control characters, so a value that
// passes cannot break the line of a rendered file.
var (
	instanceIDRe  = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	azRe          = regexp.MustCompile(`^[a-z]{2}-[a-z]+-[0-9][a-z]$`)
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
