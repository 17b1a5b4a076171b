#!/usr/bin/env bash
# Installs helm, which the deploy package's tests run (`helm lint`, `helm template` on
# deploy/helm/imaged), once. The binary lands in
# ${IMAGED_TOOLS_DIR:-<repo>/.cache/tools}/helm-<version>/helm, where the tests look (or point
# IMAGED_HELM at a binary); a second run is a no-op. A cold install builds it from source with
# `go install` and takes a few minutes.
set -euo pipefail

VERSION="${HELM_VERSION:-v4.3.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${IMAGED_TOOLS_DIR:-$ROOT/.cache/tools}"
mkdir -p "$TOOLS/helm-$VERSION"
DIR="$(cd "$TOOLS/helm-$VERSION" && pwd)" # go install wants an absolute GOBIN
BIN="$DIR/helm"

if [[ -x "$BIN" ]]; then
	echo "helm $VERSION already at $BIN"
	exit 0
fi

echo "installing helm $VERSION into $DIR (takes a few minutes cold)"
start=$(date +%s)
# With @version, go install builds helm by its own go.mod: ours is neither read nor changed.
GOBIN="$DIR" go install "helm.sh/helm/v4/cmd/helm@$VERSION"
echo "helm $VERSION installed at $BIN in $(($(date +%s) - start))s"
