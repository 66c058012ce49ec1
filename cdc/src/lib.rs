//! cdc: MySQL/MariaDB binlog to Debezium-envelope Avro change events on Kafka.
//!
//! [`run`] wires the stages: [`preflight`] checks the server, [`offsets`] reads
//! the stored position, [`start`] decides whether it is still available and
//! how to resume from it (by GTID set, see [`gtid`], or by file and
//! position), [`snapshot`] reads existing rows when there is nothing to
//! resume, [`streamer`] streams the binlog from the position the snapshot
//! (or the stored offset) names, with [`position`] deciding what each event
//! means for records and offsets, and [`kafka`] writes records and advances
//! the stored position behind Kafka's acknowledgements. [`verify`] (the
//! `cdc verify` subcommand) checks the result: each captured table against
//! its topic, compared at one binlog position. [`signals`] reads Debezium
//! signals (signal-table rows, kafka signal records) and [`incremental`]
//! runs the incremental snapshots they ask for, inside the streamer's loop,
//! its state carried in every stored position.
//!
//! The two invariants the whole crate serves:
//! 1. A position is stored only after Kafka acknowledged every record before it;
//!    the stored position is a transaction boundary plus skip counts
//!    (`event`, `row`), never a bare point inside a transaction.
//! 2. Snapshot and streaming meet at ONE binlog position: rows committed before
//!    it are in the snapshot, rows committed after it are streamed, none in both.
//!
//! The data half: [`schema`] reads table shapes, [`rows`] (with [`jsonb`])
//! turns server values into `debezium_avro::Cell`s, and the `debezium-avro`
//! crate owns the format (schemas, datums, headers) and its options.
//!
//! Module dependencies (`use crate::` paths in code, doc links aside; no
//! cycles; every module may also use `debezium_avro`, never the reverse):
//! - `clock`, `jsonb`, `offsets`, `preflight`, `routing`, `schema`, `tls`:
//!   none
//! - `config` -> routing, tls
//! - `gtid` -> preflight; `rows` -> jsonb; `metrics` -> offsets
//! - `kafka` -> clock, config, metrics, offsets, routing
//! - `ddl` -> clock, config, schema
//! - `position` -> clock, gtid, offsets, preflight
//! - `start` -> config, gtid, offsets, preflight
//! - `snapshot` -> clock, config, ddl, kafka, metrics, offsets, preflight,
//!   rows, schema
//! - `signals` -> metrics
//! - `incremental` -> clock, config, gtid, kafka, offsets, rows, schema, signals
//! - `streamer` -> clock, config, ddl, gtid, incremental, kafka, metrics,
//!   offsets, position, preflight, rows, schema, signals, start
//! - `verify` -> config, gtid, offsets, preflight, routing, rows, schema,
//!   snapshot, tls

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may; documented exceptions carry an
// `#[allow]` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod config;
pub mod ddl;
pub mod gtid;
pub mod incremental;
pub mod jsonb;
pub mod kafka;
pub mod metrics;
pub mod offsets;
pub mod position;
pub mod preflight;
pub mod routing;
pub mod rows;
pub mod schema;
pub mod signals;
pub mod snapshot;
pub mod start;
pub mod streamer;
pub mod tls;
pub mod verify;

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use pipeline::registry::RegistryClient;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, OffsetStorage, SnapshotMode};
use crate::kafka::{Sink, SinkError};
use crate::offsets::{OffsetError, OffsetStore};
use crate::preflight::PreflightError;
use crate::snapshot::SnapshotError;
use crate::start::{Resume, Start, StartError};
use crate::streamer::{StreamError, Streamer};
use debezium_avro::heartbeat::HeartbeatCodec;
use debezium_avro::schema_change::SchemaChangeCodec;
use debezium_avro::transaction::TransactionCodec;
use debezium_avro::ConverterConfig;

/// `source.version` of every record: the Debezium release whose output we
/// match (compared record for record against it).
pub const CONNECTOR_VERSION: &str = "3.6.3.Final";

