//! `cdc verify` against each source server (`mariadb::*`, `mysql::*`).
//!
//! One connector snapshots and streams a fresh demo database; verification
//! runs while another task keeps writing to the tables (the comparison is at
//! one binlog position, so the writes must not show as differences) and
//! reports the tables equal. Then the connector's topics are copied to new
//! topic prefixes, each copy with one deliberate corruption, and verified
//! against the same tables:
//! - a dropped record: the copy leaves out the only record of one key;
//! - an extra record: a valid insert for a key the table does not have;
//! - a changed value: an update of an existing key with another email.
//!
//! Each must report exactly that key (exit code 1). An unchanged copy is
//! also verified through a `RegexRouter` (`transforms`) that maps another
//! prefix onto it. The dropped-record copy
//! is verified through the `cdc verify` binary, so the exit code and the
//! report on stdout are checked as an operator sees them.

mod stack_support;

use std::time::Duration;

use apache_avro::types::Value;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use pipeline::testing::{Flavour, Stack};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use stack_support::*;
use tokio_util::sync::CancellationToken;

use cdc::verify::{Options, Report, EXIT_DIFFERENT, EXIT_EQUAL};
use debezium_avro::{Cell, Op, SnapshotMarker, SourceInfo, TableCodec};

per_flavour!(
    verify_reports_equal_then_each_corruption,
    verify_compares_by_message_key_columns_and_mapped_values,
);

const BIN: &str = env!("CARGO_BIN_EXE_cdc");
const TABLES: [&str; 3] = ["items", "purchases", "users"];

type Raw = (Option<Vec<u8>>, Option<Vec<u8>>);

fn options() -> Options {
    Options {
        wait: Duration::from_secs(90),
        // Small chunks: several per table.
        chunk_rows: 7,
        ..Options::default()
    }
}

fn table_report<'r>(report: &'r Report, table: &str) -> &'r cdc::verify::TableReport {
    report
        .tables
        .iter()
        .find(|t| t.table.ends_with(&format!(".{table}")))
        .unwrap_or_else(|| panic!("no report for {table}: {}", report.render()))
}

/// Every record of partition 0 of `topic`, undecoded, to the partition's end.
async fn raw_records(stack: &Stack, topic: &str) -> Vec<Raw> {
    let consumer: StreamConsumer = stack
        .kafka()
        .topic_reader(&pipeline::testing::unique_name("g"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut stream = consumer.stream();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no partition EOF on {topic} within 30 s"));
        match next {
            None | Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("{topic}: {e}"),
            Some(Ok(m)) => out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec))),
        }
    }
}

/// Writes `records` in order to a new one-partition `topic`.
async fn write_topic(stack: &Stack, topic: &str, records: &[Raw]) {
    pipeline::kafka::ensure_topic(
        &stack.kafka(),
        &pipeline::kafka::TopicSpec {
            name: topic,
            partitions: 1,
            replication: 1,
            configs: &[],
        },
    )
    .await
    .unwrap();
    let producer: FutureProducer = stack.kafka().side_producer().create().unwrap();
    for (key, value) in records {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).partition(0);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("{topic}: {e}"));
    }
}

/// The `id` of a framed key.
async fn key_id(stack: &Stack, schemas: &mut Schemas, key: &[u8]) -> i64 {
    let (_, value) = schemas.decode(stack, key).await;
    match field(&value, "id") {
        Some(Value::Long(n)) => *n,
        other => panic!("key without a long id: {other:?}"),
    }
}

/// A copy of the connector's topics under a new prefix, `edit` applied to
/// the users topic, with a stored offset past every position of the test:
/// the copy holds every change of the test database, as the connector left
/// it. Returns the config that verifies the copy.
async fn corrupted_copy(
    stack: &Stack,
    config: &cdc::config::Config,
    db: &str,
    offsets_dir: &std::path::Path,
    stored_file: &str,
    users: Vec<Raw>,
) -> cdc::config::Config {
    let prefix = pipeline::testing::unique_name("cdcv");
    for table in TABLES {
        let from = format!("{}.{db}.{table}", config.connector.topic_prefix);
        let records = match table {
            "users" => users.clone(),
            _ => raw_records(stack, &from).await,
        };
        write_topic(stack, &format!("{prefix}.{db}.{table}"), &records).await;
    }
    let offsets = offsets_dir.join(format!("{prefix}.json"));
    let (base, _) = stored_file.rsplit_once('.').unwrap();
    std::fs::write(
        &offsets,
        serde_json::json!({"file": format!("{base}.999999"), "pos": 4}).to_string(),
    )
    .unwrap();
    with(
        config,
        &[
            ("topic.prefix", &prefix),
            ("offset.storage", "file"),
            ("offset.storage.file.filename", offsets.to_str().unwrap()),
        ],
    )
}

