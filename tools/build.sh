#!/usr/bin/env bash
# build.sh DIR builds the pinned test tools into DIR, a cache outside the
# checkout: tools/go.mod (AWS's IMDS mock, MinIO, nfpm) and tools/lint/go.mod
# (staticcheck). A binary is rebuilt only when it is missing or was built from
# another go.mod + go.sum of its module (recorded in DIR/NAME.stamp), so a
# second run, or a fresh clone on the same machine, builds nothing.
set -euo pipefail

dir=${1:?usage: build.sh TOOLS_DIR}
go=${GO:-go}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$(dirname "$0")"

# build_module DIR: every tool directive of DIR/go.mod, stamped with that
# module's go.mod + go.sum. Each module pins its own dependency graph: MinIO's
# (tools/go.mod) and the linter's (tools/lint/go.mod) would otherwise force
# each other's versions.
build_module() {
	local mod=$1 stamp pkgs pkg name bin start
	stamp=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)
	mapfile -t pkgs < <(awk '/^tool \(/ {inblock = 1; next} inblock && /^\)/ {inblock = 0} inblock {print $1} /^tool [^(]/ {print $2}' "$mod/go.mod")
	if [ "${#pkgs[@]}" -eq 0 ]; then
		echo "tools: no tool directives in $mod/go.mod" >&2
		return 1
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
		(cd "$mod" && $go build -o "$bin.tmp.$$" "$pkg")
		mv -f "$bin.tmp.$$" "$bin"
		echo "$stamp" >"$bin.stamp"
		echo "tools: built $name in $(($(date +%s) - start))s"
	done
}

build_module .
build_module lint
