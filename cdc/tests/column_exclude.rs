//! `column.exclude.list` against the local stack: excluded columns are absent
//! from the registered value schema and from every before/after image, in the
//! snapshot, in streamed inserts and updates, and after DDL rebuilds the table's
//! schema; an excluded primary-key column stays in the record key (Debezium's
//! `TableSchemaBuilder` builds the key regardless of the column filter).
//! `column.include.list`, its complement: only the named columns reach values,
//! a column added later is left out unless named, and the key stays whole.
//! The live tests run once per source server (`mariadb::*`, `mysql::*`).

mod stack_support;
mod types_support;

use apache_avro::types::Value;
use mysql_async::prelude::Queryable;
use pipeline::testing::Flavour;
use stack_support::*;

per_flavour!(
    excluded_columns_never_reach_values_in_snapshot_streaming_or_after_ddl,
    only_included_columns_reach_values_and_the_key_stays_whole,
);

/// Planted in every excluded cell: no decoded record may contain it.
const SECRET: &str = "TOPSECRET";

/// Field names of the `image` record (`before`/`after`), in schema order.
fn image_fields(r: &Record, image: &str) -> Vec<String> {
    match unwrap_union(r.field(image).expect("image field")) {
        Value::Record(fields) => fields.iter().map(|(n, _)| n.clone()).collect(),
        other => panic!("{image} is not a record: {other:?}"),
    }
}

/// The codec alone (no stack): the value schema and datum skip excluded
/// columns while the full-width row still feeds the key, which keeps an
/// excluded primary-key column.
#[test]
fn the_codec_leaves_excluded_columns_out_of_values_but_not_keys() {
    use debezium_avro::Cell;
    use types_support as ts;
    let mut cfg = ts::demo_cfg();
    cfg.excluded_columns = cdc::config::column_filter("shop\\.t\\.(secret|code)").unwrap();
    let table = ts::table(
        "shop",
        "t",
        vec![
            ts::not_null(ts::col("code", "varchar(8)")),
            ts::col("secret", "varchar(32)"),
            ts::col("n", "int(11)"),
        ],
        vec![0],
    );
    let codec = debezium_avro::TableCodec::new(&table, &cfg).unwrap();
    assert!(!codec.value_schema_json.contains("secret"));
    assert!(!codec.value_schema_json.contains("\"code\""));
    assert!(codec
        .key_schema_json
        .as_deref()
        .unwrap()
        .contains("\"code\""));
    let row = [
        Cell::Bytes(b"k1".to_vec()),
        Cell::Bytes(SECRET.as_bytes().to_vec()),
        Cell::Int(7),
    ];
    let after = ts::after_record(&codec, &row);
    assert_eq!(
        after,
        Value::Record(vec![("n".into(), Value::Union(1, Box::new(Value::Int(7))))])
    );
    let key = ts::key_record(&codec, &row);
    assert_eq!(
        key,
        Value::Record(vec![("code".into(), Value::String("k1".into()))])
    );

    // Without the filter the same table keeps every column.
    assert_eq!(
        codec.excluded_columns().collect::<Vec<_>>(),
        ["code", "secret"]
    );
    let full = debezium_avro::TableCodec::new(&table, &ts::demo_cfg()).unwrap();
    assert_eq!(full.excluded_columns().count(), 0);
    assert!(full.value_schema_json.contains("secret"));
}

/// A fresh database with the `accounts` table both live tests filter, and
/// a connection to it.
async fn accounts_database(stack: &pipeline::testing::Stack) -> (String, mysql_async::Conn) {
    let db = stack.fresh_mysql_database().await;
    let mut conn = admin(stack, Some(&db)).await;
    conn.query_drop(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(64), \
         secret VARCHAR(64), note VARCHAR(32))",
    )
    .await
    .unwrap();
    (db, conn)
}

