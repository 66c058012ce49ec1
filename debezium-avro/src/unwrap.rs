//! Debezium's `ExtractNewRecordState` single message transform
//! (`transforms=unwrap`, `transforms.unwrap.type=io.debezium.transforms.ExtractNewRecordState`),
//! as Debezium 3.6 applies it before Confluent's AvroConverter: a change
//! event becomes the row itself, the flat record a JDBC sink, a warehouse
//! loader or a plain consumer wants, instead of the envelope.
//!
//! What it does to each change record (`DefaultDeleteHandlingStrategy`):
//! - create, update, read: the `after` row, then `__deleted: "false"` in the
//!   rewrite modes, then the `add.fields`;
//! - delete: per `delete.tombstone.handling.mode`: `drop` drops it;
//!   `tombstone` (the default) and `delete-to-tombstone` send a Kafka
//!   tombstone (null value) with the delete's key and headers; `rewrite` and
//!   `rewrite-with-tombstone` send the `before` row with `__deleted: "true"`
//!   and the `add.fields`;
//! - the tombstone after a delete: dropped, except with
//!   `rewrite-with-tombstone`;
//! - a truncate (no before, no after): dropped.
//!
//! Records that are not change events (schema changes, heartbeats,
//! transaction metadata) pass unchanged, as in Debezium.
//!
//! The value schema ([`FlatCodec::value_schema_json`]) is the table's
//! `Value` record at the top level (with its namespace), never a union:
//! Connect's `ExtractField` leaves the optional `after` schema, but
//! Confluent's AvroData writes an optional schema at the top level as the
//! record itself (checked against Debezium 3.6.3's output). Added fields
//! are optional copies of the
//! envelope's, source's or transaction block's field schemas (no default but
//! null: `copySchemaBasics(...).optional()`), named `<prefix><field>` or
//! `<prefix><struct>_<field>` (`source.ts_ms` -> `__source_ts_ms`), or
//! `<prefix><new name>` for `field:new name`.
//!
//! `add.headers` puts the same fields as headers after the record's own,
//! written as Connect's `SimpleHeaderConverter` writes them (strings as
//! they are, numbers in decimal, null as a null header). The tombstone after
//! a delete shares its headers object with the delete in Debezium, so the
//! tombstone kept by `rewrite-with-tombstone` carries the delete's added
//! headers and then `op` once more (`"d"`).
//!
//! `source.snapshot` of a streamed change is null in an added field or
//! header: Debezium leaves the field unset outside snapshots, and only the
//! envelope's schema default turns it into `"false"` there.
//!
//! Stricter than Debezium on purpose: a field Debezium would silently leave
//! out (not in the envelope, the source block or the transaction block), or
//! a whole struct (`source`, `before`), is refused when the transform is
//! configured, not dropped from every record.

use crate::cell::Cell;
use crate::encode::{write_long, write_str};
use crate::envelope::{Encoded, Op, TableCodec};
use crate::error::EnvelopeError;
use crate::json::J;
use crate::source::{snapshot_enum_type, SnapshotMarker, SourceInfo};
use crate::transaction::TransactionBlock;

/// `delete.tombstone.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteTombstoneHandling {
    Drop,
    #[default]
    Tombstone,
    Rewrite,
    RewriteWithTombstone,
    DeleteToTombstone,
}

impl DeleteTombstoneHandling {
    /// The setting's values, as Debezium spells them.
    pub const VALUES: [&'static str; 5] = [
        "drop",
        "tombstone",
        "rewrite",
        "rewrite-with-tombstone",
        "delete-to-tombstone",
    ];

    /// Debezium's parse: trimmed, case-insensitive.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let modes = [
            Self::Drop,
            Self::Tombstone,
            Self::Rewrite,
            Self::RewriteWithTombstone,
            Self::DeleteToTombstone,
        ];
        Self::VALUES
            .iter()
            .zip(modes)
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, mode)| mode)
    }

    fn rewrites(self) -> bool {
        matches!(self, Self::Rewrite | Self::RewriteWithTombstone)
    }
}

/// A field of the `source` block (Debezium 3.6's MySQL `SourceInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceField {
    Version,
    Connector,
    Name,
    TsMs,
    Snapshot,
    Db,
    Sequence,
    TsUs,
    TsNs,
    Table,
    ServerId,
    Gtid,
    File,
    Pos,
    Row,
    Thread,
    Query,
}

impl SourceField {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "version" => Self::Version,
            "connector" => Self::Connector,
            "name" => Self::Name,
            "ts_ms" => Self::TsMs,
            "snapshot" => Self::Snapshot,
            "db" => Self::Db,
            "sequence" => Self::Sequence,
            "ts_us" => Self::TsUs,
            "ts_ns" => Self::TsNs,
            "table" => Self::Table,
            "server_id" => Self::ServerId,
            "gtid" => Self::Gtid,
            "file" => Self::File,
            "pos" => Self::Pos,
            "row" => Self::Row,
            "thread" => Self::Thread,
            "query" => Self::Query,
            _ => return None,
        })
    }
}

/// A field `add.fields` / `add.headers` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metadata {
    Op,
    TsMs,
    TsUs,
    TsNs,
    Source(SourceField),
    TransactionId,
    TotalOrder,
    DataCollectionOrder,
}

impl Metadata {
    fn envelope(name: &str) -> Option<Self> {
        Some(match name {
            "op" => Self::Op,
            "ts_ms" => Self::TsMs,
            "ts_us" => Self::TsUs,
            "ts_ns" => Self::TsNs,
            _ => return None,
        })
    }

    fn transaction(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Self::TransactionId,
            "total_order" => Self::TotalOrder,
            "data_collection_order" => Self::DataCollectionOrder,
            _ => return None,
        })
    }

    /// The Avro type of the field (the non-null branch of its union).
    fn avro_type(self) -> J {
        match self {
            Self::Source(SourceField::Snapshot) => snapshot_enum_type(false),
            Self::Source(SourceField::Row) => J::s("int"),
            Self::Op
            | Self::TransactionId
            | Self::Source(
                SourceField::Version
                | SourceField::Connector
                | SourceField::Name
                | SourceField::Db
                | SourceField::Sequence
                | SourceField::Table
                | SourceField::Gtid
                | SourceField::File
                | SourceField::Query,
            ) => J::s("string"),
            Self::TsMs
            | Self::TsUs
            | Self::TsNs
            | Self::TotalOrder
            | Self::DataCollectionOrder
            | Self::Source(
                SourceField::TsMs
                | SourceField::TsUs
                | SourceField::TsNs
                | SourceField::ServerId
                | SourceField::Pos
                | SourceField::Thread,
            ) => J::s("long"),
        }
    }
}

/// One `add.fields` / `add.headers` entry: what it reads and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReference {
    field: Metadata,
    /// The added field's or header's name, prefix included.
    pub name: String,
}

impl FieldReference {
    /// Debezium's `FieldReference`: `field`, `struct.field`, either with
    /// `:new name`. A bare field is looked up in the envelope (`op`,
    /// `ts_ms`, `ts_us`, `ts_ns`), the transaction block (`id`,
    /// `total_order`, `data_collection_order`) or else the source block; a
    /// field the named struct lacks is looked up in the envelope.
    fn parse(prefix: &str, entry: &str) -> Result<Self, String> {
        let parts: Vec<&str> = entry.split(':').collect();
        if parts.len() > 2 {
            return Err(format!(
                "{entry:?}: expected <field>, <struct>.<field> or either with :<new name>"
            ));
        }
        let path: Vec<&str> = parts[0].split('.').collect();
        let (structure, field) = match path.as_slice() {
            [field] => (None, *field),
            [structure, field, ..] => (Some(*structure), *field),
            [] => (None, ""),
        };
        let found = match structure {
            None => Metadata::envelope(field)
                .or_else(|| Metadata::transaction(field))
                .or_else(|| SourceField::parse(field).map(Metadata::Source)),
            Some("source") => SourceField::parse(field)
                .map(Metadata::Source)
                .or_else(|| Metadata::envelope(field)),
            Some("transaction") => {
                Metadata::transaction(field).or_else(|| Metadata::envelope(field))
            }
            Some(other) => {
                return Err(format!(
                    "{entry:?}: {other} is not a struct of the change event (source or transaction)"
                ))
            }
        };
        let Some(found) = found else {
            return Err(format!(
                "{entry:?}: {field:?} is not a field of the change event: op, ts_ms, ts_us, ts_ns, \
                 a field of source (db, table, ts_ms, file, pos, gtid, ...) or of transaction \
                 (id, total_order, data_collection_order)"
            ));
        };
        let name = match (parts.get(1), structure) {
            (Some(new_name), _) => format!("{prefix}{new_name}"),
            (None, None) => format!("{prefix}{field}"),
            (None, Some(structure)) => format!("{prefix}{structure}_{field}"),
        };
        Ok(Self { field: found, name })
    }

