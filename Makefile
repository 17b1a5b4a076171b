# imaged: one binary, API + workers. `make run` serves on :8000 on embedded defaults;
# `make test` runs the whole suite.
GO      ?= go
BIN     ?= bin/imaged
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export IMAGED_TOOLS_DIR ?= $(HOME)/.cache/imaged/tools

.PHONY: deps build run test test-short bench lint tools clean

deps:
	./scripts/deps.sh

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/imaged

run: build
	./$(BIN) serve

tools:
	./scripts/versitygw.sh

# The whole suite. Tests that need a service nobody started skip with a loud reason, unless
# IMAGED_TEST_REQUIRE_SERVICES=1 (CI) makes them fail.
test: deps tools
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -count=1 -short ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3s ./vips/ ./http/

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin
