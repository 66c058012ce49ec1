//! `cdc verify`: is every captured table equal to its topic?
//!
//! The answer to "how do I know the topic is complete?". For each captured
//! table (the connector's own settings: `table.include.list` and friends,
//! `topic.prefix`, Kafka, registry), it reads the table by primary-key chunks
//! and the topic `<prefix>.<db>.<table>` to its end, folds the topic into its
//! compacted view by key (the last record per key wins; a delete or a
//! tombstone removes the key), and reports keys that are **missing** (a row in
//! the table, no row in the topic's view), **extra** (a row in the topic's
//! view, none in the table) and **different** (both, with other column
//! values), with a few examples each. See [`Report::exit_code`] for the codes.
//!
//! # Comparing a moving table with a moving topic
//!
//! Tables and topics both change while verification runs, so the two sides are
//! compared as of ONE binlog position P, the *verification point*:
//!
//! 1. **Table image at P.** Under `FLUSH TABLES WITH READ LOCK` (held for
//!    milliseconds, as the connector's own snapshot does) a `START TRANSACTION
//!    WITH CONSISTENT SNAPSHOT` is opened and P (file, position, GTID set) is
//!    read; the lock is released and every table is read inside that
//!    transaction. The transaction sees exactly the transactions committed
//!    before P. (Without the RELOAD privilege, MariaDB's
//!    `binlog_snapshot_file`/`binlog_snapshot_position` status, which the
//!    server keeps consistent with the snapshot, gives P without any lock; on
//!    MySQL there is no lock-free way and verification refuses.)
//! 2. **The topic has everything before P.** The connector stores a position
//!    only after Kafka acknowledged every record before it (the crate's
//!    invariant 1), so once its stored offset has reached P (by GTID set when
//!    both sides have one, else by file and position), every record of every
//!    transaction before P is in the topic. Verification waits for that (up
//!    to `--wait`, with a line naming both positions) and then reads each
//!    topic to its end.
//! 3. **The topic's view at P.** Every record's `source` block says where it
//!    comes from: a streamed record belongs to the transaction starting at
//!    `source.file`/`source.pos` (with `source.gtid`), a snapshot record to
//!    the state at its snapshot's position. A streamed record is *before P*
//!    when its GTID is in P's GTID set (or, without GTIDs, when its
//!    transaction starts before P: P is a transaction boundary, so a
//!    transaction starting before it also commits before it); a snapshot
//!    record when its position is at or before P. Records after P are
//!    ignored, and a key is folded from its records before P only, in topic
//!    order (the connector writes one key's changes in binlog order to one
//!    partition). The result is the topic's view at P, compared with the
//!    table image at P: writes during the run change neither side. A
//!    partition is read to its end or to its first record after P, whichever
//!    comes first (while tables change, a topic has no end to read to).
//!
//! Compaction can remove a key's records before P once a later record of the
//! same key exists. It removes a key's records oldest first, so if any record
//! before P survives, the latest one does, and the view is right. A key whose
//! only records read are after P (its own records, or a lone tombstone) while
//! the table has it at P is not decidable: it is reported as
//! **undetermined** (changed during verification; run again), never as a
//! difference. Limit: reading stops at a partition's first record after P,
//! so a key whose records before P were all compacted away and whose later
//! records come after that first one shows as missing; on a compacted topic
//! with writes during the run, re-run before acting on a missing key.
//!
//! # Comparing values
//!
//! Apples to apples: each table row is read the way the snapshot reads it
//! ([`crate::rows::row_from_snapshot`]), encoded by the connector's own codec
//! ([`debezium_avro::TableCodec`], same converter settings) into the key and
//! envelope datums the connector would write, and both those datums and the
//! topic's records are decoded with the same Avro reader schema (the table's
//! current one; older records are resolved to it, so a column added later
//! takes its default, as a consumer with the latest schema sees it). Keys and
//! `after` images are then compared as canonical text (JSON, fields in schema
//! order). One Debezium quirk is kept: a TIMESTAMP prints its fraction
//! differently in snapshot (`op=r`) and streamed records, so a table row is
//! rendered the way the record it is compared with was written.
//!
//! # Limits
//!
//! - Memory: the topic's view of one table is held at a time (key and `after`
//!   text per key, roughly the row's JSON size).
//! - File and position compare only on the server the connector reads; after
//!   a failover, GTIDs are needed (MySQL `gtid_mode=ON`, MariaDB always).
//! - Tables without a primary key (and without `message.key.columns`) have
//!   null record keys and are skipped. A table keyed by
//!   `message.key.columns` is compared by that key, which must then be
//!   unique: rows sharing it share one record, and show as different.
//! - A topic with several partitions is read whole; a TRUNCATE record (only
//!   with `skipped.operations` not containing `t`) empties the view built so
//!   far.
//! - Without GTIDs, a connector idle since a binlog rotation stores the new
//!   file's start, before P: verification waits for the next commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::Schema;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use pipeline::kafka::KafkaArgs;
use pipeline::registry::{frame_schema_id, RegistryClient, RegistryError};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::{Config, OffsetStorage};
use crate::gtid::MySqlGtidSet;
use crate::offsets::{OffsetError, OffsetStore, SourceOffset};
use crate::preflight::{Flavor, ServerInfo};
use crate::routing::route_all;
use crate::rows::DecodeError;
use crate::schema::{list_tables, load_table_schema, SchemaError};
use crate::snapshot::{current_position, SnapshotError};
use debezium_avro::{Cell, EnvelopeError, Op, SnapshotMarker, SourceInfo, TableCodec, TableSchema};

/// Exit code: every captured table equals its topic.
pub const EXIT_EQUAL: u8 = 0;
/// Exit code: at least one key is missing, extra or different.
pub const EXIT_DIFFERENT: u8 = 1;
/// Exit code: verification could not run (settings, connections, the
/// connector too far behind).
pub const EXIT_ERROR: u8 = 2;
/// Exit code: no difference, but some keys changed during verification in a
/// way that cannot be decided (see the module docs); run again.
pub const EXIT_UNDETERMINED: u8 = 3;

/// How verification runs (the connector settings come from [`Config`]).
#[derive(Debug, Clone)]
pub struct Options {
    /// Examples listed per kind of finding and table.
    pub examples: usize,
    /// How long to wait for the connector's stored offset to reach the
    /// verification point.
    pub wait: Duration,
    /// Rows per primary-key chunk.
    pub chunk_rows: usize,
    /// Time between two progress lines.
    pub progress_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            examples: 5,
            wait: Duration::from_secs(120),
            chunk_rows: 10_000,
            progress_every: Duration::from_secs(5),
        }
    }
}

/// Why verification could not run. Every one maps to [`EXIT_ERROR`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot query the source database: {0}")]
    Query(#[from] mysql_async::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::CertificateRefused),
    #[error(transparent)]
    Preflight(crate::preflight::PreflightError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Position(#[from] SnapshotError),
    #[error("cannot take a consistent snapshot with its binlog position: {0}; grant RELOAD (FLUSH TABLES WITH READ LOCK) to the connector's account")]
    Lock(mysql_async::Error),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error("the connector has not reached the verification point {point} within {waited:?}: its stored offset is {stored}; is it running and streaming?")]
    Behind {
        point: String,
        stored: String,
        waited: Duration,
    },
    /// The topics hold no envelopes to compare (`transforms`).
    #[error(
        "transforms ({0}): verify reads change-event envelopes (op, source position, after), \
         and ExtractNewRecordState writes flat rows without them; verify runs only against a \
         connector without transforms"
    )]
    Transformed(String),
    /// `RegexRouter` merges tables into one topic.
    #[error(
        "transforms: RegexRouter sends {tables} to one topic, {topic}; verify compares each \
         table with a topic of its own"
    )]
    SharedTopic { topic: String, tables: String },
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("topic {topic} offset {offset}: {reason}")]
    Record {
        topic: String,
        offset: String,
        reason: String,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the table codec's own schema does not parse: {0}")]
    CodecSchema(String),
}

