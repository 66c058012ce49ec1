//! Streaming: binlog events to change records.
//!
//! Invariants:
//! - Every record carries `source.pos` = the position of the first event of its
//!   transaction (GTID, or BEGIN when there is no GTID) and `source.row` = its
//!   row index inside its rows event; the offset attached to the LAST record of
//!   each row is `{file, pos: transaction start, event: k, row: i+1}` (k = rows
//!   events of the transaction before this one). A commit (XID, COMMIT, or the
//!   end of a standalone DDL) queues the boundary `{file, pos: end of commit}`.
//!   Together with the ordered committer in [`crate::kafka`] this makes every
//!   stored offset a transaction boundary plus skip counts (see
//!   [`crate::offsets`]).
//! - Resuming (restart or reconnect) always starts at a transaction start and
//!   skips exactly the rows events / rows already handed to Kafka; rows events
//!   of filtered tables are counted too, so the counts mean the same on replay.
//!   The stream is requested by file and position, or by GTID set
//!   ([`crate::start::ResumeBy`]): then the server picks the first
//!   transaction the set lacks, the file comes from its first (artificial)
//!   ROTATE, and the skip waits for the transaction the offset names
//!   (`in_flight_gtid`), since a promoted replica may stream its own
//!   transactions first. Every reconnect asks the same way, with the set of
//!   the last emitted offset.
//! - Rows are decoded with the schema the TABLE_MAP event describes (FULL
//!   metadata): after DDL, or when lagging behind DDL, a row is read with the
//!   shape it was written under, never with today's catalog. A new shape gets a
//!   new registered schema version before its first record.
//! - Nothing is dropped silently: unknown event types are ignored by design
//!   (they carry no rows), operations `skipped.operations` names are counted
//!   (`cdc_skipped_total{reason}`), and event kinds that would hide rows
//!   (MariaDB compressed events) stop the connector with the setting to change.
//! - TRUNCATE of a captured table is Debezium's truncate record (op `t`,
//!   before/after null, null Kafka key, the table's current value schema) on
//!   the table's topic, or nothing when `skipped.operations` has `t`
//!   (Debezium's default). It is never a schema change and keeps the cached
//!   table shapes. It commits implicitly, so the position after it is queued
//!   behind its record: a restart replays it at most together with what
//!   followed it, never alone after later rows.
//! - With `include.schema.changes`, a CREATE/ALTER/DROP/RENAME statement of a
//!   captured database is written to the schema-change topic
//!   ([`crate::ddl::streaming_changes`]) before its position is queued, so
//!   a stored position after a DDL implies its record was acknowledged.
//! - A silent connection (no event, not even a heartbeat, for 3 heartbeat
//!   periods) is treated as dead and re-established with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn};
use tokio_util::sync::CancellationToken;

use crate::config::ConnectorConfig;
use crate::gtid::{GtidSet, MySqlGtidSet};
use crate::kafka::{PreparedSchemaChanges, PreparedTable, Sink, SinkError};
use crate::offsets::SourceOffset;
use crate::preflight::{Flavor, ServerInfo};
use crate::rows::{decode_rows, DecodeError, RowsError};
use crate::schema::{from_table_map, load_table_schema, matches_table_map, SchemaError};
use crate::start::ResumeBy;
use debezium_avro::TableSchema;
use debezium_avro::{Cell, ConverterConfig, Op, SnapshotMarker, SourceInfo};

const HEARTBEAT_EVENT: u8 = 27;
const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB QUERY_COMPRESSED_EVENT .. DELETE_ROWS_COMPRESSED_EVENT_V1.
const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;
const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// MariaDB GTID flag: the event group has no BEGIN/COMMIT (DDL).
const MARIADB_FL_STANDALONE: u8 = 1;

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Transient: connection lost, server restarting; reconnect.
    #[error("binlog connection failed: {0}")]
    Connection(mysql_async::Error),
    /// Transient: nothing arrived, not even a heartbeat.
    #[error("no binlog event or heartbeat for {0:?}; reconnecting")]
    Stalled(Duration),
    /// Definite: the position to resume from is gone.
    #[error("the binlog at {position} is no longer on the server ({reason}); the changes since the stored position are lost: set snapshot.mode=when_needed to take a new snapshot, or delete the stored offsets")]
    Purged { position: String, reason: String },
    /// Definite: the server refused the replication request.
    #[error("the server refused the binlog stream: {0}; check REPLICATION SLAVE privilege and database.server.id")]
    Refused(mysql_async::Error),
    /// Definite: an event cannot be parsed.
    #[error("unreadable binlog event at {file}:{pos}: {reason}")]
    Event {
        file: String,
        pos: u64,
        reason: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl StreamError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection(_) | Self::Stalled(_) => true,
            Self::Schema(SchemaError::Server { .. }) => true,
            Self::Sink(e) => e.is_transient() && !matches!(e, SinkError::CommitterGone),
            _ => false,
        }
    }
}

