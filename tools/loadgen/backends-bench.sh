#!/usr/bin/env bash
# The embedded and the services backend measured side by side in one run
# (issue #12; the tables are in BENCHMARKS.md, "Embedded beside services").
#
#   nice -n 19 cargo build --release -p chat -p loadgen
#   tools/loadgen/backends-bench.sh [appends] [ws] [rebuild]     # all three when none is named
#
# appends:  backend-bench appends (PgEventStore beside SqliteEventStore, 1/8/64 writers)
# ws:       for each backend in turn a fresh release `chat up` (services:
#           databases, a RabbitMQ vhost and a Redis DB of its own, as
#           .ci/chat-server.sh does; embedded: a fresh data directory), the
#           send and login limits raised, then ws-load --clients 1000
#           --channels 100 --rates 200,1000; the server stopped and its data
#           dropped afterwards.
# rebuild:  for each backend a fresh `chat up` started once (it creates the
#           schemas or the data directory) and stopped, the same
#           $SEED_MESSAGES events appended through the EventLog port
#           (backend-bench seed), then `chat rebuild read-model` timed.
#
# Results (markdown tables and logs) go to $OUT (default /tmp/backends-bench).
# Environment: CHAT_BENCH_DATABASE_URL (PostgreSQL server, default
# postgres://postgres@localhost:5432/postgres), WS_SECONDS (per rate, 20),
# SEED_MESSAGES (100000), SEED_CHANNELS (100), APPEND_SECONDS (5),
# BENCH_REDIS_DB (14).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${CARGO_TARGET_DIR:-target}/release
OUT=${OUT:-/tmp/backends-bench}
PG=${CHAT_BENCH_DATABASE_URL:-postgres://postgres@localhost:5432/postgres}
WS_SECONDS=${WS_SECONDS:-20}
SEED_MESSAGES=${SEED_MESSAGES:-100000}
SEED_CHANNELS=${SEED_CHANNELS:-100}
APPEND_SECONDS=${APPEND_SECONDS:-5}
REDIS_URL=redis://127.0.0.1:6379/${BENCH_REDIS_DB:-14}
RUN=backends_bench_$$

fail() { echo "backends-bench: $*" >&2; exit 1; }
for bin in chat ws-load backend-bench; do
  [ -x "$BIN/$bin" ] || fail "$BIN/$bin is missing: nice -n 19 cargo build --release -p chat -p loadgen"
done
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 1100 ] || fail "need at least 1100 open files (ulimit -n), have $(ulimit -n)"
mkdir -p "$OUT"

SERVER_PID=
SERVER_NAME=
WORK=

load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}

drop_data() {
  stop_server
  if [ -n "$SERVER_NAME" ]; then
    for db in "${SERVER_NAME}_log" "${SERVER_NAME}_read"; do
      psql -q "$PG" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rabbitmqctl -q delete_vhost "$SERVER_NAME" >/dev/null 2>&1 || true
    SERVER_NAME=
  fi
  if [ -n "$WORK" ]; then
    rm -rf "$WORK"
    WORK=
  fi
}
trap drop_data EXIT

# The environment of `chat up` and `chat rebuild` on backend $1 named $2.
backend_env() { # backend name
  case $1 in
    services)
      echo CHAT_DATABASE_URL="${PG%/*}/${2}_log" \
        CHAT_READ_DATABASE_URL="${PG%/*}/${2}_read" \
        CHAT_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$2" \
        CHAT_REDIS_URL="$REDIS_URL" \
        CHAT_JWT_SECRET="$2-secret-long-enough-for-the-check" ;;
    embedded)
      echo CHAT_DATA_DIR="$WORK/data" ;;
  esac
}