/// The binlog position both sides are compared at (see the module docs).
#[derive(Debug, Clone)]
pub struct Point {
    pub file: String,
    pub pos: u64,
    /// The GTID set of the transactions before the point, when the server has one.
    pub gtids: PointGtids,
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        match &self.gtids {
            PointGtids::None => Ok(()),
            PointGtids::MariaDb(map) => {
                let text: Vec<String> = map.iter().map(|(d, s)| format!("{d}-*-{s}")).collect();
                write!(f, " (gtids {})", text.join(","))
            }
            PointGtids::MySql(set) => write!(f, " (gtids {set})"),
        }
    }
}

/// GTIDs before the point, in a form that answers "is this GTID in it?".
#[derive(Debug, Clone, Default)]
pub enum PointGtids {
    #[default]
    None,
    /// domain -> highest sequence number (MariaDB numbers a domain's
    /// transactions in binlog order, whatever server wrote them).
    MariaDb(BTreeMap<u32, u64>),
    MySql(MySqlGtidSet),
}

impl PointGtids {
    pub fn parse(text: Option<&str>, flavor: Flavor) -> Self {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Self::None;
        };
        match flavor {
            Flavor::MariaDb => {
                let mut map = BTreeMap::new();
                for part in text.split(',') {
                    if let Some((domain, _, seq)) = mariadb_gtid(part) {
                        let best = map.entry(domain).or_insert(seq);
                        *best = (*best).max(seq);
                    }
                }
                if map.is_empty() {
                    Self::None
                } else {
                    Self::MariaDb(map)
                }
            }
            Flavor::MySql => match MySqlGtidSet::parse(text) {
                Ok(set) if !set.is_empty() => Self::MySql(set),
                _ => Self::None,
            },
        }
    }

    /// Whether `gtid` is in the set; `None` when that cannot be told.
    fn contains(&self, gtid: &str) -> Option<bool> {
        match self {
            Self::None => None,
            Self::MariaDb(map) => {
                let (domain, _, seq) = mariadb_gtid(gtid)?;
                Some(map.get(&domain).is_some_and(|&last| seq <= last))
            }
            Self::MySql(set) => {
                let one = MySqlGtidSet::parse(gtid).ok()?;
                Some(one.is_subset_of(set))
            }
        }
    }

    /// Whether every GTID here is in `other` (of the same flavour);
    /// `None` when the two cannot be compared.
    fn is_within(&self, other: &PointGtids) -> Option<bool> {
        match (self, other) {
            (Self::MariaDb(mine), Self::MariaDb(theirs)) => Some(
                mine.iter()
                    .all(|(d, seq)| theirs.get(d).is_some_and(|s| s >= seq)),
            ),
            (Self::MySql(mine), Self::MySql(theirs)) => Some(mine.is_subset_of(theirs)),
            _ => None,
        }
    }
}

fn mariadb_gtid(text: &str) -> Option<(u32, u32, u64)> {
    let mut it = text.trim().split('-');
    let domain = it.next()?.parse().ok()?;
    let server = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    it.next().is_none().then_some((domain, server, seq))
}

/// Orders binlog positions: files by their numeric suffix (`.000010` after
/// `.000009`, whatever the width), then by offset.
fn compare_position(a_file: &str, a_pos: u64, b_file: &str, b_pos: u64) -> std::cmp::Ordering {
    fn split(name: &str) -> (&str, Option<u64>) {
        match name.rsplit_once('.') {
            Some((base, n)) => (base, n.parse().ok()),
            None => (name, None),
        }
    }
    let (a_base, a_n) = split(a_file);
    let (b_base, b_n) = split(b_file);
    let files = match (a_n, b_n) {
        (Some(a), Some(b)) if a_base == b_base => a.cmp(&b),
        _ => a_file.cmp(b_file),
    };
    files.then(a_pos.cmp(&b_pos))
}

/// Where a record says it comes from (its `source` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSource {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
    /// Written by a snapshot (`source.snapshot` other than `false`).
    pub snapshot: bool,
}

impl Point {
    /// Whether the record belongs to the state at this point (see the module docs).
    pub fn includes(&self, source: &RecordSource) -> bool {
        if !source.snapshot {
            if let Some(inside) = source.gtid.as_deref().and_then(|g| self.gtids.contains(g)) {
                return inside;
            }
        }
        let order = compare_position(&source.file, source.pos, &self.file, self.pos);
        match source.snapshot {
            true => order.is_le(),
            false => order.is_lt(),
        }
    }

    /// Whether the connector's stored offset shows every record before this
    /// point acknowledged by Kafka.
    pub fn reached_by(&self, stored: &SourceOffset, flavor: Flavor) -> bool {
        // A stored `snapshot: true` is a snapshot in progress: its records are not all written.
        if stored.snapshot == Some(true) {
            return false;
        }
        let theirs = PointGtids::parse(stored.gtids.as_deref(), flavor);
        if let Some(within) = self.gtids.is_within(&theirs) {
            return within;
        }
        compare_position(&stored.file, stored.pos, &self.file, self.pos).is_ge()
    }
}

/// A key's image in the topic's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// Deleted (a delete record or a tombstone).
    Deleted,
    /// The `after` image as canonical text; `snapshot`: from an `op=r` record.
    Row { value: String, snapshot: bool },
}

/// One record's meaning for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `op` c, u or r: the key now has this row.
    Row { value: String, snapshot: bool },
    /// `op` d.
    Deleted,
    /// A null value: deletes the key, at the position of the record before it.
    Tombstone,
}

#[derive(Debug, Default)]
struct KeyState {
    /// Folded from the records before the point; `None`: no such record.
    at_point: Option<Image>,
    /// The key has a record after the point.
    changed_after: bool,
    /// Whether the key's last record was after the point (a tombstone
    /// belongs with the delete it follows).
    last_after: Option<bool>,
}

/// A topic folded into its compacted view as of the point (see the module docs).
#[derive(Debug, Default)]
pub struct TopicView {
    keys: HashMap<String, KeyState>,
}

impl TopicView {
    /// Folds one keyed record, in topic order; `before_point`: the record
    /// belongs to the state at the point (ignored for tombstones).
    pub fn apply(&mut self, key: String, change: Change, before_point: bool) {
        let state = self.keys.entry(key).or_default();
        let before_point = match change {
            // A tombstone follows its delete; alone (the delete compacted
            // away), its position is unknown: treat it as after the point.
            Change::Tombstone => state.last_after == Some(false),
            _ => before_point,
        };
        state.last_after = Some(!before_point);
        if !before_point {
            state.changed_after = true;
            return;
        }
        state.at_point = Some(match change {
            Change::Row { value, snapshot } => Image::Row { value, snapshot },
            Change::Deleted | Change::Tombstone => Image::Deleted,
        });
    }

