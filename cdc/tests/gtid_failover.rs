//! Resuming by GTID on real MySQL 9.7 (a GTID set) and MariaDB 10.11 (a
//! position per replication domain), on private servers (see
//! `pipeline::testing::private_mysql` / `private_mariadb`; Kafka and the
//! registry are the stack's):
//!
//! - failover: the connector streams from A, stops in the middle of a large
//!   transaction (cleanly, or aborted like a SIGKILL), rows keep changing on
//!   A and so on its replica B (GTID auto-position / `MASTER_USE_GTID`,
//!   `log_replica_updates`, other binlog files and positions, transactions
//!   of its own: on MariaDB in a domain of its own), B is promoted and
//!   written to, and the connector restarts pointed at B with the offsets
//!   A's stream stored. The topic replayed by key must equal B's table, with
//!   exactly the expected change events: nothing lost, and nothing emitted
//!   twice (after an abort, the records Kafka had beyond the stored offset
//!   come again, as exact re-sends: at-least-once).
//! - a purged GTID range the connector has not read is the clear error, and
//!   `snapshot.mode=when_needed` snapshots again instead (MySQL here; the
//!   MariaDB purge is in `source_restart`).

mod stack_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apache_avro::types::Value;
use cdc::gtid::{MariaDbPosition, MySqlGtidSet};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use pipeline::testing::private_mysql::{chroot, replication_args, PrivateMySql};
use pipeline::testing::{free_port, private_mariadb, Flavour};
use stack_support::{
    field, file_offset, replay, string, unwrap_union, with, LoggedChild, PrivateServer, Record,
};

per_flavour!(
    clean_stop_then_failover_to_a_replica_loses_and_repeats_nothing,
    abort_then_failover_to_a_replica_loses_nothing,
);

const DB: &str = "failoverdb";
/// Rows events of the large transaction, and rows per event (one INSERT
/// each: ~2 KB, well under binlog_row_event_max_size, so A and B group the
/// rows alike).
const BIG_STATEMENTS: i64 = 100;
const BIG_ROWS: i64 = 50;
const BIG_ROUNDS: i64 = 5;

/// How the connector stops on A.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// Shutdown (in process): every record sent is acknowledged and its
    /// position stored first, so it stops where its streamer got to.
    Clean,
    /// SIGKILL of the `cdc` binary inside a large transaction: the stored
    /// position is mid-transaction, and Kafka may hold records past it.
    Abort,
}

/// The `cdc` binary, configured by environment from `config`.
fn spawn_cdc(config: &cdc::config::Config, dir: &Path) -> LoggedChild {
    let props = &config.connector.properties.0;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdc"));
    cmd.env_remove("CDC_CONFIG_FILE");
    for key in [
        "database.hostname",
        "database.port",
        "database.user",
        "database.password",
        "database.server.id",
        "database.include.list",
        "topic.prefix",
        "offset.storage",
        "offset.storage.file.filename",
        "offset.flush.interval.ms",
        "binlog.heartbeat.interval.ms",
    ] {
        let value = props.get(key).cloned().unwrap_or_default();
        cmd.env(key.to_ascii_uppercase().replace('.', "_"), value);
    }
    cmd.env("CONNECTOR_NAME", &config.connector.name)
        .env("KAFKA_BOOTSTRAP_SERVERS", &config.kafka.bootstrap_servers)
        .env("SCHEMA_REGISTRY_URL", config.registry.url.expose())
        .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "info");
    LoggedChild::spawn(cmd, dir.join("cdc.log"))
}

/// The connector on A: in process (stopped cleanly) or the binary (killed).
enum OnA {
    InProcess(stack_support::Running),
    Binary(LoggedChild),
}

type Row = (i64, String, i32);

async fn table(conn: &mut Conn) -> Vec<Row> {
    conn.query(format!("SELECT id, name, n FROM `{DB}`.items ORDER BY id"))
        .await
        .unwrap()
}

