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

.PHONY: deps deps-test deps-bench build run test test-isolated test-short bench bench-queues kfake fuzz lint tools models clean container-test soak

# What building and serving need; the tests and the benchmarks add their own packages.
deps:
	./scripts/deps.sh serve

deps-test:
	./scripts/deps.sh test

deps-bench:
	./scripts/deps.sh bench

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
# scripts/test-services.sh uses PostgreSQL, Redis and RabbitMQ where they answer and starts
# private instances where they do not (installing the packages when missing), so every test
# runs and none skips: IMAGED_TEST_REQUIRE_SERVICES=1 makes a missing service a failure.
# scripts/gotest.sh ends with the count of tests run, passed, failed and skipped.
test: deps-test tools models
	$(GO) vet ./...
	IMAGED_TEST_REQUIRE_SERVICES=1 GO=$(GO) ./scripts/test-services.sh ./scripts/gotest.sh -count=1 -timeout 45m ./...

# The whole suite in a network namespace of its own, where none of the machine's services can
# be reached: every service the tests need is a private instance of the run.
test-isolated: deps-test tools models
	unshare --net sh -c 'ip link set lo up && IMAGED_TEST_REQUIRE_SERVICES=1 GO=$(GO) ./scripts/test-services.sh ./scripts/gotest.sh -count=1 -timeout 45m ./...'

test-short:
	$(GO) test -count=1 -short ./...

# The transform engine under load: imaged on its embedded defaults, driven by wrk over loopback
# (six cases: JPEG, progressive JPEG, small JPEG, WebP output, PNG input, AVIF output; at 4 and 8
# connections on the default settings but auth off; vipsthumbnail's CPU per image as the baseline, a
# 100 MP JPEG's peak RSS, a backpressure run). scripts/bench.sh says what it reports.
bench: build deps-bench
	./scripts/bench.sh

# Mixed load for SOAK_MINUTES (default 10) on the embedded defaults and on PostgreSQL + RabbitMQ +
# versitygw + Redis (SOAK_TOPOLOGY=embedded|production|both), killing and restarting a worker every
# 2 minutes; writes report.md and soak.png per topology under SOAK_OUT (default soak-out/) and fails
# when a check does. Not part of `make test`. README: Soak.
SOAK_MINUTES ?= 10
soak: build models tools
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_BIN=$(abspath $(BIN)) $(GO) test -tags soak -count=1 -v -run '^TestSoak$$' \
		-timeout 3h ./internal/soak/

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
