package metrics

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
)

// writeRuntime writes the Go runtime's and the process's standard series:
// a subset of what client_golang's Go and process collectors write (no
// go_gc_duration_seconds, no allocation counts by size), under the same
// names, so dashboards built on those series keep working. Everything is
// read at scrape time; nothing runs between scrapes.
func writeRuntime(w *bufio.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	threads, _ := runtime.ThreadCreateProfile(nil)
	for _, s := range []struct {
		name, help, typ string
		v               float64
	}{
		{"go_goroutines", "Number of goroutines that currently exist.", "gauge", float64(runtime.NumGoroutine())},
		{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", "gauge", float64(ms.HeapAlloc)},
		{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already.", "counter", float64(ms.TotalAlloc)},
		{"go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", "gauge", float64(ms.HeapIdle)},
		{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", "gauge", float64(ms.HeapInuse)},
		{"go_memstats_heap_released_bytes", "Number of heap bytes released to the OS.", "gauge", float64(ms.HeapReleased)},
		{"go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", "gauge", float64(ms.LastGC) / 1e9},
		{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", "gauge", float64(ms.NextGC)},
		{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator.", "gauge", float64(ms.StackInuse)},
		{"go_memstats_sys_bytes", "Number of bytes obtained from system.", "gauge", float64(ms.Sys)},
		{"go_threads", "Number of OS threads created.", "gauge", float64(threads)},
	} {
		writeHeader(w, s.name, s.help, s.typ)
		writeSample(w, s.name, "", "", s.v)
	}
	writeHeader(w, "go_info", "Information about the Go environment.", "gauge")
	writeSample(w, "go_info", "version", runtime.Version(), 1)

	p, err := readProcess()
	if err != nil {
		return // not Linux, or /proc not mounted: no process series
	}
	for _, s := range []struct {
		name, help, typ string
		v               float64
	}{
		{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", p.cpuSeconds},
		{"process_max_fds", "Maximum number of open file descriptors.", "gauge", p.maxFDs},
		{"process_open_fds", "Number of open file descriptors.", "gauge", p.openFDs},
		{"process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", p.rss},
		{"process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", p.startTime},
		{"process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", p.vsize},
	} {
		writeHeader(w, s.name, s.help, s.typ)
		writeSample(w, s.name, "", "", s.v)
	}
}

type process struct {
	cpuSeconds, maxFDs, openFDs, rss, startTime, vsize float64
}

// userHZ is the unit of the clock-tick fields of /proc/<pid>/stat. It is
// 100 on every Linux architecture the agent is built for (sysconf
// _SC_CLK_TCK); client_golang's procfs assumes the same.
const userHZ = 100

// readProcess reads this process's CPU time, memory, start time and file
// descriptors from /proc (proc(5)).
func readProcess() (process, error) {
	var p process
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return p, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself; the fields after the last ')' start at field 3.
	f := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:])
	field := func(n int) float64 { // n: the 1-based field number of proc(5)
		if n-3 >= len(f) {
			return 0
		}
		v, _ := strconv.ParseFloat(string(f[n-3]), 64)
		return v
	}
	p.cpuSeconds = (field(14) + field(15)) / userHZ // utime + stime
	p.vsize = field(23)
	p.rss = field(24) * float64(os.Getpagesize())
	if boot, err := bootTime(); err == nil {
		p.startTime = boot + field(22)/userHZ
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		p.maxFDs = float64(lim.Cur)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.openFDs = float64(len(fds) - 1) // not the one reading the directory
	}
	return p, nil
}

// bootTime is the "btime" line of /proc/stat: the boot time in seconds
// since the epoch.
func bootTime() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
		}
	}
	return 0, os.ErrNotExist
}
