//! Debezium-format fixtures (feature `test-support`): the shop tables as cdc
//! captures them, their key and envelope schemas registered in a
//! Confluent-compatible registry, and framed records. Tests and the benchmark
//! use them so they need not wait on cdc.
//!
//! Invariants:
//! - Schemas and datums come from the `debezium-avro` crate's
//!   [`TableCodec`], the encoder cdc itself uses, with the demo's converter
//!   settings ([`demo_converter`]: `topic.prefix=mysql`,
//!   `time.precision.mode=connect`, every other option Debezium's default).
//!   So a fixture record is what cdc writes for the same row, type mapping
//!   included (BOOLEAN/TINYINT are int16, INT UNSIGNED a long, DATETIME
//!   timestamp-millis, TIMESTAMP a ZonedTimestamp string without default);
//!   there is no second encoder here to drift from it.
//! - The table definitions ([`TableSchema::users`], ...) mirror
//!   migrations/mysql/V2__shop_tables.sql in `information_schema` terms;
//!   change one, change the other.
//! - The Kafka topic (and registry subject) is the caller's, so tests can use
//!   unique topics; the schemas' namespace is always cdc's
//!   (`mysql.shop.<table>`), as on the demo's real topics.
//! - A fixture row that does not fit its table, or a value the codec would
//!   replace, is a bug in the calling test or benchmark: the encoders panic
//!   on it (documented under Panics) rather than return an error every test
//!   would unwrap.

use chrono::{DateTime, Datelike, Timelike, Utc};
use debezium_avro::{
    ColumnSchema, ConverterConfig, EnvelopeError, Op, SnapshotMarker, SourceInfo, TableCodec,
    TimePrecision, CURRENT_TIMESTAMP_DEFAULT,
};
use pipeline::registry::{RegistryArgs, RegistryClient, RegistryError};

use crate::decode::{cents_text, Cents, ItemRow, PurchaseRow, UserRow};

/// A column value, as cdc hands it to the encoder (text is `Cell::Bytes` of
/// UTF-8, see [`text`]).
pub use debezium_avro::Cell;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// The `source.version` cdc writes (`cdc::CONNECTOR_VERSION`; analytics
/// does not depend on cdc, and nothing decodes this field).
const CONNECTOR_VERSION: &str = "3.6.3.Final";

/// The converter settings of the demo's cdc (docker-compose.yml,
/// scripts/demo.sh): topic prefix `mysql`, `time.precision.mode=connect`,
/// Debezium's defaults otherwise.
pub fn demo_converter() -> ConverterConfig {
    ConverterConfig {
        topic_prefix: "mysql".into(),
        decimal_handling: Default::default(),
        time_precision: TimePrecision::Connect,
        bigint_unsigned: Default::default(),
        binary_handling: Default::default(),
        connector_version: CONNECTOR_VERSION.into(),
        excluded_columns: Default::default(),
        column_mappers: Default::default(),
        message_key_columns: Default::default(),
        boolean_converters: Default::default(),
    }
}

/// A table of the shop as cdc captures it, published on `topic`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// The Kafka topic (registry subjects `<topic>-key`, `<topic>-value`).
    pub topic: String,
    /// The columns, `information_schema` terms (the `id` primary key first).
    pub table: debezium_avro::TableSchema,
}

/// Column builders in `information_schema.COLUMNS` terms.
mod column {
    use super::{ColumnSchema, CURRENT_TIMESTAMP_DEFAULT};

    /// `SERIAL`: BIGINT UNSIGNED NOT NULL.
    pub fn serial(name: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: "bigint".into(),
            column_type: "bigint(20) unsigned".into(),
            unsigned: true,
            nullable: false,
            numeric_precision: Some(20),
            numeric_scale: Some(0),
            ..ColumnSchema::default()
        }
    }

    pub fn int(
        name: &str,
        data_type: &str,
        column_type: &str,
        default: Option<&str>,
    ) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            unsigned: column_type.contains("unsigned"),
            nullable: true,
            default: default.map(Into::into),
            numeric_scale: Some(0),
            ..ColumnSchema::default()
        }
    }

    /// `BOOLEAN DEFAULT FALSE`, stored as TINYINT(1).
    pub fn boolean(name: &str) -> ColumnSchema {
        int(name, "tinyint", "tinyint(1)", Some("0"))
    }

    pub fn varchar(name: &str, length: u64) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: "varchar".into(),
            column_type: format!("varchar({length})"),
            nullable: true,
            char_max_length: Some(length),
            charset: Some("utf8mb4".into()),
            ..ColumnSchema::default()
        }
    }

    pub fn decimal(name: &str, precision: u64, scale: u64) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: "decimal".into(),
            column_type: format!("decimal({precision},{scale})"),
            nullable: true,
            numeric_precision: Some(precision),
            numeric_scale: Some(scale),
            ..ColumnSchema::default()
        }
    }

    /// `TIMESTAMP`/`DATETIME` `DEFAULT CURRENT_TIMESTAMP`.
    pub fn time(name: &str, data_type: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: true,
            default: Some(CURRENT_TIMESTAMP_DEFAULT.into()),
            datetime_precision: Some(0),
            ..ColumnSchema::default()
        }
    }
}

