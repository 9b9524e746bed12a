// Package testroot is how a test that needs root (chown to other users,
// mounts) says so: it skips when run by an ordinary user on a workstation
// and fails under CI (CI=true), where the tests run as root, so that a
// check skipped there is never reported as passing.
package testroot

import (
	"os"
	"testing"
)

// Require skips t, saying why it needs root, when the process is not root,
// and fails it instead under CI.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	Unavailable(t, why+": needs root (euid %d)", os.Geteuid())
}

// Unavailable skips t with the formatted reason, or fails it under CI: for
// a privileged operation the test found refused even though it may run as
// root (a bind mount in a container without CAP_SYS_ADMIN).
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true, so this test must run, not skip: "+format, args...)
	} else {
		t.Skipf(format, args...)
	}
}

// CI reports whether the tests run under CI (CI=true, as CI services and
// .ci/run set it).
func CI() bool { return os.Getenv("CI") == "true" }