/// `position` names what was asked for (a file, or a GTID set) in errors.
fn classify(error: mysql_async::Error, position: &str) -> StreamError {
    match &error {
        mysql_async::Error::Server(server) => match server.code {
            // ER_MASTER_FATAL_ERROR_READING_BINLOG: purged or unknown file,
            // or (by GTID) purged transactions the request set lacks.
            1236 => StreamError::Purged {
                position: position.to_owned(),
                reason: server.message.clone(),
            },
            1045 | 1227 | 1142 | 1044 => StreamError::Refused(error),
            _ => StreamError::Connection(error),
        },
        _ => StreamError::Connection(error),
    }
}

fn uuid_text(sid: [u8; 16]) -> String {
    let h: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// MariaDB GTID event body: seq_no u64, domain_id u32, flags u8 (little-endian).
pub fn parse_mariadb_gtid(body: &[u8], server_id: u32) -> Option<(String, bool)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some((
        format!("{domain}-{server_id}-{seq}"),
        flags & MARIADB_FL_STANDALONE != 0,
    ))
}

fn ends_with_dot_digits(name: &[u8]) -> bool {
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => dot + 1 < name.len() && name[dot + 1..].iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// mysql_async issue #189: MariaDB's first (fake) ROTATE carries its CRC32 in
/// the name because the checksum setting is not known yet. Binlog names end in
/// `.<digits>`; four trailing bytes that break that shape are the checksum.
pub fn rotate_file_name(raw: &[u8]) -> String {
    let name = if raw.len() > 4
        && !ends_with_dot_digits(raw)
        && ends_with_dot_digits(&raw[..raw.len() - 4])
    {
        &raw[..raw.len() - 4]
    } else {
        raw
    };
    String::from_utf8_lossy(name).into_owned()
}

/// Whether two schemas of a table encode rows the same way: same columns,
/// types, signedness, decimal precision/scale, fractional seconds and labels.
fn same_shape(a: &TableSchema, b: &TableSchema) -> bool {
    a.primary_key == b.primary_key
        && a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.name == y.name
                && x.data_type == y.data_type
                && x.unsigned == y.unsigned
                && x.nullable == y.nullable
                && (x.data_type != "decimal"
                    || (x.numeric_precision == y.numeric_precision
                        && x.numeric_scale == y.numeric_scale))
                && (!matches!(x.data_type.as_str(), "time" | "datetime" | "timestamp")
                    || x.datetime_precision == y.datetime_precision)
                && x.enum_values == y.enum_values
        })
}

/// The first word of a statement, upper-cased (comments skipped).
fn statement_kind(query: &str) -> String {
    let mut q = query.trim_start();
    while let Some(rest) = q.strip_prefix("/*") {
        q = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
    }
    q.split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[derive(Debug, Clone)]
struct Txn {
    start: u64,
    gtid: Option<String>,
    /// A BEGIN (or a non-standalone MariaDB GTID) opened it: a commit event ends it.
    began: bool,
    rows_events: u64,
    thread: Option<i64>,
    /// MySQL 8 GTID events carry the commit time in µs (0: unknown).
    commit_us: Option<u64>,
}

/// What one event means for the records (see [`Position::observe`]).
#[derive(Debug)]
pub enum Step<'e> {
    /// No record and no new position.
    Nothing,
    /// A position reached without a record (commit, rotation).
    Mark(SourceOffset),
    /// A table's current shape (cache it by table id).
    TableMap(TableMapEvent<'static>),
    /// A schema change; with the position after it when it was its own transaction.
    Ddl(Option<SourceOffset>),
    /// A TRUNCATE statement (see [`Position::take_truncate`]); with the
    /// position after it when it was its own transaction (always, on MySQL
    /// and MariaDB: TRUNCATE commits implicitly).
    Truncate(Option<SourceOffset>),
    /// Rows to turn into records.
    Rows(RowsStep<'e>),
}

/// A rows event placed in its transaction.
#[derive(Debug)]
pub struct RowsStep<'e> {
    /// Rows events of this transaction before this one.
    pub index: u64,
    /// Rows already delivered before a restart (skip them); `None`: skip all.
    pub skip_rows: Option<u64>,
    /// Position of the transaction's first event (`source.pos`).
    pub txn_start: u64,
    pub gtid: Option<String>,
    pub thread: Option<i64>,
    pub server_id: u32,
    pub ts_ms: i64,
    pub data: RowsEventData<'e>,
}

/// A schema-changing statement read from the binlog, for the schema-change
/// topic (see [`crate::ddl`]).
#[derive(Debug, Clone)]
pub struct DdlEvent {
    pub statement: String,
    /// The statement's current database (`USE`), possibly empty.
    pub schema: String,
    pub source: SourceInfo,
}

/// Transaction and position tracking, free of I/O so it can be driven by
/// recorded binlog files in unit tests.
#[derive(Debug, Clone)]
pub struct Position {
    flavor: Flavor,
    source_server_id: u32,
    /// Current binlog file.
    pub file: String,
    /// End of the last positioned event: where the next one starts.
    pub next_pos: u64,
    txn: Option<Txn>,
    skip: Option<(u64, u64)>,
    /// The transaction `skip` belongs to, when the offset named it: others
    /// streamed before it (by GTID) are not skipped into.
    skip_gtid: Option<String>,
    gtids: GtidSet,
    /// Set by each transaction commit: its source commit time in µs, if known.
    committed: Option<Option<u64>>,
    /// Set by each CREATE/ALTER/DROP/RENAME statement (not TRUNCATE).
    ddl: Option<DdlEvent>,
    /// Set by each TRUNCATE statement.
    truncate: Option<DdlEvent>,
}

impl Position {
    /// At `resume` (a transaction boundary + skip counts).
    pub fn new(flavor: Flavor, source_server_id: u32, resume: &SourceOffset) -> Self {
        Self {
            flavor,
            source_server_id,
            file: resume.file.clone(),
            next_pos: resume.pos,
            txn: None,
            skip: (resume.event > 0 || resume.row > 0).then_some((resume.event, resume.row)),
            skip_gtid: resume.in_flight_gtid.clone(),
            gtids: resume
                .gtids
                .as_deref()
                .map(|g| GtidSet::parse(g, flavor))
                .unwrap_or_default(),
            committed: None,
            ddl: None,
            truncate: None,
        }
    }

    /// The TRUNCATE statement seen by the last [`Position::observe`] (consumed).
    pub fn take_truncate(&mut self) -> Option<DdlEvent> {
        self.truncate.take()
    }

    /// The schema-changing statement seen by the last [`Position::observe`]
    /// (consumed).
    pub fn take_ddl(&mut self) -> Option<DdlEvent> {
        self.ddl.take()
    }

    /// The committed GTID set, as stored in offsets.
    pub fn gtids(&self) -> Option<String> {
        self.gtids.to_text()
    }

    pub fn offset(&self, pos: u64, event: u64, row: u64) -> SourceOffset {
        SourceOffset {
            file: self.file.clone(),
            pos,
            gtids: self.gtids.to_text(),
            event,
            row,
            in_flight_gtid: self.txn.as_ref().and_then(|t| t.gtid.clone()),
            snapshot: None,
            server_id: self.source_server_id,
            ts_sec: crate::snapshot::now_ms() as u64 / 1000,
        }
    }

    fn begin(&mut self, start: u64, gtid: Option<String>, began: bool) {
        self.txn = Some(Txn {
            start,
            gtid,
            began,
            rows_events: 0,
            thread: None,
            commit_us: None,
        });
    }

    /// The transaction commit seen by the last [`Position::observe`], with
    /// its source commit time in µs when the binlog records one (consumed).
    pub fn take_commit(&mut self) -> Option<Option<u64>> {
        self.committed.take()
    }

    /// Whether the skip counts apply to the open transaction.
    fn skips_here(&self) -> bool {
        match (&self.skip_gtid, &self.txn) {
            (None, _) => true,
            (Some(target), Some(txn)) => txn.gtid.as_ref() == Some(target),
            (Some(_), None) => false,
        }
    }

    fn commit(&mut self) -> Step<'static> {
        self.committed = Some(None);
        if self.skips_here() {
            self.skip = None;
            self.skip_gtid = None;
        }
        if let Some(txn) = self.txn.take() {
            if let Some(gtid) = &txn.gtid {
                self.gtids.add(gtid, self.flavor);
            }
            self.committed = Some(txn.commit_us);
        }
        Step::Mark(self.offset(self.next_pos, 0, 0))
    }

    /// Advances over one event and says what it means.
    pub fn observe<'e>(&mut self, event: &'e Event) -> Result<Step<'e>, StreamError> {
        let header = event.header();
        let kind = header.event_type_raw();
        if kind == HEARTBEAT_EVENT {
            return Ok(Step::Nothing);
        }
        let artificial = header.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        // Events inside a transaction payload carry no position of their own.
        let start = if end >= size && end > 0 {
            end - size
        } else {
            self.next_pos
        };
        if end > 0 && !artificial {
            self.next_pos = end;
        }
        if kind == MARIADB_GTID_EVENT {
            let (gtid, standalone) = parse_mariadb_gtid(event.data(), header.server_id())
                .ok_or_else(|| StreamError::Event {
                    file: self.file.clone(),
                    pos: start,
                    reason: "short MariaDB GTID event".into(),
                })?;
            self.begin(start, Some(gtid), !standalone);
            return Ok(Step::Nothing);
        }
        if MARIADB_COMPRESSED.contains(&kind) {
            return Err(StreamError::Unsupported(format!(
                "MariaDB compressed binlog event (type {kind}) at {}:{start}; set log_bin_compress=OFF on the server",
                self.file
            )));
        }
        let data = event.read_data().map_err(|e| StreamError::Event {
            file: self.file.clone(),
            pos: start,
            reason: e.to_string(),
        })?;
        let Some(data) = data else {
            // Unknown to mysql_common (MariaDB 160+ kinds): carries no rows.
            return Ok(Step::Nothing);
        };
        Ok(match data {
            EventData::RotateEvent(rotate) => {
                let raw = rotate.name_raw();
                // The fake ROTATE that opens a stream names the file we asked
                // for; trust our own copy over a name with trailing checksum bytes.
                if !(artificial && !self.file.is_empty() && raw.starts_with(self.file.as_bytes())) {
                    self.file = rotate_file_name(raw);
                }
                self.next_pos = rotate.position();
                if !artificial && self.txn.is_none() && self.skip.is_none() {
                    Step::Mark(self.offset(self.next_pos, 0, 0))
                } else {
                    Step::Nothing
                }
            }
            EventData::GtidEvent(g) => {
                let uuid = uuid_text(g.sid());
                let gtid = match g.tag() {
                    Some(tag) => format!("{uuid}:{}:{}", tag.as_str(), g.gno()),
                    None => format!("{uuid}:{}", g.gno()),
                };
                self.begin(start, Some(gtid), false);
                if let Some(txn) = &mut self.txn {
                    txn.commit_us = Some(g.immediate_commit_timestamp()).filter(|&us| us > 0);
                }
                Step::Nothing
            }
            EventData::AnonymousGtidEvent(_) => {
                self.begin(start, None, false);
                Step::Nothing
            }
            EventData::QueryEvent(q) => {
                let query = q.query();
                match statement_kind(&query).as_str() {
                    "BEGIN" => {
                        match &mut self.txn {
                            Some(txn) => txn.began = true,
                            None => self.begin(start, None, true),
                        }
                        if let Some(txn) = &mut self.txn {
                            txn.thread = Some(i64::from(q.thread_id()));
                        }
                        Step::Nothing
                    }
                    // ROLLBACK: only non-transactional changes were logged before it.
                    "COMMIT" | "ROLLBACK" => self.commit(),
                    other => {
                        let ddl = matches!(other, "ALTER" | "CREATE" | "DROP" | "RENAME");
                        let truncate = other == "TRUNCATE";
                        if ddl || truncate {
                            tracing::info!(schema = %q.schema(), statement = %query.chars().take(200).collect::<String>(), "DDL in the binlog; rows that follow are decoded with their table map's shape");
                            let (pos, gtid) = self
                                .txn
                                .as_ref()
                                .map_or((start, None), |t| (t.start, t.gtid.clone()));
                            let event = DdlEvent {
                                statement: query.clone().into_owned(),
                                schema: q.schema().into_owned(),
                                source: SourceInfo {
                                    server_id: header.server_id(),
                                    file: self.file.clone(),
                                    pos,
                                    row: 0,
                                    gtid,
                                    ts_ms: i64::from(header.timestamp()) * 1000,
                                    snapshot: SnapshotMarker::False,
                                    // Debezium's source.thread is the
                                    // thread of the open BEGIN (reset at
                                    // COMMIT); a DDL has none of its own.
                                    thread: self
                                        .txn
                                        .as_ref()
                                        .filter(|t| t.began)
                                        .and_then(|t| t.thread),
                                    query: None,
                                },
                            };
                            match truncate {
                                true => self.truncate = Some(event),
                                false => self.ddl = Some(event),
                            }
                        }
                        // A statement outside BEGIN..COMMIT is its own transaction.
                        let commit = match self.txn.as_ref().is_none_or(|t| !t.began) {
                            true => match self.commit() {
                                Step::Mark(offset) => Some(offset),
                                _ => None,
                            },
                            false => None,
                        };
                        match (ddl, truncate, commit) {
                            (true, _, commit) => Step::Ddl(commit),
                            (_, true, commit) => Step::Truncate(commit),
                            (false, false, Some(offset)) => Step::Mark(offset),
                            (false, false, None) => Step::Nothing,
                        }
                    }
                }
            }
            EventData::XidEvent(_) => self.commit(),
            EventData::TableMapEvent(tme) => Step::TableMap(tme.into_owned()),
            EventData::RowsEvent(data) => {
                if self.txn.is_none() {
                    // Rows outside an explicit transaction (non-transactional engine).
                    self.begin(start, None, false);
                }
                let skip = self.skip.filter(|_| self.skips_here());
                let Some(txn) = self.txn.as_mut() else {
                    return Ok(Step::Nothing);
                };
                let index = txn.rows_events;
                txn.rows_events += 1;
                let skip_rows = match skip {
                    Some((events, _)) if index < events => None,
                    Some((events, rows)) if index == events => Some(rows),
                    _ => Some(0),
                };
                Step::Rows(RowsStep {
                    index,
                    skip_rows,
                    txn_start: txn.start,
                    gtid: txn.gtid.clone(),
                    thread: txn.thread,
                    server_id: header.server_id(),
                    ts_ms: i64::from(header.timestamp()) * 1000,
                    data,
                })
            }
            _ => Step::Nothing,
        })
    }
}