/// User `id` as the snapshot reads it (`conn` at time zone +00:00).
async fn row_of(
    conn: &mut mysql_async::Conn,
    schema: &debezium_avro::TableSchema,
    id: u64,
) -> Vec<Cell> {
    let row: mysql_async::Row = conn
        .exec_first(format!("SELECT * FROM users WHERE id = {id}"), ())
        .await
        .unwrap()
        .unwrap();
    cdc::rows::row_from_snapshot(row, schema).unwrap()
}

/// The framed key and value the connector would write for `cells`.
fn framed(
    codec: &TableCodec,
    ids: (u32, u32),
    cells: &[Cell],
    before: Option<&[Cell]>,
    op: Op,
    source: &SourceInfo,
) -> Raw {
    let mut key = Vec::new();
    pipeline::registry::start_frame(ids.0, &mut key);
    let _ = codec.encode_key(cells, &mut key).unwrap();
    let mut value = Vec::new();
    pipeline::registry::start_frame(ids.1, &mut value);
    let _ = codec
        .encode_envelope(before, Some(cells), source, op, 0, &mut value)
        .unwrap();
    (Some(key), Some(value))
}

async fn verify_reports_equal_then_each_corruption(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    for id in 1..=20 {
        conn.query_drop(format!(
            "INSERT INTO users (id, email) VALUES ({id}, 'u{id}@example.com')"
        ))
        .await
        .unwrap();
    }
    conn.query_drop(
        "INSERT INTO items (id, name, price, inventory) VALUES \
         (1, 'a', 1.50, 10), (2, 'b', 2.25, 20), (3, 'c', 99999.99, 0)",
    )
    .await
    .unwrap();
    conn.query_drop(
        "INSERT INTO purchases (user_id, item_id, quantity, purchase_price) \
         VALUES (1, 1, 1, 1.50), (2, 2, 2, 4.50)",
    )
    .await
    .unwrap();

    let config = config(&stack, &db);
    let users_topic = format!("{}.{db}.users", config.connector.topic_prefix);
    let running = start(config.clone());
    wait_for_records(&stack, &users_topic, "20 snapshot rows", |r| r.len() >= 20).await;
    // Streamed changes on top of the snapshot.
    conn.query_drop("UPDATE users SET email = 'five@example.com' WHERE id = 5")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM users WHERE id = 6")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO users (id, email) VALUES (21, 'u21@example.com')")
        .await
        .unwrap();
    wait_for_records(&stack, &users_topic, "the streamed insert", |r| {
        r.iter().any(|r| r.key_id() == Some(21))
    })
    .await;

    // Equal, while the tables keep changing.
    let stop_writing = CancellationToken::new();
    let writer = {
        let stop = stop_writing.clone();
        let mut conn = admin(&stack, Some(&db)).await;
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let id = 7 + n % 5;
                conn.query_drop(format!(
                    "UPDATE users SET email = 'w{n}@example.com' WHERE id = {id}"
                ))
                .await
                .unwrap();
                conn.query_drop(format!(
                    "INSERT INTO purchases (user_id, item_id, purchase_price) VALUES ({id}, 1, {n})"
                ))
                .await
                .unwrap();
                conn.query_drop(format!("UPDATE items SET inventory = {n} WHERE id = 2"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };
    let during = cdc::verify::verify(&config, &options()).await.unwrap();
    stop_writing.cancel();
    let writes = writer.await.unwrap();
    assert!(writes > 0);
    assert_eq!(during.exit_code(), EXIT_EQUAL, "{}", during.render());
    assert_eq!(during.tables.len(), 3, "{}", during.render());
    assert_eq!(table_report(&during, "users").rows, 20);
    assert_eq!(table_report(&during, "items").rows, 3);
    // Quiet again: equal, and every write above is in Kafka once this returns
    // (verification waits for the connector to pass its point).
    let quiet = cdc::verify::verify(&config, &options()).await.unwrap();
    assert_eq!(quiet.exit_code(), EXIT_EQUAL, "{}", quiet.render());
    assert!(quiet.render().contains("EQUAL"), "{}", quiet.render());
    let purchases = table_report(&quiet, "purchases");
    assert_eq!(purchases.rows, 2 + writes, "{}", quiet.render());
    running.stop().await;

    let stored = cdc::offsets::OffsetStore::kafka(
        &config.kafka,
        match &config.connector.offset_storage {
            cdc::config::OffsetStorage::Kafka { topic } => topic,
            other => panic!("{other:?}"),
        },
        &config.connector.name,
        &config.connector.topic_prefix,
        1,
    )
    .await
    .unwrap()
    .load()
    .await
    .unwrap()
    .expect("a stored offset");
    let offsets_dir = tempfile::tempdir().unwrap();
    let users = raw_records(&stack, &users_topic).await;
    let mut schemas = Schemas::default();

    // `RegexRouter`: an unchanged copy of the topics, verified as the
    // topics of a connector whose prefix the router maps onto the copy's.
    let clean = corrupted_copy(
        &stack,
        &config,
        &db,
        offsets_dir.path(),
        &stored.file,
        users.clone(),
    )
    .await;
    let copied = clean.connector.topic_prefix.clone();
    let unrouted = pipeline::testing::unique_name("cdcr");
    let regex = format!("{unrouted}\\.(.*)");
    let replacement = format!("{copied}.$1");
    let routed = with(
        &clean,
        &[
            ("topic.prefix", &unrouted),
            ("transforms", "route"),
            ("transforms.route.type", cdc::routing::RegexRouter::TYPE),
            ("transforms.route.regex", &regex),
            ("transforms.route.replacement", &replacement),
        ],
    );
    let report = cdc::verify::verify(&routed, &options()).await.unwrap();
    assert_eq!(report.exit_code(), EXIT_EQUAL, "{}", report.render());
    assert_eq!(
        table_report(&report, "users").topic,
        format!("{copied}.{db}.users")
    );
    // A router that merges the tables into one topic cannot be verified.
    let merged = with(&routed, &[("transforms.route.replacement", "everything")]);
    let err = cdc::verify::verify(&merged, &options()).await.unwrap_err();
    assert!(
        matches!(&err, cdc::verify::VerifyError::SharedTopic { topic, .. } if topic == "everything"),
        "{err}"
    );

    // A dropped record: user 3 has only its snapshot record; leave it out.
    let mut dropped = Vec::new();
    let mut left_out = 0;
    for record in &users {
        if let (Some(key), Some(_)) = record {
            if key_id(&stack, &mut schemas, key).await == 3 {
                left_out += 1;
                continue;
            }
        }
        dropped.push(record.clone());
    }
    assert_eq!(left_out, 1);
    let copy = corrupted_copy(
        &stack,
        &config,
        &db,
        offsets_dir.path(),
        &stored.file,
        dropped,
    )
    .await;
    let registry = stack.registry().url.expose().to_owned();
    let offsets_file = match &copy.connector.offset_storage {
        cdc::config::OffsetStorage::File { path } => path.clone(),
        other => panic!("{other:?}"),
    };
    let out = cdc_command(BIN, &stack, &copy, &offsets_file, &registry)
        .args(["verify", "--examples", "3", "--wait-secs", "60"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(EXIT_DIFFERENT)),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("missing {\"id\":3}: in the table, no record in the topic"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 missing, 0 extra, 0 different"),
        "{stdout}"
    );
    assert!(
        stdout.contains("result: DIFFERENT: the topics do not match the tables (exit 1)"),
        "{stdout}"
    );

    // The codec and schema ids the connector used, and the source of a real
    // streamed record (the update of user 5): the forged records below are
    // valid records of a transaction before the verification point.
    let users_schema = cdc::schema::load_table_schema(&mut conn, &db, "users")
        .await
        .unwrap()
        .unwrap();
    let codec = TableCodec::new(&users_schema, &cdc::converter_config(&config.connector)).unwrap();
    let mut update_of_5 = None;
    for (key, value) in &users {
        let (Some(key), Some(value)) = (key, value) else {
            continue;
        };
        if key_id(&stack, &mut schemas, key).await != 5 {
            continue;
        }
        let (_, decoded) = schemas.decode(&stack, value).await;
        let record = Record {
            key: None,
            value: Some(decoded),
            value_schema_id: None,
            headers: Vec::new(),
            timestamp_ms: None,
        };
        if record.op().as_deref() == Some("u") {
            let ids = (
                pipeline::registry::frame_schema_id(key).unwrap(),
                pipeline::registry::frame_schema_id(value).unwrap(),
            );
            update_of_5 = Some((record, ids));
        }
    }
    let (update, ids) = update_of_5.expect("the update of user 5 in the topic");
    let source_field = |name: &str| update.field("source").and_then(|s| field(s, name)).cloned();
    let source = SourceInfo {
        server_id: match source_field("server_id") {
            Some(Value::Long(n)) => n as u32,
            other => panic!("{other:?}"),
        },
        file: match source_field("file") {
            Some(Value::String(s)) => s,
            other => panic!("{other:?}"),
        },
        pos: match source_field("pos") {
            Some(Value::Long(n)) => n as u64,
            other => panic!("{other:?}"),
        },
        row: 0,
        gtid: match source_field("gtid").as_ref().map(unwrap_union) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        ts_ms: 0,
        snapshot: SnapshotMarker::False,
        thread: None,
        query: None,
    };
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    // An extra record: an insert of user 999999, whom the table lacks.
    let mut extra_cells = row_of(&mut conn, &users_schema, 1).await;
    extra_cells[0] = Cell::UInt(999_999);
    let mut extra = users.clone();
    extra.push(framed(&codec, ids, &extra_cells, None, Op::Create, &source));
    let copy = corrupted_copy(
        &stack,
        &config,
        &db,
        offsets_dir.path(),
        &stored.file,
        extra,
    )
    .await;
    let report = cdc::verify::verify(&copy, &options()).await.unwrap();
    assert_eq!(report.exit_code(), EXIT_DIFFERENT, "{}", report.render());
    let users_report = table_report(&report, "users");
    assert_eq!(
        (
            users_report.missing.count,
            users_report.extra.count,
            users_report.different.count
        ),
        (0, 1, 0),
        "{}",
        report.render()
    );
    assert!(
        users_report.extra.examples[0]
            .starts_with("{\"id\":999999}: in the topic, not in the table"),
        "{}",
        report.render()
    );
    for other in ["items", "purchases"] {
        assert!(
            table_report(&report, other).is_equal(),
            "{}",
            report.render()
        );
    }

    // A changed value: an update of user 2 to another email.
    let before = row_of(&mut conn, &users_schema, 2).await;
    let mut after = before.clone();
    after[1] = Cell::Bytes(b"changed@example.com".to_vec());
    let mut changed = users.clone();
    changed.push(framed(
        &codec,
        ids,
        &after,
        Some(&before),
        Op::Update,
        &source,
    ));
    let copy = corrupted_copy(
        &stack,
        &config,
        &db,
        offsets_dir.path(),
        &stored.file,
        changed,
    )
    .await;
    let report = cdc::verify::verify(&copy, &options()).await.unwrap();
    assert_eq!(report.exit_code(), EXIT_DIFFERENT, "{}", report.render());
    let users_report = table_report(&report, "users");
    assert_eq!(
        (
            users_report.missing.count,
            users_report.extra.count,
            users_report.different.count
        ),
        (0, 0, 1),
        "{}",
        report.render()
    );
    assert_eq!(
        users_report.different.examples[0],
        "{\"id\":2}: email: table \"u2@example.com\" topic \"changed@example.com\"",
        "{}",
        report.render()
    );
}

/// A table without a primary key, keyed by `message.key.columns`, with a
/// hashed and a masked column: verification reads it in chunks of that key
/// (not skipped as keyless) and renders its rows through the same mappers
/// as the records, so the topic is reported equal.
async fn verify_compares_by_message_key_columns_and_mapped_values(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    conn.query_drop(
        "CREATE TABLE events (tenant VARCHAR(8) NOT NULL, seq INT NOT NULL, email VARCHAR(40), \
         note TEXT, UNIQUE KEY (tenant, seq))",
    )
    .await
    .unwrap();
    let values: Vec<String> = (0..30)
        .map(|i| format!("('t{}', {i}, 'u{i}@example.com', 'note {i}')", i % 4))
        .collect();
    conn.query_drop(format!("INSERT INTO events VALUES {}", values.join(",")))
        .await
        .unwrap();
    let config = with(
        &config(&stack, &db),
        &[
            ("message.key.columns", &format!("{db}.events:tenant,seq")),
            (
                "column.mask.hash.v2.SHA-256.with.salt.pepper",
                &format!("{db}.events.email"),
            ),
            ("column.mask.with.4.chars", &format!("{db}.events.note")),
        ],
    );
    let topic = format!("{}.{db}.events", config.connector.topic_prefix);
    let running = start(config.clone());
    wait_for_records(&stack, &topic, "30 snapshot rows", |r| r.len() >= 30).await;
    conn.query_drop("UPDATE events SET email = 'new@example.com' WHERE tenant = 't1' AND seq = 5")
        .await
        .unwrap();

    let report = cdc::verify::verify(&config, &options()).await.unwrap();
    let events = table_report(&report, "events");
    assert_eq!(events.skipped, None, "{}", report.render());
    assert_eq!(events.rows, 30, "{}", report.render());
    assert_eq!(report.exit_code(), EXIT_EQUAL, "{}", report.render());

    // The hash in the topic is what SQL computes, so verification compared
    // mapped values, not the table's text.
    let mut schemas = Schemas::default();
    let records = read_topic(&stack, &topic, &mut schemas).await;
    let last = records.last().unwrap();
    let (expected,): (String,) = conn
        .query_first("SELECT SHA2(CONCAT('pepper', 'new@example.com'), 256)")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        string(last.column("after", "email")),
        Some(expected[..40].to_owned())
    );
    assert_eq!(
        string(last.column("after", "note")).as_deref(),
        Some("****")
    );

    running.stop().await;
}
