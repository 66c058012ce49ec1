#!/usr/bin/env python3
"""End-to-end freshness: MySQL commit to summary row visible in Postgres.

    freshness.py --release DIR --port P --kafka HOST:PORT --registry URL
                 --pg-host H --pg-port P --workdir DIR
                 [--probe-seconds S] [--probe-interval-ms MS] [--timeout S]

How: a fresh MySQL database gets the shop tables (migrations/mysql/V2, the
`shop.` qualifier replaced, as bench.sh's backlog does) and a fresh Postgres
database is created. The three release binaries then run as they would in the
demo, on unique names (topic prefix, pageviews and dead-letter topics,
consumer group, replica server id, metrics ports), so nothing is shared with
other runs or tests:

    loadgen -> MySQL <db> -> cdc -> Kafka <prefix>.<db>.* --+
    loadgen -> Kafka <pageviews topic> ---------------------+-> analytics -> Postgres

Once analytics' `purchases` mirror has rows (the pipeline flows), for each load
level (the demo's 10 purchases/s + 750 pageviews/s, then 10x), loadgen runs at
that rate while a probe writer commits one purchase every --probe-interval-ms
from its own connection and notes the time right after COMMIT returns; a
poller asks Postgres every ~2 ms which probes are visible yet. Latency = first
time seen - commit time, both from this process's monotonic clock, so the
figure includes the poll interval (<= ~2 ms plus a query round trip).

The mirror row stands for the summary: analytics writes a batch's mirror rows,
its aggregate deltas (agg_item_purchases, the table under purchase_summary) and
its Kafka offsets in ONE Postgres transaction (analytics/src/store.rs, `apply`:
apply_purchases then tx.commit()), so when the probe's mirror row is visible,
the summary rows that include it are too. Polling the mirror by primary key
is what makes 2 ms polling cheap.

Probes run concurrently with the poller (a slow one does not delay the next),
so the offered probe rate stays fixed whatever the latency.

The processes inherit this script's environment under the variables set here,
so e.g. ANALYTICS_BATCH_LINGER_MS=20 measures another batch linger. Known
floor on the local stack: tansu answers a fetch only when fetch.wait.max.ms
runs out (librdkafka's default: 500 ms), not when data arrives, so a consumer
on defaults adds ~0-500 ms (analytics sets 25 ms: ANALYTICS_FETCH_WAIT_MAX_MS);
cdc's producer lingers 20 ms; analytics commits a batch as soon as the
previous one is done (its batch linger only bounds the wait behind a busy
commit).

CPU seconds (utime+stime of /proc/<pid>/stat) of cdc and analytics are taken
over each probe window; peak RSS is their VmHWM at the window's end.
Analytics' CPU per 1,000 records divides its window CPU by the records it
folded meanwhile (`analytics_records_total`, both streams, from its metrics
endpoint): the steady-state counterpart of the drain's pageviews/s.

Prints `key=value` lines on stdout (`<level>_p50_ms`, ...); logs go to stderr
and <workdir>/{cdc,analytics,loadgen-*}.log. Everything it created (databases,
topics, processes) is removed on exit, including on SIGTERM.
"""

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from measure import percentile, proc_usage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOP_DDL = os.path.join(ROOT, "migrations", "mysql", "V2__shop_tables.sql")
# (label, purchases/s, pageviews/s): the demo's rates, then 10x.
LEVELS = (("demo", 10, 750), ("x10", 100, 7500))


