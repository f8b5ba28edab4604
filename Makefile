# The two commands a fresh machine needs are `make run` and `make test`;
# both first install what is missing (scripts/install-deps.sh).
GO ?= go
PKGS ?= ./...

.PHONY: all deps run test bench build vet fmt-check tf-fmt clean

all: build

deps:
	@bash scripts/install-deps.sh

## run: the whole pipeline on the bundled sample course, offline
run: deps
	$(GO) run ./cmd/pipeline run

## test: every test (unit, emulator-backed integration, end to end)
test: deps fmt-check vet
	$(GO) test -count=1 -timeout 14m $(PKGS)

## bench: performance figures, as ratios against baselines measured in the same run
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@if command -v terraform >/dev/null; then TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive terraform; fi

clean:
	rm -rf bin .cache