impl TableSchema {
    fn shop(topic: &str, table: &str, columns: Vec<ColumnSchema>) -> Self {
        Self {
            topic: topic.into(),
            table: debezium_avro::TableSchema {
                database: "shop".into(),
                table: table.into(),
                columns,
                primary_key: vec![0],
            },
        }
    }

    pub fn users(topic: &str) -> Self {
        Self::shop(
            topic,
            "users",
            vec![
                column::serial("id"),
                column::varchar("email", 255),
                column::boolean("is_vip"),
                column::time("created_at", "timestamp"),
                column::time("updated_at", "datetime"),
            ],
        )
    }

    pub fn items(topic: &str) -> Self {
        Self::shop(
            topic,
            "items",
            vec![
                column::serial("id"),
                column::varchar("name", 100),
                column::varchar("category", 100),
                column::decimal("price", 7, 2),
                column::int("inventory", "int", "int(11)", None),
                column::time("inventory_updated_at", "timestamp"),
                column::time("created_at", "timestamp"),
                column::time("updated_at", "datetime"),
            ],
        )
    }

    pub fn purchases(topic: &str) -> Self {
        Self::shop(
            topic,
            "purchases",
            vec![
                column::serial("id"),
                column::int("user_id", "bigint", "bigint(20) unsigned", None),
                column::int("item_id", "bigint", "bigint(20) unsigned", None),
                column::int("status", "tinyint", "tinyint(3) unsigned", Some("1")),
                column::int("quantity", "int", "int(10) unsigned", Some("1")),
                column::decimal("purchase_price", 12, 2),
                column::boolean("deleted"),
                column::time("created_at", "timestamp"),
                column::time("updated_at", "datetime"),
            ],
        )
    }

    /// The same table after `ALTER TABLE ... ADD COLUMN <name> VARCHAR(255)`.
    pub fn with_text_column(mut self, name: &str) -> Self {
        self.table.columns.push(column::varchar(name, 255));
        self
    }

    /// The table's codec under the demo's converter settings.
    pub fn codec(&self) -> Result<TableCodec, EnvelopeError> {
        TableCodec::new(&self.table, &demo_converter())
    }

    /// # Panics
    /// When the codec refuses the table: a bug in this module's tables.
    pub fn key_schema_json(&self) -> String {
        // The tables above all have a primary key.
        #[allow(clippy::expect_used)]
        fixture_codec(self)
            .key_schema_json
            .expect("the shop tables have a primary key")
    }

    /// # Panics
    /// When the codec refuses the table: a bug in this module's tables.
    pub fn value_schema_json(&self) -> String {
        fixture_codec(self).value_schema_json
    }
}

/// The codec of one of this module's tables, which always builds.
fn fixture_codec(table: &TableSchema) -> TableCodec {
    // A fixture table the codec refuses is a bug here (documented under
    // Panics on the callers), never an input.
    #[allow(clippy::panic)]
    table
        .codec()
        .unwrap_or_else(|e| panic!("fixture table {}: {e}", table.topic))
}

/// A text cell (VARCHAR columns are utf8mb4: the cell holds the UTF-8 bytes).
pub fn text(s: impl Into<String>) -> Cell {
    Cell::Bytes(s.into().into_bytes())
}

/// A BIGINT UNSIGNED cell. Values above `i64::MAX` do not occur in the shop;
/// a negative id keeps its bits, as the `long` Debezium writes it would.
fn unsigned(v: i64) -> Cell {
    Cell::UInt(v as u64)
}

fn boolean(b: bool) -> Cell {
    Cell::Int(i64::from(b))
}

/// A DECIMAL(_, 2) cell: `cents_text` is already canonical text at scale 2.
fn cents(c: Cents) -> Cell {
    Cell::Decimal(cents_text(c))
}

