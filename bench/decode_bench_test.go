package bench_test

import (
	"runtime"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/bench"
)

// BenchmarkChangedDocument is what `run` does with a changed 5,000-node
// document before it plans: the one decode (agent.NewDocument: strict
// decode, validation, defaults). alloc-MB/op is everything the decode
// allocates, an upper bound of the heap's peak growth; retained-MB is what
// the decoded document keeps after a collection.
func BenchmarkChangedDocument(b *testing.B) {
	body, err := bench.Fleet(bench.DefaultFleet)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	var before, after runtime.MemStats
	var total, retained uint64
	var doc agent.Document
	for b.Loop() {
		b.StopTimer()
		doc = agent.Document{}
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		doc = agent.NewDocument(body, `"e2"`, "s3://fleet/topology.json", nodeagent.FormatJSON, false)
		b.StopTimer()
		runtime.ReadMemStats(&after)
		total += after.TotalAlloc - before.TotalAlloc
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained += after.HeapAlloc - before.HeapAlloc
		b.StartTimer()
	}
	runtime.KeepAlive(doc)
	b.ReportMetric(float64(total)/float64(b.N)/1e6, "alloc-MB/op")
	b.ReportMetric(float64(retained)/float64(b.N)/1e6, "retained-MB")
}
