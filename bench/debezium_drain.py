#!/usr/bin/env python3
"""Real Debezium 3.6.3 as a bench peer: the steps around its measured drain.

    debezium_drain.py props   --workdir DIR --database DB ... (writes DIR/drain.properties)
    debezium_drain.py prepare --workdir DIR --classpath CP --database DB ...
    debezium_drain.py count   --kafka HOST:PORT --topic T --rows N
    debezium_drain.py cleanup --kafka HOST:PORT --prefix P

Debezium must drain the backlog from the binlog (streaming), like our cdc, not
read the table in a snapshot. So, before the backlog is written:

`prepare` starts tests/golden/harness/GoldenHarness (the embedded engine with
Confluent's AvroConverter, producing to Kafka) with snapshot.mode=no_data on
the still empty tables: it records the schema and the current binlog position
in its schema history and offsets files. A no_data snapshot alone leaves an
offset that says "snapshot" and no streaming record to commit, so this run
also sets heartbeat.interval.ms and commits rows into a marker table outside
the captured set until Debezium stores a streaming offset (a heartbeat's, at
the marker's position; the backlog comes after it), then stops the harness
through its stop file.

bench.sh then writes the backlog and starts the harness again on the same
files with drain.properties (Debezium's defaults for everything that matters
to speed: no heartbeat, max.batch.size 2048, max.queue.size 8192; only
include.schema.changes is off, see properties()), under
/usr/bin/time, with --max-records N: the JVM resumes streaming at the stored
position and stops once N records were handed over and acknowledged by Kafka.

`count` reads the topic to partition EOF (as cdc_drain.py does for our cdc)
and prints `topic_records=N`; `cleanup` deletes the run's topics.
"""

import argparse
import os
import random
import subprocess
import sys
import time

from cdc_drain import consumer, count_to_eof


def fail(msg: str) -> None:
    print(f"debezium_drain: {msg}", file=sys.stderr)
    sys.exit(1)


def properties(a, extra: dict) -> dict:
    w = os.path.abspath(a.workdir)
    p = {
        "name": "bench-debezium",
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "tasks.max": "1",
        "database.hostname": a.host,
        "database.port": str(a.port),
        "database.user": a.cdc_user,
        "database.password": a.cdc_password,
        # Unique among the server's replicas: tests may run connectors too.
        "database.server.id": str(a.server_id),
        "topic.prefix": a.prefix,
        "database.include.list": a.database,
        "table.include.list": f"{a.database}.purchases",
        "snapshot.mode": "no_data",
        # The server may be shared and see DDL on other databases at any time;
        # with the default (true) Debezium may hand over those schema change
        # records, which would count among the N records the drain waits for.
        # No DDL runs in the measured range, so this changes nothing about its
        # speed.
        "include.schema.changes": "false",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": os.path.join(w, "offsets.dat"),
        "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
        "schema.history.internal.file.filename": os.path.join(w, "history.dat"),
        "schema.registry.url": a.registry,
    }
    p.update(extra)
    return p


def write_props(path: str, props: dict) -> None:
    with open(path, "w") as f:
        for k, v in props.items():
            f.write(f"{k}={v.replace(chr(92), chr(92) * 2)}\n")


def streaming_offset(path: str) -> bool:
    """Whether the offsets file (Java-serialized map; the offset is JSON text
    inside it) holds a binlog position that is not a snapshot's."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    return b'"pos"' in data and b'"snapshot"' not in data


def prepare(a) -> int:
    import pymysql

    os.makedirs(a.workdir, exist_ok=True)
    for name in ("offsets.dat", "history.dat", "stop"):
        try:
            os.remove(os.path.join(a.workdir, name))
        except FileNotFoundError:
            pass
    props = os.path.join(a.workdir, "prepare.properties")
    write_props(props, properties(a, {"heartbeat.interval.ms": "100", "offset.flush.interval.ms": "100"}))
    stop = os.path.join(a.workdir, "stop")
    log = open(os.path.join(a.workdir, "prepare.log"), "w")
    proc = subprocess.Popen(
        ["java", "-cp", a.classpath, "GoldenHarness", "--props", props, "--kafka", a.kafka, "--stop-file", stop],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    conn = pymysql.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                           database=a.database, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_marker (id SERIAL PRIMARY KEY, at DATETIME(6))")
            deadline = time.monotonic() + a.timeout
            offsets = os.path.join(a.workdir, "offsets.dat")
            while not streaming_offset(offsets):
                if proc.poll() is not None:
                    fail(f"the harness exited with status {proc.returncode}; see {log.name}")
                if time.monotonic() > deadline:
                    fail(f"no streaming offset stored within {a.timeout:.0f}s; see {log.name}")
                cur.execute("INSERT INTO bench_marker (at) VALUES (NOW(6))")
                time.sleep(0.2)
        open(stop, "w").close()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            fail(f"the harness did not stop within 120 s; see {log.name}")
        if proc.returncode != 0:
            fail(f"the harness exited with status {proc.returncode}; see {log.name}")
        if not streaming_offset(offsets):
            fail(f"the stored offset is not a streaming one after the stop; see {offsets}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        conn.close()
        log.close()
    os.remove(stop)
    return 0


def count(a) -> int:
    c = consumer(a.kafka, a.topic)
    n = count_to_eof(c, time.monotonic() + max(120, a.rows / 5000))
    c.close()
    print(f"topic_records={n}")
    return 0


def cleanup(a) -> int:
    """Best effort: the run's topics hold records nobody reads again."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": a.kafka})
    try:
        names = [t for t in admin.list_topics(timeout=10).topics if a.prefix in t]
        if names:
            for f in admin.delete_topics(names, operation_timeout=10).values():
                f.result(timeout=15)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the figures
        print(f"debezium_drain: could not delete the topics of {a.prefix}: {e}", file=sys.stderr)
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("step", choices=("props", "prepare", "count", "cleanup"))
    p.add_argument("--workdir")
    p.add_argument("--classpath")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--cdc-user")
    p.add_argument("--cdc-password")
    p.add_argument("--database")
    p.add_argument("--prefix")
    p.add_argument("--server-id", type=int, default=6_000_000 + random.randrange(1_000_000))
    p.add_argument("--kafka")
    p.add_argument("--registry")
    p.add_argument("--topic")
    p.add_argument("--rows", type=int, default=0)
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    if a.step == "props":
        os.makedirs(a.workdir, exist_ok=True)
        write_props(os.path.join(a.workdir, "drain.properties"), properties(a, {}))
        return 0
    return {"prepare": prepare, "count": count, "cleanup": cleanup}[a.step](a)


if __name__ == "__main__":
    sys.exit(main())
