# Osprey: the two commands a newcomer needs are `make demo` and `make test`.
GO       ?= go
BIN      := bin/osprey
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# A count, not a duration: time-limited fuzz runs on Go 1.26 sometimes end in a spurious
# "context deadline exceeded" (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 20000x
BENCH    ?= .
BENCHTIME ?= 1s

.PHONY: all build test test-unit fuzz-short fuzz demo bench lint clean docs

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/osprey

# test: unit and integration tests, then every fuzz target for a short time.
test: lint test-unit fuzz-short

test-unit:
	$(GO) test -count=1 -timeout 15m ./...

# Each fuzz target runs FUZZTIME executions; `make fuzz` runs them a hundred times longer.
FUZZ_TARGETS := $(shell grep -rl --include='*_test.go' '^func Fuzz' engine channels plugins 2>/dev/null)
fuzz-short:
	@set -e; for f in $(FUZZ_TARGETS); do \
	  pkg=./$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg >/dev/null || { $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; exit 1; }; \
	  done; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=2000000x

demo: build
	./examples/demo.sh

bench: build
	$(GO) test -run='^$$' -bench=$(BENCH) -benchtime=$(BENCHTIME) -timeout 30m ./bench/ | tee bench/last-run.txt | $(GO) run ./bench/cmd/benchtable

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; find . -name '*.go' -newer go.mod -not -path './.git/*' 2>/dev/null) | sort -u); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

docs: build
	$(BIN) config docs > docs/config.md
	$(BIN) config schema > docs/config.schema.json

clean:
	rm -rf bin data
