#!/usr/bin/env bash
# The issue #14 benchmarks, each beside its baseline in the same run.
#
#   nice -n 10 cargo build --release -p chat -p loadgen
#   tools/loadgen/perf-bench.sh [hot] [ws] [relay] [rebuild]     # all four when none is named
#
# hot:     pgbench single-row INSERTs (tools/loadgen/raw-insert.sql, 32
#          clients) into a scratch database made with the event store's
#          migrations, before the server starts (its pools idle) and after it
#          stopped; between them a release `chat up` on the services backend
#          (databases, a RabbitMQ vhost and a Redis DB of its own, the send and
#          login limits raised) and wrk (wrk-send.lua, one connection per
#          thread) with 64 connections sending into ONE channel, then 64 over
#          64 channels, each connection its own user (perf-setup makes them).
#          Every 2xx send is then looked up in the events table: each once.
# ws:      ws-load, 1,000 clients over 100 channels at 200/500/1,000/2,000
#          msg/s, its SVG chart of p50/p99/max against the rate.
# relay:   $RELAY_EVENTS events seeded (backend-bench seed), then relay-bench:
#          a bare lapin publisher with confirms, the relay, the bare one again.
# rebuild: $SEED_MESSAGES events seeded into a log `chat up` created, `chat
#          rebuild read-model` timed, then psql \copy of the rebuilt
#          rm.messages rows into a table LIKE it (INCLUDING ALL).
# Every part samples the core share of each process group (cpu-share, or
# ws-load and relay-bench themselves) while its load runs.
#
# Tables, logs and SVGs go to $OUT (default /tmp/perf-bench). Environment:
# CHAT_BENCH_DATABASE_URL (default postgres://postgres@localhost:5432/postgres),
# HOT_SECONDS (20), RAW_SECONDS (15), WS_SECONDS (20), WS_RATES
# (200,500,1000,2000), WS_CLIENTS (1000), WS_CHANNELS (100), RELAY_EVENTS (50000), SEED_MESSAGES (100000),
# SEED_CHANNELS (100), BENCH_REDIS_DB (13).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${CARGO_TARGET_DIR:-target}/release
HERE=tools/loadgen
OUT=${OUT:-/tmp/perf-bench}
PG=${CHAT_BENCH_DATABASE_URL:-postgres://postgres@localhost:5432/postgres}
HOT_SECONDS=${HOT_SECONDS:-20}
RAW_SECONDS=${RAW_SECONDS:-15}
WS_SECONDS=${WS_SECONDS:-20}
WS_RATES=${WS_RATES:-200,500,1000,2000}
WS_CLIENTS=${WS_CLIENTS:-1000}
WS_CHANNELS=${WS_CHANNELS:-100}
RELAY_EVENTS=${RELAY_EVENTS:-50000}
SEED_MESSAGES=${SEED_MESSAGES:-100000}
SEED_CHANNELS=${SEED_CHANNELS:-100}
REDIS_DB=${BENCH_REDIS_DB:-13}
RUN=perf_bench_$$

fail() { echo "perf-bench: $*" >&2; exit 1; }
for bin in chat ws-load backend-bench relay-bench perf-setup cpu-share; do
  [ -x "$BIN/$bin" ] || fail "$BIN/$bin is missing: nice -n 10 cargo build --release -p chat -p loadgen"
done
for tool in wrk pgbench psql rabbitmqctl redis-cli bc; do
  command -v "$tool" >/dev/null || fail "$tool is missing (wrk: apt-get install wrk)"
done
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 1100 ] || fail "need at least 1100 open files (ulimit -n), have $(ulimit -n)"
mkdir -p "$OUT"

SERVER_PID=
DATABASES=()
VHOSTS=()
BACKGROUND=()
WORK=$(mktemp -d "/tmp/$RUN.XXXXXX")

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}

# Everything this run created, also after a failure or Ctrl-C.
cleanup() {
  local pid db vhost
  for pid in "${BACKGROUND[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_server
  for db in "${DATABASES[@]}"; do
    psql -q "$PG" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  for vhost in "${VHOSTS[@]}"; do rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true; done
  redis-cli -n "$REDIS_DB" FLUSHDB >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# psql without its NOTICEs (DROP ... IF EXISTS of what is not there).
psql() { PGOPTIONS='-c client_min_messages=warning' command psql "$@"; }

# Other work shares the PostgreSQL server (100 connections): wait, bounded,
# until $1 are free beside a margin of 5.
wait_for_connections() { # count
  local free
  for _ in $(seq 120); do
    free=$(psql -tA "$PG" -c "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity")
    [ "$free" -ge "$(($1 + 5))" ] && return 0
    sleep 1
  done
  fail "PostgreSQL has $free free connections, $1 needed, for 2 minutes"
}

load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }
now() { date +%s.%N; }
db_url() { echo "${PG%/*}/$1"; }

