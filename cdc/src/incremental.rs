//! Incremental snapshots (Debezium's `execute-snapshot` of type
//! `incremental`): captured tables re-read in primary-key chunks while the
//! binlog streams on, with the watermark method of DBLog that Debezium uses.
//!
//! One chunk:
//! 1. an open watermark is written: an INSERT into the signal table, id
//!    `<chunk id>-open`, type `snapshot-window-open` (committed);
//! 2. the chunk is read (`SELECT .. WHERE key > last AND key <= max [AND
//!    additional condition] ORDER BY key LIMIT chunk.size`, autocommit, so
//!    the read sees everything committed before it) into the window buffer;
//! 3. a close watermark is written: id `<chunk id>-close`, type
//!    `snapshot-window-close`.
//!
//! The streamer goes on reading the binlog. Between the open and the close
//! watermark (in binlog order) every row event of the table being read
//! removes its key(s) from the window: that change is streamed, and it is
//! newer than, or as new as, what the chunk read. At the close watermark the
//! rows left are emitted as `op r` records with `source.snapshot =
//! incremental`, at that point of the stream, and the next chunk is read.
//! Any change before the open watermark is older than the read (streamed
//! before the chunk's records); any after the close is streamed after them:
//! replaying the topic by key gives the table's current rows.
//!
//! Watermarks are recognised by chunk id: after a restart, the watermarks of
//! a chunk of the previous run are replayed and ignored (Debezium's
//! `notExpectedChunk`).
//!
//! Invariants:
//! - The state (tables to read, last key delivered, maximum key) goes into
//!   every stored position under Debezium's offset keys
//!   ([`crate::offsets::IncrementalOffset`]); each window record carries a
//!   position whose last key is its own key, and the positions after the
//!   close watermark carry the chunk's end. Positions are stored only once
//!   Kafka acknowledged every record before them (invariant 1 of
//!   [`crate::offsets`]), so a stored last key means every row up to it
//!   is in Kafka: a restart reads on from the next key, never skipping one.
//! - The signal row that starts, stops or closes something is acted on
//!   before its own record is sent, and that record's position carries the
//!   resulting state: a restart after it was acknowledged does not act on it
//!   again, a restart before does it again (from the state stored before).
//! - A failed chunk read leaves no half window: the window is dropped and
//!   the chunk read again (a new chunk id) when streaming resumes.
//!
//! `read.only=true` (MySQL with `gtid_mode=ON`, as Debezium's
//! `MySqlReadOnlyIncrementalSnapshotChangeEventSource`): nothing is written.
//! The watermarks are `@@GLOBAL.gtid_executed` read before (low) and after
//! (high) the chunk's SELECT. Rows of a transaction whose GTID is not in the
//! low set take their keys out of the window (it may be newer than the
//! read); the window closes at the first commit or server heartbeat at which
//! the stream has committed every GTID of the high set (everything the read
//! could have seen is streamed before the window's records), and the
//! records carry the last emitted position. A caught-up stream closes each
//! chunk at once and reads the next. On a quiet server the binlog heartbeat
//! (`binlog.heartbeat.interval.ms`) is what closes the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use regex::RegexBuilder;
use serde_json::{json, Value as Json};

use crate::config::ConnectorConfig;
use crate::gtid::{GtidSet, MySqlGtidSet};
use crate::kafka::{PreparedTable, Sink, SinkError};
use crate::offsets::{IncrementalOffset, SourceOffset};
use crate::rows::{row_from_snapshot, DecodeError};
use crate::schema::{list_tables, load_table_schema, SchemaError};
use crate::signals::{Action, ExecuteSnapshot, WINDOW_CLOSE, WINDOW_OPEN};
use debezium_avro::{Cell, ConverterConfig, Op, SnapshotMarker, SourceInfo};

/// Debezium's keys inside `incremental_snapshot_collections`.
const COLLECTION_ID: &str = "incremental_snapshot_collections_id";
const COLLECTION_CONDITION: &str = "incremental_snapshot_collections_additional_condition";
const COLLECTION_SURROGATE: &str = "incremental_snapshot_collections_surrogate_key";

/// Length of the Confluent frame (magic byte, schema id) before a key datum.
const FRAME: usize = 5;

/// Why an incremental snapshot step failed.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    /// Transient: the connection failed; the chunk is read again.
    #[error("incremental snapshot query failed: {0}")]
    Query(#[from] mysql_async::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Definite: a row does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Transient: the kafka signal channel cannot start (broker unreachable).
    #[error("kafka signal channel: {0}")]
    SignalChannel(String),
    /// Definite: the stored state is unreadable.
    #[error("stored incremental snapshot state is unreadable: {0}")]
    Corrupt(String),
}

impl IncrementalError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Query(mysql_async::Error::Server(e)) => !matches!(
                e.code,
                // Access denied (no INSERT on the signal table, no SELECT),
                // unknown table or column, syntax error (a bad
                // additional condition), a read-only server or table, a
                // signal table of another shape (column count, a value too
                // long for it): the same again next time.
                1044 | 1045 | 1142 | 1143 | 1146 | 1054 | 1064 | 1227 | 1290 | 1036 | 1136 | 1406
            ),
            Self::Query(_) | Self::SignalChannel(_) => true,
            Self::Schema(SchemaError::Server { .. }) => true,
            Self::Sink(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// One table of the snapshot, as Debezium stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub database: String,
    pub table: String,
    pub additional_condition: Option<String>,
}

impl Collection {
    pub fn id(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }
}

