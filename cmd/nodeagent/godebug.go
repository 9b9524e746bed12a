// nodeagent runs on the instance itself, not in a container with a CPU
// quota. containermaxprocs=0 keeps GOMAXPROCS at the CPU count whatever
// cgroup the agent finds itself in (the runtime still reads
// /proc/self/cgroup, mountinfo and the quota files once at start, to count
// the setting's effect in runtime/metrics), and updatemaxprocs=0 spares a
// daemon the runtime's check, every second of its life, of whether that
// count changed.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

package main
