# containerd-persist: build, install, demo and test.
# `make demo` and `make test` install what they need (scripts/install-deps.sh).

GO       ?= go
PREFIX   ?= /usr/local
BINARIES := containerd-shim-persist-v1 persistctl

export PATH := $(PATH):/usr/local/go/bin
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS := 1

FUZZTIME ?= 4s
FUZZ     := FuzzParse:./config FuzzParseSize:./config FuzzExpand:./config FuzzAnnotations:./shim

.PHONY: all build install deps demo test vm-test fuzz stress lint bench clean

all: build

build:
	@mkdir -p bin
	$(GO) build -trimpath -o bin/ $(addprefix ./cmd/,$(BINARIES))

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix bin/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/

deps:
	scripts/install-deps.sh

demo: deps build
	scripts/demo.sh

# Unit tests, a short fuzz of each parser, then the integration tests against
# a real containerd and runc.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)
	$(MAKE) --no-print-directory fuzz
	$(GO) test -count=1 -timeout 30m ./integration/

# The tests that need root inside a Debian 12 VM (systemd as PID 1, cgroup
# v2, Debian's kernel), once per runc cgroup driver; see scripts/vm/run.sh.
vm-test: deps
	GO=$(GO) scripts/vm/run.sh

# Each fuzz target for FUZZTIME (go test fuzzes one target per run).
fuzz:
	@for t in $(FUZZ); do \
		echo "fuzz $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t##*:} || exit 1; \
	done

# The fault tests, many rounds: kill -9 while writing, concurrent creates.
stress: deps
	PERSIST_ROUNDS=$${PERSIST_ROUNDS:-50} $(GO) test -count=1 -timeout 60m -v \
		-run 'TestShimKilledWhileWriting|TestConcurrentCreatesOneWinner|TestFailpoints|TestClusterFailover' ./integration/

# Start-to-exit, shim memory, I/O and scale against the runc shim on a private
# containerd, checked against the performance budget; prints markdown tables.
# OUT=file for the JSON (default bench/results.json), ARGS="-runs 40" for flags.
bench: deps build
	$(GO) run ./bench -bin bin $(if $(OUT),-o $(OUT)) $(ARGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin
