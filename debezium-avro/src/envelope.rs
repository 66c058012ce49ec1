//! Debezium change-event envelopes in Avro: the key and value schemas of a table
//! (JSON, as Kafka Connect's AvroConverter registers them) and the Avro binary
//! datums of its keys and envelopes, written directly from [`Cell`]s.
//!
//! Invariants:
//! - The schema JSON and the datum writer are built together, once per table
//!   schema, in [`TableCodec::new`]: per-column union branches, fallbacks and
//!   charsets are fixed there, so a datum always matches the schema it ships with.
//! - Field order, namespaces, `connect.*` properties and defaults follow
//!   /work/shared/reference/debezium-avro.md (Debezium 3.x MySQL + Confluent AvroData).
//! - Datums carry no framing: the caller adds the `0x00` + schema id header.
//! - Primary-key-change headers render the key as Kafka Connect's
//!   `SimpleHeaderConverter` does ([`TableCodec::key_text`], `header_text`).
//! - Rows are always full width (every table column, table order). Columns of
//!   `column.exclude.list` are left out of the value schema and of before/after
//!   only; the key is built from the primary key regardless, as in Debezium.
//! - The key is the primary key, or the columns `message.key.columns` names
//!   for the table. Column mappers (`mapping`) change value fields and
//!   before/after only, never the key, as in Debezium.

use crate::cell::Cell;
use crate::column::{build_column, sanitize_fullname, ColumnCodec, Replaced};
use crate::encode::{write_opt_long, write_str};
use crate::error::EnvelopeError;
use crate::header_text;
use crate::json::J;
use crate::mapping::{encode_mapped, plan, ValueMap};
use crate::options::ConverterConfig;
use crate::source::{source_schema, write_source, SourceInfo};
use crate::table::TableSchema;
use crate::transaction::TransactionBlock;

/// Change operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Read,
    /// A TRUNCATE of the table: before and after null, a null Kafka key
    /// (Debezium's `BinlogChangeRecordEmitter.emitTruncateRecord`).
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// The key and value schemas of one table plus their datum writers.
#[derive(Debug, Clone)]
pub struct TableCodec {
    /// `<prefix>.<db>.<table>`.
    pub topic: String,
    /// `None` for a table without primary key (null Kafka keys).
    pub key_schema_json: Option<String>,
    pub value_schema_json: String,
    qualified: String,
    columns: Vec<ColumnCodec>,
    /// Per column, what a column mapper does to its values; empty when no
    /// column is mapped (the common case: no lookup per value).
    value_maps: Vec<Option<ValueMap>>,
    key_indices: Vec<usize>,
    /// Columns written to before/after, table order: all but the excluded ones.
    value_indices: Vec<usize>,
    topic_prefix: String,
    connector_version: String,
    database: String,
    table: String,
    /// Avro namespace of the Key/Value records (the sanitized topic).
    namespace: String,
    /// The fields of the `Value` record, as the value schema lists them.
    value_fields: Vec<J>,
}

