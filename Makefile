# imaged: one binary, API + workers. `make run` serves on :8000 on embedded defaults;
# `make test` runs the whole suite.
GO      ?= go
BIN     ?= bin/imaged
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export IMAGED_TOOLS_DIR ?= $(HOME)/.cache/imaged/tools
export IMAGED_MODELS_DIR ?= $(HOME)/.cache/imaged/models
# One OpenMP thread per Tesseract recognition: parallelism comes from concurrent requests.
export OMP_THREAD_LIMIT ?= 1

.PHONY: deps build run test test-short bench bench-queues kfake fuzz lint tools models clean

deps:
	./scripts/deps.sh

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/imaged

run: build models
	./$(BIN) serve

tools:
	./scripts/versitygw.sh

# ONNX Runtime and the model files (PaddleOCR, the COCO detector), sha256-verified.
models: deps
	./scripts/models.sh
	./scripts/models-detect.sh

# The whole suite. Tests that need a service nobody started skip with a loud reason, unless
# IMAGED_TEST_REQUIRE_SERVICES=1 (CI) makes them fail.
test: deps tools models
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...

test-short:
	$(GO) test -count=1 -short ./...

bench: build models
	$(GO) test -run '^$$' -bench . -benchtime 20x -cpu 1 ./cmd/imaged/ ./vips/ ./detect/

# Tasks per second end to end through each queue (embedded, db, RabbitMQ, Kafka) and the latency
# of a lone task; needs PostgreSQL and RabbitMQ on 127.0.0.1 (Kafka is kfake, in the test).
bench-queues: deps
	$(GO) test -run '^$$' -bench BenchmarkQueueEndToEnd -benchtime 200x ./cmd/imaged/

# A Kafka-protocol server (franz-go's kfake, in memory) on 127.0.0.1:9092, to try
# IMAGED_QUEUE_URL=kafka://127.0.0.1:9092 locally; the tests start their own.
kfake:
	$(GO) run ./cmd/kfake -addr 127.0.0.1:9092

# Each fuzz target for FUZZTIME; inputs that once failed stay in the packages' testdata/fuzz.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzProbe$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzParseOps$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzSignedPath$$' -fuzztime $(FUZZTIME) ./signedurl/
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./outbound/

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin
