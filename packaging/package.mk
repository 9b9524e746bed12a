# packaging/package.mk: the package targets, included by the Makefile
# (after VERSION, GO, TOOLS_DIR and the build target are defined).
#
#   make package        bin/nodeagent stamped with the package version, then
#                       the .deb and .rpm into $(PKG_DIST) (nfpm.yaml)
#   make package-test   build them and install, check and remove the .deb on
#                       this machine (test/package; needs root and dpkg)
#
# The package version comes from packaging/version.sh: from git describe, or
# from VERSION when that is given on the command line or in the environment
# (`make package VERSION=v1.2.3`). The binary is stamped with the same string,
# so `nodeagent version` and `dpkg -s nodeagent` agree.

PKG_DIST ?= dist
ifneq ($(filter command line environment,$(origin VERSION)),)
PKG_VERSION ?= $(shell sh packaging/version.sh '$(VERSION)')
else
PKG_VERSION ?= $(shell sh packaging/version.sh)
endif
PKG_ARCH ?= $(shell $(GO) env GOARCH)
NFPM     ?= $(TOOLS_DIR)/nfpm

.PHONY: package package-nfpm package-test

# pkg_nfpm,VERSION: package the bin/nodeagent already built, as VERSION.
define pkg_nfpm
	test -x '$(NFPM)' || { echo "package: $(NFPM) missing: run make tools" >&2; exit 1; }; \
	test -x bin/nodeagent || { echo "package: bin/nodeagent missing: run make package" >&2; exit 1; }; \
	mkdir -p '$(PKG_DIST)'; \
	rm -f '$(PKG_DIST)'/nodeagent_*.deb '$(PKG_DIST)'/nodeagent-*.rpm; \
	epoch=$$(git log -1 --format=%ct 2>/dev/null || date +%s); \
	for p in deb rpm; do \
		NODEAGENT_VERSION="$(1)" NODEAGENT_ARCH='$(PKG_ARCH)' SOURCE_DATE_EPOCH="$$epoch" \
		'$(NFPM)' package --config nfpm.yaml --packager $$p --target '$(PKG_DIST)/' || exit 1; \
	done
endef

# The version is worked out once and handed down, so the binary and the
# packages cannot disagree even if the tree changes meanwhile.
package: tools
	@set -e; v='$(PKG_VERSION)'; \
	test -n "$$v" || { echo "package: no version (packaging/version.sh failed)" >&2; exit 1; }; \
	$(MAKE) --no-print-directory build VERSION="$$v"; \
	$(call pkg_nfpm,$$v)

# package-nfpm packages the bin/nodeagent already built, as PKG_VERSION
# (the package test uses it to build an upgrade without rebuilding).
package-nfpm:
	@set -e; $(call pkg_nfpm,$(PKG_VERSION))

package-test:
	$(GO) test -tags integration -count=1 -timeout 10m -v ./test/package/
