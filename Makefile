# swarmkeep: Swarm secrets driver plugin. `make help` lists the targets.
PLUGIN_NAME ?= swarmkeep
PLUGIN_TAG  ?= latest
# REGISTRY is only needed by `make push`, e.g. REGISTRY=registry.example.com/ops
REGISTRY    ?=
# PLATFORMS: make push publishes one tag per architecture when set (TAG-amd64, TAG-arm64);
# make dist builds one CLI binary per platform (default amd64 and arm64).
PLATFORMS   ?=
DIST_PLATFORMS ?= $(if $(PLATFORMS),$(PLATFORMS),linux/amd64$(comma)linux/arm64)
comma := ,
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PREFIX      ?= /usr/local
STATE_DIR   ?= /var/lib/swarmkeep
CONFIG_DIR  ?= /etc/swarmkeep
BUNDLE      := build/plugin
GO          ?= go
GOTEST      := $(GO) test -race -count=1
FUZZTIME    ?= 10
Q           := $(if $V,,@)
# Lint tools run with `go run pkg@version`, pinned here, rather than as go.mod tool
# directives: a tool directive puts the tool's whole dependency graph into the module's
# graph, where minimal version selection can raise the versions the plugin itself is built
# with (golang.org/x/sys, x/sync, ...). With go run, upgrading a linter never changes what ships.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.10.0
# VULNDB is the golang.org/x/vulndb version whose data is the vulnerability database when
# vuln.go.dev is unreachable (see scripts/vulncheck.sh); latest, because an old one misses advisories.
VULNDB      ?= latest
# VULNDB_CACHE keeps the built database outside the checkout, so fresh clones reuse it.
VULNDB_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/swarmkeep/vulndb
# SMALL_TAGS leave the etcd and Vault backends out of build-small: a file-only plugin.
SMALL_TAGS  := noetcd,novault

# COMMIT is what swarmkeep version prints as the build (Go's own stamp is off
# where GOFLAGS has -buildvcs=false, and absent outside a git checkout).
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null)
export LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Build and test with the toolchain go.mod names (its toolchain line, a patch release that
# fixes the standard library's known holes), fetched through the module proxy when the
# installed Go is older, unless the caller chose a GOTOOLCHAIN.
export GOTOOLCHAIN ?= auto

.DEFAULT_GOAL := help

## ---- build -------------------------------------------------------------
.PHONY: build build-small rootfs rootfs-docker settings
build: ## build the swarmkeep binary into build/swarmkeep (swarmkeep --version shows VERSION and COMMIT)
	$(Q)mkdir -p build
	$(Q)CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o build/swarmkeep ./plugin

build-small: ## build a file-only binary (no etcd, no Vault backend) into build/swarmkeep-small
	$(Q)mkdir -p build
	$(Q)CGO_ENABLED=0 $(GO) build -trimpath -tags $(SMALL_TAGS) -ldflags "-s -w $(LDFLAGS)" -o build/swarmkeep-small ./plugin

settings: ## rewrite config.json's Env and the README's settings table from driver/server/settings.go
	$(Q)$(GO) test -count=1 -run '^TestSettingsDocs$$' ./driver/server/ -update

rootfs: ## assemble build/plugin/{config.json,rootfs} without docker build (nothing is pulled)
	$(Q)scripts/build-rootfs.sh $(BUNDLE) >/dev/null

rootfs-docker: ## assemble the same bundle with docker build -f Dockerfile.rootfs (needs a registry for the golang image)
	$(Q)rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)/rootfs
	$(Q)docker build -q -f Dockerfile.rootfs --build-arg VERSION=$(VERSION) -t $(PLUGIN_NAME)-rootfs:$(VERSION) .
	$(Q)id=$$(docker create $(PLUGIN_NAME)-rootfs:$(VERSION) /swarmkeep) && \
	  docker export $$id | tar -x -C $(BUNDLE)/rootfs && docker rm -v $$id >/dev/null
	$(Q)cp config.json $(BUNDLE)/