new_database() { # name
  DATABASES+=("$1")
  psql -q "$PG" -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" -c "CREATE DATABASE \"$1\"" >/dev/null
}

new_vhost() { # name
  VHOSTS+=("$1")
  rabbitmqctl -q add_vhost "$1" >/dev/null
  rabbitmqctl -q set_permissions -p "$1" guest '.*' '.*' '.*' >/dev/null
}

server_env() { # name
  echo CHAT_DATABASE_URL="$(db_url "${1}_log")" CHAT_READ_DATABASE_URL="$(db_url "${1}_read")" \
    CHAT_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$1" \
    CHAT_REDIS_URL="redis://127.0.0.1:6379/$REDIS_DB" CHAT_JWT_SECRET="$1-secret-long-enough-for-the-check"
}

start_server() { # name
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BASE=http://127.0.0.1:$port
  DATABASES+=("${name}_log" "${name}_read")
  new_vhost "$name"
  redis-cli -n "$REDIS_DB" FLUSHDB >/dev/null
  # shellcheck disable=SC2046 # server_env's words are VAR=value assignments without spaces
  env -u CHAT_DATABASE_URL -u CHAT_READ_DATABASE_URL -u CHAT_AMQP_URL -u CHAT_REDIS_URL -u CHAT_BACKEND \
    $(server_env "$name") CHAT_HTTP_ADDR="127.0.0.1:$port" \
    CHAT_SEND_RATE_PER_SEC=1000000 CHAT_SEND_BURST=1000000 CHAT_AUTH_ATTEMPTS_PER_MIN=1000000 \
    RUST_LOG=warn "$BIN/chat" up >"$OUT/$name.chat.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 60); do
    if curl -sf "$BASE/health" >/dev/null 2>&1; then
      grep -q "^chat: backend services" "$OUT/$name.chat.log" \
        || fail "chat up did not run services (log: $OUT/$name.chat.log)"
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "chat up exited (log: $OUT/$name.chat.log)"
    sleep 1
  done
  fail "chat up did not answer $BASE/health (log: $OUT/$name.chat.log)"
}

# cpu-share in the background over the middle of a window of $1 seconds
# (a second off each end), its row appended to $2; the rest are its flags.
sample_cpu() { # seconds file label flags...
  local seconds=$1 file=$2 label=$3
  shift 3
  (sleep 1; exec "$BIN/cpu-share" --seconds "$((seconds - 2))" --label "$label" "$@") >>"$file" &
  BACKGROUND+=($!)
}