/// The event-to-record state machine.
#[derive(Debug)]
pub struct Streamer {
    info: ServerInfo,
    cfg: Arc<ConnectorConfig>,
    converter: ConverterConfig,
    /// Reads current table definitions (for column defaults) when a shape is new.
    catalog: Option<Conn>,
    by_name: HashMap<(String, String), Arc<PreparedTable>>,
    table_maps: HashMap<u64, TableMapEvent<'static>>,
    by_id: HashMap<u64, Option<Arc<PreparedTable>>>,
    position: Position,
    /// How (re)connections request the stream (see [`crate::start`]).
    by: ResumeBy,
    key_buf: Vec<u8>,
    old_key_buf: Vec<u8>,
    /// Row changes written (for the run summary).
    pub records: u64,
    /// The schema-change topic, when `include.schema.changes`.
    schema_changes: Option<Arc<PreparedSchemaChanges>>,
}

impl Streamer {
    pub fn new(
        info: ServerInfo,
        cfg: Arc<ConnectorConfig>,
        converter: ConverterConfig,
        catalog: Option<Conn>,
        tables: Vec<Arc<PreparedTable>>,
    ) -> Self {
        let by_name = tables
            .into_iter()
            .map(|t| ((t.schema.database.clone(), t.schema.table.clone()), t))
            .collect();
        let position = Position::new(info.flavor, info.server_id, &SourceOffset::default());
        Self {
            info,
            cfg,
            converter,
            catalog,
            by_name,
            table_maps: HashMap::new(),
            by_id: HashMap::new(),
            position,
            by: ResumeBy::FilePos,
            key_buf: Vec::with_capacity(64),
            old_key_buf: Vec::with_capacity(64),
            records: 0,
            schema_changes: None,
        }
    }

