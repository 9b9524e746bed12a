//go:build integration

package fleet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/rollout"
)

// BenchmarkRollout measures staged rollouts on 20 light agents
// (--poll-interval 1s, --splay 1s) going through a counting proxy in front
// of MinIO:
//   - the wall time of a 4-wave rollout with bake 0 (`topology publish
//     --rollout waves`, from the command's start to its exit at done),
//     against 4 × (interval + splay + 2 s);
//   - the GETs per node per poll interval: idle with no rollout, while a
//     rollout holds the serial back (the held nodes read the rollout object
//     too), and after the rollout is done (back to one).
func BenchmarkRollout(b *testing.B) {
	const agents = 20
	interval, splay := time.Second, time.Second
	window := 15 * time.Second
	f := newLightFleet(b)
	f.splay = splay
	proxy := f.minio.CountingProxy(b)
	f.publish(1)
	var fronts []*lightNode
	for i := 1; i <= agents; i++ {
		fronts = append(fronts, f.start(fmt.Sprintf("front-%d", i), "front", []string{"us-east-1a", "us-east-1b", "us-east-1c"}[i%3],
			frontID(i), fmt.Sprintf("127.0.40.%d", i), "", proxy.Env()...))
	}
	allOn := func(serial int64) bool {
		for _, n := range fronts {
			if appliedSerial(n.root) != serial || !agentReady(n) {
				return false
			}
		}
		return true
	}
	waitFor(b, 2*time.Minute, "every agent ready on serial 1", func() bool { return allOn(1) })
	waitFor(b, 30*time.Second, "a report from every agent", func() bool { return f.status(b).Summary.Live == agents })
	follow := []string{"--report-interval", "1s", "--every", "250ms"}

	// count measures the GETs of the topology and of the rollout object
	// of serial over the window.
	count := func(serial int64) (top, ro int) {
		time.Sleep(interval + splay) // let what is under way finish
		proxy.Reset()
		time.Sleep(window)
		top, _ = proxy.Gets(topologyBucket, topologyKey)
		ro, _ = proxy.Gets(topologyBucket, rollout.Key(topologyKey, serial))
		return top, ro
	}
	intervals := window.Seconds() / interval.Seconds()
	perNode := func(n, nodes int) float64 { return float64(n) / float64(nodes) / intervals }

	idleTop, _ := count(1)

	// Held: serial 2 in waves 25% / 100%, nobody following: wave 2 holds.
	f.workers = 40
	op := startOperator(b, f.minio, "topology", "publish", f.documentFile(b, 2), "--to", topologyURL,
		"--rollout", "waves", "--waves", "25,100", "--bake", "0s", "--follow=false")
	if code := op.wait(b, time.Minute); code != 0 {
		b.Fatalf("publish: exit %d\n%s", code, op.out.String())
	}
	held := 0
	for _, n := range fronts {
		if rollout.WaveOf(n.instanceID, 2, []int{25, 100}) > 0 {
			held++
		}
	}
	heldTop, heldRO := count(2)
	res := startOperator(b, f.minio, slices.Concat([]string{"rollout", "resume", "--topology", topologyURL}, follow)...)
	if code := res.wait(b, 2*time.Minute); code != 0 {
		b.Fatalf("rollout resume: exit %d\n%s", code, res.out.String())
	}
	waitFor(b, time.Minute, "every agent on serial 2", func() bool { return allOn(2) })
	doneTop, doneRO := count(2)

	// Full rollouts, bake 0, 4 waves.
	budget := 4 * (interval + splay + 2*time.Second)
	var took []time.Duration
	for serial := int64(3); serial <= 5; serial++ {
		f.workers = 40 + int(serial)
		file := f.documentFile(b, serial)
		start := time.Now()
		op := startOperator(b, f.minio, slices.Concat([]string{"topology", "publish", file, "--to", topologyURL,
			"--rollout", "waves", "--waves", "10,40,70,100", "--bake", "0s", "--max-failed", "0"}, follow)...)
		if code := op.wait(b, 2*time.Minute); code != 0 || !strings.Contains(op.out.String(), "done") {
			b.Fatalf("rollout of serial %d: exit %d\n%s", serial, code, op.out.String())
		}
		took = append(took, time.Since(start))
		if !allOn(serial) {
			b.Errorf("rollout of serial %d done but not every agent ready on it", serial)
		}
	}
	worst := slices.Max(took)
	b.ReportMetric(worst.Seconds(), "rollout-max-s")
	b.ReportMetric(perNode(heldRO, held), "rollout-gets/held-node/interval")
	writeSection(b, "rollout-time", fmt.Sprintf("| %d | 10,40,70,100 | 0 | %s | %s | %s | %s |\n",
		agents, secs(budget), strings.Join(mapSecs(took), ", "), secs(worst), verdict(worst <= budget)))
	writeSection(b, "rollout-gets", fmt.Sprintf(
		"| no rollout | %d | %.2f | 0 | %s |\n| serial held back by a rollout (%d of %d nodes outside wave 1) | %d | %.2f | %.2f per held node | %s |\n| rollout done | %d | %.2f | %d | %s |\n",
		agents, perNode(idleTop, agents), verdict(perNode(idleTop, agents) <= 1.1),
		held, agents, agents, perNode(heldTop, agents), perNode(heldRO, held), verdict(perNode(heldRO, held) >= 0.9 && perNode(heldRO, held) <= 1.1),
		agents, perNode(doneTop, agents), doneRO, verdict(doneRO == 0)))
}

func mapSecs(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, secs(d))
	}
	return out
}
