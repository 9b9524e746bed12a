#!/bin/sh
# version.sh [VERSION] prints the package version: a string that dpkg and rpm
# both order correctly, made of digits, letters and . + ~ only (no -, which
# rpm refuses in a version; a - becomes ~, so a pre-release sorts first).
#
#   VERSION given        v1.2.3 -> 1.2.3 (it must start with a digit after the v)
#   on tag v1.2.3        1.2.3
#   on tag v1.3.0-rc1    1.3.0~rc1               (before 1.3.0)
#   past tag v1.2.3      1.2.3+5.gabc12345       (5 commits after the tag)
#   no tag yet           0.0.0~dev.42.gabc1234   (42 commits; ~ sorts before 0.0.0)
#   uncommitted changes  ... .dirty appended
#   no git               0.0.0~dev
set -eu

clean() {
	set -- "$(echo "$1" | tr - '~')"
	case $1 in
	[0-9]*) ;;
	*)
		echo "version.sh: version \"$1\" must start with a digit (or v and a digit)" >&2
		exit 1
		;;
	esac
	case $1 in
	*[!0-9A-Za-z.+~]*)
		echo "version.sh: version \"$1\" may hold only digits, letters and . + ~" >&2
		exit 1
		;;
	esac
	echo "$1"
}

if [ $# -gt 0 ] && [ -n "$1" ]; then
	clean "${1#v}"
	exit 0
fi

cd "$(dirname "$0")/.."
if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
	echo 0.0.0~dev
	exit 0
fi

hash=$(git rev-parse --short=8 HEAD)
dirty=
if ! git diff-index --quiet HEAD -- 2>/dev/null; then
	dirty=.dirty
fi

if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.3-5-gabc12345: the tag may hold - itself, so split from the end.
	count=${desc%-g*}
	count=${count##*-}
	tag=${desc%-*-g*}
	tag=${tag#v}
	if [ "$count" = 0 ] && [ -z "$dirty" ]; then
		clean "$tag"
	else
		clean "$tag+$count.g$hash$dirty"
	fi
else
	clean "0.0.0~dev.$(git rev-list --count HEAD).g$hash$dirty"
fi
