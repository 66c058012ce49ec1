#!/usr/bin/env bash
# The local stack: MariaDB, a real MySQL (Oracle's 9.x server from Debian sid,
# run from a debootstrapped chroot), PostgreSQL, a Kafka-protocol broker (tansu)
# and the schema-registry test fixture, each on a non-default loopback port with
# its own state directory, touching no system service. Tests, `make demo` and CI
# share it. MariaDB stays the default server (MYSQL_* in .stack/env); the real
# MySQL is ORACLE_MYSQL_*, for the connector's tests on both flavours and for
# `make golden` (real Debezium's MySQL connector refuses MariaDB).
#
# Two tansu brokers: the fast one with in-memory storage (KAFKA_*, every test
# and `make demo`) and a persistent one with libsql storage in a file under the
# state directory (KAFKA_PERSISTENT_*): it keeps topics, records and group
# offsets across a restart and fetches from the middle of a record batch
# correctly. Tests that restart a broker start their own from its binary; the
# analytics suite runs once against it with the memory broker's workarounds off
# (README, "The local broker").
#
#   scripts/stack.sh up       install what is missing, start what is not running,
#                             apply migrations, write .stack/env (idempotent)
#   scripts/stack.sh down     stop everything this script started
#   scripts/stack.sh status   one line per service
#
# Settings (environment): STACK_DIR (state, default /var/tmp/shop-demo-stack),
# STACK_CACHE (tansu build and MySQL chroot cache, default ~/.cache/shop-demo),
# STACK_MYSQL_PORT (MariaDB), STACK_ORACLE_MYSQL_PORT, STACK_POSTGRES_PORT,
# STACK_KAFKA_PORT, STACK_KAFKA_PERSISTENT_PORT, STACK_REGISTRY_PORT, STACK_DEBIAN_MIRROR, CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-/var/tmp/shop-demo-stack}
STACK_CACHE=${STACK_CACHE:-$HOME/.cache/shop-demo}
MYSQL_PORT=${STACK_MYSQL_PORT:-13306}
PG_PORT=${STACK_POSTGRES_PORT:-15432}
KAFKA_PORT=${STACK_KAFKA_PORT:-19092}
KAFKA_PERSISTENT_PORT=${STACK_KAFKA_PERSISTENT_PORT:-19093}
REGISTRY_PORT=${STACK_REGISTRY_PORT:-18081}
ORACLE_MYSQL_PORT=${STACK_ORACLE_MYSQL_PORT:-13307}
TANSU_VERSION=0.6.0
TANSU_ROOT=$STACK_CACHE/tansu-$TANSU_VERSION
TANSU=$TANSU_ROOT/bin/tansu
# The same tansu built with libsql storage instead of memory/S3 (dynostore).
TANSU_LIBSQL_ROOT=$STACK_CACHE/tansu-$TANSU_VERSION-libsql
TANSU_LIBSQL=$TANSU_LIBSQL_ROOT/bin/tansu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STACK_CACHE/target}
BIN_DIR=$CARGO_TARGET_DIR/debug
ENV_FILE=$ROOT/.stack/env
# The connector account the shop migrations create (migrations/mysql).
CDC_USER=cdc
CDC_PASSWORD=cdc-password
# The real MySQL's root password: the compose demo's default (MYSQL_ROOT_PASSWORD).
ORACLE_MYSQL_ROOT_PASSWORD=mysqlpw
# The password of the client certificate's PKCS#12 file (ensure_oracle_tls).
ORACLE_MYSQL_KEYSTORE_PASSWORD=stack-keystore

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] FAILED: %s\n' "$*" >&2; exit 1; }