async fn excluded_columns_never_reach_values_in_snapshot_streaming_or_after_ddl(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let (db, mut conn) = accounts_database(&stack).await;
    // The excluded column is the primary key here.
    conn.query_drop("CREATE TABLE codes (code VARCHAR(16) PRIMARY KEY, v INT)")
        .await
        .unwrap();
    conn.query_drop(format!(
        "INSERT INTO accounts VALUES (1, 'a@x', '{SECRET}-1', 'n1'), (2, 'b@x', '{SECRET}-2', 'n2')"
    ))
    .await
    .unwrap();
    conn.query_drop("INSERT INTO codes VALUES ('k1', 10)")
        .await
        .unwrap();

    let quoted = regex::escape(&db);
    let excluded = format!("{quoted}\\.accounts\\.secret, {quoted}\\.codes\\.code");
    let config = with(&config(&stack, &db), &[("column.exclude.list", &excluded)]);
    let prefix = config.connector.topic_prefix.clone();
    let accounts = format!("{prefix}.{db}.accounts");
    let codes = format!("{prefix}.{db}.codes");
    let running = start(config.clone());

    // Snapshot.
    let snap = wait_for_records(&stack, &accounts, "2 snapshot rows", |r| r.len() >= 2).await;
    for r in &snap {
        assert_eq!(r.op().as_deref(), Some("r"));
        assert_eq!(image_fields(r, "after"), ["id", "email", "note"]);
    }
    assert_eq!(
        string(snap[0].column("after", "email")).as_deref(),
        Some("a@x")
    );
    assert_eq!(
        string(snap[1].column("after", "note")).as_deref(),
        Some("n2")
    );
    let code_snap = wait_for_records(&stack, &codes, "1 snapshot row", |r| !r.is_empty()).await;
    assert_eq!(image_fields(&code_snap[0], "after"), ["v"]);
    assert_eq!(code_snap[0].column("after", "v"), Some(Value::Int(10)));
    let key_code = |r: &Record| match field(r.key.as_ref().expect("keyed record"), "code") {
        Some(Value::String(s)) => s.clone(),
        other => panic!("key.code should be a string, got {other:?}"),
    };
    assert_eq!(key_code(&code_snap[0]), "k1");

    // Streaming: insert, update of both an excluded and a kept column.
    conn.query_drop(format!(
        "INSERT INTO accounts VALUES (3, 'c@x', '{SECRET}-3', 'n3')"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "UPDATE accounts SET secret = '{SECRET}-1b', note = 'n1b' WHERE id = 1"
    ))
    .await
    .unwrap();
    conn.query_drop("UPDATE codes SET v = 11 WHERE code = 'k1'")
        .await
        .unwrap();
    // DDL: the streamed schema is rebuilt from the new table shape.
    conn.query_drop("ALTER TABLE accounts ADD COLUMN extra INT AFTER secret")
        .await
        .unwrap();
    conn.query_drop(format!(
        "INSERT INTO accounts VALUES (4, 'd@x', '{SECRET}-4', 40, 'n4')"
    ))
    .await
    .unwrap();

    let all = wait_for_records(&stack, &accounts, "streamed changes", |r| r.len() >= 5).await;
    let code_all = wait_for_records(&stack, &codes, "streamed update", |r| r.len() >= 2).await;
    running.stop().await;

    let ops: Vec<_> = all[2..].iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![
            (Some(3), Some("c".into())),
            (Some(1), Some("u".into())),
            (Some(4), Some("c".into())),
        ]
    );
    let insert = &all[2];
    assert_eq!(image_fields(insert, "after"), ["id", "email", "note"]);
    assert_eq!(
        string(insert.column("after", "email")).as_deref(),
        Some("c@x")
    );
    let update = &all[3];
    assert_eq!(image_fields(update, "before"), ["id", "email", "note"]);
    assert_eq!(image_fields(update, "after"), ["id", "email", "note"]);
    assert_eq!(
        string(update.column("before", "note")).as_deref(),
        Some("n1")
    );
    assert_eq!(
        string(update.column("after", "note")).as_deref(),
        Some("n1b")
    );
    assert_eq!(update.value_schema_id, snap[0].value_schema_id);
    let after_ddl = &all[4];
    assert_eq!(
        image_fields(after_ddl, "after"),
        ["id", "email", "extra", "note"]
    );
    assert_eq!(after_ddl.column("after", "extra"), Some(Value::Int(40)));
    assert_eq!(
        string(after_ddl.column("after", "note")).as_deref(),
        Some("n4")
    );
    assert_ne!(after_ddl.value_schema_id, snap[0].value_schema_id);

    let code_update = &code_all[1];
    assert_eq!(code_update.op().as_deref(), Some("u"));
    assert_eq!(key_code(code_update), "k1");
    assert_eq!(image_fields(code_update, "before"), ["v"]);
    assert_eq!(code_update.column("after", "v"), Some(Value::Int(11)));

    // Decoding consumed every byte of each datum, so the excluded values are in
    // no record at all (keys included: `secret` is not a key column).
    let dump = format!("{all:?}{code_all:?}");
    assert!(!dump.contains(SECRET), "an excluded value was emitted");
}

async fn only_included_columns_reach_values_and_the_key_stays_whole(flavour: Flavour) {
    let Some(stack) = pipeline::testing::stack_for(flavour) else {
        return;
    };
    let (db, mut conn) = accounts_database(&stack).await;
    conn.query_drop(format!(
        "INSERT INTO accounts VALUES (1, 'a@x', '{SECRET}-1', 'n1')"
    ))
    .await
    .unwrap();
    // The primary key is not named: it stays in the key, not in values.
    let included = format!("{}\\.accounts\\.(email|note)", regex::escape(&db));
    let config = with(&config(&stack, &db), &[("column.include.list", &included)]);
    let accounts = format!("{}.{db}.accounts", config.connector.topic_prefix);
    let running = start(config);
    wait_for_records(&stack, &accounts, "the snapshot row", |r| !r.is_empty()).await;
    conn.query_drop("ALTER TABLE accounts ADD COLUMN extra INT")
        .await
        .unwrap();
    conn.query_drop(format!(
        "INSERT INTO accounts VALUES (2, 'b@x', '{SECRET}-2', 'n2', 20)"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "UPDATE accounts SET secret = '{SECRET}-1b', note = 'n1b' WHERE id = 1"
    ))
    .await
    .unwrap();
    let all = wait_for_records(&stack, &accounts, "the streamed changes", |r| r.len() >= 3).await;
    running.stop().await;

    let ops: Vec<_> = all.iter().map(|r| (r.key_id(), r.op())).collect();
    assert_eq!(
        ops,
        vec![
            (Some(1), Some("r".into())),
            (Some(2), Some("c".into())),
            (Some(1), Some("u".into())),
        ]
    );
    for r in &all {
        assert_eq!(image_fields(r, "after"), ["email", "note"]);
        assert!(!format!("{:?}", r.value).contains(SECRET), "{:?}", r.value);
    }
    assert_eq!(image_fields(&all[2], "before"), ["email", "note"]);
    assert_eq!(
        string(all[2].column("after", "note")).as_deref(),
        Some("n1b")
    );
    assert_eq!(
        string(all[1].column("after", "email")).as_deref(),
        Some("b@x")
    );
}
