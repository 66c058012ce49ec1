//! The initial consistent snapshot: every captured row as an `op=r` record.
//!
//! Invariant 2 of the pipeline: snapshot and streaming meet at ONE binlog
//! position. While writes are blocked (FLUSH TABLES WITH READ LOCK) the
//! connector opens a `WITH CONSISTENT SNAPSHOT` transaction, reads the binlog
//! position and the table schemas, and releases the lock: the transaction sees
//! exactly the rows committed before that position, and streaming starts at
//! it, so no change is in both and none in neither. Without the RELOAD
//! privilege the fallback is `LOCK TABLES ... READ` on the captured tables,
//! held until every row is read (writes to them wait meanwhile, as Debezium's
//! table-level locking does).
//!
//! `snapshot.locking.mode` (Debezium's) changes how long writes wait:
//! `minimal` is the above; `extended` keeps the global read lock until the
//! last row is read; `none` takes no lock at all, for servers where a global
//! or table lock is not allowed or too costly. Without a lock the position
//! is read first and the transaction opened right after: what commits in
//! between is in the snapshot and streamed again (at least once, never lost),
//! and a DDL statement meanwhile may not match the schemas read, which is
//! why Debezium calls `none` safe only while no DDL runs.
//!
//! Every lock wait is bounded by `snapshot.lock.timeout.ms` (the session's
//! `lock_wait_timeout` and `innodb_lock_wait_timeout`, as Debezium sets
//! them): FLUSH TABLES WITH READ LOCK queues behind a long-running statement
//! and blocks every writer while it waits, so waiting without bound can stop
//! the shop's writes for as long as that statement runs. A lock not granted
//! in time is a transient error: a restart (the supervisor's) tries again.
//!
//! Tables are read in Debezium's order ([`crate::config::TableFilter::snapshot_order`]:
//! `table.include.list` order when one is given, else by name), so the
//! first/last markers land on the same records as Debezium's. With
//! `include.schema.changes`, the DDL Debezium records for the captured
//! databases ([`crate::ddl::snapshot_changes`]) is read under the same lock
//! and written to the schema-change topic before the first row.
//!
//! `snapshot.select.statement.overrides` replaces a table's SELECT with the
//! user's (a subset of rows, typically: `SELECT * FROM shop.purchases WHERE
//! ...`); its result columns are matched to the table's by name, as Debezium
//! matches them, and a statement the server refuses is a definite error.
//!
//! Rows are streamed from the server (never buffered per table), decoded with
//! `time_zone='+00:00'` so TIMESTAMPs read in UTC, and framed like streamed
//! records. `source.snapshot` is `first` on the very first record, `last` on the
//! very last, `first_in_data_collection` / `last_in_data_collection` at table
//! boundaries and `true` otherwise (one record of lookahead decides). No offset
//! is stored until the last record is acknowledged: an interrupted snapshot is
//! redone from scratch at the next start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tokio_util::sync::CancellationToken;

use crate::config::{ConnectorConfig, SelectOverrides, SnapshotLocking};
use crate::kafka::{PreparedSchemaChanges, PreparedTable, Sink, SinkError};
use crate::offsets::{OffsetStore, SourceOffset};
use crate::preflight::{Flavor, ServerInfo};
use crate::rows::{row_from_snapshot, row_from_snapshot_by_name, DecodeError};
use crate::schema::{list_tables, load_table_schema, SchemaError};
use debezium_avro::{Cell, ConverterConfig, Op, SnapshotMarker, SourceInfo};