/// A TIMESTAMP as the binlog carries it (the shop's have no fraction digits,
/// so the ZonedTimestamp text shows whole seconds).
fn timestamp(t: DateTime<Utc>) -> Cell {
    Cell::TimestampUtc {
        secs: t.timestamp(),
        micros: t.timestamp_subsec_micros(),
    }
}

/// A DATETIME (the shop's are written in UTC, which is how Debezium reads
/// them); the fraction is kept, as the millisecond long carries it.
fn datetime(t: DateTime<Utc>) -> Cell {
    Cell::datetime((
        u16::try_from(t.year()).unwrap_or(0),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.timestamp_subsec_micros().min(999_999),
    ))
}

pub fn user_cells(r: &UserRow) -> Vec<Cell> {
    vec![
        unsigned(r.id),
        r.email.clone().map_or(Cell::Null, text),
        r.is_vip.map_or(Cell::Null, boolean),
        r.created_at.map_or(Cell::Null, timestamp),
        r.updated_at.map_or(Cell::Null, datetime),
    ]
}

pub fn item_cells(r: &ItemRow) -> Vec<Cell> {
    vec![
        unsigned(r.id),
        r.name.clone().map_or(Cell::Null, text),
        r.category.clone().map_or(Cell::Null, text),
        r.price.map_or(Cell::Null, cents),
        r.inventory.map_or(Cell::Null, Cell::Int),
        r.inventory_updated_at.map_or(Cell::Null, timestamp),
        r.created_at.map_or(Cell::Null, timestamp),
        r.updated_at.map_or(Cell::Null, datetime),
    ]
}

pub fn purchase_cells(r: &PurchaseRow) -> Vec<Cell> {
    vec![
        unsigned(r.id),
        r.user_id.map_or(Cell::Null, unsigned),
        r.item_id.map_or(Cell::Null, unsigned),
        r.status.map_or(Cell::Null, |s| Cell::UInt(s as u64)),
        r.quantity.map_or(Cell::Null, unsigned),
        r.purchase_price.map_or(Cell::Null, cents),
        r.deleted.map_or(Cell::Null, boolean),
        r.created_at.map_or(Cell::Null, timestamp),
        r.updated_at.map_or(Cell::Null, datetime),
    ]
}

