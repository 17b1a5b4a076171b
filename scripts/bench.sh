#!/usr/bin/env bash
# make bench: the synchronous transform path under load. Starts imaged on its default settings
# (SQLite, local blobs, no Redis) except authentication off (the subject is the transform engine,
# not the key check) and drives POST /v1/process over loopback with wrk. The cold runs set
# IMAGED_RESULT_CACHE=off too, so every request runs its pipeline, and send multipart uploads of
# real photos:
#
#   (a) 8.3 MP JPEG -> fit 800x600, JPEG q85 (a baseline JPEG, as cameras write them)
#   (a') the same photo as shipped: a progressive JPEG, which no decoder can shrink while
#        reading its entropy-coded data, so it costs three to four times as much
#   (b) 0.5 MP JPEG -> fit 200x200, JPEG q85
#   (c) 2.3 MP JPEG -> WebP q80 at the same size
#   (d) 2.3 MP PNG -> fit 800x600, JPEG q85 (a PNG input)
#   (e) 2.3 MP JPEG -> fit 800x600, AVIF q50 (an AVIF output)
#
# each at 4 and 8 connections. Then the warm runs, reported apart: the processed-output cache on
# (the default), the photo stored once and named by image_id, so that every answer after the
# first comes from the cache (the hits column counts X-Cache: hit). Any answer but 200 in a run
# fails the case (the row says FAILED and the script exits 1 at the end). For each run it
# reports requests/s, p50/p99 latency, the server's CPU time per request (utime+stime of the process from /proc, over the run) and its peak RSS
# (VmHWM, reset before each run). The libvips CLI gives the baseline: vipsthumbnail with
# VIPS_CONCURRENCY=1 over many copies of the same file, its CPU per image, and the ratio.
# Then: a 100 MP JPEG resized to 800 px wide (peak RSS), and a backpressure run with more
# connections than IMAGED_MAX_INFLIGHT + IMAGED_MAX_WAITING (503s with Retry-After, peak RSS).
#
# Settings: BIN (default bin/imaged), BENCH_DURATION seconds per run (default 10),
# BENCH_CASES (default "a a' b c d e"; a subset also skips the 100 MP and backpressure runs),
# BENCH_PORT (default 18480), IMAGED_BENCH_DIR for the generated photos
# (default ~/.cache/imaged/bench). Needs wrk, libvips-tools and mate-backgrounds (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/imaged}
DUR=${BENCH_DURATION:-10}
ALL_CASES="a a' b c d e"
CASES=${BENCH_CASES:-$ALL_CASES}
PORT=${BENCH_PORT:-18480}
DIR=${IMAGED_BENCH_DIR:-$HOME/.cache/imaged/bench}
PHOTOS=/usr/share/backgrounds/mate
TCK=$(getconf CLK_TCK)
URL="http://127.0.0.1:$PORT"

for tool in wrk vips vipsthumbnail vipsheader curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/deps.sh" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench: $BIN is missing; run make build" >&2; exit 1; }
[ -f "$PHOTOS/abstract/Elephants_3840x2160.jpg" ] || { echo "bench: the mate-backgrounds photos are missing; run scripts/deps.sh" >&2; exit 1; }

