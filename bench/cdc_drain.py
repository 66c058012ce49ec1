#!/usr/bin/env python3
"""Drives the cdc binary over a recorded binlog range and measures it.

    cdc_drain.py --cdc-bin PATH --port P --database DB --rows N
                 --start-file F --start-pos N --end-file F --end-pos N
                 --kafka HOST:PORT --registry URL --workdir DIR
                 [--latency-seconds S] [--latency-rate R] [--timeout S]

How: the cdc supports file offset storage, so the range's start is written as
its stored offset ({"file", "pos"}: a transaction boundary, recorded by SHOW
MASTER STATUS right before the backlog) and it resumes there with
snapshot.mode=no_data, capturing <database>.purchases only. The drain is done
when the stored (Kafka-acknowledged) offset reaches the end position; at that
moment the cdc's CPU time (utime+stime of /proc/<pid>/stat) and peak RSS
(VmHWM) are read. Then the topic is read to partition EOF to check that every
row arrived (`topic_records`).

With --latency-seconds, the cdc is restarted as a user runs it: fresh
metrics (the drain's transactions must not mix into the figures), the
default offset store (Kafka; it holds no offset for this run, so with
snapshot.mode=no_data the cdc starts at the binlog's end, where the drain
ended) and the default offset.flush.interval.ms instead of the drain's 100 ms,
and this script commits single-row transactions at --latency-rate per second
and consumes the topic: commit-to-consume latency per row (matched on the
record key's `id`), measured from outside, so it includes the consumer's fetch
wait. The cdc's own figure is read from its /metrics afterwards:
`cdc_read_to_ack_seconds` (from reading a transaction's commit event to Kafka
acknowledging its last record; a summary, p50/p99 over its rolling 60 s
window, which here holds the latency run only) -> `ack_p50_ms`, `ack_p99_ms`,
`ack_count`; and `cdc_commit_to_ack_seconds` when the source records commit
times in microseconds (MySQL 8) -> `commit_ack_p50_ms`, `commit_ack_p99_ms`.

With --steady-rates (e.g. `0,10,100,1000`), the restarted cdc's CPU (its
threads' schedstat, to the nanosecond: an idle 20 s is about one 10 ms tick
of /proc/<pid>/stat) is sampled over --steady-seconds at each offered rate of single-row
transactions (0: idle, nothing to stream): `steady_<rate>_cpu` (CPU-seconds
in the window), `steady_<rate>_tx` (transactions committed in it) and
`steady_<rate>_us_per_tx` (cdc CPU per transaction, idle cost included: what
a user pays at that rate). The writer uses as many connections as the rate
needs (one connection commits a few hundred per second here).

With --steady-peer (a mariadb-binlog binary), each nonzero rate gets a second
window in which that peer follows the binlog (`--read-from-remote-server
--stop-never`, decoded rows to /dev/null) while the same transactions are
written: `peer_steady_<rate>_us_per_tx`, its CPU per transaction. It only
receives and prints; the cdc also encodes, produces and waits for Kafka's
acknowledgement. What both pay per transaction at a low rate is mostly waking
up (a fresh cache and a few system calls per event batch), so the peer's
figure is the floor a binlog reader pays on the same machine at that moment.

Prints `key=value` lines on stdout; logs go to stderr and <workdir>/cdc.log.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from measure import percentile, proc_cpu_precise, proc_usage


def fail(msg: str) -> None:
    print(f"cdc_drain: {msg}", file=sys.stderr)
    sys.exit(1)


def stored_offset(path: str):
    try:
        with open(path) as f:
            o = json.load(f)
        return o.get("file", ""), int(o.get("pos", 0)), int(o.get("event", 0)), int(o.get("row", 0))
    except (FileNotFoundError, json.JSONDecodeError):
        # The cdc replaces the file atomically; a read mid-rename just retries.
        return None


def metrics_text(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def metric_sum(text, name: str):
    if text is None:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metric_quantile(text, name: str, q: str):
    """A summary's quantile (`name{quantile="q"} v`), or None."""
    if text is None:
        return None
    prefix = f'{name}{{quantile="{q}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None


def ack_figures(text) -> dict:
    out = {}
    for metric, key in (("cdc_read_to_ack_seconds", "ack"), ("cdc_commit_to_ack_seconds", "commit_ack")):
        p50 = metric_quantile(text, metric, "0.5")
        p99 = metric_quantile(text, metric, "0.99")
        if p50 is not None and p99 is not None:
            out[f"{key}_p50_ms"] = f"{p50 * 1000:.1f}"
            out[f"{key}_p99_ms"] = f"{p99 * 1000:.1f}"
            out[f"{key}_count"] = int(metric_sum(text, metric + "_count") or 0)
    return out


def key_id(key: bytes):
    """`id` of a Debezium key in Confluent wire format: magic 0, schema id, Avro long."""
    if not key or len(key) < 6 or key[0] != 0:
        return None
    value, shift = 0, 0
    for b in key[5:]:
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1)
    return None


def consumer(kafka: str, topic: str):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"bench-{topic}",
            "enable.auto.commit": False,
            # tansu's ListOffsets(latest) is wrong: "the end" is partition EOF.
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        }
    )
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    return c


def count_to_eof(c, deadline: float) -> int:
    from confluent_kafka import KafkaError

    n = 0
    while time.monotonic() < deadline:
        batch = c.consume(10000, timeout=1.0)
        for m in batch:
            err = m.error()
            if err is None:
                if m.value() is not None:  # tombstones are not rows
                    n += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                return n
            else:
                fail(f"reading the topic: {err}")
    fail("no partition EOF on the topic before the timeout")
    return n


def delete_topics(kafka: str, topics: list) -> None:
    """Best effort: a benchmark topic holds N records nobody reads again."""
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": kafka})
        futures = admin.delete_topics(topics, operation_timeout=10)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the figures
        print(f"cdc_drain: could not delete topics {topics}: {e}", file=sys.stderr)
        return
    for topic, f in futures.items():
        try:
            f.result(timeout=15)
        except Exception as e:  # noqa: BLE001 - as above
            print(f"cdc_drain: could not delete topic {topic}: {e}", file=sys.stderr)


def warm_up(a, c) -> None:
    """One row through the restarted cdc before measuring: its first record
    registers schemas and checks the topic, a one-off start cost that is not
    steady-state latency."""
    import pymysql
    from confluent_kafka import KafkaError

    conn = pymysql.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                           database=a.database, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO purchases (user_id, item_id, purchase_price) VALUES (1, 1, 9.99)")
        warm = cur.lastrowid
    conn.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = c.poll(0.1)
        if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
            continue
        if m.error():
            fail(f"reading the topic: {m.error()}")
        if key_id(m.key()) == warm:
            return
    fail("the warm-up row did not reach the topic within 60 s")


def latency_run(a, c, topic: str) -> dict:
    """Commits single-row transactions at a fixed rate; matches them on the topic."""
    import pymysql
    from confluent_kafka import KafkaError

    conn = pymysql.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                           database=a.database, autocommit=True)
    committed = {}
    total = int(a.latency_seconds * a.latency_rate)
    done = threading.Event()

    def writer():
        cur = conn.cursor()
        start = time.monotonic()
        for i in range(total):
            # Fixed schedule, so a slow commit does not lower the offered rate.
            delay = start + i / a.latency_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cur.execute("INSERT INTO purchases (user_id, item_id, purchase_price) VALUES (1, 1, 9.99)")
            committed[cur.lastrowid] = time.monotonic()
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    seen = {}
    deadline = time.monotonic() + a.latency_seconds + 60
    while time.monotonic() < deadline and (not done.is_set() or len(seen) < total):
        m = c.poll(0.05)
        if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
            continue
        if m.error():
            fail(f"reading the topic: {m.error()}")
        got = time.monotonic()
        ident = key_id(m.key())
        if ident is not None and m.value() is not None:
            seen[ident] = got
    t.join(timeout=5)
    conn.close()
    lat = sorted((seen[i] - ts) * 1000 for i, ts in committed.items() if i in seen)
    if not lat:
        return {"latency_error": "no latency-run row reached the topic"}
    return {
        "latency_tx": total,
        "latency_matched": len(lat),
        "latency_p50_ms": f"{percentile(lat, 50):.1f}",
        "latency_p99_ms": f"{percentile(lat, 99):.1f}",
        "latency_rate": a.latency_rate,
    }


