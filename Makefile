# atlasgate — build, run, demo, test, bench. See README.md.
GO      ?= go
CADDY   := bin/caddy
SOURCES := $(shell find . -name '*.go' -not -path './.demo/*' -not -name '*_test.go') go.mod go.sum xcaddy.json

.PHONY: build dev run demo test vet fuzz bench soak clean

# The release build: xcaddy, driven by the xcaddy.json manifest.
build: $(CADDY)
$(CADDY): $(SOURCES)
	$(GO) run ./cmd/xcaddybuild -manifest xcaddy.json

# The same binary with a plain `go build` of cmd/caddy (fast development loop).
dev:
	$(GO) build -o $(CADDY) ./cmd/caddy

# The gateway for a real site: caddyfiles/Caddyfile reads ATLASSIAN_SITE,
# ATLASSIAN_EMAIL, ATLASSIAN_API_TOKEN, ATLASGATE_CLIENT_USER and
# ATLASGATE_CLIENT_PASSWORD_HASH from the environment.
run: $(CADDY)
	$(CADDY) run --config caddyfiles/Caddyfile --adapter caddyfile

# The gateway in front of the bundled Atlassian simulator; no account needed.
demo: $(CADDY)
	$(GO) build -o bin/atlasdemo ./cmd/atlasdemo
	bin/atlasdemo -caddy $(CADDY)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# The whole suite: vet, unit and integration tests (the integration tests also
# drive the built binary), as CI runs it.
test: vet $(CADDY)
	ATLASGATE_CADDY=$(CURDIR)/$(CADDY) $(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=10s

# Brief fuzzing of the parsers that face attackers (longer: make fuzz FUZZTIME=5m).
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./modules/authn/jwt
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizePath$$' -fuzztime $(FUZZTIME) ./modules/policy

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

clean:
	rm -rf bin .demo