/// A table's registered schemas: encodes keys and envelopes in wire format.
#[derive(Debug, Clone)]
pub struct CdcEncoder {
    pub table: TableSchema,
    pub key_id: u32,
    pub value_id: u32,
    codec: TableCodec,
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
        let codec = table.codec()?;
        let key_json = table.key_schema_json();
        let key_id = registry
            .register(&format!("{}-key", table.topic), &key_json)
            .await?;
        let value_id = registry
            .register(&format!("{}-value", table.topic), &codec.value_schema_json)
            .await?;
        Ok(Self {
            codec,
            table,
            key_id,
            value_id,
        })
    }

    /// An encoder for schemas registered elsewhere under the given ids.
    pub fn with_ids(table: TableSchema, key_id: u32, value_id: u32) -> Result<Self, FixtureError> {
        Ok(Self {
            codec: table.codec()?,
            table,
            key_id,
            value_id,
        })
    }

    /// The framed key of the row with primary key `id`.
    ///
    /// # Panics
    /// When the codec refuses the key: a bug in the fixture.
    pub fn key(&self, id: i64) -> Vec<u8> {
        let mut row = vec![Cell::Null; self.table.table.columns.len()];
        row[0] = unsigned(id);
        let mut out = header(self.key_id);
        let encoded = self.codec.encode_key(&row, &mut out);
        self.check(encoded);
        out
    }

    /// An envelope: `op` c/u/r with `after`, d with only `before`, t with
    /// neither. Rows shorter than the table are padded with nulls (a row of
    /// an older table version).
    ///
    /// # Panics
    /// On an unknown `op`, a row wider than the table or a cell that does not
    /// fit its column: a bug in the calling test.
    pub fn envelope(
        &self,
        op: &str,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        ts: DateTime<Utc>,
    ) -> Vec<u8> {
        let op = match op {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            // Fixture ops are literals in tests: an unknown one is a bug there.
            #[allow(clippy::panic)]
            other => panic!("fixture op {other:?} is not a Debezium op"),
        };
        let width = self.table.table.columns.len();
        let pad = |cells: &[Cell]| {
            let mut row = cells.to_vec();
            if row.len() < width {
                row.resize(width, Cell::Null);
            }
            row
        };
        let before = before.map(pad);
        let after = after.map(pad);
        let source = SourceInfo {
            server_id: 223_344,
            file: "mysql-bin.000001".into(),
            pos: 4,
            row: 0,
            gtid: None,
            ts_ms: ts.timestamp_millis(),
            snapshot: if op == Op::Read {
                SnapshotMarker::True
            } else {
                SnapshotMarker::False
            },
            thread: None,
            query: None,
        };
        let ts_ns = ts
            .timestamp_nanos_opt()
            .unwrap_or_else(|| ts.timestamp_millis().saturating_mul(1_000_000));
        let mut out = header(self.value_id);
        let encoded = self.codec.encode_envelope(
            before.as_deref(),
            after.as_deref(),
            &source,
            op,
            ts_ns,
            &mut out,
        );
        self.check(encoded);
        out
    }

    /// A fixture value the codec refused or replaced is a bug in the test
    /// that built it (documented under Panics on the callers).
    #[allow(clippy::panic)]
    fn check(&self, encoded: Result<debezium_avro::Encoded, EnvelopeError>) {
        match encoded {
            Ok(e) if e.replaced.is_empty() => {}
            Ok(e) => panic!(
                "fixture row for {} had values replaced: {:?}",
                self.table.topic, e.replaced
            ),
            Err(e) => panic!("fixture row for {}: {e}", self.table.topic),
        }
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

/// The Confluent frame header: magic byte 0, schema id big-endian.
fn header(id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;
    use apache_avro::Schema;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn the_shop_tables_map_like_cdc_and_their_rows_decode_against_their_schemas() {
        let purchases = TableSchema::purchases("any-topic").with_text_column("note");
        let schema_json: serde_json::Value =
            serde_json::from_str(&purchases.value_schema_json()).unwrap();
        assert_eq!(schema_json["namespace"], "mysql.shop.purchases");
        let fields = &schema_json["fields"][0]["type"][1]["fields"];
        let field = |name: &str| {
            fields
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .unwrap()
                .clone()
        };
        // Debezium 3.6: every TINYINT is int16, BOOLEAN included; INT
        // UNSIGNED widens to long; DATETIME in connect mode is a Connect
        // Timestamp (timestamp-millis); TIMESTAMP a ZonedTimestamp string.
        assert_eq!(field("deleted")["type"][0]["connect.type"], "int16");
        assert_eq!(field("status")["type"][0]["connect.type"], "int16");
        assert_eq!(field("quantity")["type"][0]["type"], "long");
        assert_eq!(
            field("updated_at")["type"][0]["logicalType"],
            "timestamp-millis"
        );
        // A nullable TIMESTAMP DEFAULT CURRENT_TIMESTAMP carries no default
        // (recorded Debezium output, tests/golden), so null comes first.
        assert_eq!(
            field("created_at")["type"][1]["connect.name"],
            "io.debezium.time.ZonedTimestamp"
        );

        let row = PurchaseRow {
            id: 42,
            user_id: Some(7),
            item_id: None,
            status: Some(2),
            quantity: Some(3),
            purchase_price: Some(-12_345),
            deleted: Some(true),
            created_at: Some(t(1_700_000_000)),
            updated_at: Some(t(1_700_000_060)),
        };
        let mut cells = purchase_cells(&row);
        cells.push(text("gift"));
        let enc = CdcEncoder::with_ids(purchases.clone(), 1, 2).unwrap();
        let bytes = enc.upsert("c", &cells, t(5));
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 2]);
        let schema = Schema::parse_str(&purchases.value_schema_json()).unwrap();
        #[allow(deprecated)] // 0.22's datum API, as in decode.rs
        let value = apache_avro::from_avro_datum(&schema, &mut &bytes[5..], None).unwrap();
        let Value::Record(envelope) = value else {
            panic!("not a record: {value:?}")
        };
        assert_eq!(envelope[4], ("op".into(), Value::String("c".into())));
        let key_schema = Schema::parse_str(&purchases.key_schema_json()).unwrap();
        #[allow(deprecated)]
        let key = apache_avro::from_avro_datum(&key_schema, &mut &enc.key(42)[5..], None).unwrap();
        assert_eq!(key, Value::Record(vec![("id".into(), Value::Long(42))]));
        // Deletes, truncates and rows of an older table version encode too.
        enc.delete(&cells, t(6));
        enc.truncate(t(7));
        enc.upsert("u", &cells[..cells.len() - 1], t(8));
        for table in [TableSchema::users("u"), TableSchema::items("i")] {
            Schema::parse_str(&table.value_schema_json()).unwrap();
            Schema::parse_str(&table.key_schema_json()).unwrap();
        }
    }
}
