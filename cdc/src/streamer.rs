//! Streaming: the binlog connection and its events turned into change
//! records. Where each event leaves the stream ([`Position`]: transaction
//! start, skip counts, commits) is [`crate::position`]'s; this module does
//! the I/O around it: connect and request the stream, resolve table shapes,
//! decode rows ([`crate::rows`]), encode and send records ([`crate::kafka`]).
//!
//! Invariants:
//! - Resuming (restart or reconnect) asks for the stream at a transaction
//!   start, by file and position or by GTID set
//!   ([`crate::start::ResumeBy`]): by GTID the server picks the first
//!   transaction the set lacks and the file comes from its first
//!   (artificial) ROTATE. Every reconnect asks the same way, with the set of
//!   the last emitted offset.
//! - Rows are decoded with the schema the TABLE_MAP event describes (FULL
//!   metadata): after DDL, or when lagging behind DDL, a row is read with the
//!   shape it was written under, never with today's catalog. A new shape gets a
//!   new registered schema version before its first record.
//! - Nothing is dropped silently: unknown event types are ignored by design
//!   (they carry no rows), operations `skipped.operations` names are counted
//!   (`cdc_skipped_total{reason}`), values the format cannot represent are
//!   counted and warned about (`crate::metrics::value_replaced`). A rows
//!   event that cannot be decoded stops streaming, or, with
//!   `event.processing.failure.handling.mode` warn or skip, is passed over,
//!   counted (`cdc_skipped_total{reason="event_processing_failure"}`) and
//!   with warn logged with its position.
//! - TRUNCATE of a captured table is Debezium's truncate record (op `t`,
//!   before/after null, null Kafka key, the table's current value schema) on
//!   the table's topic, or nothing when `skipped.operations` has `t`
//!   (Debezium's default). It is never a schema change and keeps the cached
//!   table shapes. Its position is queued behind its record: a restart
//!   replays it at most together with what followed it, never alone after
//!   later rows.
//! - With `include.schema.changes`, a CREATE/ALTER/DROP/RENAME statement of a
//!   captured database is written to the schema-change topic
//!   ([`crate::ddl::streaming_changes`]) before its position is queued, so
//!   a stored position after a DDL implies its record was acknowledged.
//! - A silent connection (no event, not even a server heartbeat, for 3
//!   `binlog.heartbeat.interval.ms` periods) is treated as dead and
//!   re-established with backoff.
//! - With `heartbeat.interval.ms` > 0, a Debezium heartbeat record goes to
//!   the heartbeat topic at most once per interval: after an event once the
//!   interval has passed (events of uncaptured databases and server
//!   heartbeats included, as in Debezium), or on a timer while the binlog is
//!   quiet. It carries the last emitted position (or the one streaming
//!   resumed from), queued behind it like a record's, so it is stored only
//!   once the heartbeat and everything before it are acknowledged.
//!   `heartbeat.action.query` runs first, on a connection of its own; its
//!   failure is logged and counted, never fatal (Debezium logs it too).
//! - With `provide.transaction.metadata`, as Debezium's `TransactionMonitor`:
//!   every opened transaction (BEGIN, or a MariaDB GTID that is not
//!   standalone; of any database, as Debezium) gets a BEGIN record on
//!   `<topic.prefix>.transaction` and, at its commit, an END record with its
//!   record counts per table, sent before the commit's position is queued;
//!   each change record (not tombstones) in it carries the envelope's
//!   `transaction` block. Replayed after a reconnect or restart, a
//!   transaction gets a new BEGIN and counts only what is sent again
//!   (Debezium's restart does the same).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{Event, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn};
use tokio_util::sync::CancellationToken;

use crate::config::{ConnectorConfig, EventFailureMode};
use crate::gtid::{MariaDbPosition, MySqlGtidSet};

/// Binlog HEARTBEAT_LOG_EVENT and MySQL's HEARTBEAT_LOG_EVENT_V2: the
/// server has nothing more to send.
const HEARTBEAT_EVENTS: [u8; 2] = [27, 41];
use crate::incremental::{At, Incremental, IncrementalError};
use crate::kafka::{
    PreparedHeartbeat, PreparedSchemaChanges, PreparedTable, PreparedTransactions, Sink, SinkError,
    TransactionEvent,
};
use crate::offsets::SourceOffset;
use crate::position::{DdlEvent, EventError, Position, RowsStep, Step, TxnBegin};
use crate::preflight::{Flavor, ServerInfo};
use crate::rows::{decode_rows_in, ColumnLayout, DecodeError, RowsError};
use crate::schema::{from_table_map, load_table_schema, matches_table_map, SchemaError};
use crate::start::ResumeBy;
use debezium_avro::transaction::java_hash_map_order;
use debezium_avro::TableSchema;
use debezium_avro::{Cell, ConverterConfig, Op, SnapshotMarker, SourceInfo, TransactionBlock};

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
    #[error(transparent)]
    Incremental(#[from] IncrementalError),
}

impl StreamError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection(_) | Self::Stalled(_) => true,
            Self::Incremental(e) => e.is_transient(),
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

impl From<EventError> for StreamError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Unreadable { file, pos, reason } => Self::Event { file, pos, reason },
            EventError::Unsupported(detail) => Self::Unsupported(detail),
        }
    }
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

/// Heartbeat records (`heartbeat.interval.ms` > 0) and their action query.
#[derive(Debug)]
struct Heartbeats {
    prepared: Arc<PreparedHeartbeat>,
    interval: Duration,
    /// When the next heartbeat is due.
    due: tokio::time::Instant,
    action: Option<String>,
    /// The connection `action` runs on (opened when first needed, dropped
    /// after a failure).
    conn: Option<Conn>,
}

/// Debezium's `TransactionMonitor` (`provide.transaction.metadata`): the
/// open transaction and its record counts.
#[derive(Debug)]
struct TxnMonitor {
    prepared: Arc<PreparedTransactions>,
    /// The open transaction's id; `None` between transactions.
    id: Option<Arc<str>>,
    total: i64,
    /// Per table (database, table): its records so far, first seen first.
    per_table: Vec<(String, String, i64)>,
}

