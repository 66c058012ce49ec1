//! TRUNCATE against each source server (`mariadb::*`, `mysql::*`): with
//! Debezium's default `skipped.operations=t` nothing is written for it and
//! the skip is counted (`cdc_skipped_total{reason="truncate"}`); with
//! `skipped.operations=none` the table's topic gets Debezium's truncate
//! record (op `t`, null Kafka key, before and after null, the table's value
//! schema), in order with the rows around it; `c,d` leaves out inserts and
//! deletes but not updates.

mod stack_support;

use apache_avro::types::Value;
use metrics_exporter_prometheus::PrometheusHandle;
use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::*;

per_flavour!(truncate_is_skipped_by_default_and_emitted_with_none);

/// The process's metrics recorder (one per test binary), installed before
/// the first connector runs.
static METRICS: tokio::sync::OnceCell<PrometheusHandle> = tokio::sync::OnceCell::const_new();
/// The flavours run in parallel and share the counter: the skip phase of
/// one runs alone, so the counter's change is its own.
static SKIP_PHASE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn metrics() -> &'static PrometheusHandle {
    METRICS
        .get_or_init(|| async {
            pipeline::telemetry::serve(
                &pipeline::telemetry::TelemetryArgs {
                    metrics_addr: String::new(),
                    log_format: "text".into(),
                },
                pipeline::telemetry::Health::default(),
            )
            .await
            .expect("the only recorder of this test binary")
            .handle
        })
        .await
}

/// `cdc_skipped_total{reason="truncate"}` now.
async fn truncates_skipped() -> u64 {
    metrics()
        .await
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("cdc_skipped_total{reason=\"truncate\"} "))
        .map_or(0, |n| n.trim().parse().expect("a counter value"))
}

fn topic(config: &cdc::config::Config, db: &str, table: &str) -> String {
    format!("{}.{db}.{table}", config.connector.topic_prefix)
}

fn source_str(r: &Record, name: &str) -> Option<String> {
    match unwrap_union(field(r.field("source")?, name)?) {
        Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
        _ => None,
    }
}

