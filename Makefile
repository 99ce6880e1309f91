# caddy-dcr: build, run, test and benchmark. `make help` lists the targets.
#
# The README's quick start is `make run` and `make test`; both work on a
# fresh Debian machine with Go: what else they need (redis-server, npm, wrk)
# is installed with apt-get when missing, with sudo unless run as root.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
CADDY ?= bin/caddy

# make test
TEST_TIMEOUT ?= 14m
TESTFLAGS ?=
TEST_LOG ?= bin/test.log

# make bench (wrk settings)
BENCH_DURATION ?= 5s
BENCH_ROUNDS ?= 3
BENCH_THREADS ?= 2
BENCH_CONNECTIONS ?= 64
BENCH_FLAGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

# $(call need,<command>,<apt packages>): install the packages when the
# command is missing.
define need
	if ! command -v $(1) >/dev/null 2>&1; then \
		echo "$(1) not found: installing $(2) with apt-get"; \
		$(APT_GET) update && $(APT_GET) install -y $(2); \
	fi
endef

.PHONY: help build check-manifest run test fmt-check vet lint npm-ci test-deps bench bench-deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## build bin/caddy (Caddy + this plugin) from xcaddy.json
	$(GO) run ./internal/xbuild/cmd/xbuild -manifest xcaddy.json -o $(CADDY)

check-manifest: ## check that xcaddy.json agrees with go.mod and cmd/caddy
	$(GO) run ./internal/xbuild/cmd/xbuild -manifest xcaddy.json -check

# Caddy's storage (where the embedded store keeps clients) and its autosaved
# config go under bin/run/, not the home directory.
run: build ## build, then serve Caddyfile.example on http://localhost:8080 (embedded store, no Redis)
	mkdir -p bin/run/data bin/run/config
	XDG_DATA_HOME="$(CURDIR)/bin/run/data" XDG_CONFIG_HOME="$(CURDIR)/bin/run/config" \
		exec $(CADDY) run --config Caddyfile.example --adapter caddyfile

test: fmt-check vet npm-ci test-deps ## gofmt, vet, npm ci, then every Go test; a skipped test fails
	mkdir -p $(dir $(TEST_LOG))
	$(GO) test -count=1 -v -timeout $(TEST_TIMEOUT) $(TESTFLAGS) ./... 2>&1 | tee $(TEST_LOG)
	@if grep -q -- '--- SKIP' $(TEST_LOG); then \
		echo "make test: FAIL: skipped tests count as failures:"; grep -- '--- SKIP' $(TEST_LOG); exit 1; \
	fi
	@echo "make test: ok (no test skipped)"

# node_modules is npm's, not ours: Go files some packages ship are not checked.
fmt-check: ## fail if gofmt would change a file
	@out="$$(find . -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*' -print0 | xargs -0 -r gofmt -l)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi

vet: ## go vet ./... (and in test/iamsdk and test/mcpgo, modules of their own)
	$(GO) vet ./...
	cd test/iamsdk && $(GO) vet ./...
	cd test/mcpgo && $(GO) vet ./...

# Not part of make test: staticcheck is fetched from the module proxy and
# compiled on first use (about a minute), which a test run should not need.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: ## staticcheck ./... and in test/iamsdk and test/mcpgo (fetched with go run on first use)
	$(GO) run $(STATICCHECK) ./...
	cd test/iamsdk && $(GO) run $(STATICCHECK) ./...
	cd test/mcpgo && $(GO) run $(STATICCHECK) ./...

# test/clients holds the JavaScript OAuth clients the end-to-end tests drive.
npm-ci: ## npm ci in test/clients (when its package.json exists)
	@if [ -f test/clients/package.json ]; then \
		$(call need,npm,nodejs npm); \
		echo "npm ci --prefix test/clients"; npm ci --prefix test/clients --no-audit --no-fund; \
	else \
		echo "test/clients/package.json does not exist yet: no npm ci"; \
	fi

# The tests start their own redis-server processes (internal/redistest).
test-deps: ## install redis-server (and redis-cli) when missing
	@$(call need,redis-server,redis-server)

bench: build bench-deps ## benchmark bin/caddy with wrk (BENCH_DURATION, BENCH_ROUNDS, BENCH_THREADS, BENCH_CONNECTIONS)
	$(GO) run ./bench -caddy $(CADDY) -duration $(BENCH_DURATION) -rounds $(BENCH_ROUNDS) \
		-threads $(BENCH_THREADS) -connections $(BENCH_CONNECTIONS) $(BENCH_FLAGS)

bench-deps: ## install wrk and redis-server when missing
	@$(call need,wrk,wrk)
	@$(call need,redis-server,redis-server)

clean: ## remove bin/ (binary, test log, make run's data)
	rm -rf bin
