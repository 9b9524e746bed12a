package beneath_test

import (
	"testing"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// BenchmarkOpenDir resolves a four-level directory beneath a root, the
// cost every confined operation pays once.
func BenchmarkOpenDir(b *testing.B) {
	run := func(b *testing.B) {
		root := b.TempDir()
		d, err := beneath.MkdirAll(root, "/var/lib/nodeagent/health", 0o755)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
		b.ResetTimer()
		for b.Loop() {
			d, err := beneath.OpenDir(root, "/var/lib/nodeagent/health")
			if err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
	}
	b.Run("openat2", run)
	b.Run("walk", func(b *testing.B) {
		beneath.ForceWalk(b)
		run(b)
	})
}
