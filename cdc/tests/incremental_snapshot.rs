//! Incremental snapshots against each source server (`mariadb::*`,
//! `mysql::*`), with the `cdc` binary as a process.
//!
//! The headline: `purchases` holds rows the connector never saw
//! (`snapshot.mode=no_data`), so only the incremental snapshot can bring
//! them to Kafka. While writers update, delete and insert the same rows, an
//! `execute-snapshot` signal starts it; cdc is SIGKILLed once a position
//! inside the snapshot is stored (a chunk done, more to read), restarted on
//! the same offsets, and the snapshot resumes from the stored key. At the
//! end the topic replayed by key must equal the table: a row lost by a
//! skipped chunk, or an old chunk row written after a newer streamed change
//! (a broken watermark window), shows up as a difference.

mod stack_support;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use pipeline::testing::{Flavour, Stack};
use stack_support::*;

per_flavour!(
    incremental_snapshot_under_load_survives_sigkill,
    stop_and_pause_signals,
    kafka_signal_channel,
    connections_killed_mid_snapshot_lose_nothing,
    composite_keys_and_additional_conditions,
    a_column_added_mid_snapshot_is_in_the_next_chunks,
    read_only_incremental_snapshot_under_load,
    a_keyless_table_is_chunked_by_its_message_key_columns,
);

const BIN: &str = env!("CARGO_BIN_EXE_cdc");
const SEED_ROWS: u64 = 30_000;
const CHUNK: &str = "250";
const SIGNAL_TABLE: &str = "debezium_signal";

/// The columns compared (timestamps left out: their text forms differ by
/// design between the snapshot and the binlog only in precision, and the
/// writers change the other columns).
type Row = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

struct Setup {
    stack: Stack,
    db: String,
    user: String,
    config: cdc::config::Config,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(flavour: Flavour) -> Option<Self> {
        let stack = pipeline::testing::stack_for(flavour)?;
        let db = demo_database(&stack).await;
        let mut conn = admin(&stack, Some(&db)).await;
        // Debezium's documented signal table.
        conn.query_drop(format!(
            "CREATE TABLE {SIGNAL_TABLE} (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32) NOT NULL, \
             data VARCHAR(2048) NULL)"
        ))
        .await
        .unwrap();
        // An account of this test: the connector's privileges plus INSERT
        // on the signal table (the watermarks).
        let user = connector_account(&mut conn, "inc").await;
        conn.query_drop(format!(
            "GRANT INSERT ON `{db}`.{SIGNAL_TABLE} TO '{user}'@'%'"
        ))
        .await
        .unwrap();
        let config = as_account(&config(&stack, &db), &user);
        Some(Self {
            stack,
            db,
            user,
            config,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn topic(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.config.connector.topic_prefix, self.db)
    }

    fn offsets(&self) -> std::path::PathBuf {
        self.dir.path().join("offsets.json")
    }

    fn spawn(&self, run: u32) -> Child {
        self.spawn_with(run, &[])
    }

    fn spawn_with(&self, run: u32, extra: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("cdc-{run}.log"))).unwrap();
        cdc_command(
            BIN,
            &self.stack,
            &self.config,
            &self.offsets(),
            &self.stack.schema_registry_url,
        )
        .env_remove("CDC_CONFIG_FILE")
        .env("RUST_LOG", "info")
        .args(["--offset.flush.interval.ms", "50"])
        .args(["--snapshot.mode", "no_data"])
        .args([
            "--signal.data.collection",
            &format!("{}.{SIGNAL_TABLE}", self.db),
        ])
        .args(["--incremental.snapshot.chunk.size", CHUNK])
        .args(["--binlog.heartbeat.interval.ms", "2000"])
        .args(["--metrics-addr", ""])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
    }

