#!/usr/bin/env bash
# build.sh DIR builds the pinned test tools of tools/go.mod (AWS's IMDS mock,
# MinIO, nfpm) into DIR, a cache outside the checkout. A binary is rebuilt
# only when it is missing or was built from another tools/go.mod + go.sum
# (recorded in DIR/NAME.stamp), so a second run, or a fresh clone on the same
# machine, builds nothing.
set -euo pipefail

dir=${1:?usage: build.sh TOOLS_DIR}
go=${GO:-go}
cd "$(dirname "$0")"
mkdir -p "$dir"

stamp=$(cat go.mod go.sum | sha256sum | cut -c1-16)

# Each tool directive of go.mod, in the order given.
mapfile -t pkgs < <(awk '/^tool \(/ {inblock = 1; next} inblock && /^\)/ {inblock = 0} inblock {print $1} /^tool [^(]/ {print $2}' go.mod)
if [ "${#pkgs[@]}" -eq 0 ]; then
	echo "tools: no tool directives in tools/go.mod" >&2
	exit 1
fi

for pkg in "${pkgs[@]}"; do
	[ -n "$pkg" ] || continue
	name=${pkg##*/}
	bin=$dir/$name
	if [ -x "$bin" ] && [ "$(cat "$bin.stamp" 2>/dev/null)" = "$stamp" ]; then
		continue
	fi
	echo "tools: building $name ($pkg)"
	start=$(date +%s)
	$go build -o "$bin.tmp.$$" "$pkg"
	mv -f "$bin.tmp.$$" "$bin"
	echo "$stamp" >"$bin.stamp"
	echo "tools: built $name in $(($(date +%s) - start))s"
done