    fn parse_list(prefix: &str, list: &str) -> Result<Vec<Self>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| Self::parse(prefix, e))
            .collect()
    }
}

/// The transform's settings (its `transforms.<name>.*` properties).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtractNewRecordState {
    pub delete_tombstone_handling: DeleteTombstoneHandling,
    pub add_fields: Vec<FieldReference>,
    pub add_headers: Vec<FieldReference>,
}

impl ExtractNewRecordState {
    /// The class name `transforms.<name>.type` names.
    pub const TYPE: &'static str = "io.debezium.transforms.ExtractNewRecordState";
    /// `add.fields.prefix` / `add.headers.prefix` default.
    pub const DEFAULT_PREFIX: &'static str = "__";

    /// The transform with `delete.tombstone.handling.mode` and nothing added.
    pub fn new(delete_tombstone_handling: DeleteTombstoneHandling) -> Self {
        Self {
            delete_tombstone_handling,
            ..Self::default()
        }
    }

    /// With `add.fields` (comma-separated references) named with `prefix`
    /// (`add.fields.prefix`). The error names the offending entry.
    pub fn with_fields(mut self, list: &str, prefix: &str) -> Result<Self, String> {
        self.add_fields = FieldReference::parse_list(prefix, list)?;
        Ok(self)
    }

    /// With `add.headers` named with `prefix` (`add.headers.prefix`).
    pub fn with_headers(mut self, list: &str, prefix: &str) -> Result<Self, String> {
        self.add_headers = FieldReference::parse_list(prefix, list)?;
        Ok(self)
    }

    /// Whether the tombstone Debezium sends after a delete is kept.
    pub fn keeps_tombstones(&self) -> bool {
        self.delete_tombstone_handling == DeleteTombstoneHandling::RewriteWithTombstone
    }

    /// The `add.headers` of the tombstone after a delete whose own added
    /// headers were `delete_headers`: those (Debezium's tombstone shares the
    /// delete's headers object, which the transform already added to), then
    /// `op` once more as `"d"`, nothing else.
    pub fn tombstone_headers(
        &self,
        mut delete_headers: Vec<(String, Option<String>)>,
    ) -> Vec<(String, Option<String>)> {
        delete_headers.extend(
            self.add_headers
                .iter()
                .filter(|r| r.field == Metadata::Op)
                .map(|r| (r.name.clone(), Some(Op::Delete.code().to_owned()))),
        );
        delete_headers
    }
}

/// What the transform made of one change event.
#[derive(Debug, PartialEq, Eq)]
pub enum Flat {
    /// A flat value datum was appended.
    Value(Encoded),
    /// Send a tombstone (null value) with the event's key.
    Tombstone,
    /// Nothing is sent.
    Dropped,
}

/// One change event's metadata, what `add.fields` / `add.headers` read.
#[derive(Debug, Clone, Copy)]
pub struct EventMeta<'a> {
    pub source: &'a SourceInfo,
    pub op: Op,
    pub transaction: Option<&'a TransactionBlock<'a>>,
    /// Processing time (the envelope's `ts_*`).
    pub ts_ns: i64,
}

/// A value of an added field or header.
enum MetaValue<'a> {
    Null,
    Str(&'a str),
    Long(i64),
    Int(i32),
}

/// The flat value schema and datum writer of one table under
/// [`ExtractNewRecordState`].
#[derive(Debug, Clone)]
pub struct FlatCodec {
    pub value_schema_json: String,
    smt: ExtractNewRecordState,
}