    /// Write schema-changing statements of captured databases to this topic.
    pub fn set_schema_changes(&mut self, prepared: Option<Arc<PreparedSchemaChanges>>) {
        self.schema_changes = prepared;
    }

    /// Positions the state machine at `resume` (a transaction boundary + skips).
    /// By GTID the file is whatever the server's first (artificial) ROTATE
    /// names: the stored one may be another server's.
    pub fn reset(&mut self, resume: &SourceOffset) {
        let resume = match self.by {
            ResumeBy::FilePos => resume.clone(),
            ResumeBy::Gtid => SourceOffset {
                file: String::new(),
                pos: 4,
                ..resume.clone()
            },
        };
        self.position = Position::new(self.info.flavor, self.info.server_id, &resume);
        self.table_maps.clear();
        self.by_id.clear();
    }

    /// Streams from `start` until shutdown or a definite error, reconnecting
    /// with backoff on transient ones. `by` says how every connection asks
    /// for the stream: by `start.gtids` (and, on reconnect, the set of the
    /// last emitted offset) or by file and position.
    pub async fn run(
        &mut self,
        opts: mysql_async::Opts,
        start: SourceOffset,
        by: ResumeBy,
        sink: &mut Sink,
        shutdown: &CancellationToken,
    ) -> Result<(), StreamError> {
        self.by = by;
        let mut resume = start;
        // A connection that lived this long was healthy: the next outage is a
        // new one and starts again from the shortest wait.
        const HEALTHY: Duration = Duration::from_secs(60);
        let mut waits =
            pipeline::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            let attempt = std::time::Instant::now();
            let result = self.run_once(opts.clone(), &resume, sink, shutdown).await;
            crate::metrics::streaming(false);
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    if attempt.elapsed() >= HEALTHY {
                        waits.reset();
                    }
                    let backoff = waits.next_delay();
                    crate::metrics::error("binlog");
                    if let Some(emitted) = &sink.emitted {
                        resume = emitted.clone();
                    }
                    tracing::warn!(error = %e, resume = %resume, ?backoff, "binlog stream lost; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    // The catalog connection may be the broken one.
                    self.catalog = None;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn run_once(
        &mut self,
        opts: mysql_async::Opts,
        resume: &SourceOffset,
        sink: &mut Sink,
        shutdown: &CancellationToken,
    ) -> Result<(), StreamError> {
        let heartbeat = self.cfg.heartbeat_interval;
        let mut conn = Conn::new(opts.clone())
            .await
            .map_err(StreamError::Connection)?;
        if self.catalog.is_none() {
            self.catalog = Some(Conn::new(opts).await.map_err(StreamError::Connection)?);
        }
        let setup = async {
            conn.query_drop(format!(
                "SET {} = {}",
                self.info.heartbeat_variable(),
                heartbeat.as_nanos()
            ))
            .await?;
            if self.info.flavor == Flavor::MariaDb {
                // Without it MariaDB rewrites its GTID events into plain BEGINs.
                conn.query_drop("SET @mariadb_slave_capability = 4").await?;
            }
            Ok::<(), mysql_async::Error>(())
        };
        let (request, asked) = match self.by {
            ResumeBy::FilePos => (
                BinlogStreamRequest::new(self.cfg.database.server_id)
                    .with_filename(resume.file.as_bytes())
                    .with_pos(resume.pos),
                resume.file.clone(),
            ),
            ResumeBy::Gtid => {
                let text = resume.gtids.as_deref().unwrap_or_default();
                let set = MySqlGtidSet::parse(text)
                    .map_err(|e| StreamError::Unsupported(format!("cannot resume by GTID: {e}")))?;
                // No file and position 4: the server finds the first
                // transaction not in the set itself (auto-positioning).
                (
                    BinlogStreamRequest::new(self.cfg.database.server_id)
                        .with_gtid()
                        .with_gtid_set(set.to_sids()),
                    format!("GTID set {text}"),
                )
            }
        };
        setup.await.map_err(|e| classify(e, &asked))?;
        let mut stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| classify(e, &asked))?;
        self.reset(resume);
        tracing::info!(position = %resume, by = ?self.by, gtids = resume.gtids.as_deref().unwrap_or(""), "streaming from the binlog");
        crate::metrics::streaming(true);
        let silence = heartbeat * 3;
        loop {
            let next = tokio::select! {
                // Shutdown first: with events already buffered, an unbiased
                // select could go on through a large transaction.
                biased;
                _ = shutdown.cancelled() => {
                    let _ = stream.close().await;
                    return Ok(());
                }
                next = tokio::time::timeout(silence, stream.next()) => next,
            };
            let event = match next {
                Err(_) => return Err(StreamError::Stalled(silence)),
                Ok(None) => {
                    return Err(StreamError::Connection(mysql_async::Error::Io(
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "server closed the binlog stream",
                        )
                        .into(),
                    )))
                }
                Ok(Some(Err(e))) => {
                    let asked = match self.by {
                        ResumeBy::FilePos => self.position.file.clone(),
                        ResumeBy::Gtid => {
                            format!("GTID set {}", resume.gtids.as_deref().unwrap_or_default())
                        }
                    };
                    return Err(classify(e, &asked));
                }
                Ok(Some(Ok(event))) => event,
            };
            self.handle(&event, sink).await?;
        }
    }

