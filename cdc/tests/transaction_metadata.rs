//! `provide.transaction.metadata=true` against the stack's servers: a
//! transaction writing two tables gets Debezium's BEGIN and END records on
//! `<topic.prefix>.transaction` (END with the per-table counts), and each of
//! its change records the envelope's `transaction` block (id, total_order,
//! data_collection_order); snapshot records keep a null block. A
//! `RegexRouter` (`transforms`) moves the transaction topic and the items
//! topic, and leaves the users topic, which it does not match, alone: side
//! topics are routed as table topics are, and the metadata names the tables,
//! not the topics.

mod stack_support;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::{field, unwrap_union, Record};

per_flavour!(a_multi_table_transaction_has_debeziums_metadata);

fn text(v: Option<&Value>) -> Option<String> {
    match unwrap_union(v?) {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn long(v: Option<&Value>) -> Option<i64> {
    match unwrap_union(v?) {
        Value::Long(n) => Some(*n),
        _ => None,
    }
}

/// The `transaction` block of a change record: (id, total_order, data_collection_order).
fn block(r: &Record) -> Option<(String, i64, i64)> {
    let b = r.field("transaction")?;
    if matches!(unwrap_union(b), Value::Null) {
        return None;
    }
    Some((
        text(field(b, "id"))?,
        long(field(b, "total_order"))?,
        long(field(b, "data_collection_order"))?,
    ))
}

async fn a_multi_table_transaction_has_debeziums_metadata(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = stack_support::demo_database(&stack).await;
    let mut conn = stack_support::admin(&stack, Some(&db)).await;
    conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let config = stack_support::config(&stack, &db);
    let prefix = config.connector.topic_prefix.clone();
    let regex = format!("{prefix}\\.(transaction|{db}\\.items)");
    let replacement = format!("{prefix}.routed.$1");
    let config = stack_support::with(
        &config,
        &[
            ("provide.transaction.metadata", "true"),
            ("transforms", "route"),
            ("transforms.route.type", cdc::routing::RegexRouter::TYPE),
            ("transforms.route.regex", &regex),
            ("transforms.route.replacement", &replacement),
        ],
    );
    let users = format!("{prefix}.{db}.users");
    let items = format!("{prefix}.routed.{db}.items");
    let transactions = format!("{prefix}.routed.transaction");
    assert_eq!(
        config.connector.transaction_topic.as_deref(),
        Some(format!("{prefix}.transaction").as_str()),
        "the configured topic; the router moves its records"
    );
    let running = stack_support::start(config);
    stack_support::wait_for_records(&stack, &users, "the snapshot", |r| r.len() == 1).await;

    conn.query_drop(
        "START TRANSACTION;
         INSERT INTO users (id, email) VALUES (2, 'b@x');
         INSERT INTO items (id, name, category, price, inventory) VALUES (1, 'pen', 'office', 1.25, 10);
         UPDATE users SET email = 'bb@x' WHERE id = 2;
         COMMIT",
    )
    .await
    .unwrap();
    let user_records =
        stack_support::wait_for_records(&stack, &users, "the transaction's users", |r| {
            r.len() >= 3
        })
        .await;
    let item_records =
        stack_support::wait_for_records(&stack, &items, "the transaction's item", |r| {
            !r.is_empty()
        })
        .await;
    assert_eq!(
        block(&user_records[0]),
        None,
        "snapshot records have no block"
    );
    let (id, _, _) = block(&user_records[1]).expect("a streamed record has a block");
    let blocks: Vec<_> = user_records[1..3]
        .iter()
        .chain(&item_records[..1])
        .map(|r| block(r).unwrap())
        .collect();
    assert_eq!(
        blocks,
        vec![(id.clone(), 1, 1), (id.clone(), 3, 2), (id.clone(), 2, 1)]
    );
    match flavour {
        // MariaDB GTIDs: domain-server-sequence.
        Flavour::MariaDb => assert_eq!(id.split('-').count(), 3, "{id}"),
        // The stack's MySQL runs with GTIDs: uuid:n.
        Flavour::MySql => assert!(id.contains(':'), "{id}"),
    }

    // BEGIN and END of this transaction (other databases' transactions on
    // the shared server have theirs too, as in Debezium).
    let ours = |r: &Record| text(r.field("id")).as_deref() == Some(id.as_str());
    let records = stack_support::wait_for_records(&stack, &transactions, "BEGIN and END", |r| {
        r.iter().filter(|r| ours(r)).count() >= 2
    })
    .await;
    let ours: Vec<&Record> = records.iter().filter(|r| ours(r)).collect();
    assert_eq!(ours.len(), 2);
    let (begin, end) = (ours[0], ours[1]);
    for r in [begin, end] {
        let key = r.key.as_ref().expect("keyed by id");
        assert_eq!(text(field(key, "id")), Some(id.clone()));
        assert!(long(r.field("ts_ms")).unwrap() > 0);
    }
    assert_eq!(text(begin.field("status")).as_deref(), Some("BEGIN"));
    assert_eq!(long(begin.field("event_count")), None);
    assert!(matches!(
        begin.field("data_collections").map(unwrap_union),
        Some(Value::Null)
    ));
    assert_eq!(text(end.field("status")).as_deref(), Some("END"));
    assert_eq!(long(end.field("event_count")), Some(3));
    let Some(Value::Array(collections)) = end.field("data_collections").map(unwrap_union) else {
        panic!("END without data_collections: {:?}", end.value);
    };
    let mut counts: Vec<(String, i64)> = collections
        .iter()
        .map(|c| {
            (
                text(field(c, "data_collection")).unwrap(),
                long(field(c, "event_count")).unwrap(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![(format!("{db}.items"), 1), (format!("{db}.users"), 2)]
    );
    running.stop().await;
    conn.disconnect().await.ok();
}