/// Why the connector stopped. `is_transient` tells a supervisor whether a
/// restart can help without an operator.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error("cannot connect to the source database: {0}")]
    Connect(mysql_async::Error),
    /// Definite: every connection runs the statement and fails the same way.
    #[error("database.initial.statements: the server refused {statement:?}: {source}; fix or remove that statement")]
    InitialStatement {
        statement: String,
        source: mysql_async::Error,
    },
    /// The server's certificate was refused (`verify_ca`/`verify_identity`).
    #[error(transparent)]
    Tls(#[from] tls::CertificateRefused),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The stored position is gone (purged file or GTIDs, or a server without them).
    #[error(transparent)]
    Start(#[from] StartError),
}

impl CdcError {
    pub fn is_transient(&self) -> bool {
        match self {
            // database.ssl.mode=required against a server without TLS.
            Self::Connect(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) => false,
            Self::Connect(_) => true,
            Self::Tls(_) | Self::InitialStatement { .. } => false,
            Self::Preflight(e) => matches!(e, PreflightError::Query(_)),
            Self::Offsets(e) => matches!(e, OffsetError::Unavailable(_)),
            Self::Sink(e) => e.is_transient(),
            Self::Snapshot(e) => e.is_transient(),
            Self::Stream(e) => e.is_transient(),
            Self::Start(_) => false,
        }
    }
}

/// What a run did (for tests and the final log line).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub snapshot_rows: Option<u64>,
    pub streamed_records: u64,
}

/// The converter settings the envelope codec needs.
pub fn converter_config(cfg: &config::ConnectorConfig) -> ConverterConfig {
    ConverterConfig {
        topic_prefix: cfg.topic_prefix.clone(),
        decimal_handling: cfg.decimal_handling,
        time_precision: cfg.time_precision,
        bigint_unsigned: cfg.bigint_unsigned,
        binary_handling: cfg.binary_handling,
        connector_version: CONNECTOR_VERSION.to_owned(),
        excluded_columns: cfg.column_filter.clone(),
        column_mappers: cfg.column_mappers.clone(),
        message_key_columns: cfg.message_key_columns.clone(),
        boolean_converters: cfg.boolean_converters.clone(),
    }
}

/// The first connection, and the options every later one uses: with
/// `database.ssl.mode=preferred` a server that offers no TLS is talked to in
/// plain TCP (decided once, so snapshot and binlog connections agree).
async fn connect(db: &config::DatabaseConfig) -> Result<(mysql_async::Opts, Conn), CdcError> {
    let opts = db.opts();
    match Conn::new(opts.clone()).await {
        Ok(conn) => Ok((opts, conn)),
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if db.ssl_mode == config::SslMode::Preferred =>
        {
            tracing::info!("the source offers no TLS; database.ssl.mode=preferred: plain TCP");
            let opts = db.plain_opts();
            match Conn::new(opts.clone()).await {
                Ok(conn) => Ok((opts, conn)),
                Err(e) => Err(initial_statement_error(&opts, db, e)
                    .await
                    .unwrap_or_else(CdcError::Connect)),
            }
        }
        Err(e) => match initial_statement_error(&opts, db, e).await {
            Ok(refused) => Err(refused),
            Err(e) => Err(connect_error(db, e)),
        },
    }
}

/// A server error on connecting with `database.initial.statements` set may
/// be one of them: connect without them and run each, so that the one the
/// server refuses is named (definite). `Err` gives the error back when the
/// statements are not the cause.
async fn initial_statement_error(
    opts: &mysql_async::Opts,
    db: &config::DatabaseConfig,
    error: mysql_async::Error,
) -> Result<CdcError, mysql_async::Error> {
    if db.initial_statements.is_empty() || !matches!(error, mysql_async::Error::Server(_)) {
        return Err(error);
    }
    let Ok(mut conn) = Conn::new(config::binlog_opts(opts)).await else {
        return Err(error);
    };
    for statement in &db.initial_statements {
        if let Err(source) = conn.query_drop(statement).await {
            conn.disconnect().await.ok();
            return Ok(CdcError::InitialStatement {
                statement: statement.clone(),
                source,
            });
        }
    }
    conn.disconnect().await.ok();
    Err(error)
}

/// A failed first connection, with a refused server certificate told apart:
/// it names the mode and what to check, and is definite.
fn connect_error(db: &config::DatabaseConfig, error: mysql_async::Error) -> CdcError {
    match tls::CertificateRefused::classify(error, db.ssl_mode, &db.hostname) {
        Ok(refused) => refused.into(),
        Err(error) => CdcError::Connect(error),
    }
}

