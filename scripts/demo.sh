#!/usr/bin/env bash
# `make demo`: the whole pipeline without Docker. Starts the local stack, then
# cdc, analytics and loadgen as processes (logs in .stack/demo/), prints a compact
# live view every few seconds, and stops everything cleanly on Ctrl-C.
#
#   DEMO_SECONDS=N       stop by itself after N seconds (used by the smoke test)
#   PURCHASES_PER_SEC, PAGEVIEWS_PER_SEC   loadgen rates (demo defaults 10 / 750)
#   DEMO_INTERVAL        seconds between live views (default 5)
#   DASHBOARD_ADDR       where the live web dashboard listens (default 127.0.0.1:8088)
#
# Each run starts analytics on a fresh `analytics` database: it reads the
# change topics and pageviews from the beginning, so its tables always match
# what Kafka holds (the broker keeps topics in memory until the stack stops).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shop-demo/target}
BIN=$CARGO_TARGET_DIR/debug
LOGS=$ROOT/.stack/demo
INTERVAL=${DEMO_INTERVAL:-5}

bash scripts/stack.sh up >/dev/null
set -a; . .stack/env; set +a
mkdir -p "$LOGS"
DASHBOARD_ADDR=${DASHBOARD_ADDR:-127.0.0.1:8088}
echo "[demo] building cdc, loadgen, analytics and dashboard" >&2
cargo build -q -p cdc -p loadgen -p analytics -p dashboard

PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$POSTGRES_URL")
psql -X -q "postgres://postgres@$POSTGRES_HOST:$POSTGRES_PORT/postgres" \
  -c "DROP DATABASE IF EXISTS analytics WITH (FORCE)" >/dev/null
"$BIN/migrate" --postgres-url "$POSTGRES_URL" >"$LOGS/migrate.log" 2>&1

pids=()
names=()
start() {
  local name=$1; shift
  env "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
  echo "[demo] started $name (pid $!, log $LOGS/$name.log)" >&2
}

stopping=0
stop_all() {
  ((stopping)) && return; stopping=1
  echo >&2; echo "[demo] stopping" >&2
  # Loadgen first so the pipeline drains what it wrote; SIGTERM lets each flush.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  local deadline=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  echo "[demo] stopped cleanly; logs in $LOGS" >&2
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

# start <name> VAR=value... <binary>
start cdc \
  DATABASE_HOSTNAME="$MYSQL_HOST" DATABASE_PORT="$MYSQL_PORT" \
  DATABASE_USER="$CDC_MYSQL_USER" DATABASE_PASSWORD="$CDC_MYSQL_PASSWORD" \
  DATABASE_SERVER_ID=184054 TOPIC_PREFIX=mysql DATABASE_INCLUDE_LIST=shop \
  TIME_PRECISION_MODE=connect SKIPPED_OPERATIONS=none METRICS_ADDR=127.0.0.1:9101 "$BIN/cdc"
# The local broker's group coordinator can stall for good after a member dies
# (README, "The local broker"), so analytics reads every partition itself
# instead of joining a consumer group: one instance here, and a restarted one
# resumes from the offsets stored in Postgres. The broker's other workarounds
# (ANALYTICS_SEEK_BACK_RECORDS, ANALYTICS_FETCH_WAIT_MAX_MS) come from .stack/env.
start analytics ANALYTICS_ASSIGNMENT=all \
  METRICS_ADDR=127.0.0.1:9103 "$BIN/analytics"
start dashboard DASHBOARD_ADDR="$DASHBOARD_ADDR" METRICS_ADDR=127.0.0.1:9104 "$BIN/dashboard"
echo "[demo] live dashboard: http://$DASHBOARD_ADDR/  (updates every second)" >&2
start loadgen MYSQL_URL="${MYSQL_URL}shop" METRICS_ADDR=127.0.0.1:9102 \
  PURCHASES_PER_SEC="${PURCHASES_PER_SEC:-10}" PAGEVIEWS_PER_SEC="${PAGEVIEWS_PER_SEC:-750}" \
  STATS_INTERVAL=3600s "$BIN/loadgen"

live_view() {
  "${PSQL[@]}" <<'SQL'
\pset footer off
\echo '── top items by revenue ──'
SELECT item_name, item_category, orders, items_sold, revenue, pageviews,
       round(conversion_rate::numeric, 4) AS conversion_rate
  FROM item_summary ORDER BY revenue DESC NULLS LAST LIMIT 5;
\echo '── conversion by channel ──'
SELECT * FROM conversion_funnel;
\echo '── freshness (age of the newest source event when its batch committed) ──'
SELECT stream, age_ms, batch_records, committed_at FROM freshness ORDER BY stream;
SQL
}

started=$SECONDS
while :; do
  sleep "$INTERVAL" & wait $! || true
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      echo "[demo] ${names[i]} exited; the end of its log ($LOGS/${names[i]}.log):" >&2
      tail -n 10 "$LOGS/${names[i]}.log" >&2
      exit 1
    fi
  done
  printf '\n[demo] %s  (%ds)  dashboard: http://%s/\n' "$(date -u +%H:%M:%S)" $((SECONDS - started)) "$DASHBOARD_ADDR"
  live_view || echo "[demo] analytics has not written its tables yet"
  if [[ -n ${DEMO_SECONDS:-} ]] && ((SECONDS - started >= DEMO_SECONDS)); then
    break
  fi
done