work=$(mktemp -d)
pid=""
stop_server() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# Real photos from mate-backgrounds, made once.
mkdir -p "$DIR"
A=$DIR/a-8mp-baseline.jpg P=$DIR/a-8mp.jpg B=$DIR/b-0.5mp.jpg C=$DIR/c-2.3mp.jpg D=$DIR/d-2.3mp.png HUGE=$DIR/huge-100mp.jpg
[ -f "$P" ] || cp "$PHOTOS/abstract/Elephants_3840x2160.jpg" "$P"                            # 3840x2160, progressive
[ -f "$A" ] || vips copy "$P" "$A[Q=92,strip]"                                                # the same, baseline
[ -f "$B" ] || vips thumbnail "$PHOTOS/nature/Wood.jpg" "$B[Q=85,strip]" 816 --height 612   # 816x612
[ -f "$C" ] || cp "$PHOTOS/nature/RainDrops.jpg" "$C"                                        # 1920x1200
[ -f "$D" ] || vips copy "$C" "$D[compression=6,strip]"                                       # the same, PNG
if [ "$CASES" = "$ALL_CASES" ] && [ ! -f "$HUGE" ]; then
  # 10000x10000: a square from the 5640x3172 photo, scaled up.
  vips crop "$PHOTOS/abstract/Elephants_5640x3172.jpg" "$work/square.v" 1234 0 3172 3172
  vips resize "$work/square.v" "$work/huge.jpg[Q=85,strip]" 3.15259
  rm -f "$work/square.v"
  mv "$work/huge.jpg" "$HUGE"
fi
size() { echo "$(vipsheader -f width "$1")x$(vipsheader -f height "$1")"; }

# start_server [VAR=value...]: imaged on embedded defaults, fresh data directory (the cold runs
# pass IMAGED_RESULT_CACHE=off).
start_server() {
  rm -rf "$work/data"
  env -u IMAGED_DATABASE_URL -u IMAGED_QUEUE_URL -u IMAGED_STORAGE_URL -u IMAGED_REDIS_URL \
    IMAGED_ADDR="127.0.0.1:$PORT" IMAGED_DATA_DIR="$work/data" IMAGED_AUTH=off \
    "$@" "$BIN" serve >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "$URL/health/live" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: imaged did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
}
ticks() {
  if [ ! -r "/proc/$pid/stat" ]; then
    echo "bench: imaged exited; its log:" >&2
    tail -n 40 "$work/server.log" >&2
    exit 1
  fi
  awk '{print $14 + $15}' "/proc/$pid/stat"
}
reset_peak() { echo 5 >"/proc/$pid/clear_refs"; }
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

# one FILE OPS: a single request that must succeed; prints the output's size.
one() {
  local code
  code=$(curl -s -o "$work/out" -w '%{http_code}' -F "ops=$2" -F "file=@$1" "$URL/v1/process")
  if [ "$code" != 200 ]; then
    echo "bench: request failed with $code: $(head -c 300 "$work/out")" >&2
    exit 1
  fi
  size "$work/out"
}

# store FILE: uploads the photo once; prints its image id.
store() {
  local code
  code=$(curl -s -o "$work/out" -w '%{http_code}' -F "file=@$1" "$URL/v1/images")
  if [ "$code" != 201 ]; then
    echo "bench: upload failed with $code: $(head -c 300 "$work/out")" >&2
    exit 1
  fi
  sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$work/out"
}

# cached ID OPS WANT: a request naming the stored image that must succeed with X-Cache: WANT;
# prints the output's size.
cached() {
  local code
  code=$(curl -s -D "$work/headers" -o "$work/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"image_id\":\"$1\",\"ops\":$2}" "$URL/v1/process")
  if [ "$code" != 200 ] || ! grep -qi "^x-cache: $3" "$work/headers"; then
    echo "bench: request by image_id answered $code, $(grep -i '^x-cache' "$work/headers" | tr -d '\r'), want 200 and X-Cache: $3: $(head -c 300 "$work/out")" >&2
    exit 1
  fi
  size "$work/out"
}

