//! The differences to real Debezium 3.6.3 that were measured beside it, each
//! checked against the local stack: headers on every record (and the key
//! headers of a primary-key change), snapshot order from `table.include.list`,
//! the schema-change topic, and TIME values outside a day under
//! `time.precision.mode=connect`. Each runs on MariaDB and on MySQL.

mod stack_support;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use pipeline::testing::{Flavour, Stack};
use stack_support::*;

fn topic(config: &cdc::config::Config, db: &str, table: &str) -> String {
    format!("{}.{db}.{table}", config.connector.topic_prefix)
}

const CONTEXT: [&str; 4] = [
    "__debezium.context.connectorLogicalName",
    "__debezium.context.taskId",
    "__debezium.context.connectorName",
    "__debezium.context.runId",
];

/// The record's context headers (checked to be its last four, in Debezium's
/// order, with the fixed values); returns the run id.
fn context_of(r: &Record, prefix: &str) -> String {
    let n = r.headers.len();
    assert!(n >= 4, "{:?}", r.headers);
    let tail = &r.headers[n - 4..];
    let keys: Vec<&str> = tail.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, CONTEXT);
    assert_eq!(tail[0].1.as_deref(), Some(prefix));
    assert_eq!(tail[1].1.as_deref(), Some("0"));
    assert_eq!(tail[2].1.as_deref(), Some("mysql"));
    let run_id = tail[3].1.clone().unwrap();
    let groups: Vec<usize> = run_id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "run id {run_id} is not a UUID");
    run_id
}