def log(msg: str) -> None:
    print(f"freshness: {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    """One line saying why the measurement could not be made."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pipeline:
    """The processes and what they were given; stops and removes everything."""

    def __init__(self, a):
        self.a = a
        stamp = f"{int(time.time())}_{os.getpid()}"
        self.db = f"fresh_{stamp}"
        self.prefix = f"fresh{stamp}"
        self.pageviews_topic = f"{self.prefix}.pageviews"
        self.dead_letter_topic = f"{self.prefix}.dead-letters"
        # BENCH_POSTGRES_SSLMODE: see scripts/bench.sh (disable by default).
        sslmode = os.environ.get("BENCH_POSTGRES_SSLMODE") or "disable"
        self.pg_url = f"postgres://{a.pg_user}@{a.pg_host}:{a.pg_port}/{self.db}?sslmode={sslmode}"
        self.procs = {}  # name -> (Popen, log file)
        self.mysql_created = False
        self.pg_created = False

    # ---------------------------------------------------------- databases
    def mysql(self, database=None, **kw):
        import pymysql

        return pymysql.connect(host=self.a.host, port=self.a.port, user=self.a.user,
                               password=self.a.password, database=database, **kw)

    def pg_admin(self):
        import psycopg

        return psycopg.connect(host=self.a.pg_host, port=self.a.pg_port, user=self.a.pg_user,
                               dbname="postgres", autocommit=True)

    def create_databases(self) -> None:
        from pymysql.constants import CLIENT

        with open(SHOP_DDL) as f:
            ddl = f.read().replace("shop.", f"`{self.db}`.")
        conn = self.mysql(client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.db}`")
                self.mysql_created = True
                cur.execute(ddl)
                while cur.nextset():
                    pass
        finally:
            conn.close()
        with self.pg_admin() as pg:
            pg.execute(f'CREATE DATABASE "{self.db}"')
            self.pg_created = True

    # ---------------------------------------------------------- processes
    def start(self, name: str, argv: list, env: dict) -> None:
        full = dict(os.environ)
        full.update(env)
        full.setdefault("RUST_LOG", "info")
        logf = open(os.path.join(self.a.workdir, f"{name}.log"), "w")
        self.procs[name] = (subprocess.Popen(argv, env=full, stdout=logf, stderr=subprocess.STDOUT), logf)

    def start_cdc(self) -> None:
        self.start("cdc", [os.path.join(self.a.release, "cdc")], {
            "CONNECTOR_NAME": self.prefix,
            "DATABASE_HOSTNAME": self.a.host,
            "DATABASE_PORT": str(self.a.port),
            "DATABASE_USER": self.a.cdc_user or self.a.user,
            "DATABASE_PASSWORD": self.a.cdc_password if self.a.cdc_user else self.a.password,
            # Unique among the server's replicas (cdc_drain.py uses 200000+).
            "DATABASE_SERVER_ID": str(300000 + os.getpid() % 100000),
            "TOPIC_PREFIX": self.prefix,
            "DATABASE_INCLUDE_LIST": self.db,
            "TIME_PRECISION_MODE": "connect",
            # A file keeps the offsets out of Kafka: one topic less to clean up.
            "OFFSET_STORAGE": "file",
            "OFFSET_STORAGE_FILE_FILENAME": os.path.join(self.a.workdir, "cdc-offsets.json"),
            "KAFKA_BOOTSTRAP_SERVERS": self.a.kafka,
            "SCHEMA_REGISTRY_URL": self.a.registry,
            "METRICS_ADDR": f"127.0.0.1:{free_port()}",
        })

    def start_analytics(self) -> None:
        topic = f"{self.prefix}.{self.db}"
        self.analytics_metrics = f"127.0.0.1:{free_port()}"
        self.start("analytics", [os.path.join(self.a.release, "analytics"), "run"], {
            "POSTGRES_URL": self.pg_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.a.kafka,
            "SCHEMA_REGISTRY_URL": self.a.registry,
            "ANALYTICS_USERS_TOPIC": f"{topic}.users",
            "ANALYTICS_ITEMS_TOPIC": f"{topic}.items",
            "ANALYTICS_PURCHASES_TOPIC": f"{topic}.purchases",
            "ANALYTICS_PAGEVIEWS_TOPIC": self.pageviews_topic,
            "ANALYTICS_DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "ANALYTICS_GROUP_ID": self.prefix,
            "METRICS_ADDR": self.analytics_metrics,
        })

    def start_loadgen(self, label: str, purchases: int, pageviews: int) -> None:
        url = f"mysql://{self.a.user}{':' + self.a.password if self.a.password else ''}@{self.a.host}:{self.a.port}/"
        self.start(f"loadgen-{label}", [
            os.path.join(self.a.release, "loadgen"), "--database", self.db,
            "--pageviews-topic", self.pageviews_topic, "--purchases-per-sec", str(purchases),
            "--pageviews-per-sec", str(pageviews), "--seed", "1",
        ], {
            "MYSQL_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": self.a.kafka,
            "METRICS_ADDR": f"127.0.0.1:{free_port()}",
        })

    def analytics_records(self) -> int:
        """Records analytics has folded so far (both streams), from its
        Prometheus endpoint: the denominator of its CPU per 1,000 records."""
        with urllib.request.urlopen(f"http://{self.analytics_metrics}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("analytics_records_total"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def check_alive(self) -> None:
        for name, (p, logf) in self.procs.items():
            if p.poll() is not None:
                raise Failed(f"{name} exited with status {p.returncode}; see {logf.name}")

    def pid(self, name: str) -> int:
        return self.procs[name][0].pid

    def stop(self, name: str) -> None:
        p, logf = self.procs.pop(name)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        logf.close()

    # ---------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        # Loadgen first, so the others do not chase a moving stream.
        for name in sorted(self.procs, key=lambda n: not n.startswith("loadgen")):
            self.stop(name)
        if self.mysql_created:
            try:
                conn = self.mysql(autocommit=True)
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{self.db}`")
                conn.close()
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the figures
                log(f"could not drop MySQL database {self.db}: {e}")
        if self.pg_created:
            try:
                with self.pg_admin() as pg:
                    pg.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            except Exception as e:  # noqa: BLE001
                log(f"could not drop Postgres database {self.db}: {e}")
        self.delete_topics()

    def delete_topics(self) -> None:
        """Best effort: every topic named after this run's prefix."""
        try:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": self.a.kafka})
            names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix)]
            if names:
                for f in admin.delete_topics(names, operation_timeout=10).values():
                    f.result(timeout=15)
        except Exception as e:  # noqa: BLE001
            log(f"could not delete topics {self.prefix}*: {e}")


