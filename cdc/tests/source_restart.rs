//! The `cdc` binary survives its source server going away: a clean restart
//! and a SIGKILL (crash recovery) of a PRIVATE MariaDB or MySQL on the same
//! port and datadir (`mariadb::*`, `mysql::*`). The process must stay up,
//! reconnect with backoff by itself, and the topic replayed by key must equal
//! the table: nothing lost, and any repeated record an exact re-send of the
//! same change. A binlog purged while the connector is stopped stops it with
//! a definite error that names the way out. A frozen server (SIGSTOP: the
//! connection stays open, nothing arrives, not even server heartbeats) is given up
//! after 3 silent `binlog.heartbeat.interval.ms` periods and reconnected to once it thaws.
//!
//! The shared stack's servers must never be restarted (other tests use them),
//! so each test starts its own server (see `pipeline::testing::private_mariadb`
//! and `private_mysql`); Kafka and the registry are the stack's.

mod stack_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use pipeline::testing::{free_port, Flavour};
use stack_support::{field, replay, string, unwrap_union, LoggedChild, PrivateServer, Record};

per_flavour!(
    clean_restart_of_the_source_loses_nothing,
    sigkill_of_the_source_loses_nothing,
    a_frozen_source_forces_a_reconnect_and_loses_nothing,
    a_binlog_purged_while_stopped_is_a_clear_error_then_when_needed_snapshots,
);

const BIN: &str = env!("CARGO_BIN_EXE_cdc");
/// The source server's own `server_id`.
const SOURCE_SERVER_ID: u32 = 7;
/// The connector's `database.server.id` (distinct from the source's).
const OUR_SERVER_ID: u32 = 5401;
/// The demo's connector account, granted exactly as the shop migrations do.
const CONNECTOR_ACCOUNT: &str = include_str!("../../migrations/mysql/V3__connector_account.sql");
const CDC_USER: &str = "cdc";
const CDC_PASSWORD: &str = "cdc-password";
const DB: &str = "restartdb";
/// Distinct changes the test makes (snapshot reads included; tombstones not).
const CHANGES: usize = 3 + 4 + 7;

/// How the source server goes away.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// `SHUTDOWN`: the server closes the binlog connection itself.
    Clean,
    /// SIGKILL: the kernel drops the connection; the restart recovers.
    Crash,
    /// SIGSTOP past 3 heartbeat periods, then SIGCONT: the connection stays
    /// open but silent, so only the heartbeat watch can notice.
    Frozen,
}

/// The `cdc` binary as a child (see [`LoggedChild`]), with its metrics
/// endpoint.
struct CdcProcess {
    process: LoggedChild,
    metrics_addr: String,
}

impl CdcProcess {
    fn spawn(
        stack: &pipeline::testing::Stack,
        port: u16,
        prefix: &str,
        dir: &std::path::Path,
    ) -> Self {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(BIN);
        command
            .env_remove("CDC_CONFIG_FILE")
            .env("DATABASE_HOSTNAME", "127.0.0.1")
            .env("DATABASE_PORT", port.to_string())
            .env("DATABASE_USER", CDC_USER)
            .env("DATABASE_PASSWORD", CDC_PASSWORD)
            .env("DATABASE_SERVER_ID", OUR_SERVER_ID.to_string())
            .env("TOPIC_PREFIX", prefix)
            .env("DATABASE_INCLUDE_LIST", DB)
            .env("KAFKA_BOOTSTRAP_SERVERS", &stack.kafka_bootstrap_servers)
            .env("SCHEMA_REGISTRY_URL", &stack.schema_registry_url)
            .env("METRICS_ADDR", &metrics_addr)
            // A dead connection that the kernel did not report is noticed
            // after 3 silent periods.
            .env("BINLOG_HEARTBEAT_INTERVAL_MS", "1000")
            .env("OFFSET_FLUSH_INTERVAL_MS", "100")
            .env("RUST_LOG", "info");
        Self {
            process: LoggedChild::spawn(command, dir.join("cdc.log")),
            metrics_addr,
        }
    }

    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.process.child.try_wait().unwrap() {
            panic!(
                "cdc exited ({status}) {when} instead of reconnecting:\n{}",
                self.process.log_text()
            );
        }
    }

    /// The value on the first /metrics line starting with `prefix` (name and labels).
    async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|n| n.trim().parse().ok())
    }
}

type Row = (i64, String, i32);

async fn table(conn: &mut Conn) -> Vec<Row> {
    conn.query(format!("SELECT id, name, n FROM `{DB}`.items ORDER BY id"))
        .await
        .unwrap()
}

fn int(v: Option<Value>) -> i32 {
    match v {
        Some(Value::Int(n)) => n,
        other => panic!("not an int: {other:?}"),
    }
}

fn replayed(records: &[Record]) -> Vec<Row> {
    replay(records)
        .iter()
        .map(|(id, r)| {
            (
                *id,
                string(r.column("after", "name")).expect("name is NOT NULL"),
                int(r.column("after", "n")),
            )
        })
        .collect()
}