fn key_header(r: &Record) -> Option<(String, String)> {
    let (k, v) = r.headers.first()?;
    k.starts_with("__debezium.")
        .then(|| (k.clone(), v.clone().unwrap_or_default()))
        .filter(|(k, _)| !k.starts_with("__debezium.context."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_on_every_record_and_on_key_changes() {
    for flavour in Flavour::ALL {
        if let Some(stack) = pipeline::testing::stack_for(flavour) {
            headers_on_every_record_and_on_key_changes_on(stack).await;
        }
    }
}

async fn headers_on_every_record_and_on_key_changes_on(stack: Stack) {
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("CREATE TABLE pair (a VARCHAR(10), b INT, v INT, PRIMARY KEY (a, b))")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x')")
        .await
        .unwrap();
    let config = config(&stack, &db);
    let prefix = config.connector.topic_prefix.clone();
    let users = topic(&config, &db, "users");
    let pair = topic(&config, &db, "pair");
    let running = start(config.clone());
    wait_for_records(&stack, &users, "snapshot", |r| r.len() >= 2).await;

    conn.query_drop("UPDATE users SET id = 100 WHERE id = 1")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM users WHERE id = 2")
        .await
        .unwrap();
    conn.query_drop(r#"INSERT INTO pair VALUES ('x"y\\z', 2, 0)"#)
        .await
        .unwrap();
    conn.query_drop("UPDATE pair SET a = 'new' WHERE b = 2")
        .await
        .unwrap();

    // r, r, d(1)+tombstone, c(100), d(2)+tombstone.
    let all = wait_for_records(&stack, &users, "key change and delete", |r| r.len() >= 7).await;
    let run_id = context_of(&all[0], &prefix);
    for r in &all {
        assert_eq!(context_of(r, &prefix), run_id, "one run id per run");
    }
    let ops: Vec<_> = all.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops[2..],
        [
            (Some(1), Some("d".into())),
            (Some(1), None),
            (Some(100), Some("c".into())),
            (Some(2), Some("d".into())),
            (Some(2), None),
        ]
    );
    let newkey = Some(("__debezium.newkey".to_owned(), r#"{"id":100}"#.to_owned()));
    let oldkey = Some(("__debezium.oldkey".to_owned(), r#"{"id":1}"#.to_owned()));
    assert_eq!(key_header(&all[2]), newkey, "the delete");
    assert_eq!(key_header(&all[3]), newkey, "its tombstone");
    assert_eq!(key_header(&all[4]), oldkey, "the create");
    assert_eq!(all[2].headers.len(), 5);
    // Snapshot rows and plain changes carry only the context headers.
    for r in [&all[0], &all[1], &all[5], &all[6]] {
        assert_eq!(r.headers.len(), 4, "{:?}", r.headers);
    }
    // A change record's Kafka timestamp is its envelope's ts_ms (the clock
    // read once for both); a tombstone gets the producer's clock at send.
    for r in all.iter().filter(|r| r.value.is_some()) {
        let ts_ms = match r.field("ts_ms").map(unwrap_union) {
            Some(Value::Long(ms)) => *ms,
            other => panic!("ts_ms {other:?}"),
        };
        assert_eq!(r.timestamp_ms, Some(ts_ms), "op {:?}", r.op());
    }
    for r in all.iter().filter(|r| r.value.is_none()) {
        assert!(r.timestamp_ms.is_some_and(|t| t > 0), "tombstone timestamp");
    }

    // A two-column key with a string: fields in key order, the string quoted
    // with `"` and `\` escaped (SimpleHeaderConverter's Struct text).
    let pairs = wait_for_records(&stack, &pair, "pair key change", |r| r.len() >= 4).await;
    assert_eq!(
        key_header(&pairs[1]).map(|(_, v)| v).as_deref(),
        Some(r#"{"a":"new","b":2}"#)
    );
    assert_eq!(
        key_header(&pairs[3]).map(|(_, v)| v).as_deref(),
        Some(r#"{"a":"x\"y\\z","b":2}"#)
    );

    // Schema-change records carry the context headers too.
    let ddl = wait_for_records(&stack, &prefix, "schema changes", |r| !r.is_empty()).await;
    assert_eq!(context_of(&ddl[0], &prefix), run_id);
    running.stop().await;

    // extended.headers.enabled=false: no headers at all.
    let config = with(
        &stack_support::config(&stack, &db),
        &[("extended.headers.enabled", "false")],
    );
    let users = topic(&config, &db, "users");
    let running = start(config);
    let snap = wait_for_records(&stack, &users, "snapshot", |r| !r.is_empty()).await;
    assert!(snap[0].headers.is_empty(), "{:?}", snap[0].headers);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_tables_in_include_list_order() {
    for flavour in Flavour::ALL {
        if let Some(stack) = pipeline::testing::stack_for(flavour) {
            snapshot_reads_tables_in_include_list_order_on(stack).await;
        }
    }
}

async fn snapshot_reads_tables_in_include_list_order_on(stack: Stack) {
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x')")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO items (id, name) VALUES (1, 'pen'), (2, 'ink')")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO purchases (id, user_id, item_id) VALUES (1, 1, 1), (2, 2, 2)")
        .await
        .unwrap();
    // Alphabetical would be items, purchases, users.
    let list = format!("{db}.users,{db}.purchases,{db}.items");
    let config = with(&config(&stack, &db), &[("table.include.list", &list)]);
    let running = start(config.clone());
    let mut markers = Vec::new();
    for table in ["users", "purchases", "items"] {
        let records =
            wait_for_records(&stack, &topic(&config, &db, table), table, |r| r.len() >= 2).await;
        markers.push(
            records
                .iter()
                .map(|r| r.snapshot_marker().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        markers,
        [
            ["first", "last_in_data_collection"],
            ["first_in_data_collection", "last_in_data_collection"],
            ["first_in_data_collection", "last"],
        ]
    );
    running.stop().await;
}

fn text(v: Option<&Value>) -> Option<String> {
    match v.map(unwrap_union)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => panic!("not a string: {other:?}"),
    }
}

fn ddl_of(r: &Record) -> String {
    text(r.field("ddl")).unwrap()
}

/// `(type, id)` of each entry of `tableChanges`.
fn changes(r: &Record) -> Vec<(String, String)> {
    let Some(Value::Array(items)) = r.field("tableChanges") else {
        panic!("tableChanges missing: {r:?}");
    };
    items
        .iter()
        .map(|c| {
            (
                text(field(c, "type")).unwrap(),
                text(field(c, "id")).unwrap(),
            )
        })
        .collect()
}

/// The `columns` of the first table change, by name.
fn column<'a>(r: &'a Record, name: &str) -> &'a Value {
    let Some(Value::Array(items)) = r.field("tableChanges") else {
        panic!("tableChanges missing");
    };
    let table = field(&items[0], "table").map(unwrap_union).unwrap();
    let Some(Value::Array(columns)) = field(table, "columns") else {
        panic!("columns missing");
    };
    columns
        .iter()
        .find(|c| text(field(c, "name")).as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no column {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_of_snapshot_and_stream() {
    for flavour in Flavour::ALL {
        if let Some(stack) = pipeline::testing::stack_for(flavour) {
            schema_changes_of_snapshot_and_stream_on(stack).await;
        }
    }
}

async fn schema_changes_of_snapshot_and_stream_on(stack: Stack) {
    let db = demo_database(&stack).await;
    let other = stack.fresh_mysql_database().await;
    let mut conn = admin(&stack, Some(&db)).await;
    let config = config(&stack, &db);
    let prefix = config.connector.topic_prefix.clone();
    let running = start(config.clone());

    // The snapshot: SET, a DROP per table, the database, then each CREATE.
    let snap = wait_for_records(&stack, &prefix, "snapshot DDL", |r| r.len() >= 10).await;
    let ddl: Vec<String> = snap.iter().map(ddl_of).collect();
    assert!(ddl[0].starts_with("SET character_set_server="), "{ddl:?}");
    assert!(ddl[0].contains(", collation_server="), "{ddl:?}");
    assert_eq!(
        ddl[1..6],
        [
            format!("DROP TABLE IF EXISTS `{db}`.`items`"),
            format!("DROP TABLE IF EXISTS `{db}`.`purchases`"),
            format!("DROP TABLE IF EXISTS `{db}`.`users`"),
            format!("DROP DATABASE IF EXISTS `{db}`"),
            ddl[5].clone(),
        ]
    );
    assert!(
        ddl[5].starts_with(&format!("CREATE DATABASE `{db}` CHARSET ")),
        "{}",
        ddl[5]
    );
    assert_eq!(ddl[6], format!("USE `{db}`"));
    assert!(ddl[7].starts_with("CREATE TABLE `items`"), "{}", ddl[7]);
    assert!(ddl[9].starts_with("CREATE TABLE `users`"), "{}", ddl[9]);
    assert_eq!(
        snap[1]
            .key
            .as_ref()
            .and_then(|k| text(field(k, "databaseName"))),
        Some(db.clone())
    );
    assert_eq!(changes(&snap[0]), []);
    assert_eq!(
        changes(&snap[1]),
        [("DROP".to_owned(), format!("\"{db}\".\"items\""))]
    );
    assert_eq!(
        changes(&snap[9]),
        [("CREATE".to_owned(), format!("\"{db}\".\"users\""))]
    );
    let id = column(&snap[9], "id");
    assert_eq!(
        text(field(id, "typeName")).as_deref(),
        Some("BIGINT UNSIGNED")
    );
    assert_eq!(field(id, "jdbcType"), Some(&Value::Int(-5)));
    assert_eq!(
        field(id, "autoIncremented").map(unwrap_union),
        Some(&Value::Boolean(true))
    );
    assert_eq!(
        text(snap[9].field("source").and_then(|s| field(s, "snapshot"))).as_deref(),
        Some("true")
    );

    // Streaming: DDL of the captured database, not of another one.
    conn.query_drop("ALTER TABLE users ADD COLUMN nick VARCHAR(20) DEFAULT 'x' COMMENT 'shown'")
        .await
        .unwrap();
    conn.query_drop(format!("CREATE TABLE `{other}`.t (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    conn.query_drop("DROP TABLE purchases").await.unwrap();
    let all = wait_for_records(&stack, &prefix, "streamed DDL", |r| r.len() >= 12).await;
    let alter = &all[10];
    assert!(ddl_of(alter).starts_with("ALTER TABLE users ADD COLUMN nick"));
    assert_eq!(
        changes(alter),
        [("ALTER".to_owned(), format!("\"{db}\".\"users\""))]
    );
    let nick = column(alter, "nick");
    assert_eq!(field(nick, "jdbcType"), Some(&Value::Int(12)));
    assert_eq!(
        field(nick, "length").map(unwrap_union),
        Some(&Value::Int(20))
    );
    assert_eq!(
        text(field(nick, "defaultValueExpression")).as_deref(),
        Some("x")
    );
    // Debezium records comments only under include.schema.comments=true
    // (default false): null, as the golden files show for a commented column.
    assert_eq!(text(field(nick, "comment")), None);
    assert_eq!(
        text(alter.field("source").and_then(|s| field(s, "snapshot"))).as_deref(),
        Some("false")
    );
    let drop = &all[11];
    assert_eq!(ddl_of(drop), format!("DROP TABLE `{db}`.`purchases`"));
    assert_eq!(
        changes(drop),
        [("DROP".to_owned(), format!("\"{db}\".\"purchases\""))]
    );
    running.stop().await;
    assert_eq!(
        read_topic(&stack, &prefix, &mut Schemas::default())
            .await
            .len(),
        12,
        "the other database's DDL is not recorded"
    );

    // include.schema.changes=false: the topic stays empty.
    let config = with(
        &stack_support::config(&stack, &db),
        &[("include.schema.changes", "false")],
    );
    let prefix = config.connector.topic_prefix.clone();
    let users = topic(&config, &db, "users");
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let running = start(config);
    wait_for_records(&stack, &users, "snapshot", |r| !r.is_empty()).await;
    running.stop().await;
    assert_eq!(count(&stack, &prefix).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_mode_time_outside_a_day_becomes_null_and_streaming_goes_on() {
    // The process's metrics recorder (no endpoint): the replaced values are
    // counted. No other test of this binary replaces a value.
    let telemetry = pipeline::telemetry::serve(
        &pipeline::telemetry::TelemetryArgs {
            metrics_addr: String::new(),
            log_format: "text".into(),
        },
        pipeline::telemetry::Health::default(),
    )
    .await
    .unwrap();
    let replaced = || {
        telemetry
            .handle
            .render()
            .lines()
            .find(|l| l.starts_with(r#"cdc_skipped_total{reason="time_outside_day"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for flavour in Flavour::ALL {
        if let Some(stack) = pipeline::testing::stack_for(flavour) {
            let before = replaced();
            connect_mode_time_outside_a_day_becomes_null_and_streaming_goes_on_on(stack).await;
            // Three columns of the snapshot row, three of the streamed one.
            assert_eq!(replaced() - before, 6, "{flavour:?}");
        }
    }
}

async fn connect_mode_time_outside_a_day_becomes_null_and_streaming_goes_on_on(stack: Stack) {
    let db = stack.fresh_mysql_database().await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, tm TIME NULL, tn TIME NOT NULL, td TIME NOT NULL DEFAULT '12:00:00')",
    )
    .await
    .unwrap();
    conn.query_drop("INSERT INTO t VALUES (1, '838:59:59', '-01:00:00', '24:00:01')")
        .await
        .unwrap();
    let config = with(&config(&stack, &db), &[("time.precision.mode", "connect")]);
    let t = topic(&config, &db, "t");
    let running = start(config);
    wait_for_records(&stack, &t, "snapshot", |r| !r.is_empty()).await;
    conn.query_drop("INSERT INTO t VALUES (2, '-00:00:01', '25:00:00', '-838:00:00')")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES (3, '24:00:00', '10:00:00', '00:00:00')")
        .await
        .unwrap();
    let rows = wait_for_records(&stack, &t, "streamed rows", |r| r.len() >= 3).await;
    let cols = |r: &Record| {
        ["tm", "tn", "td"]
            .map(|c| r.column("after", c).unwrap())
            .to_vec()
    };
    // Nullable: null; NOT NULL: its default, else 00:00:00.
    let replaced = vec![
        Value::Null,
        Value::TimeMillis(0),
        Value::TimeMillis(43_200_000),
    ];
    assert_eq!(cols(&rows[0]), replaced, "snapshot");
    assert_eq!(cols(&rows[1]), replaced, "streaming");
    assert_eq!(
        cols(&rows[2]),
        [
            Value::TimeMillis(86_400_000),
            Value::TimeMillis(36_000_000),
            Value::TimeMillis(0)
        ],
        "the stream went on"
    );
    running.stop().await;
}
