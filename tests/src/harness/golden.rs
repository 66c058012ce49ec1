//! Golden files: what real Debezium 3.6.3 emits for a fixed scenario, and the
//! comparison of our cdc's output with it.
//!
//! `make golden` (scripts/golden.sh, then the `golden` binary) runs the
//! scenario under real Debezium (tests/golden/harness/GoldenHarness.java: the
//! MySQL connector in the embedded engine, Confluent's AvroConverter, Connect's
//! SimpleHeaderConverter) and writes, per converter [`Configuration`],
//! `tests/golden/<config>/schemas.json` and `records.json`. The test
//! `tests/tests/golden.rs` runs the same scenario through our cdc and compares
//! its topics with those files. Both sides go through the code here, so the
//! decoding and the normalisation cannot drift apart. Golden files are only
//! ever written by the generator.
//!
//! # The scenario
//! `tests/golden/scenario/a_setup.sql` runs on a fresh database before the
//! connector starts (it arrives through the snapshot); once a record per
//! setup row arrived (a wait that does not trust the output's snapshot
//! markers, which are compared), `b_stream.sql` runs (binlog, with Rows_query
//! events on: inserts, updates, deletes, primary-key changes (one of a binary
//! key), a multi-table transaction, ALTER TABLE,
//! a TRUNCATE and a row after it: `connect_string` sets
//! `skipped.operations=none`, so its files hold Debezium's truncate record,
//! the others keep the default `t` and hold none).
//! A run is complete when the `users` record of the row `end-of-scenario`
//! ([`END_MARKER`]) arrived. Every configuration starts from its own fresh
//! database.
//!
//! # What a golden file holds
//! - `schemas.json`: subject -> the schema texts registered under it, in the
//!   order records first used them, verbatim except for the names below. The
//!   texts are read back by schema id from a registry this process runs
//!   ([`crate::registry`]), private to the run, so no other registrant's text
//!   can stand in for ours (the fixture answers an id with the text first
//!   registered for an identical schema, and the schema-change schemas have
//!   the same names in every run).
//! - `records.json`: topic -> its records in order. A record is the decoded
//!   key and value (JSON; `null` value = tombstone), the index of its key and
//!   value schema in the subject's list (so a record that should have used the
//!   post-ALTER schema is caught), and its headers as text.
//!
//! Avro values become JSON as follows: unions are unwrapped to the branch's
//! value (the branch is fixed by the schema, compared as text), bytes,
//! fixed and decimals become `"0x<hex>"` of the bytes on the wire, enums their
//! symbol, records JSON objects, floats (f32 widened exactly) the string of
//! their shortest round-trip form (`"3.402820018375656e38"`, `"NaN"`).
//!
//! # Normalisation (the only place it happens: [`Normalizer`])
//! - Names: the run's topic prefix becomes [`PREFIX`] and its database name
//!   [`DATABASE`], in topic names, schema texts and every string value or
//!   header. Both are unique hex-bearing names, so no other text matches.
//! - Replaced by [`NORMALIZED`] when not null (null stays null, so "present
//!   vs absent" is still compared):
//!   - the envelope's `ts_ms`, `ts_us`, `ts_ns` (when the connector processed
//!     the event: wall clock);
//!   - `source.ts_ms`, `ts_us`, `ts_ns` (the event's or the snapshot's time;
//!     the binlog carries the commit time, not the session's SET TIMESTAMP);
//!   - `source.file`, `source.pos`, `source.gtid` (binlog coordinates: depend
//!     on everything the server did before);
//!   - `source.server_id` (of the MySQL server: differs between servers);
//!   - `source.thread` (the connection id of the writing session).
//!   - the same fields of the schema-change topic's `source`, and its `ts_ms`.
//! - The header `__debezium.context.runId` (a UUID per connector run).
//! - Kept, because they are deterministic and a consumer can see them:
//!   `source.snapshot` (including `first`/`last` and
//!   `last_in_data_collection`, so the snapshot's table order is compared),
//!   `source.row`, `source.db`, `source.table`, `source.name`,
//!   `source.version`, `source.connector`, `source.query`,
//!   `source.sequence`, and every column value (the scenario pins the session
//!   clock, so CURRENT_TIMESTAMP defaults are the same on every run).
//! - The schema-change topic (`<prefix>`) receives the DDL of every database
//!   on the server, also of other tests running at the same time; only its
//!   records whose `databaseName` (in the value) is the scenario's database
//!   are kept, and the snapshot's records naming no database (Debezium's
//!   `SET character_set_server=...`). Those are compared in full,
//!   `tableChanges` included.
//!
//! # Deliberate differences (the only ones: [`ALLOWED_DIFFERENCES`])
//! The comparison knows the places where our cdc differs from real
//! Debezium on purpose, each with its reason (README, compatibility
//! section, lists the same). A difference is allowed only when it is
//! exactly of a listed kind; everything else is reported. Today there is
//! one: a NULL in a column that has a default stays NULL with us, where
//! Debezium's record carries the column's default (see
//! [`NULL_KEPT_WHERE_DEBEZIUM_WRITES_THE_DEFAULT`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use pipeline::testing::Stack;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The scenario's first phase (before the connector starts).
pub const SETUP_SQL: &str = include_str!("../../golden/scenario/a_setup.sql");
/// The scenario's second phase (after the snapshot).
pub const STREAM_SQL: &str = include_str!("../../golden/scenario/b_stream.sql");
/// The email of the scenario's last row.
pub const END_MARKER: &str = "end-of-scenario";
/// What a run's topic prefix becomes in golden files.
pub const PREFIX: &str = "PREFIX";
/// What a run's database name becomes in golden files.
pub const DATABASE: &str = "golden";
/// What a normalised field's value becomes.
pub const NORMALIZED: &str = "<normalized>";
/// The header whose value is per connector run.
pub const RUN_ID_HEADER: &str = "__debezium.context.runId";

