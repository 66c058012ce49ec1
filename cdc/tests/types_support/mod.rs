//! Shared helpers of the `types_*` tests: table builders and an apache-avro based
//! decoder that checks our hand-written datums against the generated schemas.
#![allow(dead_code)]

use apache_avro::types::Value;
use apache_avro::Schema;
use debezium_avro::Cell;
use debezium_avro::{
    BigintUnsigned, ConverterConfig, DecimalHandling, Op, SnapshotMarker, SourceInfo, TableCodec,
    TimePrecision,
};
use debezium_avro::{ColumnSchema, TableSchema};

pub fn cfg(time: TimePrecision, dec: DecimalHandling, big: BigintUnsigned) -> ConverterConfig {
    ConverterConfig {
        topic_prefix: "mysql".into(),
        decimal_handling: dec,
        time_precision: time,
        bigint_unsigned: big,
        binary_handling: Default::default(),
        connector_version: "3.6.3.Final".into(),
        excluded_columns: Default::default(),
        column_mappers: Default::default(),
        message_key_columns: Default::default(),
        boolean_converters: Default::default(),
    }
}

pub fn demo_cfg() -> ConverterConfig {
    cfg(
        TimePrecision::Connect,
        DecimalHandling::Precise,
        BigintUnsigned::Long,
    )
}

/// A nullable column as information_schema describes it; precision/scale/fsp/labels
/// are derived from `column_type`.
pub fn col(name: &str, column_type: &str) -> ColumnSchema {
    let data_type = column_type
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_owned();
    let args: Vec<u64> = column_type
        .split_once('(')
        .map(|(_, r)| r.split(')').next().unwrap_or(""))
        .unwrap_or("")
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    let mut c = ColumnSchema {
        name: name.into(),
        data_type: data_type.clone(),
        column_type: column_type.into(),
        unsigned: column_type.contains("unsigned"),
        nullable: true,
        ..ColumnSchema::default()
    };
    match data_type.as_str() {
        "decimal" => {
            c.numeric_precision = args.first().copied();
            c.numeric_scale = Some(args.get(1).copied().unwrap_or(0));
        }
        "bit" => c.numeric_precision = Some(args.first().copied().unwrap_or(1)),
        "datetime" | "timestamp" | "time" => {
            c.datetime_precision = Some(args.first().copied().unwrap_or(0))
        }
        "char" | "varchar" | "binary" | "varbinary" => {
            c.char_max_length = args.first().copied();
            if !matches!(data_type.as_str(), "binary" | "varbinary") {
                c.charset = Some("utf8mb4".into());
            }
        }
        "text" | "tinytext" | "mediumtext" | "longtext" => c.charset = Some("utf8mb4".into()),
        "enum" | "set" => {
            c.enum_values = cdc::schema::parse_labels(column_type);
            c.charset = Some("utf8mb4".into());
        }
        _ => {}
    }
    c
}

pub fn not_null(mut c: ColumnSchema) -> ColumnSchema {
    c.nullable = false;
    c
}

pub fn with_default(mut c: ColumnSchema, d: &str) -> ColumnSchema {
    c.default = Some(d.into());
    c
}

pub fn table(db: &str, name: &str, columns: Vec<ColumnSchema>, pk: Vec<usize>) -> TableSchema {
    TableSchema {
        database: db.into(),
        table: name.into(),
        columns,
        primary_key: pk,
    }
}

/// The demo's three tables as MariaDB 10.11's information_schema gives them,
/// defaults normalised by `schema::normalize_default`.
pub fn demo_tables() -> Vec<TableSchema> {
    let id = not_null(col("id", "bigint(20) unsigned"));
    let ts = |n: &str| {
        with_default(
            col(n, "timestamp"),
            debezium_avro::CURRENT_TIMESTAMP_DEFAULT,
        )
    };
    let dt = |n: &str| with_default(col(n, "datetime"), debezium_avro::CURRENT_TIMESTAMP_DEFAULT);
    vec![
        table(
            "shop",
            "users",
            vec![
                id.clone(),
                col("email", "varchar(255)"),
                with_default(col("is_vip", "tinyint(1)"), "0"),
                ts("created_at"),
                dt("updated_at"),
            ],
            vec![0],
        ),
        table(
            "shop",
            "items",
            vec![
                id.clone(),
                col("name", "varchar(100)"),
                col("category", "varchar(100)"),
                col("price", "decimal(7,2)"),
                col("inventory", "int(11)"),
                ts("inventory_updated_at"),
                ts("created_at"),
                dt("updated_at"),
            ],
            vec![0],
        ),
        table(
            "shop",
            "purchases",
            vec![
                id,
                col("user_id", "bigint(20) unsigned"),
                col("item_id", "bigint(20) unsigned"),
                with_default(col("status", "tinyint(3) unsigned"), "1"),
                with_default(col("quantity", "int(10) unsigned"), "1"),
                col("purchase_price", "decimal(12,2)"),
                with_default(col("deleted", "tinyint(1)"), "0"),
                ts("created_at"),
                dt("updated_at"),
            ],
            vec![0],
        ),
    ]
}

/// Decodes `datum` with `schema_json` through apache-avro, asserting that the
/// schema parses and that the datum is consumed exactly.
pub fn decode(schema_json: &str, datum: &[u8]) -> Value {
    let schema = Schema::parse_str(schema_json)
        .unwrap_or_else(|e| panic!("schema does not parse: {e}\n{schema_json}"));
    let mut reader = datum;
    // The plain datum reader is what a Confluent deserializer does after the header.
    #[allow(deprecated)]
    let value = apache_avro::from_avro_datum(&schema, &mut reader, None)
        .unwrap_or_else(|e| panic!("datum does not decode: {e}"));
    assert!(
        reader.is_empty(),
        "{} trailing bytes after the datum",
        reader.len()
    );
    value
}

pub fn source(snapshot: SnapshotMarker) -> SourceInfo {
    SourceInfo {
        server_id: 223344,
        file: "mysql-bin.000003".into(),
        pos: 4567,
        row: 1,
        gtid: None,
        ts_ms: 1_700_000_000_123,
        snapshot,
        thread: Some(7),
        query: None,
    }
}

pub fn record_fields(v: &Value) -> &[(String, Value)] {
    match v {
        Value::Record(f) => f,
        other => panic!("not a record: {other:?}"),
    }
}

pub fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    record_fields(v)
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name} in {v:?}"))
}

/// Unwraps a union to its branch value (non-unions pass through).
pub fn un(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

/// Encodes an insert of `row` and returns the decoded `after` record.
pub fn after_record(codec: &TableCodec, row: &[Cell]) -> Value {
    let mut out = Vec::new();
    let encoded = codec
        .encode_envelope(
            None,
            Some(row),
            &source(SnapshotMarker::False),
            Op::Create,
            1,
            &mut out,
        )
        .expect("encode");
    // The matrix feeds values the format replaces (TIME outside a day under
    // time.precision.mode=connect) on purpose and checks what was written;
    // that they are reported is debezium-avro's unit test.
    drop(encoded.replaced);
    let env = decode(&codec.value_schema_json, &out);
    un(field(&env, "after")).clone()
}

/// Encodes the key of `row` and decodes it.
pub fn key_record(codec: &TableCodec, row: &[Cell]) -> Value {
    let mut out = Vec::new();
    assert!(codec.encode_key(row, &mut out).expect("encode key").written);
    decode(codec.key_schema_json.as_deref().expect("key schema"), &out)
}

pub fn decimal_value(unscaled: i128) -> Value {
    Value::Decimal(apache_avro::Decimal::from(unscaled.to_be_bytes()))
}
