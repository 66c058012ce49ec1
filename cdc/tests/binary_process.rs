//! The `cdc` binary as a process: `--check-config`, and SIGKILL in the middle
//! of a large transaction followed by a restart (nothing may be lost), against
//! each source server (`mariadb::*`, `mysql::*`).

mod stack_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::*;

per_flavour!(sigkill_during_a_large_transaction_loses_nothing,);

/// Rows in the table after the big transaction (1 seed + the transaction).
const TOTAL: usize = 30_001;
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

fn spawn(
    stack: &pipeline::testing::Stack,
    config: &cdc::config::Config,
    offsets: &std::path::Path,
    metrics_addr: &str,
) -> Child {
    cdc_command(BIN, stack, config, offsets, &stack.schema_registry_url)
        .args(["--offset.flush.interval.ms", "50"])
        .args(["--metrics-addr", metrics_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
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
    let mut child = spawn(&stack, &config, &offsets, "");
    pipeline::testing::wait_until(Duration::from_secs(60), "the snapshot record", || async {
        (count(&stack, &users).await >= 1).then_some(())
    })
    .await;

    // One transaction of 30000 rows: many rows events in one transaction.
    let values: Vec<String> = (2..TOTAL + 1)
        .map(|i| format!("({i}, 'user{i}@example.com')"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO users (id, email) VALUES {}",
        values.join(",")
    ))
    .await
    .unwrap();
    // Kill once a position INSIDE the transaction is stored (event/row > 0).
    let stored = pipeline::testing::wait_until(
        Duration::from_secs(60),
        "a stored position inside the transaction",
        || async {
            let text = std::fs::read_to_string(&offsets).ok()?;
            let o: cdc::offsets::SourceOffset = serde_json::from_str(&text).ok()?;
            (o.event > 0 || o.row > 0).then_some(o)
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
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
    let mut child = spawn(&stack, &config, &offsets, &metrics_addr);
    // TOTAL creates/reads + 1 update + delete + tombstone at least.
    pipeline::testing::wait_until(
        Duration::from_secs(120),
        "every change after the restart",
        || async { (count(&stack, &users).await >= TOTAL + 3).then_some(()) },
    )
    .await;
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
    child.kill().unwrap();
    child.wait().unwrap();

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
        records.len() - TOTAL - 3
    );
}