    /// Processes one event.
    pub async fn handle(&mut self, event: &Event, sink: &mut Sink) -> Result<(), StreamError> {
        let step = self.position.observe(event)?;
        // Taken at every event, so a commit is never attributed to a later one.
        let committed = self.position.take_commit();
        match step {
            Step::Nothing => {}
            Step::Mark(offset) => {
                sink.mark(offset).await?;
                if let Some(commit_us) = committed {
                    sink.commit_read(commit_us);
                }
            }
            Step::Ddl(commit) => {
                // Shapes may have changed: the next table map of every table
                // is checked against the catalog and its own metadata again.
                self.by_name.clear();
                let ddl = self.position.take_ddl();
                if let (Some(ddl), Some(prepared)) = (ddl, self.schema_changes.clone()) {
                    let changes = crate::ddl::streaming_changes(
                        self.catalog.as_mut(),
                        &self.cfg.filter,
                        &ddl.statement,
                        &ddl.schema,
                        &ddl.source,
                    )
                    .await
                    .map_err(StreamError::Connection)?;
                    for change in &changes {
                        sink.schema_change(&prepared, change).await?;
                    }
                }
                if let Some(offset) = commit {
                    sink.mark(offset).await?;
                    if let Some(commit_us) = committed {
                        sink.commit_read(commit_us);
                    }
                }
            }
            Step::Truncate(commit) => {
                if let Some(truncate) = self.position.take_truncate() {
                    self.truncate(&truncate, sink).await?;
                }
                if let Some(offset) = commit {
                    sink.mark(offset).await?;
                    if let Some(commit_us) = committed {
                        sink.commit_read(commit_us);
                    }
                }
            }
            Step::TableMap(tme) => {
                let id = tme.table_id();
                let prepared = self.resolve_table(&tme, sink).await?;
                self.by_id.insert(id, prepared);
                self.table_maps.insert(id, tme);
            }
            Step::Rows(rows) => self.rows(rows, sink).await?,
        }
        Ok(())
    }

    async fn resolve_table(
        &mut self,
        tme: &TableMapEvent<'static>,
        sink: &Sink,
    ) -> Result<Option<Arc<PreparedTable>>, StreamError> {
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        if !self.cfg.filter.includes(&db, &table) {
            return Ok(None);
        }
        let key = (db.clone(), table.clone());
        if let Some(p) = self.by_name.get(&key) {
            if matches_table_map(&p.schema, tme) {
                return Ok(Some(Arc::clone(p)));
            }
        }
        let current: Option<TableSchema> = match &mut self.catalog {
            Some(conn) => load_table_schema(conn, &db, &table).await?,
            None => None,
        };
        // The table map is the truth for the rows that follow; the catalog is
        // preferred only when it describes exactly the same shape (it knows
        // defaults and display widths), which avoids a needless schema version.
        let from_map = from_table_map(tme, current.as_ref())?;
        let schema = match current {
            Some(current)
                if matches_table_map(&current, tme) && same_shape(&current, &from_map) =>
            {
                current
            }
            _ => from_map,
        };
        let changed = self.by_name.contains_key(&key);
        let prepared = sink.prepare(schema, &self.converter).await?;
        if changed {
            tracing::info!(table = %format!("{db}.{table}"), value_schema_id = prepared.value_id, "table shape changed; registered its new schema");
        }
        self.by_name.insert(key, Arc::clone(&prepared));
        Ok(Some(prepared))
    }