# load FILE OPS CONNS [IMAGE_ID]: a wrk run (uploading FILE, or naming the stored IMAGE_ID); sets
# the globals r_* from its summary and the server's counters.
load() {
  local t0 t1 line
  reset_peak
  t0=$(ticks)
  BENCH_FILE=$1 BENCH_OPS=$2 BENCH_IMAGE_ID=${4:-} wrk -t 2 -c "$3" -d "${DUR}s" --timeout 30s -s scripts/bench-post.lua "$URL" >"$work/wrk.txt" 2>&1
  t1=$(ticks)
  line=$(grep '^BENCH ' "$work/wrk.txt") || { cat "$work/wrk.txt" >&2; exit 1; }
  eval "$(echo "${line#BENCH }" | tr ' ' '\n' | sed 's/^/r_/')"
  r_cpu_ms=$(awk -v d="$((t1 - t0))" -v t="$TCK" -v n="$r_ok" 'BEGIN {printf "%.1f", n ? d * 1000 / t / n : 0}')
  r_rps=$(awk -v n="$r_ok" -v s="$r_seconds" 'BEGIN {printf "%.1f", n / s}')
  r_peak=$(peak_mib)
}

# baseline NAME COPIES SIZE OUTSUFFIX FILE: vipsthumbnail's CPU per image in ms, one process
# over COPIES copies of FILE, one libvips thread.
baseline() {
  local d=$work/vt-$1 t
  mkdir -p "$d/in" "$d/out"
  for i in $(seq "$2"); do cp "$5" "$d/in/$i.jpg"; done
  t=$( { TIMEFORMAT='%U %S'; time VIPS_CONCURRENCY=1 vipsthumbnail -s "$3" -o "$d/out/%s.$4" "$d"/in/*.jpg >/dev/null 2>&1; } 2>&1 )
  rm -rf "$d"
  awk -v t="$t" -v n="$2" 'BEGIN {split(t, a, " "); printf "%.1f", (a[1] + a[2]) * 1000 / n}'
}

echo "imaged bench: $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), ${DUR}s per run, $(git describe --always --dirty 2>/dev/null || echo dev)"
echo

OPS_A='[{"op":"resize","width":800,"height":600},{"op":"convert","format":"jpeg","quality":85}]'
OPS_B='[{"op":"resize","width":200,"height":200},{"op":"convert","format":"jpeg","quality":85}]'
OPS_C='[{"op":"convert","format":"webp","quality":80}]'
OPS_E='[{"op":"resize","width":800,"height":600},{"op":"convert","format":"avif","quality":50}]'

# pick CASE: sets file, ops and base (vipsthumbnail's ms per image) of the case.
pick() {
  case $1 in
    a) file=$A ops=$OPS_A base=${base_a:-0} ;;
    "a'") file=$P ops=$OPS_A base=${base_p:-0} ;;
    b) file=$B ops=$OPS_B base=${base_b:-0} ;;
    c) file=$C ops=$OPS_C base=${base_c:-0} ;;
    d) file=$D ops=$OPS_A base=${base_d:-0} ;;
    e) file=$C ops=$OPS_E base=${base_e:-0} ;;
    *) echo "bench: unknown case $1 in BENCH_CASES (known: $ALL_CASES)" >&2; exit 1 ;;
  esac
}

echo "vipsthumbnail baseline (VIPS_CONCURRENCY=1, one process, many copies of the file):"
line=""
for c in $CASES; do
  case $c in
    a) base_a=$(baseline a 24 800x600 'jpg[Q=85,strip]' "$A"); line="$line  (a) $base_a ms/image" ;;
    "a'") base_p=$(baseline p 12 800x600 'jpg[Q=85,strip]' "$P"); line="$line  (a') $base_p ms/image" ;;
    b) base_b=$(baseline b 150 200x200 'jpg[Q=85,strip]' "$B"); line="$line  (b) $base_b ms/image" ;;
    c) base_c=$(baseline c 24 "$(size "$C")" 'webp[Q=80,strip]' "$C"); line="$line  (c) $base_c ms/image" ;;
    d) base_d=$(baseline d 24 800x600 'jpg[Q=85,strip]' "$D"); line="$line  (d) $base_d ms/image" ;;
    e) base_e=$(baseline e 8 800x600 'avif[Q=50,strip]' "$C"); line="$line  (e) $base_e ms/image" ;;
  esac
done
echo "$line"
echo

echo "Cold: IMAGED_RESULT_CACHE=off, every request uploads the photo and runs its pipeline."
echo
echo "case | source | output | conns | req/s | p50 ms | p99 ms | CPU ms/req | ÷ vipsthumbnail | peak RSS MiB | non-200"
echo "---|---|---|---|---|---|---|---|---|---|---"
failed=""
declare -A cold_rps
for c in $CASES; do
  pick "$c"
  # A fresh process per case, so memory one case leaves behind does not count as the next one's
  # peak. Default settings: one client sending everything may use every pipeline slot.
  stop_server
  start_server IMAGED_RESULT_CACHE=off
  out=$(one "$file" "$ops")
  for conns in 4 8; do
    load "$file" "$ops" "$conns"
    ratio=$(awk -v a="$r_cpu_ms" -v b="$base" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    bad=$((r_busy + r_other + r_errors))
    verdict=$bad
    if [ "$bad" != 0 ]; then verdict="$bad FAILED"; failed="$failed ($c)/$conns"; fi
    cold_rps["$c/$conns"]=$r_rps
    echo "($c) | $(size "$file") | $out | $conns | $r_rps | $r_p50_ms | $r_p99_ms | $r_cpu_ms | $ratio | $r_peak | $verdict"
  done
done
echo

echo "Warm: the processed-output cache on (the default), the photo stored once and named by image_id;"
echo "the first request stores the output, every later one is answered from it (hits: X-Cache: hit)."
echo
echo "case | output | conns | req/s | × cold req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MiB | hits | non-200"
echo "---|---|---|---|---|---|---|---|---|---|---"
for c in $CASES; do
  pick "$c"
  stop_server
  start_server
  id=$(store "$file")
  cached "$id" "$ops" miss >/dev/null
  out=$(cached "$id" "$ops" hit)
  for conns in 4 8; do
    load "$file" "$ops" "$conns" "$id"
    speedup=$(awk -v w="$r_rps" -v c="${cold_rps["$c/$conns"]:-0}" 'BEGIN {if (c > 0) printf "%.1f", w / c; else printf "–"}')
    bad=$((r_busy + r_other + r_errors))
    verdict=$bad
    if [ "$bad" != 0 ]; then verdict="$bad FAILED"; failed="$failed warm ($c)/$conns"; fi
    echo "($c) | $out | $conns | $r_rps | $speedup | $r_p50_ms | $r_p99_ms | $r_cpu_ms | $r_peak | $r_hits of $r_ok | $verdict"
  done
done
[ -z "$failed" ] || echo "FAILED cases (answers other than 200):$failed"
echo
if [ "$CASES" != "$ALL_CASES" ]; then
  stop_server
  [ -z "$failed" ] || exit 1
  exit 0
fi

# A 100 MP JPEG to 800 px wide, alone on a fresh process.
stop_server
start_server IMAGED_RESULT_CACHE=off
reset_peak
t0=$(ticks)
start=$(date +%s.%N)
out=$(one "$HUGE" '[{"op":"resize","width":800},{"op":"convert","format":"jpeg","quality":85}]')
end=$(date +%s.%N)
t1=$(ticks)
echo "100 MP: $(size "$HUGE") JPEG ($(($(stat -c %s "$HUGE") / 1048576)) MiB) -> $out: peak RSS $(peak_mib) MiB, $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s, CPU $(( (t1 - t0) * 1000 / TCK )) ms"
echo

# Backpressure: 2 slots and 2 waiting places against 16 connections of case (a).
stop_server
start_server IMAGED_RESULT_CACHE=off IMAGED_MAX_INFLIGHT=2 IMAGED_MAX_WAITING=2
load "$A" "$OPS_A" 16
echo "backpressure: IMAGED_MAX_INFLIGHT=2 IMAGED_MAX_WAITING=2, 16 connections, case (a): $r_requests requests in ${r_seconds}s:" \
  "$r_ok ok ($r_rps/s, p50 $r_p50_ms ms, p99 $r_p99_ms ms over all answers), $r_busy answered 503 ($r_retry_after with Retry-After), $r_other other, $r_errors socket errors; peak RSS $r_peak MiB"
stop_server
[ -z "$failed" ] || exit 1
