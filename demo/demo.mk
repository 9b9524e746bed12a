# demo.mk — `make demo` and `make demo-stop`, included by the Makefile:
#
#   include demo/demo.mk
#
# `make demo` installs what it needs (deps: Debian packages; tools: AEMM,
# MinIO, nfpm into TOOLS_DIR; build: bin/nodeagent), builds the demo driver
# (bin/nodeagent-demo, from demo/) and runs it in the foreground: local S3
# and metadata emulators, an embedded topology and release, a cache node and
# a web node converged into $(DEMO_ROOT) with real Apache, PHP-FPM and
# memcached on 127.77.0.x, then a live database failover. Ctrl-C stops it.
# DEMO_UNATTENDED=1 makes it exit 0 once the failover has been picked up
# (CI). `make demo-stop` stops a demo running elsewhere, or sweeps up after
# one that died, and keeps $(DEMO_ROOT)/logs.

DEMO_ROOT ?= demo-root
DEMO_BIN  := bin/nodeagent-demo

.PHONY: demo demo-stop demo-bin

demo-bin:
	mkdir -p bin
	$(GO) build -trimpath -o $(DEMO_BIN) ./demo

demo: deps tools build demo-bin
	$(DEMO_BIN) -root $(DEMO_ROOT) -nodeagent bin/nodeagent

demo-stop: demo-bin
	$(DEMO_BIN) -stop -root $(DEMO_ROOT)