fn replayed(records: &[Record]) -> Vec<Row> {
    replay(records)
        .iter()
        .map(|(id, r)| {
            let n = match r.column("after", "n") {
                Some(Value::Int(n)) => n,
                other => panic!("n is not an int: {other:?}"),
            };
            (*id, string(r.column("after", "name")).expect("name"), n)
        })
        .collect()
}

/// Change events by op (tombstones under "tombstone").
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts(BTreeMap<String, usize>);

impl Counts {
    fn add(&mut self, op: &str, n: usize) {
        *self.0.entry(op.to_owned()).or_default() += n;
    }

    fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut counts = Self::default();
        for r in records {
            counts.add(r.op().as_deref().unwrap_or("tombstone"), 1);
        }
        counts
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Change events only (tombstones left out).
    fn changes(&self) -> Self {
        let mut out = self.clone();
        out.0.remove("tombstone");
        out
    }
}

/// A change's identity independent of the server it was read from: key, op,
/// GTID and row index in its rows event. Panics when two records with one
/// identity differ in their images: a repeat must be an exact re-send.
fn distinct_changes(records: &[Record]) -> BTreeMap<String, &Record> {
    let mut seen: BTreeMap<String, &Record> = BTreeMap::new();
    for r in records.iter().filter(|r| r.value.is_some()) {
        let source = r.field("source").expect("source");
        let coordinate = |name| format!("{:?}", field(source, name).map(unwrap_union));
        let identity = format!(
            "{:?} {:?} {} {} {}",
            r.key_id(),
            r.op(),
            coordinate("gtid"),
            coordinate("row"),
            // Snapshot reads have no GTID.
            if r.op().as_deref() == Some("r") {
                format!("{:?}", r.column("after", "n"))
            } else {
                String::new()
            }
        );
        if let Some(first) = seen.get(identity.as_str()) {
            for part in ["before", "after", "op"] {
                assert_eq!(
                    first.field(part),
                    r.field(part),
                    "a repeated record ({identity}) is not an exact re-send"
                );
            }
        } else {
            seen.insert(identity, r);
        }
    }
    seen
}

async fn gtid_executed(conn: &mut Conn) -> MySqlGtidSet {
    let text: String = conn
        .query_first("SELECT @@GLOBAL.gtid_executed")
        .await
        .unwrap()
        .unwrap();
    MySqlGtidSet::parse(&text).unwrap()
}

/// What a server has executed, in its flavour's GTID terms.
#[derive(Debug, Clone)]
enum Executed {
    MySql(MySqlGtidSet),
    MariaDb(MariaDbPosition),
}

impl Executed {
    async fn of(conn: &mut Conn, flavour: Flavour) -> Self {
        match flavour {
            Flavour::MySql => Self::MySql(gtid_executed(conn).await),
            Flavour::MariaDb => {
                let text: String = conn
                    .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                    .await
                    .unwrap()
                    .unwrap();
                Self::MariaDb(MariaDbPosition::parse(&text).unwrap())
            }
        }
    }

    /// Whether everything in `self` is in `other`.
    fn within(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::MySql(a), Self::MySql(b)) => a.is_subset_of(b),
            (Self::MariaDb(a), Self::MariaDb(b)) => a.ahead_of(b).is_empty(),
            _ => unreachable!("one flavour per test"),
        }
    }

    /// Whether an offset's `gtids` text has everything in `self`.
    fn within_text(&self, gtids: &str) -> bool {
        match self {
            Self::MySql(a) => MySqlGtidSet::parse(gtids).is_ok_and(|b| a.is_subset_of(&b)),
            Self::MariaDb(a) => {
                MariaDbPosition::parse(gtids).is_ok_and(|b| a.ahead_of(&b).is_empty())
            }
        }
    }
}

async fn binlog_status(conn: &mut Conn, flavour: Flavour) -> (String, u64) {
    let statement = match flavour {
        Flavour::MySql => "SHOW BINARY LOG STATUS",
        Flavour::MariaDb => "SHOW MASTER STATUS",
    };
    conn.query_first(statement)
        .await
        .unwrap()
        .map(|row: mysql_async::Row| (row.get(0).unwrap(), row.get(1).unwrap()))
        .unwrap()
}