/// One converter configuration: a directory of golden files.
#[derive(Debug, Clone, Copy)]
pub struct Configuration {
    /// The directory name under tests/golden/.
    pub name: &'static str,
    pub time_precision_mode: &'static str,
    pub decimal_handling_mode: &'static str,
    /// `skipped.operations`, when not Debezium's default (`t`: TRUNCATE
    /// not emitted); `none` emits the scenario's TRUNCATE.
    pub skipped_operations: Option<&'static str>,
    /// Further connector properties (Debezium names), in the order given.
    pub extra: &'static [(&'static str, &'static str)],
}

impl Configuration {
    /// Connector properties (Debezium names) this configuration sets; the
    /// rest are Debezium's defaults (`bigint.unsigned.handling.mode=long`,
    /// `include.schema.changes=true`, `tombstones.on.delete=true`, ...).
    pub fn properties(&self) -> Vec<(&'static str, &'static str)> {
        let mut props = vec![
            ("time.precision.mode", self.time_precision_mode),
            ("decimal.handling.mode", self.decimal_handling_mode),
            // The scenario's odd_names table has column names Avro does not
            // allow: under the default (none) Debezium 3.6.3 with Confluent's
            // AvroConverter stops on them (SchemaParseException: Illegal
            // character in: my-col), so every configuration asks for avro.
            ("field.name.adjustment.mode", "avro"),
        ];
        if let Some(skipped) = self.skipped_operations {
            props.push(("skipped.operations", skipped));
        }
        props.extend_from_slice(self.extra);
        props
    }

    /// [`Self::properties`] for a run on `database`: `{db}` in a key or a
    /// value becomes its name (settings that name tables literally, such as
    /// `snapshot.select.statement.overrides`).
    pub fn properties_for(&self, database: &str) -> Vec<(String, String)> {
        self.properties()
            .into_iter()
            .map(|(k, v)| (k.replace("{db}", database), v.replace("{db}", database)))
            .collect()
    }

