#!/bin/sh
# nodeagent preinstall, before the package's files are unpacked.
#   deb: preinst install [old-version] | upgrade old-version | abort-upgrade new-version
#        ("install" with an old version: reinstalling after a remove that kept the config)
#   rpm: %pre with $1 = 1 (install) or 2 (upgrade)
#
# A fresh install leaves a mark for postinstall, which then enables the unit.
# An upgrade leaves none, so a unit the admin disabled stays disabled.
set -e

state=/var/lib/nodeagent

case "$1" in
install | 1)
	if [ ! -d "$state" ]; then
		mkdir -p -m 0711 "$state"
	fi
	: >"$state/.enable-unit"
	;;
esac
exit 0