/// Debezium's `incremental_snapshot_collections` JSON text.
pub fn collections_json(collections: &VecDeque<Collection>) -> String {
    let list: Vec<Json> = collections
        .iter()
        .map(|c| {
            json!({
                COLLECTION_ID: c.id(),
                COLLECTION_CONDITION: c.additional_condition,
                COLLECTION_SURROGATE: Json::Null,
            })
        })
        .collect();
    Json::Array(list).to_string()
}

/// Reads `incremental_snapshot_collections` back.
pub fn parse_collections(text: &str) -> Result<VecDeque<Collection>, IncrementalError> {
    let corrupt = |why: String| IncrementalError::Corrupt(format!("{why}: {text}"));
    let list: Vec<HashMap<String, Option<String>>> =
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    list.into_iter()
        .map(|m| {
            let id = m
                .get(COLLECTION_ID)
                .cloned()
                .flatten()
                .ok_or_else(|| corrupt(format!("no {COLLECTION_ID}")))?;
            let (database, table) = id
                .split_once('.')
                .ok_or_else(|| corrupt(format!("{id} is not <db>.<table>")))?;
            Ok(Collection {
                database: database.to_owned(),
                table: table.to_owned(),
                additional_condition: m
                    .get(COLLECTION_CONDITION)
                    .cloned()
                    .flatten()
                    .filter(|c| !c.is_empty()),
            })
        })
        .collect()
}

/// A primary key's values as JSON (tagged, so they bind back as the same
/// parameter types): `{"i":-1}`, `{"u":1}`, `{"s":"text"}`, `{"b":"<hex>"}`,
/// `{"f":1.5}`, `{"d":1.5}`, `{"dt":[y,mo,d,h,mi,s,us]}`,
/// `{"t":[neg,days,h,mi,s,us]}`, `null`.
pub fn encode_key(values: &[Value]) -> String {
    let items: Vec<Json> = values
        .iter()
        .map(|v| match v {
            Value::NULL => Json::Null,
            Value::Int(n) => json!({ "i": n }),
            Value::UInt(n) => json!({ "u": n }),
            Value::Float(f) => json!({ "f": f }),
            Value::Double(d) => json!({ "d": d }),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => json!({ "s": s }),
                Err(_) => json!({ "b": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
            },
            Value::Date(y, mo, d, h, mi, s, us) => json!({ "dt": [y, mo, d, h, mi, s, us] }),
            Value::Time(neg, days, h, mi, s, us) => {
                json!({ "t": [u8::from(*neg), days, h, mi, s, us] })
            }
        })
        .collect();
    Json::Array(items).to_string()
}

/// Reads [`encode_key`]'s text back.
pub fn decode_key(text: &str) -> Result<Vec<Value>, IncrementalError> {
    let corrupt = |why: &str| IncrementalError::Corrupt(format!("key {text}: {why}"));
    let items: Vec<Json> = serde_json::from_str(text).map_err(|e| corrupt(&e.to_string()))?;
    let num = |a: &[Json], i: usize| a.get(i).and_then(Json::as_u64).unwrap_or_default();
    items
        .iter()
        .map(|item| {
            if item.is_null() {
                return Ok(Value::NULL);
            }
            let obj = item.as_object().ok_or_else(|| corrupt("not an object"))?;
            let (tag, v) = obj.iter().next().ok_or_else(|| corrupt("empty value"))?;
            Ok(match (tag.as_str(), v) {
                ("i", v) => Value::Int(v.as_i64().ok_or_else(|| corrupt("i"))?),
                ("u", v) => Value::UInt(v.as_u64().ok_or_else(|| corrupt("u"))?),
                ("f", v) => Value::Float(v.as_f64().ok_or_else(|| corrupt("f"))? as f32),
                ("d", v) => Value::Double(v.as_f64().ok_or_else(|| corrupt("d"))?),
                ("s", Json::String(s)) => Value::Bytes(s.clone().into_bytes()),
                ("b", Json::String(h)) => {
                    let bytes: Option<Vec<u8>> = (0..h.len())
                        .step_by(2)
                        .map(|i| h.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
                        .collect();
                    Value::Bytes(bytes.ok_or_else(|| corrupt("b"))?)
                }
                ("dt", Json::Array(a)) => Value::Date(
                    num(a, 0) as u16,
                    num(a, 1) as u8,
                    num(a, 2) as u8,
                    num(a, 3) as u8,
                    num(a, 4) as u8,
                    num(a, 5) as u8,
                    num(a, 6) as u32,
                ),
                ("t", Json::Array(a)) => Value::Time(
                    num(a, 0) == 1,
                    num(a, 1) as u32,
                    num(a, 2) as u8,
                    num(a, 3) as u8,
                    num(a, 4) as u8,
                    num(a, 5) as u32,
                ),
                _ => return Err(corrupt("unknown tag")),
            })
        })
        .collect()
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// `(k1, .., kn) > (v1, .., vn)` (`greater`) or `<= (v1, .., vn)` spelled
/// out as ORs of ANDs (an index range on every server), with the number of
/// parameters it binds in order: the key's values repeated per term.
pub fn key_condition(columns: &[String], greater: bool) -> (String, Vec<usize>) {
    let mut terms = Vec::with_capacity(columns.len() + 1);
    let mut params = Vec::new();
    for i in 0..columns.len() {
        let mut parts = Vec::with_capacity(i + 1);
        for (j, c) in columns.iter().enumerate().take(i) {
            parts.push(format!("{} = ?", quote(c)));
            params.push(j);
        }
        let op = if greater { ">" } else { "<" };
        parts.push(format!("{} {op} ?", quote(&columns[i])));
        params.push(i);
        terms.push(format!("({})", parts.join(" AND ")));
    }
    if !greater {
        // `<=`: equal on every column is in too.
        let parts: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                params.push(j);
                format!("{} = ?", quote(c))
            })
            .collect();
        terms.push(format!("({})", parts.join(" AND ")));
    }
    (format!("({})", terms.join(" OR ")), params)
}

/// The chunk query of `table` (all columns, in schema order) and its
/// parameters.
#[allow(clippy::too_many_arguments)]
pub fn chunk_query(
    database: &str,
    table: &str,
    columns: &[String],
    key: &[String],
    after: Option<&[Value]>,
    max: &[Value],
    condition: Option<&str>,
    limit: u32,
) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(after) = after {
        let (sql, order) = key_condition(key, true);
        conditions.push(sql);
        params.extend(order.iter().map(|&i| after[i].clone()));
    }
    let (sql, order) = key_condition(key, false);
    conditions.push(sql);
    params.extend(order.iter().map(|&i| max[i].clone()));
    if let Some(c) = condition {
        conditions.push(format!("({c})"));
    }
    let order_by: Vec<String> = key.iter().map(|c| quote(c)).collect();
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    (
        format!(
            "SELECT {} FROM {}.{} WHERE {} ORDER BY {} LIMIT {limit}",
            cols.join(", "),
            quote(database),
            quote(table),
            conditions.join(" AND "),
            order_by.join(", ")
        ),
        params,
    )
}