def write_at_rate(a, rate: float, seconds: float) -> int:
    """Commits single-row transactions at `rate` per second for `seconds`
    (fixed schedule split over connections); returns how many committed."""
    import pymysql

    if rate <= 0:
        time.sleep(seconds)
        return 0
    conns = max(1, min(8, int(rate // 250) + 1))
    total = int(seconds * rate)
    counts = [0] * conns

    def writer(k: int):
        conn = pymysql.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                               database=a.database, autocommit=True)
        cur = conn.cursor()
        start = time.monotonic()
        for i in range(k, total, conns):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                break  # more than a second behind: the window is over
            cur.execute("INSERT INTO purchases (user_id, item_id, purchase_price) VALUES (1, 1, 9.99)")
            counts[k] += 1
        conn.close()

    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    return sum(counts)


def steady_runs(a, pid: int) -> dict:
    """cdc CPU per transaction at each --steady-rates rate (see the module doc)."""
    out = {}
    for text in a.steady_rates.split(","):
        rate = float(text)
        label = f"{rate:g}"
        before = proc_cpu_precise(pid)
        t0 = time.monotonic()
        tx = write_at_rate(a, rate, a.steady_seconds)
        # Let the last transactions' records be sent and acknowledged.
        time.sleep(0.5)
        after = proc_cpu_precise(pid)
        window = time.monotonic() - t0
        cpu = after - before
        out[f"steady_{label}_cpu"] = f"{cpu:.4f}"
        out[f"steady_{label}_window"] = f"{window:.1f}"
        out[f"steady_{label}_tx"] = tx
        if tx:
            out[f"steady_{label}_us_per_tx"] = f"{cpu / tx * 1e6:.0f}"
    return out


def peer_steady_runs(a) -> dict:
    """mariadb-binlog's CPU per transaction at each nonzero --steady-rates rate."""
    import pymysql

    out = {}
    for text in a.steady_rates.split(","):
        rate = float(text)
        if rate <= 0:
            continue
        label = f"{rate:g}"
        conn = pymysql.connect(host=a.host, port=a.port, user=a.user, password=a.password)
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
        conn.close()
        if not row:
            out["peer_steady_error"] = "SHOW MASTER STATUS is empty"
            return out
        cmd = [a.steady_peer, "--no-defaults", "--read-from-remote-server", "--stop-never",
               "--verbose", f"--stop-never-slave-server-id={300000 + os.getpid() % 100000}",
               f"--host={a.host}", f"--port={a.port}", f"--user={a.user}",
               f"--start-position={row[1]}", "--result-file=/dev/null", row[0]]
        if a.password:
            cmd.insert(5, f"--password={a.password}")
        peer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)  # connected and caught up (nothing to read yet)
            if peer.poll() is not None:
                out["peer_steady_error"] = f"{os.path.basename(a.steady_peer)} exited: " + \
                    peer.stderr.read().decode(errors="replace").strip()[:200]
                return out
            before = proc_cpu_precise(peer.pid)
            tx = write_at_rate(a, rate, a.steady_seconds)
            time.sleep(0.5)
            after = proc_cpu_precise(peer.pid)
        finally:
            peer.terminate()
            peer.wait()
        if tx:
            out[f"peer_steady_{label}_us_per_tx"] = f"{(after - before) / tx * 1e6:.0f}"
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cdc-bin", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    p.add_argument("--cdc-user", default=None, help="connector account (default --user)")
    p.add_argument("--cdc-password", default=None)
    p.add_argument("--database", required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--start-file", required=True)
    p.add_argument("--start-pos", type=int, required=True)
    p.add_argument("--end-file", required=True)
    p.add_argument("--end-pos", type=int, required=True)
    p.add_argument("--kafka", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--metrics-port", type=int, default=0, help="default: a free port")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--latency-seconds", type=float, default=0)
    p.add_argument("--latency-rate", type=float, default=100)
    p.add_argument("--steady-rates", default="", help="e.g. 0,10,100,1000 (0: idle)")
    p.add_argument("--steady-seconds", type=float, default=20)
    p.add_argument("--steady-peer", default="", help="mariadb-binlog binary: the steady-state floor")
    a = p.parse_args()
    # `timeout` and the harness's trap stop this script with SIGTERM: turn it
    # into an exception so the `finally` below stops the cdc it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    os.makedirs(a.workdir, exist_ok=True)
    prefix = f"bench{int(time.time())}"
    topic = f"{prefix}.{a.database}.purchases"
    offsets = os.path.join(a.workdir, "cdc-offsets.json")
    with open(offsets, "w") as f:
        json.dump({"file": a.start_file, "pos": a.start_pos, "server_id": 0}, f)
    if not a.metrics_port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            a.metrics_port = s.getsockname()[1]
    metrics_url = f"http://127.0.0.1:{a.metrics_port}/metrics"
    env = dict(os.environ)
    env.update(
        {
            "CONNECTOR_NAME": prefix,
            "DATABASE_HOSTNAME": a.host,
            "DATABASE_PORT": str(a.port),
            "DATABASE_USER": a.cdc_user or a.user,
            "DATABASE_PASSWORD": a.cdc_password if a.cdc_user else a.password,
            # Unique among the server's replicas: tests may run connectors too.
            "DATABASE_SERVER_ID": str(200000 + os.getpid() % 100000),
            "TOPIC_PREFIX": prefix,
            "TABLE_INCLUDE_LIST": f"{a.database}\\.purchases",
            "SNAPSHOT_MODE": "no_data",
            "OFFSET_STORAGE": "file",
            "OFFSET_STORAGE_FILE_FILENAME": offsets,
            "OFFSET_FLUSH_INTERVAL_MS": "100",
            "KAFKA_BOOTSTRAP_SERVERS": a.kafka,
            "SCHEMA_REGISTRY_URL": a.registry,
            "METRICS_ADDR": f"127.0.0.1:{a.metrics_port}",
            "RUST_LOG": env.get("BENCH_CDC_LOG", "info"),
        }
    )
    log = open(os.path.join(a.workdir, "cdc.log"), "w")
    started = time.monotonic()
    procs = [subprocess.Popen([a.cdc_bin], env=env, stdout=log, stderr=subprocess.STDOUT)]
    proc = procs[0]
    end = (a.end_file, a.end_pos)
    out = {"topic": topic}

    def stop():
        proc = procs[-1]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(purpose: str):
        """Starts a fresh cdc (it resumes at the stored end), waits until it
        streams and sends one row through it (see warm_up)."""
        log.write(f"--- restarted for {purpose} ---\n")
        log.flush()
        # The drain stores its position in a file every 100 ms so that its
        # end is seen promptly; the restarted cdc stores it as a user's does,
        # in Kafka every 1 s (a 100 ms flush ticker alone is 0.04 CPU-s per
        # idle 20 s here), so the steady-state figures include that store.
        drain_only = ("OFFSET_FLUSH_INTERVAL_MS", "OFFSET_STORAGE", "OFFSET_STORAGE_FILE_FILENAME")
        steady_env = {k: v for k, v in env.items() if k not in drain_only}
        procs.append(subprocess.Popen([a.cdc_bin], env=steady_env, stdout=log, stderr=subprocess.STDOUT))
        ready = time.monotonic() + 60
        while metric_sum(metrics_text(metrics_url), "cdc_streaming") != 1:
            if procs[-1].poll() is not None or time.monotonic() > ready:
                fail(f"the restarted cdc did not start streaming; see {log.name}")
            time.sleep(0.05)
        warm_up(a, c)

    c = None
    try:
        deadline = started + a.timeout
        while True:
            if proc.poll() is not None:
                fail(f"cdc exited with status {proc.returncode} before the end position; see {log.name}")
            o = stored_offset(offsets)
            if o and (o[0], o[1]) >= end:
                break
            if time.monotonic() > deadline:
                fail(f"cdc did not reach {end[0]}:{end[1]} within {a.timeout:.0f}s (stored {o}); see {log.name}")
            time.sleep(0.05)
        wall = time.monotonic() - started
        cpu, hwm = proc_usage(proc.pid)
        out.update(
            {
                "wall": f"{wall:.3f}",
                "cpu": f"{cpu:.2f}",
                "rss_kb": hwm,
            }
        )
        # Kept for the harness: it looks there for a commit-to-ack latency metric.
        text = metrics_text(metrics_url)
        with open(os.path.join(a.workdir, "metrics.txt"), "w") as f:
            f.write(text or "")
        out["events_metric"] = int(metric_sum(text, "cdc_events_total") or 0)
        c = consumer(a.kafka, topic)
        out["topic_records"] = count_to_eof(c, time.monotonic() + max(120, a.rows / 5000))
        if a.latency_seconds > 0:
            # Fresh process, fresh metrics: it starts where the drain ended.
            stop()
            if procs[-1].returncode not in (0, -signal.SIGTERM):
                fail(f"cdc exited with status {procs[-1].returncode} at the restart; see {log.name}")
            restart("the latency run")
            out.update(latency_run(a, c, topic))
            text = metrics_text(metrics_url)
            with open(os.path.join(a.workdir, "metrics-latency.txt"), "w") as f:
                f.write(text or "")
            out.update(ack_figures(text))
        if a.steady_rates:
            if a.latency_seconds <= 0:
                # The drain's process: restart so the window holds no drain.
                stop()
                restart("the steady-state runs")
            out.update(steady_runs(a, procs[-1].pid))
            if a.steady_peer:
                out.update(peer_steady_runs(a))
        c.close()
    finally:
        stop()
        log.close()
        # The row topic, the schema-change topic and, when a restarted cdc
        # ran, its offsets topic (the defaults' names).
        delete_topics(a.kafka, [topic, prefix] + ([f"__cdc-offsets.{prefix}"] if len(procs) > 1 else []))
    for k, v in out.items():
        print(f"{k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
