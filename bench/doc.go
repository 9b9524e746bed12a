// Package bench measures nodeagent against the speed and memory targets of
// its issues and writes the figures to BENCHMARKS.md (bench.sh, run by
// `make bench`):
//
//   - plan and render for a large fleet: Fleet generates a valid topology
//     (5,000 nodes, 200 products by default) and Plan runs the agent's
//     planning pipeline on it (topology.Load, topology.Resolve,
//     roles.Desire, plan.Build) against a directory root; the Go
//     benchmarks in plan_bench_test.go time it, cmd/benchplan measures its
//     peak RSS in a process of its own;
//   - apply with nothing to change, cold apply of a web node through its
//     config checks (Cold, ColdMarks) and boot to ready: end-to-end runs of
//     the real nodeagent binary against amazon-ec2-metadata-mock, MinIO and
//     real Apache, PHP-FPM and memcached (e2e_bench_test.go, build tag
//     bench);
//   - cmd/benchreport turns the recorded figures into BENCHMARKS.md.
//
// Nothing here asserts a timing: a missed target is reported as a figure
// with "fail", never as a failed test.
package bench