/// A buffered chunk row.
#[derive(Debug)]
struct WindowRow {
    key: Vec<Value>,
    /// Framed Avro key.
    key_bytes: Vec<u8>,
    cells: Vec<Cell>,
}

/// Where the stream is when the incremental snapshot acts: what its
/// records' `source` and positions say.
#[derive(Debug, Clone)]
pub struct At {
    pub server_id: u32,
    pub file: String,
    /// The position of the signal row being handled, not yet delivered
    /// (skip counts up to, not including, it).
    pub offset: SourceOffset,
}

/// The incremental snapshot's state and its connection.
#[derive(Debug)]
pub struct Incremental {
    cfg: Arc<ConnectorConfig>,
    converter: ConverterConfig,
    opts: Option<mysql_async::Opts>,
    conn: Option<Conn>,
    collections: VecDeque<Collection>,
    /// Rows of `collections[0]` up to this key are delivered.
    last_key: Option<Vec<Value>>,
    /// The largest key of `collections[0]` when its snapshot began.
    max_key: Option<Vec<Value>>,
    /// `collections[0]`, ready to write, and its key column names.
    table: Option<(Arc<PreparedTable>, Vec<String>)>,
    chunk_id: Option<String>,
    window_open: bool,
    window: Vec<Option<WindowRow>>,
    /// Key datum (frame stripped) -> index in `window`.
    index: HashMap<Vec<u8>, usize>,
    chunk_end: Option<Vec<Value>>,
    paused: bool,
    /// `read.only`: GTID watermarks instead of signal-table INSERTs.
    read_only: bool,
    /// Read-only: `gtid_executed` before and after the chunk's SELECT.
    low: Option<MySqlGtidSet>,
    high: Option<MySqlGtidSet>,
    /// A DDL was streamed: `table` is prepared again before the next chunk.
    stale: bool,
    /// A chunk must be read (after a restart, a failed read, or a resume).
    pending: bool,
    /// Rows emitted for the current table, and since when.
    table_rows: u64,
    table_started: Instant,
    /// Rows emitted by this snapshot (this run), and since when.
    total_rows: u64,
    started: Instant,
    key_buf: Vec<u8>,
}

impl Incremental {
    /// The state `stored` describes (nothing running when it has none).
    pub fn new(
        cfg: Arc<ConnectorConfig>,
        converter: ConverterConfig,
        stored: &IncrementalOffset,
    ) -> Result<Self, IncrementalError> {
        let collections = match &stored.incremental_snapshot_collections {
            Some(text) => parse_collections(text)?,
            None => VecDeque::new(),
        };
        let key = |text: &Option<Arc<str>>| text.as_deref().map(decode_key).transpose();
        let last_key = key(&stored.incremental_snapshot_primary_key)?;
        let max_key = key(&stored.incremental_snapshot_maximum_key)?;
        let pending = !collections.is_empty();
        if pending {
            tracing::info!(
                tables = %collections.iter().map(Collection::id).collect::<Vec<_>>().join(","),
                last_key = stored.incremental_snapshot_primary_key.as_deref().unwrap_or("-"),
                "incremental snapshot in progress: resuming after the last delivered key"
            );
        }
        Ok(Self {
            read_only: cfg.signals.read_only,
            cfg,
            converter,
            opts: None,
            conn: None,
            collections,
            last_key,
            max_key,
            table: None,
            chunk_id: None,
            window_open: false,
            window: Vec::new(),
            index: HashMap::new(),
            chunk_end: None,
            paused: false,
            low: None,
            high: None,
            stale: false,
            pending,
            table_rows: 0,
            table_started: Instant::now(),
            total_rows: 0,
            started: Instant::now(),
            key_buf: Vec::with_capacity(64),
        })
    }

    /// Connection options for the chunk reads and watermark writes.
    pub fn set_opts(&mut self, opts: mysql_async::Opts) {
        self.opts = Some(opts);
    }