/// Runs the connector until `shutdown` is cancelled or a definite error.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    health: pipeline::telemetry::Health,
) -> Result<RunSummary, CdcError> {
    let cfg = Arc::new(config.connector);
    let (opts, mut conn) = connect(&cfg.database).await?;
    let info = preflight::check(&mut conn, &cfg.database.user, cfg.database.server_id).await?;
    if cfg.include_query {
        preflight::warn_about_query(&mut conn, info.flavor).await?;
    }

    let store = Arc::new(match &cfg.offset_storage {
        OffsetStorage::Kafka { topic } => {
            OffsetStore::kafka(
                &config.kafka,
                topic,
                &cfg.name,
                &cfg.topic_prefix,
                cfg.topic_replication,
            )
            .await?
        }
        OffsetStorage::File { path } => OffsetStore::File { path: path.clone() },
    });
    let converter = converter_config(&cfg);
    let registry = RegistryClient::new(&config.registry)
        .map_err(SinkError::from)?
        .with_health(health.clone());
    let (mut sink, committer) = match &cfg.exactly_once {
        Some(eos) => {
            Sink::start_exactly_once(
                &config.kafka,
                &cfg.compression,
                registry,
                &store,
                eos,
                cfg.topic_partitions,
                cfg.topic_replication,
            )
            .await?
        }
        None => Sink::start(
            &config.kafka,
            &cfg.compression,
            registry,
            Arc::clone(&store),
            cfg.offset_flush_interval,
            cfg.topic_partitions,
            cfg.topic_replication,
        )?,
    };
    // Read after the sink started: with exactly.once.support, its
    // init_transactions has fenced an older instance, which therefore
    // cannot commit past the offset read here.
    let stored = match store.load().await {
        Ok(stored) => stored,
        Err(e) => {
            let _ = sink.finish(committer).await;
            return Err(e.into());
        }
    };

    if cfg.extended_headers {
        let context = kafka::ContextHeaders::new(&cfg.topic_prefix);
        tracing::info!(
            run_id = context.run_id(),
            "extended.headers.enabled: records carry __debezium.context.* headers"
        );
        sink.set_context_headers(Some(context));
    }
    if let Some(smt) = &cfg.unwrap {
        tracing::info!(
            delete_tombstone_handling = ?smt.delete_tombstone_handling,
            add_fields = ?smt.add_fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            add_headers = ?smt.add_headers.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "transforms: ExtractNewRecordState writes flat rows instead of change-event envelopes"
        );
    }
    sink.set_unwrap(cfg.unwrap.clone());
    for route in &cfg.routes {
        tracing::info!(
            regex = %route.pattern,
            replacement = %route.replacement,
            "transforms: RegexRouter renames the topics it matches"
        );
    }
    sink.set_routes(cfg.routes.clone());

    let schema_changes = match cfg.include_schema_changes {
        true => match sink
            .prepare_side_topic(SchemaChangeCodec::new(&cfg.topic_prefix, CONNECTOR_VERSION))
            .await
        {
            Ok(prepared) => Some(Arc::new(prepared)),
            Err(e) => {
                let _ = sink.finish(committer).await;
                return Err(e.into());
            }
        },
        false => None,
    };

    let heartbeats = match cfg.heartbeat_interval {
        Some(_) => match sink
            .prepare_side_topic(HeartbeatCodec::new(&cfg.heartbeat_topic, &cfg.topic_prefix))
            .await
        {
            Ok(prepared) => Some(Arc::new(prepared)),
            Err(e) => {
                let _ = sink.finish(committer).await;
                return Err(e.into());
            }
        },
        None => None,
    };

    let transactions = match &cfg.transaction_topic {
        Some(topic) => match sink.prepare_side_topic(TransactionCodec::new(topic)).await {
            Ok(prepared) => Some(Arc::new(prepared)),
            Err(e) => {
                let _ = sink.finish(committer).await;
                return Err(e.into());
            }
        },
        None => None,
    };

    // Decide where streaming starts and how (see `start`).
    let mut summary = RunSummary::default();
    let server = start::server_state(&mut conn, &info)
        .await
        .map_err(CdcError::Connect)?;
    if cfg.signals.read_only && !(server.flavor == preflight::Flavor::MySql && server.gtid_mode) {
        let _ = sink.finish(committer).await;
        return Err(StreamError::Unsupported(
            "read.only=true needs MySQL with gtid_mode=ON: its watermarks are the executed GTID set"
                .into(),
        )
        .into());
    }
    let decision = start::decide(
        stored.as_ref(),
        &server,
        cfg.snapshot_mode,
        &cfg.gtid_filter,
    )?;
    let (resume, interrupted) = match decision {
        Start::Stream(resume) => {
            tracing::info!(position = %resume.offset, by = ?resume.by, gtids = resume.offset.gtids.as_deref().unwrap_or(""), "resuming from the stored position");
            (Some(resume), None)
        }
        // A stored `snapshot: true` marks a snapshot that was interrupted:
        // snapshot again, then stream from where that one stood.
        Start::Snapshot { then } => (None, then),
    };
    conn.disconnect().await.ok();

    let mut tables = Vec::new();
    let start: Resume = match resume {
        Some(resume) => resume,
        None => {
            let then_by = interrupted.as_ref().map(|r| r.by);
            let with_data = cfg.snapshot_mode != SnapshotMode::NoData;
            health.healthy();
            let snap = snapshot::snapshot(
                opts.clone(),
                &info,
                &cfg,
                &converter,
                &mut sink,
                with_data,
                interrupted.map(|r| r.offset),
                &store,
                schema_changes.as_deref(),
                &shutdown,
            )
            .await;
            let snap = match snap {
                Ok(snap) => snap,
                Err(SnapshotError::Cancelled) => {
                    tracing::info!(
                        "shutdown during the snapshot; it restarts from scratch next time"
                    );
                    let _ = sink.finish(committer).await;
                    return Ok(summary);
                }
                Err(e) => {
                    let finished = sink.finish(committer).await;
                    return Err(match (e, finished) {
                        // The committer's own error says why it stopped.
                        (SnapshotError::Sink(SinkError::CommitterGone), Err(cause)) => cause.into(),
                        (e, _) => e.into(),
                    });
                }
            };
            summary.snapshot_rows = Some(snap.rows);
            tables = snap.tables;
            let by = then_by.unwrap_or_else(|| start::resume_by(&server, &snap.offset));
            Resume {
                offset: snap.offset,
                by,
            }
        }
    };
    if cfg.snapshot_mode == SnapshotMode::InitialOnly {
        sink.finish(committer).await?;
        tracing::info!("snapshot.mode=initial_only: snapshot complete, stopping");
        return Ok(summary);
    }

    health.healthy();
    let incremental = match &cfg.signals {
        s if s.data_collection.is_some()
            || s.kafka_topic.is_some()
            || start.offset.incremental.is_running() =>
        {
            if let Some((db, table)) = &s.data_collection {
                if !cfg.filter.includes(db, table) {
                    tracing::warn!(table = %format!("{db}.{table}"), "signal.data.collection is not captured (add it to the include list): its signals are never read");
                }
            }
            match incremental::Incremental::new(
                Arc::clone(&cfg),
                converter.clone(),
                &start.offset.incremental,
            ) {
                Ok(inc) => Some(inc),
                Err(e) => {
                    let _ = sink.finish(committer).await;
                    return Err(StreamError::from(e).into());
                }
            }
        }
        _ => None,
    };
    let kafka_signals = match (&incremental, &cfg.signals.kafka_topic) {
        (Some(_), Some(topic)) => match signals::kafka_channel(
            &config.kafka,
            topic,
            &cfg.signals.kafka_group_id,
            &cfg.topic_prefix,
            cfg.topic_replication,
            shutdown.clone(),
        )
        .await
        {
            Ok(rx) => Some(rx),
            Err(e) => {
                let _ = sink.finish(committer).await;
                return Err(
                    StreamError::from(incremental::IncrementalError::SignalChannel(e)).into(),
                );
            }
        },
        _ => None,
    };
    let mut streamer = Streamer::new(info, Arc::clone(&cfg), converter, None, tables);
    streamer.set_incremental(incremental);
    streamer.set_kafka_signals(kafka_signals);
    streamer.set_schema_changes(schema_changes);
    streamer.set_heartbeats(heartbeats);
    streamer.set_transactions(transactions);
    // A committer that stops while the binlog is quiet (nothing to send, so
    // no send to fail) must still end the run: no position would be stored
    // again.
    let committer_stopped = sink.committer_stopped();
    let streamed = tokio::select! {
        streamed = streamer.run(opts, start.offset, start.by, &mut sink, &shutdown) => streamed,
        _ = committer_stopped.cancelled() => Err(StreamError::Sink(SinkError::CommitterGone)),
    };
    summary.streamed_records = streamer.records;
    let finished = sink.finish(committer).await;
    if let Err(e) = &streamed {
        health.unhealthy(e.to_string());
    }
    match (streamed, finished) {
        // The committer's own error says why it stopped.
        (Err(StreamError::Sink(SinkError::CommitterGone)), Err(cause)) => Err(cause.into()),
        (Err(e), _) => Err(e.into()),
        (Ok(()), Err(e)) => Err(e.into()),
        (Ok(()), Ok(())) => Ok(summary),
    }
}
