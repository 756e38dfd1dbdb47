# Thin wrapper: one command per target. CI (.ci/run) calls `make lint`,
# `make test` and `make compat`.
GO ?= go
GOLANGCI_LINT_VERSION ?= v2.15.0
EXAMPLES := quickstart sqlx gorm goose converters timeouts metrics otel
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# "context deadline exceeded" when a -fuzztime duration ends (golang/go#75804).
FUZZTIME ?= 100000x

.PHONY: test demo bench compat lint fmt-check vet test-root test-go127 test-modules examples fuzz

## test: format check, vet, race tests of every module, every example run
test: fmt-check vet test-root test-go127 test-modules examples fuzz

## demo: the quickstart program against a throwaway server (or $PGPUREPY_DSN)
demo:
	cd examples && $(GO) run ./quickstart

## bench: side-by-side benchmark against pgx stdlib, lib/pq, pgxpool, pgbench
bench:
	cd bench && $(GO) run . $(BENCHFLAGS)

## compat: the upstream suites of pgx's stdlib and sqlx, with pgx stdlib and
## with pgpurepy (COMPATFLAGS=-v for the patches; gorm: see docs/COMPAT.md)
compat:
	cd compat && $(GO) test -count=1 ./... && $(GO) run . $(COMPATFLAGS)

fmt-check:
	@out=$$(gofmt -l . | grep -v '/testdata/' || true); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd examples && $(GO) vet ./...
	cd promstats && $(GO) vet ./...
	cd otelpgpurepy && $(GO) vet ./...
	cd compat && $(GO) vet ./...

test-root:
	$(GO) test -race -count=1 -timeout 15m ./...

## test-go127: Go 1.27's RowsColumnScanner path (fetched by the go command)
test-go127:
	GOTOOLCHAIN=go1.27.3 $(GO) test -race -count=1 -run 'Go127|RoundTrip|Conv|Smoke' .

test-modules:
	cd promstats && $(GO) test -race -count=1 ./...
	cd otelpgpurepy && $(GO) test -race -count=1 ./...
	cd bench && $(GO) test -race -count=1 ./...
	cd examples && $(GO) test -race -count=1 ./...

examples:
	cd examples && $(GO) build ./... && for e in $(EXAMPLES); do \
		echo "== example $$e"; $(GO) run ./$$e || exit 1; done

## fuzz: a bounded run of every fuzz target (seed corpora run in test-root too)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzEnumDecode$$' -fuzztime $(FUZZTIME) ./converters
	$(GO) test -run '^$$' -fuzz '^FuzzCompositeDecode$$' -fuzztime $(FUZZTIME) ./converters
	$(GO) test -run '^$$' -fuzz '^FuzzArrayDecode$$' -fuzztime $(FUZZTIME) ./converters
	cd otelpgpurepy && $(GO) test -run '^$$' -fuzz '^FuzzSanitize$$' -fuzztime $(FUZZTIME) .

GOLANGCI_LINT := $(CURDIR)/.bin/golangci-lint

## lint: golangci-lint (built once into .bin) with .golangci.yml, every module
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...
	cd examples && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...
	cd promstats && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...
	cd otelpgpurepy && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...
	cd bench && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...
	cd compat && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/.bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
