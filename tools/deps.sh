#!/usr/bin/env bash
# deps.sh installs the Debian packages nodeagent's tests run for real
# (Apache, PHP-FPM with php-memcached, memcached, and the small tools the
# tests call), and makes sure the system's own copies of those services are
# not left running: tests start their own on loopback ports, and a system
# Apache on :80 or memcached on :11211 would only confuse them.
#
# Idempotent: asks apt nothing when every package is already installed, and
# stopping services that are not running is a no-op.
set -euo pipefail

packages=(
	apache2
	php-fpm
	php-memcached
	memcached
	curl
	diffutils
	patch
	perl
	procps
	systemd  # systemd-analyze, for checking the packaged unit
	chromium # headless browser for the fleet serve page test (chromedp)
)

sudo=()
if [ "$(id -u)" != 0 ]; then
	sudo=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	# Keep the packages' maintainer scripts from starting the services while
	# they install (exit 101 = "action forbidden" for invoke-rc.d), unless
	# the machine already has a policy of its own.
	policy=/usr/sbin/policy-rc.d
	own_policy=false
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 0755 "$policy"
		own_policy=true
	fi
	cleanup() { if $own_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
	trap cleanup EXIT
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	cleanup
	trap - EXIT
fi

# stop_pidfile NAME PIDFILE COMM: stop the system service whose live pid is
# in PIDFILE (and whose command name is COMM), first through its init
# script, then by signal; bounded.
stop_pidfile() {
	local name=$1 pidfile=$2 comm=$3 pid
	[ -r "$pidfile" ] || return 0
	pid=$(tr -dc '0-9' <"$pidfile")
	[ -n "$pid" ] || return 0
	running() { [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] &&
		! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; }
	running || return 0
	echo "deps: stopping the system's $name (pid $pid)"
	"${sudo[@]}" service "$name" stop >/dev/null 2>&1 || true
	for _ in $(seq 50); do running || return 0; sleep 0.1; done
	"${sudo[@]}" kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do running || return 0; sleep 0.1; done
	"${sudo[@]}" kill -KILL "$pid" 2>/dev/null || true
	for _ in $(seq 20); do running || return 0; sleep 0.1; done
	echo "deps: could not stop the system's $name (pid $pid)" >&2
	return 1
}

stop_pidfile apache2 /run/apache2/apache2.pid apache2
for conf in /etc/php/*/fpm/php-fpm.conf; do
	[ -e "$conf" ] || continue
	ver=$(basename "$(dirname "$(dirname "$conf")")")
	stop_pidfile "php$ver-fpm" "/run/php/php$ver-fpm.pid" "php-fpm$ver"
done
stop_pidfile memcached /run/memcached/memcached.pid memcached
