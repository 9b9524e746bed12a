# nodeagent — build, test, demo, package.
# `make demo` runs the main job on an embedded example; `make test` runs every test.
#
# `make test` phases, in order (each prints "== phase NAME: ok in Ns"):
#   deps         Debian packages the tests run for real (tools/deps.sh)
#   tools        pinned test tools built into TOOLS_DIR (tools/build.sh)
#   vet          gofmt, go vet and staticcheck (pinned in tools/lint), with and
#                without the integration tag
#   unit         go test -race ./...
#   integration  go test -tags integration on every package that has such tests
#   fuzz         every Fuzz target for FUZZTIME (tools/fuzz.sh)

SHELL      := /bin/bash
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -s -w -X main.Version=$(VERSION) -X main.Commit=$(COMMIT) -X main.BuildDate=$(BUILD_DATE)
# The shipped binary's build environment (CGO_ENABLED, GOEXPERIMENT): why, in the file.
BUILD_ENV  := $(shell grep -v '^\#' packaging/build.env | grep =)

# Built test tools live outside the checkout, so a fresh clone on the same
# machine reuses them; tools/build.sh rebuilds one only when tools/go.mod or
# tools/go.sum changed.
TOOLS_DIR  ?= $(HOME)/.cache/nodeagent/tools/bin
FUZZTIME   ?= 10s
export NODEAGENT_TOOLS_DIR := $(TOOLS_DIR)

# phase NAME, COMMAND: run COMMAND, print how long it took, fail loudly.
define phase
	@start=$$(date +%s); echo "== phase $(1)"; \
	if $(2); then echo "== phase $(1): ok in $$(( $$(date +%s) - start ))s"; \
	else echo "== phase $(1): FAILED after $$(( $$(date +%s) - start ))s"; exit 1; fi
endef

.PHONY: all build test vet bench demo package clean deps tools test-unit test-integration test-fuzz

.NOTPARALLEL:

all: build

build:
	mkdir -p bin
	env $(BUILD_ENV) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nodeagent ./cmd/nodeagent

deps:
	$(call phase,deps,bash tools/deps.sh)

tools:
	$(call phase,tools,GO=$(GO) bash tools/build.sh $(TOOLS_DIR))

vet: tools
	$(call phase,vet,$(MAKE) --no-print-directory vet-run)

.PHONY: vet-run
vet-run:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(TOOLS_DIR)/staticcheck ./...
	$(TOOLS_DIR)/staticcheck -tags integration ./...

test-unit:
	$(call phase,unit,$(GO) test -race -count=1 ./...)

# Only packages with integration-tagged files: the rest ran in test-unit.
INTEGRATION_PKGS = $(shell grep -rlE --include='*.go' '^//go:build .*\bintegration\b' . 2>/dev/null | xargs -r -n1 dirname | sort -u)

test-integration:
	$(call phase,integration,$(if $(strip $(INTEGRATION_PKGS)),$(GO) test -tags integration -count=1 -timeout 15m $(INTEGRATION_PKGS),echo "no integration tests"))

test-fuzz:
	$(call phase,fuzz,GO=$(GO) bash tools/fuzz.sh $(FUZZTIME))

# Phases run in this order (make without -j runs prerequisites left to right).
test: deps tools vet test-unit test-integration test-fuzz
	@echo "== make test: all phases passed"

# ---- demo: `make demo`, `make demo-stop` ----
include demo/demo.mk

# ---- bench: `make bench` (rewrites BENCHMARKS.md) ----
# bench/bench.sh rewrites BENCHMARKS.md (apply, plan, boot, release); the
# fleet benchmark (propagation, idle cost of run) adds its section.
bench: deps tools
	GO=$(GO) bash bench/bench.sh
	bash test/fleet/bench.sh test/fleet/BENCHMARKS.md
	{ echo; cat test/fleet/BENCHMARKS.md; } >> BENCHMARKS.md

# ---- package: `make package`, `make package-test` ----
include packaging/package.mk

clean:
	rm -rf bin dist
