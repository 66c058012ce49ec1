//! Debezium-format fixtures: the Avro key and envelope schemas a Debezium MySQL
//! connector (Avro converter, `time.precision.mode=connect`) registers for the
//! shop tables, registration in a Confluent-compatible registry, and framed
//! records. Tests and the benchmark use them so they need not wait on cdc.
//!
//! The schemas follow /work/shared/reference/debezium-avro.md: nullable
//! columns with a default are `[T, "null"]` (value branch first), without one
//! `["null", T]`; `after` is a bare reference to the `Value` record declared in
//! `before`; TIMESTAMP columns are ZonedTimestamp strings, DATETIME columns
//! timestamp-millis longs, DECIMAL columns bytes with precision and scale.

use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, SecondsFormat, Utc};
use pipeline::registry::{RegistryArgs, RegistryClient, RegistryError};
use serde_json::{json, Value as Json};

use crate::decode::{Cents, ItemRow, PurchaseRow, UserRow};

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),
}

/// Column types the shop tables use.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Long,
    /// Avro int with `connect.type` (int8 for TINYINT/BOOLEAN, int16 for
    /// TINYINT UNSIGNED), or plain int.
    Int(Option<&'static str>),
    Text,
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// TIMESTAMP: io.debezium.time.ZonedTimestamp string.
    Zoned,
    /// DATETIME in connect mode: timestamp-millis long.
    Millis,
}

/// How a column's nullability shows in the union.
#[derive(Debug, Clone, PartialEq)]
pub enum Nullable {
    No,
    /// `["null", T]`, default null.
    NullFirst,
    /// `[T, "null"]` with the column default (JSON) as default.
    ValueFirst(Json),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: Nullable,
}

fn col(name: &str, ty: ColumnType, nullable: Nullable) -> Column {
    Column {
        name: name.into(),
        ty,
        nullable,
    }
}

/// A cell of a row, in column order.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Long(i64),
    Int(i32),
    Text(String),
    Cents(Cents),
    Time(DateTime<Utc>),
}

/// A table's schema as Debezium would publish it on `topic`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub topic: String,
    pub columns: Vec<Column>,
}

const ZONED_EPOCH: &str = "1970-01-01T00:00:00Z";

impl TableSchema {
    pub fn users(topic: &str) -> Self {
        Self {
            topic: topic.into(),
            columns: vec![
                col("id", ColumnType::Long, Nullable::No),
                col("email", ColumnType::Text, Nullable::NullFirst),
                col(
                    "is_vip",
                    ColumnType::Int(Some("int8")),
                    Nullable::ValueFirst(json!(0)),
                ),
                col(
                    "created_at",
                    ColumnType::Zoned,
                    Nullable::ValueFirst(json!(ZONED_EPOCH)),
                ),
                col(
                    "updated_at",
                    ColumnType::Millis,
                    Nullable::ValueFirst(json!(0)),
                ),
            ],
        }
    }

    pub fn items(topic: &str) -> Self {
        Self {
            topic: topic.into(),
            columns: vec![
                col("id", ColumnType::Long, Nullable::No),
                col("name", ColumnType::Text, Nullable::NullFirst),
                col("category", ColumnType::Text, Nullable::NullFirst),
                col(
                    "price",
                    ColumnType::Decimal {
                        precision: 7,
                        scale: 2,
                    },
                    Nullable::NullFirst,
                ),
                col("inventory", ColumnType::Int(None), Nullable::NullFirst),
                col(
                    "inventory_updated_at",
                    ColumnType::Zoned,
                    Nullable::ValueFirst(json!(ZONED_EPOCH)),
                ),
                col(
                    "created_at",
                    ColumnType::Zoned,
                    Nullable::ValueFirst(json!(ZONED_EPOCH)),
                ),
                col(
                    "updated_at",
                    ColumnType::Millis,
                    Nullable::ValueFirst(json!(0)),
                ),
            ],
        }
    }

    pub fn purchases(topic: &str) -> Self {
        Self {
            topic: topic.into(),
            columns: vec![
                col("id", ColumnType::Long, Nullable::No),
                col("user_id", ColumnType::Long, Nullable::NullFirst),
                col("item_id", ColumnType::Long, Nullable::NullFirst),
                col(
                    "status",
                    ColumnType::Int(Some("int16")),
                    Nullable::ValueFirst(json!(1)),
                ),
                col("quantity", ColumnType::Long, Nullable::ValueFirst(json!(1))),
                col(
                    "purchase_price",
                    ColumnType::Decimal {
                        precision: 12,
                        scale: 2,
                    },
                    Nullable::NullFirst,
                ),
                col(
                    "deleted",
                    ColumnType::Int(Some("int8")),
                    Nullable::ValueFirst(json!(0)),
                ),
                col(
                    "created_at",
                    ColumnType::Zoned,
                    Nullable::ValueFirst(json!(ZONED_EPOCH)),
                ),
                col(
                    "updated_at",
                    ColumnType::Millis,
                    Nullable::ValueFirst(json!(0)),
                ),
            ],
        }
    }

    /// The same table after `ALTER TABLE ... ADD COLUMN <name> VARCHAR(..)`.
    pub fn with_text_column(mut self, name: &str) -> Self {
        self.columns
            .push(col(name, ColumnType::Text, Nullable::NullFirst));
        self
    }

    fn namespace(&self) -> String {
        self.topic
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    pub fn key_schema_json(&self) -> String {
        let ns = self.namespace();
        json!({
            "type": "record", "name": "Key", "namespace": ns,
            "fields": [{"name": "id", "type": "long"}],
            "connect.name": format!("{ns}.Key"),
        })
        .to_string()
    }

    pub fn value_schema_json(&self) -> String {
        let ns = self.namespace();
        let fields: Vec<Json> = self.columns.iter().map(column_json).collect();
        let opt = |t: &str| json!({"name": t, "type": ["null", "long"], "default": null});
        let source = json!({
            "type": "record", "name": "Source", "namespace": "io.debezium.connector.mysql",
            "fields": [
                {"name": "version", "type": "string"},
                {"name": "connector", "type": "string"},
                {"name": "name", "type": "string"},
                {"name": "ts_ms", "type": "long"},
                {"name": "snapshot", "type": [{"type": "string", "connect.version": 1,
                    "connect.parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
                    "connect.default": "false", "connect.name": "io.debezium.data.Enum"}, "null"], "default": "false"},
                {"name": "db", "type": "string"},
                {"name": "sequence", "type": ["null", "string"], "default": null},
                opt("ts_us"), opt("ts_ns"),
                {"name": "table", "type": ["null", "string"], "default": null},
                {"name": "server_id", "type": "long"},
                {"name": "gtid", "type": ["null", "string"], "default": null},
                {"name": "file", "type": "string"},
                {"name": "pos", "type": "long"},
                {"name": "row", "type": "int"},
                opt("thread"),
                {"name": "query", "type": ["null", "string"], "default": null},
            ],
            "connect.version": 1,
            "connect.name": "io.debezium.connector.mysql.Source",
        });
        json!({
            "type": "record", "name": "Envelope", "namespace": ns,
            "fields": [
                {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": fields,
                    "connect.name": format!("{ns}.Value")}], "default": null},
                {"name": "after", "type": ["null", "Value"], "default": null},
                {"name": "source", "type": source},
                {"name": "transaction", "type": ["null", {"type": "record", "name": "block", "namespace": "event",
                    "fields": [{"name": "id", "type": "string"}, {"name": "total_order", "type": "long"},
                               {"name": "data_collection_order", "type": "long"}],
                    "connect.version": 1, "connect.name": "event.block"}], "default": null},
                {"name": "op", "type": "string"},
                opt("ts_ms"), opt("ts_us"), opt("ts_ns"),
            ],
            "connect.version": 2,
            "connect.name": format!("{ns}.Envelope"),
        })
        .to_string()
    }

    /// The Avro value of a row, by column order.
    fn row_value(&self, cells: &[Cell]) -> Value {
        let fields = self
            .columns
            .iter()
            .zip(cells.iter().chain(std::iter::repeat(&Cell::Null)))
            .map(|(c, cell)| {
                let inner = cell_value(&c.ty, cell);
                let v = match (&c.nullable, inner) {
                    (Nullable::No, v) => v,
                    (Nullable::NullFirst, Value::Null) => Value::Union(0, Box::new(Value::Null)),
                    (Nullable::NullFirst, v) => Value::Union(1, Box::new(v)),
                    (Nullable::ValueFirst(_), Value::Null) => {
                        Value::Union(1, Box::new(Value::Null))
                    }
                    (Nullable::ValueFirst(_), v) => Value::Union(0, Box::new(v)),
                };
                (c.name.clone(), v)
            })
            .collect();
        Value::Record(fields)
    }
}

