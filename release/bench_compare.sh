#!/usr/bin/env bash
# Compares release.Manager.Install (download + sha256 while streaming +
# hardened extraction) with the shell baseline
#   curl -s URL | tee >(sha256sum >/dev/null) | tar xz -C DIR
# on the same ~50 MB tar.gz served by python3 -m http.server on loopback.
# Prints each run, the median of RUNS runs (default 5) for both, and the
# throughput ratio Go/shell (>= 0.80 is the target).
#
# Usage: release/bench_compare.sh   (from anywhere; RUNS=N to change the count)
set -euo pipefail

runs=${RUNS:-5}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
srv=
cleanup() {
	if [ -n "$srv" ]; then kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/benchtool" ./release/internal/benchtool
"$work/benchtool" gen -o "$work/www/release.tar.gz"
size=$(stat -c %s "$work/www/release.tar.gz")
sum=$(sha256sum "$work/www/release.tar.gz" | cut -d' ' -f1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$port" --directory "$work/www" >/dev/null 2>&1 &
srv=$!
url="http://127.0.0.1:$port/release.tar.gz"
for _ in $(seq 50); do
	curl -sf -o /dev/null -r 0-0 "$url" && break
	sleep 0.1
done

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Every run unpacks into a directory of its own, all removed at the end:
# on an ext4 without a journal (this VM's), the inode allocator skips
# inodes freed in the last 60 s (360 s until written back) one at a time
# (fs/ext4/ialloc.c recently_deleted), so removing the previous run's
# 10,000 files just before a run made its file creation 5-10 times
# slower, whichever side it was.
shell_times=()
go_times=()
for i in $(seq "$runs"); do
	mkdir "$work/x$i" && sync
	t0=$(now)
	curl -s "$url" | tee >(sha256sum >/dev/null) | tar xz -C "$work/x$i"
	t1=$(now)
	shell_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')")

	sync
	t0=$(now)
	"$work/benchtool" install -url "$url" -sha "$sum" -root "$work/root$i" >/dev/null
	t1=$(now)
	go_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')")
	echo "run $i: shell ${shell_times[-1]} s, release.Install ${go_times[-1]} s"
done

shell_med=$(printf '%s\n' "${shell_times[@]}" | median)
go_med=$(printf '%s\n' "${go_times[@]}" | median)
awk -v s="$shell_med" -v g="$go_med" -v n="$size" -v r="$runs" 'BEGIN {
	printf "archive: %d bytes; median of %d runs\n", n, r
	printf "shell  (curl | tee >(sha256sum) | tar xz): %.3f s  %.1f MB/s\n", s, n / s / 1e6
	printf "release.Install (download+verify+extract): %.3f s  %.1f MB/s\n", g, n / g / 1e6
	printf "throughput ratio release/shell: %.2f (target >= 0.80)\n", s / g
}'