    /// The SELECT whose rows `table`'s snapshot emits, when overridden.
    pub fn select_override(&self, database: &str, table: &str) -> Option<String> {
        let key = format!("snapshot.select.statement.overrides.{database}.{table}");
        self.properties_for(database)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Both time modes, all three decimal modes, all four binary modes, both
/// `skipped.operations` behaviours for TRUNCATE, `include.query`, Debezium's
/// TINYINT(1)-to-boolean converter (`converters`),
/// `snapshot.select.statement.overrides`, and the
/// column mappers and custom message keys
/// production users rely on (masking personal data, truncating large text,
/// hashing for joinable pseudonyms, keying tables by other columns).
pub const CONFIGURATIONS: [Configuration; 7] = [
    Configuration {
        name: "adaptive_precise",
        time_precision_mode: "adaptive_time_microseconds",
        decimal_handling_mode: "precise",
        skipped_operations: None,
        extra: &[],
    },
    Configuration {
        name: "connect_double",
        time_precision_mode: "connect",
        decimal_handling_mode: "double",
        skipped_operations: None,
        // Debezium's TINYINT(1)-to-boolean converter as most users set it:
        // every TINYINT(1), by its current class name.
        extra: &[
            ("binary.handling.mode", "base64-url-safe"),
            ("converters", "boolean"),
            (
                "boolean.type",
                "io.debezium.connector.binlog.converters.TinyIntOneToBooleanConverter",
            ),
        ],
    },
    // `snapshot.select.statement.overrides`: a subset of purchases, and
    // items in reverse order with some columns left out (null in the
    // records). The last column is selected: Debezium 3.6.3 sizes a row by
    // the greatest column position selected and stops on a shorter one.
    Configuration {
        name: "connect_string",
        time_precision_mode: "connect",
        decimal_handling_mode: "string",
        skipped_operations: Some("none"),
        extra: &[
            ("binary.handling.mode", "base64"),
            (
                "snapshot.select.statement.overrides",
                "{db}.purchases,{db}.items",
            ),
            (
                "snapshot.select.statement.overrides.{db}.purchases",
                "SELECT * FROM `{db}`.purchases WHERE status = 255",
            ),
            (
                "snapshot.select.statement.overrides.{db}.items",
                "SELECT updated_at, id, name, price FROM `{db}`.items ORDER BY id DESC",
            ),
        ],
    },
    // The database name differs per run, hence the `.*\.` in front of each
    // table. Each rule names text, binary and non-text columns, some with
    // defaults and NULLs, so what Debezium does to each kind is recorded.
    // Not `users.email`: both sides find the scenario's end by it.
    Configuration {
        name: "column_mappers",
        time_precision_mode: "adaptive_time_microseconds",
        decimal_handling_mode: "precise",
        skipped_operations: None,
        extra: &[
            (
                "column.truncate.to.4.chars",
                ".*\\.all_types\\.(t_tinytext|t_text|t_blob|t_binary|t_varbinary|t_json|t_int),.*\\.items\\.category",
            ),
            (
                "column.mask.with.5.chars",
                ".*\\.all_types\\.(t_char|t_mediumtext|d_varchar|t_enum|d_enum|t_int_u)",
            ),
            (
                "column.mask.hash.SHA-256.with.salt.CzQMA0cB5K",
                ".*\\.all_types\\.t_varchar,.*\\.items\\.name",
            ),
            (
                "column.mask.hash.v2.SHA-256.with.salt.s2",
                ".*\\.all_types\\.(t_latin1|t_utf8mb4|t_set|t_longtext)",
            ),
            (
                "column.propagate.source.type",
                ".*\\.all_types\\.(t_decimal|t_decimal_small|t_float|t_bool|t_bigint_u|t_bit10|t_year|t_datetime3|t_time6|t_ts3|t_mediumblob|t_binary|d_int),.*\\.purchases\\.status,.*\\.items\\.color,.*\\.geo\\.v",
            ),
            (
                "datatype.propagate.source.type",
                ".*\\.DATETIME,.*\\.purchases\\.INT UNSIGNED,.*\\.MEDIUMINT",
            ),
            (
                "message.key.columns",
                ".*\\.purchases:user_id,item_id;.*\\.time_edges:t0",
            ),
            // The scenario's update of items.category to a value with the
            // same first 4 characters is equal after truncation: dropped.
            ("skip.messages.without.change", "true"),
        ],
    },
    // `binary.handling.mode=hex` (the other configurations cover bytes, base64
    // and base64-url-safe): hex keys, defaults and values. `include.query`:
    // every streamed change carries its statement (b_stream.sql turns
    // Rows_query events on for its session).
    Configuration {
        name: "binary_hex_query",
        time_precision_mode: "adaptive_time_microseconds",
        decimal_handling_mode: "precise",
        skipped_operations: None,
        // The same converter by its deprecated class name, picking columns
        // by a selector with the length checker off (TINYINTs of any width).
        extra: &[
            ("binary.handling.mode", "hex"),
            ("include.query", "true"),
            ("converters", "tiny"),
            (
                "tiny.type",
                "io.debezium.connector.mysql.converters.TinyIntOneToBooleanConverter",
            ),
            ("tiny.selector", ".*\\.flags\\.(u|t),.*\\.all_types\\.t_tinyint"),
            ("tiny.length.checker", "false"),
        ],
    },
    // Debezium's `ExtractNewRecordState` transform as JDBC sinks use it:
    // the row instead of the envelope, deletes as tombstones (the default
    // `delete.tombstone.handling.mode=tombstone`), Debezium's own tombstones
    // and the truncate dropped.
    Configuration {
        name: "unwrap_default",
        time_precision_mode: "adaptive_time_microseconds",
        decimal_handling_mode: "precise",
        skipped_operations: Some("none"),
        extra: &[
            ("transforms", "unwrap"),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
        ],
    },
    // The rewrite mode (deletes as the before row with `__deleted: "true"`,
    // Debezium's tombstones kept) with metadata as fields and headers: the
    // deterministic ones (no time or binlog position), by bare name, by
    // `struct.field`, renamed, with a header prefix of its own. Then
    // Connect's `RegexRouter` renames the table topics (`<prefix>.<db>.<t>`
    // to `<prefix>.<t>_flat`, with the subjects that follow them) and
    // leaves the schema-change topic `<prefix>`, which it does not match
    // as a whole, alone.
    Configuration {
        name: "unwrap_rewrite_route",
        time_precision_mode: "connect",
        decimal_handling_mode: "string",
        skipped_operations: None,
        extra: &[
            ("transforms", "unwrap,route"),
            (
                "transforms.unwrap.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
            (
                "transforms.unwrap.delete.tombstone.handling.mode",
                "rewrite-with-tombstone",
            ),
            (
                "transforms.unwrap.add.fields",
                "op,table,source.snapshot,row,db:origin_db,name",
            ),
            ("transforms.unwrap.add.headers", "op,source.db,snapshot"),
            ("transforms.unwrap.add.headers.prefix", "meta_"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", "([^.]+)\\.[^.]+\\.(.+)"),
            ("transforms.route.replacement", "$1.$2_flat"),
        ],
    },
];

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("record {index} on {topic}: {what}")]
    Record {
        topic: String,
        index: usize,
        what: String,
    },
    #[error("schema {id} is not in the registry")]
    UnknownSchema { id: u32 },
    #[error("schema {id} does not parse: {error}")]
    BadSchema { id: u32, error: String },
}

/// The statements of a scenario file: comment lines dropped, split at `;` at
/// the end of a line.
pub fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs a scenario file on one connection (the session settings at its top
/// hold for the rest of it).
pub async fn run_sql(conn: &mut mysql_async::Conn, sql: &str) -> Result<(), mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    for statement in statements(sql) {
        conn.query_drop(statement).await?;
    }
    Ok(())
}

/// One record as the broker (or the harness file) has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawRecord {
    /// Parses a line of the Java harness's output.
    pub fn from_harness_line(line: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let b64 = |v: &Value| -> Result<Option<Vec<u8>>, String> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(Some)
                    .map_err(|e| e.to_string()),
                other => Err(format!("not base64 or null: {other}")),
            }
        };
        let headers = v["headers"]
            .as_array()
            .ok_or("no headers array")?
            .iter()
            .map(|h| {
                let name = h[0].as_str().ok_or("header without a name")?.to_owned();
                Ok((name, b64(&h[1])?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            topic: v["topic"].as_str().ok_or("no topic")?.to_owned(),
            key: b64(&v["key"])?,
            value: b64(&v["value"])?,
            headers,
        })
    }

    /// Schema ids of the framed key and value (Confluent wire format).
    pub fn schema_ids(&self) -> impl Iterator<Item = u32> + '_ {
        [&self.key, &self.value]
            .into_iter()
            .filter_map(|b| b.as_deref().and_then(frame_id))
    }
}

fn frame_id(bytes: &[u8]) -> Option<u32> {
    if bytes.len() >= 5 && bytes[0] == 0 {
        Some(u32::from_be_bytes(bytes[1..5].try_into().ok()?))
    } else {
        None
    }
}

/// Parsed schemas by id, with their registered text.
#[derive(Debug, Default)]
pub struct SchemaSet {
    by_id: HashMap<u32, (String, Schema)>,
}

impl SchemaSet {
    pub fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn insert(&mut self, id: u32, text: String) -> Result<(), GoldenError> {
        let schema = Schema::parse_str(&text).map_err(|e| GoldenError::BadSchema {
            id,
            error: e.to_string(),
        })?;
        self.by_id.insert(id, (text, schema));
        Ok(())
    }

    fn get(&self, id: u32) -> Result<&(String, Schema), GoldenError> {
        self.by_id.get(&id).ok_or(GoldenError::UnknownSchema { id })
    }
}

/// One record decoded, not yet normalised.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub topic: String,
    pub key_schema: Option<u32>,
    pub value_schema: Option<u32>,
    pub key: Value,
    pub value: Value,
    pub headers: Vec<(String, Option<String>)>,
}

impl Decoded {
    /// `source.snapshot` of the value, if any.
    pub fn snapshot(&self) -> Option<&str> {
        self.value.get("source")?.get("snapshot")?.as_str()
    }

    /// Whether this is the record of the scenario's last row (a change
    /// event's `after`, or the row itself under `ExtractNewRecordState`).
    pub fn is_end_marker(&self) -> bool {
        let row = self.value.get("after").unwrap_or(&self.value);
        row.get("email").and_then(Value::as_str) == Some(END_MARKER)
    }
}

/// Decodes one record; `index` only names it in errors.
pub fn decode(raw: &RawRecord, index: usize, schemas: &SchemaSet) -> Result<Decoded, GoldenError> {
    let err = |what: String| GoldenError::Record {
        topic: raw.topic.clone(),
        index,
        what,
    };
    let datum = |bytes: &Option<Vec<u8>>| -> Result<(Option<u32>, Value), GoldenError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let id = frame_id(bytes).ok_or_else(|| err("not in the Confluent wire format".into()))?;
        let (_, schema) = schemas.get(id)?;
        let mut reader = &bytes[5..];
        #[allow(deprecated)]
        let value = apache_avro::from_avro_datum(schema, &mut reader, None)
            .map_err(|e| err(format!("does not decode with schema {id}: {e}")))?;
        if !reader.is_empty() {
            return Err(err(format!(
                "{} bytes after the datum (schema {id})",
                reader.len()
            )));
        }
        Ok((Some(id), to_json(&value)))
    };
    let (key_schema, key) = datum(&raw.key)?;
    let (value_schema, value) = datum(&raw.value)?;
    let headers = raw
        .headers
        .iter()
        .map(|(name, bytes)| {
            let text = bytes.as_ref().map(|b| match std::str::from_utf8(b) {
                Ok(s) => s.to_owned(),
                Err(_) => hex(b),
            });
            (name.clone(), text)
        })
        .collect();
    Ok(Decoded {
        topic: raw.topic.clone(),
        key_schema,
        value_schema,
        key,
        value,
        headers,
    })
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A float as the text of its shortest round-trip form (`{:?}`): a JSON
/// number would go through serde_json's parser when the golden file is read
/// back, which is not correctly rounded without its `float_roundtrip`
/// feature and turned 3.402820018375656e38 into its neighbour.
fn float(f: f64) -> Value {
    Value::String(format!("{f:?}"))
}

/// Avro to JSON as described in the module docs.
pub fn to_json(v: &Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n) => json!(n),
        Avro::Long(n)
        | Avro::TimeMicros(n)
        | Avro::TimestampMillis(n)
        | Avro::TimestampMicros(n)
        | Avro::TimestampNanos(n)
        | Avro::LocalTimestampMillis(n)
        | Avro::LocalTimestampMicros(n)
        | Avro::LocalTimestampNanos(n) => json!(n),
        Avro::Float(f) => float(f64::from(*f)),
        Avro::Double(f) => float(*f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(hex(b)),
        Avro::Decimal(d) => match Vec::<u8>::try_from(d) {
            Ok(b) => Value::String(hex(&b)),
            Err(e) => Value::String(format!("<bad decimal: {e}>")),
        },
        Avro::String(s) => Value::String(s.clone()),
        Avro::Enum(_, s) => Value::String(s.clone()),
        Avro::Union(_, inner) => to_json(inner),
        Avro::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Avro::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
        Avro::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        other => Value::String(format!("{other:?}")),
    }
}

/// The golden form of one run: what the files hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Golden {
    /// Subject -> schema texts in the order records first used them.
    pub schemas: BTreeMap<String, Vec<String>>,
    /// Topic -> its records in order.
    pub topics: BTreeMap<String, Vec<GoldenRecord>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenRecord {
    /// 1-based index into `schemas["<topic>-key"]`; null without a key.
    pub key_schema: Option<usize>,
    /// 1-based index into `schemas["<topic>-value"]`; null for a tombstone.
    pub value_schema: Option<usize>,
    pub key: Value,
    pub value: Value,
    pub headers: Vec<(String, Option<String>)>,
}

/// Everything that differs between runs, replaced in one place (module docs).
#[derive(Debug, Clone)]
pub struct Normalizer {
    pub prefix: String,
    pub database: String,
}

const ENVELOPE_TIMES: [&str; 3] = ["ts_ms", "ts_us", "ts_ns"];
const SOURCE_FIELDS: [&str; 8] = [
    "ts_ms",
    "ts_us",
    "ts_ns",
    "file",
    "pos",
    "gtid",
    "server_id",
    "thread",
];

impl Normalizer {
    fn text(&self, s: &str) -> String {
        s.replace(&self.prefix, PREFIX)
            .replace(&self.database, DATABASE)
    }

    fn strings(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.strings(i)),
            Value::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut v) in old {
                    self.strings(&mut v);
                    m.insert(self.text(&k), v);
                }
            }
            _ => {}
        }
    }

    fn blank(obj: &mut Value, fields: &[&str]) {
        if let Some(m) = obj.as_object_mut() {
            for f in fields {
                if let Some(v) = m.get_mut(*f) {
                    if !v.is_null() {
                        *v = Value::String(NORMALIZED.into());
                    }
                }
            }
        }
    }

    /// Whether a record on the schema-change topic concerns another database:
    /// one naming another database, or naming none outside the snapshot (the
    /// snapshot's own `SET character_set_server=...` names none and is kept).
    fn foreign_schema_change(&self, d: &Decoded) -> bool {
        if d.topic != self.prefix {
            return false;
        }
        match d.value.get("databaseName").and_then(Value::as_str) {
            Some(db) if db == self.database => false,
            Some("") => !matches!(d.snapshot(), Some(s) if s != "false"),
            _ => true,
        }
    }

    /// The golden form of a run's records (each topic's records in order).
    pub fn golden(&self, records: &[Decoded], schemas: &SchemaSet) -> Result<Golden, GoldenError> {
        let mut golden = Golden::default();
        let mut index_of: HashMap<(String, u32), usize> = HashMap::new();
        for d in records {
            if self.foreign_schema_change(d) {
                continue;
            }
            let topic = self.text(&d.topic);
            let mut schema_index =
                |kind: &str, id: Option<u32>| -> Result<Option<usize>, GoldenError> {
                    let Some(id) = id else { return Ok(None) };
                    let subject = format!("{topic}-{kind}");
                    if let Some(i) = index_of.get(&(subject.clone(), id)) {
                        return Ok(Some(*i));
                    }
                    let texts = golden.schemas.entry(subject.clone()).or_default();
                    texts.push(self.text(&schemas.get(id)?.0));
                    index_of.insert((subject, id), texts.len());
                    Ok(Some(texts.len()))
                };
            let key_schema = schema_index("key", d.key_schema)?;
            let value_schema = schema_index("value", d.value_schema)?;
            let mut key = d.key.clone();
            let mut value = d.value.clone();
            self.strings(&mut key);
            self.strings(&mut value);
            Self::blank(&mut value, &ENVELOPE_TIMES);
            if let Some(source) = value.get_mut("source") {
                Self::blank(source, &SOURCE_FIELDS);
            }
            let headers = d
                .headers
                .iter()
                .map(|(name, text)| {
                    let text = match (name.as_str(), text) {
                        (RUN_ID_HEADER, Some(_)) => Some(NORMALIZED.to_owned()),
                        (_, t) => t.as_deref().map(|t| self.text(t)),
                    };
                    (name.clone(), text)
                })
                .collect();
            golden.topics.entry(topic).or_default().push(GoldenRecord {
                key_schema,
                value_schema,
                key,
                value,
                headers,
            });
        }
        Ok(golden)
    }
}

/// A kind of difference from real Debezium that is deliberate.
#[derive(Debug, Clone, Copy)]
pub struct AllowedDifference {
    pub name: &'static str,
    /// Exactly what is allowed (the comparison checks all of it).
    pub what: &'static str,
    pub reason: &'static str,
}

/// A NULL column value where Debezium writes the column's default.
pub const NULL_KEPT_WHERE_DEBEZIUM_WRITES_THE_DEFAULT: AllowedDifference = AllowedDifference {
    name: "null-kept-where-debezium-writes-the-default",
    what: "a column value in `before` or `after` of a change event (or in the row of a \
           record flattened by `ExtractNewRecordState`) is null with us where \
           Debezium's is not null and equals the default of that column's field in \
           Debezium's value schema (a NULL stored in a column that has a DEFAULT)",
    reason: "Confluent's AvroConverter (AvroData.fromConnectData) replaces a null in an \
             optional field that has a default by the default, so real Debezium reports \
             NULL as the default value (e.g. 42 for `INT DEFAULT 42`, `false` for \
             `BOOLEAN DEFAULT FALSE`): a consumer cannot tell NULL from the default. We \
             write the NULL that is in the row; the schemas are identical, so a consumer \
             of Debezium's output reads ours unchanged",
};

/// Every deliberate difference from real Debezium 3.6.3 (module docs).
pub const ALLOWED_DIFFERENCES: [AllowedDifference; 1] =
    [NULL_KEPT_WHERE_DEBEZIUM_WRITES_THE_DEFAULT];

/// The outcome of comparing a run with golden files.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Every difference not in [`ALLOWED_DIFFERENCES`].
    pub differences: Vec<String>,
    /// Every allowed difference found, naming its kind.
    pub allowed: Vec<String>,
}

/// Every difference between `expected` (golden) and `actual` that is not
/// allowed, readable, in order: schemas first, then each topic's records by
/// index.
pub fn differences(expected: &Golden, actual: &Golden) -> Vec<String> {
    compare(expected, actual).differences
}

/// The row record of a flat value schema (`ExtractNewRecordState`: the
/// table's `Value` record, alone or as the union `["null", record]`); `None`
/// for a change event's `Envelope`.
fn flat_record(schema: &Value) -> Option<&Value> {
    let record = match schema {
        Value::Array(branches) => branches.iter().find(|t| t["type"] == "record")?,
        record => record,
    };
    (record["type"] == "record" && record["name"] == "Value").then_some(record)
}

