# upshift: every target runs from the repository root on a machine with Go.
GO      ?= go
PKGS    := work
BIN     := bin

.PHONY: run demo test test-short lint bench bench-sagas fuzz soak build clean up down

## run: everything in one process on an embedded NATS server, with the live demo; Ctrl-C stops
run:
	$(GO) run ./cmd/upshift dev --demo

## demo: the same demo, then exit 0 only if its three sagas ended as expected
demo:
	$(GO) run ./cmd/upshift dev --demo --exit

## test: every test, with the race detector (needs PostgreSQL, see .ci/run)
test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## test-short: the inner loop: -short skips the long fleet, kill, process and end-to-end tests; the tests
## left mostly wait on servers and timers, so more of them run at once than there are cores
test-short:
	$(GO) test -short -count=1 -parallel 8 -timeout 5m $(PKGS)

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

## lint: formatting, go.mod in step with the code, a build without the workspace, vet and staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	GOWORK=off $(GO) build ./...
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) ./...

## bench: every benchmark; the saga benchmarks through bench-sagas, not per b.N iteration
SAGA_BENCHES := ^Benchmark(Sagas|SagasInFlight|JetStreamBound|FleetSaga)$$
bench:
	$(GO) test -run='^$$' -bench=. -skip='$(SAGA_BENCHES)' -benchmem $(PKGS)
	$(MAKE) bench-sagas

## bench-sagas: one-target sagas per second at 1, 16 and 256 in flight on each store, report-to-next latency,
## heap per saga in flight, JetStream writes per saga and the JetStream bound (docs/architecture.md, Performance);
## BENCHTIME (default 2s) is per case, each runs at least twice as many sagas as it keeps in flight; then the heap per
## saga held in flight, 2,000 of them (UPSHIFT_BENCH_IN_FLIGHT=10000 for more, UPSHIFT_BENCH_HEAP_DIR for a heap profile);
## then one saga of 10,000 targets on PostgreSQL (UPSHIFT_BENCH_FLEET for another size; some minutes);
## UPSHIFT_BENCH_CONCURRENCY and UPSHIFT_BENCH_MARK_DELAY set the coordinator's instead of its defaults
BENCHTIME ?= 2s
bench-sagas:
	$(GO) test -run='^$$' -bench='$(SAGA_BENCHES)' -benchtime=$(BENCHTIME) -timeout 30m ./services/coordinator/

## fuzz: each fuzz target for FUZZTIME (default 1m; `make test` runs their seeds); a crasher lands in
## the package's testdata/fuzz and becomes a regression test once committed; FUZZFLAGS adds flags (e.g. -parallel 1)
FUZZTIME ?= 1m
FUZZFLAGS ?=
FUZZ := pkg/events:FuzzDecode pkg/spec:FuzzParse pkg/unpack:FuzzInspectAndExtract pkg/targets:FuzzParse \
	services/coordinator:FuzzLoadPolicy services/backup:FuzzManifest
fuzz:
	@set -e; for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS); done

## soak: upshift under a steady load for DURATION (default 10m) on a three-node JetStream cluster on loopback: RATE
## requests/s (default 1), FAIL_PERCENT (default 10) of them failing verification and rolled back; a line every minute
## (sagas ended, p50/p99 latency, heap, consumer pending), then whether latency or memory drifted; exit 1 on drift or on
## a saga stuck, lost or ended otherwise than meant (more flags: go run ./cmd/upshift/internal/soak -h)
DURATION     ?= 10m
RATE         ?= 1
FAIL_PERCENT ?= 10
soak:
	$(GO) run ./cmd/upshift/internal/soak -duration $(DURATION) -rate $(RATE) -fail-percent $(FAIL_PERCENT)

## build: the CLI, the six services and the agent (the four phase services of a host in one process) into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/upshift ./services/coordinator/cmd/upshift-coordinator ./services/precheck/cmd/upshift-precheck \
		./services/backup/cmd/upshift-backup ./services/deploy/cmd/upshift-deploy ./services/verify/cmd/upshift-verify \
		./services/notify/cmd/upshift-notify ./services/agent/cmd/upshift-agent

## up: the production-like stack in containers (docker-compose.yml; needs a Docker engine and a .env, see README)
up:
	docker compose up -d --build

## down: stop it (its volumes stay; `docker compose down -v` drops them)
down:
	docker compose down

clean:
	rm -rf $(BIN) .upshift-dev
