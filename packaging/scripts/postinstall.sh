#!/bin/sh
# nodeagent postinstall, after the package's files are in place.
#   deb: postinst configure [old-version] | abort-upgrade | abort-remove | abort-deconfigure …
#   rpm: %post with $1 = 1 (install) or 2 (upgrade)
#
# Reloads systemd when it is running, enables nodeagent.service on a fresh
# install, and never starts or restarts it: in an image build (a chroot, a
# container, a Packer instance) the agent must not run, and on a live node
# a restart drains it out of the load balancer, which is the operator's call.
set -e

unit=nodeagent.service
mark=/var/lib/nodeagent/.enable-unit

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# systemd is the running init (sd_booted): false in a chroot, in an image
# build container, or wherever systemd is installed but not PID 1.
booted() { [ -d /run/systemd/system ]; }

if booted; then
	systemctl daemon-reload
fi

if [ -e "$mark" ]; then
	if command -v systemctl >/dev/null 2>&1; then
		# Works offline: it only creates the WantedBy symlink.
		systemctl --no-reload enable "$unit"
	else
		mkdir -p /etc/systemd/system/multi-user.target.wants
		ln -sf "/usr/lib/systemd/system/$unit" "/etc/systemd/system/multi-user.target.wants/$unit"
		echo "nodeagent: enabled $unit (multi-user.target.wants symlink; systemctl not found)"
	fi
	rm -f "$mark"
fi

if booted && systemctl --quiet is-active "$unit"; then
	echo "nodeagent: the running agent keeps its old version until restarted;" \
		"\`systemctl restart nodeagent\` drains the node first (drain_time) and re-applies." >&2
fi
exit 0
