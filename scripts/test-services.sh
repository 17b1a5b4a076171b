#!/usr/bin/env bash
# scripts/test-services.sh COMMAND...: runs COMMAND (the test suite) with every service the tests
# talk to reachable. A service already reachable at its configured address is used as it is:
#   PostgreSQL  IMAGED_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
#   Redis       IMAGED_TEST_REDIS_URL    (default redis://127.0.0.1:6379/0)
#   RabbitMQ    IMAGED_TEST_AMQP_URL     (default amqp://guest:guest@127.0.0.1:5672/)
# Otherwise it installs the Debian package when missing (postgresql, redis-server,
# rabbitmq-server; without letting the package start the machine's own instance) and starts a
# private instance owned by this run: a PostgreSQL cluster made with initdb in a temporary
# directory, redis-server, and a RabbitMQ node with its own node name, Erlang port mapper,
# ports and data directory, each on a free port of 127.0.0.1. Their addresses reach the tests
# through the variables above (and RABBITMQ_NODENAME / ERL_EPMD_PORT, so the tests' rabbitmqctl
# talks to the private node). They are stopped when COMMAND ends, fails or is interrupted.
# Private instances never use the machine's ports, data directories or node names. With
# nothing reachable and nothing installable, it fails naming what is missing.
# versitygw (S3) and kfake (Kafka) are started by the tests themselves; Prometheus is a binary.
set -euo pipefail

work=$(mktemp -d /tmp/imaged-test-services.XXXXXX)
chmod 755 "$work"
stops=()
cleanup() {
  local rc=$?
  for ((i = ${#stops[@]} - 1; i >= 0; i--)); do eval "${stops[$i]}" >/dev/null 2>&1 || true; done
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "test-services: $*" >&2; }
reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    reachable 127.0.0.1 "$p" || { echo "$p"; return 0; }
  done
  say "no free port found"
  return 1
}
# host_port URL DEFAULT_PORT: "host port" of a URL.
host_port() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  local host=${rest%:*} port=${rest##*:}
  [ "$host" = "$rest" ] && port=$2
  echo "${host:-127.0.0.1} ${port:-$2}"
}
# install PACKAGE: apt-get install without starting the package's own service.
install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "$1 is not installed and this run cannot install it (needs root and apt-get)"
    return 1
  fi
  say "installing $1"
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made=1
  fi
  local rc=0
  (apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null; }) || rc=$?
  [ -n "$made" ] && rm -f "$policy"
  return $rc
}
# as_owner CMD...: runs CMD as the postgres user when root (PostgreSQL refuses root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

missing=()

# --- PostgreSQL ---
pg_url=${IMAGED_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
read -r pg_host pg_port <<<"$(host_port "$pg_url" 5432)"
if reachable "$pg_host" "$pg_port"; then
  say "PostgreSQL: using $pg_host:$pg_port"
else
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [ -z "$bin" ]; then install postgresql || true; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1); fi
  if [ -z "$bin" ]; then
    missing+=("PostgreSQL (package postgresql)")
  else
    port=$(free_port)
    mkdir -p "$work/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$work/pg"
    as_owner "$bin/initdb" -D "$work/pg/data" -A trust -U postgres >"$work/pg-init.log" 2>&1
    as_owner "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
      -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    stops+=("as_owner '$bin/pg_ctl' -D '$work/pg/data' -m immediate stop")
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
    export IMAGED_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
    say "PostgreSQL: private cluster on 127.0.0.1:$port"
  fi
fi

# --- Redis ---
redis_url=${IMAGED_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
read -r r_host r_port <<<"$(host_port "$redis_url" 6379)"
if reachable "$r_host" "$r_port"; then
  say "Redis: using $r_host:$r_port"
else
  command -v redis-server >/dev/null || install redis-server || true
  if ! command -v redis-server >/dev/null; then
    missing+=("Redis (package redis-server)")
  else
    port=$(free_port)
    mkdir -p "$work/redis"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
      --dir "$work/redis" --pidfile "$work/redis/pid" --logfile "$work/redis/log"
    stops+=("kill \$(cat '$work/redis/pid')")
    for _ in $(seq 100); do reachable 127.0.0.1 "$port" && break; sleep 0.1; done
    export IMAGED_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
    say "Redis: private instance on 127.0.0.1:$port"
  fi
fi

# --- RabbitMQ ---
amqp_url=${IMAGED_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
read -r a_host a_port <<<"$(host_port "$amqp_url" 5672)"
if reachable "$a_host" "$a_port"; then
  say "RabbitMQ: using $a_host:$a_port"
else
  command -v rabbitmq-server >/dev/null || install rabbitmq-server || true
  if ! command -v rabbitmq-server >/dev/null; then
    missing+=("RabbitMQ (package rabbitmq-server)")
  else
    port=$(free_port)
    epmd_port=$(free_port)
    dist_port=$(free_port)
    mkdir -p "$work/rabbit"
    echo "[]." >"$work/rabbit/enabled_plugins"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$port" >"$work/rabbit/rabbitmq.conf"
    # The server scripts run the node as the rabbitmq user when started by root.
    # It must reach its directory through the run's own (mktemp makes that 0700).
    [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1 && chmod 711 "$work" && chown -R rabbitmq "$work/rabbit"
    export RABBITMQ_NODENAME="imaged-test-$$@localhost" ERL_EPMD_PORT=$epmd_port
    RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist_port RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" \
      RABBITMQ_LOG_BASE="$work/rabbit/log" RABBITMQ_CONFIG_FILE="$work/rabbit/rabbitmq" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbit/enabled_plugins" RABBITMQ_PID_FILE="$work/rabbit/pid" \
      rabbitmq-server -detached >/dev/null 2>&1
    stops+=("rabbitmqctl -q stop; epmd -port $epmd_port -kill")
    # await_startup fails at once while the node has not yet registered with epmd: ask again.
    started=
    for _ in $(seq 90); do
      if rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then started=1; break; fi
      sleep 1
    done
    if [ -z "$started" ]; then
      say "RabbitMQ: the private node did not start; its log:"
      tail -n 30 "$work"/rabbit/log/*.log >&2 || true
      exit 1
    fi
    export IMAGED_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/"
    say "RabbitMQ: private node $RABBITMQ_NODENAME on 127.0.0.1:$port"
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  say "cannot run the suite: not reachable and not installable: ${missing[*]}"
  exit 1
fi

"$@"
