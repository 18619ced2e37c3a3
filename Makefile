# checkd developer commands. `make run` starts the demo, `make test` runs
# every test (the real-Redis suite included).

GO ?= go
# The demo config unless the caller chose one.
CHECKD_CONFIG ?= configs/demo.yaml
# How long each fuzz target runs under `make fuzz`.
FUZZTIME ?= 10s

.PHONY: run build test bench fuzz lint cluster

## run: start checkd with every role on an embedded Redis with demo data
# (exec: make's SIGTERM reaches checkd itself, which `go run` would not pass on)
run:
	$(GO) build -o bin/checkd ./cmd/checkd
	CHECKD_CONFIG=$(CHECKD_CONFIG) exec bin/checkd

## build: build bin/checkd, bin/checkctl and bin/checkd-sandbox
build:
	$(GO) build -o bin/checkd ./cmd/checkd
	$(GO) build -o bin/checkctl ./cmd/checkctl
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
