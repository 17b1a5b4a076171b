#!/usr/bin/env bash
# Installs the versitygw S3 server used by the s3 package's tests, once.
# The binary lands in ${IMAGED_TOOLS_DIR:-<repo>/.cache/tools}/versitygw, where the tests look
# (or point IMAGED_VERSITYGW at a binary); a second run is a no-op. A cold install builds it
# from source and takes a few minutes.
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${IMAGED_TOOLS_DIR:-$ROOT/.cache/tools}"
mkdir -p "$TOOLS"
TOOLS="$(cd "$TOOLS" && pwd)" # go install wants an absolute GOBIN
BIN="$TOOLS/versitygw"
STAMP="$TOOLS/.versitygw.version"

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
	echo "versitygw $VERSION already at $BIN"
	exit 0
fi

echo "installing versitygw $VERSION into $TOOLS (takes a few minutes cold)"
start=$(date +%s)
# With @version, go install builds versitygw by its own go.mod: ours is neither read nor changed.
GOBIN="$TOOLS" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
echo "$VERSION" >"$STAMP"
echo "versitygw $VERSION installed at $BIN in $(($(date +%s) - start))s"
