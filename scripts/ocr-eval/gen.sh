#!/usr/bin/env bash
# Builds the OCR evaluation set in ocr/testdata/eval: two-line texts rendered with the DejaVu
# fonts at several sizes, then variants rotated ±5°, blurred with noise, and upside down. Each
# image NAME.png has its ground truth in NAME.txt. The set is committed; rerun this only to
# change it (needs the libvips CLI, `libvips-tools`, and `fonts-dejavu-core`).
set -euo pipefail

out="$(cd "$(dirname "$0")/../.." && pwd)/ocr/testdata/eval"
rm -rf "$out"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

texts=(
	"The quick brown fox jumps over the lazy dog.\nInvoice 2024-117: total due 1,250.00 EUR"
	"Please send the signed contract by Friday.\nMeeting room B is on the third floor."
	"Order number 58213 shipped on 12 March.\nKeep this receipt for your records."
	"Open daily from 9 am to 6 pm except Sunday.\nCall us on 020 7946 0958 for help."
	"Fresh bread, milk and eggs every morning.\nParking is free for customers."
	"The library closes early on public holidays.\nReturn books to the desk on the left."
)

# render NAME TEXT FONT: black text on white with a margin.
render() {
	local name="$1" text="$2" font="$3"
	vips text "$tmp/mask.v" "$(printf '%b' "$text")" --font "$font" --dpi 72 --spacing 8
	vips invert "$tmp/mask.v" "$tmp/inv.v"
	local w h
	w=$(vipsheader -f width "$tmp/inv.v")
	h=$(vipsheader -f height "$tmp/inv.v")
	vips embed "$tmp/inv.v" "$out/$name.png" 40 40 $((w + 80)) $((h + 80)) --extend white
	printf '%b\n' "$text" >"$out/$name.txt"
}

fonts=("DejaVu Sans" "DejaVu Serif" "DejaVu Sans Mono")
sizes=(22 30)
i=0
for font in "${fonts[@]}"; do
	for size in "${sizes[@]}"; do
		slug="$(echo "$font" | tr 'A-Z ' 'a-z-')"
		render "clean-$(printf %02d $i)-$slug-$size" "${texts[$((i % ${#texts[@]}))]}" "$font $size"
		i=$((i + 1))
	done
done

# rotated ±5°
render base "${texts[1]}" "DejaVu Sans 28"
vips rotate "$out/base.png" "$out/rotated-plus5.png" 5 --background 255
cp "$out/base.txt" "$out/rotated-plus5.txt"
render base "${texts[2]}" "DejaVu Serif 28"
vips rotate --background 255 "$out/base.png" "$out/rotated-minus5.png" -- -5
cp "$out/base.txt" "$out/rotated-minus5.txt"

# blur and Gaussian noise
for n in 3 4; do
	render base "${texts[$n]}" "DejaVu Sans 28"
	vips gaussblur "$out/base.png" "$tmp/blur.v" 1.2
	w=$(vipsheader -f width "$tmp/blur.v")
	h=$(vipsheader -f height "$tmp/blur.v")
	vips gaussnoise "$tmp/noise.v" "$w" "$h" --sigma 25 --mean 0
	vips add "$tmp/blur.v" "$tmp/noise.v" "$tmp/noisy.v"
	vips cast "$tmp/noisy.v" "$out/noisy-$n.png" uchar
	cp "$out/base.txt" "$out/noisy-$n.txt"
done

# upside down
for n in 0 5; do
	render base "${texts[$n]}" "DejaVu Sans 28"
	vips rot "$out/base.png" "$out/upside-down-$n.png" d180
	cp "$out/base.txt" "$out/upside-down-$n.txt"
done
rm -f "$out/base.png" "$out/base.txt"
ls "$out"
