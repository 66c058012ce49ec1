//! The demo's three tables: exact schema JSON (field order, unions, defaults,
//! connect.* properties per debezium-avro.md) and a round trip of each datum
//! through apache-avro.

mod types_support;

use apache_avro::types::Value;
use debezium_avro::Cell;
use debezium_avro::{Op, SnapshotMarker, TableCodec};
use types_support::*;

const ZONED: &str =
    r#"{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTimestamp"}"#;
const TS_DEFAULT_EPOCH: &str = r#"[{"type":"long","connect.version":1,"connect.default":0,"connect.name":"org.apache.kafka.connect.data.Timestamp","logicalType":"timestamp-millis"},"null"],"default":0"#;

fn expected_value_fields(table: &str) -> String {
    let zoned = |n: &str| format!(r#"{{"name":"{n}","type":["null",{ZONED}],"default":null}}"#);
    let updated = format!(r#"{{"name":"updated_at","type":{TS_DEFAULT_EPOCH}}}"#);
    let decimal = |n: &str, p: u32, s: u32| {
        format!(
            r#"{{"name":"{n}","type":["null",{{"type":"bytes","scale":{s},"precision":{p},"connect.version":1,"connect.parameters":{{"scale":"{s}","connect.decimal.precision":"{p}"}},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}}],"default":null}}"#
        )
    };
    let fields: Vec<String> = match table {
        "users" => vec![
            r#"{"name":"id","type":"long"}"#.into(),
            r#"{"name":"email","type":["null","string"],"default":null}"#.into(),
            r#"{"name":"is_vip","type":[{"type":"int","connect.default":0,"connect.type":"int16"},"null"],"default":0}"#.into(),
            zoned("created_at"),
            updated,
        ],
        "items" => vec![
            r#"{"name":"id","type":"long"}"#.into(),
            r#"{"name":"name","type":["null","string"],"default":null}"#.into(),
            r#"{"name":"category","type":["null","string"],"default":null}"#.into(),
            decimal("price", 7, 2),
            r#"{"name":"inventory","type":["null","int"],"default":null}"#.into(),
            zoned("inventory_updated_at"),
            zoned("created_at"),
            updated,
        ],
        "purchases" => vec![
            r#"{"name":"id","type":"long"}"#.into(),
            r#"{"name":"user_id","type":["null","long"],"default":null}"#.into(),
            r#"{"name":"item_id","type":["null","long"],"default":null}"#.into(),
            r#"{"name":"status","type":[{"type":"int","connect.default":1,"connect.type":"int16"},"null"],"default":1}"#.into(),
            r#"{"name":"quantity","type":[{"type":"long","connect.default":1},"null"],"default":1}"#.into(),
            decimal("purchase_price", 12, 2),
            r#"{"name":"deleted","type":[{"type":"int","connect.default":0,"connect.type":"int16"},"null"],"default":0}"#.into(),
            zoned("created_at"),
            updated,
        ],
        other => panic!("{other}"),
    };
    fields.join(",")
}

fn expected_envelope(table: &str) -> String {
    let ns = format!("mysql.shop.{table}");
    let fields = expected_value_fields(table);
    let source = r#"{"type":"record","name":"Source","namespace":"io.debezium.connector.mysql","fields":[{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},{"name":"ts_ms","type":"long"},{"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},{"name":"db","type":"string"},{"name":"sequence","type":["null","string"],"default":null},{"name":"ts_us","type":["null","long"],"default":null},{"name":"ts_ns","type":["null","long"],"default":null},{"name":"table","type":["null","string"],"default":null},{"name":"server_id","type":"long"},{"name":"gtid","type":["null","string"],"default":null},{"name":"file","type":"string"},{"name":"pos","type":"long"},{"name":"row","type":"int"},{"name":"thread","type":["null","long"],"default":null},{"name":"query","type":["null","string"],"default":null}],"connect.version":1,"connect.name":"io.debezium.connector.mysql.Source"}"#;
    let block = r#"{"type":"record","name":"block","namespace":"event","fields":[{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}],"connect.version":1,"connect.name":"event.block"}"#;
    format!(
        r#"{{"type":"record","name":"Envelope","namespace":"{ns}","fields":[{{"name":"before","type":["null",{{"type":"record","name":"Value","fields":[{fields}],"connect.name":"{ns}.Value"}}],"default":null}},{{"name":"after","type":["null","Value"],"default":null}},{{"name":"source","type":{source}}},{{"name":"transaction","type":["null",{block}],"default":null}},{{"name":"op","type":"string"}},{{"name":"ts_ms","type":["null","long"],"default":null}},{{"name":"ts_us","type":["null","long"],"default":null}},{{"name":"ts_ns","type":["null","long"],"default":null}}],"connect.version":2,"connect.name":"{ns}.Envelope"}}"#
    )
}

#[test]
fn demo_schemas_are_exactly_debeziums() {
    for t in demo_tables() {
        let codec = TableCodec::new(&t, &demo_cfg()).expect("codec");
        assert_eq!(codec.topic, format!("mysql.shop.{}", t.table));
        assert_eq!(
            codec.key_schema_json.as_deref(),
            Some(
                format!(
                    r#"{{"type":"record","name":"Key","namespace":"mysql.shop.{0}","fields":[{{"name":"id","type":"long"}}],"connect.name":"mysql.shop.{0}.Key"}}"#,
                    t.table
                )
                .as_str()
            )
        );
        assert_eq!(
            codec.value_schema_json,
            expected_envelope(&t.table),
            "{}",
            t.table
        );
        // Both parse as Avro.
        apache_avro::Schema::parse_str(&codec.value_schema_json).expect("value schema parses");
        apache_avro::Schema::parse_str(codec.key_schema_json.as_deref().unwrap())
            .expect("key schema parses");
    }
}

#[test]
fn purchase_insert_round_trips() {
    let purchases = demo_tables().remove(2);
    let codec = TableCodec::new(&purchases, &demo_cfg()).unwrap();
    let row = vec![
        Cell::UInt(42),
        Cell::UInt(7),
        Cell::UInt(3),
        Cell::UInt(1),
        Cell::UInt(2),
        Cell::Decimal("-1234.50".into()),
        Cell::Int(0),
        Cell::TimestampUtc {
            secs: 1_673_397_250,
            micros: 0,
        },
        Cell::DateTime {
            year: 2023,
            month: 1,
            day: 11,
            hour: 0,
            minute: 34,
            second: 10,
            micros: 999_000,
        },
    ];
    let mut out = Vec::new();
    let encoded = codec
        .encode_envelope(
            None,
            Some(&row),
            &source(SnapshotMarker::False),
            Op::Create,
            1_700_000_000_123_456_789,
            &mut out,
        )
        .unwrap();
    assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
    let env = decode(&codec.value_schema_json, &out);
    assert_eq!(
        field(&env, "before"),
        &Value::Union(0, Box::new(Value::Null))
    );
    let after = un(field(&env, "after"));
    assert_eq!(field(after, "id"), &Value::Long(42));
    assert_eq!(un(field(after, "user_id")), &Value::Long(7));
    assert_eq!(
        field(after, "status"),
        &Value::Union(0, Box::new(Value::Int(1)))
    );
    assert_eq!(
        field(after, "quantity"),
        &Value::Union(0, Box::new(Value::Long(2)))
    );
    assert_eq!(un(field(after, "purchase_price")), &decimal_value(-123_450));
    assert_eq!(un(field(after, "deleted")), &Value::Int(0));
    assert_eq!(
        un(field(after, "created_at")),
        &Value::String("2023-01-11T00:34:10Z".into())
    );
    assert_eq!(
        un(field(after, "updated_at")),
        &Value::TimestampMillis(1_673_397_250_999)
    );
    let src = field(&env, "source");
    assert_eq!(field(src, "version"), &Value::String("3.6.3.Final".into()));
    assert_eq!(field(src, "connector"), &Value::String("mysql".into()));
    assert_eq!(field(src, "name"), &Value::String("mysql".into()));
    assert_eq!(field(src, "ts_ms"), &Value::Long(1_700_000_000_123));
    assert_eq!(
        field(src, "snapshot"),
        &Value::Union(0, Box::new(Value::String("false".into())))
    );
    assert_eq!(field(src, "db"), &Value::String("shop".into()));
    assert_eq!(
        field(src, "sequence"),
        &Value::Union(0, Box::new(Value::Null))
    );
    assert_eq!(un(field(src, "ts_us")), &Value::Long(1_700_000_000_123_000));
    assert_eq!(
        un(field(src, "ts_ns")),
        &Value::Long(1_700_000_000_123_000_000)
    );
    assert_eq!(un(field(src, "table")), &Value::String("purchases".into()));
    assert_eq!(field(src, "server_id"), &Value::Long(223344));
    assert_eq!(un(field(src, "gtid")), &Value::Null);
    assert_eq!(
        field(src, "file"),
        &Value::String("mysql-bin.000003".into())
    );
    assert_eq!(field(src, "pos"), &Value::Long(4567));
    assert_eq!(field(src, "row"), &Value::Int(1));
    assert_eq!(un(field(src, "thread")), &Value::Long(7));
    assert_eq!(un(field(src, "query")), &Value::Null);
    assert_eq!(
        field(&env, "transaction"),
        &Value::Union(0, Box::new(Value::Null))
    );
    assert_eq!(field(&env, "op"), &Value::String("c".into()));
    assert_eq!(un(field(&env, "ts_ms")), &Value::Long(1_700_000_000_123));
    assert_eq!(
        un(field(&env, "ts_us")),
        &Value::Long(1_700_000_000_123_456)
    );
    assert_eq!(
        un(field(&env, "ts_ns")),
        &Value::Long(1_700_000_000_123_456_789)
    );

    let key = key_record(&codec, &row);
    assert_eq!(record_fields(&key), &[("id".to_string(), Value::Long(42))]);
}

#[test]
fn update_delete_and_snapshot_markers() {
    let users = demo_tables().remove(0);
    let codec = TableCodec::new(&users, &demo_cfg()).unwrap();
    let before = vec![
        Cell::UInt(1),
        Cell::Bytes(b"a@example.com".to_vec()),
        Cell::Int(0),
        Cell::Null,
        Cell::Null,
    ];
    let after = vec![
        Cell::UInt(1),
        Cell::Null,
        Cell::Int(1),
        Cell::TimestampUtc { secs: 0, micros: 0 },
        Cell::Null,
    ];
    let mut out = Vec::new();
    let encoded = codec
        .encode_envelope(
            Some(&before),
            Some(&after),
            &source(SnapshotMarker::Last),
            Op::Update,
            0,
            &mut out,
        )
        .unwrap();
    assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
    let env = decode(&codec.value_schema_json, &out);
    let b = un(field(&env, "before"));
    assert_eq!(
        un(field(b, "email")),
        &Value::String("a@example.com".into())
    );
    // Nullable columns with a default are [T,"null"]: null is branch 1.
    assert_eq!(
        field(b, "updated_at"),
        &Value::Union(1, Box::new(Value::Null))
    );
    let a = un(field(&env, "after"));
    assert_eq!(field(a, "email"), &Value::Union(0, Box::new(Value::Null)));
    assert_eq!(
        field(a, "is_vip"),
        &Value::Union(0, Box::new(Value::Int(1)))
    );
    assert_eq!(
        un(field(a, "created_at")),
        &Value::String("1970-01-01T00:00:00Z".into())
    );
    assert_eq!(field(&env, "op"), &Value::String("u".into()));
    assert_eq!(
        un(field(field(&env, "source"), "snapshot")),
        &Value::String("last".into())
    );

    out.clear();
    let encoded = codec
        .encode_envelope(
            Some(&before),
            None,
            &source(SnapshotMarker::First),
            Op::Delete,
            0,
            &mut out,
        )
        .unwrap();
    assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
    let env = decode(&codec.value_schema_json, &out);
    assert_eq!(
        field(&env, "after"),
        &Value::Union(0, Box::new(Value::Null))
    );
    assert_eq!(field(&env, "op"), &Value::String("d".into()));
    assert_eq!(
        un(field(field(&env, "source"), "snapshot")),
        &Value::String("first".into())
    );

    // A row of the wrong width is an error naming the table.
    let err = codec
        .encode_envelope(
            None,
            Some(&after[..2]),
            &source(SnapshotMarker::True),
            Op::Read,
            0,
            &mut out,
        )
        .unwrap_err();
    assert!(err.to_string().contains("shop.users"), "{err}");
}

/// Debezium's truncate record (`BinlogChangeRecordEmitter.emitTruncateRecord`):
/// the table's envelope with before and after null, op "t", the source block
/// filled; the Kafka key is null (the sink sends none).
#[test]
fn truncate_is_an_envelope_with_both_images_null_and_op_t() {
    let purchases = demo_tables().remove(2);
    let codec = TableCodec::new(&purchases, &demo_cfg()).unwrap();
    let mut out = Vec::new();
    let encoded = codec
        .encode_envelope(
            None,
            None,
            &source(SnapshotMarker::False),
            Op::Truncate,
            1_700_000_000_123_456_789,
            &mut out,
        )
        .unwrap();
    assert!(encoded.replaced.is_empty(), "{:?}", encoded.replaced);
    let env = decode(&codec.value_schema_json, &out);
    let null = Value::Union(0, Box::new(Value::Null));
    assert_eq!(field(&env, "before"), &null);
    assert_eq!(field(&env, "after"), &null);
    assert_eq!(field(&env, "op"), &Value::String("t".into()));
    assert_eq!(un(field(&env, "ts_ms")), &Value::Long(1_700_000_000_123));
    let source = field(&env, "source");
    assert_eq!(
        un(field(source, "table")),
        &Value::String("purchases".into())
    );
    assert_eq!(field(source, "db"), &Value::String("shop".into()));
    assert_eq!(
        un(field(source, "snapshot")),
        &Value::String("false".into())
    );
    assert_eq!(Op::Truncate.code(), "t");
}
