//! The `source` block of every record (`io.debezium.connector.mysql.Source`):
//! its schema JSON and its datum, shared by change events and schema-change
//! records, plus the field helpers both schemas are built with.
//!
//! Invariant: `source_schema` and `write_source` list the same fields in
//! the same order with the same union layout (Debezium 3.6 `SourceInfo` as
//! Confluent AvroData writes it); change one, change both.

use crate::encode::{write_long, write_opt_long, write_opt_str, write_str};
use crate::json::J;

/// `source.snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMarker {
    False,
    True,
    First,
    Last,
    FirstInDataCollection,
    LastInDataCollection,
    /// A row read by an incremental snapshot (Debezium's `SnapshotRecord.INCREMENTAL`).
    Incremental,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::False => "false",
            SnapshotMarker::True => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::Last => "last",
            SnapshotMarker::FirstInDataCollection => "first_in_data_collection",
            SnapshotMarker::LastInDataCollection => "last_in_data_collection",
            SnapshotMarker::Incremental => "incremental",
        }
    }
}

/// Per-event `source` fields (db, table and name come from the codec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub server_id: u32,
    pub file: String,
    pub pos: u64,
    pub row: i32,
    pub gtid: Option<String>,
    /// Binlog event time (ms); snapshot: time of the read. `ts_us`/`ts_ns` derive from it.
    pub ts_ms: i64,
    pub snapshot: SnapshotMarker,
    pub thread: Option<i64>,
    pub query: Option<String>,
}

/// Allowed values of `source.snapshot` (Debezium's `SnapshotRecord`).
const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// Writes the `io.debezium.connector.mysql.Source` datum.
pub(crate) fn write_source(
    out: &mut Vec<u8>,
    connector_version: &str,
    topic_prefix: &str,
    database: &str,
    table: Option<&str>,
    source: &SourceInfo,
) {
    write_str(out, connector_version);
    write_str(out, "mysql");
    write_str(out, topic_prefix);
    write_long(out, source.ts_ms);
    out.push(0); // snapshot: string branch comes first ([Enum, "null"])
    write_str(out, source.snapshot.as_str());
    write_str(out, database);
    write_opt_str(out, None); // sequence
    write_opt_long(out, Some(source.ts_ms.saturating_mul(1_000)));
    write_opt_long(out, Some(source.ts_ms.saturating_mul(1_000_000)));
    write_opt_str(out, table);
    write_long(out, i64::from(source.server_id));
    write_opt_str(out, source.gtid.as_deref());
    write_str(out, &source.file);
    write_long(out, source.pos as i64);
    write_long(out, i64::from(source.row));
    write_opt_long(out, source.thread);
    write_opt_str(out, source.query.as_deref());
}

/// A field `["null", ty]` with default null.
pub(crate) fn opt_field(name: &str, ty: J) -> J {
    J::obj(vec![
        ("name", J::s(name)),
        ("type", J::Arr(vec![J::s("null"), ty])),
        ("default", J::Null),
    ])
}

/// A required field.
pub(crate) fn req_field(name: &str, ty: J) -> J {
    J::obj(vec![("name", J::s(name)), ("type", ty)])
}

/// The type of `source.snapshot` (an `io.debezium.data.Enum` string);
/// `with_default`: as in the source block (`connect.default` "false"),
/// else as a copy of its basics (name, version, parameters) has it.
pub(crate) fn snapshot_enum_type(with_default: bool) -> J {
    let mut ty = vec![
        ("type", J::s("string")),
        ("connect.version", J::int(1)),
        (
            "connect.parameters",
            J::obj(vec![("allowed", J::s(SNAPSHOT_ALLOWED))]),
        ),
    ];
    if with_default {
        ty.push(("connect.default", J::s("false")));
    }
    ty.push(("connect.name", J::s("io.debezium.data.Enum")));
    J::obj(ty)
}

/// The `io.debezium.connector.mysql.Source` record schema; `with_namespace`:
/// false inside a record of the same namespace (Avro leaves it out there).
pub(crate) fn source_schema(with_namespace: bool) -> J {
    let opt = |name: &str, ty: &str| opt_field(name, J::s(ty));
    let req = req_field;
    let snapshot_type = snapshot_enum_type(true);
    let mut record = vec![("type", J::s("record")), ("name", J::s("Source"))];
    if with_namespace {
        record.push(("namespace", J::s("io.debezium.connector.mysql")));
    }
    record.extend([
        (
            "fields",
            J::Arr(vec![
                req("version", J::s("string")),
                req("connector", J::s("string")),
                req("name", J::s("string")),
                req("ts_ms", J::s("long")),
                J::obj(vec![
                    ("name", J::s("snapshot")),
                    ("type", J::Arr(vec![snapshot_type, J::s("null")])),
                    ("default", J::s("false")),
                ]),
                req("db", J::s("string")),
                opt("sequence", "string"),
                opt("ts_us", "long"),
                opt("ts_ns", "long"),
                opt("table", "string"),
                req("server_id", J::s("long")),
                opt("gtid", "string"),
                req("file", J::s("string")),
                req("pos", J::s("long")),
                req("row", J::s("int")),
                opt("thread", "long"),
                opt("query", "string"),
            ]),
        ),
        ("connect.version", J::int(1)),
        ("connect.name", J::s("io.debezium.connector.mysql.Source")),
    ]);
    J::obj(record)
}
