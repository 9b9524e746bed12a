//go:build integration

package fleet

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks do a fixed amount of work whatever b.N is (run them with
// -benchtime 1x, as bench.sh does) and write a Markdown section each to
// $NODEAGENT_FLEET_BENCH_DIR/<name>.md when that is set. Nothing here
// asserts a timing: a missed target is reported as a figure.

// BenchmarkPropagation publishes 20 database failovers to fleets of 10 and
// 50 agents and measures, for each, the time from the publish to every
// agent converged (its /etc/hosts, app config and, on web nodes, the page
// served through Apache show the new master).
func BenchmarkPropagation(b *testing.B) {
	trials := envInt(b, "NODEAGENT_FLEET_TRIALS", 20)
	for _, size := range []int{10, 50} {
		b.Run(fmt.Sprintf("agents=%d", size), func(b *testing.B) {
			o := fleetOptions{Web: 4, Cache: size - 4, PollInterval: time.Second, Splay: time.Second, Settle: 200 * time.Millisecond, DrainTime: time.Second}
			f := newFleet(b, o)
			f.publish(f.topology(1, "db-a"))
			f.startAll()
			f.waitReady(5 * time.Minute)
			b.Cleanup(f.stopAll)

			var fleetTimes, nodeTimes []time.Duration
			master := "db-a"
			b.ResetTimer()
			for i := range trials {
				master = map[string]string{"db-a": "db-b", "db-b": "db-a"}[master]
				published := f.publish(f.topology(int64(i+2), master))
				took := f.waitConverged(masterIP(master), published, 30*time.Second)
				var worst time.Duration
				for _, d := range took {
					worst = max(worst, d)
					nodeTimes = append(nodeTimes, d)
				}
				fleetTimes = append(fleetTimes, worst)
				// Let the last applies finish before the next change.
				time.Sleep(o.Settle + time.Second)
			}
			b.StopTimer()
			for _, n := range f.all() {
				if got := n.mustMetric(`nodeagent_applies_total{result="ok"}`); got != float64(trials+1) {
					b.Errorf("%s: %v successful applies, want %d (boot and one per change)", n.name, got, trials+1)
				}
			}
			budget := o.PollInterval + o.Splay
			p50, p99, worst := percentile(fleetTimes, 50), percentile(fleetTimes, 99), percentile(fleetTimes, 100)
			b.ReportMetric(p50.Seconds(), "p50-s")
			b.ReportMetric(p99.Seconds(), "p99-s")
			writeSection(b, fmt.Sprintf("propagation-%02d", size), fmt.Sprintf(
				"| %d (%d web, %d cache) | %d | %s | %s | %s | %s | %s | %s | %s |\n",
				size, o.Web, o.Cache, trials, secs(budget), secs(p50), secs(p99), secs(worst),
				secs(percentile(nodeTimes, 50)), secs(percentile(nodeTimes, 99)),
				verdict(p99 <= budget+2*time.Second)))
		})
	}
}

// BenchmarkIdle runs one web node's agent with nothing to do and measures
// its resident memory, its CPU time, and the conditional GETs of the
// topology that reach MinIO, against the number of poll intervals.
func BenchmarkIdle(b *testing.B) {
	for _, c := range []struct {
		name   string
		o      fleetOptions
		window time.Duration
	}{
		{"interval 1s, settle 200ms, splay 1s (fleet test)", fleetOptions{PollInterval: time.Second, Splay: time.Second, Settle: 200 * time.Millisecond}, 60 * time.Second},
		// The product's defaults: what an idle node of a real fleet runs.
		{"interval 30s, settle 2s, splay 5s (defaults)", fleetOptions{PollInterval: 30 * time.Second, Splay: 5 * time.Second, Settle: 2 * time.Second}, 300 * time.Second},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.o.Web, c.o.DrainTime = 1, time.Second
			if w := os.Getenv("NODEAGENT_FLEET_IDLE_WINDOW"); w != "" {
				d, err := time.ParseDuration(w)
				if err != nil {
					b.Fatalf("NODEAGENT_FLEET_IDLE_WINDOW: %v", err)
				}
				c.window = d
			}
			f := newFleet(b, c.o)
			f.publish(f.topology(1, "db-a"))
			f.startAll()
			f.waitReady(3 * time.Minute)
			b.Cleanup(f.stopAll)
			n := f.all()[0]
			pid := n.cmd.Process.Pid
			// Let the boot's garbage go and the first polls pass.
			time.Sleep(c.o.PollInterval + c.o.Settle + c.o.Splay + 2*time.Second)

			f.proxy.Reset()
			minio0 := f.minio.APIRequests(b, "GetObject")
			cpu0 := cpuTime(b, pid)
			start := time.Now()
			var peak, peakAnon int64
			var last map[string]int64
			for time.Since(start) < c.window {
				time.Sleep(500 * time.Millisecond)
				last = memKB(b, pid)
				peak = max(peak, last["VmRSS"])
				peakAnon = max(peakAnon, last["RssAnon"])
			}
			elapsed := time.Since(start)
			cpu := cpuTime(b, pid) - cpu0
			gets, notModified := f.proxy.Gets(topologyBucket, topologyKey)
			// The same GETs as MinIO counted them (every GetObject it served;
			// nothing else reads from it while the agent idles).
			minioGets := f.minio.APIRequests(b, "GetObject") - minio0
			intervals := elapsed.Seconds() / c.o.PollInterval.Seconds()
			// One GET per poll: the agent waits the interval ±10% (jitter)
			// after each poll, so the window holds between elapsed/1.1 and
			// elapsed/0.9 intervals' worth, give or take the one in flight
			// at either end.
			lo := int(math.Floor(intervals/1.1)) - 1
			hi := int(math.Ceil(intervals/0.9)) + 1
			cpuPct := 100 * cpu.Seconds() / elapsed.Seconds()
			if got := n.mustMetric(`nodeagent_applies_total{result="ok"}`); got != 1 {
				b.Errorf("%s applied %v times while idle, want only the boot apply", n.name, got)
			}
			b.ReportMetric(float64(peak)/1024, "peak-rss-MB")
			b.ReportMetric(float64(peakAnon)/1024, "peak-anon-MB")
			b.ReportMetric(cpuPct, "cpu-%")
			b.ReportMetric(float64(gets)/intervals, "gets/interval")
			writeSection(b, "idle-"+strings.NewReplacer(" ", "-", ",", "").Replace(c.name), fmt.Sprintf(
				"| %s | %s | %.1f MB (%s) | %.1f MB | %.1f MB: %.1f anon + %.1f file | %.3f%% (%s) | %d (%d not modified; MinIO counted %d GetObject) in %.0f intervals: %.2f per interval (%s) |\n",
				c.name, secs(elapsed), float64(peakAnon)/1024, verdict(peakAnon <= 6*1024), float64(peak)/1024,
				float64(last["VmRSS"])/1024, float64(last["RssAnon"])/1024, float64(last["RssFile"]+last["RssShmem"])/1024,
				cpuPct, verdict(cpuPct < 0.1), gets, notModified, minioGets, intervals, float64(gets)/intervals,
				verdict(minioGets == gets && gets >= lo && gets <= hi)))
		})
	}
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// percentile is the nearest-rank percentile p (0-100] of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// writeSection writes one result row for bench.sh to assemble.
func writeSection(b *testing.B, name, row string) {
	b.Helper()
	b.Log(strings.TrimSpace(row))
	dir := os.Getenv("NODEAGENT_FLEET_BENCH_DIR")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(row), 0o644); err != nil {
		b.Fatal(err)
	}
}

// memKB reads the resident memory of pid in KiB from /proc/PID/status:
// VmRSS and its parts RssAnon (heap, stacks), RssFile (the mapped
// binary) and RssShmem.
func memKB(b *testing.B, pid int) map[string]int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("memory of %d: %v", pid, err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && !strings.HasPrefix(k, "Rss")) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			b.Fatalf("%s %q: %v", k, v, err)
		}
		m[k] = n
	}
	if m["VmRSS"] == 0 {
		b.Fatalf("no VmRSS for %d", pid)
	}
	return m
}

// cpuTime is the user plus system CPU time pid has used.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("cpu of %d: %v", pid, err)
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// After "(comm)": state is field 0, utime 11, stime 12 (in ticks).
	if len(fields) < 13 {
		b.Fatalf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond
}