impl FlatCodec {
    pub fn new(table: &TableCodec, smt: &ExtractNewRecordState) -> Self {
        let rewrites = smt.delete_tombstone_handling.rewrites();
        let namespace = table.namespace();
        let mut fields = table.value_fields().to_vec();
        if rewrites {
            fields.push(optional_field("__deleted", J::s("string")));
        }
        for r in &smt.add_fields {
            fields.push(optional_field(&r.name, r.field.avro_type()));
        }
        let record = J::obj(vec![
            ("type", J::s("record")),
            ("name", J::s("Value")),
            ("namespace", J::s(namespace)),
            ("fields", J::Arr(fields)),
            ("connect.name", J::s(format!("{namespace}.Value"))),
        ]);
        Self {
            value_schema_json: record.to_json(),
            smt: smt.clone(),
        }
    }

    /// Applies the transform to one change event of `table` (whose codec
    /// this was built from), appending the flat datum to `out` when there is
    /// one.
    pub fn encode(
        &self,
        table: &TableCodec,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        meta: &EventMeta<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Flat, EnvelopeError> {
        let mode = self.smt.delete_tombstone_handling;
        let (row, deleted) = match (before, after) {
            (_, Some(after)) => (after, "false"),
            (None, None) => return Ok(Flat::Dropped),
            (Some(before), None) => match mode {
                DeleteTombstoneHandling::Drop => return Ok(Flat::Dropped),
                DeleteTombstoneHandling::Tombstone | DeleteTombstoneHandling::DeleteToTombstone => {
                    return Ok(Flat::Tombstone)
                }
                DeleteTombstoneHandling::Rewrite
                | DeleteTombstoneHandling::RewriteWithTombstone => (before, "true"),
            },
        };
        let mut encoded = Encoded {
            written: true,
            replaced: Vec::new(),
        };
        table.encode_row(row, out, &mut encoded.replaced)?;
        if mode.rewrites() {
            out.push(2);
            write_str(out, deleted);
        }
        for r in &self.smt.add_fields {
            match value(table, r.field, meta) {
                MetaValue::Null => out.push(0),
                MetaValue::Str(s) => {
                    out.push(2);
                    write_str(out, s);
                }
                MetaValue::Long(v) => {
                    out.push(2);
                    write_long(out, v);
                }
                MetaValue::Int(v) => {
                    out.push(2);
                    write_long(out, i64::from(v));
                }
            }
        }
        Ok(Flat::Value(encoded))
    }

    /// The `add.headers` of one change event (not a tombstone: see
    /// [`ExtractNewRecordState::tombstone_headers`]), name and text.
    pub fn headers(
        &self,
        table: &TableCodec,
        meta: &EventMeta<'_>,
    ) -> Vec<(String, Option<String>)> {
        self.smt
            .add_headers
            .iter()
            .map(|r| {
                let text = match value(table, r.field, meta) {
                    MetaValue::Null => None,
                    MetaValue::Str(s) => Some(s.to_owned()),
                    MetaValue::Long(v) => Some(v.to_string()),
                    MetaValue::Int(v) => Some(v.to_string()),
                };
                (r.name.clone(), text)
            })
            .collect()
    }

    /// The transform's settings.
    pub fn settings(&self) -> &ExtractNewRecordState {
        &self.smt
    }
}

fn optional_field(name: &str, ty: J) -> J {
    J::obj(vec![
        ("name", J::s(name)),
        ("type", J::Arr(vec![J::s("null"), ty])),
        ("default", J::Null),
    ])
}

/// The value `field` has in the envelope of `meta` (as `write_source` and
/// `encode_envelope_in` write it).
fn value<'a>(table: &'a TableCodec, field: Metadata, meta: &EventMeta<'a>) -> MetaValue<'a> {
    let s = meta.source;
    match field {
        Metadata::Op => MetaValue::Str(meta.op.code()),
        Metadata::TsMs => MetaValue::Long(meta.ts_ns.div_euclid(1_000_000)),
        Metadata::TsUs => MetaValue::Long(meta.ts_ns.div_euclid(1_000)),
        Metadata::TsNs => MetaValue::Long(meta.ts_ns),
        Metadata::TransactionId => meta
            .transaction
            .map_or(MetaValue::Null, |t| MetaValue::Str(t.id)),
        Metadata::TotalOrder => meta
            .transaction
            .map_or(MetaValue::Null, |t| MetaValue::Long(t.total_order)),
        Metadata::DataCollectionOrder => meta.transaction.map_or(MetaValue::Null, |t| {
            MetaValue::Long(t.data_collection_order)
        }),
        Metadata::Source(f) => match f {
            SourceField::Version => MetaValue::Str(table.connector_version()),
            SourceField::Connector => MetaValue::Str("mysql"),
            SourceField::Name => MetaValue::Str(table.topic_prefix()),
            SourceField::TsMs => MetaValue::Long(s.ts_ms),
            // Unset while streaming (see the module docs).
            SourceField::Snapshot => match s.snapshot {
                SnapshotMarker::False => MetaValue::Null,
                marker => MetaValue::Str(marker.as_str()),
            },
            SourceField::Db => MetaValue::Str(table.database()),
            SourceField::Sequence => MetaValue::Null,
            SourceField::TsUs => MetaValue::Long(s.ts_ms.saturating_mul(1_000)),
            SourceField::TsNs => MetaValue::Long(s.ts_ms.saturating_mul(1_000_000)),
            SourceField::Table => MetaValue::Str(table.table()),
            SourceField::ServerId => MetaValue::Long(i64::from(s.server_id)),
            SourceField::Gtid => s.gtid.as_deref().map_or(MetaValue::Null, MetaValue::Str),
            SourceField::File => MetaValue::Str(&s.file),
            SourceField::Pos => MetaValue::Long(s.pos as i64),
            SourceField::Row => MetaValue::Int(s.row),
            SourceField::Thread => s.thread.map_or(MetaValue::Null, MetaValue::Long),
            SourceField::Query => s.query.as_deref().map_or(MetaValue::Null, MetaValue::Str),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_as_debezium_names_them() {
        let smt = ExtractNewRecordState::new(DeleteTombstoneHandling::Rewrite)
            .with_fields("op, table,source.ts_ms,id,snapshot:snap,source.op", "__")
            .and_then(|s| s.with_headers("db", "h_"))
            .unwrap();
        let names: Vec<_> = smt.add_fields.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "__op",
                "__table",
                "__source_ts_ms",
                "__id",
                "__snap",
                "__source_op"
            ]
        );
        assert_eq!(smt.add_fields[3].field, Metadata::TransactionId);
        assert_eq!(smt.add_fields[5].field, Metadata::Op);
        assert_eq!(smt.add_headers[0].name, "h_db");
        for bad in ["nope", "before", "source", "foo.bar", "a:b:c"] {
            let err = ExtractNewRecordState::default()
                .with_fields(bad, "__")
                .unwrap_err();
            assert!(err.starts_with(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn modes_parse_as_debezium_parses_them() {
        assert_eq!(
            DeleteTombstoneHandling::parse(" Rewrite-With-Tombstone "),
            Some(DeleteTombstoneHandling::RewriteWithTombstone)
        );
        assert_eq!(DeleteTombstoneHandling::parse("none"), None);
        let smt = ExtractNewRecordState {
            add_headers: FieldReference::parse_list("__", "op,db").unwrap(),
            ..Default::default()
        };
        let op = || ("__op".to_owned(), Some("d".to_owned()));
        assert_eq!(smt.tombstone_headers(Vec::new()), [op()]);
        let db = ("__db".to_owned(), Some("shop".to_owned()));
        assert_eq!(
            smt.tombstone_headers(vec![op(), db.clone()]),
            [op(), db, op()]
        );
    }

    fn table() -> TableCodec {
        let col = |name: &str, data_type: &str, column_type: &str| crate::ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: name != "id",
            charset: (data_type != "int").then(|| "utf8mb4".to_owned()),
            ..crate::ColumnSchema::default()
        };
        let schema = crate::TableSchema {
            database: "shop".into(),
            table: "users".into(),
            columns: vec![
                col("id", "int", "int"),
                col("email", "varchar", "varchar(255)"),
            ],
            primary_key: vec![0],
        };
        let cfg = crate::ConverterConfig::new("p", "v");

        TableCodec::new(&schema, &cfg).unwrap()
    }

    fn source() -> SourceInfo {
        SourceInfo {
            server_id: 1,
            file: "binlog.000001".into(),
            pos: 4,
            row: 0,
            gtid: None,
            ts_ms: 1000,
            snapshot: crate::SnapshotMarker::False,
            thread: None,
            query: None,
        }
    }

    /// The datum of the row (7, "a@b") in the table's Value record.
    fn row_datum() -> Vec<u8> {
        let mut out = Vec::new();
        write_long(&mut out, 7);
        out.push(2);
        write_str(&mut out, "a@b");
        out
    }

    #[test]
    fn by_default_a_change_is_its_row_and_a_delete_a_tombstone() {
        let table = table();
        let flat = FlatCodec::new(&table, &ExtractNewRecordState::default());
        let schema: serde_json::Value = serde_json::from_str(&flat.value_schema_json).unwrap();
        // The row record itself at the top level, not a union.
        assert_eq!(schema["type"], "record");
        assert_eq!(schema["name"], "Value");
        assert_eq!(schema["namespace"], "p.shop.users");
        assert_eq!(schema["connect.name"], "p.shop.users.Value");
        assert_eq!(schema["fields"].as_array().unwrap().len(), 2);

        let row = [Cell::Int(7), Cell::Bytes(b"a@b".to_vec())];
        let source = source();
        let meta = |op| EventMeta {
            source: &source,
            op,
            transaction: None,
            ts_ns: 5_000_000,
        };
        let mut out = Vec::new();
        let got = flat
            .encode(&table, Some(&row), Some(&row), &meta(Op::Update), &mut out)
            .unwrap();
        assert!(matches!(got, Flat::Value(_)));
        assert_eq!(out, row_datum());
        out.clear();
        let got = flat
            .encode(&table, Some(&row), None, &meta(Op::Delete), &mut out)
            .unwrap();
        assert_eq!(got, Flat::Tombstone);
        let got = flat
            .encode(&table, None, None, &meta(Op::Truncate), &mut out)
            .unwrap();
        assert_eq!(got, Flat::Dropped);
        assert!(out.is_empty());
        assert!(!ExtractNewRecordState::default().keeps_tombstones());
    }

    #[test]
    fn rewrite_marks_deletes_and_added_fields_follow_the_row() {
        let table = table();
        let smt = ExtractNewRecordState::new(DeleteTombstoneHandling::Rewrite)
            .with_fields("op,table,source.ts_ms,row,snapshot,gtid", "__")
            .and_then(|s| s.with_headers("op,ts_ms,gtid", "__"))
            .unwrap();
        let flat = FlatCodec::new(&table, &smt);
        let schema: serde_json::Value = serde_json::from_str(&flat.value_schema_json).unwrap();
        assert_eq!(schema["type"], "record");
        let fields: Vec<_> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap(),
                    f["type"][1].clone(),
                    f["default"].clone(),
                )
            })
            .collect();
        let names: Vec<_> = fields.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "id",
                "email",
                "__deleted",
                "__op",
                "__table",
                "__source_ts_ms",
                "__row",
                "__snapshot",
                "__gtid"
            ]
        );
        assert_eq!(fields[5].1, "long");
        assert_eq!(fields[6].1, "int");
        assert_eq!(fields[7].1["connect.name"], "io.debezium.data.Enum");
        assert!(fields[7].1.get("connect.default").is_none());
        assert!(fields[2..].iter().all(|f| f.2.is_null()));

        let row = [Cell::Int(7), Cell::Bytes(b"a@b".to_vec())];
        let source = source();
        let meta = EventMeta {
            source: &source,
            op: Op::Delete,
            transaction: None,
            ts_ns: 5_000_000,
        };
        let mut out = Vec::new();
        let got = flat
            .encode(&table, Some(&row), None, &meta, &mut out)
            .unwrap();
        assert!(matches!(got, Flat::Value(_)));
        let mut expected = row_datum();
        for text in ["true", "d", "users"] {
            expected.push(2);
            write_str(&mut expected, text);
        }
        expected.push(2);
        write_long(&mut expected, 1000);
        // row 0, then a streamed change's snapshot: null, not "false".
        expected.extend([2, 0, 0]);
        expected.push(0); // no GTID
        assert_eq!(out, expected);
        assert_eq!(
            flat.headers(&table, &meta),
            [
                ("__op".to_owned(), Some("d".to_owned())),
                ("__ts_ms".to_owned(), Some("5".to_owned())),
                ("__gtid".to_owned(), None)
            ]
        );
    }
}