fn column_json(c: &Column) -> Json {
    let ty = match &c.ty {
        ColumnType::Long => json!("long"),
        ColumnType::Int(None) => json!("int"),
        ColumnType::Int(Some(connect)) => json!({"type": "int", "connect.type": connect}),
        ColumnType::Text => json!("string"),
        ColumnType::Decimal { precision, scale } => json!({
            "type": "bytes", "scale": scale, "precision": precision, "connect.version": 1,
            "connect.parameters": {"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()},
            "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}),
        ColumnType::Zoned => {
            json!({"type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"})
        }
        ColumnType::Millis => json!({"type": "long", "connect.version": 1,
            "connect.name": "org.apache.kafka.connect.data.Timestamp", "logicalType": "timestamp-millis"}),
    };
    match &c.nullable {
        Nullable::No => json!({"name": c.name, "type": ty}),
        Nullable::NullFirst => json!({"name": c.name, "type": ["null", ty], "default": null}),
        Nullable::ValueFirst(default) => {
            let mut ty = ty;
            if let Json::Object(map) = &mut ty {
                map.insert("connect.default".into(), default.clone());
            }
            json!({"name": c.name, "type": [ty, "null"], "default": default})
        }
    }
}

fn cell_value(ty: &ColumnType, cell: &Cell) -> Value {
    match (ty, cell) {
        (_, Cell::Null) => Value::Null,
        (ColumnType::Long, Cell::Long(v)) => Value::Long(*v),
        (ColumnType::Long, Cell::Int(v)) => Value::Long(i64::from(*v)),
        (ColumnType::Int(_), Cell::Int(v)) => Value::Int(*v),
        (ColumnType::Int(_), Cell::Long(v)) => Value::Int(*v as i32),
        (ColumnType::Text, Cell::Text(s)) => Value::String(s.clone()),
        (ColumnType::Decimal { scale, .. }, Cell::Cents(c)) => {
            let unscaled = i128::from(*c) * 10i128.pow(*scale) / 100;
            Value::Decimal(apache_avro::Decimal::from(minimal_twos_complement(
                unscaled,
            )))
        }
        (ColumnType::Zoned, Cell::Time(t)) => {
            Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
        }
        (ColumnType::Millis, Cell::Time(t)) => Value::TimestampMillis(t.timestamp_millis()),
        // Fixtures build test and benchmark data from tables written in
        // this crate: a mismatch is a bug in the fixture, never an input.
        #[allow(clippy::panic)]
        (ty, cell) => panic!("fixture cell {cell:?} does not fit column type {ty:?}"),
    }
}

/// The shortest big-endian two's complement of `v` (Avro decimal bytes).
pub fn minimal_twos_complement(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

pub fn user_cells(r: &UserRow) -> Vec<Cell> {
    vec![
        Cell::Long(r.id),
        r.email.clone().map_or(Cell::Null, Cell::Text),
        r.is_vip.map_or(Cell::Null, |b| Cell::Int(i32::from(b))),
        r.created_at.map_or(Cell::Null, Cell::Time),
        r.updated_at.map_or(Cell::Null, Cell::Time),
    ]
}

pub fn item_cells(r: &ItemRow) -> Vec<Cell> {
    vec![
        Cell::Long(r.id),
        r.name.clone().map_or(Cell::Null, Cell::Text),
        r.category.clone().map_or(Cell::Null, Cell::Text),
        r.price.map_or(Cell::Null, Cell::Cents),
        r.inventory.map_or(Cell::Null, |v| Cell::Int(v as i32)),
        r.inventory_updated_at.map_or(Cell::Null, Cell::Time),
        r.created_at.map_or(Cell::Null, Cell::Time),
        r.updated_at.map_or(Cell::Null, Cell::Time),
    ]
}

pub fn purchase_cells(r: &PurchaseRow) -> Vec<Cell> {
    vec![
        Cell::Long(r.id),
        r.user_id.map_or(Cell::Null, Cell::Long),
        r.item_id.map_or(Cell::Null, Cell::Long),
        r.status.map_or(Cell::Null, Cell::Int),
        r.quantity.map_or(Cell::Null, Cell::Long),
        r.purchase_price.map_or(Cell::Null, Cell::Cents),
        r.deleted.map_or(Cell::Null, |b| Cell::Int(i32::from(b))),
        r.created_at.map_or(Cell::Null, Cell::Time),
        r.updated_at.map_or(Cell::Null, Cell::Time),
    ]
}

/// A table's registered schemas: encodes keys and envelopes in wire format.
#[derive(Debug, Clone)]
pub struct CdcEncoder {
    pub table: TableSchema,
    pub key_id: u32,
    pub value_id: u32,
    key_schema: Schema,
    value_schema: Schema,
    server: &'static str,
}

impl CdcEncoder {
    /// Registers `<topic>-key` and `<topic>-value` (a new version when the
    /// table's columns changed) in the registry at `registry_url`.
    pub async fn register(registry_url: &str, table: TableSchema) -> Result<Self, FixtureError> {
        let client = RegistryClient::new(&RegistryArgs::new(registry_url))?;
        Self::register_with(&client, table).await
    }

    /// [`CdcEncoder::register`] through an existing client (its credentials
    /// and caches).
    pub async fn register_with(
        registry: &RegistryClient,
        table: TableSchema,
    ) -> Result<Self, FixtureError> {
        let key_json = table.key_schema_json();
        let value_json = table.value_schema_json();
        let key_id = registry
            .register(&format!("{}-key", table.topic), &key_json)
            .await?;
        let value_id = registry
            .register(&format!("{}-value", table.topic), &value_json)
            .await?;
        Ok(Self {
            key_schema: Schema::parse_str(&key_json)?,
            value_schema: Schema::parse_str(&value_json)?,
            table,
            key_id,
            value_id,
            server: "mysql",
        })
    }

    /// An encoder for schemas registered elsewhere under the given ids.
    pub fn with_ids(table: TableSchema, key_id: u32, value_id: u32) -> Result<Self, FixtureError> {
        Ok(Self {
            key_schema: Schema::parse_str(&table.key_schema_json())?,
            value_schema: Schema::parse_str(&table.value_schema_json())?,
            table,
            key_id,
            value_id,
            server: "mysql",
        })
    }

    pub fn key(&self, id: i64) -> Vec<u8> {
        let value = Value::Record(vec![("id".into(), Value::Long(id))]);
        frame(self.key_id, &self.key_schema, value)
    }

    /// An envelope: `op` c/u/r with `after`, d with only `before`.
    pub fn envelope(
        &self,
        op: &str,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        ts: DateTime<Utc>,
    ) -> Vec<u8> {
        let opt_row = |cells: Option<&[Cell]>| match cells {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(cells) => Value::Union(1, Box::new(self.table.row_value(cells))),
        };
        let none = || Value::Union(0, Box::new(Value::Null));
        let source = Value::Record(vec![
            ("version".into(), Value::String("3.1.0.Final".into())),
            ("connector".into(), Value::String("mysql".into())),
            ("name".into(), Value::String(self.server.into())),
            ("ts_ms".into(), Value::Long(ts.timestamp_millis())),
            (
                "snapshot".into(),
                Value::Union(0, Box::new(Value::String("false".into()))),
            ),
            ("db".into(), Value::String("shop".into())),
            ("sequence".into(), none()),
            (
                "ts_us".into(),
                Value::Union(1, Box::new(Value::Long(ts.timestamp_micros()))),
            ),
            ("ts_ns".into(), none()),
            (
                "table".into(),
                Value::Union(1, Box::new(Value::String(self.table.topic.clone()))),
            ),
            ("server_id".into(), Value::Long(223344)),
            ("gtid".into(), none()),
            ("file".into(), Value::String("mysql-bin.000001".into())),
            ("pos".into(), Value::Long(4)),
            ("row".into(), Value::Int(0)),
            ("thread".into(), none()),
            ("query".into(), none()),
        ]);
        let value = Value::Record(vec![
            ("before".into(), opt_row(before)),
            ("after".into(), opt_row(after)),
            ("source".into(), source),
            ("transaction".into(), none()),
            ("op".into(), Value::String(op.into())),
            (
                "ts_ms".into(),
                Value::Union(1, Box::new(Value::Long(ts.timestamp_millis()))),
            ),
            ("ts_us".into(), none()),
            ("ts_ns".into(), none()),
        ]);
        frame(self.value_id, &self.value_schema, value)
    }

    /// A create/update/snapshot event carrying `after`.
    pub fn upsert(&self, op: &str, after: &[Cell], ts: DateTime<Utc>) -> Vec<u8> {
        self.envelope(op, None, Some(after), ts)
    }

    /// A delete event (before only); Debezium follows it with a tombstone.
    pub fn delete(&self, before: &[Cell], ts: DateTime<Utc>) -> Vec<u8> {
        self.envelope("d", Some(before), None, ts)
    }

    /// A truncate event (`op` "t", before and after null); Debezium sends
    /// it with a null key.
    pub fn truncate(&self, ts: DateTime<Utc>) -> Vec<u8> {
        self.envelope("t", None, None, ts)
    }
}

/// Confluent framing around an Avro datum.
///
/// # Panics
/// When the value does not match the schema: a bug in the fixture.
pub fn frame(id: u32, schema: &Schema, value: Value) -> Vec<u8> {
    #[allow(deprecated)]
    // 0.22's datum API, as in decode.rs
    // A fixture whose value misses its own schema is a bug in the fixture
    // (documented under Panics), never an input.
    #[allow(clippy::panic)]
    let datum = apache_avro::to_avro_datum(schema, value)
        .unwrap_or_else(|e| panic!("fixture value does not match its schema: {e}"));
    let mut out = Vec::with_capacity(datum.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&datum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_and_rows_encode() {
        for table in [
            TableSchema::users("mysql.shop.users"),
            TableSchema::items("mysql.shop.items"),
            TableSchema::purchases("mysql.shop.purchases").with_text_column("note"),
        ] {
            let schema = Schema::parse_str(&table.value_schema_json()).unwrap();
            Schema::parse_str(&table.key_schema_json()).unwrap();
            let row: Vec<Cell> = table
                .columns
                .iter()
                .map(|c| match c.ty {
                    ColumnType::Long => Cell::Long(1),
                    ColumnType::Int(_) => Cell::Int(1),
                    ColumnType::Text => Cell::Text("x".into()),
                    ColumnType::Decimal { .. } => Cell::Cents(-12345),
                    ColumnType::Zoned | ColumnType::Millis => Cell::Time(Utc::now()),
                })
                .collect();
            let enc = CdcEncoder {
                table: table.clone(),
                key_id: 1,
                value_id: 2,
                key_schema: Schema::parse_str(&table.key_schema_json()).unwrap(),
                value_schema: schema,
                server: "mysql",
            };
            let bytes = enc.upsert("c", &row, Utc::now());
            assert_eq!(&bytes[..5], &[0, 0, 0, 0, 2]);
            enc.delete(&row, Utc::now());
            enc.truncate(Utc::now());
        }
        assert_eq!(minimal_twos_complement(-200), vec![0xFF, 0x38]);
        assert_eq!(minimal_twos_complement(128), vec![0x00, 0x80]);
        assert_eq!(minimal_twos_complement(0), vec![0x00]);
    }
}