/// Why the snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Transient: the connection or the server failed; the snapshot restarts.
    #[error("snapshot query failed: {0}")]
    Query(#[from] mysql_async::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Definite: a row does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Definite: the account can neither lock globally nor per table.
    #[error("cannot lock tables for a consistent snapshot: {0}; grant RELOAD (for FLUSH TABLES WITH READ LOCK) or LOCK TABLES and SELECT on the captured tables")]
    Lock(mysql_async::Error),
    /// Transient: another session held the tables longer than
    /// `snapshot.lock.timeout.ms`; a restart tries again.
    #[error("the snapshot's table locks were not granted within snapshot.lock.timeout.ms={timeout_ms} (a long statement or LOCK TABLES holds a captured table); transient, a restart retries it. Raise snapshot.lock.timeout.ms, or set snapshot.locking.mode=none if no DDL runs during the snapshot")]
    LockTimeout { timeout_ms: u128 },
    #[error("cannot read the binlog position with {statement}: {reason}; is log_bin on and does the account have REPLICATION CLIENT / BINLOG MONITOR?")]
    Position {
        statement: &'static str,
        reason: String,
    },
    /// Definite: the server refused a `snapshot.select.statement.overrides`
    /// statement.
    #[error("the server refused snapshot.select.statement.overrides.{table} ({statement:?}): {reason}; fix the statement (it must read the table's columns by name, e.g. SELECT * FROM {table} WHERE ...)")]
    Override {
        table: String,
        statement: String,
        reason: String,
    },
    #[error("snapshot interrupted by shutdown")]
    Cancelled,
    /// Storing the in-progress marker failed (transient when Kafka or the disk is).
    #[error(transparent)]
    Offsets(#[from] crate::offsets::OffsetError),
}

impl SnapshotError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Query(_) | Self::Cancelled | Self::LockTimeout { .. } => true,
            Self::Schema(SchemaError::Server { .. }) => true,
            Self::Sink(e) => e.is_transient(),
            Self::Offsets(e) => matches!(e, crate::offsets::OffsetError::Unavailable(_)),
            _ => false,
        }
    }
}

/// Outcome: where streaming starts and the tables as of that position.
#[derive(Debug)]
pub struct Snapshot {
    pub offset: SourceOffset,
    pub tables: Vec<Arc<PreparedTable>>,
    pub rows: u64,
}