    /// A TRUNCATE of a captured table: Debezium's truncate record (op `t`,
    /// before and after null, a null Kafka key) on the table's topic, with
    /// the table's current value schema, unless `skipped.operations` has `t`.
    async fn truncate(&mut self, event: &DdlEvent, sink: &mut Sink) -> Result<(), StreamError> {
        let Some((db, table)) = crate::ddl::truncated_table(&event.statement, &event.schema) else {
            tracing::warn!(statement = %event.statement.chars().take(200).collect::<String>(), schema = %event.schema, "a TRUNCATE whose table could not be read from the statement; no truncate record");
            crate::metrics::skipped("truncate_unparsed");
            return Ok(());
        };
        if !self.cfg.filter.includes(&db, &table) {
            crate::metrics::skipped("filtered_table");
            return Ok(());
        }
        if self.cfg.skipped_operations.truncate {
            crate::metrics::skipped("truncate");
            return Ok(());
        }
        let key = (db, table);
        let prepared = match self.by_name.get(&key) {
            Some(p) => Arc::clone(p),
            None => {
                // No table map of it since the last DDL: its shape comes
                // from the catalog (a TRUNCATE carries none).
                let current = match &mut self.catalog {
                    Some(conn) => load_table_schema(conn, &key.0, &key.1).await?,
                    None => None,
                };
                let Some(current) = current else {
                    tracing::warn!(table = %format!("{}.{}", key.0, key.1), "a TRUNCATE of a table that no longer exists; no truncate record");
                    crate::metrics::skipped("truncate_unknown_table");
                    return Ok(());
                };
                let prepared = sink.prepare(current, &self.converter).await?;
                self.by_name.insert(key, Arc::clone(&prepared));
                prepared
            }
        };
        sink.change(
            &prepared,
            None,
            None,
            None,
            &event.source,
            Op::Truncate,
            None,
            None,
        )
        .await?;
        prepared.events.truncate().increment(1);
        self.records += 1;
        Ok(())
    }