def wait_flowing(pipe: Pipeline, pg, deadline: float) -> None:
    """Until analytics' purchases mirror has rows: every stage is up."""
    import psycopg

    while True:
        pipe.check_alive()
        try:
            if pg.execute("SELECT 1 FROM purchases LIMIT 1").fetchone():
                return
        except psycopg.errors.UndefinedTable:
            pass  # analytics has not migrated its database yet
        if time.monotonic() > deadline:
            raise Failed("analytics' purchases mirror stayed empty (pipeline not flowing); "
                         f"see the logs in {pipe.a.workdir}")
        time.sleep(0.2)


def probe(pipe: Pipeline, pg, seconds: float, interval: float, rng: random.Random) -> dict:
    """Commits a purchase every `interval` s for `seconds`; times each to Postgres."""
    conn = pipe.mysql(database=pipe.db, autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM users ORDER BY id LIMIT 1000")
        users = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT id, price FROM items ORDER BY id LIMIT 1000")
        items = cur.fetchall()
    conn.commit()
    if not users or not items:
        raise Failed("the shop database has no seeded users or items")
    total = int(seconds / interval)
    pending = {}  # id -> commit time, shared with the writer
    lock = threading.Lock()
    errors = []
    done = threading.Event()

    def writer():
        try:
            cur = conn.cursor()
            start = time.monotonic()
            for i in range(total):
                # Fixed schedule, so a slow commit does not lower the probe rate.
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                item_id, price = rng.choice(items)
                cur.execute(
                    "INSERT INTO purchases (user_id, item_id, status, quantity, purchase_price) "
                    "VALUES (%s, %s, 1, 1, %s)", (rng.choice(users), item_id, price))
                ident = cur.lastrowid
                conn.commit()
                committed = time.monotonic()
                with lock:
                    pending[ident] = committed
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    latencies = []
    # Probes still invisible 30 s after the last commit count as missing.
    deadline = time.monotonic() + seconds + 30
    next_check = last_alive = time.monotonic()
    while time.monotonic() < deadline:
        with lock:
            ids = list(pending)
        if ids:
            rows = pg.execute("SELECT id FROM purchases WHERE id = ANY(%s)", (ids,)).fetchall()
            seen = time.monotonic()
            with lock:
                for (ident,) in rows:
                    latencies.append((seen - pending.pop(ident)) * 1000)
        elif done.is_set():
            break
        if next_check - last_alive > 1:
            pipe.check_alive()
            last_alive = next_check
        next_check += 0.002
        delay = next_check - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_check = time.monotonic()
    t.join(timeout=5)
    conn.close()
    if errors:
        raise Failed(f"probe writer: {errors[0]}")
    latencies.sort()
    if not latencies:
        raise Failed("no probe row became visible in Postgres within 30 s")
    return {
        "sent": total,
        "count": len(latencies),
        "p50_ms": f"{percentile(latencies, 50):.1f}",
        "p99_ms": f"{percentile(latencies, 99):.1f}",
        "max_ms": f"{latencies[-1]:.1f}",
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--release", required=True, help="directory of the cdc, analytics, loadgen binaries")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--cdc-user", default=None, help="connector account (default --user)")
    p.add_argument("--cdc-password", default=None)
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, required=True)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--kafka", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--probe-seconds", type=float, default=20)
    p.add_argument("--probe-interval-ms", type=float, default=100)
    p.add_argument("--warmup-seconds", type=float, default=5,
                   help="load at the new rate before probing")
    p.add_argument("--timeout", type=float, default=120, help="for the pipeline to start flowing")
    a = p.parse_args()
    # `timeout` and the harness's trap stop this script with SIGTERM: turn it
    # into an exception so the `finally` below removes what it created.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The probe writer's commit timestamp must not wait long for the GIL.
    sys.setswitchinterval(0.0005)
    for binary in ("cdc", "analytics", "loadgen"):
        if not os.access(os.path.join(a.release, binary), os.X_OK):
            print(f"freshness: no release binary {a.release}/{binary}", file=sys.stderr)
            return 1
    os.makedirs(a.workdir, exist_ok=True)
    import psycopg

    pipe = Pipeline(a)
    out = {"database": pipe.db, "topic_prefix": pipe.prefix}
    rng = random.Random(1)
    try:
        pipe.create_databases()
        pipe.start_cdc()
        pipe.start_analytics()
        with psycopg.connect(pipe.pg_url, autocommit=True) as pg:
            started = time.monotonic()
            for label, purchases, pageviews in LEVELS:
                out[f"{label}_rate"] = f"{purchases}/{pageviews}"
                try:
                    pipe.start_loadgen(label, purchases, pageviews)
                    if label == LEVELS[0][0]:
                        wait_flowing(pipe, pg, started + a.timeout)
                        log(f"pipeline flowing after {time.monotonic() - started:.1f}s")
                    time.sleep(a.warmup_seconds)
                    pipe.check_alive()
                    log(f"{label}: probing {a.probe_seconds:.0f}s at {purchases} purchases/s + "
                        f"{pageviews} pageviews/s")
                    usage0 = {n: proc_usage(pipe.pid(n)) for n in ("cdc", "analytics")}
                    records0 = pipe.analytics_records()
                    t0 = time.monotonic()
                    r = probe(pipe, pg, a.probe_seconds, a.probe_interval_ms / 1000, rng)
                    out[f"{label}_wall"] = f"{time.monotonic() - t0:.1f}"
                    for n in ("cdc", "analytics"):
                        cpu, hwm = proc_usage(pipe.pid(n))
                        out[f"{label}_{n}_cpu"] = f"{cpu - usage0[n][0]:.2f}"
                        out[f"{label}_{n}_rss_kb"] = hwm
                    records = pipe.analytics_records() - records0
                    out[f"{label}_analytics_records"] = records
                    if records > 0:
                        out[f"{label}_analytics_ms_per_1k"] = (
                            f"{float(out[f'{label}_analytics_cpu']) * 1e6 / records:.1f}")
                    out.update({f"{label}_{k}": v for k, v in r.items()})
                    log(f"{label}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
                        f"{r['count']} of {r['sent']} probes")
                    pipe.stop(f"loadgen-{label}")
                except Failed as e:
                    # Reported per level: the harness prints a `not available` row
                    # for this level and every later one (the pipeline is down).
                    log(f"{label}: {e}")
                    out[f"{label}_error"] = str(e)
                    break
    except Failed as e:
        print(f"freshness: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - one line for the harness's table
        print(f"freshness: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        pipe.cleanup()
    for k, v in out.items():
        print(f"{k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
