package bench_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/bench"
)

// BenchmarkPlan times the planning pipeline (topology.Load,
// topology.Resolve, roles.Desire, plan.Build) on the 5,000-node,
// 200-product fleet, for a node serving every product and a node of a
// ten-product role, against a fresh root (every file is new) and a
// converged one (the plan is empty).
func BenchmarkPlan(b *testing.B) {
	body, err := bench.Fleet(bench.DefaultFleet)
	if err != nil {
		b.Fatal(err)
	}
	for _, role := range []string{bench.RoleAllProducts, "web-g00"} {
		inst, _, err := bench.WebNode(bench.DefaultFleet, role)
		if err != nil {
			b.Fatal(err)
		}
		for _, converged := range []bool{false, true} {
			state := "fresh"
			if converged {
				state = "converged"
			}
			b.Run(fmt.Sprintf("role=%s/root=%s", role, state), func(b *testing.B) {
				root := b.TempDir()
				if err := bench.SeedRoot(root); err != nil {
					b.Fatal(err)
				}
				in := bench.PlanInput{Body: body, Name: "fleet.json", Instance: inst, Root: root}
				ctx := context.Background()
				if converged {
					r, err := bench.Plan(ctx, in)
					if err != nil {
						b.Fatal(err)
					}
					if err := bench.WriteFiles(root, r.Plan); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				var files int
				cpu0 := cpuTime(b)
				for b.Loop() {
					r, err := bench.Plan(ctx, in)
					if err != nil {
						b.Fatal(err)
					}
					files = len(r.Plan.Files)
				}
				if converged && files != 0 {
					b.Fatalf("converged root still plans %d files", files)
				}
				b.ReportMetric(float64(files), "files/op")
				// CPU time of the whole process (GC workers included) per
				// op: on a shared machine the wall clock also counts the
				// time other jobs held the cores.
				b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the user+system time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