/// The connector's settings for the server on `port`; the name, prefix and
/// offsets file stay the same across servers (that is the point).
fn config(
    stack: &pipeline::testing::Stack,
    port: u16,
    prefix: &str,
    offsets: &Path,
) -> cdc::config::Config {
    let connector =
        cdc::config::ConnectorConfig::for_database("127.0.0.1", port, "root", "", prefix);
    let config = cdc::config::Config {
        connector,
        kafka: stack.kafka(),
        registry: stack.registry(),
    };
    with(
        &config,
        &[
            ("database.include.list", DB),
            ("database.server.id", "6401"),
            ("offset.storage", "file"),
            (
                "offset.storage.file.filename",
                &offsets.display().to_string(),
            ),
            ("offset.flush.interval.ms", "20"),
            ("binlog.heartbeat.interval.ms", "1000"),
        ],
    )
}

async fn run_statements(conn: &mut Conn, statements: &[String]) {
    for s in statements {
        conn.query_drop(s).await.unwrap();
    }
}

/// A private server with binary logging, `server_id` `id`, and (`replica`)
/// what a replica that may be promoted needs.
async fn server(flavour: Flavour, id: u32, replica: bool) -> Option<PrivateServer> {
    PrivateServer::start_with(flavour, |root| match flavour {
        Flavour::MySql => {
            let mut args = replication_args(id);
            if replica {
                args.extend([
                    "--log-replica-updates=ON".to_owned(),
                    "--replica-preserve-commit-order=ON".to_owned(),
                    "--skip-replica-start".to_owned(),
                ]);
            }
            args
        }
        Flavour::MariaDb => {
            let mut args = private_mariadb::replication_args(root, id);
            if replica {
                args.extend([
                    "--log-slave-updates".to_owned(),
                    "--skip-slave-start".to_owned(),
                ]);
            }
            args
        }
    })
    .await
}

