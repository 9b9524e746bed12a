package beneath

import "testing"

// ForceWalk makes resolution walk instead of using openat2 until t ends.
func ForceWalk(t testing.TB) {
	forceWalk.Store(true)
	t.Cleanup(func() { forceWalk.Store(false) })
}