    pub fn is_running(&self) -> bool {
        !self.collections.is_empty()
    }

    /// The state to store with positions from now on. Built when the state
    /// changes (per chunk or signal); the positions that carry it share its
    /// texts.
    pub fn offset(&self) -> IncrementalOffset {
        if self.collections.is_empty() {
            return IncrementalOffset::default();
        }
        IncrementalOffset {
            incremental_snapshot_collections: Some(collections_json(&self.collections).into()),
            incremental_snapshot_primary_key: self
                .last_key
                .as_deref()
                .map(|k| encode_key(k).into()),
            incremental_snapshot_maximum_key: self.max_key.as_deref().map(|k| encode_key(k).into()),
        }
    }

    /// A DDL statement was streamed: the next chunk takes the table's
    /// shape afresh (the window in flight, read before it, keeps its own).
    pub fn schema_changed(&mut self) {
        self.stale = true;
    }

    /// The table whose row events must be checked against the window
    /// (while it is open and not empty).
    pub fn dedup_table(&self) -> Option<(&str, &str)> {
        match (&self.table, self.window_open && !self.index.is_empty()) {
            (Some((t, _)), true) => Some((&t.schema.database, &t.schema.table)),
            _ => None,
        }
    }

    /// A streamed row of [`Self::dedup_table`] changed: its key(s) leave
    /// the window (the streamed change is as new as the chunk's read or newer).
    pub fn observe(&mut self, streamed: &PreparedTable, image: &[Cell]) -> Result<(), SinkError> {
        let mut buf = std::mem::take(&mut self.key_buf);
        let has = Sink::key_into(streamed, image, &mut buf)?;
        if has && buf.len() >= FRAME {
            if let Some(i) = self.index.remove(&buf[FRAME..]) {
                if let Some(slot) = self.window.get_mut(i) {
                    *slot = None;
                }
            }
        }
        self.key_buf = buf;
        Ok(())
    }

    /// Whether a chunk is due (after a restart, a failed read, a resume).
    pub fn is_pending(&self) -> bool {
        self.pending && !self.paused && !self.collections.is_empty()
    }

    /// Reads the chunk that is due, if any.
    pub async fn read_pending(
        &mut self,
        sink: &Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        if self.is_pending() {
            self.read_chunk(sink, known).await?;
        }
        Ok(())
    }

    /// A stream error interrupted a chunk: drop its window, read it again
    /// (with a new id) once streaming resumes.
    pub fn revert_chunk(&mut self) {
        if self.chunk_id.take().is_some() {
            tracing::info!("incremental snapshot: the chunk in flight is read again");
        }
        self.window.clear();
        self.index.clear();
        self.window_open = false;
        self.chunk_end = None;
        self.low = None;
        self.high = None;
        self.pending = !self.collections.is_empty();
        self.conn = None;
    }

    async fn connection(&mut self) -> Result<&mut Conn, IncrementalError> {
        if self.conn.is_none() {
            let opts = self
                .opts
                .clone()
                .ok_or_else(|| IncrementalError::Corrupt("no connection options".into()))?;
            let mut conn = Conn::new(opts).await?;
            conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(IncrementalError::Corrupt("no connection".into())),
        }
    }

    /// Acts on a signal. `at`: where the stream is (for window records).
    pub async fn act(
        &mut self,
        action: Action,
        at: &At,
        sink: &mut Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        match action {
            Action::ExecuteSnapshot(execute) => {
                let mut added = self.expand(&execute).await?;
                // A signal replayed after a reconnect adds nothing twice.
                added.retain(|c| {
                    !self
                        .collections
                        .iter()
                        .any(|q| q.database == c.database && q.table == c.table)
                });
                if added.is_empty() {
                    tracing::warn!(collections = ?execute.data_collections, "execute-snapshot names no captured table with a primary key; nothing to do");
                    return Ok(());
                }
                let start = self.collections.is_empty();
                tracing::info!(tables = %added.iter().map(Collection::id).collect::<Vec<_>>().join(","), chunk_size = self.cfg.signals.chunk_size, "incremental snapshot requested");
                self.collections.extend(added);
                if start {
                    self.started = Instant::now();
                    self.total_rows = 0;
                    self.read_chunk(sink, known).await?;
                }
            }
            Action::StopSnapshot { data_collections } => {
                self.stop(&data_collections, sink, known).await?
            }
            Action::PauseSnapshot => {
                if self.is_running() {
                    tracing::info!("incremental snapshot paused");
                    self.paused = true;
                }
            }
            Action::ResumeSnapshot => {
                if self.paused {
                    tracing::info!("incremental snapshot resumed");
                    self.paused = false;
                    if self.chunk_id.is_none() {
                        self.pending = true;
                        self.read_pending(sink, known).await?;
                    }
                }
            }
            Action::WindowOpen(id) => {
                if self.expects(&id) {
                    self.window_open = true;
                }
            }
            Action::WindowClose(id) => {
                if self.expects(&id) {
                    self.close_window(at, sink, known).await?;
                }
            }
            Action::Log(message) => tracing::info!(signal = "log", "{message}"),
        }
        Ok(())
    }

    /// The window of the chunk in flight closes here: its rows go out,
    /// and the next chunk is read (unless paused).
    async fn close_window(
        &mut self,
        at: &At,
        sink: &mut Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        self.window_open = false;
        self.chunk_id = None;
        self.low = None;
        self.high = None;
        if let Err(e) = self.emit_window(at, sink).await {
            // Not a stall: the rest of the chunk is read again (after the
            // last key sent) when streaming resumes.
            self.revert_chunk();
            return Err(e);
        }
        if !self.paused {
            self.read_chunk(sink, known).await?;
        } else {
            self.pending = true;
        }
        Ok(())
    }

    /// Read-only: whether the window of the chunk in flight closes now,
    /// every transaction of its high watermark being streamed (`committed`:
    /// the GTIDs the stream has committed so far).
    pub fn window_due(&self, committed: &GtidSet) -> bool {
        match (&self.high, committed) {
            (Some(high), GtidSet::MySql(done)) if self.chunk_id.is_some() => {
                high.is_subset_of(done)
            }
            (Some(high), _) if self.chunk_id.is_some() => high.is_empty(),
            _ => false,
        }
    }

    /// Read-only: [`Self::close_window`] when [`Self::window_due`]: at a
    /// quiet point (a commit, a server heartbeat) of the stream.
    pub async fn close_due_windows(
        &mut self,
        committed: &GtidSet,
        at: &At,
        sink: &mut Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        // A caught-up stream: each chunk closes at once, the next is read.
        while self.window_due(committed) {
            self.close_window(at, sink, known).await?;
        }
        Ok(())
    }

    /// Whether the rows of a transaction with this GTID take keys out of
    /// the window: always with signal-table watermarks (the window is
    /// bounded by them); read-only, those not in the low watermark (not
    /// surely older than the chunk's SELECT).
    pub fn dedups(&self, gtid: Option<&str>) -> bool {
        if !self.read_only {
            return true;
        }
        let (Some(low), Some(gtid)) = (&self.low, gtid) else {
            return true;
        };
        match MySqlGtidSet::parse(gtid) {
            Ok(one) => !one.is_subset_of(low),
            Err(_) => true,
        }
    }

    async fn gtid_executed(&mut self) -> Result<MySqlGtidSet, IncrementalError> {
        let conn = self.connection().await?;
        let text: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_executed").await?;
        MySqlGtidSet::parse(&text.unwrap_or_default().replace('\n', ""))
            .map_err(|e| IncrementalError::Corrupt(format!("gtid_executed: {e}")))
    }

    /// Whether a watermark id belongs to the chunk in flight.
    fn expects(&self, id: &str) -> bool {
        let ok = self.chunk_id.as_deref().is_some_and(|c| id.starts_with(c));
        if !ok {
            tracing::debug!(
                id,
                "a watermark of another chunk (a replay, or another connector); ignored"
            );
        }
        ok
    }

    /// The captured tables an `execute-snapshot` names, in its order.
    async fn expand(
        &mut self,
        execute: &ExecuteSnapshot,
    ) -> Result<Vec<Collection>, IncrementalError> {
        let cfg = Arc::clone(&self.cfg);
        let conn = self.connection().await?;
        let tables = list_tables(conn).await?;
        let mut out: Vec<Collection> = Vec::new();
        for pattern in &execute.data_collections {
            let Ok(re) = RegexBuilder::new(&format!("^(?:{pattern})$"))
                .case_insensitive(true)
                .build()
            else {
                tracing::warn!(pattern, "execute-snapshot: not a valid regex; ignored");
                continue;
            };
            let mut matched = false;
            for (db, t) in &tables {
                let full = format!("{db}.{t}");
                if !re.is_match(&full) {
                    continue;
                }
                matched = true;
                if !cfg.filter.includes(db, t) {
                    tracing::warn!(table = %full, "execute-snapshot: table is not captured; skipped");
                    continue;
                }
                if cfg.signals.is_signal_table(db, t) {
                    tracing::warn!(table = %full, "execute-snapshot: the signal table is not snapshotted");
                    continue;
                }
                if out.iter().any(|c| c.database == *db && c.table == *t) {
                    continue;
                }
                let condition = execute
                    .additional_conditions
                    .iter()
                    .find(|c| {
                        RegexBuilder::new(&format!("^(?:{})$", c.data_collection))
                            .case_insensitive(true)
                            .build()
                            .is_ok_and(|r| r.is_match(&full))
                    })
                    .map(|c| c.filter.clone());
                out.push(Collection {
                    database: db.clone(),
                    table: t.clone(),
                    additional_condition: condition,
                });
            }
            if !matched {
                tracing::warn!(pattern, "execute-snapshot: no such table");
            }
        }
        Ok(out)
    }

    async fn stop(
        &mut self,
        names: &[String],
        sink: &mut Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        if self.collections.is_empty() {
            return Ok(());
        }
        let patterns: Vec<regex::Regex> = names
            .iter()
            .filter_map(|p| {
                RegexBuilder::new(&format!("^(?:{p})$"))
                    .case_insensitive(true)
                    .build()
                    .ok()
            })
            .collect();
        let stops =
            |c: &Collection| patterns.is_empty() || patterns.iter().any(|r| r.is_match(&c.id()));
        let current_stops = self.collections.front().is_some_and(&stops);
        let before = self.collections.len();
        let kept: VecDeque<Collection> = self.collections.drain(..).filter(|c| !stops(c)).collect();
        self.collections = kept;
        tracing::info!(
            stopped = before - self.collections.len(),
            left = self.collections.len(),
            "stop-snapshot"
        );
        if current_stops {
            // The table being read is gone: its window too; the next one
            // (if any) starts with a new chunk.
            self.chunk_id = None;
            self.window.clear();
            self.index.clear();
            self.window_open = false;
            self.low = None;
            self.high = None;
            self.next_table();
            if !self.collections.is_empty() && !self.paused {
                self.read_chunk(sink, known).await?;
            }
        }
        if self.collections.is_empty() {
            self.finished();
        }
        Ok(())
    }

    fn next_table(&mut self) {
        self.table = None;
        self.last_key = None;
        self.max_key = None;
        self.chunk_end = None;
        self.table_rows = 0;
        self.table_started = Instant::now();
    }

    fn finished(&mut self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            rows = self.total_rows,
            secs = format!("{secs:.1}"),
            rows_per_sec = format!("{:.0}", self.total_rows as f64 / secs),
            "incremental snapshot: done"
        );
        self.pending = false;
        self.paused = false;
    }

    /// Prepares `collections[0]`: its shape (the streamer's when it has
    /// one, else the catalog's) and its key columns; `None`: skip it.
    async fn prepare_current(
        &mut self,
        sink: &Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<Option<()>, IncrementalError> {
        if self.table.is_some() {
            return Ok(Some(()));
        }
        let Some(c) = self.collections.front().cloned() else {
            return Ok(None);
        };
        let prepared = match known.get(&(c.database.clone(), c.table.clone())) {
            Some(p) => Arc::clone(p),
            None => {
                let conn = self.connection().await?;
                let Some(schema) = load_table_schema(conn, &c.database, &c.table).await? else {
                    tracing::warn!(table = %c.id(), "incremental snapshot: table no longer exists; skipped");
                    return Ok(None);
                };
                sink.prepare(schema, &self.converter).await?
            }
        };
        // Chunks follow the record key: the primary key, or the columns
        // `message.key.columns` names (as Debezium's chunk queries do).
        if !prepared.codec.has_key() {
            tracing::warn!(table = %c.id(), "incremental snapshot: table has no primary key and no message.key.columns; skipped (as Debezium)");
            return Ok(None);
        }
        let key: Vec<String> = prepared.codec.key_columns().map(str::to_owned).collect();
        self.table = Some((prepared, key));
        Ok(Some(()))
    }

    /// Writes one watermark row into the signal table.
    async fn watermark(
        &mut self,
        kind: &str,
        id: &str,
        data: String,
    ) -> Result<(), IncrementalError> {
        let Some((db, table)) = self.cfg.signals.data_collection.clone() else {
            return Err(IncrementalError::Corrupt(
                "incremental snapshots need signal.data.collection for their watermarks".into(),
            ));
        };
        let sql = format!(
            "INSERT INTO {}.{} VALUES (?, ?, ?)",
            quote(&db),
            quote(&table)
        );
        let conn = self.connection().await?;
        conn.exec_drop(sql, (id, kind, data)).await?;
        Ok(())
    }

    /// Opens a window, reads the next chunk (moving past finished or
    /// empty tables), and closes the window.
    async fn read_chunk(
        &mut self,
        sink: &Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        self.pending = false;
        if self.paused || self.collections.is_empty() {
            return Ok(());
        }
        let result = self.read_chunk_inner(sink, known).await;
        if result.is_err() {
            self.revert_chunk();
        }
        result
    }

    async fn read_chunk_inner(
        &mut self,
        sink: &Sink,
        known: &HashMap<(String, String), Arc<PreparedTable>>,
    ) -> Result<(), IncrementalError> {
        if std::mem::take(&mut self.stale) {
            self.table = None;
        }
        let chunk = uuid::Uuid::new_v4().to_string();
        let opened = crate::clock::now_ms();
        self.window.clear();
        self.index.clear();
        self.window_open = false;
        if self.read_only {
            self.low = Some(self.gtid_executed().await?);
            self.high = None;
        } else {
            self.watermark(
                WINDOW_OPEN,
                &format!("{chunk}-open"),
                format!("{{\"openWindowTimestamp\": \"{opened}\"}}"),
            )
            .await?;
        }
        self.chunk_id = Some(chunk.clone());
        while !self.collections.is_empty() {
            if self.prepare_current(sink, known).await?.is_none() {
                self.collections.pop_front();
                self.next_table();
                continue;
            }
            let Some((table, key)) = self.table.clone() else {
                break;
            };
            let condition = self
                .collections
                .front()
                .and_then(|c| c.additional_condition.clone());
            if self.max_key.is_none() {
                let max = self.maximum_key(&table, &key, condition.as_deref()).await?;
                let Some(max) = max else {
                    tracing::info!(table = %table.schema.qualified_name(), "incremental snapshot: table is empty");
                    self.collections.pop_front();
                    self.next_table();
                    continue;
                };
                tracing::info!(table = %table.schema.qualified_name(), maximum_key = %encode_key(&max), "incremental snapshot: reading table");
                self.max_key = Some(max);
            }
            let read = self
                .select_chunk(&table, &key, condition.as_deref())
                .await?;
            if read == 0 {
                let secs = self.table_started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    table = %table.schema.qualified_name(),
                    rows = self.table_rows,
                    rows_per_sec = format!("{:.0}", self.table_rows as f64 / secs),
                    "incremental snapshot: table done"
                );
                self.collections.pop_front();
                self.next_table();
                continue;
            }
            break;
        }
        if self.read_only {
            // The window is open from the low watermark on (see `dedups`);
            // it closes once the stream committed the high one.
            self.high = Some(self.gtid_executed().await?);
            self.window_open = true;
        } else {
            let closed = crate::clock::now_ms();
            self.watermark(
                WINDOW_CLOSE,
                &format!("{chunk}-close"),
                format!(
                    "{{\"openWindowTimestamp\": \"{opened}\", \"closeWindowTimestamp\": \"{closed}\"}}"
                ),
            )
            .await?;
        }
        if self.collections.is_empty() {
            self.chunk_id = None;
            self.window_open = false;
            self.low = None;
            self.high = None;
            self.finished();
        }
        Ok(())
    }

    async fn maximum_key(
        &mut self,
        table: &PreparedTable,
        key: &[String],
        condition: Option<&str>,
    ) -> Result<Option<Vec<Value>>, IncrementalError> {
        let cols: Vec<String> = key.iter().map(|c| quote(c)).collect();
        let desc: Vec<String> = key.iter().map(|c| format!("{} DESC", quote(c))).collect();
        let filter = condition
            .map(|c| format!(" WHERE ({c})"))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {} FROM {}.{}{filter} ORDER BY {} LIMIT 1",
            cols.join(", "),
            quote(&table.schema.database),
            quote(&table.schema.table),
            desc.join(", ")
        );
        let conn = self.connection().await?;
        let row: Option<Row> = conn.exec_first(sql, ()).await?;
        Ok(row.map(Row::unwrap))
    }

    /// Reads one chunk into the window; returns its row count.
    async fn select_chunk(
        &mut self,
        table: &Arc<PreparedTable>,
        key: &[String],
        condition: Option<&str>,
    ) -> Result<usize, IncrementalError> {
        let Some(max) = self.max_key.clone() else {
            return Ok(0);
        };
        let columns: Vec<String> = table
            .schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let (sql, params) = chunk_query(
            &table.schema.database,
            &table.schema.table,
            &columns,
            key,
            self.last_key.as_deref(),
            &max,
            condition,
            self.cfg.signals.chunk_size,
        );
        let key_index = table.codec.key_indices().to_vec();
        let mut rows: Vec<WindowRow> = Vec::new();
        {
            let conn = self.connection().await?;
            // The binary protocol, as the initial snapshot (FLOAT fidelity).
            let mut result = conn.exec_iter(sql, params).await?;
            if let Some(mut stream) = result.stream::<Row>().await? {
                while let Some(row) = stream.next().await {
                    let row = row?;
                    let key_values: Vec<Value> = key_index
                        .iter()
                        .map(|&i| row.as_ref(i).cloned().unwrap_or(Value::NULL))
                        .collect();
                    let cells = row_from_snapshot(row, &table.schema)?;
                    let mut key_bytes = Vec::new();
                    Sink::key_into(table, &cells, &mut key_bytes)?;
                    rows.push(WindowRow {
                        key: key_values,
                        key_bytes,
                        cells,
                    });
                }
            };
        }
        let n = rows.len();
        self.chunk_end = rows.last().map(|r| r.key.clone());
        for (i, row) in rows.into_iter().enumerate() {
            if let Some(body) = row.key_bytes.get(FRAME..) {
                self.index.insert(body.to_vec(), i);
            }
            self.window.push(Some(row));
        }
        Ok(n)
    }

    /// The close watermark: the window's remaining rows as `op r` records.
    async fn emit_window(&mut self, at: &At, sink: &mut Sink) -> Result<(), IncrementalError> {
        let Some((table, _)) = self.table.clone() else {
            self.window.clear();
            self.index.clear();
            return Ok(());
        };
        let mut source = SourceInfo {
            server_id: at.server_id,
            file: at.file.clone(),
            pos: at.offset.pos,
            row: 0,
            gtid: None,
            ts_ms: crate::clock::now_ms(),
            snapshot: SnapshotMarker::Incremental,
            thread: None,
            query: None,
        };
        // The tables and the maximum key are the same for the whole window:
        // built once, shared by every record's position.
        let mut offset = at.offset.clone();
        offset.incremental = self.offset();
        let window = std::mem::take(&mut self.window);
        self.index.clear();
        let mut emitted = 0u64;
        for row in window.into_iter().flatten() {
            // Each record's position says: rows up to this key delivered.
            if offset.incremental.is_running() {
                offset.incremental.incremental_snapshot_primary_key =
                    Some(encode_key(&row.key).into());
            }
            source.ts_ms = crate::clock::now_ms();
            sink.change(
                &table,
                Some(row.key_bytes.as_slice()),
                None,
                Some(row.cells.as_slice()),
                &source,
                Op::Read,
                Some(&offset),
                None,
            )
            .await?;
            // Only once it is sent: a failed send leaves the key where the
            // last sent record said, and the chunk is read again from there.
            self.last_key = Some(row.key);
            table.events.read().increment(1);
            emitted += 1;
        }
        // Rows of the chunk removed from the window were streamed before
        // this point: the chunk is complete up to its end.
        if let Some(end) = self.chunk_end.take() {
            self.last_key = Some(end);
        }
        self.table_rows += emitted;
        self.total_rows += emitted;
        metrics::counter!("cdc_incremental_snapshot_rows_total").increment(emitted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_their_types() {
        let key = vec![
            Value::UInt(u64::MAX),
            Value::Int(-3),
            Value::Bytes(b"caf\xc3\xa9".to_vec()),
            Value::Bytes(vec![0xff, 0x00]),
            Value::Date(2024, 2, 29, 23, 59, 58, 123_456),
            Value::Time(true, 1, 2, 3, 4, 5),
            Value::Double(1.5),
            Value::NULL,
        ];
        let text = encode_key(&key);
        assert_eq!(decode_key(&text).unwrap(), key);
        assert!(decode_key("[{\"x\":1}]").is_err());
        assert!(decode_key("nope").is_err());
    }

    #[test]
    fn collections_in_debeziums_json() {
        let mut c = VecDeque::new();
        c.push_back(Collection {
            database: "shop".into(),
            table: "purchases".into(),
            additional_condition: Some("status = 2".into()),
        });
        c.push_back(Collection {
            database: "shop".into(),
            table: "users".into(),
            additional_condition: None,
        });
        let text = collections_json(&c);
        let parsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed[0]["incremental_snapshot_collections_id"],
            "shop.purchases"
        );
        assert_eq!(
            parsed[0]["incremental_snapshot_collections_additional_condition"],
            "status = 2"
        );
        assert!(parsed[1]["incremental_snapshot_collections_additional_condition"].is_null());
        assert!(parsed[1]["incremental_snapshot_collections_surrogate_key"].is_null());
        assert_eq!(parse_collections(&text).unwrap(), c);
        // Debezium's own text (surrogate key absent) reads too.
        let debezium = r#"[{"incremental_snapshot_collections_id":"a.b","incremental_snapshot_collections_additional_condition":null}]"#;
        assert_eq!(parse_collections(debezium).unwrap()[0].table, "b");
    }

    /// A resumed snapshot stores the very texts it resumed from.
    #[test]
    fn offset_round_trips_the_stored_state() {
        let props = crate::config::Properties(
            [
                ("database.hostname", "db"),
                ("database.user", "cdc"),
                ("database.password", "pw"),
                ("topic.prefix", "mysql"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let cfg = Arc::new(ConnectorConfig::from_properties(&props).unwrap());
        let converter = crate::converter_config(&cfg);
        let mut tables = VecDeque::new();
        tables.push_back(Collection {
            database: "shop".into(),
            table: "users".into(),
            additional_condition: None,
        });
        let stored = IncrementalOffset {
            incremental_snapshot_collections: Some(collections_json(&tables).into()),
            incremental_snapshot_primary_key: Some(encode_key(&[Value::UInt(7)]).into()),
            incremental_snapshot_maximum_key: Some(encode_key(&[Value::UInt(90)]).into()),
        };
        let inc = Incremental::new(cfg.clone(), converter.clone(), &stored).unwrap();
        assert!(inc.is_running());
        assert_eq!(inc.offset(), stored);
        let none = Incremental::new(cfg, converter, &IncrementalOffset::default()).unwrap();
        assert_eq!(none.offset(), IncrementalOffset::default());
    }

    #[test]
    fn composite_key_ranges() {
        let cols = vec!["a".to_owned(), "b".to_owned()];
        let (gt, order) = key_condition(&cols, true);
        assert_eq!(gt, "((`a` > ?) OR (`a` = ? AND `b` > ?))");
        assert_eq!(order, [0, 0, 1]);
        let (le, order) = key_condition(&cols, false);
        assert_eq!(
            le,
            "((`a` < ?) OR (`a` = ? AND `b` < ?) OR (`a` = ? AND `b` = ?))"
        );
        assert_eq!(order, [0, 0, 1, 0, 1]);

        let (sql, params) = chunk_query(
            "d",
            "t",
            &["a".into(), "b".into(), "c".into()],
            &cols,
            Some(&[Value::Int(1), Value::Int(2)]),
            &[Value::Int(9), Value::Int(9)],
            Some("c > 0"),
            10,
        );
        assert_eq!(
            sql,
            "SELECT `a`, `b`, `c` FROM `d`.`t` WHERE ((`a` > ?) OR (`a` = ? AND `b` > ?)) \
             AND ((`a` < ?) OR (`a` = ? AND `b` < ?) OR (`a` = ? AND `b` = ?)) AND (c > 0) \
             ORDER BY `a`, `b` LIMIT 10"
        );
        assert_eq!(
            params,
            [1, 1, 2, 9, 9, 9, 9, 9]
                .into_iter()
                .map(Value::Int)
                .collect::<Vec<_>>()
        );
        // The first chunk has no lower bound.
        let (sql, params) =
            chunk_query("d", "t", &cols, &cols[..1], None, &[Value::Int(5)], None, 3);
        assert_eq!(
            sql,
            "SELECT `a`, `b` FROM `d`.`t` WHERE ((`a` < ?) OR (`a` = ?)) ORDER BY `a` LIMIT 3"
        );
        assert_eq!(params.len(), 2);
    }

    /// A composite-key chunk walk over an in-memory table, evaluating the
    /// generated conditions: every key read exactly once, in order.
    #[test]
    fn chunks_cover_a_composite_key_exactly_once() {
        let mut table: Vec<(i64, i64)> = Vec::new();
        for a in 0..7 {
            for b in (0..5).rev() {
                table.push((a, b * 3));
            }
        }
        table.sort();
        let max = *table.last().unwrap();
        let gt =
            |k: (i64, i64), after: (i64, i64)| k.0 > after.0 || (k.0 == after.0 && k.1 > after.1);
        let le = |k: (i64, i64), m: (i64, i64)| k.0 < m.0 || (k.0 == m.0 && k.1 < m.1) || k == m;
        let mut last: Option<(i64, i64)> = None;
        let mut seen = Vec::new();
        loop {
            let chunk: Vec<(i64, i64)> = table
                .iter()
                .copied()
                .filter(|&k| last.is_none_or(|l| gt(k, l)) && le(k, max))
                .take(4)
                .collect();
            if chunk.is_empty() {
                break;
            }
            last = chunk.last().copied();
            seen.extend(chunk);
        }
        assert_eq!(seen, table);
    }
}
