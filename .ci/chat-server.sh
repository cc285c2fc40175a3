# Sourced by the CI scripts that test a running `chat up` from outside
# (.ci/schemathesis, .ci/web-e2e): starts target/debug/chat on a free port of
# its own, on the backend CHAT_SERVER_BACKEND names (services by default):
# services with databases on CHAT_TEST_DATABASE_URL's server, a RabbitMQ
# vhost and a Redis DB number of its own, so a run never touches another's
# data; embedded with no service URL at all and a data directory under
# WORKDIR. Stops it and drops all of that again on exit.
#
#   chat_server_start NAME WORKDIR [VAR=value ...]   # sets CHAT_SERVER_BASE, CHAT_SERVER_PID
#   chat_server_stop                                 # also run by the EXIT trap
#
# The caller defines `fail` and has built the debug `chat` (under
# $CARGO_TARGET_DIR when set, as cargo puts it).

CHAT_SERVER_PID=
CHAT_SERVER_RUN=
CHAT_SERVER_BASE=
CHAT_SERVER_PG=${CHAT_TEST_DATABASE_URL:-postgres://postgres@localhost:5432/postgres}

chat_server_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

chat_server_stop() {
  if [ -n "$CHAT_SERVER_PID" ]; then
    kill "$CHAT_SERVER_PID" 2>/dev/null && wait "$CHAT_SERVER_PID" 2>/dev/null
    CHAT_SERVER_PID=
  fi
  if [ -n "$CHAT_SERVER_RUN" ]; then
    for db in "$CHAT_SERVER_RUN" "${CHAT_SERVER_RUN}_read"; do
      psql -q "$CHAT_SERVER_PG" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rabbitmqctl -q delete_vhost "$CHAT_SERVER_RUN" >/dev/null 2>&1 || true
    CHAT_SERVER_RUN=
  fi
}

chat_server_start() { # name, workdir, extra VAR=value...
  local name=$1 work=$2; shift 2
  local port redis_url scheme
  trap chat_server_stop EXIT
  port=$(chat_server_free_port)
  mkdir -p "$work"
  scheme=http
  for assignment in "$@"; do
    case $assignment in CHAT_TLS_CERT=*) scheme=https ;; esac
  done
  CHAT_SERVER_BASE=$scheme://127.0.0.1:$port
  case ${CHAT_SERVER_BACKEND:-services} in
    embedded)
      env -u CHAT_DATABASE_URL -u CHAT_READ_DATABASE_URL -u CHAT_AMQP_URL -u CHAT_REDIS_URL \
        CHAT_DATA_DIR="$work/data" \
        CHAT_HTTP_ADDR="127.0.0.1:$port" \
        RUST_LOG=warn \
        "$@" \
        "${CARGO_TARGET_DIR:-target}/debug/chat" up >"$work/chat.log" 2>&1 &
      CHAT_SERVER_PID=$!
      chat_server_wait "$work"
      grep -q "^chat: backend embedded" "$work/chat.log" || fail "chat up did not run embedded (log: $work/chat.log)"
      return 0 ;;
    services) ;;
    *) fail "CHAT_SERVER_BACKEND must be services or embedded" ;;
  esac
  CHAT_SERVER_RUN=$name
  rabbitmqctl -q add_vhost "$name" >/dev/null || fail "cannot add RabbitMQ vhost $name"
  rabbitmqctl -q set_permissions -p "$name" guest '.*' '.*' '.*' >/dev/null \
    || fail "cannot set permissions on RabbitMQ vhost $name"
  # A Redis DB number of its own (1..15) unless the caller names a URL.
  redis_url=${CHAT_TEST_REDIS_URL:-redis://127.0.0.1:6379}
  redis_url="${redis_url%/}/$(( ($$ % 15) + 1 ))"
  env \
    CHAT_DATABASE_URL="${CHAT_SERVER_PG%/*}/$name" \
    CHAT_READ_DATABASE_URL="${CHAT_SERVER_PG%/*}/${name}_read" \
    CHAT_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$name" \
    CHAT_REDIS_URL="$redis_url" \
    CHAT_JWT_SECRET="$name-$(date +%s%N)-secret-long-enough" \
    CHAT_HTTP_ADDR="127.0.0.1:$port" \
    RUST_LOG=warn \
    "$@" \
    "${CARGO_TARGET_DIR:-target}/debug/chat" up >"$work/chat.log" 2>&1 &
  CHAT_SERVER_PID=$!
  chat_server_wait "$work"
}

chat_server_wait() { # workdir
  local work=$1
  for _ in $(seq 60); do
    curl -skf "$CHAT_SERVER_BASE/health" >/dev/null 2>&1 && return 0
    kill -0 "$CHAT_SERVER_PID" 2>/dev/null || { cat "$work/chat.log" >&2; fail "chat up exited"; }
    sleep 1
  done
  fail "chat up did not answer $CHAT_SERVER_BASE/health (log: $work/chat.log)"
}