# pgbench on a fresh table shaped like events; its rows/s in RAW_RATE.
raw_inserts() { # label cpu-file
  local db="${RUN}_raw" tps
  new_database "$db"
  for migration in adapters/event-store/migrations/*.sql; do
    psql -q -v ON_ERROR_STOP=1 "$(db_url "$db")" -f "$migration" >/dev/null
  done
  wait_for_connections 32
  sample_cpu "$RAW_SECONDS" "$2" "$1" --pg-db "$db" --load-comm pgbench
  pgbench -n -c 32 -j 2 -T "$RAW_SECONDS" -f "$HERE/raw-insert.sql" "$(db_url "$db")" \
    >"$OUT/pgbench-$1.log" 2>&1 || fail "pgbench failed (log: $OUT/pgbench-$1.log)"
  wait "${BACKGROUND[-1]}" || true
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$OUT/pgbench-$1.log")
  [ -n "$tps" ] || fail "no tps in $OUT/pgbench-$1.log"
  psql -q "$PG" -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
  RAW_RATE=$(printf '%.0f' "$tps")
}

# 64 wrk connections, each its own user, over $2 channels; one table row.
wrk_sends() { # label channels server-name cpu-file
  local label=$1 channels=$2 name=$3 prefix="${RUN}-$1" acked="$WORK/acked-$1" check
  "$BIN/perf-setup" "$BASE" --users 64 --channels "$channels" --out "$WORK/targets-$label" 2>>"$OUT/perf-setup.log"
  sample_cpu "$HOT_SECONDS" "$4" "$label: 64 connections, $channels channel(s)" \
    --chat-pid "$SERVER_PID" --pg-db "${name}_log,${name}_read" --load-comm wrk
  WRK_TARGETS="$WORK/targets-$label" WRK_ACKED="$acked" WRK_RUN="$prefix" \
    wrk -t 64 -c 64 -d "${HOT_SECONDS}s" --timeout 10s --latency -s "$HERE/wrk-send.lua" "$BASE" \
    >"$OUT/wrk-$label.log" 2>&1 || fail "wrk failed (log: $OUT/wrk-$label.log)"
  wait "${BACKGROUND[-1]}" || true
  sleep 2 # sends in flight when wrk stopped commit or fail meanwhile
  cat "$acked".* >"$acked"
  check=$(psql -qtA -F ' ' -v ON_ERROR_STOP=1 "$(db_url "${name}_log")" <<SQL
CREATE TEMP TABLE acked (status int, id text);
\copy acked FROM '$acked' WITH (DELIMITER ' ')
CREATE TEMP TABLE logged AS SELECT data->>'client_msg_id' AS id, stream_id, data->>'seq' AS seq
  FROM events WHERE event_type = 'MessageSent' AND starts_with(data->>'client_msg_id', '$prefix-');
SELECT (SELECT count(*) FROM acked WHERE status BETWEEN 200 AND 299),
       (SELECT count(*) FROM acked WHERE status NOT BETWEEN 200 AND 299),
       (SELECT count(*) FROM logged),
       (SELECT count(*) FROM acked a WHERE status BETWEEN 200 AND 299
          AND NOT EXISTS (SELECT 1 FROM logged l WHERE l.id = a.id)),
       (SELECT count(*) - count(DISTINCT id) FROM logged),
       (SELECT count(*) - count(DISTINCT (stream_id, seq)) FROM logged);
SQL
  )
  read -r ok refused logged missing dup_ids dup_seqs <<<"$check"
  local verdict="all $ok in the log once, $((logged - ok)) more logged (answers wrk did not wait for)"
  if [ "$missing" != 0 ] || [ "$dup_ids" != 0 ] || [ "$dup_seqs" != 0 ]; then
    verdict="**FAILED**: $missing acknowledged not in the log, $dup_ids duplicate ids, $dup_seqs duplicate seqs"
  fi
  local p50 p99
  p50=$(awk '$1 == "50%" {print $2}' "$OUT/wrk-$label.log")
  p99=$(awk '$1 == "99%" {print $2}' "$OUT/wrk-$label.log")
  HOT_ROW="| $label | 64 | $channels | $(echo "$ok / $HOT_SECONDS" | bc) | $p50 | $p99 | $refused | $verdict |"
}

phase_hot() {
  local cpu="$OUT/hot-cpu.md" name="${RUN}_hot" before after rows=()
  "$BIN/cpu-share" --seconds 0.01 --label - --header | head -2 >"$cpu"
  echo "== hot: raw INSERTs before the server ($(load))"
  raw_inserts raw-before "$cpu"
  before=$RAW_RATE
  start_server "$name"
  for part in "hot 1" "many 64"; do
    set -- $part
    echo "== $1: wrk, 64 connections over $2 channel(s), ${HOT_SECONDS} s ($(load))"
    wrk_sends "$1" "$2" "$name" "$cpu"
    rows+=("$HOT_ROW")
  done
  stop_server
  echo "== hot: raw INSERTs after the server stopped ($(load))"
  raw_inserts raw-after "$cpu"
  after=$RAW_RATE
  {
    echo "Raw single-row INSERTs (pgbench, 32 clients, ${RAW_SECONDS} s): $before rows/s before the server started, $after after it stopped."
    echo
    echo "| benchmark | connections | channels | acked sends/s | wrk p50 | wrk p99 | non-2xx | log check |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "| benchmark | acked sends/s | raw rows/s (before) | × raw |"
    echo "|---|---:|---:|---:|"
    for row in "${rows[@]}"; do
      IFS='|' read -r _ label _ _ rate _ <<<"$row"
      printf '|%s|%s | %s | %.2f |\n' "$label" "$rate" "$before" "$(echo "scale=3; $rate / $before" | bc)"
    done
    echo
    cat "$cpu"
  } | tee "$OUT/hot.md"
}

phase_ws() {
  local name="${RUN}_ws"
  echo "== ws: send-to-push at $WS_RATES msg/s ($(load))"
  start_server "$name"
  "$BIN/ws-load" "$BASE" --clients "$WS_CLIENTS" --channels "$WS_CHANNELS" --rates "$WS_RATES" --seconds "$WS_SECONDS" \
    --idle 0 --server-pid "$SERVER_PID" --pg-db "${name}_log,${name}_read" \
    --chart "$OUT/ws-send-to-push.svg" 2>"$OUT/ws-load.log" | tee "$OUT/ws.md"
  stop_server
}

phase_relay() {
  local name="${RUN}_relay"
  echo "== relay: $RELAY_EVENTS events, bare publisher / relay / bare publisher ($(load))"
  DATABASES+=("${name}_log")
  new_vhost "$name"
  "$BIN/backend-bench" seed --postgres "$(db_url "${name}_log")" --messages "$RELAY_EVENTS" \
    --channels 100 2>"$OUT/relay-seed.log"
  "$BIN/relay-bench" --log "$(db_url "${name}_log")" --amqp "amqp://guest:guest@127.0.0.1:5672/$name" \
    --pg-db "${name}_log" 2>"$OUT/relay-bench.log" | tee "$OUT/relay.md"
}

phase_rebuild() {
  local name="${RUN}_rebuild" read cpu="$OUT/rebuild-cpu.md" started rebuild_secs copy_secs events rows pid
  read=$(db_url "${name}_read")
  echo "== rebuild: $SEED_MESSAGES messages, chat rebuild read-model beside COPY ($(load))"
  start_server "$name"
  stop_server
  "$BIN/backend-bench" seed --postgres "$(db_url "${name}_log")" --messages "$SEED_MESSAGES" \
    --channels "$SEED_CHANNELS" 2>"$OUT/rebuild-seed.log"
  events=$(psql -tA "$(db_url "${name}_log")" -c 'SELECT count(*) FROM events')
  started=$(now)
  # shellcheck disable=SC2046
  env -u CHAT_DATABASE_URL -u CHAT_READ_DATABASE_URL -u CHAT_AMQP_URL -u CHAT_REDIS_URL -u CHAT_BACKEND \
    $(server_env "$name") RUST_LOG=warn "$BIN/chat" rebuild read-model 2>"$OUT/rebuild.log" &
  pid=$!
  "$BIN/cpu-share" --seconds 3600 --while "$pid" --label "chat rebuild read-model (it is the load generator column)" \
    --pg-db "${name}_log,${name}_read" --load-pid "$pid" --header >"$cpu"
  wait "$pid" || fail "chat rebuild read-model failed (log: $OUT/rebuild.log)"
  rebuild_secs=$(echo "$(now) - $started" | bc)
  psql -q -v ON_ERROR_STOP=1 "$read" -c "\\copy (SELECT * FROM rm.messages) TO '$WORK/messages.tsv'" \
    -c "CREATE TABLE public.copy_messages (LIKE rm.messages INCLUDING ALL)"
  rows=$(wc -l <"$WORK/messages.tsv")
  started=$(now)
  psql -q -v ON_ERROR_STOP=1 "$read" -c "\\copy public.copy_messages FROM '$WORK/messages.tsv'" &
  pid=$!
  "$BIN/cpu-share" --seconds 3600 --while "$pid" --label "psql \\copy of rm.messages (psql is the load generator column)" \
    --pg-db "${name}_read" --load-comm psql >>"$cpu"
  wait "$pid" || fail "COPY failed"
  copy_secs=$(echo "$(now) - $started" | bc)
  {
    grep '^rebuilt\|^phases' "$OUT/rebuild.log" || true
    echo
    echo "| events in the log | rebuild s | rebuild events/s | rows COPY'd | COPY s | COPY rows/s | rebuild × COPY |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    local rebuild_rate copy_rate
    rebuild_rate=$(echo "$events / $rebuild_secs" | bc)
    copy_rate=$(echo "$rows / $copy_secs" | bc)
    printf '| %s | %.2f | %s | %s | %.2f | %s | %s |\n' "$events" "$rebuild_secs" "$rebuild_rate" \
      "$rows" "$copy_secs" "$copy_rate" "$(printf '%.2f' "$(echo "scale=3; $rebuild_rate / $copy_rate" | bc)")"
    echo
    cat "$cpu"
  } | tee "$OUT/rebuild.md"
}

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(hot ws relay rebuild)
for phase in "${phases[@]}"; do
  case $phase in
    hot) phase_hot ;;
    ws) phase_ws ;;
    relay) phase_relay ;;
    rebuild) phase_rebuild ;;
    *) fail "unknown part $phase (hot, ws, relay, rebuild)" ;;
  esac
  echo "after $phase: $(load)"
done
echo "results in $OUT"