# The last lines of a service's log, to show why it did not start.
fail_with_log() {
  local what=$1 logfile=$2
  printf '[stack] FAILED: %s did not start; its log is %s. Last lines:\n' "$what" "$logfile" >&2
  tail -n 20 "$logfile" 2>/dev/null | sed 's/^/    /' >&2 || true
  exit 1
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for <seconds> <description> <log file> <command...>
wait_for() {
  local seconds=$1 what=$2 logfile=$3; shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail_with_log "$what (no answer after ${seconds}s)" "$logfile"
    sleep 0.2
  done
}

apt_install() {
  log "installing Debian packages: $*"
  if [[ ! -f $STACK_CACHE/.apt-updated ]] || [[ -n $(find "$STACK_CACHE/.apt-updated" -mmin +1440 2>/dev/null) ]]; then
    apt-get update -qq >&2 || die "apt-get update failed"
    mkdir -p "$STACK_CACHE" && touch "$STACK_CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$STACK_CACHE/apt.log" 2>&1 \
    || die "apt-get install $* failed"
}

# ---------------------------------------------------------------- installs
ensure_packages() {
  local missing=()
  command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server mariadb-client)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  # librdkafka is built from source by rdkafka-sys: it needs these.
  [[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
  [[ -f /usr/include/zlib.h ]] || missing+=(zlib1g-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  # The servers' TLS certificates (ensure_tls_material) and the tests' own.
  command -v openssl >/dev/null || missing+=(openssl)
  # The dashboard's browser test (dashboard/tests/browser.rs) drives headless Chromium.
  command -v chromium >/dev/null || missing+=(chromium)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
}

# build_tansu <features> <install root> <what>: once, cached in STACK_CACHE.
build_tansu() {
  local features=$1 root=$2 what=$3
  [[ -x $root/bin/tansu ]] && return
  local target=$root-target buildlog=$root-build.log
  log "building tansu $TANSU_VERSION ($what) once into $root (cached across runs; about 15 minutes)"
  mkdir -p "$STACK_CACHE"
  local started=$SECONDS
  CARGO_TARGET_DIR=$target cargo install "tansu@$TANSU_VERSION" --locked \
    --no-default-features --features "$features" --root "$root" \
    >"$buildlog" 2>&1 \
    || fail_with_log "tansu build ($what)" "$buildlog"
  rm -rf "$target"
  log "built tansu ($what) in $((SECONDS - started)) s"
}

ensure_tansu() {
  build_tansu dynostore "$TANSU_ROOT" "in-memory storage"
  build_tansu libsql "$TANSU_LIBSQL_ROOT" "libsql storage"
}

ensure_tools() {
  # The registry fixture and the migration runner are this repo's own binaries.
  log "building the stack's tools (registry fixture, migration runner)"
  (cd "$ROOT" && cargo build -q -p e2e --bin registry-fixture --bin migrate) \
    || die "cargo build -p e2e failed (see the errors above)"
}

# ---------------------------------------------------------------- MariaDB
mysql_dir=$STACK_DIR/mariadb
mysql_admin() { mariadb --no-defaults --socket="$mysql_dir/mysqld.sock" -uroot "$@"; }

start_mariadb() {
  if pid_alive "$mysql_dir/mysqld.pid" && mysql_admin -e 'SELECT 1' >/dev/null 2>&1; then
    log "MariaDB already running on 127.0.0.1:$MYSQL_PORT"; return
  fi
  mkdir -p "$mysql_dir/binlog"
  # ROW binlog with FULL image and FULL metadata is what a Debezium-style
  # connector needs: column names and signedness come from the table map.
  cat >"$mysql_dir/my.cnf" <<EOF
[mysqld]
user=root
datadir=$mysql_dir/data
socket=$mysql_dir/mysqld.sock
pid-file=$mysql_dir/mysqld.pid
log-error=$mysql_dir/mariadb.log
port=$MYSQL_PORT
bind-address=127.0.0.1
server_id=223344
log_bin=$mysql_dir/binlog/mysql-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
default_time_zone=+00:00
character_set_server=utf8mb4
collation_server=utf8mb4_unicode_ci
max_allowed_packet=256M
max_connections=500
innodb_buffer_pool_size=256M
innodb_log_file_size=256M
EOF
  if [[ ! -d $mysql_dir/data/mysql ]]; then
    log "initialising MariaDB in $mysql_dir"
    mariadb-install-db --defaults-file="$mysql_dir/my.cnf" --auth-root-authentication-method=normal \
      --skip-test-db >"$mysql_dir/install.log" 2>&1 || fail_with_log "mariadb-install-db" "$mysql_dir/install.log"
  fi
  log "starting MariaDB on 127.0.0.1:$MYSQL_PORT"
  setsid nohup mariadbd --defaults-file="$mysql_dir/my.cnf" >>"$mysql_dir/mariadb.log" 2>&1 </dev/null &
  wait_for 60 "MariaDB" "$mysql_dir/mariadb.log" mysql_admin -e 'SELECT 1'
  # TCP clients from 127.0.0.1 are root@127.0.0.1, a different account from the socket's root@localhost.
  mysql_admin -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  # Anonymous accounts would shadow 'cdc'@'%' for clients coming from localhost.
  mysql_admin -N -e "SELECT CONCAT('DROP USER \\'\\'@\\'', host, '\\';') FROM mysql.user WHERE user = ''" \
    | mysql_admin
}

# ---------------------------------------------------------------- MySQL (Oracle's server, in a chroot)
# Debian 12 ships no MySQL server, but Debian sid packages Oracle's (9.x). A
# minimal sid root made once with debootstrap runs it from a chroot on loopback;
# nothing is mounted into the chroot. The root is cached in STACK_CACHE (about
# 730 MB, ~1.5 min to build); the instance's datadir lives inside it, under
# /srv/shop-demo-<port>, because mysqld only sees the chroot.
MYSQL_ROOT_DIR=$STACK_CACHE/mysql-sid-root
MYSQL_MIRROR=${STACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
oracle_inst=/srv/shop-demo-$ORACLE_MYSQL_PORT   # as seen inside the chroot
oracle_dir=$MYSQL_ROOT_DIR$oracle_inst          # the same, from the host
oracle_url=mysql://root:$ORACLE_MYSQL_ROOT_PASSWORD@127.0.0.1:$ORACLE_MYSQL_PORT/

in_mysql_root() {
  chroot "$MYSQL_ROOT_DIR" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TZ=UTC LANG=C.UTF-8 HOME=/root "$@"
}
oracle_admin() { in_mysql_root mysql --defaults-extra-file="$oracle_inst/root.cnf" "$@"; }
# A live mysqld from the pid file that really runs in our chroot (not a recycled pid).
oracle_running() {
  local pid
  [[ -f $oracle_dir/mysqld.pid ]] && pid=$(cat "$oracle_dir/mysqld.pid") && kill -0 "$pid" 2>/dev/null \
    && [[ $(readlink "/proc/$pid/root") == "$(readlink -f "$MYSQL_ROOT_DIR")" ]]
}

ensure_mysql_root() {
  if [[ -x $MYSQL_ROOT_DIR/usr/sbin/mysqld && -x $MYSQL_ROOT_DIR/usr/bin/mysql ]]; then return; fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  if [[ ! -f $MYSQL_ROOT_DIR/.bootstrapped ]]; then
    if [[ -e $MYSQL_ROOT_DIR ]]; then
      # an interrupted earlier run; never delete through a mount point
      grep -q " $MYSQL_ROOT_DIR" /proc/mounts && die "$MYSQL_ROOT_DIR has something mounted under it; unmount it first"
      rm -rf --one-file-system "$MYSQL_ROOT_DIR"
    fi
    log "debootstrapping a minimal Debian sid root for MySQL into $MYSQL_ROOT_DIR (once; about a minute)"
    mkdir -p "$STACK_CACHE"
    debootstrap --variant=minbase sid "$MYSQL_ROOT_DIR" "$MYSQL_MIRROR" >"$STACK_CACHE/mysql-debootstrap.log" 2>&1 \
      || fail_with_log "debootstrap of the MySQL root" "$STACK_CACHE/mysql-debootstrap.log"
    # No service may start inside the chroot; the mirror's sid Release file can
    # be past its Valid-Until date (a frozen snapshot), so ignore that date.
    printf '#!/bin/sh\nexit 101\n' >"$MYSQL_ROOT_DIR/usr/sbin/policy-rc.d"
    chmod +x "$MYSQL_ROOT_DIR/usr/sbin/policy-rc.d"
    echo 'Acquire::Check-Valid-Until "false";' >"$MYSQL_ROOT_DIR/etc/apt/apt.conf.d/99no-valid-until"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
      >"$MYSQL_ROOT_DIR/etc/apt/apt.conf.d/99no-recommends"
    touch "$MYSQL_ROOT_DIR/.bootstrapped"
  fi
  log "installing mysql-server-core and mysql-client-core into the chroot"
  { in_mysql_root apt-get update -q && in_mysql_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q mysql-server-core mysql-client-core && in_mysql_root apt-get clean; } \
    >"$STACK_CACHE/mysql-apt.log" 2>&1 || fail_with_log "apt-get install in the MySQL chroot" "$STACK_CACHE/mysql-apt.log"
}

# TLS material of the stack's own, as a production server has it, in dir $1
# for server $2: a CA, a server certificate it signed that names 127.0.0.1 (so
# that verifying modes, which check the name, can be tested; MySQL's self-made
# certificate names no host) and a client certificate of the same CA with its
# key in a PKCS#12 file (password $3). Made once per state directory.
ensure_tls_material() {
  local d=$1 server=$2 password=$3
  [[ -s $d/client.p12 && -s $d/server-cert.pem ]] && return
  log "making the $server TLS certificates (the stack's own CA) in $d"
  rm -rf --one-file-system "$d"; mkdir -p "$d"
  ( cd "$d" && umask 077 \
    && openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=shop-demo stack CA" \
         -keyout ca-key.pem -out ca.pem \
    && openssl req -newkey rsa:2048 -nodes -subj "/CN=shop-demo $server" -keyout server-key.pem -out server.csr \
    && printf 'subjectAltName=IP:127.0.0.1\n' >server.ext \
    && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
         -extfile server.ext -out server-cert.pem \
    && openssl req -newkey rsa:2048 -nodes -subj "/CN=client" -keyout client-key.pem -out client.csr \
    && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
         -out client-cert.pem \
    && openssl pkcs12 -export -in client-cert.pem -inkey client-key.pem \
         -passout "pass:$password" -out client.p12 \
  ) >"$d.log" 2>&1 || fail_with_log "making the $server TLS certificates" "$d.log"
}
# Inside the chroot, where mysqld can read it.
ensure_oracle_tls() { ensure_tls_material "$oracle_dir/tls" MySQL "$ORACLE_MYSQL_KEYSTORE_PASSWORD"; }

start_oracle_mysql() {
  if oracle_running && oracle_admin -e 'SELECT 1' >/dev/null 2>&1; then
    log "MySQL $(oracle_admin -N -e 'SELECT VERSION()') already running on 127.0.0.1:$ORACLE_MYSQL_PORT"
    # A server started by an older version of this script: load the stack's certificates.
    ensure_oracle_tls
    if [[ $(oracle_admin -N -e 'SELECT @@GLOBAL.ssl_ca') != "$oracle_inst/tls/ca.pem" ]]; then
      log "loading the stack's TLS certificates into the running MySQL"
      oracle_admin -e "SET GLOBAL ssl_ca='$oracle_inst/tls/ca.pem';
        SET GLOBAL ssl_cert='$oracle_inst/tls/server-cert.pem';
        SET GLOBAL ssl_key='$oracle_inst/tls/server-key.pem'; ALTER INSTANCE RELOAD TLS" \
        || fail_with_log "MySQL TLS reload" "$oracle_dir/error.log"
    fi
    return
  fi
  ensure_mysql_root
  mkdir -p "$oracle_dir"
  ensure_oracle_tls
  mkdir -p "$oracle_dir"/{binlog,tmp,files}
  chmod 700 "$oracle_dir/files"
  # The compose demo's binlog settings (docker-compose.yml, service mysql).
  cat >"$oracle_dir/my.cnf" <<CNF
[mysqld]
user=root
datadir=$oracle_inst/data
socket=$oracle_inst/mysqld.sock
pid-file=$oracle_inst/mysqld.pid
log-error=$oracle_inst/error.log
tmpdir=$oracle_inst/tmp
secure-file-priv=$oracle_inst/files
port=$ORACLE_MYSQL_PORT
bind-address=127.0.0.1
# the X protocol would otherwise listen on *:33060
mysqlx=OFF
skip-name-resolve
server-id=223345
log-bin=$oracle_inst/binlog/mysql-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
gtid_mode=ON
enforce_gtid_consistency=ON
default-time-zone=+00:00
max_allowed_packet=256M
max_connections=500
innodb_buffer_pool_size=256M
innodb_redo_log_capacity=256M
# performance_schema costs ~400 MB of RSS and no test reads it
performance_schema=OFF
# the stack's own CA and certificates (ensure_oracle_tls)
ssl_ca=$oracle_inst/tls/ca.pem
ssl_cert=$oracle_inst/tls/server-cert.pem
ssl_key=$oracle_inst/tls/server-key.pem
CNF
  ( umask 077; printf '[client]\nuser=root\npassword=%s\nsocket=%s\n' "$ORACLE_MYSQL_ROOT_PASSWORD" \
      "$oracle_inst/mysqld.sock" >"$oracle_dir/root.cnf" )
  local fresh=0
  if [[ ! -d $oracle_dir/data/mysql ]]; then
    log "initialising MySQL in $oracle_dir"
    rm -rf --one-file-system "$oracle_dir/data" "$oracle_dir/binlog"; mkdir -p "$oracle_dir/binlog"
    : >"$oracle_dir/error.log"
    in_mysql_root mysqld --defaults-file="$oracle_inst/my.cnf" --initialize-insecure \
      || fail_with_log "mysqld --initialize-insecure" "$oracle_dir/error.log"
    fresh=1
  fi
  port_open "$ORACLE_MYSQL_PORT" && die "127.0.0.1:$ORACLE_MYSQL_PORT is taken by another process; set STACK_ORACLE_MYSQL_PORT"
  log "starting MySQL on 127.0.0.1:$ORACLE_MYSQL_PORT (chroot $MYSQL_ROOT_DIR)"
  # --daemonize returns once the server is ready; setsid detaches it from this shell.
  setsid chroot "$MYSQL_ROOT_DIR" env -i PATH=/usr/sbin:/usr/bin TZ=UTC LANG=C.UTF-8 \
      /usr/sbin/mysqld --defaults-file="$oracle_inst/my.cnf" --daemonize >"$oracle_dir/stdout.log" 2>&1 </dev/null \
    || fail_with_log "MySQL" "$oracle_dir/error.log"
  if ((fresh)); then
    # Not binlogged (as the mysql Docker image does): a fresh binlog holds only test traffic.
    in_mysql_root mysql --socket="$oracle_inst/mysqld.sock" -uroot -e "SET SESSION sql_log_bin=0;
      ALTER USER 'root'@'localhost' IDENTIFIED BY '$ORACLE_MYSQL_ROOT_PASSWORD';
      CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$ORACLE_MYSQL_ROOT_PASSWORD';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;" \
      || fail_with_log "MySQL root account" "$oracle_dir/error.log"
  fi
  wait_for 60 "MySQL" "$oracle_dir/error.log" oracle_admin -e 'SELECT 1'
}

# ---------------------------------------------------------------- PostgreSQL
pg_dir=$STACK_DIR/postgres
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
as_postgres() { runuser -u postgres -- "$@"; }

pg_admin() { as_postgres "$(pg_bin)/psql" -h "$pg_dir" -p "$PG_PORT" -U postgres -X -q "$@"; }

# TLS as a hosted Postgres offers it (plain connections still accepted): the
# stack's own CA and a certificate naming 127.0.0.1, for sslmode tests. Set
# with ALTER SYSTEM and a reload, so a running server takes it too.
ensure_postgres_tls() {
  local d=$pg_dir/tls
  ensure_tls_material "$d" PostgreSQL unused
  chown -R postgres:postgres "$d"
  if [[ $(pg_admin -At -c 'SHOW ssl_cert_file') != "$d/server-cert.pem" ]]; then
    log "turning on TLS in PostgreSQL"
    pg_admin -c "ALTER SYSTEM SET ssl_cert_file = '$d/server-cert.pem'" \
      -c "ALTER SYSTEM SET ssl_key_file = '$d/server-key.pem'" -c "ALTER SYSTEM SET ssl = on" \
      -c "SELECT pg_reload_conf()" >/dev/null || fail_with_log "PostgreSQL TLS" "$pg_dir/postgres.log"
  fi
  ensure_postgres_cert_login
}

# Client-certificate authentication (pg_hba's `cert` method) for one role,
# shop_cert, as a hosted Postgres that asks for client certificates has it:
# the stack CA's client certificate (CN=client) maps to it in pg_ident, over
# TLS only. Other roles log in as before.
ensure_postgres_cert_login() {
  local d=$pg_dir/tls data=$pg_dir/data changed=
  if [[ $(pg_admin -At -c 'SHOW ssl_ca_file') != "$d/ca.pem" ]]; then
    pg_admin -c "ALTER SYSTEM SET ssl_ca_file = '$d/ca.pem'" >/dev/null \
      || fail_with_log "PostgreSQL ssl_ca_file" "$pg_dir/postgres.log"
    changed=1
  fi
  if ! grep -q '^hostssl all shop_cert ' "$data/pg_hba.conf"; then
    log "allowing client-certificate logins in PostgreSQL (role shop_cert)"
    { printf 'hostssl all shop_cert 127.0.0.1/32 cert map=stack\nhost all shop_cert 127.0.0.1/32 reject\n'
      cat "$data/pg_hba.conf"; } >"$data/pg_hba.conf.tmp"
    chown postgres:postgres "$data/pg_hba.conf.tmp"; chmod 600 "$data/pg_hba.conf.tmp"
    mv "$data/pg_hba.conf.tmp" "$data/pg_hba.conf"
    changed=1
  fi
  if ! grep -q '^stack ' "$data/pg_ident.conf"; then
    printf 'stack client shop_cert\n' >>"$data/pg_ident.conf"
    changed=1
  fi
  if [[ -z $(pg_admin -At -c "SELECT 1 FROM pg_roles WHERE rolname = 'shop_cert'") ]]; then
    pg_admin -c "CREATE ROLE shop_cert LOGIN" >/dev/null || fail_with_log "role shop_cert" "$pg_dir/postgres.log"
  fi
  if [[ -n $changed ]]; then
    pg_admin -c "SELECT pg_reload_conf()" >/dev/null || fail_with_log "PostgreSQL reload" "$pg_dir/postgres.log"
  fi
}

start_postgres() {
  local bin; bin=$(pg_bin)
  if as_postgres "$bin/pg_ctl" -D "$pg_dir/data" status >/dev/null 2>&1; then
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT"; ensure_postgres_tls; return
  fi
  # initdb and postgres refuse to run as root: the cluster belongs to the postgres user.
  mkdir -p "$pg_dir"; chown postgres:postgres "$pg_dir"; chmod 700 "$pg_dir"
  if [[ ! -f $pg_dir/data/PG_VERSION ]]; then
    log "initialising PostgreSQL in $pg_dir"
    as_postgres "$bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      >"$pg_dir/initdb.log" 2>&1 || fail_with_log "initdb" "$pg_dir/initdb.log"
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_postgres "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start \
    >/dev/null 2>&1 || fail_with_log "PostgreSQL" "$pg_dir/postgres.log"
  ensure_postgres_tls
}

# ---------------------------------------------------------------- tansu
kafka_dir=$STACK_DIR/kafka

start_kafka() {
  if pid_alive "$kafka_dir/tansu.pid" && port_open "$KAFKA_PORT"; then
    log "tansu already running on 127.0.0.1:$KAFKA_PORT"; return
  fi
  mkdir -p "$kafka_dir"
  log "starting tansu (Kafka protocol, in-memory storage) on 127.0.0.1:$KAFKA_PORT"
  setsid nohup "$TANSU" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    >"$kafka_dir/tansu.log" 2>&1 </dev/null &
  echo $! >"$kafka_dir/tansu.pid"
  wait_for 30 "tansu" "$kafka_dir/tansu.log" port_open "$KAFKA_PORT"
}

# The persistent broker: libsql storage in one file. tansu opens the URL's
# path relative to its working directory, hence the cd.
kafka_persistent_dir=$STACK_DIR/kafka-persistent

start_kafka_persistent() {
  if pid_alive "$kafka_persistent_dir/tansu.pid" && port_open "$KAFKA_PERSISTENT_PORT"; then
    log "tansu (libsql) already running on 127.0.0.1:$KAFKA_PERSISTENT_PORT"; return
  fi
  port_open "$KAFKA_PERSISTENT_PORT" \
    && die "127.0.0.1:$KAFKA_PERSISTENT_PORT is taken by another process; set STACK_KAFKA_PERSISTENT_PORT"
  mkdir -p "$kafka_persistent_dir"
  log "starting tansu (Kafka protocol, libsql storage in $kafka_persistent_dir/tansu.db) on 127.0.0.1:$KAFKA_PERSISTENT_PORT"
  (cd "$kafka_persistent_dir" && exec setsid nohup "$TANSU_LIBSQL" broker --storage-engine sqlite:///tansu.db \
    --listener-url "tcp://127.0.0.1:$KAFKA_PERSISTENT_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PERSISTENT_PORT" \
    >>"$kafka_persistent_dir/tansu.log" 2>&1 </dev/null) &
  echo $! >"$kafka_persistent_dir/tansu.pid"
  wait_for 30 "tansu (libsql)" "$kafka_persistent_dir/tansu.log" port_open "$KAFKA_PERSISTENT_PORT"
}

# ---------------------------------------------------------------- registry
registry_dir=$STACK_DIR/registry

start_registry() {
  if pid_alive "$registry_dir/registry.pid" && port_open "$REGISTRY_PORT"; then
    log "schema registry fixture already running on 127.0.0.1:$REGISTRY_PORT"; return
  fi
  mkdir -p "$registry_dir"
  log "starting the schema registry test fixture on 127.0.0.1:$REGISTRY_PORT"
  setsid nohup "$BIN_DIR/registry-fixture" --listen "127.0.0.1:$REGISTRY_PORT" \
    >"$registry_dir/registry.log" 2>&1 </dev/null &
  echo $! >"$registry_dir/registry.pid"
  wait_for 30 "schema registry fixture" "$registry_dir/registry.log" \
    curl -sf "http://127.0.0.1:$REGISTRY_PORT/subjects"
}

# ---------------------------------------------------------------- migrations, env
run_migrate() {
  "$BIN_DIR/migrate" \
    --mysql-url "mysql://root@127.0.0.1:$MYSQL_PORT/" \
    --postgres-url "postgres://postgres@127.0.0.1:$PG_PORT/analytics" \
    >"$STACK_DIR/migrate.log" 2>&1
}

apply_migrations() {
  log "applying migrations (MySQL shop schema, Postgres analytics schema)"
  # The real MySQL gets the shop schema and the connector account too (there
  # `cdc` is a caching_sha2_password account, 9.x's only password plugin).
  env -u POSTGRES_URL "$BIN_DIR/migrate" --mysql-url "$oracle_url" >"$STACK_DIR/migrate-oracle.log" 2>&1 \
    || fail_with_log "migrations on MySQL" "$STACK_DIR/migrate-oracle.log"
  run_migrate && return
  # The local stack's databases are disposable: when an applied migration was
  # edited since (refinery refuses divergent history), start them afresh.
  log "migrations diverge from what this stack applied earlier; recreating the shop and analytics databases"
  mysql_admin -e "DROP DATABASE IF EXISTS shop; DROP DATABASE IF EXISTS schema_migrations;"
  as_postgres "$(pg_bin)/psql" -h "$pg_dir" -p "$PG_PORT" -U postgres -q -c "DROP DATABASE IF EXISTS analytics WITH (FORCE)" >/dev/null
  run_migrate || fail_with_log "migrations" "$STACK_DIR/migrate.log"
}

write_env() {
  mkdir -p "$(dirname "$ENV_FILE")"
  cat >"$ENV_FILE.tmp" <<EOF
# Written by scripts/stack.sh up: the local stack's endpoints. Sourced by make and tests.
MYSQL_HOST=127.0.0.1
MYSQL_PORT=$MYSQL_PORT
MYSQL_USER=root
MYSQL_PASSWORD=
MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT/
CDC_MYSQL_USER=$CDC_USER
CDC_MYSQL_PASSWORD=$CDC_PASSWORD
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=$PG_PORT
POSTGRES_USER=postgres
POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/analytics
# The CA that signed its TLS certificate (which names 127.0.0.1).
POSTGRES_SSL_CA=$pg_dir/tls/ca.pem
# A role that logs in with a client certificate only (pg_hba's cert method).
POSTGRES_CERT_USER=shop_cert
POSTGRES_SSL_CLIENT_CERT=$pg_dir/tls/client-cert.pem
POSTGRES_SSL_CLIENT_KEY=$pg_dir/tls/client-key.pem
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
STACK_DIR=$STACK_DIR
KAFKA_BROKER_BIN=$TANSU
# The persistent broker (libsql storage, kept across restarts) and its binary,
# which tests that restart a broker start privately.
KAFKA_PERSISTENT_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PERSISTENT_PORT
KAFKA_PERSISTENT_BROKER_BIN=$TANSU_LIBSQL
# analytics on the local broker (README, "The local broker"), inherited by
# make demo and make bench; tests set their own. tansu answers a fetch only
# when fetch.wait.max.ms runs out (hold it 25 ms, not 500), and with memory
# storage answers a fetch from inside a record batch with the next batch
# (restart each partition up to 10,000 records early).
ANALYTICS_FETCH_WAIT_MAX_MS=25
ANALYTICS_SEEK_BACK_RECORDS=10000
# The real MySQL (Oracle's server, from Debian sid, in a chroot).
ORACLE_MYSQL_HOST=127.0.0.1
ORACLE_MYSQL_PORT=$ORACLE_MYSQL_PORT
ORACLE_MYSQL_USER=root
ORACLE_MYSQL_PASSWORD=$ORACLE_MYSQL_ROOT_PASSWORD
ORACLE_MYSQL_URL=$oracle_url
ORACLE_MYSQL_CDC_USER=$CDC_USER
ORACLE_MYSQL_CDC_PASSWORD=$CDC_PASSWORD
ORACLE_MYSQL_CHROOT=$MYSQL_ROOT_DIR
# Its TLS: the CA that signed its certificate (which names 127.0.0.1) and a
# client certificate of the same CA (PKCS#12).
ORACLE_MYSQL_SSL_CA=$oracle_dir/tls/ca.pem
ORACLE_MYSQL_SSL_KEYSTORE=$oracle_dir/tls/client.p12
ORACLE_MYSQL_SSL_KEYSTORE_PASSWORD=$ORACLE_MYSQL_KEYSTORE_PASSWORD
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  log "endpoints written to $ENV_FILE"
}

# ---------------------------------------------------------------- commands
up() {
  command -v curl >/dev/null || apt_install curl
  ensure_packages
  mkdir -p "$STACK_DIR"
  ensure_tansu
  ensure_tools
  start_mariadb
  start_oracle_mysql
  start_postgres
  start_kafka
  start_kafka_persistent
  start_registry
  apply_migrations
  write_env
  status
}

stop_pidfile() {
  local name=$1 pidfile=$2
  if pid_alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$pidfile"
}

down() {
  stop_pidfile "schema registry fixture" "$registry_dir/registry.pid"
  stop_pidfile tansu "$kafka_dir/tansu.pid"
  stop_pidfile "tansu (libsql)" "$kafka_persistent_dir/tansu.pid"
  stop_pidfile MariaDB "$mysql_dir/mysqld.pid"
  # by the pid file's pid, once verified to be our chrooted mysqld
  if oracle_running; then stop_pidfile MySQL "$oracle_dir/mysqld.pid"; fi
  if [[ -f $pg_dir/data/PG_VERSION ]]; then
    as_postgres "$(pg_bin)/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 && log "stopped PostgreSQL" || true
  fi
  rm -f "$ENV_FILE"
}

status() {
  local ok=0
  line() { printf '%-24s %-5s %s\n' "$1" "$2" "$3"; }
  if pid_alive "$mysql_dir/mysqld.pid" && port_open "$MYSQL_PORT"; then line MariaDB up "127.0.0.1:$MYSQL_PORT  log $mysql_dir/mariadb.log"; else line MariaDB down "log $mysql_dir/mariadb.log"; ok=1; fi
  if oracle_running && port_open "$ORACLE_MYSQL_PORT"; then line MySQL up "127.0.0.1:$ORACLE_MYSQL_PORT  log $oracle_dir/error.log"; else line MySQL down "log $oracle_dir/error.log"; ok=1; fi
  if port_open "$PG_PORT"; then line PostgreSQL up "127.0.0.1:$PG_PORT  log $pg_dir/postgres.log"; else line PostgreSQL down "log $pg_dir/postgres.log"; ok=1; fi
  if pid_alive "$kafka_dir/tansu.pid" && port_open "$KAFKA_PORT"; then line "Kafka (tansu)" up "127.0.0.1:$KAFKA_PORT  log $kafka_dir/tansu.log"; else line "Kafka (tansu)" down "log $kafka_dir/tansu.log"; ok=1; fi
  if pid_alive "$kafka_persistent_dir/tansu.pid" && port_open "$KAFKA_PERSISTENT_PORT"; then line "Kafka (tansu, libsql)" up "127.0.0.1:$KAFKA_PERSISTENT_PORT  data $kafka_persistent_dir/tansu.db  log $kafka_persistent_dir/tansu.log"; else line "Kafka (tansu, libsql)" down "log $kafka_persistent_dir/tansu.log"; ok=1; fi
  if pid_alive "$registry_dir/registry.pid" && port_open "$REGISTRY_PORT"; then line "Schema registry fixture" up "http://127.0.0.1:$REGISTRY_PORT  log $registry_dir/registry.log"; else line "Schema registry fixture" down "log $registry_dir/registry.log"; ok=1; fi
  return $ok
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
