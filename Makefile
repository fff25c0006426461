# upshift: every target runs from the repository root on a machine with Go.
GO      ?= go
PKGS    := work
BIN     := bin

.PHONY: run demo test lint bench build clean

## run: everything in one process on an embedded NATS server, with the live demo; Ctrl-C stops
run:
	$(GO) run ./cmd/upshift dev --demo

## demo: the same demo, then exit 0 only if both sagas ended as expected
demo:
	$(GO) run ./cmd/upshift dev --demo --exit

## test: every test of every module, with the race detector (needs PostgreSQL, see .ci/run)
test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
MODULES     := pkg services/coordinator services/precheck services/backup services/deploy services/verify services/notify cmd/upshift

## lint: formatting, vet and staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@for m in $(MODULES); do (cd $$m && $(GO) run $(STATICCHECK) ./...) || exit 1; done

## bench: the benchmarks of every module
bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

## build: the CLI and the six services into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/upshift ./services/coordinator/cmd/upshift-coordinator ./services/precheck/cmd/upshift-precheck \
		./services/backup/cmd/upshift-backup ./services/deploy/cmd/upshift-deploy ./services/verify/cmd/upshift-verify \
		./services/notify/cmd/upshift-notify

clean:
	rm -rf $(BIN) .upshift-dev