impl TxnMonitor {
    /// Counts one record of `db.table`: (id, total_order,
    /// data_collection_order), or `None` outside a transaction (no block).
    fn event(&mut self, db: &str, table: &str) -> Option<(Arc<str>, i64, i64)> {
        let id = self.id.clone()?;
        self.total += 1;
        let n = match self
            .per_table
            .iter_mut()
            .find(|(d, t, _)| d == db && t == table)
        {
            Some((_, _, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_table.push((db.to_owned(), table.to_owned(), 1));
                1
            }
        };
        Some((id, self.total, n))
    }
}

fn block_of(
    tx: &mut Option<&mut TxnMonitor>,
    table: &PreparedTable,
) -> Option<(Arc<str>, i64, i64)> {
    tx.as_deref_mut()
        .and_then(|m| m.event(&table.schema.database, &table.schema.table))
}

fn as_block(ev: &Option<(Arc<str>, i64, i64)>) -> Option<TransactionBlock<'_>> {
    ev.as_ref().map(|(id, total, n)| TransactionBlock {
        id,
        total_order: *total,
        data_collection_order: *n,
    })
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
    /// The last table map of each table id, with its column layout (`None`
    /// when it cannot be derived: decoding then derives it and reports why).
    table_maps: HashMap<u64, (TableMapEvent<'static>, Option<ColumnLayout>)>,
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
    heartbeats: Option<Heartbeats>,
    transactions: Option<TxnMonitor>,
    /// Where the current connection resumed from: what a heartbeat carries
    /// before any position was emitted.
    resumed: SourceOffset,
    /// Connection options, for the heartbeat action's connection.
    opts: Option<mysql_async::Opts>,
    /// Signals and incremental snapshots (see [`crate::incremental`]).
    incremental: Option<Incremental>,
    /// The kafka signal channel's signals (`signal.enabled.channels=kafka`).
    kafka_signals: Option<tokio::sync::mpsc::Receiver<crate::signals::Signal>>,
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
        let position = Position::new(info.flavor, info.server_id, &SourceOffset::default())
            .including_query(cfg.include_query);
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
            heartbeats: None,
            transactions: None,
            resumed: SourceOffset::default(),
            opts: None,
            incremental: None,
            kafka_signals: None,
        }
    }

    /// Signals of the kafka channel (see [`crate::signals::kafka_channel`]).
    pub fn set_kafka_signals(
        &mut self,
        signals: Option<tokio::sync::mpsc::Receiver<crate::signals::Signal>>,
    ) {
        self.kafka_signals = signals;
    }

    /// Act on signals and run incremental snapshots with this state (the
    /// stored one); `None`: signals are ordinary rows.
    pub fn set_incremental(&mut self, incremental: Option<Incremental>) {
        self.incremental = incremental;
    }

    /// Reads the incremental snapshot's due chunk, if any, and puts its
    /// state into the positions from now on.
    async fn incremental_pending(&mut self, sink: &mut Sink) -> Result<(), StreamError> {
        let Some(inc) = self.incremental.as_mut() else {
            return Ok(());
        };
        let read = inc.read_pending(sink, &self.by_name).await;
        self.position.incremental = inc.offset();
        match read {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                // Definite (a restart would fail the same way): abandoned,
                // loudly, and streaming goes on.
                tracing::error!(error = %e, "incremental snapshot abandoned");
                crate::metrics::error("incremental_snapshot");
                let at = At {
                    server_id: self.info.server_id,
                    file: self.position.file.clone(),
                    offset: self.resumed.clone(),
                };
                let stop = crate::signals::Action::StopSnapshot {
                    data_collections: Vec::new(),
                };
                let stopped = inc.act(stop, &at, sink, &self.by_name).await;
                self.position.incremental = inc.offset();
                stopped.map_err(StreamError::from)
            }
        }
    }

    /// A signal row (an INSERT into `signal.data.collection`): acted on
    /// before its own record goes out, so that record's position carries
    /// the state it leads to. `at`: the row's position, not yet delivered.
    async fn signal_row(
        &mut self,
        after: &[Cell],
        at: SourceOffset,
        sink: &mut Sink,
    ) -> Result<(), StreamError> {
        let Some(signal) = crate::signals::from_row(after) else {
            tracing::warn!("a signal-table row without id, type and data columns; ignored");
            crate::metrics::skipped("signal_unreadable");
            return Ok(());
        };
        let watermark = matches!(
            signal.kind.as_str(),
            crate::signals::WINDOW_OPEN | crate::signals::WINDOW_CLOSE
        );
        if !watermark && !self.cfg.signals.source_channel {
            // signal.enabled.channels without `source`: the table carries
            // the watermarks only.
            tracing::warn!(id = %signal.id, kind = %signal.kind, "a signal-table row while signal.enabled.channels has no source channel; ignored");
            crate::metrics::skipped("signal_channel_disabled");
            return Ok(());
        }
        self.signal(signal, at, sink).await
    }

    /// A signal of the kafka channel, acted on between binlog events; its
    /// records (none but window ones, which only watermarks cause) would
    /// carry the last emitted position.
    async fn kafka_signal(
        &mut self,
        signal: crate::signals::Signal,
        sink: &mut Sink,
    ) -> Result<(), StreamError> {
        if matches!(
            signal.kind.as_str(),
            crate::signals::WINDOW_OPEN | crate::signals::WINDOW_CLOSE
        ) {
            tracing::warn!(id = %signal.id, "watermarks are read from the signal table only; ignored on the kafka channel");
            return Ok(());
        }
        let at = sink.emitted.clone().unwrap_or_else(|| self.resumed.clone());
        self.signal(signal, at, sink).await?;
        // Read-only, a caught-up stream: the chunk's window may close now.
        self.read_only_windows(sink).await
    }

    async fn signal(
        &mut self,
        signal: crate::signals::Signal,
        at: SourceOffset,
        sink: &mut Sink,
    ) -> Result<(), StreamError> {
        let Some(inc) = self.incremental.as_mut() else {
            return Ok(());
        };
        let action = match crate::signals::parse(&signal) {
            Ok(Some(action)) => action,
            Ok(None) => {
                tracing::warn!(id = %signal.id, kind = %signal.kind, "signal type without an action here; ignored");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "signal ignored");
                crate::metrics::error("signal");
                return Ok(());
            }
        };
        if !matches!(
            action,
            crate::signals::Action::WindowOpen(_) | crate::signals::Action::WindowClose(_)
        ) {
            tracing::info!(id = %signal.id, kind = %signal.kind, data = signal.data.as_deref().unwrap_or(""), "signal");
        }
        let at = At {
            server_id: self.info.server_id,
            file: self.position.file.clone(),
            offset: at,
        };
        let acted = inc.act(action, &at, sink, &self.by_name).await;
        self.position.incremental = inc.offset();
        match acted {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                // A definite failure (no INSERT privilege on the signal
                // table, a bad additional condition) must not stop the
                // stream; the snapshot is abandoned, loudly.
                tracing::error!(error = %e, "incremental snapshot abandoned");
                crate::metrics::error("incremental_snapshot");
                let stopped = crate::signals::Action::StopSnapshot {
                    data_collections: Vec::new(),
                };
                let stop = inc.act(stopped, &at, sink, &self.by_name).await;
                self.position.incremental = inc.offset();
                stop.map_err(StreamError::from)
            }
        }
    }

    /// Send heartbeat records to this topic every `heartbeat.interval.ms`
    /// (and run `heartbeat.action.query` with each); `None`: no heartbeats.
    pub fn set_heartbeats(&mut self, prepared: Option<Arc<PreparedHeartbeat>>) {
        self.heartbeats = match (prepared, self.cfg.heartbeat_interval) {
            (Some(prepared), Some(interval)) => Some(Heartbeats {
                prepared,
                interval,
                due: tokio::time::Instant::now() + interval,
                action: self.cfg.heartbeat_action_query.clone(),
                conn: None,
            }),
            _ => None,
        };
    }

    /// Write transaction metadata (`provide.transaction.metadata`) to this
    /// topic; `None`: the envelope's `transaction` stays null.
    pub fn set_transactions(&mut self, prepared: Option<Arc<PreparedTransactions>>) {
        self.transactions = prepared.map(|prepared| TxnMonitor {
            prepared,
            id: None,
            total: 0,
            per_table: Vec::new(),
        });
    }

    /// A transaction opened: Debezium's BEGIN record (counts start over,
    /// also when a reconnect replays the transaction, as Debezium's restart does).
    async fn begin_transaction(
        &mut self,
        begin: TxnBegin,
        sink: &mut Sink,
    ) -> Result<(), StreamError> {
        let Some(m) = self.transactions.as_mut() else {
            return Ok(());
        };
        m.total = 0;
        m.per_table.clear();
        let ts_ms = begin.ts_ms;
        sink.transaction(&m.prepared, &begin.id, TransactionEvent::Begin { ts_ms })
            .await?;
        m.id = Some(Arc::from(begin.id));
        Ok(())
    }

    /// A commit: Debezium's END record of the open transaction, if any,
    /// sent before the commit's position is queued.
    async fn end_transaction(&mut self, sink: &mut Sink) -> Result<(), StreamError> {
        let Some(m) = self.transactions.as_mut() else {
            return Ok(());
        };
        let Some(id) = m.id.take() else {
            return Ok(());
        };
        let names: Vec<String> = m
            .per_table
            .iter()
            .map(|(db, table, _)| format!("{db}.{table}"))
            .collect();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let collections: Vec<(&str, i64)> = java_hash_map_order(&keys)
            .into_iter()
            .map(|i| (keys[i], m.per_table[i].2))
            .collect();
        let event = TransactionEvent::End {
            event_count: m.total,
            collections: &collections,
            ts_ms: self.position.event_ts_ms,
        };
        sink.transaction(&m.prepared, &id, event).await?;
        m.total = 0;
        m.per_table.clear();
        Ok(())
    }

    fn heartbeat_due(&self, now: tokio::time::Instant) -> bool {
        self.heartbeats.as_ref().is_some_and(|h| now >= h.due)
    }

    /// The earlier of `deadline` and the next heartbeat.
    fn next_wake(&self, deadline: tokio::time::Instant) -> tokio::time::Instant {
        match &self.heartbeats {
            Some(h) => deadline.min(h.due),
            None => deadline,
        }
    }

    /// Runs the heartbeat action (if any) and sends a heartbeat record with
    /// the current position.
    async fn beat(&mut self, sink: &mut Sink, bound: Duration) -> Result<(), StreamError> {
        let Some(hb) = self.heartbeats.as_mut() else {
            return Ok(());
        };
        hb.due = tokio::time::Instant::now() + hb.interval;
        if let (Some(query), Some(opts)) = (hb.action.as_deref(), self.opts.as_ref()) {
            // Bounded: a hung source must not hold up the binlog loop (and
            // its stall detection) behind a heartbeat.
            let ran = tokio::time::timeout(bound, async {
                if hb.conn.is_none() {
                    hb.conn = Some(Conn::new(opts.clone()).await?);
                }
                match hb.conn.as_mut() {
                    Some(conn) => conn.query_drop(query).await,
                    None => Ok(()),
                }
            })
            .await;
            let failure = match ran {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {bound:?}")),
            };
            if let Some(error) = failure {
                hb.conn = None;
                crate::metrics::error("heartbeat_action");
                tracing::error!(%error, "could not execute heartbeat.action.query; the heartbeat is sent anyway");
            }
        }
        let offset = sink.emitted.as_ref().unwrap_or(&self.resumed).clone();
        let prepared = Arc::clone(&hb.prepared);
        sink.heartbeat(&prepared, &offset).await?;
        tracing::debug!(%offset, "heartbeat");
        Ok(())
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
        self.position = Position::new(self.info.flavor, self.info.server_id, &resume)
            .including_query(self.cfg.include_query);
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
        // Out of `self` while streaming: the loop waits on it beside the
        // binlog and acts on `self` when a signal arrives.
        let mut signals = self.kafka_signals.take();
        let result = self
            .run_once_with(opts, resume, sink, shutdown, &mut signals)
            .await;
        self.kafka_signals = signals;
        result
    }

    async fn run_once_with(
        &mut self,
        opts: mysql_async::Opts,
        resume: &SourceOffset,
        sink: &mut Sink,
        shutdown: &CancellationToken,
        signals: &mut Option<tokio::sync::mpsc::Receiver<crate::signals::Signal>>,
    ) -> Result<(), StreamError> {
        let heartbeat = self.cfg.binlog_heartbeat_interval;
        self.opts = Some(opts.clone());
        let opts_for_incremental = opts.clone();
        let mut conn = Conn::new(crate::config::binlog_opts(&opts))
            .await
            .map_err(StreamError::Connection)?;
        if self.catalog.is_none() {
            self.catalog = Some(Conn::new(opts).await.map_err(StreamError::Connection)?);
        }
        // MariaDB by GTID: the position, re-printed from its parsed form
        // (it goes into a statement).
        let connect_state = match (self.by, self.info.flavor) {
            (ResumeBy::Gtid, Flavor::MariaDb) => Some(
                MariaDbPosition::parse(resume.gtids.as_deref().unwrap_or_default())
                    .map_err(|e| StreamError::Unsupported(format!("cannot resume by GTID: {e}")))?
                    .to_string(),
            ),
            _ => None,
        };
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
            if let Some(state) = &connect_state {
                // As a MariaDB replica (and binlog-connector-java) asks: the
                // server starts each domain after the position's GTID. Not
                // strict: a binlog with out-of-order sequence numbers (a
                // server that ran without gtid_strict_mode) is still read.
                conn.query_drop(format!(
                    "SET @slave_connect_state = '{state}', @slave_gtid_strict_mode = 0, \
                     @slave_gtid_ignore_duplicates = 0"
                ))
                .await?;
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
            // No file: the server finds the position from the connect state.
            ResumeBy::Gtid if connect_state.is_some() => (
                BinlogStreamRequest::new(self.cfg.database.server_id)
                    .with_filename(&b""[..])
                    .with_pos(4u64),
                format!(
                    "GTID position {}",
                    resume.gtids.as_deref().unwrap_or_default()
                ),
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
        self.resumed.clone_from(resume);
        if let Some(inc) = self.incremental.as_mut() {
            // In-process state is the newest (a reconnect resumes from an
            // emitted position that may predate the last state change).
            inc.set_opts(opts_for_incremental.clone());
            self.position.incremental = inc.offset();
        }
        self.incremental_pending(sink).await?;
        self.read_only_windows(sink).await?;
        tracing::info!(position = %resume, by = ?self.by, gtids = resume.gtids.as_deref().unwrap_or(""), "streaming from the binlog");
        crate::metrics::streaming(true);
        let silence = heartbeat * 3;
        // One timer for both the stall watch and the heartbeat timer, moved
        // only when it fires (not per event): it may wake early, then it
        // checks and sleeps again.
        let mut quiet_since = tokio::time::Instant::now();
        let wake = tokio::time::sleep_until(self.next_wake(quiet_since + silence));
        tokio::pin!(wake);
        loop {
            let next = tokio::select! {
                // Shutdown first: with events already buffered, an unbiased
                // select could go on through a large transaction. Events
                // before the timer: a buffered event is never taken for
                // silence.
                biased;
                _ = shutdown.cancelled() => {
                    let _ = stream.close().await;
                    return Ok(());
                }
                next = stream.next() => next,
                signal = async {
                    match signals.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match signal {
                        Some(signal) => self.kafka_signal(signal, sink).await?,
                        // The channel's task ended (shutdown): no more signals.
                        None => *signals = None,
                    }
                    continue;
                }
                _ = &mut wake => {
                    let now = tokio::time::Instant::now();
                    if now >= quiet_since + silence {
                        return Err(StreamError::Stalled(silence));
                    }
                    if self.heartbeat_due(now) {
                        self.beat(sink, silence).await?;
                    }
                    wake.as_mut().reset(self.next_wake(quiet_since + silence));
                    continue;
                }
            };
            let event = match next {
                None => {
                    return Err(StreamError::Connection(mysql_async::Error::Io(
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "server closed the binlog stream",
                        )
                        .into(),
                    )))
                }
                Some(Err(e)) => {
                    let asked = match self.by {
                        ResumeBy::FilePos => self.position.file.clone(),
                        ResumeBy::Gtid => {
                            format!("GTID set {}", resume.gtids.as_deref().unwrap_or_default())
                        }
                    };
                    return Err(classify(e, &asked));
                }
                Some(Ok(event)) => event,
            };
            self.handle(&event, sink).await?;
            quiet_since = tokio::time::Instant::now();
            if self.heartbeat_due(quiet_since) {
                self.beat(sink, silence).await?;
            }
        }
    }

    /// Processes one event.
    pub async fn handle(&mut self, event: &Event, sink: &mut Sink) -> Result<(), StreamError> {
        let step = self.position.observe(event)?;
        // Taken at every event, so a commit is never attributed to a later one.
        let committed = self.position.take_commit();
        if let Some(begin) = self.position.take_begin() {
            self.begin_transaction(begin, sink).await?;
        }
        match step {
            Step::Nothing => {}
            Step::Mark(offset) => {
                if committed.is_some() {
                    self.end_transaction(sink).await?;
                }
                sink.mark(offset).await?;
                if let Some(commit_us) = committed {
                    sink.commit_read(commit_us);
                }
            }
            Step::Ddl(commit) => {
                // Shapes may have changed: the next table map of every table
                // is checked against the catalog and its own metadata again.
                self.by_name.clear();
                self.table_maps.clear();
                if let Some(inc) = self.incremental.as_mut() {
                    inc.schema_changed();
                }
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
                if committed.is_some() {
                    self.end_transaction(sink).await?;
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
                if committed.is_some() {
                    self.end_transaction(sink).await?;
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
                // Every transaction repeats its tables' maps; the same map
                // under the same id (until a DDL, which empties both maps)
                // resolves to the same table: skip the filter's regexes, the
                // name lookups and the shape check, once per transaction.
                let known = self.by_id.contains_key(&id)
                    && self.table_maps.get(&id).is_some_and(|(m, _)| *m == tme);
                if !known {
                    let prepared = self.resolve_table(&tme, sink).await?;
                    self.by_id.insert(id, prepared);
                    let layout = ColumnLayout::of(&tme).ok();
                    self.table_maps.insert(id, (tme, layout));
                }
            }
            Step::Rows(rows) => {
                let (txn_start, index) = (rows.txn_start, rows.index);
                match self.rows(rows, sink).await {
                    Err(e @ (StreamError::Event { .. } | StreamError::Decode(_)))
                        if self.cfg.event_failure != EventFailureMode::Fail =>
                    {
                        self.skip_failed_event(&e, txn_start, index);
                    }
                    other => other?,
                }
            }
        }
        if committed.is_some() || HEARTBEAT_EVENTS.contains(&event.header().event_type_raw()) {
            self.read_only_windows(sink).await?;
        }
        Ok(())
    }

    /// `event.processing.failure.handling.mode` warn or skip: the rows event
    /// that could not be decoded is passed over (its position moves on like
    /// any other event's), counted, and with warn logged with the command
    /// that shows it. Rows of it already sent stay sent.
    fn skip_failed_event(&self, error: &StreamError, txn_start: u64, index: u64) {
        crate::metrics::skipped("event_processing_failure");
        let file = &self.position.file;
        let hint = format!("mysqlbinlog --start-position={txn_start} --verbose {file}");
        if self.cfg.event_failure == EventFailureMode::Warn {
            tracing::warn!(
                %error,
                file = %file,
                transaction_pos = txn_start,
                rows_event = index,
                "rows event skipped (event.processing.failure.handling.mode=warn); its rows are not \
                 in the change stream. To see it: {hint}"
            );
        } else {
            tracing::debug!(%error, file = %file, transaction_pos = txn_start, rows_event = index, "rows event skipped");
        }
    }

    /// `read.only`: closes the windows whose high watermark the stream has
    /// committed (at a commit or a server heartbeat: between transactions),
    /// their records carrying the last emitted position.
    async fn read_only_windows(&mut self, sink: &mut Sink) -> Result<(), StreamError> {
        let Some(inc) = self.incremental.as_mut() else {
            return Ok(());
        };
        if !inc.window_due(self.position.gtid_set()) {
            return Ok(());
        }
        let at = At {
            server_id: self.info.server_id,
            file: self.position.file.clone(),
            offset: sink.emitted.clone().unwrap_or_else(|| self.resumed.clone()),
        };
        let closed = inc
            .close_due_windows(self.position.gtid_set(), &at, sink, &self.by_name)
            .await;
        self.position.incremental = inc.offset();
        match closed {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "incremental snapshot abandoned");
                crate::metrics::error("incremental_snapshot");
                let stop = crate::signals::Action::StopSnapshot {
                    data_collections: Vec::new(),
                };
                let stopped = inc.act(stop, &at, sink, &self.by_name).await;
                self.position.incremental = inc.offset();
                stopped.map_err(StreamError::from)
            }
        }
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
        let ev = self
            .transactions
            .as_mut()
            .and_then(|m| m.event(&prepared.schema.database, &prepared.schema.table));
        sink.change_in(
            &prepared,
            None,
            None,
            None,
            &event.source,
            Op::Truncate,
            as_block(&ev).as_ref(),
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
        let Some((tme, layout)) = self.table_maps.get(&table_id) else {
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
        crate::metrics::lag_ms(crate::clock::now_ms() - step.ts_ms);
        let tombstones = self.cfg.tombstones_on_delete;
        let decoded = decode_rows_in(
            &step.data,
            tme,
            layout.as_ref(),
            &table.schema,
            skip_rows as usize,
        )
        .map_err(|e| match e {
            RowsError::Parse(e) => StreamError::Event {
                file: file.clone(),
                pos: step.txn_start,
                reason: e.to_string(),
            },
            RowsError::Decode(e) => StreamError::Decode(e),
        })?;
        let dedups = self
            .incremental
            .as_ref()
            .is_some_and(|inc| inc.dedups(step.gtid.as_deref()));
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
            query: step.query,
        };
        let mut done = self.position.offset(step.txn_start, step.index, 0);
        let signals = self.incremental.is_some()
            && op == Op::Create
            && self
                .cfg
                .signals
                .is_signal_table(&table.schema.database, &table.schema.table);
        for (i, (before, after)) in decoded.into_iter().enumerate() {
            if (i as u64) < skip_rows {
                continue;
            }
            source.row = i as i32;
            if let (true, Some(after)) = (signals, after.as_deref()) {
                let at = self.position.offset(step.txn_start, step.index, i as u64);
                self.signal_row(after, at, sink).await?;
                done.incremental.clone_from(&self.position.incremental);
            }
            if op == Op::Update && self.cfg.skip_messages_without_change {
                if let (Some(b), Some(a)) = (before.as_deref(), after.as_deref()) {
                    // Before the incremental snapshot's deduplication: as in
                    // Debezium, only a written change drops a chunk's row.
                    if table.codec.same_value(b, a).map_err(SinkError::from)? {
                        crate::metrics::skipped("without_change");
                        continue;
                    }
                }
            }
            if let (true, Some(inc)) = (dedups, self.incremental.as_mut()) {
                if inc.dedup_table()
                    == Some((table.schema.database.as_str(), table.schema.table.as_str()))
                {
                    for image in [before.as_deref(), after.as_deref()].into_iter().flatten() {
                        inc.observe(&table, image)?;
                    }
                }
            }
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
        let mut monitor = self.transactions.take();
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
                monitor.as_mut(),
            )
            .await;
        self.transactions = monitor;
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
        mut tx: Option<&mut TxnMonitor>,
    ) -> Result<(), StreamError> {
        let events = &table.events;
        match (op, before, after) {
            (Op::Create, _, Some(after)) => {
                let key = Sink::key_into(table, &after, key_buf)?.then_some(key_buf.as_slice());
                let ev = block_of(&mut tx, table);
                sink.change_in(table, key, None, Some(&after), source, Op::Create, as_block(&ev).as_ref(), Some(done), None)
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
                    let ev = block_of(&mut tx, table);
                    sink.change_in(table, old_key, Some(&before), None, source, Op::Delete, as_block(&ev).as_ref(), None, newkey)
                        .await?;
                    events.delete().increment(1);
                    if let (true, Some(k)) = (tombstones, old_key) {
                        sink.tombstone(table, k, None, newkey).await?;
                        events.tombstone().increment(1);
                    }
                    let ev = block_of(&mut tx, table);
                    sink.change_in(table, new_key, None, Some(&after), source, Op::Create, as_block(&ev).as_ref(), Some(done), oldkey)
                        .await?;
                    events.create().increment(1);
                } else {
                    let ev = block_of(&mut tx, table);
                    sink.change_in(table, new_key, Some(&before), Some(&after), source, Op::Update, as_block(&ev).as_ref(), Some(done), None)
                        .await?;
                    events.update().increment(1);
                }
            }
            (Op::Delete, Some(before), _) => {
                let key = Sink::key_into(table, &before, key_buf)?.then_some(key_buf.as_slice());
                match (tombstones, key) {
                    (true, Some(k)) => {
                        let ev = block_of(&mut tx, table);
                        sink.change_in(table, Some(k), Some(&before), None, source, Op::Delete, as_block(&ev).as_ref(), None, None)
                            .await?;
                        sink.tombstone(table, k, Some(done), None).await?;
                        events.tombstone().increment(1);
                    }
                    _ => {
                        let ev = block_of(&mut tx, table);
                        sink.change_in(table, key, Some(&before), None, source, Op::Delete, as_block(&ev).as_ref(), Some(done), None)
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
