#!/usr/bin/env bash
# Builds the root Dockerfile with podman and checks the image the way an operator would use it:
# start it read-only as uid 1000 with /data and /tmp writable, upload testdata/astronaut.jpg, get
# a resized image back (synchronously and through a queued task), run its HEALTHCHECK, and have a
# real Prometheus scrape it.
#
# Base images are made locally (scripts/container-base.sh); podman's layers and the Go caches
# of the build are kept under $IMAGED_CONTAINER_CACHE (default $HOME/.cache/imaged/containers),
# so a warm run rebuilds only what changed.
#
# Settings: IMAGED_CONTAINER_MODELS (none (default): mount $IMAGED_MODELS_DIR when it exists;
# fetch: build the models into the image), IMAGED_CONTAINER_KEEP=1 leaves the container running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
start_all=$(date +%s)

need=()
for cmd in podman runc debootstrap prometheus curl vipsheader; do
	command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
done
if [ ${#need[@]} -gt 0 ]; then
	pkgs=()
	for c in "${need[@]}"; do
		case "$c" in
		vipsheader) pkgs+=(libvips-tools) ;;
		podman) pkgs+=(podman containernetworking-plugins) ;;
		*) pkgs+=("$c") ;;
		esac
	done
	echo "installing: ${pkgs[*]}"
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# shellcheck source=scripts/container-base.sh
source "$ROOT/scripts/container-base.sh"
container_env
base_images
t_base=$(($(date +%s) - start_all))

MODELS="${IMAGED_CONTAINER_MODELS:-none}"
MODELS_DIR="${IMAGED_MODELS_DIR:-$HOME/.cache/imaged/models}"
IMAGE="localhost/imaged:test"
VERSION="$(git describe --always --dirty 2>/dev/null || echo dev)"

t0=$(date +%s)
build_log="$CACHE/build.log"
if ! podman build --format docker --pull=never --layers \
	--build-arg MODELS="$MODELS" --build-arg VERSION="$VERSION" \
	-t "$IMAGE" . >"$build_log" 2>&1; then
	tail -40 "$build_log" >&2
	echo "podman build failed (whole log: $build_log)" >&2
	exit 1
fi
echo "build    $(grep -cE -- '--> Using cache' "$build_log" || true) steps from cache"
# Untagged images are both earlier builds of this tag and the layer cache of the build stage:
# only those unused for three days go.
podman image prune -f --filter until=72h >/dev/null 2>&1 || true
t_build=$(($(date +%s) - t0))
echo "built    $IMAGE in ${t_build}s"

