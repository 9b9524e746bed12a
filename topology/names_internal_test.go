package topology

import (
	"regexp"
	"strings"
	"testing"
)

// The patterns the name checks implement by hand.
var (
	instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	azPattern         = regexp.MustCompile(`^[a-z]{2}-[a-z]+-[0-9][a-z]$`)
)

var namePatterns = []struct {
	name    string
	check   func(string) bool
	pattern *regexp.Regexp
}{
	{"isInstanceID", isInstanceID, instanceIDPattern},
	{"isAZ", isAZ, azPattern},
	{"isAWSName", isAWSName, regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)},
	{"isReleaseID", isReleaseID, regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)},
	{"isSHA256", isSHA256, regexp.MustCompile(`^[0-9a-f]{64}$`)},
	{"isDBName", isDBName, regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)},
	{"isMemoryLimit", isMemoryLimit, regexp.MustCompile(`^(-1|[0-9]+[KMG]?)$`)},
	{"isEnvKey", isEnvKey, regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)},
	{"isPathChars", isPathChars, regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)},
	{"isS3Bucket", isS3Bucket, regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)},
}

var nameSamples = []string{
	"", "i-", "i-0123456", "i-01234567", "i-0123456789abcdef0", "i-0123456789abcdef01", "i-0123456789abcdef012",
	"i-0123456789ABCDEF0", "i-0123456g", "j-01234567", "i-01234567\n", "xi-01234567", " i-01234567",
	"us-east-1a", "eu-west-2b", "ap-northeast-1c", "us-east-1", "us-east-1A", "us--1a", "u-east-1a", "use-east-1a",
	"us-east-11a", "us-east-a1", "us-east1a", "us-east-1a\n", "US-east-1a", "us-e-1a", "us-e-1", "xx-y-1a", "-us-east-1a",
	"us-ea5t-1a", "us-east-1-a",
	"a", "A.b_c-d", "a b", "a\n", "a/b", "/a/b.c", "a..b", "-", ".", "_x", "9x", "x9", "X_9",
	"-1", "-2", "1", "128M", "1G", "1K", "M", "1MB", "1m", "-1M", "01", "",
	"abc", "ab", "a.b", "a-b-c", "-ab", "ab-", "Abc", "a_b", "my.bucket-1",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a", 128),
	strings.Repeat("a", 129), strings.Repeat("a", 255), strings.Repeat("a", 256), "a\u00e9", "\u00e9",
}

func TestNamesMatchTheirPatterns(t *testing.T) {
	for _, s := range nameSamples {
		checkNames(t, s)
	}
}

func checkNames(t *testing.T, s string) {
	t.Helper()
	for _, p := range namePatterns {
		if got, want := p.check(s), p.pattern.MatchString(s); got != want {
			t.Errorf("%s(%q) = %v, want %v (%s)", p.name, s, got, want, p.pattern)
		}
	}
}

func FuzzNamesMatchTheirPatterns(f *testing.F) {
	for _, s := range nameSamples {
		f.Add(s)
	}
	f.Fuzz(checkNames)
}
