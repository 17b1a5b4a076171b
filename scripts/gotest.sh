#!/usr/bin/env bash
# Runs `go test -json` with the arguments given and prints the tests' output followed by how
# many tests ran, passed, failed and were skipped (internal/testsummary), naming each skipped
# test with its reason. Exits non-zero when go test or a test failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
"$GO" build -o "$bin/testsummary" "$ROOT/internal/testsummary"
"$GO" test -json "$@" | "$bin/testsummary"