impl TableCodec {
    pub fn new(table: &TableSchema, cfg: &ConverterConfig) -> Result<Self, EnvelopeError> {
        let qualified = table.qualified_name();
        let topic = format!("{}.{}.{}", cfg.topic_prefix, table.database, table.table);
        let namespace = sanitize_fullname(&topic);
        let columns = table
            .columns
            .iter()
            .map(|c| build_column(&qualified, c, cfg, &[]))
            .collect::<Result<Vec<_>, _>>()?;
        // Value fields: the column's own, or with a mapper's parameters.
        let mut value_fields: Vec<J> = columns.iter().map(|c| c.field_json.clone()).collect();
        let mut value_maps: Vec<Option<ValueMap>> = vec![None; columns.len()];
        for (i, col) in table.columns.iter().enumerate() {
            let Some(mapping) = cfg.column_mappers.mapping_for(
                &table.database,
                &table.table,
                &col.name,
                &col.type_name(),
            ) else {
                continue;
            };
            let (params, map) = plan(mapping, col, &columns[i].kind);
            if !params.is_empty() {
                value_fields[i] = build_column(&qualified, col, cfg, &params)?.field_json;
            }
            value_maps[i] = map;
        }
        if value_maps.iter().all(Option::is_none) {
            value_maps.clear();
        }
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let key_indices = cfg
            .message_key_columns
            .key_for(&table.database, &table.table, &names)
            .unwrap_or_else(|| table.primary_key.clone());
        let value_indices: Vec<usize> = (0..columns.len())
            .filter(|&i| {
                !cfg.excluded_columns.excludes(
                    &table.database,
                    &table.table,
                    &table.columns[i].name,
                )
            })
            .collect();

        let key_schema_json = (!key_indices.is_empty()).then(|| {
            J::obj(vec![
                ("type", J::s("record")),
                ("name", J::s("Key")),
                ("namespace", J::s(&namespace)),
                (
                    "fields",
                    J::Arr(refer_to_repeated_names(
                        key_indices
                            .iter()
                            .map(|&i| key_field(&columns[i]))
                            .collect(),
                    )),
                ),
                ("connect.name", J::s(format!("{namespace}.Key"))),
            ])
            .to_json()
        });

        let value_fields = refer_to_repeated_names(
            value_indices
                .iter()
                .map(|&i| value_fields[i].clone())
                .collect(),
        );
        let value_record = J::obj(vec![
            ("type", J::s("record")),
            ("name", J::s("Value")),
            ("fields", J::Arr(value_fields.clone())),
            ("connect.name", J::s(format!("{namespace}.Value"))),
        ]);
        let opt = |name: &str, ty: &str| {
            J::obj(vec![
                ("name", J::s(name)),
                ("type", J::Arr(vec![J::s("null"), J::s(ty)])),
                ("default", J::Null),
            ])
        };
        let req = |name: &str, ty: J| J::obj(vec![("name", J::s(name)), ("type", ty)]);
        let envelope = J::obj(vec![
            ("type", J::s("record")),
            ("name", J::s("Envelope")),
            ("namespace", J::s(&namespace)),
            (
                "fields",
                J::Arr(vec![
                    J::obj(vec![
                        ("name", J::s("before")),
                        ("type", J::Arr(vec![J::s("null"), value_record])),
                        ("default", J::Null),
                    ]),
                    J::obj(vec![
                        ("name", J::s("after")),
                        ("type", J::Arr(vec![J::s("null"), J::s("Value")])),
                        ("default", J::Null),
                    ]),
                    req("source", source_schema(true)),
                    J::obj(vec![
                        ("name", J::s("transaction")),
                        ("type", J::Arr(vec![J::s("null"), block_schema(&req)])),
                        ("default", J::Null),
                    ]),
                    req("op", J::s("string")),
                    opt("ts_ms", "long"),
                    opt("ts_us", "long"),
                    opt("ts_ns", "long"),
                ]),
            ),
            ("connect.version", J::int(2)),
            ("connect.name", J::s(format!("{namespace}.Envelope"))),
        ]);
        Ok(TableCodec {
            topic,
            key_schema_json,
            value_schema_json: envelope.to_json(),
            qualified,
            columns,
            value_maps,
            key_indices,
            value_indices,
            topic_prefix: cfg.topic_prefix.clone(),
            connector_version: cfg.connector_version.clone(),
            database: table.database.clone(),
            table: table.table.clone(),
            namespace,
            value_fields,
        })
    }

    /// The Avro namespace of the table's Key and Value records.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The fields of the table's `Value` record (JSON schema).
    pub(crate) fn value_fields(&self) -> &[J] {
        &self.value_fields
    }

    /// `source.version`.
    pub(crate) fn connector_version(&self) -> &str {
        &self.connector_version
    }

    /// `source.name` (the topic prefix).
    pub(crate) fn topic_prefix(&self) -> &str {
        &self.topic_prefix
    }

    /// `source.db`.
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// `source.table`.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// Columns `column.exclude.list` leaves out of the values, table order.
    pub fn excluded_columns(&self) -> impl Iterator<Item = &str> {
        let mut kept = self.value_indices.iter().peekable();
        self.columns.iter().enumerate().filter_map(move |(i, c)| {
            if kept.next_if_eq(&&i).is_some() {
                None
            } else {
                Some(c.name.as_str())
            }
        })
    }