## ---- plugin ------------------------------------------------------------
.PHONY: plugin push install dist upgrade
# An existing plugin is replaced with its settings kept (scripts/upgrade.sh --save/--apply):
# a re-created plugin starts from config.json's defaults. STATE_DIR/CONFIG_DIR given to make
# win over the kept folders.
plugin: rootfs ## create (or re-create, keeping its settings) and enable the plugin on this engine
	$(Q)install -d -m 0700 $(STATE_DIR) $(CONFIG_DIR)
	$(Q)set -e; p=$(PLUGIN_NAME):$(PLUGIN_TAG); saved=$$(mktemp); trap 'rm -f $$saved' EXIT; \
	if docker plugin inspect $$p >/dev/null 2>&1; then scripts/upgrade.sh --save $$p $$saved; \
	  docker plugin disable -f $$p >/dev/null 2>&1 || true; docker plugin rm -f $$p >/dev/null; fi; \
	docker plugin create $$p $(BUNDLE) >/dev/null; \
	if [ -s $$saved ]; then scripts/upgrade.sh --apply $$p $$saved; \
	else docker plugin set $$p state.source=$(STATE_DIR) config.source=$(CONFIG_DIR); fi; \
	$(if $(filter command line environment,$(origin STATE_DIR)),docker plugin set $$p state.source=$(STATE_DIR);) \
	$(if $(filter command line environment,$(origin CONFIG_DIR)),docker plugin set $$p config.source=$(CONFIG_DIR);) \
	docker plugin enable --timeout 30 $$p
	$(Q)docker plugin ls --filter enabled=true

push: ## push $(REGISTRY)/$(PLUGIN_NAME):$(PLUGIN_TAG); PLATFORMS=linux/amd64,linux/arm64: one TAG-ARCH each
	$(Q)test -n "$(REGISTRY)" || { echo "set REGISTRY=host/namespace"; exit 2; }
	$(Q)scripts/push.sh $(REGISTRY)/$(PLUGIN_NAME):$(PLUGIN_TAG) $(PLATFORMS)

dist: ## static operator CLI binaries per platform and SHA256SUMS in build/dist (DIST_PLATFORMS)
	$(Q)scripts/dist.sh build/dist $(DIST_PLATFORMS)

upgrade: ## upgrade an installed plugin to REF (REF=registry/swarmkeep:TAG), keeping its settings
	$(Q)test -n "$(REF)" || { echo "set REF=registry/name:tag (the new version)"; exit 2; }
	$(Q)scripts/upgrade.sh $(PLUGIN_NAME):$(PLUGIN_TAG) $(REF)

install: build ## install the operator binary as $(PREFIX)/bin/swarmkeep
	$(Q)install -D -m 0755 build/swarmkeep $(DESTDIR)$(PREFIX)/bin/swarmkeep

## ---- run and test ------------------------------------------------------
.PHONY: demo test unit fuzz e2e bench lint vulncheck clean help
demo: ## build and enable the plugin, store a value, and read it in a swarm service
	$(Q)scripts/demo.sh

test: lint unit fuzz e2e ## run everything: lint, unit tests, fuzzing and the real-swarm e2e tests

unit: ## unit tests with the race detector, then the 100,000-request load test at full speed
	$(Q)$(GOTEST) ./...
	$(Q)$(GO) test -count=1 -run '^TestLoadHandler$$' ./driver/

fuzz: ## run each Go fuzz target for FUZZTIME seconds (default 10), one after another
	$(Q)scripts/fuzz.sh $(FUZZTIME)

e2e: ## end-to-end tests on a real dockerd in swarm mode, then on a 3-manager swarm (root starts private ones)
	$(Q)$(GOTEST) -p 1 -tags e2e -timeout 25m ./test/e2e/...

bench: ## the shipped binary vs a null plugin, separate processes (BENCHFLAGS=-quick: short run; test/bench/README.md)
	$(Q)$(GO) run ./test/bench $(BENCHFLAGS)

lint: ## gofmt, go vet and staticcheck (also the e2e and file-only builds), then vulncheck
	$(Q)out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(Q)$(GO) vet ./...
	$(Q)$(GO) vet -tags e2e ./test/e2e/...
	$(Q)$(GO) vet -tags $(SMALL_TAGS) ./plugin/
	$(Q)$(GO) run $(STATICCHECK) ./...
	$(Q)$(GO) run $(STATICCHECK) -tags e2e ./test/e2e/...
	$(Q)$(GO) run $(STATICCHECK) -tags $(SMALL_TAGS) ./plugin/
	$(Q)$(MAKE) --no-print-directory vulncheck

# vuln.go.dev is not reachable from every build machine; scripts/vulncheck.sh then builds the
# same database from the golang.org/x/vulndb module through the Go module proxy, and when
# neither answers it prints SKIPPED (exit 0) instead of failing or pretending to pass.
vulncheck: ## govulncheck: known vulnerabilities the code reaches (database from vuln.go.dev or the module proxy)
	$(Q)GO=$(GO) scripts/vulncheck.sh $(GOVULNCHECK) $(VULNDB) $(VULNDB_CACHE)

clean: ## remove build output
	$(Q)rm -rf build

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^## ----/ {sub(/^## -+ /, ""); sub(/ -+$$/, ""); printf "\n%s\n", $$0} /^[a-z0-9-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
