# atlasgate — build, run, demo, test, bench. See README.md.
GO      ?= go
CADDY   := bin/caddy
# What goes into bin/caddy: the modules, not the demo, bench or test programs
# under cmd/ and integration/ (editing those must not cost a 30 s rebuild).
SOURCES := $(shell find . -name '*.go' -not -path './.demo/*' -not -path './cmd/*' -not -path './integration/*' -not -name '*_test.go') go.mod go.sum xcaddy.json

.PHONY: build dev run demo demo-cluster test vet fuzz bench bench-reload soak clean sdk-deps sdk-test

# The release build: xcaddy, driven by the xcaddy.json manifest.
build: $(CADDY)
$(CADDY): $(SOURCES)
	$(GO) run ./cmd/xcaddybuild -manifest xcaddy.json

# The same binary with a plain `go build` of cmd/caddy (fast development loop).
dev:
	$(GO) build -o $(CADDY) ./cmd/caddy

# The gateway for a real site: caddyfiles/Caddyfile reads ATLASSIAN_SITE,
# ATLASSIAN_EMAIL, ATLASSIAN_API_TOKEN, ATLASGATE_CLIENT_USER and
# ATLASGATE_CLIENT_PASSWORD_HASH from the environment. cmd/atlasrun first
# names an unset variable, a password given instead of its hash, or a port
# another gateway already holds, then runs Caddy.
run: $(CADDY)
	$(GO) build -o bin/atlasrun ./cmd/atlasrun
	bin/atlasrun -caddy $(CADDY) -config caddyfiles/Caddyfile

# The gateway in front of the bundled Atlassian simulator; no account needed.
demo: $(CADDY)
	$(GO) build -o bin/atlasdemo ./cmd/atlasdemo
	bin/atlasdemo -caddy $(CADDY)

# Three replicas on one Redis (Debian's redis-server) behind a Caddy load
# balancer, in front of the simulator: docs/cluster.md.
demo-cluster: $(CADDY)
	$(GO) build -o bin/atlasclusterdemo ./cmd/atlasclusterdemo
	bin/atlasclusterdemo -caddy $(CADDY)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The whole suite: vet, unit and integration tests (the integration tests also
# drive the built binary), then brief fuzzing, as CI runs it. go test's own vet
# pass is off because `make vet` has just run the full go vet. The fuzz targets'
# seed corpora already run as ordinary tests in go test; the fuzzing after it is
# bounded (TEST_FUZZTIME per target) so that it cannot dominate the run: each
# -fuzz run also builds and links a coverage-instrumented test binary.
TEST_FUZZTIME ?= 5s
test: vet $(CADDY)
	ATLASGATE_CADDY=$(CURDIR)/$(CADDY) $(GO) test -count=1 -vet=off -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=$(TEST_FUZZTIME)
	@c=$${ATLASGATE_CHROMIUM:-/usr/bin/chromium}; [ -x "$$c" ] || echo "*** WARNING: $$c not found: the console's browser tests were SKIPPED (under CI=true they fail). Install: apt-get install -y --no-install-recommends chromium ***"

# Brief fuzzing of the parsers that face attackers (longer: make fuzz FUZZTIME=5m).
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./modules/authn/jwt
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizePath$$' -fuzztime $(FUZZTIME) ./modules/policy
	$(GO) test -run '^$$' -fuzz '^FuzzStripParams$$' -fuzztime $(FUZZTIME) ./modules/proxy

# The SDK matrix (integration/sdk_test.go): real client libraries from the npm
# registry, installed into .cache/sdk (skipped by the tests when missing).
sdk-deps:
	mkdir -p .cache/sdk
	cd .cache/sdk && { test -f package.json || npm init -y >/dev/null; } && npm install --no-audit --no-fund jira.js@5 confluence.js@2 bitbucket@2
sdk-test: sdk-deps
	$(GO) test -run '^TestSDKMatrix$$' -v ./integration/
# Chaos soak of the token engine: three replicas on one storage, a moving
# clock, kills at the token endpoint, storage faults (in process; see
# modules/tokenstore/chaos_test.go). SOAK_CYCLES=n.
SOAK_CYCLES ?= 1000
soak:
	CHAOS_CYCLES=$(SOAK_CYCLES) $(GO) test -count=1 -timeout 60m -run '^TestChaosReplicas$$' -v ./modules/tokenstore

# Benchmarks: plain Caddy reverse_proxy vs the gateway, same upstream, same run.
bench: $(CADDY)
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
	$(GO) run ./cmd/atlasbench -caddy $(CADDY)
	$(GO) test -run '^$$' -bench . -benchmem ./modules/...

# Reload soak: N reloads under load (GET/POST, new and kept-alive connections),
# failures printed by cause, for stock Caddy, the gateway, and the gateway with
# atlasgate_handover; again in a private network namespace with
# net.ipv4.tcp_migrate_req=1 when run as root.
RELOADS ?= 100
bench-reload: $(CADDY)
	$(GO) build -o bin/atlasbench ./cmd/atlasbench
	bin/atlasbench -caddy $(CADDY) -reloads $(RELOADS)
	@if [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null; then \
		bin/atlasbench -caddy $(CADDY) -reloads $(RELOADS) -migrate-netns; \
	else echo "(not root, or no unshare/ip: skipped the run with net.ipv4.tcp_migrate_req=1)"; fi

clean:
	rm -rf bin .demo