    async fn rows(&mut self, step: RowsStep<'_>, sink: &mut Sink) -> Result<(), StreamError> {
        let table_id = step.data.table_id();
        let file = self.position.file.clone();
        let Some(tme) = self.table_maps.get(&table_id) else {
            return Err(StreamError::Event {
                file,
                pos: step.txn_start,
                reason: format!("rows event for table id {table_id} without its TABLE_MAP"),
            });
        };
        let Some(Some(table)) = self.by_id.get(&table_id).cloned() else {
            crate::metrics::skipped("filtered_table");
            return Ok(());
        };
        let Some(skip_rows) = step.skip_rows else {
            return Ok(()); // delivered before the restart
        };
        if !self.cfg.gtid_filter.is_empty() {
            // Debezium's gtid.source.filter.dml.events (on by default).
            let uuid = step.gtid.as_deref().and_then(|g| g.split(':').next());
            if uuid.is_some_and(|u| !self.cfg.gtid_filter.includes(u)) {
                crate::metrics::skipped("gtid_source");
                return Ok(());
            }
        }
        let op = match &step.data {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Create,
            RowsEventData::UpdateRowsEventV1(_)
            | RowsEventData::UpdateRowsEvent(_)
            | RowsEventData::PartialUpdateRowsEvent(_) => Op::Update,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
        };
        let skipped = &self.cfg.skipped_operations;
        let skip = match op {
            Op::Create => skipped.create.then_some("create"),
            Op::Update => skipped.update.then_some("update"),
            Op::Delete => skipped.delete.then_some("delete"),
            Op::Read | Op::Truncate => None,
        };
        if let Some(reason) = skip {
            // skipped.operations: Debezium registers no handler for the
            // rows events of a skipped kind (the whole event, key changes
            // included); the position still moves past them.
            crate::metrics::skipped(reason);
            return Ok(());
        }
        crate::metrics::lag_ms(crate::snapshot::now_ms() - step.ts_ms);
        let tombstones = self.cfg.tombstones_on_delete;
        let decoded = decode_rows(&step.data, tme, &table.schema, skip_rows as usize).map_err(
            |e| match e {
                RowsError::Parse(e) => StreamError::Event {
                    file: file.clone(),
                    pos: step.txn_start,
                    reason: e.to_string(),
                },
                RowsError::Decode(e) => StreamError::Decode(e),
            },
        )?;
        // Built once per rows event; only the row index changes per record.
        let mut source = SourceInfo {
            server_id: step.server_id,
            file,
            pos: step.txn_start,
            row: 0,
            gtid: step.gtid,
            ts_ms: step.ts_ms,
            snapshot: SnapshotMarker::False,
            thread: step.thread,
            query: None,
        };
        let mut done = self.position.offset(step.txn_start, step.index, 0);
        for (i, (before, after)) in decoded.into_iter().enumerate() {
            if (i as u64) < skip_rows {
                continue;
            }
            source.row = i as i32;
            done.row = i as u64 + 1;
            self.emit_row(&table, op, before, after, &source, &done, tombstones, sink)
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn emit_row(
        &mut self,
        table: &PreparedTable,
        op: Op,
        before: Option<Vec<Cell>>,
        after: Option<Vec<Cell>>,
        source: &SourceInfo,
        done: &SourceOffset,
        tombstones: bool,
        sink: &mut Sink,
    ) -> Result<(), StreamError> {
        // Key buffers are reused across records (no allocation per row).
        let mut key = std::mem::take(&mut self.key_buf);
        let mut old_key = std::mem::take(&mut self.old_key_buf);
        let result = self
            .emit_row_with(
                table,
                op,
                before,
                after,
                source,
                done,
                tombstones,
                sink,
                &mut key,
                &mut old_key,
            )
            .await;
        self.key_buf = key;
        self.old_key_buf = old_key;
        result?;
        self.records += 1;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn emit_row_with(
        &self,
        table: &PreparedTable,
        op: Op,
        before: Option<Vec<Cell>>,
        after: Option<Vec<Cell>>,
        source: &SourceInfo,
        done: &SourceOffset,
        tombstones: bool,
        sink: &mut Sink,
        key_buf: &mut Vec<u8>,
        old_key_buf: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        let events = &table.events;
        match (op, before, after) {
            (Op::Create, _, Some(after)) => {
                let key = Sink::key_into(table, &after, key_buf)?.then_some(key_buf.as_slice());
                sink.change(table, key, None, Some(&after), source, Op::Create, Some(done), None)
                    .await?;
                events.create().increment(1);
            }
            (Op::Update, Some(before), Some(after)) => {
                let old_key = Sink::key_into(table, &before, old_key_buf)?.then_some(old_key_buf.as_slice());
                let new_key = Sink::key_into(table, &after, key_buf)?.then_some(key_buf.as_slice());
                if old_key != new_key {
                    // Debezium: a key change is a delete (+ tombstone) carrying
                    // the new key as a header, and a create carrying the old one.
                    let codec = &table.codec;
                    let new_text = codec.key_text(&after).map_err(SinkError::from)?;
                    let old_text = codec.key_text(&before).map_err(SinkError::from)?;
                    let newkey = new_text.as_deref().map(|t| ("__debezium.newkey", t));
                    let oldkey = old_text.as_deref().map(|t| ("__debezium.oldkey", t));
                    sink.change(table, old_key, Some(&before), None, source, Op::Delete, None, newkey)
                        .await?;
                    events.delete().increment(1);
                    if let (true, Some(k)) = (tombstones, old_key) {
                        sink.tombstone(table, k, None, newkey).await?;
                        events.tombstone().increment(1);
                    }
                    sink.change(table, new_key, None, Some(&after), source, Op::Create, Some(done), oldkey)
                        .await?;
                    events.create().increment(1);
                } else {
                    sink.change(table, new_key, Some(&before), Some(&after), source, Op::Update, Some(done), None)
                        .await?;
                    events.update().increment(1);
                }
            }
            (Op::Delete, Some(before), _) => {
                let key = Sink::key_into(table, &before, key_buf)?.then_some(key_buf.as_slice());
                match (tombstones, key) {
                    (true, Some(k)) => {
                        sink.change(table, Some(k), Some(&before), None, source, Op::Delete, None, None)
                            .await?;
                        sink.tombstone(table, k, Some(done), None).await?;
                        events.tombstone().increment(1);
                    }
                    _ => {
                        sink.change(table, key, Some(&before), None, source, Op::Delete, Some(done), None)
                            .await?;
                    }
                }
                events.delete().increment(1);
            }
            _ => {
                return Err(StreamError::Event {
                    file: self.position.file.clone(),
                    pos: source.pos,
                    reason: "rows event without the row image its kind needs (binlog_row_image must be FULL)".into(),
                })
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_body() {
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1);
        assert_eq!(
            parse_mariadb_gtid(&body, 7),
            Some(("3-7-42".to_owned(), true))
        );
        assert_eq!(parse_mariadb_gtid(&body[..5], 7), None);
    }

    #[test]
    fn rotate_name_checksum_is_stripped() {
        assert_eq!(rotate_file_name(b"mysql-bin.000002"), "mysql-bin.000002");
        assert_eq!(
            rotate_file_name(b"mariadb-bin.000001\x8a\x11\xf0\x02"),
            "mariadb-bin.000001"
        );
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(statement_kind("BEGIN"), "BEGIN");
        assert_eq!(statement_kind("/* x */ alter table t add c int"), "ALTER");
        assert_eq!(statement_kind("COMMIT"), "COMMIT");
    }
}
