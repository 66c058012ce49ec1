//! Debezium heartbeats (`heartbeat.interval.ms`) against a PRIVATE MariaDB
//! or MySQL (binlogs are purged, which the shared stack's servers must never
//! see), with the stack's Kafka and registry.
//!
//! The scenario heartbeats exist for in Debezium: the captured database stays
//! quiet while another database on the same server is busy; the binlog is
//! rotated and purged past the last captured event while the connector is
//! stopped; the restarted connector must resume from its stored position
//! (moved on by the busy database's commits and the heartbeats) without a
//! new snapshot and without the purged-position error. The heartbeat records
//! must decode with Debezium's `ServerNameKey` / `Heartbeat` schemas, and
//! `heartbeat.action.query` must run on the source.
//!
//! With heartbeats on, the stored offset must also move on while nothing but
//! `heartbeat.action.query` writes (the quiet-database case heartbeats are
//! for): that fails if heartbeats stop firing on a quiet binlog or the
//! position they lead to stops being stored.
//!
//! The same scenario with heartbeats off also resumes: unlike Debezium, this
//! connector stores the position of every commit it reads (of any database),
//! so heartbeats are not what keeps the offset alive here (see the README).

mod stack_support;

use std::time::Duration;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::{field, PrivateServer, Record};

per_flavour!(
    a_quiet_database_resumes_after_a_purge_with_heartbeats,
    a_quiet_database_resumes_after_a_purge_without_heartbeats,
);

const SOURCE_SERVER_ID: u32 = 9;

fn text(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

async fn a_quiet_database_resumes_after_a_purge_with_heartbeats(flavour: Flavour) {
    quiet_database_resumes_after_a_purge(flavour, true).await;
}

async fn a_quiet_database_resumes_after_a_purge_without_heartbeats(flavour: Flavour) {
    quiet_database_resumes_after_a_purge(flavour, false).await;
}

async fn quiet_database_resumes_after_a_purge(flavour: Flavour, heartbeats: bool) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let Some(server) = PrivateServer::start(flavour, SOURCE_SERVER_ID).await else {
        return;
    };
    let private = server.stack(&stack);
    let quiet = stack_support::demo_database(&private).await;
    let busy = private.fresh_mysql_database().await;
    let mut conn = stack_support::admin(&private, None).await;
    conn.query_drop(format!(
        "INSERT INTO `{quiet}`.users (id, email) VALUES (1, 'a@x');
         CREATE TABLE `{busy}`.noise (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL);
         CREATE TABLE `{busy}`.beat (id INT PRIMARY KEY, n INT NOT NULL);
         INSERT INTO `{busy}`.beat VALUES (1, 0);"
    ))
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    let file = offsets.display().to_string();
    let action = format!("UPDATE `{busy}`.beat SET n = n + 1 WHERE id = 1");
    let mut settings = vec![
        ("offset.storage", "file"),
        ("offset.storage.file.filename", file.as_str()),
    ];
    if heartbeats {
        settings.push(("heartbeat.interval.ms", "200"));
        settings.push(("heartbeat.action.query", action.as_str()));
    }
    let config = stack_support::with(&stack_support::config(&private, &quiet), &settings);
    let prefix = config.connector.topic_prefix.clone();
    let users = format!("{prefix}.{quiet}.users");
    let heartbeat_topic = format!("__debezium-heartbeat.{prefix}");
    assert_eq!(config.connector.heartbeat_topic, heartbeat_topic);

    let running = stack_support::start(config.clone());
    stack_support::wait_for_records(&stack, &users, "the snapshot", |r| r.len() == 1).await;

    // The captured database stays quiet; the other one is busy and the
    // binlog rotates under it, until the stored position is in the newest
    // file (moved there by commits the connector captured nothing from).
    let stored = || -> cdc::offsets::SourceOffset {
        serde_json::from_str(&std::fs::read_to_string(&offsets).unwrap_or_default())
            .unwrap_or_default()
    };
    conn.query_drop(format!(
        "INSERT INTO `{busy}`.noise (n) VALUES (0), (0);
         FLUSH BINARY LOGS;"
    ))
    .await
    .unwrap();
    let newest = pipeline::testing::wait_until(
        Duration::from_secs(60),
        "the stored position to follow the busy database into the newest binlog",
        || {
            let busy = busy.clone();
            let private = private.clone();
            let stored = stored();
            async move {
                let mut conn = stack_support::admin(&private, None).await;
                conn.query_drop(format!("INSERT INTO `{busy}`.noise (n) VALUES (1)"))
                    .await
                    .unwrap();
                let (file, _) = stack_support::binlog_status(&mut conn, &private).await;
                conn.disconnect().await.ok();
                (stored.file == file && stored.pos > 4).then_some(file)
            }
        },
    )
    .await;

    if heartbeats {
        // The first three only: written every 200 ms, the topic's end may
        // never be caught up with.
        let beats = pipeline::testing::wait_until(
            Duration::from_secs(60),
            "three heartbeat records",
            || {
                let stack = stack.clone();
                let topic = heartbeat_topic.clone();
                async move {
                    let mut schemas = stack_support::Schemas::default();
                    let beats =
                        stack_support::read_topic_head(&stack, &topic, &mut schemas, 3).await;
                    (beats.len() >= 3).then_some(beats)
                }
            },
        )
        .await;
        check_heartbeats(&stack, &beats, &prefix).await;
        let ran: Option<i32> = conn
            .query_first(format!("SELECT n FROM `{busy}`.beat WHERE id = 1"))
            .await
            .unwrap();
        assert!(
            ran.unwrap_or_default() >= 1,
            "heartbeat.action.query never ran"
        );

        // What heartbeats are for: with the test writing nothing more, the
        // stored offset still moves on, past everything written so far (the
        // binlog's end now), carried by the heartbeats' action query commits.
        let (file, end) = stack_support::binlog_status(&mut conn, &private).await;
        let before = stored();
        let advanced = pipeline::testing::wait_until(
            Duration::from_secs(60),
            "heartbeats to move the stored offset past the binlog's end without other writes",
            || {
                let now = stored();
                let past = (now.file.as_str(), now.pos) > (file.as_str(), end);
                async move { past.then_some(now) }
            },
        )
        .await;
        assert!(
            (advanced.file.as_str(), advanced.pos) > (before.file.as_str(), before.pos),
            "{before:?} -> {advanced:?}"
        );
        let ran_since: Option<i32> = conn
            .query_first(format!("SELECT n FROM `{busy}`.beat WHERE id = 1"))
            .await
            .unwrap();
        assert!(
            ran_since > ran,
            "the offset moved without a heartbeat action"
        );
    } else {
        // No heartbeat topic is created (reading a missing topic would only
        // time out): heartbeat_interval is None, see the config unit test.
        assert_eq!(config.connector.heartbeat_interval, None);
    }
    running.stop().await;
    let at_stop = stored();
    assert_eq!(at_stop.file, newest, "{at_stop:?}");

    // Busy on; the binlog rotates and everything before the newest file is
    // purged: the last captured event (the snapshot's position) is gone.
    conn.query_drop(format!(
        "INSERT INTO `{busy}`.noise (n) VALUES (-1); FLUSH BINARY LOGS"
    ))
    .await
    .unwrap();
    let (current, _) = stack_support::binlog_status(&mut conn, &private).await;
    pipeline::testing::wait_until(
        Duration::from_secs(60),
        "the binlogs before the stored position's to be purged",
        || async {
            let mut conn = server.admin().await;
            conn.query_drop(format!("PURGE BINARY LOGS TO '{}'", at_stop.file))
                .await
                .unwrap();
            let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
            let names: Vec<String> = files.iter().map(|r| r.get(0).unwrap()).collect();
            (names.first() == Some(&at_stop.file)).then_some(())
        },
    )
    .await;
    assert_ne!(current, at_stop.file);

    // Restarted: it streams on (no purged-position error) and takes no new
    // snapshot; a later change of the quiet database arrives.
    let running = stack_support::start(config.clone());
    conn.query_drop(format!(
        "INSERT INTO `{quiet}`.users (id, email) VALUES (2, 'b@x')"
    ))
    .await
    .unwrap();
    let records =
        stack_support::wait_for_records(&stack, &users, "the change after the restart", |r| {
            r.iter().any(|r| r.key_id() == Some(2))
        })
        .await;
    let summary = running.stop().await;
    assert_eq!(summary.snapshot_rows, None, "a new snapshot was taken");
    let ops: Vec<(Option<i64>, Option<String>)> =
        records.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![(Some(1), Some("r".into())), (Some(2), Some("c".into()))]
    );
    conn.disconnect().await.ok();
    drop(server);
}

/// Debezium's heartbeat records: one partition, key `ServerNameKey
/// {serverName: <topic.prefix>}`, value `Heartbeat {ts_ms}` with a recent
/// time, the context headers like every record.
async fn check_heartbeats(stack: &pipeline::testing::Stack, beats: &[Record], prefix: &str) {
    let now = cdc::clock::now_ms();
    let mut last = 0;
    for beat in beats {
        let key = beat.key.as_ref().expect("heartbeat key");
        assert_eq!(text(field(key, "serverName")), Some(prefix), "{key:?}");
        let Some(Value::Long(ts_ms)) = beat.field("ts_ms") else {
            panic!("heartbeat value: {:?}", beat.value);
        };
        assert!(*ts_ms >= last && *ts_ms <= now && now - ts_ms < 600_000);
        last = *ts_ms;
        let header = |name: &str| {
            beat.headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(
            header("__debezium.context.connectorLogicalName").as_deref(),
            Some(prefix)
        );
    }
    // The registered schemas are Debezium's (names as AvroData writes them).
    let registry = pipeline::registry::RegistryClient::new(&stack.registry()).unwrap();
    let id = beats[0].value_schema_id.unwrap();
    let value_schema: serde_json::Value =
        serde_json::from_str(&registry.schema(id).await.unwrap()).unwrap();
    assert_eq!(
        value_schema["connect.name"],
        "io.debezium.connector.common.Heartbeat"
    );
    assert_eq!(value_schema["fields"][0]["name"], "ts_ms");
    assert_eq!(value_schema["fields"][0]["type"], "long");
}