    /// The names of the record key's columns, key order: the primary key or
    /// what `message.key.columns` names.
    pub fn key_columns(&self) -> impl Iterator<Item = &str> {
        self.key_indices
            .iter()
            .map(|&i| self.columns[i].name.as_str())
    }

    /// Indices of the record key's columns in the table's columns, key order.
    pub fn key_indices(&self) -> &[usize] {
        &self.key_indices
    }

    /// Whether the records have a key (a primary key or `message.key.columns`).
    pub fn has_key(&self) -> bool {
        !self.key_indices.is_empty()
    }

    fn check_width(&self, row: &[Cell]) -> Result<(), EnvelopeError> {
        if row.len() != self.columns.len() {
            return Err(EnvelopeError::RowWidth {
                table: self.qualified.clone(),
                expected: self.columns.len(),
                got: row.len(),
            });
        }
        Ok(())
    }

    fn value_error(&self, col: &ColumnCodec, detail: String) -> EnvelopeError {
        EnvelopeError::Value {
            table: self.qualified.clone(),
            column: col.name.clone(),
            detail,
        }
    }

    /// Appends the key datum of `row`; `written == false` (nothing written)
    /// without primary key.
    pub fn encode_key(&self, row: &[Cell], out: &mut Vec<u8>) -> Result<Encoded, EnvelopeError> {
        let mut encoded = Encoded::default();
        if self.key_indices.is_empty() {
            return Ok(encoded);
        }
        self.check_width(row)?;
        for &i in &self.key_indices {
            let col = &self.columns[i];
            col.encode(&row[i], out, &mut encoded.replaced)
                .map_err(|d| self.value_error(col, d))?;
        }
        encoded.written = true;
        Ok(encoded)
    }

    /// The key of `row` as Kafka Connect's `SimpleHeaderConverter` writes a
    /// key `Struct` into a header (`{"id":100}`, `{"a":1,"b":"x"}`): the text
    /// of Debezium's `__debezium.oldkey` / `__debezium.newkey`. `None`
    /// without primary key.
    pub fn key_text(&self, row: &[Cell]) -> Result<Option<String>, EnvelopeError> {
        if self.key_indices.is_empty() {
            return Ok(None);
        }
        self.check_width(row)?;
        let mut out = String::with_capacity(32);
        out.push('{');
        for (n, &i) in self.key_indices.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let col = &self.columns[i];
            header_text::quoted(&col.name, &mut out);
            out.push(':');
            col.header_text(&row[i], &mut out)
                .map_err(|d| self.value_error(col, d))?;
        }
        out.push('}');
        Ok(Some(out))
    }

    /// Rows are always full width (table order): excluded columns are skipped
    /// here rather than projected out earlier, so the key (which keeps excluded
    /// primary-key columns) and the value come from the same decoded row with
    /// no copy.
    pub(crate) fn encode_row(
        &self,
        row: &[Cell],
        out: &mut Vec<u8>,
        replaced: &mut Vec<Replaced>,
    ) -> Result<(), EnvelopeError> {
        self.check_width(row)?;
        for &i in &self.value_indices {
            let col = &self.columns[i];
            match self.value_maps.get(i) {
                Some(Some(map)) => encode_mapped(col, map, &row[i], out, replaced),
                _ => col.encode(&row[i], out, replaced),
            }
            .map_err(|d| self.value_error(col, d))?;
        }
        Ok(())
    }

    /// Whether two images of a row are the same value record: equal once
    /// the excluded columns are left out and the column mappers applied
    /// (Debezium compares the value `Struct`s for
    /// `skip.messages.without.change`; equal Avro encodings are equal
    /// structs, the encoding being canonical).
    pub fn same_value(&self, before: &[Cell], after: &[Cell]) -> Result<bool, EnvelopeError> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut replaced = Vec::new();
        self.encode_row(before, &mut a, &mut replaced)?;
        self.encode_row(after, &mut b, &mut replaced)?;
        Ok(a == b)
    }

    /// Appends the Envelope datum. `ts_ns` is the processing time (envelope
    /// `ts_ms`/`ts_us`/`ts_ns`); `source.ts_ms` is the event time. Values of
    /// before and after that had to be replaced come back in [`Encoded`].
    pub fn encode_envelope(
        &self,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        source: &SourceInfo,
        op: Op,
        ts_ns: i64,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EnvelopeError> {
        self.encode_envelope_in(before, after, source, op, None, ts_ns, out)
    }

    /// [`Self::encode_envelope`] with the envelope's `transaction` block
    /// (`provide.transaction.metadata`; `None`: null, Debezium's default).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_envelope_in(
        &self,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        source: &SourceInfo,
        op: Op,
        transaction: Option<&TransactionBlock<'_>>,
        ts_ns: i64,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EnvelopeError> {
        let mut encoded = Encoded {
            written: true,
            replaced: Vec::new(),
        };
        for image in [before, after] {
            match image {
                None => out.push(0),
                Some(row) => {
                    out.push(2);
                    self.encode_row(row, out, &mut encoded.replaced)?;
                }
            }
        }
        write_source(
            out,
            &self.connector_version,
            &self.topic_prefix,
            &self.database,
            Some(&self.table),
            source,
        );
        crate::transaction::write_block(out, transaction);
        write_str(out, op.code());
        write_opt_long(out, Some(ts_ns.div_euclid(1_000_000)));
        write_opt_long(out, Some(ts_ns.div_euclid(1_000)));
        write_opt_long(out, Some(ts_ns));
        Ok(encoded)
    }
}

