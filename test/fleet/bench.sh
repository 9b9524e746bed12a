#!/usr/bin/env bash
# Fleet benchmarks of `nodeagent run` against real components (see
# test/fleet/doc.go): propagation of a topology change to fleets of 10 and
# 50 agents (20 trials each), and the idle cost of one agent (RSS, CPU,
# conditional GETs per interval counted at a proxy in front of MinIO and by MinIO itself), and the
# fleet reports: fleet status and fleet serve over 2,000 reports in MinIO, report PUTs of an idle
# agent counted by MinIO; staged rollouts: a 4-wave rollout's time and the rollout object's GETs.
# Writes the figures as Markdown to OUT (default test/fleet/BENCHMARKS.md)
# and prints them. Takes about 17 minutes on 2 cores.
#
# Usage: test/fleet/bench.sh [OUT]
#   NODEAGENT_FLEET_TRIALS=N       trials per fleet size (default 20)
#   NODEAGENT_FLEET_IDLE_WINDOW=D  idle measuring window (default 60s at a 1s interval, 300s at the 30s default)
#   NODEAGENT_TOOLS_DIR            tool binaries (default ~/.cache/nodeagent/tools/bin)
set -euo pipefail

cd "$(dirname "$0")/../.."
out=${1:-test/fleet/BENCHMARKS.md}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

NODEAGENT_FLEET_BENCH_DIR=$dir go test -tags integration -count=1 -timeout 60m \
	-run '^$' -bench '^Benchmark(Propagation|Idle|FleetStatus|FleetServe|ReportPuts|Rollout)$' -benchtime 1x ./test/fleet/ | tee "$dir/go-bench.txt"

shopt -s nullglob
prop=("$dir"/propagation-*.md)
idle=("$dir"/idle-*.md)
reports=("$dir"/reports-status.md "$dir"/reports-serve.md)
puts=("$dir"/reports-puts.md)
rollout=("$dir"/rollout-time.md "$dir"/rollout-gets.md)
if [ "${#prop[@]}" -eq 0 ] || [ "${#idle[@]}" -eq 0 ] || [ ! -e "${reports[0]}" ] || [ ! -e "${reports[1]}" ] || [ ! -e "${puts[0]}" ] || [ ! -e "${rollout[0]}" ] || [ ! -e "${rollout[1]}" ]; then
	echo "bench.sh: the benchmarks wrote no figures" >&2
	exit 1
fi

{
	echo "## Fleet: propagation and idle cost of \`nodeagent run\`"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
	echo "\`test/fleet/bench.sh\`: every agent a separate \`nodeagent run\` process with its own"
	echo "amazon-ec2-metadata-mock, 127.0.x.y address and node root, sharing one MinIO; web nodes run"
	echo "real Apache + PHP-FPM, cache nodes real memcached."
	echo
	echo "### Propagation"
	echo
	echo "Time from publishing a database failover (PutObject returned) to every agent converged:"
	echo "\`/etc/hosts\`, the app config and, on web nodes, the page served through Apache show the new"
	echo "master. --poll-interval 1s (±10% jitter), --settle 200ms, --splay 1s. Target: p99 within"
	echo "interval + splay + 2 s."
	echo
	echo "| agents | trials | interval + splay | fleet p50 | fleet p99 | fleet max | per-node p50 | per-node p99 | p99 ≤ budget + 2 s |"
	echo "|---|---|---|---|---|---|---|---|---|"
	cat "${prop[@]}"
	echo
	echo "### Idle"
	echo
	echo "One web node's agent with nothing to change. Targets: anonymous RSS (RssAnon of /proc/<pid>/status: heap, stacks) at most 6 MB,"
	echo "CPU under 0.1% of a core; RSS (anonymous + the binary's file-backed pages, reclaimable) is shown beside it,"
	echo "one conditional GET of the topology per poll interval (counted at a proxy in front of MinIO, and by MinIO itself from its own request metrics)."
	echo
	echo "| settings | window | peak anonymous RSS | peak RSS | RSS at end | CPU | topology GETs |"
	echo "|---|---|---|---|---|---|---|"
	cat "${idle[@]}"
	echo
	echo "### Fleet reports: \`fleet status\`, \`fleet serve\`, report PUTs"
	echo
	echo "2,000 reports (a web node's: nine changed files with reasons, two smoke checks) in MinIO."
	echo "\`fleet status\` is the binary, a cold process per run: topology GET, ListObjectsV2 pages,"
	echo "2,000 GETs (32 at a time), the table or JSON. \`fleet serve\` is timed by a client on loopback"
	echo "(the snapshot is encoded and gzipped once per reload, so a request is a copy)."
	echo
	echo "| what | runs | median | min | max | target | result |"
	echo "|---|---|---|---|---|---|---|"
	cat "${reports[@]}"
	echo
	echo "Report PUTs of one idle light agent, counted by MinIO (its own request metrics). Target:"
	echo "one per --report-interval, 60 / (interval in minutes) per hour (12 per hour at the default 5m)."
	echo
	echo "| agent | window | PUTs | per hour | expected per hour | result |"
	echo "|---|---|---|---|---|---|"
	cat "${puts[@]}"
	echo
	echo "### Staged rollouts"
	echo
	echo "20 light agents (--poll-interval 1s, --splay 1s; front nodes whose Apache files are written and"
	echo "checked, no services) through a counting proxy in front of MinIO. A 4-wave rollout with bake 0,"
	echo "timed from the start of \`topology publish --rollout waves\` to its exit at done (3 rollouts)."
	echo "Target: within 4 × (interval + splay + 2 s)."
	echo
	echo "| agents | waves (%) | bake | budget | rollouts | worst | result |"
	echo "|---|---|---|---|---|---|---|"
	cat "${rollout[0]}"
	echo
	echo "GETs per node per poll interval over 15 s, counted at the proxy per key. Target: one extra"
	echo "conditional GET (of rollouts/<serial>.json) per held node per interval while a rollout holds"
	echo "the serial back, none otherwise."
	echo
	echo "| state | agents | topology GETs per node per interval | rollout object GETs | result |"
	echo "|---|---|---|---|---|"
	cat "${rollout[1]}"
} >"$out"
cat "$out"