/// The change records (tombstones left out) by identity: key, op and the
/// binlog coordinates of the row. Panics if two records with one identity
/// differ in their images or source: a repeat must be an exact re-send.
fn distinct_changes(records: &[Record]) -> BTreeMap<String, &Record> {
    let mut seen: BTreeMap<String, &Record> = BTreeMap::new();
    for r in records.iter().filter(|r| r.value.is_some()) {
        let source = r.field("source").expect("source");
        let coordinate = |name| format!("{:?}", field(source, name).map(unwrap_union));
        let identity = format!(
            "{:?} {:?} {} {} {}",
            r.key_id(),
            r.op(),
            coordinate("file"),
            coordinate("pos"),
            coordinate("row")
        );
        if let Some(first) = seen.get(identity.as_str()) {
            for part in ["before", "after", "source"] {
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

async fn source_goes_away_and_comes_back(flavour: Flavour, outage: Outage) {
    // Kafka and the registry of the stack; the source is private.
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let Some(mut server) = PrivateServer::start(flavour, SOURCE_SERVER_ID).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = server.port();
    let mut conn = server.admin().await;
    conn.query_drop(CONNECTOR_ACCOUNT).await.unwrap();
    conn.query_drop(format!(
        "CREATE DATABASE `{DB}`;
         CREATE TABLE `{DB}`.items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, n INT NOT NULL);
         INSERT INTO `{DB}`.items VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3);"
    ))
    .await
    .unwrap();

    let prefix = pipeline::testing::unique_name("restart");
    let topic = format!("{prefix}.{DB}.items");
    let mut cdc = CdcProcess::spawn(&stack, port, &prefix, dir.path());

    // Snapshot (3 reads), then streamed changes (2 creates in one rows
    // event, 1 update, 1 delete): both work before the outage.
    stack_support::wait_for_records(&stack, &topic, "the snapshot", |r| replayed(r).len() == 3)
        .await;
    conn.query_drop(format!(
        "INSERT INTO `{DB}`.items VALUES (4, 'four', 4), (5, 'five', 5);
         UPDATE `{DB}`.items SET name = 'uno' WHERE id = 1;
         DELETE FROM `{DB}`.items WHERE id = 2;"
    ))
    .await
    .unwrap();
    let before = table(&mut conn).await;
    stack_support::wait_for_records(&stack, &topic, "the streamed changes", |r| {
        replayed(r) == before
    })
    .await;
    drop(conn);

    match outage {
        Outage::Clean => server.stop().await,
        Outage::Crash => server.kill(),
        Outage::Frozen => server.freeze(true),
    }
    // The loss is noticed (and counted) while the server is down, and the
    // process keeps retrying rather than exiting.
    pipeline::testing::wait_until(
        Duration::from_secs(30),
        "cdc to notice the lost binlog connection",
        || async {
            cdc.metric("cdc_errors_total{kind=\"binlog\"} ")
                .await
                .filter(|n| *n >= 1.0)
        },
    )
    .await;
    cdc.assert_running("while the server was down");
    if matches!(outage, Outage::Frozen) {
        // The silent connection was given up: not streaming, visibly.
        assert_eq!(cdc.metric("cdc_streaming ").await, Some(0.0));
    }

    match outage {
        Outage::Clean | Outage::Crash => server.start_again().await,
        Outage::Frozen => server.freeze(false),
    }
    cdc.assert_running("after the server came back");
    let mut conn = server.admin().await;
    for statement in [
        format!("INSERT INTO `{DB}`.items VALUES (6, 'six', 6)"),
        format!("INSERT INTO `{DB}`.items VALUES (7, 'seven', 7)"),
        format!("UPDATE `{DB}`.items SET n = n + 10 WHERE id = 3"),
        format!("DELETE FROM `{DB}`.items WHERE id = 4"),
        format!("INSERT INTO `{DB}`.items VALUES (8, 'eight', 8)"),
        // One transaction of two rows events.
        format!(
            "START TRANSACTION;
             INSERT INTO `{DB}`.items VALUES (9, 'nine', 9);
             UPDATE `{DB}`.items SET name = 'cinq' WHERE id = 5;
             COMMIT"
        ),
    ] {
        conn.query_drop(statement).await.unwrap();
    }
    let after = table(&mut conn).await;
    assert_eq!(after.len(), 7, "{after:?}");

    let records = stack_support::wait_for_records(&stack, &topic, "every change", |r| {
        replayed(r) == after && distinct_changes(r).len() >= CHANGES
    })
    .await;
    cdc.assert_running("at the end");
    let distinct = distinct_changes(&records);
    assert_eq!(
        distinct.len(),
        CHANGES,
        "changes on the topic: {:#?}",
        distinct.keys().collect::<Vec<_>>()
    );
    let tombstones = records.iter().filter(|r| r.value.is_none()).count();
    assert!(tombstones >= 2, "one tombstone per delete: {tombstones}");
    let reads = distinct.values().filter(|r| r.op().as_deref() == Some("r"));
    assert_eq!(reads.count(), 3, "only the first snapshot ran");
    eprintln!(
        "{flavour} {outage:?}: {} records, {} distinct changes, {} binlog reconnect errors",
        records.len(),
        distinct.len(),
        cdc.metric("cdc_errors_total{kind=\"binlog\"} ")
            .await
            .unwrap_or_default()
    );
}

async fn clean_restart_of_the_source_loses_nothing(flavour: Flavour) {
    source_goes_away_and_comes_back(flavour, Outage::Clean).await;
}

async fn sigkill_of_the_source_loses_nothing(flavour: Flavour) {
    source_goes_away_and_comes_back(flavour, Outage::Crash).await;
}

async fn a_frozen_source_forces_a_reconnect_and_loses_nothing(flavour: Flavour) {
    source_goes_away_and_comes_back(flavour, Outage::Frozen).await;
}

/// The connector stops; the server rotates and purges the binlog holding the
/// stored position (as `binlog_expire_logs_seconds` would): the next start
/// fails with a definite error naming `snapshot.mode=when_needed`, and with
/// that mode it snapshots again, rows written while it was down included.
async fn a_binlog_purged_while_stopped_is_a_clear_error_then_when_needed_snapshots(
    flavour: Flavour,
) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let Some(server) = PrivateServer::start(flavour, SOURCE_SERVER_ID).await else {
        return;
    };
    let private = server.stack(&stack);
    let db = stack_support::demo_database(&private).await;
    let mut conn = stack_support::admin(&private, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    let file = offsets.display().to_string();
    let config = stack_support::with(
        &stack_support::config(&private, &db),
        &[
            ("offset.storage", "file"),
            ("offset.storage.file.filename", &file),
        ],
    );
    let users = format!("{}.{db}.users", config.connector.topic_prefix);
    let running = stack_support::start(config.clone());
    stack_support::wait_for_records(&stack, &users, "the snapshot", |r| !r.is_empty()).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (2, 'b@x')")
        .await
        .unwrap();
    stack_support::wait_for_records(&stack, &users, "the insert", |r| r.len() >= 2).await;
    running.stop().await;
    let stored: cdc::offsets::SourceOffset =
        serde_json::from_str(&std::fs::read_to_string(&offsets).unwrap()).unwrap();

    conn.query_drop("INSERT INTO users (id, email) VALUES (3, 'c@x')")
        .await
        .unwrap();
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let (current, _) = stack_support::binlog_status(&mut conn, &private).await;
    assert_ne!(current, stored.file);
    // A server skips a binlog file a dump thread still reads (MariaDB may
    // keep the stopped connector's thread for a moment): purge until it is gone.
    pipeline::testing::wait_until(
        Duration::from_secs(60),
        "the stored position's binlog file to be purged",
        || async {
            let mut conn = server.admin().await;
            conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
                .await
                .unwrap();
            let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
            let names: Vec<String> = files.iter().map(|r| r.get(0).unwrap()).collect();
            (!names.contains(&stored.file)).then_some(())
        },
    )
    .await;

    let err = tokio::time::timeout(
        Duration::from_secs(60),
        stack_support::start(config.clone()).task,
    )
    .await
    .expect("the connector must stop by itself")
    .unwrap()
    .expect_err("the stored position is purged");
    assert!(!err.is_transient(), "{err}");
    let text = err.to_string();
    // Both resume by GTID (a MySQL set, a MariaDB position): the purge lost
    // transaction 3's GTID, which the error names.
    match &err {
        cdc::CdcError::Start(cdc::start::StartError::PurgedGtids { lost, .. }) => {
            if private.flavour == Flavour::MariaDb {
                let stored =
                    cdc::gtid::MariaDbPosition::parse(stored.gtids.as_deref().unwrap()).unwrap();
                let (domain, (server, seq)) = stored.0.iter().next().unwrap();
                assert_eq!(lost, &format!("{domain}-{server}-{}", seq + 1), "{text}");
            }
        }
        other => panic!("expected a purged-GTIDs error, got {other}"),
    }
    assert!(text.contains("snapshot.mode=when_needed"), "{text}");

    let running = stack_support::start(stack_support::with(
        &config,
        &[("snapshot.mode", "when_needed")],
    ));
    let records = stack_support::wait_for_records(&stack, &users, "the new snapshot", |r| {
        r.iter().filter(|r| r.op().as_deref() == Some("r")).count() >= 4
    })
    .await;
    let summary = running.stop().await;
    assert_eq!(summary.snapshot_rows, Some(3));
    let again: Vec<Option<i64>> = records
        .iter()
        .filter(|r| r.op().as_deref() == Some("r"))
        .skip(1)
        .map(Record::key_id)
        .collect();
    assert_eq!(again, vec![Some(1), Some(2), Some(3)]);
    conn.disconnect().await.ok();
    drop(server);
}