async fn failover(flavour: Flavour, stop: Stop) {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let Some(a) = server(flavour, 1, false).await else {
        return;
    };
    let b = server(flavour, 2, true)
        .await
        .expect("the same programs as A");
    let mut on_a = a.admin().await;
    let mut on_b = b.admin().await;

    // B has transactions of its own and other binlog files before it
    // replicates A, so its files and positions differ from A's. On MariaDB
    // its own writes go to a replication domain of their own, as a MariaDB
    // replica's local writes must (one domain's sequence numbers come from
    // one primary at a time).
    let own = [
        "CREATE DATABASE bonly",
        "CREATE TABLE bonly.t (id INT PRIMARY KEY)",
        "INSERT INTO bonly.t VALUES (1), (2)",
        "FLUSH BINARY LOGS",
        "FLUSH BINARY LOGS",
    ]
    .map(String::from);
    let replicate = match flavour {
        Flavour::MySql => vec![
            format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.1', SOURCE_PORT = {}, \
                 SOURCE_USER = 'root', SOURCE_PASSWORD = '', SOURCE_AUTO_POSITION = 1, \
                 GET_SOURCE_PUBLIC_KEY = 1",
                a.port()
            ),
            "START REPLICA".into(),
        ],
        Flavour::MariaDb => vec![
            format!(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
                 MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos",
                a.port()
            ),
            "START SLAVE".into(),
        ],
    };
    if flavour == Flavour::MariaDb {
        run_statements(&mut on_b, &["SET SESSION gtid_domain_id = 2".into()]).await;
    }
    run_statements(&mut on_b, &own).await;
    run_statements(&mut on_b, &replicate).await;

    run_statements(
        &mut on_a,
        &[
            format!("CREATE DATABASE `{DB}`"),
            format!(
                "CREATE TABLE `{DB}`.items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, n INT NOT NULL)"
            ),
            format!("INSERT INTO `{DB}`.items VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)"),
        ],
    )
    .await;
    let mut expected = Counts::default();
    expected.add("r", 3);

    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    let prefix = pipeline::testing::unique_name("gtidfo");
    let topic = format!("{prefix}.{DB}.items");
    let on_a_config = config(&stack, a.port(), &prefix, &offsets);
    let connector = match stop {
        Stop::Clean => OnA::InProcess(stack_support::start(on_a_config)),
        Stop::Abort => OnA::Binary(spawn_cdc(&on_a_config, dir.path())),
    };
    stack_support::wait_for_records(&stack, &topic, "the snapshot", |r| r.len() == 3).await;

    // Streamed from A: a multi-row insert, an update, a delete.
    run_statements(
        &mut on_a,
        &[
            format!(
                "INSERT INTO `{DB}`.items VALUES (4, 'four', 4), (5, 'five', 5), (6, 'six', 6)"
            ),
            format!("UPDATE `{DB}`.items SET name = 'uno' WHERE id = 1"),
            format!("DELETE FROM `{DB}`.items WHERE id = 2"),
        ],
    )
    .await;
    expected.add("c", 3);
    expected.add("u", 1);
    expected.add("d", 1);
    expected.add("tombstone", 1);
    let streamed = table(&mut on_a).await;
    stack_support::wait_for_records(&stack, &topic, "the first changes", |r| {
        replayed(r) == streamed
    })
    .await;

    // Large transactions until the connector is caught with a stored
    // position inside one (it streams a few thousand rows in tens of ms, and
    // positions are stored every 20 ms); then it stops at once.
    let mut mid = false;
    for round in 0..BIG_ROUNDS {
        let first_id = 1000 + round * BIG_STATEMENTS * BIG_ROWS;
        let mut big = vec!["START TRANSACTION".to_owned()];
        for s in 0..BIG_STATEMENTS {
            let values: Vec<String> = (0..BIG_ROWS)
                .map(|r| {
                    let id = first_id + s * BIG_ROWS + r;
                    format!("({id}, 'big{id}', {r})")
                })
                .collect();
            big.push(format!(
                "INSERT INTO `{DB}`.items VALUES {}",
                values.join(", ")
            ));
        }
        big.push(format!(
            "UPDATE `{DB}`.items SET n = n + 1000 WHERE id BETWEEN {first_id} AND {}",
            first_id + 19
        ));
        big.push("COMMIT".into());
        run_statements(&mut on_a, &big).await;
        expected.add("c", (BIG_STATEMENTS * BIG_ROWS) as usize);
        expected.add("u", 20);
        let after_big = Executed::of(&mut on_a, flavour).await;
        // A tight poll (1 ms) with a deadline: the window is short.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        mid = loop {
            if let Some(o) = file_offset(&offsets) {
                if o.event > 0 || o.row > 0 {
                    break true;
                }
                if o.gtids.as_deref().is_some_and(|g| after_big.within_text(g)) {
                    break false;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no stored position inside or past the large transaction within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        if mid {
            break;
        }
    }
    match connector {
        OnA::InProcess(running) => {
            running.stop().await;
        }
        OnA::Binary(process) => drop(process),
    }
    let stored = file_offset(&offsets).expect("a stored offset");
    eprintln!("{stop:?}: stopped at {stored} (caught mid-transaction: {mid})");
    assert!(
        mid,
        "the connector was never caught inside a large transaction in {BIG_ROUNDS} rounds"
    );
    // Records of the transaction in flight that Kafka holds now (the
    // killed process may have had more acknowledged than it stored).
    let in_flight = |records: &[Record]| {
        let gtid = stored.in_flight_gtid.clone().map(Value::String);
        records
            .iter()
            .filter(|r| r.value.is_some())
            .filter(|r| {
                r.field("source")
                    .and_then(|s| field(s, "gtid"))
                    .map(unwrap_union)
                    == gtid.as_ref()
            })
            .count()
    };
    let mut delivered_before = 0;
    if stop == Stop::Abort {
        // What the restart must skip: part of the transaction in flight.
        assert!(
            stored.event > 0 || stored.row > 0,
            "killed at a transaction boundary: {stored}"
        );
        assert!(stored.in_flight_gtid.is_some(), "{stored:?}");
        let records = stack_support::wait_for_records(&stack, &topic, "the topic", |_| true).await;
        delivered_before = in_flight(&records);
    }
    let a_position = binlog_status(&mut on_a, flavour).await;

    // Rows keep changing on A, and so on B; then B is promoted.
    run_statements(
        &mut on_a,
        &[
            format!("INSERT INTO `{DB}`.items VALUES (20, 'twenty', 20), (21, 'twenty-one', 21)"),
            format!("UPDATE `{DB}`.items SET n = n + 10 WHERE id = 3"),
            format!("DELETE FROM `{DB}`.items WHERE id = 4"),
            format!(
                "START TRANSACTION; INSERT INTO `{DB}`.items VALUES (30, 'thirty', 30); \
                 UPDATE `{DB}`.items SET name = 'cinq' WHERE id = 5; \
                 DELETE FROM `{DB}`.items WHERE id = 6; COMMIT"
            ),
        ],
    )
    .await;
    expected.add("c", 3);
    expected.add("u", 2);
    expected.add("d", 2);
    expected.add("tombstone", 2);
    let on_a_executed = Executed::of(&mut on_a, flavour).await;
    pipeline::testing::wait_until(Duration::from_secs(60), "B to catch up with A", || {
        let want = on_a_executed.clone();
        let b = &b;
        async move {
            let mut conn = b.admin().await;
            want.within(&Executed::of(&mut conn, flavour).await)
                .then_some(())
        }
    })
    .await;
    let promote = match flavour {
        Flavour::MySql => ["STOP REPLICA", "RESET REPLICA ALL"],
        Flavour::MariaDb => ["STOP SLAVE", "RESET SLAVE ALL"],
    };
    run_statements(&mut on_b, &promote.map(String::from)).await;
    drop(on_a);
    drop(a);
    let b_position = binlog_status(&mut on_b, flavour).await;
    assert_ne!(
        a_position.0, b_position.0,
        "B's binlog files must differ from A's for this test to mean anything"
    );
    assert!(
        !b_position.0.is_empty() && stored.file != b_position.0,
        "stored {stored}, B at {b_position:?}"
    );

    // Written to as the new primary, before and after the connector restarts.
    run_statements(
        &mut on_b,
        &[format!("INSERT INTO `{DB}`.items VALUES (40, 'forty', 40)")],
    )
    .await;
    expected.add("c", 1);
    let running = stack_support::start(config(&stack, b.port(), &prefix, &offsets));
    run_statements(
        &mut on_b,
        &[
            format!("UPDATE `{DB}`.items SET n = n + 100 WHERE id = 1"),
            format!("DELETE FROM `{DB}`.items WHERE id = 20"),
        ],
    )
    .await;
    expected.add("u", 1);
    expected.add("d", 1);
    expected.add("tombstone", 1);

    let truth = table(&mut on_b).await;
    stack_support::wait_for_records(&stack, &topic, "every change", |r| {
        replayed(r) == truth && distinct_changes(r).len() >= expected.changes().total()
    })
    .await;
    let summary = running.stop().await;
    // Read again after the stop: nothing may have come since.
    let records = stack_support::wait_for_records(&stack, &topic, "the topic", |_| true).await;
    assert_eq!(
        replayed(&records),
        truth,
        "the topic replayed by key equals B's table"
    );
    assert_eq!(summary.snapshot_rows, None, "resumed, not re-snapshotted");
    let after = file_offset(&offsets).unwrap();
    eprintln!("{stop:?}: resumed on B, now at {after}");
    assert_ne!(after.server_id, 1, "the offset now names B's position");

    let distinct = distinct_changes(&records);
    let all = Counts::of(&records);
    match stop {
        // Nothing lost, nothing twice: exactly the expected records.
        Stop::Clean => assert_eq!(all, expected, "records on the topic"),
        // Nothing lost; repeats (exact, checked above) only of what Kafka
        // had past the stored offset.
        Stop::Abort => {
            assert_eq!(
                Counts::of(distinct.values().copied()),
                expected.changes(),
                "distinct changes"
            );
            assert!(all.total() >= expected.total(), "{all:?} vs {expected:?}");
            // The restart re-read the transaction in flight on B and skipped
            // exactly the stored counts: what B sent of it is its whole size
            // less the stored skip (every rows event before the UPDATE is
            // one BIG_ROWS-row INSERT).
            assert!(stored.event < BIG_STATEMENTS as u64);
            let skipped = (stored.event * BIG_ROWS as u64 + stored.row) as usize;
            let size = (BIG_STATEMENTS * BIG_ROWS + 20) as usize;
            assert!(delivered_before >= skipped, "stored past what Kafka had");
            assert_eq!(
                in_flight(&records),
                delivered_before + size - skipped,
                "records of the transaction in flight after the restart"
            );
        }
    }
    eprintln!(
        "{stop:?}: {} records ({:?}), expected {:?}",
        records.len(),
        all.0,
        expected.0
    );
    drop(b);
}

async fn clean_stop_then_failover_to_a_replica_loses_and_repeats_nothing(flavour: Flavour) {
    failover(flavour, Stop::Clean).await;
}

async fn abort_then_failover_to_a_replica_loses_nothing(flavour: Flavour) {
    failover(flavour, Stop::Abort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_gtids_not_yet_read_are_a_clear_error() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let Some(root) = chroot() else {
        return;
    };
    let server = PrivateMySql::start(&root, &replication_args(1)).await;
    let mut conn = server.admin().await;
    run_statements(
        &mut conn,
        &[
            format!("CREATE DATABASE `{DB}`"),
            format!(
                "CREATE TABLE `{DB}`.items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, n INT NOT NULL)"
            ),
            format!("INSERT INTO `{DB}`.items VALUES (1, 'one', 1)"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    let prefix = pipeline::testing::unique_name("gtidpurge");
    let topic = format!("{prefix}.{DB}.items");
    let config = config(&stack, server.port, &prefix, &offsets);
    let running = stack_support::start(config.clone());
    stack_support::wait_for_records(&stack, &topic, "the snapshot", |r| r.len() == 1).await;
    running.stop().await;
    let stored = file_offset(&offsets).expect("a stored offset");
    let stored_set = MySqlGtidSet::parse(stored.gtids.as_deref().unwrap()).unwrap();

    // Transactions the connector never read, then their binlog purged.
    run_statements(
        &mut conn,
        &[
            format!("INSERT INTO `{DB}`.items VALUES (2, 'two', 2)"),
            format!("INSERT INTO `{DB}`.items VALUES (3, 'three', 3)"),
            "FLUSH BINARY LOGS".into(),
        ],
    )
    .await;
    let (current, _) = binlog_status(&mut conn, Flavour::MySql).await;
    conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
        .await
        .unwrap();
    let purged: String = conn
        .query_first("SELECT @@GLOBAL.gtid_purged")
        .await
        .unwrap()
        .unwrap();
    let lost = MySqlGtidSet::parse(&purged).unwrap().subtract(&stored_set);
    assert!(!lost.is_empty(), "the purge removed unread transactions");

    let err = stack_support::start(config.clone())
        .task
        .await
        .unwrap()
        .expect_err("purged GTIDs must stop the connector");
    match &err {
        cdc::CdcError::Start(cdc::start::StartError::PurgedGtids { lost: named, .. }) => {
            assert_eq!(named, &lost.to_string(), "{err}")
        }
        other => panic!("expected the purged-GTIDs error, got {other}"),
    }
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("snapshot.mode=when_needed"),
        "{err}"
    );
    eprintln!("{err}");

    // when_needed: a new snapshot instead.
    let running = stack_support::start(with(&config, &[("snapshot.mode", "when_needed")]));
    let records = stack_support::wait_for_records(&stack, &topic, "the new snapshot", |r| {
        r.iter().filter(|r| r.op().as_deref() == Some("r")).count() == 4
    })
    .await;
    let summary = running.stop().await;
    assert_eq!(summary.snapshot_rows, Some(3));
    assert_eq!(replayed(&records).len(), 3);
}
