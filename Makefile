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

.PHONY: deps build run test test-short bench bench-queues kfake fuzz lint tools models clean container-test

deps:
	./scripts/deps.sh

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/imaged

run: build models
	./$(BIN) serve

tools:
	./scripts/versitygw.sh
	./scripts/helm.sh

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

# The transform engine under load: imaged on its embedded defaults, driven by wrk over loopback
# (six cases: JPEG, progressive JPEG, small JPEG, WebP output, PNG input, AVIF output; at 4 and 8
# connections on the default settings but auth off; vipsthumbnail's CPU per image as the baseline, a
# 100 MP JPEG's peak RSS, a backpressure run). scripts/bench.sh says what it reports.
bench: build
	./scripts/bench.sh

# The Go benchmarks: each synchronous path through the service against the same call in process,
# and the vips pipeline's own.
.PHONY: bench-go
bench-go: build models
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

# Builds the root Dockerfile with podman on locally made base images, runs the image read-only
# as uid 1000, resizes a photo through it and has Prometheus scrape it (needs root).
container-test:
	./scripts/container-test.sh

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin
