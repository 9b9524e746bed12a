package topology

import (
	"regexp"
	"testing"
)

// The patterns isInstanceID and isAZ implement by hand.
var (
	instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	azPattern         = regexp.MustCompile(`^[a-z]{2}-[a-z]+-[0-9][a-z]$`)
)

var nameSamples = []string{
	"", "i-", "i-0123456", "i-01234567", "i-0123456789abcdef0", "i-0123456789abcdef01", "i-0123456789abcdef012",
	"i-0123456789ABCDEF0", "i-0123456g", "j-01234567", "i-01234567\n", "xi-01234567", " i-01234567",
	"us-east-1a", "eu-west-2b", "ap-northeast-1c", "us-east-1", "us-east-1A", "us--1a", "u-east-1a", "use-east-1a",
	"us-east-11a", "us-east-a1", "us-east1a", "us-east-1a\n", "US-east-1a", "us-e-1a", "us-e-1", "xx-y-1a", "-us-east-1a",
	"us-ea5t-1a", "us-east-1-a",
}

func TestIsInstanceIDMatchesItsPattern(t *testing.T) {
	for _, s := range nameSamples {
		if got, want := isInstanceID(s), instanceIDPattern.MatchString(s); got != want {
			t.Errorf("isInstanceID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestIsAZMatchesItsPattern(t *testing.T) {
	for _, s := range nameSamples {
		if got, want := isAZ(s), azPattern.MatchString(s); got != want {
			t.Errorf("isAZ(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzNamesMatchTheirPatterns(f *testing.F) {
	for _, s := range nameSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isInstanceID(s), instanceIDPattern.MatchString(s); got != want {
			t.Errorf("isInstanceID(%q) = %v, want %v", s, got, want)
		}
		if got, want := isAZ(s), azPattern.MatchString(s); got != want {
			t.Errorf("isAZ(%q) = %v, want %v", s, got, want)
		}
	})
}