async fn truncate_is_skipped_by_default_and_emitted_with_none(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    metrics().await;
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x')")
        .await
        .unwrap();
    conn.query_drop(
        "INSERT INTO purchases (user_id, item_id, quantity, purchase_price) \
         VALUES (1, 1, 1, 1.00), (2, 1, 2, 2.00), (1, 2, 3, 3.00)",
    )
    .await
    .unwrap();

    // Debezium's default: nothing for the TRUNCATE, the skip counted.
    let defaults = config(&stack, &db);
    assert!(defaults.connector.skipped_operations.truncate);
    let purchases = topic(&defaults, &db, "purchases");
    let running = start(defaults.clone());
    wait_for_records(&stack, &purchases, "3 snapshot rows", |r| r.len() >= 3).await;
    {
        let _alone = SKIP_PHASE.lock().await;
        let before = truncates_skipped().await;
        conn.query_drop("TRUNCATE TABLE purchases").await.unwrap();
        conn.query_drop(
            "INSERT INTO purchases (user_id, item_id, quantity, purchase_price) VALUES (2, 2, 5, 5.00)",
        )
        .await
        .unwrap();
        // The row after the TRUNCATE arrived, so the TRUNCATE was read.
        let records = wait_for_records(&stack, &purchases, "the row after the TRUNCATE", |r| {
            r.len() >= 4
        })
        .await;
        let ops: Vec<_> = records.iter().map(|r| (r.key_id(), r.op())).collect();
        assert_eq!(
            ops,
            vec![
                (Some(1), Some("r".into())),
                (Some(2), Some("r".into())),
                (Some(3), Some("r".into())),
                // AUTO_INCREMENT restarted with the TRUNCATE.
                (Some(1), Some("c".into())),
            ]
        );
        assert_eq!(truncates_skipped().await, before + 1);
    }
    let summary = running.stop().await;
    assert_eq!(summary.streamed_records, 1, "{summary:?}");

    // skipped.operations=none: the truncate record, in order, on the
    // table's topic; a TRUNCATE naming its database from another default
    // database is the same.
    let emitting = with(&config(&stack, &db), &[("skipped.operations", "none")]);
    assert!(!emitting.connector.skipped_operations.truncate);
    let purchases = topic(&emitting, &db, "purchases");
    let users = topic(&emitting, &db, "users");
    let running = start(emitting.clone());
    let snap = wait_for_records(&stack, &purchases, "1 snapshot row", |r| !r.is_empty()).await;
    assert_eq!(snap[0].op().as_deref(), Some("r"));
    conn.query_drop("TRUNCATE TABLE purchases").await.unwrap();
    conn.query_drop(
        "INSERT INTO purchases (user_id, item_id, quantity, purchase_price) VALUES (1, 3, 7, 7.00)",
    )
    .await
    .unwrap();
    let mut other = admin(&stack, None).await;
    other
        .query_drop(format!("TRUNCATE `{db}`.users"))
        .await
        .unwrap();
    let records = wait_for_records(&stack, &purchases, "truncate and the row after", |r| {
        r.len() >= 3
    })
    .await;
    let ops: Vec<_> = records.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![
            (Some(1), Some("r".into())),
            (None, Some("t".into())),
            (Some(1), Some("c".into())),
        ]
    );
    let truncate = &records[1];
    assert!(truncate.key.is_none(), "Debezium's truncate has a null key");
    assert!(truncate.column("before", "id").is_none());
    assert!(truncate.column("after", "id").is_none());
    assert!(matches!(
        truncate.field("before").map(unwrap_union),
        Some(Value::Null)
    ));
    assert!(matches!(
        truncate.field("after").map(unwrap_union),
        Some(Value::Null)
    ));
    assert_eq!(
        truncate.value_schema_id, records[0].value_schema_id,
        "the table's value schema"
    );
    assert_eq!(source_str(truncate, "db").as_deref(), Some(db.as_str()));
    assert_eq!(source_str(truncate, "table").as_deref(), Some("purchases"));
    assert_eq!(source_str(truncate, "snapshot").as_deref(), Some("false"));
    assert!(matches!(
        truncate.field("source").and_then(|s| field(s, "row")),
        Some(Value::Int(0))
    ));

    let user_records = wait_for_records(&stack, &users, "the users truncate", |r| {
        r.iter().any(|r| r.op().as_deref() == Some("t"))
    })
    .await;
    let last = user_records.last().unwrap();
    assert_eq!(last.op().as_deref(), Some("t"));
    assert!(last.key.is_none());
    assert_eq!(source_str(last, "table").as_deref(), Some("users"));
    let summary = running.stop().await;
    assert_eq!(summary.streamed_records, 3, "{summary:?}");

    // skipped.operations=c,d: inserts and deletes are not emitted (the
    // whole rows event, as Debezium registers no handler for it), updates are.
    let some = with(&config(&stack, &db), &[("skipped.operations", "c,d")]);
    let purchases = topic(&some, &db, "purchases");
    let running = start(some);
    wait_for_records(&stack, &purchases, "1 snapshot row", |r| !r.is_empty()).await;
    for statement in [
        "INSERT INTO purchases (id, user_id, item_id, quantity, purchase_price) VALUES (2, 1, 1, 1, 1.00)",
        "UPDATE purchases SET quantity = 9 WHERE id = 2",
        "DELETE FROM purchases WHERE id = 1",
        "UPDATE purchases SET quantity = 10 WHERE id = 2",
    ] {
        conn.query_drop(statement).await.unwrap();
    }
    let records = wait_for_records(&stack, &purchases, "the two updates", |r| r.len() >= 3).await;
    let ops: Vec<_> = records.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![
            (Some(1), Some("r".into())),
            (Some(2), Some("u".into())),
            (Some(2), Some("u".into())),
        ]
    );
    let summary = running.stop().await;
    assert_eq!(summary.streamed_records, 2, "{summary:?}");
}
