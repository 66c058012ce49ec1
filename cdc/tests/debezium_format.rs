//! Debezium 3.6.3 format details without a server: key header text (Kafka
//! Connect's `SimpleHeaderConverter` rendering of the key `Struct`) and the
//! schema-change topic's schemas and datums.

mod types_support;

use apache_avro::types::Value;
use apache_avro::Schema;
use debezium_avro::schema_change::{
    ChangeType, ColumnDef, SchemaChange, SchemaChangeCodec, TableChange, TableDef,
};
use debezium_avro::Cell;
use debezium_avro::{
    BigintUnsigned, DecimalHandling, SnapshotMarker, SourceInfo, TableCodec, TimePrecision,
};
use types_support::*;

fn key_text(
    columns: Vec<debezium_avro::ColumnSchema>,
    row: Vec<Cell>,
    time: TimePrecision,
) -> String {
    let pk = (0..columns.len()).collect();
    let columns = columns.into_iter().map(not_null).collect();
    let t = table("db", "t", columns, pk);
    let codec = TableCodec::new(
        &t,
        &cfg(time, DecimalHandling::Precise, BigintUnsigned::Long),
    )
    .unwrap();
    codec.key_text(&row).unwrap().unwrap()
}

#[test]
fn key_headers_render_like_simple_header_converter() {
    let adaptive = TimePrecision::AdaptiveTimeMicroseconds;
    let connect = TimePrecision::Connect;
    assert_eq!(
        key_text(vec![col("id", "bigint")], vec![Cell::Int(100)], adaptive),
        r#"{"id":100}"#
    );
    assert_eq!(
        key_text(
            vec![col("a", "varchar(10)"), col("b", "int")],
            vec![Cell::Bytes(br#"x"y\z"#.to_vec()), Cell::Int(-2)],
            adaptive
        ),
        r#"{"a":"x\"y\\z","b":-2}"#
    );
    assert_eq!(
        key_text(
            vec![
                col("d", "decimal(12,2)"),
                col("f", "double"),
                col("bin", "varbinary(4)")
            ],
            vec![
                Cell::Decimal("-12.50".into()),
                Cell::Double(0.5),
                Cell::Bytes(vec![0xff, 0, 1])
            ],
            adaptive
        ),
        r#"{"d":-12.50,"f":0.5,"bin":"/wAB"}"#
    );
    let date = Cell::Date {
        year: 2024,
        month: 1,
        day: 1,
    };
    let dt = Cell::DateTime {
        year: 2024,
        month: 1,
        day: 1,
        hour: 12,
        minute: 34,
        second: 56,
        micros: 789_000,
    };
    let time = Cell::Time {
        negative: false,
        hours: 1,
        minutes: 2,
        seconds: 3,
        micros: 0,
    };
    // Debezium's own temporal types are numbers; Connect's are java.util.Date
    // printed by SimpleDateFormat (unquoted).
    assert_eq!(
        key_text(
            vec![col("d", "date"), col("t", "datetime(3)")],
            vec![date.clone(), dt.clone()],
            adaptive
        ),
        r#"{"d":19723,"t":1704112496789}"#
    );
    assert_eq!(
        key_text(
            vec![col("d", "date"), col("t", "datetime(3)"), col("tm", "time")],
            vec![date, dt, time],
            connect
        ),
        r#"{"d":2024-01-01,"t":2024-01-01T12:34:56.789Z,"tm":01:02:03.000Z}"#
    );
    assert_eq!(
        key_text(
            vec![col("e", "enum('a','b')"), col("ts", "timestamp")],
            vec![
                Cell::EnumIndex(2),
                Cell::TimestampUtc { secs: 0, micros: 0 }
            ],
            adaptive
        ),
        r#"{"e":"b","ts":"1970-01-01T00:00:00Z"}"#
    );
}

fn source() -> SourceInfo {
    SourceInfo {
        server_id: 1,
        file: "binlog.000002".into(),
        pos: 1234,
        row: 0,
        gtid: None,
        ts_ms: 1_700_000_000_000,
        snapshot: SnapshotMarker::False,
        thread: Some(7),
        query: None,
    }
}

#[test]
fn schema_change_schemas_follow_debezium() {
    let codec = SchemaChangeCodec::new("mysql", "3.6.3.Final");
    assert_eq!(codec.topic, "mysql");
    assert_eq!(
        codec.key_schema_json,
        r#"{"type":"record","name":"SchemaChangeKey","namespace":"io.debezium.connector.mysql","fields":[{"name":"databaseName","type":"string"}],"connect.version":1,"connect.name":"io.debezium.connector.mysql.SchemaChangeKey"}"#
    );
    let value: serde_json::Value = serde_json::from_str(&codec.value_schema_json).unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        value["connect.name"],
        "io.debezium.connector.mysql.SchemaChangeValue"
    );
    assert_eq!(
        names(&value),
        [
            "source",
            "ts_ms",
            "databaseName",
            "schemaName",
            "ddl",
            "tableChanges"
        ]
    );
    // Source sits in its own namespace's record: no namespace repeated.
    assert_eq!(value["fields"][0]["type"]["name"], "Source");
    assert!(value["fields"][0]["type"].get("namespace").is_none());
    let change = &value["fields"][5]["type"]["items"];
    assert_eq!(change["namespace"], "io.debezium.connector.schema");
    assert_eq!(names(change), ["type", "id", "table"]);
    let table = &change["fields"][2]["type"][1];
    assert_eq!(
        names(table),
        [
            "defaultCharsetName",
            "primaryKeyColumnNames",
            "columns",
            "comment"
        ]
    );
    assert_eq!(
        names(&table["fields"][2]["type"]["items"]),
        [
            "name",
            "jdbcType",
            "nativeType",
            "typeName",
            "typeExpression",
            "charsetName",
            "length",
            "scale",
            "position",
            "optional",
            "autoIncremented",
            "generated",
            "comment",
            "defaultValueExpression",
            "enumValues"
        ]
    );
}

#[test]
fn schema_change_datums_decode_with_their_schemas() {
    let codec = SchemaChangeCodec::new("mysql", "3.6.3.Final");
    let change = SchemaChange {
        database: "shop".into(),
        ddl: "ALTER TABLE t ADD COLUMN e ENUM('a','b')".into(),
        changes: vec![TableChange {
            kind: ChangeType::Alter,
            database: "shop".into(),
            table: "t".into(),
            definition: Some(TableDef {
                default_charset_name: Some("utf8mb4".into()),
                primary_key_column_names: vec!["id".into()],
                columns: vec![
                    ColumnDef {
                        name: "id".into(),
                        jdbc_type: 4,
                        type_name: "INT".into(),
                        type_expression: Some("INT".into()),
                        position: 1,
                        auto_incremented: true,
                        generated: true,
                        ..ColumnDef::default()
                    },
                    ColumnDef {
                        name: "e".into(),
                        jdbc_type: 1,
                        type_name: "ENUM".into(),
                        type_expression: Some("ENUM".into()),
                        charset_name: Some("utf8mb4".into()),
                        position: 2,
                        optional: true,
                        enum_values: vec!["a".into(), "b".into()],
                        ..ColumnDef::default()
                    },
                ],
                comment: None,
            }),
        }],
        source: source(),
        ts_ms: 1_700_000_000_123,
    };
    let value_schema = Schema::parse_str(&codec.value_schema_json).unwrap();
    let key_schema = Schema::parse_str(&codec.key_schema_json).unwrap();
    let mut key = Vec::new();
    codec.encode_key(&change, &mut key);
    #[allow(deprecated)]
    let key = apache_avro::from_avro_datum(&key_schema, &mut key.as_slice(), None).unwrap();
    assert_eq!(
        key,
        Value::Record(vec![("databaseName".into(), Value::String("shop".into()))])
    );
    let mut datum = Vec::new();
    codec.encode_value(&change, &mut datum);
    let mut reader = datum.as_slice();
    #[allow(deprecated)]
    let value = apache_avro::from_avro_datum(&value_schema, &mut reader, None).unwrap();
    assert!(reader.is_empty());
    let source = field(&value, "source");
    assert_eq!(un(field(source, "db")), &Value::String("shop".into()));
    assert_eq!(un(field(source, "table")), &Value::String("t".into()));
    assert_eq!(field(&value, "ts_ms"), &Value::Long(1_700_000_000_123));
    assert_eq!(un(field(&value, "schemaName")), &Value::Null);
    let Value::Array(changes) = field(&value, "tableChanges") else {
        panic!()
    };
    assert_eq!(
        field(&changes[0], "id"),
        &Value::String("\"shop\".\"t\"".into())
    );
    let table = un(field(&changes[0], "table"));
    let Value::Array(columns) = field(table, "columns") else {
        panic!()
    };
    assert_eq!(
        un(field(&columns[0], "autoIncremented")),
        &Value::Boolean(true)
    );
    assert_eq!(un(field(&columns[0], "charsetName")), &Value::Null);
    assert_eq!(
        un(field(&columns[1], "enumValues")),
        &Value::Array(vec![Value::String("a".into()), Value::String("b".into())])
    );

    // A drop: no table block; a database-level statement: no changes.
    let drop = SchemaChange {
        ddl: "DROP TABLE `shop`.`t`".into(),
        changes: vec![TableChange {
            kind: ChangeType::Drop,
            definition: None,
            ..change.changes[0].clone()
        }],
        ..change.clone()
    };
    let set = SchemaChange {
        database: String::new(),
        ddl: "SET character_set_server=utf8mb4".into(),
        changes: vec![],
        ..change
    };
    for c in [drop, set] {
        let mut datum = Vec::new();
        codec.encode_value(&c, &mut datum);
        #[allow(deprecated)]
        let value =
            apache_avro::from_avro_datum(&value_schema, &mut datum.as_slice(), None).unwrap();
        assert_eq!(un(field(&value, "ddl")), &Value::String(c.ddl.clone()));
    }
}
