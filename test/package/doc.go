// Package packagetest checks nodeagent's .deb and .rpm for real. Its tests,
// behind the integration build tag, build both packages with `make
// package`, read the .rpm's header, and install, upgrade, remove and purge
// the .deb with dpkg on this machine, checking every path, mode and unit
// state the packaging promises (packaging/README.md). They need root, dpkg
// and systemd-analyze, and leave the machine as they found it.
package packagetest