start_server() { # backend name
  local backend=$1 name=$2 port
  WORK=$(mktemp -d "/tmp/$name.XXXXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BASE=http://127.0.0.1:$port
  if [ "$backend" = services ]; then
    SERVER_NAME=$name
    for db in "${name}_log" "${name}_read"; do
      psql -q "$PG" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
    done
    rabbitmqctl -q add_vhost "$name" >/dev/null
    rabbitmqctl -q set_permissions -p "$name" guest '.*' '.*' '.*' >/dev/null
  fi
  # shellcheck disable=SC2046 # backend_env's words are VAR=value assignments without spaces
  env -u CHAT_DATABASE_URL -u CHAT_READ_DATABASE_URL -u CHAT_AMQP_URL -u CHAT_REDIS_URL -u CHAT_BACKEND \
    $(backend_env "$backend" "$name") \
    CHAT_HTTP_ADDR="127.0.0.1:$port" \
    CHAT_SEND_RATE_PER_SEC=100000 CHAT_SEND_BURST=100000 CHAT_AUTH_ATTEMPTS_PER_MIN=1000000 \
    RUST_LOG=warn \
    "$BIN/chat" up >"$OUT/$name.chat.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 60); do
    if curl -sf "$BASE/health" >/dev/null 2>&1; then
      grep -q "^chat: backend $backend" "$OUT/$name.chat.log" \
        || fail "chat up did not run $backend (log: $OUT/$name.chat.log)"
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "chat up exited (log: $OUT/$name.chat.log)"
    sleep 1
  done
  fail "chat up did not answer $BASE/health (log: $OUT/$name.chat.log)"
}

phase_appends() {
  echo "== appends ($(load))"
  "$BIN/backend-bench" appends --seconds "$APPEND_SECONDS" | tee "$OUT/appends.md"
  echo "after: $(load)"
}

phase_ws() {
  local backend
  for backend in services embedded; do
    echo "== send-to-push on $backend ($(load))"
    start_server "$backend" "${RUN}_ws_$backend"
    "$BIN/ws-load" "$BASE" --clients 1000 --channels 100 --rates 200,1000 --seconds "$WS_SECONDS" \
      | tee "$OUT/ws-$backend.md"
    echo "after: $(load)"
    drop_data
  done
}

phase_rebuild() {
  local backend name started secs
  for backend in services embedded; do
    name="${RUN}_rebuild_$backend"
    echo "== rebuild on $backend ($(load))"
    start_server "$backend" "$name"
    stop_server
    if [ "$backend" = services ]; then
      "$BIN/backend-bench" seed --postgres "${PG%/*}/${name}_log" \
        --messages "$SEED_MESSAGES" --channels "$SEED_CHANNELS"
    else
      "$BIN/backend-bench" seed --sqlite "$WORK/data/events.db" \
        --messages "$SEED_MESSAGES" --channels "$SEED_CHANNELS"
    fi
    echo "rebuild starts: $(load)"
    started=$(date +%s.%N)
    # shellcheck disable=SC2046
    env -u CHAT_DATABASE_URL -u CHAT_READ_DATABASE_URL -u CHAT_AMQP_URL -u CHAT_REDIS_URL -u CHAT_BACKEND \
      $(backend_env "$backend" "$name") RUST_LOG=warn \
      "$BIN/chat" rebuild read-model 2>"$OUT/rebuild-$backend.log"
    secs=$(echo "$(date +%s.%N) - $started" | bc)
    grep '^rebuilt\|^phases' "$OUT/rebuild-$backend.log" | tee "$OUT/rebuild-$backend.md"
    echo "wall clock of chat rebuild read-model (process start to exit): $secs s" | tee -a "$OUT/rebuild-$backend.md"
    if [ "$backend" = services ]; then
      echo "messages in the rebuilt model: $(psql -tA "${PG%/*}/${name}_read" -c 'SELECT count(*) FROM rm.messages')" \
        | tee -a "$OUT/rebuild-$backend.md"
    else
      echo "messages in the rebuilt model: $(sqlite3 "$WORK/data/read.db" 'SELECT count(*) FROM messages')" \
        | tee -a "$OUT/rebuild-$backend.md"
    fi
    drop_data
  done
}

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(appends ws rebuild)
for phase in "${phases[@]}"; do
  case $phase in
    appends) phase_appends ;;
    ws) phase_ws ;;
    rebuild) phase_rebuild ;;
    *) fail "unknown phase $phase (appends, ws, rebuild)" ;;
  esac
done
echo "results in $OUT"
