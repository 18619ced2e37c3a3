# checkd developer commands. `make run` starts the demo, `make test` runs
# every test (the real-Redis suite included).

GO ?= go
# The demo config unless the caller chose one.
CHECKD_CONFIG ?= configs/demo.yaml
# How long each fuzz target runs under `make fuzz`.
FUZZTIME ?= 10s

# The version and commit --version prints (internal/version); without git,
# what the Go toolchain recorded.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X github.com/checkd/checkd/internal/version.version=$(VERSION) -X github.com/checkd/checkd/internal/version.commit=$(COMMIT)

.PHONY: run build test bench fuzz lint cluster

## run: start checkd with every role on an embedded Redis with demo data
# (exec: make's SIGTERM reaches checkd itself, which `go run` would not pass on)
run:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/checkd ./cmd/checkd
	CHECKD_CONFIG=$(CHECKD_CONFIG) exec bin/checkd

## build: build bin/checkd, bin/checkctl and bin/checkd-sandbox, stamped with the version and commit
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/checkd ./cmd/checkd
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/checkctl ./cmd/checkctl
	$(GO) build -o bin/checkd-sandbox ./cmd/checkd-sandbox

## cluster: one Redis, a scheduler+api process, two workers and a checker service (scripts/cluster.sh)
cluster:
	bash scripts/cluster.sh

## test: go vet, then all tests with -race against a throwaway redis-server
test:
	bash scripts/test.sh

## bench: run the load benchmark
bench:
	$(GO) run ./cmd/checkbench

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
