#!/usr/bin/env bash
# Runs every benchmark of the issues' targets and rewrites BENCHMARKS.md:
#   1. apply with nothing to change      (end-to-end, real binary and services)
#   2. plan and render, 5,000 nodes       (Go benchmark + peak RSS in its own process)
#   2b. cold apply of a web node, through its config checks (end-to-end, with 1)
#   3. boot to ready, 50 MB release       (end-to-end, MinIO, Apache, PHP-FPM)
#   4. release throughput vs the shell    (release/bench_compare.sh)
#   5. footprint: stripped binary size, one decode of a changed 5,000-node
#      document (Go benchmark; idle RSS is test/fleet/bench.sh's)
# Needs the Debian packages of `make deps` and the tools of `make tools`
# (ec2-metadata-mock, minio in NODEAGENT_TOOLS_DIR); strace is used when
# installed. Runs in about 5 minutes on 2 cores.
#
# Usage: bench/bench.sh [OUTPUT]   (default BENCHMARKS.md at the repository root)
# Knobs: BENCH_COUNT (Go benchmark -count, 5), BENCH_RUNS (applies per
# no-change series and cold applies, 31), BENCH_BOOTS (boots, 3), RSS_RUNS (5), RUNS (bench_compare, 5).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
out=${1:-$repo/BENCHMARKS.md}
GO=${GO:-go}
count=${BENCH_COUNT:-5}
runs=${BENCH_RUNS:-31}
boots=${BENCH_BOOTS:-3}
rss_runs=${RSS_RUNS:-5}
export RUNS=${RUNS:-5}

# Every temporary tree (node roots, extracted releases) goes under a
# directory of its own with ext4's top-directory hint (chattr +T), so its
# inodes come from a fresh block group. On this machine's journal-less ext4
# the inode allocator skips, one by one, every inode freed in the last 60 s:
# in a /tmp where other tests just deleted thousands of files, creating the
# release's 10,000 files costs 3-5x more, for the agent and the shell alike,
# and the figures measure the neighbours. (EC2 root volumes, ext4 with a
# journal or XFS, do not take that path.)
quiet=$(mktemp -d /var/tmp/nodeagent-bench.XXXXXX)
chmod 1777 "$quiet" # like /tmp: Apache and PHP-FPM (www-data) reach the node roots
chattr +T "$quiet" 2>/dev/null || echo "== bench: chattr +T $quiet failed; temporary trees share the filesystem's recent deletions" >&2
export TMPDIR=$quiet
work=$(mktemp -d)
trap 'rm -rf "$work" "$quiet"' EXIT
cmds=$work/commands.tsv
say() { echo "== bench: $*" >&2; }
record() { printf '%s\t%s\n' "$1" "$2" >>"$cmds"; }

say "build (the release binary as \`make build\` makes it)"
build_env=$(grep -v '^#' packaging/build.env | grep =)
# shellcheck disable=SC2086 # one VAR=value a word
env $build_env $GO build -trimpath -ldflags '-s -w' -o "$work/nodeagent" ./cmd/nodeagent
$GO build -o "$work/benchplan" ./bench/cmd/benchplan
$GO build -o "$work/benchreport" ./bench/cmd/benchreport
$GO build -o "$work/benchtool" ./release/internal/benchtool

say "2. plan and render: Go benchmark"
c="go test -run '^\$' -bench BenchmarkPlan -benchmem -benchtime 10x -count $count ./bench/"
record plan-bench "$c"
eval "$GO${c#go}" | tee "$work/plan-bench.txt" >&2

say "2. plan and render: peak RSS, $rss_runs runs per case"
"$work/benchplan" gen -o "$work/fleet.json"
record plan-rss "benchplan gen -o fleet.json"
mkdir "$work/fresh"
for role in web-all web-g00; do
	mkdir "$work/converged-$role"
	"$work/benchplan" converge -topology "$work/fleet.json" -root "$work/converged-$role" -role "$role"
	record plan-rss "benchplan converge -topology fleet.json -root converged-$role -role $role"
	for state in fresh converged; do
		dir=$state
		[ "$state" = converged ] && dir=converged-$role
		record plan-rss "benchplan plan -topology fleet.json -root $dir -state $state -role $role   # x$rss_runs"
		for _ in $(seq "$rss_runs"); do
			"$work/benchplan" plan -topology "$work/fleet.json" -root "$work/$dir" -state "$state" -role "$role" | tee -a "$work/plan-rss.jsonl" >&2
		done
	done
done

say "1 and 3. end to end: $boots boots, $runs applies per no-change series"
"$work/benchtool" gen -o "$work/release.tar.gz"
c="NODEAGENT_BENCH_RUNS=$runs NODEAGENT_BENCH_BOOTS=$boots go test -tags bench -run TestEndToEnd -count=1 -timeout 15m -v ./bench/"
record e2e "$c"
record e2e "# each series: nodeagent apply --config <cfg> --topology file://<doc>|s3://fleet/topology.json [--dry-run]   (x$runs, then once under strace -f -ff -z)"
record cold "# x$runs after one unmeasured, each after removing the config files the boot created; then, from the harness, apache2ctl -t and php-fpm -t alone, one after the other and at once (TestEndToEnd, series cold)"
NODEAGENT_BENCH_BIN="$work/nodeagent" NODEAGENT_BENCH_OUT="$work/e2e.json" NODEAGENT_BENCH_RELEASE="$work/release.tar.gz" \
	NODEAGENT_BENCH_RUNS=$runs NODEAGENT_BENCH_BOOTS=$boots \
	$GO test -tags bench -run TestEndToEnd -count=1 -timeout 15m -v ./bench/ >&2

say "4. release throughput: release/bench_compare.sh (RUNS=$RUNS)"
record release "RUNS=$RUNS release/bench_compare.sh"
bash release/bench_compare.sh | tee "$work/release.txt" >&2

say "5. footprint: the stripped binary, a changed 5,000-node document"
stat -c %s "$work/nodeagent" >"$work/binary.txt"
record binary "$(echo $build_env) go build -trimpath -ldflags '-s -w' ./cmd/nodeagent; stat -c %s nodeagent"
c="go test -run '^\$' -bench BenchmarkChangedDocument -benchtime 10x -count $count ./bench/"
record changed "$c"
eval "$GO${c#go}" | tee "$work/changed.txt" >&2

say "write $out"
"$work/benchreport" -plan-bench "$work/plan-bench.txt" -plan-rss "$work/plan-rss.jsonl" -e2e "$work/e2e.json" \
	-release "$work/release.txt" -commands "$cmds" -binary "$work/binary.txt" -changed "$work/changed.txt" \
	-notes bench/analysis.md -o "$out"
say "done: $out"