/// What an encode call did besides appending bytes. Nearly always
/// `written` with nothing replaced (no allocation then).
#[must_use = "replaced values change the data: count and report them"]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Whether a datum was appended (`false`: the key of a table without
    /// primary key).
    pub written: bool,
    /// Values written as null or fallback instead (see [`Replaced`]), in
    /// column order; the caller counts and logs them.
    pub replaced: Vec<Replaced>,
}

/// Avro defines a named type once per schema document and refers to it by
/// its full name afterwards: AvroData writes the second GEOMETRY column of a
/// table as `"io.debezium.data.geometry.Geometry"` (its namespace is not
/// the record's), which a registry and every reader require.
fn refer_to_repeated_names(mut fields: Vec<J>) -> Vec<J> {
    fn visit(t: &mut J, seen: &mut Vec<String>) {
        match t {
            J::Arr(branches) => branches.iter_mut().for_each(|b| visit(b, seen)),
            J::Obj(kv) => {
                let text = |key: &str| {
                    kv.iter().find_map(|(k, v)| match v {
                        J::Str(s) if k == key => Some(s.clone()),
                        _ => None,
                    })
                };
                if text("type").as_deref() != Some("record") {
                    return;
                }
                let Some(name) = text("name") else { return };
                let full = match text("namespace") {
                    Some(ns) => format!("{ns}.{name}"),
                    None => name,
                };
                if seen.contains(&full) {
                    *t = J::Str(full);
                } else {
                    seen.push(full);
                }
            }
            _ => {}
        }
    }
    let mut seen = Vec::new();
    for field in &mut fields {
        if let J::Obj(kv) = field {
            if let Some((_, t)) = kv.iter_mut().find(|(k, _)| k == "type") {
                visit(t, &mut seen);
            }
        }
    }
    fields
}

fn key_field(col: &ColumnCodec) -> J {
    col.field_json.clone()
}

fn block_schema(req: &dyn Fn(&str, J) -> J) -> J {
    J::obj(vec![
        ("type", J::s("record")),
        ("name", J::s("block")),
        ("namespace", J::s("event")),
        (
            "fields",
            J::Arr(vec![
                req("id", J::s("string")),
                req("total_order", J::s("long")),
                req("data_collection_order", J::s("long")),
            ]),
        ),
        ("connect.version", J::int(1)),
        ("connect.name", J::s("event.block")),
    ])
}
