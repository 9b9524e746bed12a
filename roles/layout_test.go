package roles

import (
	"regexp"
	"testing"
)

func TestIsMajorMinorMatchesItsPattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	for _, v := range []string{"8.2", "7.4", "10.12", "8", "8.", ".2", "8.2.1", "8.2\n", " 8.2", "8,2", "a.b", "", ".", "08.02", "8.2x"} {
		if got, want := isMajorMinor(v), pattern.MatchString(v); got != want {
			t.Errorf("isMajorMinor(%q) = %v, want %v", v, got, want)
		}
	}
}