/// Reads the current binlog position (and GTID set) on `conn`.
pub async fn current_position(
    conn: &mut Conn,
    info: &ServerInfo,
) -> Result<SourceOffset, SnapshotError> {
    let statement = info.binlog_status_statement();
    // MariaDB's GTID position is a second statement. Read first: under
    // LOCK TABLES (no RELOAD) other tables' transactions may commit in
    // between, and a GTID position that lags the file position only makes
    // a resume by GTID read them again (they are not captured), where one
    // ahead of it would skip them.
    let mariadb_gtids = match info.flavor {
        Flavor::MariaDb => conn
            .query_first::<String, _>("SELECT @@GLOBAL.gtid_binlog_pos")
            .await?
            .filter(|s| !s.is_empty()),
        Flavor::MySql => None,
    };
    let row: Option<Row> =
        conn.query_first(statement)
            .await
            .map_err(|e| SnapshotError::Position {
                statement,
                reason: e.to_string(),
            })?;
    let row = row.ok_or(SnapshotError::Position {
        statement,
        reason: "no row returned (binary logging is off)".into(),
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    let gtids = match info.flavor {
        Flavor::MariaDb => mariadb_gtids,
        // Executed_Gtid_Set is the 5th column on MySQL.
        Flavor::MySql => row
            .get_opt::<String, _>(4)
            .and_then(Result::ok)
            .map(|s| s.replace('\n', ""))
            .filter(|s| !s.is_empty()),
    };
    Ok(SourceOffset {
        file,
        pos,
        gtids,
        server_id: info.server_id,
        ts_sec: crate::clock::now_ms() as u64 / 1000,
        ..Default::default()
    })
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The lock the snapshot holds.
enum Locking {
    /// FLUSH TABLES WITH READ LOCK.
    Global,
    /// LOCK TABLES ... READ on the captured tables, until the last row.
    Tables,
    /// None (`snapshot.locking.mode=none`).
    Unlocked,
}

/// MySQL's ER_LOCK_WAIT_TIMEOUT.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Takes the snapshot; with `with_data=false` (`no_data`) only schemas and
/// the position are read.
#[allow(clippy::too_many_arguments)]
pub async fn snapshot(
    opts: mysql_async::Opts,
    info: &ServerInfo,
    cfg: &ConnectorConfig,
    converter: &ConverterConfig,
    sink: &mut Sink,
    with_data: bool,
    interrupted: Option<SourceOffset>,
    store: &OffsetStore,
    schema_changes: Option<&PreparedSchemaChanges>,
    shutdown: &CancellationToken,
) -> Result<Snapshot, SnapshotError> {
    let mut conn = Conn::new(opts.clone()).await?;
    conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    let all_tables = list_tables(&mut conn).await?;
    // Debezium's order (table.include.list order, else by name): the
    // first/last markers follow it.
    let tables = cfg.filter.snapshot_order(all_tables.clone());
    // Whole seconds, as Debezium sets them; the server's minimum is 1.
    let lock_secs = cfg.snapshot_lock_timeout.as_secs().max(1);
    conn.query_drop(format!("SET SESSION lock_wait_timeout = {lock_secs}"))
        .await?;
    if let Err(e) = conn
        .query_drop(format!(
            "SET SESSION innodb_lock_wait_timeout = {lock_secs}"
        ))
        .await
    {
        tracing::warn!(error = %e, "cannot set innodb_lock_wait_timeout for the snapshot");
    }
    let lock_timeout = || SnapshotError::LockTimeout {
        timeout_ms: cfg.snapshot_lock_timeout.as_millis(),
    };
    let locking = if cfg.snapshot_locking == SnapshotLocking::None {
        tracing::info!(
            tables = tables.len(),
            "snapshot: no locks (snapshot.locking.mode=none)"
        );
        Locking::Unlocked
    } else {
        tracing::info!(tables = tables.len(), "snapshot: locking");
        match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
            Ok(()) => Locking::Global,
            Err(global) => {
                tracing::warn!(error = %global, "global read lock refused; falling back to LOCK TABLES ... READ for the whole snapshot");
                if !tables.is_empty() {
                    let list = tables
                        .iter()
                        .map(|(d, t)| format!("{}.{} READ", quote(d), quote(t)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    conn.query_drop(format!("LOCK TABLES {list}"))
                        .await
                        .map_err(|e| match &e {
                            mysql_async::Error::Server(s) if s.code == LOCK_WAIT_TIMEOUT => {
                                lock_timeout()
                            }
                            _ => SnapshotError::Lock(e),
                        })?;
                }
                Locking::Tables
            }
        }
    };
    if matches!(locking, Locking::Global) {
        // Does not release the global read lock (LOCK TABLES would be released).
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await?;
    }
    let offset = current_position(&mut conn, info).await?;
    if matches!(locking, Locking::Unlocked) {
        // After the position, never before: a change committed in between
        // is then read twice (here and streamed), where the other order
        // would lose it.
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await?;
    }
    let mut schemas = Vec::with_capacity(tables.len());
    for (db, t) in &tables {
        if let Some(schema) = load_table_schema(&mut conn, db, t).await? {
            schemas.push(schema);
        }
    }
    // The DDL Debezium records at this point, read under the same lock.
    let ddl = match schema_changes {
        Some(_) => {
            let source = SourceInfo {
                server_id: 0,
                file: offset.file.clone(),
                pos: offset.pos,
                row: 0,
                gtid: None,
                ts_ms: crate::clock::now_ms(),
                snapshot: SnapshotMarker::True,
                thread: None,
                query: None,
            };
            match locking {
                Locking::Global | Locking::Unlocked => {
                    crate::ddl::snapshot_changes(&mut conn, &cfg.filter, &all_tables, &source)
                        .await?
                }
                // Under LOCK TABLES this session may read only the locked
                // tables; the definitions come from another one (the locks
                // keep the captured tables from changing meanwhile).
                Locking::Tables => {
                    let mut other = Conn::new(opts).await?;
                    let changes =
                        crate::ddl::snapshot_changes(&mut other, &cfg.filter, &all_tables, &source)
                            .await?;
                    other.disconnect().await.ok();
                    changes
                }
            }
        }
        None => Vec::new(),
    };
    match (&locking, cfg.snapshot_locking) {
        (Locking::Global, SnapshotLocking::Extended) => {
            tracing::info!(position = %offset, "snapshot: position read, global read lock held to the last row (snapshot.locking.mode=extended)");
        }
        (Locking::Global, _) => {
            conn.query_drop("UNLOCK TABLES").await?;
            tracing::info!(position = %offset, "snapshot: position read, lock released");
        }
        (Locking::Tables, _) => {
            tracing::info!(position = %offset, "snapshot: position read, table locks held to the last row");
        }
        (Locking::Unlocked, _) => tracing::info!(position = %offset, "snapshot: position read"),
    }

    // Streaming starts at this snapshot's position, unless an earlier snapshot
    // was interrupted: then at that one's position. Its records may already be
    // in Kafka, and a row it emitted and that was deleted since is absent from
    // this snapshot: only replaying the binlog from the earlier position emits
    // that delete. Replayed changes are older than this snapshot's rows, but
    // they are replayed in order up to the present, so every key ends at its
    // current state. The marker is stored before the first record is sent, so
    // a kill at any point of this snapshot keeps the earliest position.
    let stream_from = interrupted.unwrap_or_else(|| offset.clone());
    store
        .save(&SourceOffset {
            snapshot: Some(true),
            ..stream_from.clone()
        })
        .await?;

    if let Some(topic) = schema_changes {
        for change in &ddl {
            sink.schema_change(topic, change).await?;
        }
    }

    let mut prepared = Vec::with_capacity(schemas.len());
    for schema in schemas {
        prepared.push(sink.prepare(schema, converter).await?);
    }

    let mut rows = 0;
    if with_data {
        // The signal table's rows are not snapshotted (Debezium 2.7+,
        // DBZ-7944); its schema is, and its changes are streamed.
        let data: Vec<Arc<PreparedTable>> = prepared
            .iter()
            .filter(|t| {
                !cfg.signals
                    .is_signal_table(&t.schema.database, &t.schema.table)
            })
            .cloned()
            .collect();
        rows = read_rows(
            &mut conn,
            &data,
            &cfg.snapshot_select_overrides,
            &offset,
            sink,
            shutdown,
        )
        .await?;
    }
    match locking {
        Locking::Tables => conn.query_drop("UNLOCK TABLES").await?,
        Locking::Global | Locking::Unlocked => {
            conn.query_drop("COMMIT").await?;
            if cfg.snapshot_locking == SnapshotLocking::Extended {
                // A no-op when the lock was released after the schemas.
                conn.query_drop("UNLOCK TABLES").await?;
            }
        }
    }
    conn.disconnect().await.ok();
    sink.mark(stream_from.clone()).await?;
    tracing::info!(rows, snapshot_position = %offset, position = %stream_from, "snapshot: done; streaming starts");
    Ok(Snapshot {
        offset: stream_from,
        tables: prepared,
        rows,
    })
}

/// A row waiting for the next one to decide its snapshot marker.
struct Held {
    table: Arc<PreparedTable>,
    cells: Vec<Cell>,
    /// The first row of the first table read (not of the first table with
    /// rows: Debezium gives no `first` when that table is empty).
    first_overall: bool,
    first_in_table: bool,
}

async fn read_rows(
    conn: &mut Conn,
    tables: &[Arc<PreparedTable>],
    overrides: &SelectOverrides,
    offset: &SourceOffset,
    sink: &mut Sink,
    shutdown: &CancellationToken,
) -> Result<u64, SnapshotError> {
    let mut estimated: u64 = 0;
    for t in tables {
        let n: Option<u64> = conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&t.schema.database, &t.schema.table),
            )
            .await?
            .flatten();
        estimated += n.unwrap_or(0);
    }
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut done: u64 = 0;
    let mut held: Option<Held> = None;
    for table in tables {
        let columns = table
            .schema
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let overridden =
            overrides.get(&(table.schema.database.clone(), table.schema.table.clone()));
        let sql = match overridden {
            Some(statement) => statement.clone(),
            None => format!(
                "SELECT {columns} FROM {}.{}",
                quote(&table.schema.database),
                quote(&table.schema.table)
            ),
        };
        match overridden {
            Some(_) => {
                tracing::info!(table = %table.schema.qualified_name(), statement = %sql, "snapshot: reading (snapshot.select.statement.overrides)")
            }
            None => tracing::info!(table = %table.schema.qualified_name(), "snapshot: reading"),
        }
        // The binary protocol: the text protocol prints FLOAT with 6 significant
        // digits on MariaDB, so snapshot and binlog values would disagree.
        let mut result = match conn.exec_iter(sql.as_str(), ()).await {
            Ok(result) => result,
            // The server refused the user's statement: retrying cannot help.
            Err(mysql_async::Error::Server(refused)) if overridden.is_some() => {
                return Err(SnapshotError::Override {
                    table: table.schema.qualified_name(),
                    statement: sql,
                    reason: refused.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let Some(mut stream) = result.stream::<Row>().await? else {
            continue;
        };
        let mut first_in_table = true;
        while let Some(row) = stream.next().await {
            let cells = match overridden {
                Some(_) => row_from_snapshot_by_name(row?, &table.schema)?,
                None => row_from_snapshot(row?, &table.schema)?,
            };
            if let Some(prev) = held.take() {
                let table_ends = !Arc::ptr_eq(&prev.table, table);
                let marker = marker(&prev, false, table_ends);
                emit(sink, prev, offset, marker).await?;
            }
            held = Some(Held {
                table: Arc::clone(table),
                cells,
                first_overall: first_in_table && Arc::ptr_eq(table, &tables[0]),
                first_in_table,
            });
            first_in_table = false;
            done += 1;
            if done % 1024 == 0 {
                if shutdown.is_cancelled() {
                    return Err(SnapshotError::Cancelled);
                }
                if last_log.elapsed() >= Duration::from_secs(10) {
                    progress(done, estimated, started);
                    last_log = Instant::now();
                }
            }
        }
    }
    if let Some(last) = held.take() {
        let marker = marker(&last, true, true);
        emit(sink, last, offset, marker).await?;
    }
    progress(done, estimated.max(done), started);
    Ok(done)
}

/// Debezium's precedence (`SnapshotMarkerResolver`): the very last record,
/// then the first of the first table, then a table's last, then a table's
/// first; a table's only row is its `last_in_data_collection`.
fn marker(row: &Held, last_overall: bool, last_in_table: bool) -> SnapshotMarker {
    if last_overall {
        SnapshotMarker::Last
    } else if row.first_overall {
        SnapshotMarker::First
    } else if last_in_table {
        SnapshotMarker::LastInDataCollection
    } else if row.first_in_table {
        SnapshotMarker::FirstInDataCollection
    } else {
        SnapshotMarker::True
    }
}

fn progress(done: u64, estimated: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let eta = if rate > 0.0 && estimated > done {
        format!("{:.0}s", (estimated - done) as f64 / rate)
    } else {
        "-".to_owned()
    };
    crate::metrics::snapshot_rows(done, estimated);
    tracing::info!(
        rows = done,
        estimated_total = estimated,
        rows_per_sec = format!("{rate:.0}"),
        eta,
        "snapshot progress"
    );
}

async fn emit(
    sink: &mut Sink,
    row: Held,
    offset: &SourceOffset,
    marker: SnapshotMarker,
) -> Result<(), SnapshotError> {
    let source = SourceInfo {
        server_id: 0,
        file: offset.file.clone(),
        pos: offset.pos,
        row: 0,
        gtid: None,
        ts_ms: crate::clock::now_ms(),
        snapshot: marker,
        thread: None,
        query: None,
    };
    let key = sink.key_of(&row.table, &row.cells)?;
    sink.change(
        &row.table,
        key.as_deref(),
        None,
        Some(&row.cells),
        &source,
        Op::Read,
        None,
        None,
    )
    .await?;
    row.table.events.read().increment(1);
    Ok(())
}
