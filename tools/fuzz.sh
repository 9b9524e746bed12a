#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] runs every Fuzz target of the module briefly, one at a
# time (go test -fuzz takes a single target in a single package). Fails on
# the first finding; the failing input is left in the package's
# testdata/fuzz/ as usual.
set -euo pipefail

fuzztime=${1:-10s}
go=${GO:-go}
cd "$(dirname "$0")/.."

# `go test -list` prints each package's matching names, then its own
# "ok <pkg>" line.
list=$($go test -list '^Fuzz' ./...)
targets=()
names=()
while IFS= read -r line; do
	case $line in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for n in "${names[@]}"; do targets+=("$pkg $n"); done
		names=()
		;;
	*) names=() ;;
	esac
done <<<"$list"

if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz: no Fuzz targets"
	exit 0
fi
echo "fuzz: ${#targets[@]} targets, $fuzztime each"
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $pkg $name"
	# Minimizing each new interesting input may take up to a minute by
	# default, during which a brief run fuzzes nothing (FuzzLoad stalled
	# for most of its 10 s that way); 200 executions per minimization keep
	# the time for fuzzing. A failing input is still minimized, as briefly.
	$go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 200x "$pkg"
done