    /// A TRUNCATE record before the point: every key so far is deleted.
    pub fn truncate(&mut self) {
        for state in self.keys.values_mut() {
            if state.at_point.is_some() {
                state.at_point = Some(Image::Deleted);
            }
        }
    }

    /// Compares the table's row with `key` against the view. `table_value`
    /// renders the row as the connector writes it in a snapshot record
    /// (`true`) or a streamed one (`false`).
    pub fn check_row<E>(
        &mut self,
        key: &str,
        table_value: impl FnOnce(bool) -> Result<String, E>,
        report: &mut TableReport,
        examples: usize,
    ) -> Result<(), E> {
        report.rows += 1;
        let state = self.keys.remove(key).unwrap_or_default();
        match state.at_point {
            Some(Image::Row { value, snapshot }) => {
                let table = table_value(snapshot)?;
                if table != value {
                    report.different.add(examples, || {
                        format!("{key}: {}", value_difference(&table, &value))
                    });
                }
            }
            Some(Image::Deleted) => report.missing.add(examples, || {
                format!("{key}: in the table, deleted in the topic")
            }),
            None if state.changed_after => report.undetermined.add(examples, || {
                format!(
                    "{key}: in the table, only records after the verification point in the topic"
                )
            }),
            None => report.missing.add(examples, || {
                format!("{key}: in the table, no record in the topic")
            }),
        }
        Ok(())
    }

    /// After the whole table: keys the topic has and the table has not.
    pub fn finish(self, report: &mut TableReport, examples: usize) {
        let mut extra: Vec<(String, String)> = self
            .keys
            .into_iter()
            .filter_map(|(key, state)| match state.at_point {
                Some(Image::Row { value, .. }) => Some((key, value)),
                _ => None,
            })
            .collect();
        extra.sort();
        for (key, value) in extra {
            report.extra.add(examples, || {
                format!("{key}: in the topic, not in the table; topic row {value}")
            });
        }
    }
}

/// Names the columns that differ between two canonical `after` texts.
fn value_difference(table: &str, topic: &str) -> String {
    let parse = |s: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s);
    match (parse(table), parse(topic)) {
        (Ok(t), Ok(k)) => {
            let mut names: Vec<&String> = t.keys().chain(k.keys()).collect();
            names.sort();
            names.dedup();
            let shown = |v: Option<&serde_json::Value>| {
                v.map_or_else(|| "(no such column)".to_owned(), |v| v.to_string())
            };
            names
                .into_iter()
                .filter(|n| t.get(*n) != k.get(*n))
                .map(|n| format!("{n}: table {} topic {}", shown(t.get(n)), shown(k.get(n))))
                .collect::<Vec<_>>()
                .join("; ")
        }
        _ => format!("table {table} topic {topic}"),
    }
}

/// A count with the first few examples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Findings {
    fn add(&mut self, examples: usize, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < examples {
            self.examples.push(example());
        }
    }
}

/// What verification found for one table.
#[derive(Debug, Clone, Default)]
pub struct TableReport {
    /// `db.table`.
    pub table: String,
    pub topic: String,
    /// Rows read from the table.
    pub rows: u64,
    /// Records read from the topic (all of them, before and after the point).
    pub records: u64,
    pub missing: Findings,
    pub extra: Findings,
    pub different: Findings,
    pub undetermined: Findings,
    /// Why the table was not compared, if it was not.
    pub skipped: Option<String>,
}

impl TableReport {
    pub fn is_equal(&self) -> bool {
        self.missing.count == 0 && self.extra.count == 0 && self.different.count == 0
    }
}

/// What verification found.
#[derive(Debug, Clone)]
pub struct Report {
    pub point: Point,
    pub tables: Vec<TableReport>,
}

impl Report {
    /// [`EXIT_EQUAL`] only when every key of every compared table is equal;
    /// [`EXIT_DIFFERENT`] when any key is missing, extra or different;
    /// [`EXIT_UNDETERMINED`] when nothing differs but some keys could not be
    /// decided. (A skipped table does not change the code; the report names it.)
    pub fn exit_code(&self) -> u8 {
        if self.tables.iter().any(|t| !t.is_equal()) {
            EXIT_DIFFERENT
        } else if self.tables.iter().any(|t| t.undetermined.count > 0) {
            EXIT_UNDETERMINED
        } else {
            EXIT_EQUAL
        }
    }

    /// The report as text, one block per table, a verdict line last.
    pub fn render(&self) -> String {
        let mut out = format!("verification point: {}\n", self.point);
        for t in &self.tables {
            let _ = write!(out, "{} -> {}: ", t.table, t.topic);
            if let Some(why) = &t.skipped {
                let _ = writeln!(out, "skipped ({why})");
                continue;
            }
            let _ = write!(out, "{} rows, {} records: ", t.rows, t.records);
            let verdict = if t.is_equal() && t.undetermined.count == 0 {
                "equal".to_owned()
            } else {
                format!(
                    "{} missing, {} extra, {} different, {} undetermined",
                    t.missing.count, t.extra.count, t.different.count, t.undetermined.count
                )
            };
            let _ = writeln!(out, "{verdict}");
            for (kind, findings) in [
                ("missing", &t.missing),
                ("extra", &t.extra),
                ("different", &t.different),
                ("undetermined", &t.undetermined),
            ] {
                for example in &findings.examples {
                    let _ = writeln!(out, "  {kind} {example}");
                }
                let more = findings
                    .count
                    .saturating_sub(findings.examples.len() as u64);
                if more > 0 {
                    let _ = writeln!(out, "  ... and {more} more {kind}");
                }
            }
        }
        let verdict = match self.exit_code() {
            EXIT_EQUAL => "EQUAL: every captured table matches its topic",
            EXIT_DIFFERENT => "DIFFERENT: the topics do not match the tables",
            _ => {
                "UNDETERMINED: no difference, but some keys changed during verification; run again"
            }
        };
        let _ = writeln!(out, "result: {verdict} (exit {})", self.exit_code());
        out
    }
}

/// Renders a decoded Avro value as canonical JSON text: records as objects
/// in schema order, unions as their branch's value, bytes as `0x` hex,
/// decimals as their unscaled integer, non-finite floats as strings.
pub fn canonical(value: &Value, out: &mut String) {
    let quoted = |s: &str, out: &mut String| {
        out.push_str(&serde_json::Value::String(s.to_owned()).to_string());
    };
    let hex = |b: &[u8], out: &mut String| {
        out.push_str("\"0x");
        for byte in b {
            let _ = write!(out, "{byte:02x}");
        }
        out.push('"');
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        Value::Double(d) if d.is_finite() => {
            let _ = write!(out, "{d:?}");
        }
        Value::Float(f) => quoted(&f.to_string(), out),
        Value::Double(d) => quoted(&d.to_string(), out),
        Value::Bytes(b) | Value::Fixed(_, b) => hex(b, out),
        Value::String(s) | Value::Enum(_, s) => quoted(s, out),
        Value::Union(_, inner) => canonical(inner, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Map(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(k, out);
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Record(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(k, out);
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Decimal(d) => match <Vec<u8>>::try_from(d) {
            Ok(bytes) if !bytes.is_empty() && bytes.len() <= 16 => {
                let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
                let mut be = [fill; 16];
                be[16 - bytes.len()..].copy_from_slice(&bytes);
                let _ = write!(out, "\"unscaled {}\"", i128::from_be_bytes(be));
            }
            Ok(bytes) => hex(&bytes, out),
            Err(e) => quoted(&format!("undecodable decimal: {e}"), out),
        },
        other => quoted(&format!("{other:?}"), out),
    }
}

fn canonical_text(value: &Value) -> String {
    let mut out = String::with_capacity(64);
    canonical(value, &mut out);
    out
}

fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let value = match value {
        Value::Union(_, inner) => inner,
        other => other,
    };
    match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn text_of(value: Option<&Value>) -> Option<String> {
    match unwrap_union(value?) {
        Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
        _ => None,
    }
}

fn long_of(value: Option<&Value>) -> Option<i64> {
    match unwrap_union(value?) {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// What one envelope says: its op, source and `after` text.
#[derive(Debug)]
struct Envelope {
    op: String,
    source: RecordSource,
    after: Option<String>,
}

fn read_envelope(value: &Value) -> Result<Envelope, String> {
    let op = text_of(field(value, "op")).ok_or("no op field")?;
    let source = field(value, "source").ok_or("no source field")?;
    let snapshot = text_of(field(source, "snapshot")).is_some_and(|s| s != "false");
    let source = RecordSource {
        file: text_of(field(source, "file")).ok_or("no source.file")?,
        pos: long_of(field(source, "pos"))
            .and_then(|p| u64::try_from(p).ok())
            .ok_or("no source.pos")?,
        gtid: text_of(field(source, "gtid")),
        snapshot,
    };
    let after = match field(value, "after").map(unwrap_union) {
        None | Some(Value::Null) => None,
        Some(row) => Some(canonical_text(row)),
    };
    Ok(Envelope { op, source, after })
}

/// Decodes framed datums: writer schemas by id from the registry, resolved
/// to the table codec's current schemas when they differ.
struct Decoder {
    registry: RegistryClient,
    writers: HashMap<u32, Arc<Schema>>,
    /// Registered texts equal to the reader's: no resolution needed.
    same_as_reader: HashSet<u32>,
}

impl Decoder {
    async fn writer(&mut self, id: u32) -> Result<(Arc<Schema>, Arc<str>), String> {
        let text = self.registry.schema(id).await.map_err(|e| e.to_string())?;
        if let Some(schema) = self.writers.get(&id) {
            return Ok((schema.clone(), text));
        }
        let schema = Arc::new(
            Schema::parse_str(&text).map_err(|e| format!("schema {id} does not parse: {e}"))?,
        );
        self.writers.insert(id, schema.clone());
        Ok((schema, text))
    }

    /// Decodes a Confluent-framed payload, resolved to `reader`.
    async fn decode(
        &mut self,
        framed: &[u8],
        reader: &Schema,
        reader_text: &str,
    ) -> Result<Value, String> {
        let id = frame_schema_id(framed).ok_or("not Confluent-framed (no magic byte)")?;
        let (writer, text) = self.writer(id).await?;
        if *text == *reader_text {
            self.same_as_reader.insert(id);
        }
        if self.same_as_reader.contains(&id) {
            return decode_datum(&writer, None, &framed[5..]);
        }
        // Resolution fails on names that differ (another topic prefix names
        // the namespaces): then the writer's own fields are compared.
        decode_datum(&writer, Some(reader), &framed[5..])
            .or_else(|_| decode_datum(&writer, None, &framed[5..]))
    }
}

fn decode_datum(writer: &Schema, reader: Option<&Schema>, datum: &[u8]) -> Result<Value, String> {
    let mut bytes = datum;
    GenericDatumReader::builder(writer)
        .maybe_reader_schema(reader)
        .build()
        .and_then(|r| r.read_value(&mut bytes))
        .map_err(|e| format!("does not decode: {e}"))
}

/// One table's codec and the Avro schemas of what it writes.
struct TableSide {
    codec: TableCodec,
    /// The table's columns: how a table row reads in a streamed record.
    schema: TableSchema,
    key_schema: Schema,
    key_text: String,
    value_schema: Schema,
    value_text: String,
}

impl TableSide {
    fn new(codec: TableCodec, schema: &TableSchema) -> Result<Option<Self>, VerifyError> {
        let Some(key_text) = codec.key_schema_json.clone() else {
            return Ok(None);
        };
        let parse = |text: &str| {
            Schema::parse_str(text).map_err(|e| VerifyError::CodecSchema(e.to_string()))
        };
        Ok(Some(Self {
            key_schema: parse(&key_text)?,
            value_schema: parse(&codec.value_schema_json)?,
            value_text: codec.value_schema_json.clone(),
            key_text,
            codec,
            schema: schema.clone(),
        }))
    }

    fn key(&self, cells: &[Cell]) -> Result<String, VerifyError> {
        let mut buf = Vec::with_capacity(16);
        let _encoded = self.codec.encode_key(cells, &mut buf)?;
        decode_datum(&self.key_schema, None, &buf)
            .map(|v| canonical_text(&v))
            .map_err(VerifyError::CodecSchema)
    }

    /// The `after` text the connector writes for `cells`, in a snapshot
    /// record or a streamed one.
    fn after(&self, cells: &[Cell], snapshot: bool) -> Result<String, VerifyError> {
        let streamed;
        let cells = match snapshot {
            true => cells,
            false => {
                streamed = crate::rows::as_streamed(cells, &self.schema);
                &streamed
            }
        };
        let source = SourceInfo {
            server_id: 0,
            file: String::new(),
            pos: 0,
            row: 0,
            gtid: None,
            ts_ms: 0,
            snapshot: SnapshotMarker::True,
            thread: None,
            query: None,
        };
        let mut buf = Vec::with_capacity(256);
        let _encoded =
            self.codec
                .encode_envelope(None, Some(cells), &source, Op::Read, 0, &mut buf)?;
        let value =
            decode_datum(&self.value_schema, None, &buf).map_err(VerifyError::CodecSchema)?;
        Ok(field(&value, "after")
            .map(unwrap_union)
            .map(canonical_text)
            .unwrap_or_default())
    }
}

/// Logs progress at most every `every`.
struct Progress {
    every: Duration,
    last: Instant,
}

impl Progress {
    fn due(&mut self) -> bool {
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            return true;
        }
        false
    }
}

/// Runs verification with the connector's settings.
pub async fn verify(config: &Config, options: &Options) -> Result<Report, VerifyError> {
    let cfg = &config.connector;
    if cfg.unwrap.is_some() {
        let names = cfg.properties.0.get("transforms").cloned();
        return Err(VerifyError::Transformed(names.unwrap_or_default()));
    }
    let opts = match cfg.database.ssl_mode {
        crate::config::SslMode::Disabled => cfg.database.opts(),
        _ => match Conn::new(cfg.database.opts()).await {
            Ok(conn) => {
                conn.disconnect().await.ok();
                cfg.database.opts()
            }
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if cfg.database.ssl_mode == crate::config::SslMode::Preferred => {
                cfg.database.plain_opts()
            }
            Err(e) => {
                let db = &cfg.database;
                return Err(
                    match crate::tls::CertificateRefused::classify(e, db.ssl_mode, &db.hostname) {
                        Ok(refused) => refused.into(),
                        Err(e) => e.into(),
                    },
                );
            }
        },
    };
    let mut conn = Conn::new(opts).await?;
    let info = crate::preflight::server_info(&mut conn)
        .await
        .map_err(|e| match e {
            crate::preflight::PreflightError::Query(q) => VerifyError::Query(q),
            other => VerifyError::Preflight(other),
        })?;
    let mut tables: Vec<(String, String)> = list_tables(&mut conn)
        .await?
        .into_iter()
        .filter(|(db, t)| cfg.filter.includes(db, t))
        .collect();
    tables.sort();
    // `RegexRouter` transforms: each table's topic as the connector names it.
    let topic_of = |db: &str, t: &str| {
        let topic = format!("{}.{db}.{t}", cfg.topic_prefix);
        route_all(&cfg.routes, &topic).into_owned()
    };
    let mut by_topic: HashMap<String, Vec<String>> = HashMap::new();
    for (db, t) in &tables {
        by_topic
            .entry(topic_of(db, t))
            .or_default()
            .push(format!("{db}.{t}"));
    }
    if let Some((topic, shared)) = by_topic.into_iter().find(|(_, tables)| tables.len() > 1) {
        return Err(VerifyError::SharedTopic {
            topic,
            tables: shared.join(", "),
        });
    }

    let point = consistent_point(&mut conn, &info).await?;
    tracing::info!(point = %point, tables = tables.len(), "verify: table image taken at the verification point");
    wait_for_connector(config, &point, info.flavor, options).await?;

    let converter = crate::converter_config(cfg);
    let registry = RegistryClient::new(&config.registry)?;
    let mut decoder = Decoder {
        registry,
        writers: HashMap::new(),
        same_as_reader: HashSet::new(),
    };
    let mut reports = Vec::with_capacity(tables.len());
    for (db, t) in &tables {
        let mut report = TableReport {
            table: format!("{db}.{t}"),
            topic: topic_of(db, t),
            ..TableReport::default()
        };
        let Some(schema) = load_table_schema(&mut conn, db, t).await? else {
            report.skipped = Some("dropped during verification".into());
            reports.push(report);
            continue;
        };
        let mut codec = TableCodec::new(&schema, &converter)?;
        codec.topic = route_all(&cfg.routes, &codec.topic).into_owned();
        report.topic = codec.topic.clone();
        let Some(side) = TableSide::new(codec, &schema)? else {
            report.skipped = Some(
                "no primary key and no message.key.columns: its records have null keys".into(),
            );
            reports.push(report);
            continue;
        };
        let view = read_topic(
            &config.kafka,
            &side,
            &mut decoder,
            &point,
            &mut report,
            options,
        )
        .await?;
        read_table(&mut conn, &schema, &side, view, &mut report, options).await?;
        tracing::info!(
            table = %report.table,
            rows = report.rows,
            records = report.records,
            missing = report.missing.count,
            extra = report.extra.count,
            different = report.different.count,
            undetermined = report.undetermined.count,
            "verify: table compared"
        );
        reports.push(report);
    }
    conn.query_drop("COMMIT").await.ok();
    conn.disconnect().await.ok();
    Ok(Report {
        point,
        tables: reports,
    })
}

/// Opens the consistent-snapshot transaction on `conn` and reads the
/// position it corresponds to (see the module docs).
async fn consistent_point(conn: &mut Conn, info: &ServerInfo) -> Result<Point, VerifyError> {
    conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => {
            let read = async {
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await?;
                Ok::<_, VerifyError>(current_position(conn, info).await?)
            }
            .await;
            // Released whatever happened: writes wait while it is held.
            let unlocked = conn.query_drop("UNLOCK TABLES").await;
            let offset = read?;
            unlocked?;
            Ok(Point {
                gtids: PointGtids::parse(offset.gtids.as_deref(), info.flavor),
                file: offset.file,
                pos: offset.pos,
            })
        }
        Err(refused) if info.flavor == Flavor::MariaDb => {
            tracing::info!(error = %refused, "verify: no global read lock; using MariaDB's binlog_snapshot position");
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await?;
            let rows: Vec<(String, String)> =
                conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
            let get = |name: &str| {
                rows.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let file = get("binlog_snapshot_file").filter(|f| !f.is_empty());
            let pos = get("binlog_snapshot_position").and_then(|p| p.parse().ok());
            match (file, pos) {
                (Some(file), Some(pos)) => Ok(Point {
                    file,
                    pos,
                    gtids: PointGtids::None,
                }),
                _ => Err(VerifyError::Lock(refused)),
            }
        }
        Err(refused) => Err(VerifyError::Lock(refused)),
    }
}

/// Waits until the connector's stored offset has reached `point`.
async fn wait_for_connector(
    config: &Config,
    point: &Point,
    flavor: Flavor,
    options: &Options,
) -> Result<(), VerifyError> {
    let cfg = &config.connector;
    let describe = |s: &Option<SourceOffset>| match s {
        None => "absent (has the connector run?)".to_owned(),
        Some(o) if o.snapshot == Some(true) => format!("{o} (snapshot in progress)"),
        Some(o) => format!("{o} gtids {}", o.gtids.as_deref().unwrap_or("-")),
    };
    let deadline = Instant::now() + options.wait;
    let mut progress = Progress {
        every: options.progress_every,
        last: Instant::now(),
    };
    let mut latest: Option<SourceOffset> = None;
    match &cfg.offset_storage {
        OffsetStorage::File { path } => {
            let store = OffsetStore::File { path: path.clone() };
            loop {
                latest = store.load().await?;
                if latest.as_ref().is_some_and(|o| point.reached_by(o, flavor)) {
                    break;
                }
                if Instant::now() >= deadline {
                    break;
                }
                if progress.due() {
                    tracing::info!(point = %point, stored = %describe(&latest), "verify: waiting for the connector to reach the verification point");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        OffsetStorage::Kafka { topic } => {
            // One reader tailing the offsets topic: any stored offset that
            // reached the point will do (they only move forward). Reading to
            // the end first, as the connector does at start, may never end
            // while the connector stores a position every flush interval.
            let key = crate::offsets::connect_key(&cfg.name, &cfg.topic_prefix);
            let consumer: StreamConsumer<EofIsExpected> = config
                .kafka
                .topic_reader(&format!("cdc-verify-{}", uuid::Uuid::new_v4()))
                .create_with_context(EofIsExpected)
                .map_err(|e| VerifyError::Kafka(e.to_string()))?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Beginning)
                .map_err(|e| VerifyError::Kafka(e.to_string()))?;
            consumer
                .assign(&tpl)
                .map_err(|e| VerifyError::Kafka(e.to_string()))?;
            let mut stream = consumer.stream();
            loop {
                if latest.as_ref().is_some_and(|o| point.reached_by(o, flavor)) {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                if progress.due() {
                    tracing::info!(point = %point, stored = %describe(&latest), "verify: waiting for the connector to reach the verification point");
                }
                let wait = (deadline - now).min(options.progress_every);
                let message = match tokio::time::timeout(wait, stream.next()).await {
                    Err(_) | Ok(Some(Err(KafkaError::PartitionEOF(_)))) => continue,
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        return Err(OffsetError::Unavailable(format!("{topic}: {e}")).into())
                    }
                    Ok(Some(Ok(message))) => message,
                };
                if message.key() != Some(key.as_bytes()) {
                    continue;
                }
                latest = match message.payload() {
                    None => None,
                    Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| {
                        OffsetError::Corrupt(format!("{topic} offset {}: {e}", message.offset()))
                    })?),
                };
            }
        }
    }
    match &latest {
        Some(offset) if point.reached_by(offset, flavor) => {
            tracing::info!(stored = %describe(&latest), "verify: the connector has passed the verification point");
            Ok(())
        }
        _ => Err(VerifyError::Behind {
            point: point.to_string(),
            stored: describe(&latest),
            waited: options.wait,
        }),
    }
}

/// The consumer asks for end-of-partition events; librdkafka also reports
/// them as client errors, which are expected here.
struct EofIsExpected;

impl rdkafka::ClientContext for EofIsExpected {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::error!(%error, reason, "kafka client error while verifying");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofIsExpected {}

/// The partitions of `topic`; 0 when it does not exist.
async fn partitions(kafka: &KafkaArgs, topic: &str) -> Result<i32, VerifyError> {
    let consumer: BaseConsumer<EofIsExpected> = kafka
        .topic_reader("cdc-verify-metadata")
        .create_with_context(EofIsExpected)
        .map_err(|e| VerifyError::Kafka(e.to_string()))?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(30))
            .map_err(|e| VerifyError::Kafka(format!("metadata of {topic}: {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32))
    })
    .await
    .map_err(|e| VerifyError::Kafka(e.to_string()))?
}

/// Reads the table's topic to its end into its view at `point`.
async fn read_topic(
    kafka: &KafkaArgs,
    side: &TableSide,
    decoder: &mut Decoder,
    point: &Point,
    report: &mut TableReport,
    options: &Options,
) -> Result<TopicView, VerifyError> {
    let topic = side.codec.topic.as_str();
    let mut view = TopicView::default();
    let count = partitions(kafka, topic).await?;
    if count == 0 {
        tracing::warn!(topic, "verify: the topic does not exist");
        return Ok(view);
    }
    let group = format!("cdc-verify-{}", uuid::Uuid::new_v4());
    let consumer: StreamConsumer<EofIsExpected> = kafka
        .topic_reader(&group)
        .create_with_context(EofIsExpected)
        .map_err(|e| VerifyError::Kafka(e.to_string()))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..count {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| VerifyError::Kafka(e.to_string()))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| VerifyError::Kafka(e.to_string()))?;
    // Partitions read to their end or past the point.
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut progress = Progress {
        every: options.progress_every,
        last: Instant::now(),
    };
    let mut stream = consumer.stream();
    while (at_end.len() as i32) < count {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .map_err(|_| {
                VerifyError::Kafka(format!("{topic}: nothing read for 60 s before its end"))
            })?;
        let message = match next {
            None => break,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                continue;
            }
            // Buffered before the partition was done.
            Some(Ok(message)) if at_end.contains(&message.partition()) => continue,
            Some(Err(e)) => return Err(VerifyError::Kafka(format!("{topic}: {e}"))),
            Some(Ok(message)) => message,
        };
        report.records += 1;
        let bad = |reason: String| VerifyError::Record {
            topic: topic.to_owned(),
            offset: format!("{}/{}", message.partition(), message.offset()),
            reason,
        };
        let key = match message.key() {
            Some(k) => Some(canonical_text(
                &decoder
                    .decode(k, &side.key_schema, &side.key_text)
                    .await
                    .map_err(|e| bad(format!("key {e}")))?,
            )),
            None => None,
        };
        let envelope = match message.payload() {
            None => None,
            Some(v) => Some(read_envelope(
                &decoder
                    .decode(v, &side.value_schema, &side.value_text)
                    .await
                    .map_err(|e| bad(format!("value {e}")))?,
            ))
            .transpose()
            .map_err(|e| bad(e.to_owned()))?,
        };
        // A partition is in binlog order: after its first record past the
        // point, nothing before the point follows (a connector restarted
        // after a crash may replay earlier records there: duplicates of
        // ones already read). While the tables change the topic has no end,
        // so that first record ends the partition.
        if let Some(e) = &envelope {
            if !point.includes(&e.source) {
                at_end.insert(message.partition());
                let mut done = TopicPartitionList::new();
                done.add_partition(topic, message.partition());
                consumer
                    .incremental_unassign(&done)
                    .map_err(|e| VerifyError::Kafka(e.to_string()))?;
            }
        }
        match (key, envelope) {
            (Some(key), None) => view.apply(key, Change::Tombstone, false),
            (Some(key), Some(e)) => {
                let change = match (e.op.as_str(), e.after) {
                    ("d", _) => Change::Deleted,
                    (_, Some(value)) => Change::Row {
                        value,
                        snapshot: e.op == "r",
                    },
                    (op, None) => return Err(bad(format!("op {op} without an after image"))),
                };
                view.apply(key, change, point.includes(&e.source));
            }
            (None, Some(e)) if e.op == "t" => {
                if point.includes(&e.source) {
                    view.truncate();
                }
            }
            (None, _) => return Err(bad("a record without key".into())),
        }
        if progress.due() {
            tracing::info!(
                topic,
                records = report.records,
                keys = view.keys.len(),
                "verify: reading the topic"
            );
        }
    }
    Ok(view)
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// Reads the table in chunks of its record key (the primary key, or the
/// columns `message.key.columns` names) inside the consistent snapshot and
/// compares every row with the view. The key must be unique: rows sharing a
/// `message.key.columns` key share one record in the topic.
async fn read_table(
    conn: &mut Conn,
    schema: &debezium_avro::TableSchema,
    side: &TableSide,
    mut view: TopicView,
    report: &mut TableReport,
    options: &Options,
) -> Result<(), VerifyError> {
    let columns = schema
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    // The record key's columns: the primary key, or `message.key.columns`.
    let key_index = side.codec.key_indices();
    let key_columns: Vec<String> = key_index
        .iter()
        .map(|&i| quote(&schema.columns[i].name))
        .collect();
    let order = key_columns.join(", ");
    let from = format!("{}.{}", quote(&schema.database), quote(&schema.table));
    let first = format!(
        "SELECT {columns} FROM {from} ORDER BY {order} LIMIT {}",
        options.chunk_rows
    );
    let placeholders = vec!["?"; key_columns.len()].join(", ");
    let next = format!(
        "SELECT {columns} FROM {from} WHERE ({order}) > ({placeholders}) ORDER BY {order} LIMIT {}",
        options.chunk_rows
    );
    let mut progress = Progress {
        every: options.progress_every,
        last: Instant::now(),
    };
    let mut last_key: Option<Vec<mysql_async::Value>> = None;
    loop {
        // The binary protocol, as the snapshot reads (FLOAT text differs).
        let rows: Vec<Row> = match &last_key {
            None => conn.exec(first.as_str(), ()).await?,
            Some(key) => {
                conn.exec(next.as_str(), mysql_async::Params::Positional(key.clone()))
                    .await?
            }
        };
        let full = rows.len() == options.chunk_rows;
        for row in rows {
            last_key = Some(
                key_index
                    .iter()
                    .map(|&i| row.as_ref(i).cloned().unwrap_or(mysql_async::Value::NULL))
                    .collect(),
            );
            let cells = crate::rows::row_from_snapshot(row, schema)?;
            let key = side.key(&cells)?;
            view.check_row(
                &key,
                |snapshot| side.after(&cells, snapshot),
                report,
                options.examples,
            )?;
        }
        if progress.due() {
            tracing::info!(table = %report.table, rows = report.rows, "verify: reading the table");
        }
        if !full {
            break;
        }
    }
    view.finish(report, options.examples);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transformed_connector_is_refused_before_any_connection() {
        // Nothing listens on these addresses: the refusal must come first.
        let props = crate::config::Properties(
            [
                ("database.hostname", "127.0.0.1"),
                ("database.port", "1"),
                ("database.user", "cdc"),
                ("database.password", "pw"),
                ("topic.prefix", "p"),
                ("transforms", "unwrap"),
                (
                    "transforms.unwrap.type",
                    "io.debezium.transforms.ExtractNewRecordState",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let config = Config {
            connector: crate::config::ConnectorConfig::from_properties(&props).unwrap(),
            kafka: KafkaArgs::plaintext("127.0.0.1:1"),
            registry: pipeline::registry::RegistryArgs::new("http://127.0.0.1:1"),
        };
        let err = verify(&config, &Options::default()).await.unwrap_err();
        assert!(matches!(&err, VerifyError::Transformed(names) if names == "unwrap"));
        assert!(
            err.to_string().starts_with("transforms (unwrap): "),
            "{err}"
        );
    }

    fn row(v: &str) -> Change {
        Change::Row {
            value: v.into(),
            snapshot: false,
        }
    }

    fn ok(s: &str) -> impl FnOnce(bool) -> Result<String, ()> + '_ {
        move |_| Ok(s.to_owned())
    }

    #[test]
    fn equal_views_report_nothing() {
        let mut view = TopicView::default();
        view.apply("{\"id\":1}".into(), row("{\"a\":1}"), true);
        view.apply("{\"id\":2}".into(), row("{\"a\":2}"), true);
        view.apply("{\"id\":2}".into(), row("{\"a\":3}"), true);
        let mut report = TableReport::default();
        view.check_row("{\"id\":1}", ok("{\"a\":1}"), &mut report, 5)
            .unwrap();
        view.check_row("{\"id\":2}", ok("{\"a\":3}"), &mut report, 5)
            .unwrap();
        view.finish(&mut report, 5);
        assert!(report.is_equal() && report.undetermined.count == 0);
        assert_eq!(report.rows, 2);
    }

    #[test]
    fn missing_extra_and_different_name_the_key() {
        let mut view = TopicView::default();
        view.apply("{\"id\":2}".into(), row("{\"a\":2,\"b\":\"x\"}"), true);
        view.apply("{\"id\":3}".into(), row("{\"a\":3}"), true);
        view.apply("{\"id\":4}".into(), row("{\"a\":4}"), true);
        view.apply("{\"id\":4}".into(), Change::Deleted, true);
        view.apply("{\"id\":4}".into(), Change::Tombstone, false);
        let mut report = TableReport::default();
        for (key, value) in [
            ("{\"id\":1}", "{\"a\":1}"),
            ("{\"id\":2}", "{\"a\":2,\"b\":\"y\"}"),
            ("{\"id\":4}", "{\"a\":4}"),
        ] {
            view.check_row(key, ok(value), &mut report, 5).unwrap();
        }
        view.finish(&mut report, 5);
        assert_eq!(report.missing.count, 2);
        assert!(report.missing.examples[0].starts_with("{\"id\":1}: in the table, no record"));
        assert!(report.missing.examples[1].contains("deleted in the topic"));
        assert_eq!(report.different.count, 1);
        assert_eq!(
            report.different.examples[0],
            "{\"id\":2}: b: table \"y\" topic \"x\""
        );
        assert_eq!(report.extra.count, 1);
        assert!(report.extra.examples[0].starts_with("{\"id\":3}: in the topic"));
    }

    #[test]
    fn changes_after_the_point_are_ignored() {
        let mut view = TopicView::default();
        // Before the point: a=1; after it: updated, then deleted.
        view.apply("k1".into(), row("1"), true);
        view.apply("k1".into(), row("2"), false);
        view.apply("k1".into(), Change::Deleted, false);
        view.apply("k1".into(), Change::Tombstone, true);
        // Created after the point: not in the table image either.
        view.apply("k2".into(), row("9"), false);
        // Deleted before the point, tombstone right after its delete.
        view.apply("k3".into(), row("3"), true);
        view.apply("k3".into(), Change::Deleted, true);
        view.apply("k3".into(), Change::Tombstone, false);
        let mut report = TableReport::default();
        view.check_row("k1", ok("1"), &mut report, 5).unwrap();
        view.finish(&mut report, 5);
        assert!(report.is_equal(), "{report:?}");
        assert_eq!(report.undetermined.count, 0);
    }

    #[test]
    fn only_later_records_are_undetermined_not_different() {
        let mut view = TopicView::default();
        view.apply("k".into(), row("2"), false);
        let mut report = TableReport::default();
        view.check_row("k", ok("1"), &mut report, 5).unwrap();
        view.finish(&mut report, 5);
        assert!(report.is_equal());
        assert_eq!(report.undetermined.count, 1);
        let r = Report {
            point: Point {
                file: "f.000001".into(),
                pos: 4,
                gtids: PointGtids::None,
            },
            tables: vec![report],
        };
        assert_eq!(r.exit_code(), EXIT_UNDETERMINED);
    }

    #[test]
    fn table_value_follows_the_records_phase() {
        let mut view = TopicView::default();
        view.apply(
            "k".into(),
            Change::Row {
                value: "snap".into(),
                snapshot: true,
            },
            true,
        );
        let mut report = TableReport::default();
        view.check_row(
            "k",
            |snapshot| Ok::<_, ()>(if snapshot { "snap" } else { "stream" }.to_owned()),
            &mut report,
            5,
        )
        .unwrap();
        assert!(report.is_equal());
    }

    #[test]
    fn truncate_deletes_the_keys_so_far() {
        let mut view = TopicView::default();
        view.apply("k".into(), row("1"), true);
        view.truncate();
        let mut report = TableReport::default();
        view.finish(&mut report, 5);
        assert!(report.is_equal());
    }

    #[test]
    fn examples_are_capped_and_counted() {
        let mut view = TopicView::default();
        let mut report = TableReport {
            table: "db.t".into(),
            topic: "p.db.t".into(),
            ..TableReport::default()
        };
        for i in 0..7 {
            view.check_row(&format!("{{\"id\":{i}}}"), ok("x"), &mut report, 2)
                .unwrap();
        }
        assert_eq!(report.missing.count, 7);
        assert_eq!(report.missing.examples.len(), 2);
        let r = Report {
            point: Point {
                file: "f.000001".into(),
                pos: 4,
                gtids: PointGtids::None,
            },
            tables: vec![report],
        };
        assert_eq!(r.exit_code(), EXIT_DIFFERENT);
        let text = r.render();
        assert!(text.contains("... and 5 more missing"), "{text}");
        assert!(text.contains("(exit 1)"), "{text}");
    }

    fn source(file: &str, pos: u64, gtid: Option<&str>, snapshot: bool) -> RecordSource {
        RecordSource {
            file: file.into(),
            pos,
            gtid: gtid.map(str::to_owned),
            snapshot,
        }
    }

    #[test]
    fn positions_decide_by_file_number_then_offset() {
        let p = Point {
            file: "bin.000010".into(),
            pos: 500,
            gtids: PointGtids::None,
        };
        assert!(p.includes(&source("bin.000009", 9000, None, false)));
        assert!(p.includes(&source("bin.000010", 499, None, false)));
        // A transaction starting at the point commits after it.
        assert!(!p.includes(&source("bin.000010", 500, None, false)));
        // A snapshot at the point is the state at the point.
        assert!(p.includes(&source("bin.000010", 500, None, true)));
        assert!(!p.includes(&source("bin.000010", 501, None, true)));
        assert!(!p.includes(&source("bin.000011", 4, None, false)));
        assert!(!p.includes(&source("bin.1000000", 4, None, false)));
    }

    #[test]
    fn gtids_decide_when_both_sides_have_them() {
        let maria = Point {
            file: "bin.000010".into(),
            pos: 500,
            gtids: PointGtids::parse(Some("0-1-41,1-2-7,0-3-45"), Flavor::MariaDb),
        };
        // Another server's file names: GTIDs decide.
        assert!(maria.includes(&source("other.000001", 99_999, Some("0-3-45"), false)));
        assert!(!maria.includes(&source("bin.000001", 4, Some("0-1-46"), false)));
        assert!(!maria.includes(&source("bin.000001", 4, Some("2-1-1"), false)));
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mysql = Point {
            file: "bin.000010".into(),
            pos: 500,
            gtids: PointGtids::parse(Some(&format!("{u}:1-10")), Flavor::MySql),
        };
        assert!(mysql.includes(&source("bin.000011", 4, Some(&format!("{u}:10")), false)));
        assert!(!mysql.includes(&source("bin.000001", 4, Some(&format!("{u}:11")), false)));
    }

    #[test]
    fn the_stored_offset_reaches_the_point() {
        let p = Point {
            file: "bin.000010".into(),
            pos: 500,
            gtids: PointGtids::parse(Some("0-1-41"), Flavor::MariaDb),
        };
        let stored = |file: &str, pos, gtids: Option<&str>| SourceOffset {
            file: file.into(),
            pos,
            gtids: gtids.map(str::to_owned),
            ..SourceOffset::default()
        };
        assert!(p.reached_by(&stored("bin.000010", 10, Some("0-1-41")), Flavor::MariaDb));
        assert!(!p.reached_by(&stored("bin.000011", 10, Some("0-1-40")), Flavor::MariaDb));
        // Without GTIDs: file and position.
        assert!(p.reached_by(&stored("bin.000010", 500, None), Flavor::MariaDb));
        assert!(!p.reached_by(&stored("bin.000010", 499, None), Flavor::MariaDb));
        // A snapshot in progress has not written everything.
        let mut snap = stored("bin.000011", 4, Some("0-1-50"));
        snap.snapshot = Some(true);
        assert!(!p.reached_by(&snap, Flavor::MariaDb));
    }

    #[test]
    fn canonical_text_is_json() {
        let v = Value::Record(vec![
            ("id".into(), Value::Long(7)),
            (
                "email".into(),
                Value::Union(1, Box::new(Value::String("a\"b".into()))),
            ),
            ("n".into(), Value::Union(0, Box::new(Value::Null))),
            ("f".into(), Value::Float(1.5)),
            ("b".into(), Value::Bytes(vec![0, 255])),
            ("d".into(), Value::Decimal(vec![0xff, 0x7f].into())),
            ("x".into(), Value::Double(f64::NAN)),
        ]);
        let text = canonical_text(&v);
        assert_eq!(
            text,
            r#"{"id":7,"email":"a\"b","n":null,"f":1.5,"b":"0x00ff","d":"unscaled -129","x":"NaN"}"#
        );
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
    }

    fn users_schema(with_nickname: bool) -> debezium_avro::TableSchema {
        let col = |name: &str, data_type: &str, column_type: &str, nullable| {
            debezium_avro::ColumnSchema {
                name: name.into(),
                data_type: data_type.into(),
                column_type: column_type.into(),
                nullable,
                charset: (data_type == "varchar").then(|| "utf8mb4".to_owned()),
                char_max_length: (data_type == "varchar").then_some(50),
                datetime_precision: (data_type == "timestamp").then_some(3),
                ..Default::default()
            }
        };
        let mut columns = vec![
            col("id", "int", "int(11)", false),
            col("email", "varchar", "varchar(50)", true),
            col("created", "timestamp", "timestamp(3)", true),
        ];
        if with_nickname {
            let mut nick = col("nick", "varchar", "varchar(50)", true);
            nick.default = Some("anon".into());
            columns.push(nick);
        }
        debezium_avro::TableSchema {
            database: "db".into(),
            table: "users".into(),
            columns,
            primary_key: vec![0],
        }
    }

    fn side(with_nickname: bool) -> TableSide {
        let cfg = crate::config::ConnectorConfig::for_database("h", 3306, "u", "p", "pfx");
        let schema = users_schema(with_nickname);
        let codec = TableCodec::new(&schema, &crate::converter_config(&cfg)).unwrap();
        TableSide::new(codec, &schema).unwrap().unwrap()
    }

    #[test]
    fn table_rows_render_through_the_connectors_codec() {
        let side = side(false);
        let cells = vec![
            Cell::Int(5),
            Cell::Bytes(b"a@b".to_vec()),
            Cell::SnapshotTimestamp { secs: 1, micros: 0 },
        ];
        assert_eq!(side.key(&cells).unwrap(), r#"{"id":5}"#);
        // Debezium prints a snapshot TIMESTAMP(3) without the zero fraction,
        // a streamed one with it: the table row follows the record's phase.
        assert_eq!(
            side.after(&cells, true).unwrap(),
            r#"{"id":5,"email":"a@b","created":"1970-01-01T00:00:01Z"}"#
        );
        assert_eq!(
            side.after(&cells, false).unwrap(),
            r#"{"id":5,"email":"a@b","created":"1970-01-01T00:00:01.000Z"}"#
        );
    }

    #[test]
    fn older_records_resolve_to_the_current_schema() {
        // A record written before `nick` was added reads with its default.
        let old = side(false);
        let new = side(true);
        let cells = vec![Cell::Int(5), Cell::Null, Cell::Null];
        let mut buf = Vec::new();
        let _ = old
            .codec
            .encode_envelope(
                None,
                Some(&cells),
                &SourceInfo {
                    server_id: 1,
                    file: "bin.000001".into(),
                    pos: 4,
                    row: 0,
                    gtid: Some("0-1-5".into()),
                    ts_ms: 0,
                    snapshot: SnapshotMarker::False,
                    thread: None,
                    query: None,
                },
                Op::Create,
                0,
                &mut buf,
            )
            .unwrap();
        let value = decode_datum(&old.value_schema, Some(&new.value_schema), &buf).unwrap();
        let envelope = read_envelope(&value).unwrap();
        assert_eq!(envelope.op, "c");
        assert_eq!(
            envelope.source,
            source("bin.000001", 4, Some("0-1-5"), false)
        );
        assert_eq!(
            envelope.after.as_deref(),
            Some(r#"{"id":5,"email":null,"created":null,"nick":"anon"}"#)
        );
        let mut cells = cells;
        cells.push(Cell::Bytes(b"anon".to_vec()));
        assert_eq!(envelope.after.unwrap(), new.after(&cells, false).unwrap());
    }
}
