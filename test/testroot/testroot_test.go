package testroot_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/test/testroot"
)

// recorder is a testing.TB that records how a test ended instead of ending.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

func TestUnavailable(t *testing.T) {
	tests := []struct {
		ci        string
		wantFatal bool
	}{{"true", true}, {"", false}, {"false", false}}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			testroot.Unavailable(r, "bind mount refused: %v", "EPERM")
			if got := r.fatal != ""; got != tt.wantFatal || (r.fatal == "") == (r.skip == "") {
				t.Errorf("fatal %q, skip %q; want a failure %v, else a skip", r.fatal, r.skip, tt.wantFatal)
			}
			if msg := r.fatal + r.skip; msg == "" || !strings.Contains(msg, "bind mount refused: EPERM") {
				t.Errorf("message %q does not give the reason", msg)
			}
		})
	}
}
