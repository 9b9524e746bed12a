#!/bin/sh
# nodeagent preremove, before the package's files go.
#   deb: prerm remove | upgrade new-version | deconfigure … | failed-upgrade old-version
#   rpm: %preun with $1 = 0 (erase) or 1 (upgrade)
#
# On removal (not on upgrade) it stops the agent, which drains the node
# (the ELB health path turns 503 first), and disables the unit.
set -e

unit=nodeagent.service

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop "$unit" || echo "nodeagent: could not stop $unit; removing anyway" >&2
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload disable "$unit" || true
fi
# Whatever enabled it, the WantedBy symlink goes with the unit file.
rm -f "/etc/systemd/system/multi-user.target.wants/$unit"
exit 0
