//! The `cdc` binary as a process: `--check-config`, and SIGKILL in the middle
//! of a large transaction followed by a restart (nothing may be lost), against
//! each source server (`mariadb::*`, `mysql::*`).

mod stack_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::*;

per_flavour!(sigkill_during_a_large_transaction_loses_nothing,);

/// Rows in each big transaction.
const BATCH: usize = 30_000;
/// Big transactions written before giving up on catching a stored position
/// inside one (see the test).
const ATTEMPTS: usize = 5;
const BIN: &str = env!("CARGO_BIN_EXE_cdc");

#[test]
fn check_config_prints_masked_settings_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connector.json");
    std::fs::write(
        &file,
        r#"{"name": "shop-connector", "config": {
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            "database.hostname": "mysql", "database.user": "cdc",
            "database.password": "s3cret-pw", "topic.prefix": "mysql",
            "table.include.list": "shop\\..*", "mystery.setting": "1"}}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config-file", file.to_str().unwrap(), "--check-config"])
        .args(["--database.port", "3307"])
        .env_remove("DATABASE_HOSTNAME")
        .env("TOPIC_PREFIX", "from-env")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("name = shop-connector"), "{stdout}");
    assert!(stdout.contains("database.port = 3307"), "{stdout}");
    assert!(stdout.contains("topic.prefix = from-env"), "{stdout}");
    assert!(stdout.contains("database.password = ***"), "{stdout}");
    assert!(!stdout.contains("s3cret-pw") && !stderr.contains("s3cret-pw"));
    assert!(
        stderr.contains("unknown setting mystery.setting"),
        "{stderr}"
    );

    let bad = Command::new(BIN)
        .args(["--config-file", file.to_str().unwrap(), "--check-config"])
        .args(["--snapshot.mode", "sometimes"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invalid snapshot.mode=\"sometimes\""),
        "{stderr}"
    );
}

/// The connector as a process writing its log to `log` (printed if the
/// test fails).
fn spawn(
    stack: &pipeline::testing::Stack,
    config: &cdc::config::Config,
    offsets: &Path,
    metrics_addr: &str,
    log: PathBuf,
) -> LoggedChild {
    let mut command = cdc_command(BIN, stack, config, offsets, &stack.schema_registry_url);
    command
        .args(["--offset.flush.interval.ms", "20"])
        .args(["--metrics-addr", metrics_addr]);
    LoggedChild::spawn(command, log)
}

/// One INSERT of the users `ids`: one transaction of many rows events.
async fn insert_users(conn: &mut mysql_async::Conn, ids: std::ops::RangeInclusive<usize>) {
    let values: Vec<String> = ids
        .map(|i| format!("({i}, 'user{i}@example.com')"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO users (id, email) VALUES {}",
        values.join(",")
    ))
    .await
    .unwrap();
}

async fn sigkill_during_a_large_transaction_loses_nothing(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'seed@x')")
        .await
        .unwrap();
    let config = config(&stack, &db);
    let users = format!("{}.{db}.users", config.connector.topic_prefix);

    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    let mut child = spawn(&stack, &config, &offsets, "", dir.path().join("cdc-1.log"));
    pipeline::testing::wait_until(Duration::from_secs(60), "the snapshot record", || async {
        (count(&stack, &users).await >= 1).then_some(())
    })
    .await;

    // Kill once a position INSIDE a big transaction is stored (event/row >
    // 0). That lasts only while the transaction's records are being
    // acknowledged, and all of them can be acknowledged between two flushes
    // (or the poll can miss the flushes inside): the stored position then
    // jumps past the transaction.
    // So once a transaction is all in Kafka with no such position seen,
    // another one is written.
    let mut total = 1;
    let mut stored = None;
    for attempt in 1..=ATTEMPTS {
        insert_users(&mut conn, total + 1..=total + BATCH).await;
        total += BATCH;
        let inside = async {
            loop {
                match file_offset(&offsets) {
                    Some(o) if o.event > 0 || o.row > 0 => return o,
                    _ => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        };
        let all_in_kafka = async {
            loop {
                if count(&stack, &users).await >= total {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::select! {
                biased;
                o = inside => Some(o),
                () = all_in_kafka => None,
            }
        })
        .await;
        match outcome {
            Ok(Some(o)) => {
                stored = Some(o);
                break;
            }
            Ok(None) => eprintln!(
                "transaction {attempt} acknowledged between two stored positions; writing another"
            ),
            Err(_) => panic!(
                "timed out after 60s waiting for transaction {attempt} in Kafka or a stored \
                 position inside it (connector exited: {:?}; stored: {:?})",
                child.child.try_wait(),
                file_offset(&offsets),
            ),
        }
    }
    let stored = stored.unwrap_or_else(|| {
        panic!("no stored position inside any of {ATTEMPTS} transactions of {BATCH} rows")
    });
    // SIGKILL (LoggedChild's drop).
    drop(child);
    eprintln!(
        "killed with stored position {stored}; records in Kafka: {}",
        count(&stack, &users).await
    );

    // More changes while it is down.
    conn.query_drop("UPDATE users SET email = 'changed@x' WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM users WHERE id = 2")
        .await
        .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut child = spawn(
        &stack,
        &config,
        &offsets,
        &metrics_addr,
        dir.path().join("cdc-2.log"),
    );
    // `total` creates/reads + 1 update + delete + tombstone at least.
    let restarted = tokio::time::timeout(Duration::from_secs(120), async {
        while count(&stack, &users).await < total + 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        restarted.is_ok(),
        "not every change reached Kafka after the restart (connector exited: {:?})",
        child.child.try_wait(),
    );
    let health = reqwest::get(format!("http://{metrics_addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // The UPDATE and the DELETE are streamed transactions: each is observed
    // once its last record is acknowledged (the delivery report may trail the
    // consumer by a moment).
    let metrics = pipeline::testing::wait_until(
        Duration::from_secs(30),
        "cdc_read_to_ack_seconds observed for the streamed transactions",
        || async {
            let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let observed = text
                .lines()
                .find_map(|l| l.strip_prefix("cdc_read_to_ack_seconds_count "))
                .and_then(|n| n.trim().parse::<f64>().ok())?;
            (observed >= 2.0).then_some(text)
        },
    )
    .await;
    assert!(metrics.contains("cdc_events_total"), "{metrics}");
    assert!(metrics.contains("op=\"u\""), "update counted: {metrics}");
    assert!(
        metrics.contains("op=\"tombstone\""),
        "tombstone counted: {metrics}"
    );
    assert!(metrics.contains("cdc_stored_binlog_position"), "{metrics}");
    drop(child);

    let mut schemas = Schemas::default();
    let records = read_topic(&stack, &users, &mut schemas).await;
    let (rows, replayed) = users_in_table_and_topic(&mut conn, &records).await;
    assert_eq!(replayed.len(), rows.len());
    assert_eq!(replayed, rows);
    // At-least-once: a record may repeat after SIGKILL, but only one snapshot ran.
    let reads = records
        .iter()
        .filter(|r| r.op().as_deref() == Some("r"))
        .count();
    assert_eq!(reads, 1);
    eprintln!(
        "records: {} (duplicates after SIGKILL: {})",
        records.len(),
        records.len() - total - 3
    );
}