/// The expected value of the column `field` of the `before`/`after` block
/// `block` (or of the row itself, `block` empty, in a flat record) of a
/// record with value schema `schema` (the registered text): its field
/// default in the golden JSON form (`to_json`), if it has one.
fn field_default(schema: &str, block: &str, field: &str) -> Option<Value> {
    let schema: Value = serde_json::from_str(schema).ok()?;
    // `before` defines the row record inline; `after` names it.
    let inline = |name: &str| -> Option<Value> {
        schema["fields"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == name)?["type"]
            .as_array()?
            .iter()
            .find(|t| t["type"] == "record")
            .cloned()
    };
    let record = match block {
        "" => flat_record(&schema)?.clone(),
        _ => inline(block).or_else(|| inline("before"))?,
    };
    let f = record["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == field)?
        .clone();
    let default = f.get("default")?;
    if default.is_null() {
        return None;
    }
    // The branch the default belongs to: the union's first (Avro's rule).
    let branch = match &f["type"] {
        Value::Array(branches) => branches.first()?.clone(),
        t => t.clone(),
    };
    let base = match &branch {
        Value::String(t) => t.clone(),
        Value::Object(o) => o.get("type")?.as_str()?.to_owned(),
        _ => return None,
    };
    Some(match base.as_str() {
        "float" | "double" => float(default.as_f64()?),
        // Avro JSON: bytes as a string of code points 0..=255.
        "bytes" => {
            let bytes: Option<Vec<u8>> = default
                .as_str()?
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect();
            Value::String(hex(&bytes?))
        }
        _ => default.clone(),
    })
}

/// Sets to null, in `expected` (a record as JSON), every column value that
/// is an allowed difference from `actual`, naming each in `allowed`.
fn allow_deliberate(
    at: &str,
    expected: &mut Value,
    actual: &Value,
    schema: Option<&String>,
    allowed: &mut Vec<String>,
) {
    let Some(schema) = schema else { return };
    // A flat record (`ExtractNewRecordState`) is the row itself.
    let flat = serde_json::from_str::<Value>(schema)
        .ok()
        .is_some_and(|s| flat_record(&s).is_some());
    let blocks: &[&str] = match flat {
        true => &[""],
        false => &["before", "after"],
    };
    for block in blocks {
        let pointer = match *block {
            "" => "/value".to_owned(),
            block => format!("/value/{block}"),
        };
        let (Some(Value::Object(e)), Some(Value::Object(a))) =
            (expected.pointer_mut(&pointer), actual.pointer(&pointer))
        else {
            continue;
        };
        for (field, ev) in e.iter_mut() {
            if ev.is_null() || !a.get(field).is_some_and(Value::is_null) {
                continue;
            }
            if field_default(schema, block, field).as_ref() == Some(ev) {
                let path = match *block {
                    "" => format!(".value.{field}"),
                    block => format!(".value.{block}.{field}"),
                };
                allowed.push(format!(
                    "{at} {path}: null, Debezium {} (the column default) [{}]",
                    short(ev),
                    NULL_KEPT_WHERE_DEBEZIUM_WRITES_THE_DEFAULT.name
                ));
                *ev = Value::Null;
            }
        }
    }
}

/// [`differences`], and the allowed differences apart.
pub fn compare(expected: &Golden, actual: &Golden) -> Comparison {
    let mut allowed = Vec::new();
    let mut out = Vec::new();
    for (subject, texts) in &expected.schemas {
        match actual.schemas.get(subject) {
            None => out.push(format!("schema subject {subject}: missing")),
            Some(got) => {
                if got.len() != texts.len() {
                    out.push(format!(
                        "schema subject {subject}: {} versions, expected {}",
                        got.len(),
                        texts.len()
                    ));
                }
                for (i, (e, a)) in texts.iter().zip(got).enumerate() {
                    if e == a {
                        continue;
                    }
                    let at = format!("schema subject {subject} #{}", i + 1);
                    out.push(format!("{at}: {}", text_difference(e, a)));
                    // The texts as JSON too: every differing place, or that
                    // only the layout or key order differs.
                    match (
                        serde_json::from_str::<Value>(e),
                        serde_json::from_str::<Value>(a),
                    ) {
                        (Ok(ej), Ok(aj)) if ej == aj => out.push(format!(
                            "{at}: same JSON, different text (key order or layout)"
                        )),
                        (Ok(ej), Ok(aj)) => value_differences(&at, "", &ej, &aj, &mut out),
                        _ => {}
                    }
                }
            }
        }
    }
    for subject in actual.schemas.keys() {
        if !expected.schemas.contains_key(subject) {
            out.push(format!("schema subject {subject}: not expected"));
        }
    }
    for (topic, records) in &expected.topics {
        let got = actual.topics.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        if got.len() != records.len() {
            out.push(format!(
                "topic {topic}: {} records, expected {}",
                got.len(),
                records.len()
            ));
        }
        for (i, (e, a)) in records.iter().zip(got).enumerate() {
            let at = format!("topic {topic} record {i}");
            let schema = e.value_schema.and_then(|n| {
                expected
                    .schemas
                    .get(&format!("{topic}-value"))
                    .and_then(|texts| texts.get(n.checked_sub(1)?))
            });
            let mut e = serde_json::to_value(e).expect("serialisable");
            let a = serde_json::to_value(a).expect("serialisable");
            allow_deliberate(&at, &mut e, &a, schema, &mut allowed);
            value_differences(&at, "", &e, &a, &mut out);
        }
    }
    for (topic, records) in &actual.topics {
        if !expected.topics.contains_key(topic) {
            out.push(format!(
                "topic {topic}: {} records, none expected",
                records.len()
            ));
        }
    }
    Comparison {
        differences: out,
        allowed,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

fn value_differences(at: &str, path: &str, e: &Value, a: &Value, out: &mut Vec<String>) {
    match (e, a) {
        (Value::Object(em), Value::Object(am)) => {
            for (k, ev) in em {
                let p = format!("{path}.{k}");
                match am.get(k) {
                    Some(av) => value_differences(at, &p, ev, av, out),
                    None => out.push(format!("{at} {p}: missing, expected {}", short(ev))),
                }
            }
            for (k, av) in am {
                if !em.contains_key(k) {
                    out.push(format!("{at} {path}.{k}: {} not expected", short(av)));
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) if ea.len() == aa.len() => {
            for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                value_differences(at, &format!("{path}[{i}]"), ev, av, out);
            }
        }
        _ if e == a => {}
        _ => out.push(format!("{at} {path}: {} expected {}", short(a), short(e))),
    }
}

/// The differences grouped by place and path across records ("topic T
/// record * .value.source.version"), in order of first occurrence: each
/// group's count and its first difference in full.
pub fn summarize(differences: &[String]) -> Vec<String> {
    let mut groups: Vec<(String, usize, &String)> = Vec::new();
    for d in differences {
        let head = d.split(": ").next().unwrap_or(d);
        // Only per-record differences are grouped; schema ones stay apart.
        let Some(i) = head.find(" record ") else {
            groups.push((String::new(), 1, d));
            continue;
        };
        let rest = &head[i + " record ".len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let key = format!("{} record *{}", &head[..i], &rest[digits..]);
        match groups
            .iter_mut()
            .find(|(k, _, _)| !k.is_empty() && *k == key)
        {
            Some((_, n, _)) => *n += 1,
            None => groups.push((key, 1, d)),
        }
    }
    groups
        .into_iter()
        .map(|(_, n, first)| {
            if n == 1 {
                first.clone()
            } else {
                format!("[{n} records like] {first}")
            }
        })
        .collect()
}

/// Where two texts first differ, with some context.
fn text_difference(expected: &str, actual: &str) -> String {
    let at = expected
        .bytes()
        .zip(actual.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let around = |s: &str| {
        let mut start = at.saturating_sub(60).min(s.len());
        while !s.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + 100).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        s[start..end].to_owned()
    };
    format!(
        "texts differ at byte {at}:\n      got      …{}…\n      expected …{}…",
        around(actual),
        around(expected)
    )
}

/// Golden files of one configuration under `dir`.
pub fn write_files(dir: &std::path::Path, golden: &Golden) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("schemas.json"), pretty(&golden.schemas))?;
    std::fs::write(dir.join("records.json"), pretty(&golden.topics))?;
    Ok(())
}

fn pretty<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("serialisable");
    s.push('\n');
    s
}

/// Reads the golden files of one configuration from `dir`.
pub fn read_files(dir: &std::path::Path) -> Result<Golden, String> {
    let read = |name: &str| -> Result<String, String> {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("{}: {e} (run `make golden`)", dir.join(name).display()))
    };
    Ok(Golden {
        schemas: serde_json::from_str(&read("schemas.json")?).map_err(|e| e.to_string())?,
        topics: serde_json::from_str(&read("records.json")?).map_err(|e| e.to_string())?,
    })
}

/// The directory of the committed golden files.
pub fn golden_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Drops and creates `database` (utf8mb4, as the demo's `shop`) on the
/// stack's source server (real MySQL for golden runs: `stack_for(Flavour::MySql)`).
pub async fn recreate_database(stack: &Stack, database: &str) -> Result<(), mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(None)).await?;
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
        .await?;
    conn.query_drop(format!(
        "CREATE DATABASE `{database}` CHARACTER SET utf8mb4"
    ))
    .await?;
    conn.disconnect().await
}

/// Drops `database`.
pub async fn drop_database(stack: &Stack, database: &str) -> Result<(), mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(None)).await?;
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
        .await?;
    conn.disconnect().await
}

/// Rows in all tables of `database` (of a table's snapshot SELECT where
/// `config` overrides it): how many records its snapshot emits.
pub async fn count_rows(
    stack: &Stack,
    database: &str,
    config: &Configuration,
) -> Result<usize, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(Some(database))).await?;
    let tables: Vec<String> = conn
        .exec(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            (database,),
        )
        .await?;
    let mut rows = 0;
    for table in tables {
        let from = match config.select_override(database, &table) {
            Some(select) => format!("({select}) AS overridden"),
            None => format!("`{table}`"),
        };
        let n: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {from}"))
            .await?;
        rows += n.unwrap_or(0) as usize;
    }
    conn.disconnect().await?;
    Ok(rows)
}

/// Runs a scenario file in `database`.
pub async fn run_phase(stack: &Stack, database: &str, sql: &str) -> Result<(), mysql_async::Error> {
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(Some(database))).await?;
    run_sql(&mut conn, sql).await?;
    conn.disconnect().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_split_into_statements() {
        let setup = statements(SETUP_SQL);
        assert!(setup[0].starts_with("SET SESSION sql_mode"));
        assert!(setup
            .iter()
            .any(|s| s.starts_with("CREATE TABLE all_types")));
        let stream = statements(STREAM_SQL);
        assert!(stream.last().unwrap().contains(END_MARKER));
        assert!(stream.iter().all(|s| !s.contains(";\n")));
    }

    #[test]
    fn normalisation_replaces_names_and_run_fields_only() {
        let n = Normalizer {
            prefix: "gold_ab12".into(),
            database: "gdb_cd34".into(),
        };
        let d = Decoded {
            topic: "gold_ab12.gdb_cd34.users".into(),
            key_schema: None,
            value_schema: None,
            key: Value::Null,
            value: json!({"ts_ms": 5, "ts_us": null, "source": {"name": "gold_ab12", "db": "gdb_cd34",
                "pos": 4, "row": 1, "thread": null, "snapshot": "last"}}),
            headers: vec![
                (RUN_ID_HEADER.into(), Some("uuid".into())),
                ("x".into(), Some("gold_ab12".into())),
            ],
        };
        let g = n.golden(&[d], &SchemaSet::default()).unwrap();
        let r = &g.topics["PREFIX.golden.users"][0];
        assert_eq!(
            r.value,
            json!({"ts_ms": NORMALIZED, "ts_us": null, "source": {"name": "PREFIX", "db": "golden",
                "pos": NORMALIZED, "row": 1, "thread": null, "snapshot": "last"}})
        );
        assert_eq!(r.headers[0].1.as_deref(), Some(NORMALIZED));
        assert_eq!(r.headers[1].1.as_deref(), Some("PREFIX"));
    }

    #[test]
    fn only_a_null_for_debeziums_column_default_is_allowed() {
        // A value schema with `before`/`after` blocks whose columns have
        // defaults: an int, a precise decimal (bytes), a double.
        let block = json!({"type": "record", "name": "Value", "fields": [
            {"name": "n", "type": ["int", "null"], "default": 42},
            {"name": "d", "type": [{"type": "bytes", "logicalType": "decimal"}, "null"],
             "default": "\u{0}\u{96}"},
            {"name": "f", "type": ["double", "null"], "default": 1.5},
            {"name": "plain", "type": ["null", "int"], "default": null}]});
        let schema = json!({"type": "record", "name": "Envelope", "fields": [
            {"name": "before", "type": ["null", block], "default": null},
            {"name": "after", "type": ["null", "Value"], "default": null}]});
        let mut e = Golden::default();
        e.schemas.insert("t-value".into(), vec![schema.to_string()]);
        let rec = |after: Value| GoldenRecord {
            key_schema: None,
            value_schema: Some(1),
            key: Value::Null,
            value: json!({"before": null, "after": after}),
            headers: vec![],
        };
        e.topics.insert(
            "t".into(),
            vec![rec(json!({"n": 42, "d": "0x0096", "f": "1.5", "plain": 7}))],
        );
        let mut a = e.clone();
        a.topics.get_mut("t").unwrap()[0] =
            rec(json!({"n": null, "d": null, "f": null, "plain": 7}));
        let c = compare(&e, &a);
        assert!(c.differences.is_empty(), "{:?}", c.differences);
        assert_eq!(c.allowed.len(), 3);
        assert!(c.allowed[0].contains(NULL_KEPT_WHERE_DEBEZIUM_WRITES_THE_DEFAULT.name));

        // Not allowed: a null where Debezium's value is not the default, a
        // null in a column without a default, a non-null value differing.
        e.topics.get_mut("t").unwrap()[0] =
            rec(json!({"n": 41, "d": "0x0096", "f": "1.5", "plain": 7}));
        a.topics.get_mut("t").unwrap()[0] =
            rec(json!({"n": null, "d": "0x0097", "f": null, "plain": null}));
        let c = compare(&e, &a);
        assert_eq!(
            c.differences,
            vec![
                "topic t record 0 .value.after.d: \"0x0097\" expected \"0x0096\"".to_owned(),
                "topic t record 0 .value.after.n: null expected 41".to_owned(),
                "topic t record 0 .value.after.plain: null expected 7".to_owned(),
            ]
        );
        assert_eq!(c.allowed.len(), 1);
    }

    #[test]
    fn a_flat_rows_null_for_the_column_default_is_allowed() {
        // `ExtractNewRecordState`'s value schema: the row record, optional
        // (`["null", record]`) without added fields.
        let record = json!({"type": "record", "name": "Value", "fields": [
            {"name": "n", "type": ["int", "null"], "default": 42},
            {"name": "plain", "type": ["null", "int"], "default": null}]});
        let mut e = Golden::default();
        e.schemas
            .insert("t-value".into(), vec![json!(["null", record]).to_string()]);
        let rec = |value: Value| GoldenRecord {
            key_schema: None,
            value_schema: Some(1),
            key: Value::Null,
            value,
            headers: vec![],
        };
        e.topics
            .insert("t".into(), vec![rec(json!({"n": 42, "plain": 7}))]);
        let mut a = e.clone();
        a.topics.get_mut("t").unwrap()[0] = rec(json!({"n": null, "plain": 7}));
        let c = compare(&e, &a);
        assert!(c.differences.is_empty(), "{:?}", c.differences);
        assert_eq!(c.allowed.len(), 1);
        assert!(c.allowed[0].contains(".value.n: null"), "{:?}", c.allowed);

        a.topics.get_mut("t").unwrap()[0] = rec(json!({"n": 42, "plain": null}));
        assert_eq!(
            differences(&e, &a),
            vec!["topic t record 0 .value.plain: null expected 7".to_owned()]
        );
    }

    #[test]
    fn differences_name_topic_record_and_path() {
        let mut e = Golden::default();
        let rec = |v: Value| GoldenRecord {
            key_schema: Some(1),
            value_schema: Some(1),
            key: json!({"id": 1}),
            value: v,
            headers: vec![],
        };
        e.topics
            .insert("t".into(), vec![rec(json!({"a": {"b": 1}}))]);
        let mut a = e.clone();
        a.topics.get_mut("t").unwrap()[0] = rec(json!({"a": {"b": 2}}));
        assert_eq!(
            differences(&e, &a),
            vec!["topic t record 0 .value.a.b: 2 expected 1".to_owned()]
        );
        assert!(differences(&e, &e).is_empty());
        let twice = vec![
            "topic t record 0 .value.a: 2 expected 1".to_owned(),
            "topic t record 3 .value.a: 5 expected 1".to_owned(),
            "topic t: 1 records, expected 2".to_owned(),
        ];
        assert_eq!(
            summarize(&twice),
            vec![
                "[2 records like] topic t record 0 .value.a: 2 expected 1".to_owned(),
                "topic t: 1 records, expected 2".to_owned(),
            ]
        );
    }
}
