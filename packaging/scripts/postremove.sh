#!/bin/sh
# nodeagent postremove, after the package's files are gone.
#   deb: postrm remove | purge | upgrade new-version | disappear | abort-install | abort-upgrade | failed-upgrade
#   rpm: %postun with $1 = 0 (erase) or 1 (upgrade)
#
# Reloads systemd so it forgets the removed (or replaced) unit. A deb purge
# also deletes the agent's state (last good topology, status, health file,
# PHP probe); dpkg itself deletes /etc/nodeagent/config.json. The files the
# agent rendered (vhosts, pools, /etc/hosts block, releases) are the node's
# live configuration and stay.
set -e

case "$1" in
purge)
	rm -rf /var/lib/nodeagent
	;;
esac

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
