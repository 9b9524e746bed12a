// nodeagent runs on the instance itself, not in a container with a CPU
// quota: the runtime's cgroup-aware GOMAXPROCS would read /proc/self/cgroup,
// mountinfo and the quota files at every start and check them again every
// second of a daemon's life, for a limit a VM does not have.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

package main