work="$(mktemp -d)"
name="imaged-test-$$"
prom_pid=""
cleanup() {
	status=$?
	if [ $status -ne 0 ]; then
		echo "--- container logs (tail)"
		podman logs --tail 60 "$name" 2>&1 || true
		[ -f "$work/prometheus.log" ] && { echo "--- prometheus log (tail)"; tail -20 "$work/prometheus.log"; }
	fi
	[ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null || true
	if [ "${IMAGED_CONTAINER_KEEP:-}" != 1 ]; then
		podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Every library the binary links is in the runtime image.
missing_libs="$(podman run --rm --entrypoint ldd "$IMAGE" /usr/local/bin/imaged 2>/dev/null | grep 'not found' || true)"
[ -z "$missing_libs" ] || fail "shared libraries missing from the image: $missing_libs"
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = "1000:1000" ] || fail "image does not run as 1000:1000"
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q '"imaged","health"' || fail "image has no HEALTHCHECK"

t0=$(date +%s)
port="$(free_port)"
mkdir -p "$work/data"
chown 1000:1000 "$work/data"
# The admin API key the container starts with; every API call sends it.
key="$(python3 -c 'import base64, os
e = lambda b: base64.b32encode(b).decode().lower().rstrip("=")
print("imk_" + e(os.urandom(5)) + "_" + e(os.urandom(32)))')"
run_args=(--name "$name" -d --read-only --tmpfs /tmp:rw,mode=1777 -v "$work/data:/data"
	-p "127.0.0.1:$port:8000" -e IMAGED_WORKERS=2 -e IMAGED_LOG_LEVEL=info -e IMAGED_BOOTSTRAP_API_KEY="$key")
if [ "$MODELS" = none ] && [ -d "$MODELS_DIR" ]; then
	run_args+=(-v "$MODELS_DIR:/opt/imaged/models:ro")
fi
# Without systemd, podman complains that it cannot schedule the HEALTHCHECK; it is run below.
podman run "${run_args[@]}" "$IMAGE" >/dev/null 2>"$work/run.err" || { cat "$work/run.err"; fail "podman run"; }
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
	if curl -fsS "$base/health/ready" >/dev/null 2>&1; then break; fi
	[ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] || fail "container exited"
	sleep 0.2
done
curl -fsS "$base/health/ready" >/dev/null || fail "not ready after 60s"
t_ready=$(($(date +%s) - t0))
echo "ready    $base in ${t_ready}s"

[ "$(podman exec "$name" id -u)" = 1000 ] || fail "process does not run as uid 1000"
podman exec "$name" sh -c 'touch /usr/local/bin/x 2>/dev/null' && fail "root filesystem is writable"
podman healthcheck run "$name" >/dev/null 2>&1 || {
	# Without systemd, podman may refuse to run checks; run the image's own command instead.
	podman exec "$name" imaged health ||
		fail "HEALTHCHECK command failed"
}
echo "ok       non-root, read-only root filesystem, HEALTHCHECK"

# Upload, then a synchronous resize.
api() { curl -fsS -H "X-API-Key: $key" "$@"; }
id="$(api -F file=@testdata/astronaut.jpg "$base/v1/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
api -H 'Content-Type: application/json' \
	-d '{"image_id":"'"$id"'","ops":[{"op":"resize","width":128},{"op":"convert","format":"png"}]}' \
	"$base/v1/process" -o "$work/sync.png"
[ "$(vipsheader -f width "$work/sync.png")" = 128 ] || fail "synchronous resize: width $(vipsheader -f width "$work/sync.png")"
echo "ok       upload $id, synchronous resize to 128 px"

# The same through a queued task and the container's workers.
task="$(api -H 'Content-Type: application/json' \
	-d '{"image_id":"'"$id"'","ops":[{"op":"resize","width":96},{"op":"convert","format":"jpeg"}]}' \
	"$base/v1/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
status=""
for _ in $(seq 1 150); do
	status="$(api "$base/v1/tasks/$task" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
	case "$status" in completed | failed | cancelled) break ;; esac
	sleep 0.2
done
[ "$status" = completed ] || fail "task $task ended $status"
api "$base/v1/tasks/$task/result" -o "$work/task.jpg"
[ "$(vipsheader -f width "$work/task.jpg")" = 96 ] || fail "task result: width $(vipsheader -f width "$work/task.jpg")"
echo "ok       task $task completed, result 96 px wide"

# A real Prometheus scrapes the container.
t0=$(date +%s)
pport="$(free_port)"
cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: imaged
    static_configs: [{targets: ["127.0.0.1:$port"]}]
EOF
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
	--web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
query() { curl -fsS --get "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" 2>/dev/null || true; }
result_count() { python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["data"]["result"]))
except Exception: print(0)'; }
ok=""
for _ in $(seq 1 60); do
	if [ "$(query 'up{job="imaged"} == 1' | result_count)" -gt 0 ] &&
		[ "$(query 'http_requests_total{job="imaged",endpoint="/v1/images",method="POST",status_code="201"}' | result_count)" -gt 0 ]; then
		ok=1
		break
	fi
	sleep 0.5
done
[ -n "$ok" ] || fail "Prometheus did not scrape the container's metrics"
for q in 'images_processed_total{operation_type="transform",status="success"}' 'tasks_queued{task_type="transform"}' \
	'image_processing_duration_seconds_count{operation_type="transform"}'; do
	[ "$(query "$q" | result_count)" -gt 0 ] || fail "no series for $q"
done
t_prom=$(($(date +%s) - t0))
echo "ok       Prometheus scraped the container (up, http_requests_total, images_processed_total, tasks_queued) in ${t_prom}s"

echo "container test passed: base images ${t_base}s, build ${t_build}s, ready ${t_ready}s, total $(($(date +%s) - start_all))s"