    fn log(&self, run: u32) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("cdc-{run}.log"))).unwrap_or_default()
    }

    fn stored(&self) -> Option<cdc::offsets::SourceOffset> {
        file_offset(&self.offsets())
    }

    async fn signal(&self, id: &str, kind: &str, data: &str) {
        self.signals(&[(id, kind, data)]).await;
    }

    /// Signal rows inserted in one transaction, in this order.
    async fn signals(&self, rows: &[(&str, &str, &str)]) {
        let mut conn = admin(&self.stack, Some(&self.db)).await;
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .unwrap();
        for (id, kind, data) in rows {
            tx.exec_drop(
                format!("INSERT INTO {SIGNAL_TABLE} VALUES (?, ?, ?)"),
                (id, kind, data),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn seed(&self) {
        let mut conn = admin(&self.stack, Some(&self.db)).await;
        for start in (1..=SEED_ROWS).step_by(5_000) {
            let values: Vec<String> = (start..start + 5_000)
                .filter(|i| *i <= SEED_ROWS)
                .map(|i| {
                    format!(
                        "({i}, {}, {}, {}, {}, {}.{:02})",
                        i % 97,
                        i % 31,
                        1 + i % 3,
                        1 + i % 5,
                        i % 500,
                        i % 100
                    )
                })
                .collect();
            conn.query_drop(format!(
                "INSERT INTO purchases (id, user_id, item_id, status, quantity, purchase_price) VALUES {}",
                values.join(",")
            ))
            .await
            .unwrap();
        }
    }

    /// Waits until a sentinel written now is in the users topic: every
    /// change committed before it has been streamed.
    async fn caught_up(&self, id: u32) {
        let mut conn = admin(&self.stack, Some(&self.db)).await;
        conn.exec_drop(
            "INSERT INTO users (id, email) VALUES (?, 'sentinel@x')",
            (id,),
        )
        .await
        .unwrap();
        wait_for_records(&self.stack, &self.topic("users"), "the sentinel", |r| {
            r.iter().any(|r| r.key_id() == Some(i64::from(id)))
        })
        .await;
    }

    /// Streams a sentinel and waits until the stored position is past it;
    /// returns the stored incremental key then.
    async fn settled(&self, id: u32) -> Option<u64> {
        self.caught_up(id).await;
        let mut conn = admin(&self.stack, Some(&self.db)).await;
        let (file, pos) = binlog_status(&mut conn, &self.stack).await;
        let o = pipeline::testing::wait_until(
            Duration::from_secs(30),
            "the stored position past the sentinel",
            || async {
                let o = self.stored()?;
                (o.file > file || (o.file == file && o.pos >= pos)).then_some(o)
            },
        )
        .await;
        stored_key(&o)
    }

    /// KILLs every connection of the connector's account (binlog, catalog,
    /// chunk reads and watermarks); returns how many there were.
    async fn kill_connections(&self) -> usize {
        let mut conn = admin(&self.stack, None).await;
        let ids: Vec<u64> = conn
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
                (&self.user,),
            )
            .await
            .unwrap();
        for id in &ids {
            // Gone already (it ended on its own): fine.
            let _ = conn.query_drop(format!("KILL {id}")).await;
        }
        ids.len()
    }

    /// Waits until run `run`'s log says `n` incremental snapshots are done.
    async fn snapshots_done(&self, run: u32, n: usize, what: &str) {
        pipeline::testing::wait_until(Duration::from_secs(240), what, || async {
            (self.log(run).matches("incremental snapshot: done").count() >= n).then_some(())
        })
        .await;
    }

    /// Waits until the stored incremental key is at least `key`.
    async fn key_reaches(&self, key: u64) {
        pipeline::testing::wait_until(
            Duration::from_secs(60),
            &format!("a stored incremental key of {key} or more"),
            || async { (stored_key(&self.stored()?)? >= key).then_some(()) },
        )
        .await;
    }

    async fn table(&self) -> BTreeMap<i64, Row> {
        let mut conn = admin(&self.stack, Some(&self.db)).await;
        let rows: Vec<Row> = conn
            .query(
                "SELECT id, user_id, item_id, status, quantity, deleted FROM purchases ORDER BY id",
            )
            .await
            .unwrap();
        rows.into_iter().map(|r| (r.0, r)).collect()
    }

    async fn cleanup(self) {
        let mut conn = admin(&self.stack, None).await;
        conn.query_drop(format!("DROP USER '{}'@'%'", self.user))
            .await
            .unwrap();
        conn.query_drop(format!("DROP DATABASE `{}`", self.db))
            .await
            .unwrap();
    }
}

fn long(v: Option<Value>) -> Option<i64> {
    match v? {
        Value::Long(n) => Some(n),
        Value::Int(n) => Some(i64::from(n)),
        Value::Boolean(b) => Some(i64::from(b)),
        Value::Null => None,
        other => panic!("not a number: {other:?}"),
    }
}

fn replayed(records: &[Record]) -> BTreeMap<i64, Row> {
    replay(records)
        .into_iter()
        .map(|(id, r)| {
            let c = |name: &str| long(r.column("after", name));
            (
                id,
                (
                    id,
                    c("user_id"),
                    c("item_id"),
                    c("status"),
                    c("quantity"),
                    c("deleted"),
                ),
            )
        })
        .collect()
}

/// Writers changing random rows of `purchases` (the rows being
/// snapshotted) until `stop`: updates of quantity and status, deletes, and
/// inserts past the seeded range.
fn writers(setup: &Setup, stop: &Arc<AtomicBool>, n: usize) -> Vec<tokio::task::JoinHandle<u64>> {
    let next_id = Arc::new(AtomicU64::new(SEED_ROWS + 1));
    (0..n)
        .map(|w| {
            let url = setup.stack.mysql_url(Some(&setup.db));
            let stop = Arc::clone(stop);
            let next_id = Arc::clone(&next_id);
            tokio::spawn(async move {
                let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1);
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = 1 + x % SEED_ROWS;
                    let sql = match x % 10 {
                        0 => format!("DELETE FROM purchases WHERE id = {id}"),
                        1 => format!(
                            "INSERT INTO purchases (id, user_id, item_id, quantity) VALUES ({}, 1, 1, 1)",
                            next_id.fetch_add(1, Ordering::Relaxed)
                        ),
                        2 => format!(
                            "UPDATE purchases SET status = status % 3 + 1, quantity = quantity + 1 WHERE id BETWEEN {id} AND {}",
                            id + 20
                        ),
                        _ => format!("UPDATE purchases SET quantity = quantity + 1 WHERE id = {id}"),
                    };
                    conn.query_drop(sql).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect()
}

/// The table and the topic replayed by key hold the same rows.
fn same_rows(table: &BTreeMap<i64, Row>, topic: &BTreeMap<i64, Row>) {
    let missing: Vec<_> = table
        .keys()
        .filter(|k| !topic.contains_key(k))
        .take(10)
        .collect();
    let extra: Vec<_> = topic
        .keys()
        .filter(|k| !table.contains_key(k))
        .take(10)
        .collect();
    let different: Vec<_> = table
        .iter()
        .filter(|(k, row)| topic.get(k).is_some_and(|t| t != *row))
        .map(|(k, row)| (*row, topic[k]))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && different.is_empty(),
        "topic replayed by key differs from the table: missing {missing:?}, extra {extra:?}, different (table, topic) {different:?}"
    );
    assert_eq!(table.len(), topic.len());
}

fn stored_key(o: &cdc::offsets::SourceOffset) -> Option<u64> {
    let text = o.incremental.incremental_snapshot_primary_key.as_deref()?;
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v[0]["u"].as_u64().or_else(|| v[0]["i"].as_u64())
}

async fn incremental_snapshot_under_load_survives_sigkill(flavour: Flavour) {
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    setup.seed().await;
    let mut child = setup.spawn(1);
    // Streaming (no_data: only the position is stored).
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = writers(&setup, &stop, 3);
    setup
        .signal(
            "ad-hoc-1",
            "execute-snapshot",
            &format!(
                r#"{{"data-collections": ["{}.purchases"], "type": "incremental"}}"#,
                setup.db
            ),
        )
        .await;

    // Kill once a position inside the snapshot is stored: some chunks
    // delivered, most still to read.
    let at_kill = pipeline::testing::wait_until(
        Duration::from_secs(120),
        "a stored position inside the incremental snapshot",
        || async {
            let o = setup.stored()?;
            let key = stored_key(&o)?;
            (o.incremental.is_running() && key >= 2_000).then_some(o)
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = stored_key(&at_kill).unwrap();
    assert!(
        killed_at < SEED_ROWS,
        "the snapshot was still running at the kill"
    );
    let first_log = setup.log(1);
    assert!(
        !first_log.contains("incremental snapshot: done"),
        "killed too late:\n{first_log}"
    );
    eprintln!("killed with the snapshot stored up to key {killed_at}");

    let mut child = setup.spawn(2);
    setup
        .snapshots_done(2, 1, "the incremental snapshot to finish after the restart")
        .await;
    stop.store(true, Ordering::Relaxed);
    let mut changes = 0;
    for w in load {
        changes += w.await.unwrap();
    }
    setup.caught_up(900_001).await;
    let second_log = setup.log(2);
    assert!(
        second_log.contains("resuming after the last delivered key"),
        "{second_log}"
    );

    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("purchases"), &mut schemas).await;
    let table = setup.table().await;
    let topic = replayed(&records);
    let incremental: Vec<&Record> = records
        .iter()
        .filter(|r| r.snapshot_marker().as_deref() == Some("incremental"))
        .collect();
    assert!(
        incremental.iter().all(|r| r.op().as_deref() == Some("r")),
        "incremental snapshot records are reads"
    );
    // Rows the writers never touched exist in Kafka only through the snapshot,
    // on both sides of the kill.
    let low = incremental
        .iter()
        .filter(|r| r.key_id() < Some(killed_at as i64))
        .count();
    let high = incremental
        .iter()
        .filter(|r| r.key_id() > Some(killed_at as i64))
        .count();
    eprintln!(
        "{changes} concurrent changes; {} incremental reads ({low} before the kill's key, {high} after); table {} rows",
        incremental.len(),
        table.len()
    );
    assert!(low > 1_000 && high > 1_000, "{low} / {high}");
    same_rows(&table, &topic);

    // The signal table's rows are streamed like any captured table's
    // (Debezium does too): the signal and the watermarks are in its topic.
    let signals = read_topic(&setup.stack, &setup.topic(SIGNAL_TABLE), &mut schemas).await;
    let kinds: Vec<String> = signals
        .iter()
        .filter_map(|r| string(r.column("after", "type")))
        .collect();
    assert!(kinds.iter().any(|k| k == "execute-snapshot"));
    assert!(kinds.iter().any(|k| k == "snapshot-window-open"));
    assert!(kinds.iter().any(|k| k == "snapshot-window-close"));

    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// `pause-snapshot` stops reading chunks (the stored key stays),
/// `resume-snapshot` goes on, `stop-snapshot` ends it with rows unread.
/// Each pause is committed in the transaction of the signal it follows
/// (execute, resume), so exactly one chunk is read in between, whatever
/// the machine's speed.
async fn stop_and_pause_signals(flavour: Flavour) {
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    setup.seed().await;
    let mut child = setup.spawn(1);
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    let purchases = format!(
        r#"{{"data-collections": ["{}.purchases"], "type": "incremental"}}"#,
        setup.db
    );
    let chunk: u64 = CHUNK.parse().unwrap();
    setup
        .signals(&[
            ("s-1", "execute-snapshot", &purchases),
            ("p-1", "pause-snapshot", ""),
        ])
        .await;
    // The chunk read at the execute is delivered at its close watermark
    // (written by the connector, so maybe after a sentinel written now);
    // no other is read while paused.
    setup.key_reaches(chunk).await;
    assert_eq!(setup.settled(900_001).await, Some(chunk));
    assert_eq!(setup.settled(900_002).await, Some(chunk));
    assert_eq!(
        count(&setup.stack, &setup.topic("purchases")).await as u64,
        chunk
    );

    setup
        .signals(&[
            ("r-1", "resume-snapshot", ""),
            ("p-2", "pause-snapshot", ""),
        ])
        .await;
    setup.key_reaches(2 * chunk).await;
    assert_eq!(setup.settled(900_003).await, Some(2 * chunk));
    assert!(setup.stored().unwrap().incremental.is_running());

    setup.signals(&[("x-1", "stop-snapshot", &purchases)]).await;
    assert_eq!(
        setup.settled(900_004).await,
        None,
        "stopped: no state stored"
    );
    assert!(!setup.stored().unwrap().incremental.is_running());
    let log = setup.log(1);
    assert!(log.contains("incremental snapshot paused"), "{log}");
    assert!(log.contains("incremental snapshot resumed"), "{log}");
    assert!(log.contains("stop-snapshot"), "{log}");

    // Exactly the two chunks, as reads marked incremental, in key order.
    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("purchases"), &mut schemas).await;
    assert!(records
        .iter()
        .all(|r| r.op().as_deref() == Some("r")
            && r.snapshot_marker().as_deref() == Some("incremental")));
    let keys: Vec<i64> = records.iter().filter_map(Record::key_id).collect();
    assert_eq!(keys, (1..=2 * chunk as i64).collect::<Vec<_>>());
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// The kafka channel alone (`signal.enabled.channels=kafka`): a signal-table
/// `execute-snapshot` is ignored; an `execute-snapshot` record keyed by
/// `topic.prefix` starts the snapshot (watermarks still go through the
/// signal table); a record keyed for another connector is ignored.
async fn kafka_signal_channel(flavour: Flavour) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    setup.seed().await;
    let topic = pipeline::testing::unique_name("signals");
    let group = pipeline::testing::unique_name("signal-group");
    let mut child = setup.spawn_with(
        1,
        &[
            "--signal.enabled.channels",
            "kafka",
            "--signal.kafka.topic",
            &topic,
            "--signal.kafka.groupId",
            &group,
        ],
    );
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    let purchases = format!(
        r#"{{"data-collections": ["{}.purchases"], "type": "incremental"}}"#,
        setup.db
    );
    setup.signal("t-1", "execute-snapshot", &purchases).await;
    setup.caught_up(900_000).await;
    assert_eq!(count(&setup.stack, &setup.topic("purchases")).await, 0);
    assert!(
        setup.log(1).contains("no source channel; ignored"),
        "{}",
        setup.log(1)
    );

    let prefix = setup.config.connector.topic_prefix.clone();
    let execute = format!(
        r#"{{"type": "execute-snapshot", "data": {{"data-collections": ["{}.purchases"], "type": "incremental"}}}}"#,
        setup.db
    );
    let stop = format!(
        r#"{{"type": "stop-snapshot", "data": {{"data-collections": ["{}.purchases"], "type": "incremental"}}}}"#,
        setup.db
    );
    let other = format!("{prefix}-other");
    let producer: FutureProducer = setup.stack.kafka().side_producer().create().unwrap();
    for (key, value) in [(prefix.as_str(), &execute), (other.as_str(), &stop)] {
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(value.as_str()),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("{topic}: {e}"));
    }
    setup
        .snapshots_done(
            1,
            1,
            "the incremental snapshot started on the kafka channel to finish",
        )
        .await;
    setup.caught_up(900_001).await;
    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("purchases"), &mut schemas).await;
    assert!(records
        .iter()
        .all(|r| r.op().as_deref() == Some("r")
            && r.snapshot_marker().as_deref() == Some("incremental")));
    let keys: Vec<i64> = records.iter().filter_map(Record::key_id).collect();
    assert_eq!(keys, (1..=SEED_ROWS as i64).collect::<Vec<_>>());
    assert!(!setup.stored().unwrap().incremental.is_running());
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// Every connection of the connector killed three times while the snapshot
/// runs under load (a window in flight, a chunk being read, the binlog
/// replayed from the last emitted position): the snapshot still finishes
/// and the topic replayed by key equals the table.
async fn connections_killed_mid_snapshot_lose_nothing(flavour: Flavour) {
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    setup.seed().await;
    let mut child = setup.spawn(1);
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = writers(&setup, &stop, 3);
    setup
        .signal(
            "k-1",
            "execute-snapshot",
            &format!(
                r#"{{"data-collections": ["{}.purchases"], "type": "incremental"}}"#,
                setup.db
            ),
        )
        .await;
    let done = || setup.log(1).contains("incremental snapshot: done");
    let mut kills = 0;
    for target in [2_000u64, 9_000, 18_000] {
        let reached = pipeline::testing::wait_until(
            Duration::from_secs(120),
            &format!("a stored incremental key of {target} or the end"),
            || async {
                if done() {
                    return Some(false);
                }
                let key = stored_key(&setup.stored()?)?;
                (key >= target).then_some(true)
            },
        )
        .await;
        if !reached {
            break;
        }
        // Between two kills the connector may still be reconnecting (it
        // backs off): kill as soon as it holds a connection again.
        pipeline::testing::wait_until(
            Duration::from_secs(60),
            "a connection of the connector to kill",
            || async { (setup.kill_connections().await > 0).then_some(()) },
        )
        .await;
        kills += 1;
    }
    assert!(kills > 0, "the snapshot ended before the first kill");
    pipeline::testing::wait_until(
        Duration::from_secs(240),
        "the incremental snapshot to finish",
        || async { done().then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in load {
        w.await.unwrap();
    }
    setup.caught_up(900_001).await;
    let log = setup.log(1);
    assert!(log.contains("reconnecting"), "{log}");
    eprintln!(
        "{kills} kills of every connection mid-snapshot: {} reconnects, {} chunks read again",
        log.matches("reconnecting").count(),
        log.matches("the chunk in flight is read again").count()
    );

    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("purchases"), &mut schemas).await;
    same_rows(&setup.table().await, &replayed(&records));
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// A table keyed by (INT, VARCHAR): chunks end inside a run of the first
/// column, and each row is read exactly once, in key order; then an
/// `additional-conditions` filter reads only the rows it selects.
async fn composite_keys_and_additional_conditions(flavour: Flavour) {
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    let mut conn = admin(&setup.stack, Some(&setup.db)).await;
    conn.query_drop(
        "CREATE TABLE pairs (a INT NOT NULL, b VARCHAR(8) NOT NULL, v INT NOT NULL, \
         PRIMARY KEY (a, b))",
    )
    .await
    .unwrap();
    // 40 values of a, 30 of b each (b in text order != numeric order).
    let mut expected: Vec<(i64, String, i64)> = Vec::new();
    for a in 0..40i64 {
        for n in 0..30i64 {
            expected.push((a, format!("k{n}"), a * 100 + n));
        }
    }
    let values: Vec<String> = expected
        .iter()
        .map(|(a, b, v)| format!("({a}, '{b}', {v})"))
        .collect();
    conn.query_drop(format!("INSERT INTO pairs VALUES {}", values.join(",")))
        .await
        .unwrap();
    expected.sort();
    let mut child = setup.spawn(1);
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    let read = |records: &[Record]| -> Vec<(i64, String, i64)> {
        records
            .iter()
            .map(|r| {
                assert_eq!(r.op().as_deref(), Some("r"));
                assert_eq!(r.snapshot_marker().as_deref(), Some("incremental"));
                (
                    long(r.column("after", "a")).unwrap(),
                    string(r.column("after", "b")).unwrap(),
                    long(r.column("after", "v")).unwrap(),
                )
            })
            .collect()
    };

    setup
        .signal(
            "c-1",
            "execute-snapshot",
            &format!(r#"{{"data-collections": ["{}.pairs"]}}"#, setup.db),
        )
        .await;
    setup
        .snapshots_done(1, 1, "the incremental snapshot of pairs to finish")
        .await;
    setup.caught_up(900_001).await;
    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("pairs"), &mut schemas).await;
    assert_eq!(read(&records), expected, "every row once, in key order");

    setup
        .signal(
            "c-2",
            "execute-snapshot",
            &format!(
                r#"{{"data-collections": ["{0}.pairs"], "additional-conditions": [{{"data-collection": "{0}.pairs", "filter": "v % 7 = 0"}}]}}"#,
                setup.db
            ),
        )
        .await;
    setup
        .snapshots_done(1, 2, "the second incremental snapshot of pairs to finish")
        .await;
    setup.caught_up(900_002).await;
    let records = read_topic(&setup.stack, &setup.topic("pairs"), &mut schemas).await;
    let filtered: Vec<_> = expected.iter().filter(|r| r.2 % 7 == 0).cloned().collect();
    assert_eq!(read(&records[expected.len()..]), filtered);
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// An ALTER TABLE between two chunks: the chunks after it are read with
/// the new shape (the new column and its value), not the shape the
/// snapshot started with.
async fn a_column_added_mid_snapshot_is_in_the_next_chunks(flavour: Flavour) {
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    setup.seed().await;
    let mut child = setup.spawn(1);
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    let purchases = format!(
        r#"{{"data-collections": ["{}.purchases"], "type": "incremental"}}"#,
        setup.db
    );
    let chunk: u64 = CHUNK.parse().unwrap();
    setup
        .signals(&[
            ("a-1", "execute-snapshot", &purchases),
            ("a-2", "pause-snapshot", ""),
        ])
        .await;
    setup.key_reaches(chunk).await;
    let mut conn = admin(&setup.stack, Some(&setup.db)).await;
    conn.query_drop("ALTER TABLE purchases ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT 'new'")
        .await
        .unwrap();
    setup.signal("a-3", "resume-snapshot", "").await;
    setup
        .snapshots_done(1, 1, "the incremental snapshot to finish")
        .await;
    setup.caught_up(900_001).await;
    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("purchases"), &mut schemas).await;
    let keys: Vec<i64> = records.iter().filter_map(Record::key_id).collect();
    assert_eq!(keys, (1..=SEED_ROWS as i64).collect::<Vec<_>>());
    for r in &records {
        let note = string(r.column("after", "note"));
        if r.key_id() <= Some(chunk as i64) {
            assert_eq!(note, None, "read before the ALTER");
        } else {
            assert_eq!(note.as_deref(), Some("new"), "key {:?}", r.key_id());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// `read.only=true`: no watermark is written (the signal table stays
/// empty); the windows are bounded by `gtid_executed` read before and after
/// each chunk. Under concurrent writes, with the signal on the kafka
/// channel, the topic replayed by key equals the table. MariaDB (no
/// MySQL GTIDs) is refused at start.
async fn read_only_incremental_snapshot_under_load(flavour: Flavour) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    setup.seed().await;
    let topic = pipeline::testing::unique_name("signals");
    let group = pipeline::testing::unique_name("signal-group");
    let args = [
        "--read.only",
        "true",
        "--signal.enabled.channels",
        "kafka",
        "--signal.kafka.topic",
        &topic,
        "--signal.kafka.groupId",
        &group,
    ];
    let mut child = setup.spawn_with(1, &args);
    if flavour == Flavour::MariaDb {
        let status = pipeline::testing::wait_until(
            Duration::from_secs(60),
            "cdc to refuse read.only on MariaDB",
            || {
                let status = child.try_wait().unwrap();
                async move { status }
            },
        )
        .await;
        assert!(!status.success());
        assert!(
            setup.log(1).contains("read.only=true needs MySQL"),
            "{}",
            setup.log(1)
        );
        setup.cleanup().await;
        return;
    }
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = writers(&setup, &stop, 3);
    let execute = format!(
        r#"{{"type": "execute-snapshot", "data": {{"data-collections": ["{}.purchases"], "type": "incremental"}}}}"#,
        setup.db
    );
    let prefix = setup.config.connector.topic_prefix.clone();
    let producer: FutureProducer = setup.stack.kafka().side_producer().create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key(&prefix).payload(&execute),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("{topic}: {e}"));
    // Every connection killed once mid-snapshot: the stream replays from
    // the last emitted position with the window's watermarks kept.
    let done = || setup.log(1).contains("incremental snapshot: done");
    let mid = pipeline::testing::wait_until(
        Duration::from_secs(120),
        "a stored incremental key of 5000 or the end",
        || async {
            if done() {
                return Some(false);
            }
            (stored_key(&setup.stored()?)? >= 5_000).then_some(true)
        },
    )
    .await;
    if mid {
        assert!(setup.kill_connections().await > 0);
    }
    // Then SIGKILL once a later key is stored, and a restart on the same
    // offsets resumes the snapshot after it.
    let late = pipeline::testing::wait_until(
        Duration::from_secs(120),
        "a stored incremental key of 12000 or the end",
        || async {
            if done() {
                return Some(false);
            }
            (stored_key(&setup.stored()?)? >= 12_000).then_some(true)
        },
    )
    .await;
    let run = if late {
        child.kill().unwrap();
        child.wait().unwrap();
        child = setup.spawn_with(2, &args);
        2
    } else {
        1
    };
    setup
        .snapshots_done(run, 1, "the read-only incremental snapshot to finish")
        .await;
    if late {
        assert!(setup
            .log(2)
            .contains("resuming after the last delivered key"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut changes = 0;
    for w in load {
        changes += w.await.unwrap();
    }
    setup.caught_up(900_001).await;
    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("purchases"), &mut schemas).await;
    let reads = records
        .iter()
        .filter(|r| r.snapshot_marker().as_deref() == Some("incremental"))
        .count();
    eprintln!(
        "read-only: {changes} concurrent changes, {reads} incremental reads, connections killed mid-snapshot: {mid}, SIGKILL and restart: {late}"
    );
    assert!(reads > 20_000, "{reads}");
    same_rows(&setup.table().await, &replayed(&records));
    let mut conn = admin(&setup.stack, Some(&setup.db)).await;
    let written: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {SIGNAL_TABLE}"))
        .await
        .unwrap();
    assert_eq!(written, Some(0), "read-only: no watermark written");
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}

/// A table without a primary key, keyed by `message.key.columns`: the
/// incremental snapshot chunks by those columns (every row once, in key
/// order, over several chunks) and the records carry them as the key in
/// rule order, as Debezium does; a streamed change of a key column is then
/// a key change (delete, tombstone, create).
async fn a_keyless_table_is_chunked_by_its_message_key_columns(flavour: Flavour) {
    let Some(setup) = Setup::new(flavour).await else {
        return;
    };
    let mut conn = admin(&setup.stack, Some(&setup.db)).await;
    conn.query_drop(
        "CREATE TABLE events (v INT NOT NULL, seq INT NOT NULL, tenant VARCHAR(8) NOT NULL)",
    )
    .await
    .unwrap();
    // 12 tenants (text order differs from numeric: t10 before t2), 100 rows
    // each, inserted in reverse so that insertion order is no help.
    let mut expected: Vec<(String, i64, i64)> = Vec::new();
    for t in 0..12i64 {
        for seq in 0..100i64 {
            expected.push((format!("t{t}"), seq, t * 1000 + seq));
        }
    }
    let values: Vec<String> = expected
        .iter()
        .rev()
        .map(|(t, seq, v)| format!("({v}, {seq}, '{t}')"))
        .collect();
    conn.query_drop(format!("INSERT INTO events VALUES {}", values.join(",")))
        .await
        .unwrap();
    expected.sort();

    let keys = format!("{}.events:tenant,seq", setup.db);
    let mut child = setup.spawn_with(1, &["--message.key.columns", &keys]);
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored position", || async {
        setup.stored()
    })
    .await;
    setup
        .signal(
            "k-1",
            "execute-snapshot",
            &format!(r#"{{"data-collections": ["{}.events"]}}"#, setup.db),
        )
        .await;
    setup
        .snapshots_done(1, 1, "the incremental snapshot of events to finish")
        .await;
    conn.query_drop("UPDATE events SET seq = 1000 WHERE tenant = 't3' AND seq = 7")
        .await
        .unwrap();
    setup.caught_up(900_001).await;

    let mut schemas = Schemas::default();
    let records = read_topic(&setup.stack, &setup.topic("events"), &mut schemas).await;
    let key_of = |r: &Record| -> (String, i64) {
        let key = r.key.as_ref().expect("a keyed record");
        let Value::Record(fields) = unwrap_union(key) else {
            panic!("key is not a record: {key:?}")
        };
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tenant", "seq"], "key columns in rule order");
        (
            string(field(key, "tenant").cloned()).unwrap(),
            long(field(key, "seq").cloned()).unwrap(),
        )
    };
    assert!(records.len() >= expected.len(), "{} records", records.len());
    let (snapshot, streamed) = records.split_at(expected.len());
    let read: Vec<(String, i64, i64)> = snapshot
        .iter()
        .map(|r| {
            assert_eq!(r.op().as_deref(), Some("r"));
            assert_eq!(r.snapshot_marker().as_deref(), Some("incremental"));
            let (tenant, seq) = key_of(r);
            assert_eq!(
                string(r.column("after", "tenant")).as_deref(),
                Some(tenant.as_str())
            );
            assert_eq!(long(r.column("after", "seq")), Some(seq));
            (tenant, seq, long(r.column("after", "v")).unwrap())
        })
        .collect();
    assert_eq!(
        read, expected,
        "every row once, in key order (1200 rows, chunks of 250)"
    );
    let shapes: Vec<(Option<String>, (String, i64))> =
        streamed.iter().map(|r| (r.op(), key_of(r))).collect();
    assert_eq!(
        shapes,
        [
            (Some("d".to_owned()), ("t3".to_owned(), 7)),
            (None, ("t3".to_owned(), 7)),
            (Some("c".to_owned()), ("t3".to_owned(), 1000)),
        ],
        "the key change"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    setup.cleanup().await;
}
