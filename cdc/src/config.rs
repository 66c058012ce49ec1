//! Connector settings under Debezium's property names.
//!
//! A property can come from four places; the first that has it wins:
//! 1. a command-line flag named like the property (`--database.hostname db`),
//! 2. an environment variable: the name upper-cased with dots turned into
//!    underscores (`DATABASE_HOSTNAME`); `name` is the exception
//!    (`CONNECTOR_NAME`, because `NAME` is too generic to claim),
//! 3. a Debezium connector JSON file (`--config-file`): either the
//!    register-connector body `{"name": .., "config": {..}}` or a bare config map,
//! 4. the defaults below.
//!
//! Invariants: every property the connector reads is in [`PROPERTIES`] (one table
//! feeds clap, the env names, the file parser, validation and the masked
//! printout); an unknown key in a file is warned about, never silently
//! ignored; a secret never appears in a printout or in `Debug` output.
//! Kafka, schema-registry and telemetry settings use the flags shared by every
//! service (`pipeline`), e.g. `--kafka-bootstrap-servers` / `KAFKA_BOOTSTRAP_SERVERS`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use pipeline::secret::Secret;
use regex::Regex;

use debezium_avro::unwrap::{DeleteTombstoneHandling, ExtractNewRecordState};
use debezium_avro::{
    BigintUnsigned, BinaryHandling, BooleanConverters, ColumnFilter, ColumnMappers, ColumnMapping,
    DecimalHandling, HashAlgorithm, HashVersion, MapperSelector, MessageKeyColumns, TimePrecision,
};

use crate::routing::{RegexRouter, RouterError};
pub use crate::tls::SslMode;
use crate::tls::{KeyStore, TlsFiles, TrustStore};

/// One connector property: Debezium name, default, whether it is a secret, help.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    pub key: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub help: &'static str,
}

const fn prop(key: &'static str, default: Option<&'static str>, help: &'static str) -> Property {
    Property {
        key,
        default,
        secret: false,
        help,
    }
}

/// Every property the connector understands.
pub const PROPERTIES: &[Property] = &[
    prop(
        "name",
        Some("cdc-connector"),
        "Connector name; keys the stored offsets (env CONNECTOR_NAME).",
    ),
    prop("database.hostname", None, "MySQL/MariaDB host (required)."),
    prop("database.port", Some("3306"), "MySQL/MariaDB port."),
    prop("database.user", None, "Replication account (required)."),
    Property {
        key: "database.password",
        default: Some(""),
        secret: true,
        help: "Password of database.user.",
    },
    prop(
        "database.initial.statements",
        None,
        "SQL statements separated by ';' (';;' for a literal ';') run on every new connection to \
         the source except the one reading the binlog (snapshot, schema reads, incremental \
         snapshot chunks, heartbeat.action.query, cdc verify), as Debezium runs them on its JDBC \
         connections: e.g. SET SESSION innodb_lock_wait_timeout=... A statement the server \
         refuses stops the connector at start.",
    ),
    prop(
        "database.ssl.mode",
        Some("preferred"),
        "TLS to the source: disabled, preferred (TLS when the server offers it), required \
         (TLS, certificate not checked), verify_ca (signed by a trusted CA) or verify_identity \
         (also naming database.hostname).",
    ),
    prop(
        "database.ssl.truststore",
        None,
        "The CAs verify_ca/verify_identity trust instead of the system's: a PEM or DER \
         certificate file, or a PKCS#12 store (not JKS).",
    ),
    Property {
        key: "database.ssl.truststore.password",
        default: None,
        secret: true,
        help: "Password of a PKCS#12 database.ssl.truststore.",
    },
    prop(
        "database.ssl.keystore",
        None,
        "Client certificate and key (PKCS#12, not JKS), sent under every mode that encrypts.",
    ),
    Property {
        key: "database.ssl.keystore.password",
        default: None,
        secret: true,
        help: "Password of database.ssl.keystore.",
    },
    prop(
        "database.server.id",
        Some("184054"),
        "Replica server id, unique among the server's replicas and stable across restarts.",
    ),
    prop(
        "topic.prefix",
        None,
        "Topic prefix; row topics are <prefix>.<db>.<table> (required).",
    ),
    prop(
        "database.include.list",
        None,
        "Comma-separated regexes of databases to capture (whole-name, case-insensitive match).",
    ),
    prop(
        "database.exclude.list",
        None,
        "Comma-separated regexes of databases to skip.",
    ),
    prop(
        "table.include.list",
        None,
        "Comma-separated regexes of <db>.<table> to capture (whole-name, case-insensitive match).",
    ),
    prop(
        "table.exclude.list",
        None,
        "Comma-separated regexes of <db>.<table> to skip.",
    ),
    prop(
        "snapshot.include.collection.list",
        None,
        "Comma-separated regexes of <db>.<table>: of the captured tables, snapshot only these (all when unset).",
    ),
    prop(
        "extended.headers.enabled",
        Some("true"),
        "Add Debezium's __debezium.context.* headers (prefix, task id, connector, run id) to every record.",
    ),
    prop(
        "include.schema.changes",
        Some("true"),
        "Write the DDL of captured databases to the schema-change topic <topic.prefix>.",
    ),
    prop(
        "column.include.list",
        None,
        "Comma-separated regexes of <db>.<table>.<column> (whole-name, case-insensitive match): only these \
         columns are kept in change-event values (before/after); every other column of every captured table \
         is left out. Primary-key columns stay in the record key. Not with column.exclude.list.",
    ),
    prop(
        "column.exclude.list",
        None,
        "Comma-separated regexes of <db>.<table>.<column> (whole-name, case-insensitive match) whose values are left out of \
         change-event values (before/after), in snapshot and streaming. Primary-key columns stay in the \
         record key, as in Debezium.",
    ),
    prop(
        "column.propagate.source.type",
        None,
        "Comma-separated regexes of <db>.<table>.<column>: their value schema gets the source type \
         as parameters __debezium.source.column.type/length/scale/name (what a JDBC sink reads \
         to create the exact column type).",
    ),
    prop(
        "datatype.propagate.source.type",
        None,
        "Comma-separated regexes of <db>.<table>.<type name> (.*\\.DECIMAL, shop\\.users\\.INT UNSIGNED): \
         as column.propagate.source.type, for every column of those types.",
    ),
    prop(
        "message.key.columns",
        None,
        "The record key of tables without (or instead of) a primary key: rules \
         <table regex>:<column>[,<column>...] separated by ';', the table regex matching <db>.<table> \
         (e.g. shop.events:tenant_id,event_id;.*\\.audit:id). Incremental snapshots chunk by it too.",
    ),
    prop(
        "converters",
        None,
        "Custom converters by name, comma-separated; each needs <name>.type (env <NAME>_TYPE). \
         Supported: io.debezium.connector.binlog.converters.TinyIntOneToBooleanConverter (or its \
         old io.debezium.connector.mysql.converters name), with <name>.selector (regexes of \
         <db>.<table>.<column>) and <name>.length.checker (true: TINYINT(1) only).",
    ),
    prop(
        "transforms",
        None,
        "Single message transforms by name, as in Kafka Connect; each needs transforms.<name>.type \
         (env TRANSFORMS_<NAME>_TYPE). Supported: one io.debezium.transforms.ExtractNewRecordState \
         (flat rows instead of envelopes) with its delete.tombstone.handling.mode, add.fields, \
         add.fields.prefix, add.headers, add.headers.prefix and replace.null.with.default; and \
         org.apache.kafka.connect.transforms.RegexRouter (topic names) with regex and \
         replacement.",
    ),
    prop(
        "snapshot.mode",
        Some("initial"),
        "initial, initial_only, no_data, when_needed or always.",
    ),
    prop(
        "snapshot.select.statement.overrides",
        None,
        "Comma-separated <db>.<table> whose snapshot reads the SELECT in \
         snapshot.select.statement.overrides.<db>.<table> (env \
         SNAPSHOT_SELECT_STATEMENT_OVERRIDES_<DB>_<TABLE>) instead of the whole table.",
    ),
    prop(
        "snapshot.locking.mode",
        Some("minimal"),
        "minimal: a global read lock (else LOCK TABLES ... READ on the captured tables for the whole \
         snapshot) while the position and schemas are read; extended: the global read lock held \
         until every row is read; none: no lock at all (safe only while no DDL runs; changes \
         committed around the position read may be emitted twice).",
    ),
    prop(
        "event.processing.failure.handling.mode",
        Some("fail"),
        "What a rows event that cannot be decoded does: fail stops the connector with the event's \
         position; warn skips the event, logs a warning with its position and the mysqlbinlog \
         command that shows it, and counts it (cdc_skipped_total{reason=\"event_processing_failure\"}); \
         skip does the same with a debug log only.",
    ),
    prop(
        "snapshot.lock.timeout.ms",
        Some("10000"),
        "How long the snapshot waits for its locks (lock_wait_timeout / innodb_lock_wait_timeout of \
         its session) before the snapshot stops with a transient error.",
    ),
    prop(
        "gtid.source.includes",
        None,
        "Comma-separated regexes of source server UUIDs whose GTIDs position the connector and whose \
         changes are captured (MySQL with gtid_mode=ON; exclusive with gtid.source.excludes).",
    ),
    prop(
        "gtid.source.excludes",
        None,
        "Comma-separated regexes of source server UUIDs whose GTIDs are ignored when resuming and \
         whose changes are skipped.",
    ),
    prop(
        "schema.name.adjustment.mode",
        Some("none"),
        "none or avro: names with characters Avro does not allow always get _ in their place \
         (Avro cannot carry them); avro_unicode is refused.",
    ),
    prop(
        "field.name.adjustment.mode",
        Some("none"),
        "none or avro, as schema.name.adjustment.mode, for column names.",
    ),
    prop(
        "decimal.handling.mode",
        Some("precise"),
        "precise, double or string.",
    ),
    prop(
        "time.precision.mode",
        Some("adaptive_time_microseconds"),
        "adaptive_time_microseconds or connect.",
    ),
    prop(
        "bigint.unsigned.handling.mode",
        Some("long"),
        "long or precise.",
    ),
    prop(
        "binary.handling.mode",
        Some("bytes"),
        "How BINARY, VARBINARY and BLOB values are written: bytes, base64, base64-url-safe or hex \
         (the last three as strings).",
    ),
    prop(
        "include.query",
        Some("false"),
        "source.query of streamed changes: the SQL statement that made them (MySQL with \
         binlog_rows_query_log_events=ON; not on MariaDB).",
    ),
    prop(
        "tombstones.on.delete",
        Some("true"),
        "Write a tombstone (null value) after each delete.",
    ),
    prop(
        "skip.messages.without.change",
        Some("false"),
        "true: an update whose before and after are equal once column.exclude.list / \
         column.include.list and the column mappers have applied is not written.",
    ),
    prop(
        "skipped.operations",
        Some("t"),
        "Comma-separated operations not emitted while streaming: c (inserts), u (updates), d (deletes), \
         t (TRUNCATE; Debezium's default), r (accepted, no effect: the snapshot is never skipped), \
         or none to emit everything.",
    ),
    prop(
        "heartbeat.interval.ms",
        Some("0"),
        "Debezium's heartbeat records: at most this often (ms) while streaming, a record on \
         <topic.heartbeat.prefix>.<topic.prefix> that carries the current position, so the stored \
         offset moves on even when captured tables are quiet; 0 (the default) sends none.",
    ),
    prop(
        "topic.heartbeat.prefix",
        Some("__debezium-heartbeat"),
        "Prefix of the heartbeat topic <prefix>.<topic.prefix>.",
    ),
    prop(
        "heartbeat.action.query",
        None,
        "A statement run on the source with every heartbeat (needs heartbeat.interval.ms > 0), \
         e.g. an update of a captured heartbeat table; a failure is logged and the heartbeat still sent.",
    ),
    prop(
        "provide.transaction.metadata",
        Some("false"),
        "Fill the envelope's transaction block (id, total_order, data_collection_order) and write \
         BEGIN/END records with per-table event counts to <topic.prefix>.<topic.transaction>.",
    ),
    prop(
        "topic.transaction",
        Some("transaction"),
        "Suffix of the transaction metadata topic <topic.prefix>.<topic.transaction>.",
    ),
    prop(
        "binlog.heartbeat.interval.ms",
        Some("10000"),
        "Server heartbeat period asked for on the binlog connection; 3 silent periods force a \
         reconnect (not a Debezium property: Debezium's binlog client keeps alive with \
         connect.keep.alive.interval.ms).",
    ),
    prop(
        "offset.storage",
        Some("kafka"),
        "Where offsets live: kafka (compacted topic) or file.",
    ),
    prop(
        "offset.storage.topic",
        None,
        "Offsets topic (default __cdc-offsets.<topic.prefix>).",
    ),
    prop(
        "offset.storage.file.filename",
        None,
        "Offsets file, required with offset.storage=file.",
    ),
    prop(
        "offset.flush.interval.ms",
        Some("1000"),
        "Longest time between two stores of the acknowledged position.",
    ),
    prop(
        "exactly.once.support",
        None,
        "Exactly-once delivery into Kafka (Kafka Connect's name): required or requested puts records and \
         the offsets that cover them in one Kafka transaction (needs offset.storage=kafka and a broker \
         with transactions; consumers must read read_committed); unset: at-least-once.",
    ),
    prop(
        "transaction.boundary",
        Some("poll"),
        "With exactly.once.support: poll (commit per batch: 2048 records, or when the source pauses) or \
         interval (commit every transaction.boundary.interval.ms).",
    ),
    prop(
        "transaction.boundary.interval.ms",
        None,
        "With transaction.boundary=interval: time between commits (default offset.flush.interval.ms).",
    ),
    prop(
        "transactional.id",
        None,
        "With exactly.once.support: the producer's transactional.id (default cdc-<name>-0); keep it \
         stable across restarts so a restarted connector fences the old one.",
    ),
    prop(
        "topic.creation.default.partitions",
        Some("1"),
        "Partitions of the row topics the connector creates.",
    ),
    prop(
        "topic.creation.default.replication.factor",
        Some("1"),
        "Replication factor of the topics the connector creates.",
    ),
    prop(
        "compression.type",
        Some("lz4"),
        "Producer compression: none, lz4, zstd, snappy or gzip.",
    ),
    // Signals and incremental snapshots (see `crate::signals`, `crate::incremental`).
    prop(
        "signal.data.collection",
        None,
        "The signal table <db>.<table> (columns id, type, data; must be captured): signals are \
         INSERTs into it, and incremental snapshots write their watermarks there.",
    ),
    prop(
        "signal.enabled.channels",
        Some("source"),
        "Comma-separated signal channels: source (the signal table) and/or kafka (signal.kafka.topic).",
    ),
    prop(
        "signal.kafka.topic",
        None,
        "Topic of the kafka signal channel: records keyed by topic.prefix, value {\"type\": .., \"data\": {..}}.",
    ),
    prop(
        "signal.kafka.groupId",
        Some("kafka-signal"),
        "Consumer group id of the kafka signal channel.",
    ),
    prop(
        "incremental.snapshot.chunk.size",
        Some("1024"),
        "Rows an incremental snapshot reads per chunk (one watermark window).",
    ),
    prop(
        "incremental.snapshot.watermarking.strategy",
        Some("insert_insert"),
        "insert_insert only: open and close watermarks are both INSERTs into the signal table.",
    ),
    prop(
        "read.only",
        Some("false"),
        "Read-only incremental snapshots (MySQL with gtid_mode=ON): watermarks are the executed GTID \
         set read before and after each chunk instead of signal-table writes; signals come from \
         the kafka channel (or a signal table written elsewhere).",
    ),
];

/// The one record converter cdc writes the output of.
const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";

/// Debezium / Kafka Connect keys that make sense for Debezium but not here:
/// accepted in a connector file and named in one info line.
const IGNORED_PREFIXES: &[&str] = &[
    "connector.class",
    "tasks.max",
    "key.converter",
    "value.converter",
    "schema.history.internal",
    "database.allowPublicKeyRetrieval",
    "errors.",
];

/// Why the configuration is unusable. Always definite: fix the setting and restart.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required setting {key} (flag --{key}, env {env})")]
    Missing { key: &'static str, env: String },
    #[error("invalid {key}={value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The environment variable a property is read from.
pub fn env_name(key: &str) -> String {
    if key == "name" {
        return "CONNECTOR_NAME".into();
    }
    key.to_ascii_uppercase().replace(['.', '-'], "_")
}

fn property(key: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.key == key)
}

/// Adds one flag per property plus `--config-file` and `--check-config`.
pub fn augment_command(mut command: Command) -> Command {
    command = command
        .arg(
            Arg::new("config-file")
                .long("config-file")
                .env("CDC_CONFIG_FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Debezium connector JSON ({\"name\":..,\"config\":{..}} or a bare map)."),
        )
        .arg(
            Arg::new("check-config")
                .long("check-config")
                .action(ArgAction::SetTrue)
                .help("Validate the settings, print them (secrets masked) and exit."),
        );
    for p in PROPERTIES {
        let mut arg = Arg::new(p.key)
            .long(p.key)
            // clap wants a 'static name; the table is static and read once per process.
            .env(&*Box::leak(env_name(p.key).into_boxed_str()))
            .help(p.help)
            .hide_env_values(p.secret);
        if let Some(default) = p.default {
            // Shown in --help only; the real default is applied after the file
            // is merged, so that a file value beats a default.
            arg = arg.help(format!("{} [default: {default}]", p.help));
        }
        command = command.arg(arg);
    }
    command
}

/// Settings as text, before validation: what the printout shows.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties(pub BTreeMap<String, String>);

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.masked()).finish()
    }
}

impl Properties {
    /// Key/value pairs with secrets replaced by `***`: secret properties
    /// whole, and the password inside any URL or connection-string value.
    pub fn masked(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| {
                let k = &mask_salt(k);
                let secret = property(k).is_some_and(|p| p.secret)
                    || k.contains("password")
                    || k.ends_with("basic.auth.user.info");
                let shown = if secret && !v.is_empty() {
                    "***".to_owned()
                } else {
                    pipeline::secret::mask_url(v)
                };
                (k.clone(), shown)
            })
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Reads a Debezium connector JSON file into properties; the second value
/// lists keys that are neither understood nor knowingly ignored.
pub fn read_connector_file(path: &Path) -> Result<(Properties, Vec<String>), ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    parse_connector_json(&text).map_err(file_err)
}

/// See [`read_connector_file`].
pub fn parse_connector_json(text: &str) -> Result<(Properties, Vec<String>), String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let top = json
        .as_object()
        .ok_or("expected a JSON object at the top level")?;
    let (name, map) = match top.get("config") {
        Some(serde_json::Value::Object(config)) => (top.get("name"), config),
        Some(_) => return Err("\"config\" must be an object".into()),
        None => (None, top),
    };
    let mut props = BTreeMap::new();
    let mut unknown = Vec::new();
    let converters = match map.get("converters") {
        Some(serde_json::Value::String(names)) => converter_names(names),
        _ => Vec::new(),
    };
    let transforms = match map.get("transforms") {
        Some(serde_json::Value::String(names)) => converter_names(names),
        _ => Vec::new(),
    };
    if let Some(serde_json::Value::String(name)) = name {
        props.insert("name".to_owned(), name.clone());
    }
    for (key, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => continue,
            other => other.to_string(),
        };
        if (key == "key.converter" || key == "value.converter") && text != AVRO_CONVERTER {
            // Records in another format than the one named would break a
            // consumer silently; Avro with Confluent's framing is all cdc writes.
            return Err(format!(
                "{key}={text:?}: cdc writes Avro in Confluent's Schema Registry framing only \
                 ({AVRO_CONVERTER}); set {key} to it or remove it"
            ));
        }
        if key.starts_with("transforms.") && !TRANSFORM_KEYS.matches(key, &transforms) {
            // Settings of a transform the list does not name: unused, as in
            // Connect.
            continue;
        }
        if property(key).is_some()
            || TRANSFORM_KEYS.matches(key, &transforms)
            || key.starts_with(SELECT_OVERRIDE_PREFIX)
            || column_mapper_key(key).is_some()
            || CONVERTER_KEYS.matches(key, &converters)
        {
            props.insert(key.clone(), text);
        } else if key.ends_with("converter.schema.registry.url")
            || key.ends_with("converter.basic.auth.user.info")
        {
            // Carried to the registry settings by the caller (see `Config::load`).
            props.insert(key.clone(), text);
        } else if !IGNORED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            unknown.push(key.clone());
        }
    }
    Ok((Properties(props), unknown))
}

/// What `snapshot.mode` asks for (Debezium semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot when no offsets are stored, then stream.
    Initial,
    /// Snapshot when no offsets are stored, then stop.
    InitialOnly,
    /// Never read rows: start streaming at the current position.
    NoData,
    /// Like initial, and also re-snapshot when the stored position was purged.
    WhenNeeded,
    /// Snapshot at every start, then stream.
    Always,
}

impl SnapshotMode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "initial" => Self::Initial,
            "initial_only" => Self::InitialOnly,
            // `schema_only` / `never` are the pre-2.x names of no_data.
            "no_data" | "schema_only" | "never" => Self::NoData,
            "when_needed" => Self::WhenNeeded,
            "always" => Self::Always,
            _ => return None,
        })
    }
}

/// What `snapshot.locking.mode` asks for (Debezium semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotLocking {
    /// A global read lock (else table read locks, held to the end) while
    /// the position and the schemas are read.
    Minimal,
    /// The global read lock held until every row is read.
    Extended,
    /// No lock: the position is read, then the consistent-snapshot
    /// transaction starts; what commits in between is both snapshotted and
    /// streamed (at least once), and DDL meanwhile is not safe.
    None,
}

impl SnapshotLocking {
    fn parse(s: &str) -> Result<Self, &'static str> {
        match s {
            "minimal" => Ok(Self::Minimal),
            "extended" => Ok(Self::Extended),
            "none" => Ok(Self::None),
            "minimal_percona" | "minimal_percona_no_table_locks" => Err(
                "Percona Server's LOCK TABLES FOR BACKUP is not supported; use minimal (or none)",
            ),
            "custom" => Err("custom locking (a Java SnapshotLock class) is not supported; use minimal, extended or none"),
            _ => Err("expected minimal, extended or none"),
        }
    }
}

/// `event.processing.failure.handling.mode`: what a rows event that cannot
/// be decoded (unparsable bytes, a value that does not fit its column, a
/// partial JSON update, a missing TABLE_MAP or row image) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFailureMode {
    /// Stop with the event's position (Debezium's default).
    Fail,
    /// Skip the event: a warning with its position, and a count.
    Warn,
    /// Skip the event: a count and a debug log.
    Skip,
}

impl EventFailureMode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fail" => Self::Fail,
            "warn" => Self::Warn,
            // `ignore`: Debezium's deprecated name for skip.
            "skip" | "ignore" => Self::Skip,
            _ => return None,
        })
    }
}

/// Where the acknowledged position is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetStorage {
    /// A compacted single-partition topic, keyed by connector name.
    Kafka { topic: String },
    /// A JSON file, replaced atomically on each store.
    File { path: PathBuf },
}

/// `exactly.once.support`: records and the offsets covering them in one
/// Kafka transaction (see [`crate::kafka`]); `None` in
/// [`ConnectorConfig::exactly_once`] when off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactlyOnce {
    /// The producer's `transactional.id`: stable across restarts, so a new
    /// instance fences an old one still running.
    pub transactional_id: String,
    pub boundary: TransactionBoundary,
}

/// `transaction.boundary`: when a Kafka transaction is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBoundary {
    /// Per batch, as Kafka Connect commits per `poll()`: once
    /// [`POLL_BATCH_RECORDS`] records are in it, or when the source pauses.
    Poll,
    /// Every `transaction.boundary.interval.ms`.
    Interval(Duration),
}

/// Records in one `transaction.boundary=poll` batch (Debezium's
/// `max.batch.size` default: what one `poll()` returns at most).
pub const POLL_BATCH_RECORDS: u64 = 2048;

/// Parses `exactly.once.support` and its companions. `Ok(None)`: off
/// (unset, or `requested` with file offsets, which cannot be transactional).
fn exactly_once(
    props: &Properties,
    name: &str,
    storage: &OffsetStorage,
    flush_interval: Duration,
) -> Result<Option<ExactlyOnce>, ConfigError> {
    let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(support) = props.get("exactly.once.support").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let required = match support {
        "required" => true,
        "requested" => false,
        "disabled" => return Ok(None),
        other => {
            return Err(invalid(
                "exactly.once.support",
                other,
                "expected required or requested (unset: at-least-once)",
            ))
        }
    };
    if let OffsetStorage::File { .. } = storage {
        if required {
            return Err(invalid(
                "exactly.once.support",
                support,
                "needs offset.storage=kafka (offsets are written in the records' Kafka transaction); \
                 set offset.storage=kafka or unset exactly.once.support",
            ));
        }
        tracing::warn!(
            "exactly.once.support=requested with offset.storage=file: file offsets cannot join a \
             Kafka transaction; running at-least-once (set offset.storage=kafka for exactly-once)"
        );
        return Ok(None);
    }
    let boundary = match props.get("transaction.boundary").unwrap_or("poll") {
        "poll" => TransactionBoundary::Poll,
        "interval" => {
            let ms = match props.get("transaction.boundary.interval.ms") {
                None => flush_interval,
                Some(v) => Duration::from_millis(v.parse().map_err(|_| {
                    invalid(
                        "transaction.boundary.interval.ms",
                        v,
                        "not a valid number of milliseconds",
                    )
                })?),
            };
            if ms.is_zero() {
                return Err(invalid(
                    "transaction.boundary.interval.ms",
                    "0",
                    "must be positive",
                ));
            }
            TransactionBoundary::Interval(ms)
        }
        // Kafka Connect's third value: the connector decides; this one
        // decides nothing of its own.
        other => {
            return Err(invalid(
                "transaction.boundary",
                other,
                "expected poll or interval (connector-defined boundaries are not supported)",
            ))
        }
    };
    let transactional_id = props
        .get("transactional.id")
        .filter(|v| !v.is_empty())
        .map_or_else(|| format!("cdc-{name}-0"), str::to_owned);
    Ok(Some(ExactlyOnce {
        transactional_id,
        boundary,
    }))
}

/// Which tables are captured: Debezium's include/exclude regex lists, each
/// pattern matched against the whole name.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    database_include: Vec<Regex>,
    database_exclude: Vec<Regex>,
    table_include: Vec<Regex>,
    table_exclude: Vec<Regex>,
    /// `snapshot.include.collection.list`: which captured tables the snapshot reads.
    snapshot_include: Vec<Regex>,
}

/// Schemas MySQL itself keeps; never captured unless explicitly included.
const SYSTEM_DATABASES: &[&str] = &["mysql", "sys", "information_schema", "performance_schema"];

impl TableFilter {
    pub fn includes(&self, database: &str, table: &str) -> bool {
        let full = format!("{database}.{table}");
        let any = |list: &[Regex], s: &str| list.iter().any(|r| r.is_match(s));
        if !self.database_include.is_empty() && !any(&self.database_include, database) {
            return false;
        }
        if any(&self.database_exclude, database) {
            return false;
        }
        if !self.table_include.is_empty() {
            return any(&self.table_include, &full);
        }
        if self.database_include.is_empty() && SYSTEM_DATABASES.contains(&database) {
            return false;
        }
        !any(&self.table_exclude, &full)
    }

    /// Whether the captured database has any table in the capture at all:
    /// DDL of other databases is not written to the schema-change topic.
    pub fn includes_database(&self, database: &str) -> bool {
        let any = |list: &[Regex], s: &str| list.iter().any(|r| r.is_match(s));
        if !self.database_include.is_empty() {
            return any(&self.database_include, database);
        }
        if any(&self.database_exclude, database) {
            return false;
        }
        !SYSTEM_DATABASES.contains(&database)
    }

    /// The captured tables of `tables` that the snapshot reads, in the order
    /// it reads them. Debezium's `RelationalSnapshotContext` order: with a
    /// `table.include.list`, pattern by pattern in list order, the tables a
    /// pattern matches sorted by `<db>.<table>` (a table already taken by an
    /// earlier pattern is not repeated); without one, all sorted by
    /// `<db>.<table>` (string order, so `a-b.x` comes before `a.y`).
    /// `snapshot.include.collection.list` only removes tables, it never
    /// reorders them.
    pub fn snapshot_order(&self, tables: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut captured: Vec<(String, (String, String))> = tables
            .into_iter()
            .filter(|(db, t)| self.includes(db, t))
            .map(|(db, t)| (format!("{db}.{t}"), (db, t)))
            .filter(|(full, _)| {
                self.snapshot_include.is_empty()
                    || self.snapshot_include.iter().any(|r| r.is_match(full))
            })
            .collect();
        captured.sort_by(|a, b| a.0.cmp(&b.0));
        if self.table_include.is_empty() {
            return captured.into_iter().map(|(_, id)| id).collect();
        }
        let mut taken = vec![false; captured.len()];
        let mut ordered = Vec::with_capacity(captured.len());
        for pattern in &self.table_include {
            for (i, (full, id)) in captured.iter().enumerate() {
                if !taken[i] && pattern.is_match(full) {
                    taken[i] = true;
                    ordered.push(id.clone());
                }
            }
        }
        ordered
    }
}

/// A column-mapper property, parsed from its key: Debezium puts the mapper's
/// argument in the key and the column list in the value
/// (`column.mask.with.6.chars=shop.users.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapperKey {
    /// `column.truncate.to.<n>.chars`.
    Truncate(usize),
    /// `column.mask.with.<n>.chars`.
    Mask(usize),
    /// `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`; the algorithm
    /// as written (checked when the rules are built).
    Hash {
        algorithm: String,
        salt: String,
        version: HashVersion,
    },
    /// `column.propagate.source.type` (column names).
    PropagateColumns,
    /// `datatype.propagate.source.type` (type names).
    PropagateDataTypes,
}

impl MapperKey {
    /// Debezium registers the rules by kind in this order, and the first
    /// rule that matches a column applies.
    fn rank(&self) -> u8 {
        match self {
            MapperKey::Truncate(_) => 0,
            MapperKey::Mask(_) => 1,
            MapperKey::PropagateColumns => 2,
            MapperKey::PropagateDataTypes => 3,
            MapperKey::Hash {
                version: HashVersion::V1,
                ..
            } => 4,
            MapperKey::Hash {
                version: HashVersion::V2,
                ..
            } => 5,
        }
    }
}

/// Parses a column-mapper property key; `None` for any other key.
pub fn column_mapper_key(key: &str) -> Option<MapperKey> {
    match key {
        "column.propagate.source.type" => return Some(MapperKey::PropagateColumns),
        "datatype.propagate.source.type" => return Some(MapperKey::PropagateDataTypes),
        _ => {}
    }
    let count = |n: &str| {
        n.parse::<usize>()
            .ok()
            .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(n) = key
        .strip_prefix("column.truncate.to.")
        .and_then(|r| r.strip_suffix(".chars"))
    {
        return count(n).map(MapperKey::Truncate);
    }
    if let Some(n) = key
        .strip_prefix("column.mask.with.")
        .and_then(|r| r.strip_suffix(".chars"))
    {
        return count(n).map(MapperKey::Mask);
    }
    let rest = key.strip_prefix("column.mask.hash.")?;
    let (version, rest) = match rest.strip_prefix("v2.") {
        Some(rest) => (HashVersion::V2, rest),
        None => (HashVersion::V1, rest),
    };
    let (algorithm, salt) = rest.split_once(".with.salt.")?;
    (!algorithm.is_empty() && !algorithm.contains('.') && !salt.is_empty()).then(|| {
        MapperKey::Hash {
            algorithm: algorithm.to_owned(),
            salt: salt.to_owned(),
            version,
        }
    })
}

/// A hash mapper's key with its salt hidden: the salt is what keeps a
/// hashed column from being looked up in a table of known values.
fn mask_salt(key: &str) -> String {
    match key.find(".with.salt.") {
        Some(at) if column_mapper_key(key).is_some() => {
            format!("{}.with.salt.***", &key[..at])
        }
        _ => key.to_owned(),
    }
}

/// The column-mapper rules of `props`, in Debezium's precedence (truncate,
/// mask, propagate by column, propagate by type, hash, hash v2; keys of one
/// kind in key order).
fn column_mappers(props: &Properties) -> Result<ColumnMappers, ConfigError> {
    let mut rules: Vec<(MapperKey, &str, &str)> = props
        .0
        .iter()
        .filter_map(|(k, v)| column_mapper_key(k).map(|m| (m, k.as_str(), v.as_str())))
        .collect();
    rules.sort_by_key(|(m, k, _)| (m.rank(), *k));
    let mut mappers = ColumnMappers::default();
    for (key, text, value) in rules {
        let selector = match key {
            MapperKey::PropagateDataTypes => MapperSelector::DataType,
            _ => MapperSelector::Column,
        };
        if matches!(
            key,
            MapperKey::PropagateColumns | MapperKey::PropagateDataTypes
        ) && value.trim().is_empty()
        {
            // Set but empty, like any other list property: unset.
            continue;
        }
        let shown = mask_salt(text);
        let invalid = |reason: String| ConfigError::Invalid {
            key: shown.clone(),
            value: value.to_owned(),
            reason,
        };
        let mapping = match key {
            MapperKey::Truncate(0) | MapperKey::Mask(0) => {
                return Err(invalid("the number of characters must be positive".into()))
            }
            MapperKey::Truncate(n) => ColumnMapping::Truncate(n),
            MapperKey::Mask(n) => ColumnMapping::Mask(n),
            MapperKey::Hash {
                algorithm,
                salt,
                version,
            } => ColumnMapping::Hash {
                algorithm: HashAlgorithm::from_java_name(&algorithm).ok_or_else(|| {
                    invalid(format!(
                        "unknown hash algorithm {algorithm}; use one of {}",
                        HashAlgorithm::ALL.map(|(_, n)| n).join(", ")
                    ))
                })?,
                salt,
                version,
            },
            MapperKey::PropagateColumns | MapperKey::PropagateDataTypes => {
                ColumnMapping::PropagateSourceType
            }
        };
        let patterns = regex_list(&shown, Some(value))?;
        if patterns.is_empty() {
            return Err(invalid(
                "name at least one <db>.<table>.<column> regex".into(),
            ));
        }
        mappers.push_matching(selector, patterns, mapping);
    }
    Ok(mappers)
}

/// Parses `message.key.columns`: `<table regex>:<col>[,<col>...]` rules
/// separated by `;` (Debezium's `Key.CustomKeyMapper` syntax), each column
/// becoming the whole-name pattern `<table regex>.<col>`.
pub fn message_key_columns(value: &str) -> Result<MessageKeyColumns, ConfigError> {
    let invalid = |rule: &str, reason: &str| ConfigError::Invalid {
        key: "message.key.columns".into(),
        value: rule.to_owned(),
        reason: reason.to_owned(),
    };
    let mut patterns = Vec::new();
    for rule in value.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        let (table, columns) = match rule.split(':').collect::<Vec<_>>()[..] {
            [table, columns]
                if !table.is_empty()
                    && !columns.is_empty()
                    && !rule.chars().any(char::is_whitespace) =>
            {
                (table, columns)
            }
            _ => {
                return Err(invalid(
                    rule,
                    "expected <table regex>:<column>[,<column>...] (e.g. shop.events:tenant_id,event_id), \
                     rules separated by ';'",
                ))
            }
        };
        for column in columns.split(',').filter(|c| !c.is_empty()) {
            patterns.extend(regex_list(
                "message.key.columns",
                Some(&format!("{table}.{column}")),
            )?);
        }
    }
    Ok(MessageKeyColumns::new(patterns))
}

/// Column-mapper properties from the environment: the Debezium key
/// upper-cased with dots as underscores (`COLUMN_MASK_WITH_6_CHARS`,
/// `COLUMN_TRUNCATE_TO_20_CHARS`). Hash rules are not read from the
/// environment: their salt is case-sensitive and an env name cannot keep it;
/// put them in the connector file.
pub fn column_mappers_from_env(
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    vars.filter_map(|(name, value)| {
        let count = |rest: &str| {
            let n = rest.strip_suffix("_CHARS")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.to_owned())
        };
        if let Some(n) = name.strip_prefix("COLUMN_TRUNCATE_TO_").and_then(count) {
            Some((format!("column.truncate.to.{n}.chars"), value))
        } else {
            let n = name.strip_prefix("COLUMN_MASK_WITH_").and_then(count)?;
            Some((format!("column.mask.with.{n}.chars"), value))
        }
    })
    .collect()
}

/// The names a `converters` value lists.
pub fn converter_names(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The key of a table's `snapshot.select.statement.overrides` statement,
/// before `<db>.<table>`.
const SELECT_OVERRIDE_PREFIX: &str = "snapshot.select.statement.overrides.";

/// The statements of the tables `snapshot.select.statement.overrides` lists,
/// found in the environment (`SNAPSHOT_SELECT_STATEMENT_OVERRIDES_SHOP_PURCHASES`
/// for `shop.purchases`).
pub fn select_overrides_from_env(
    tables: &str,
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let keys = converter_names(tables)
        .into_iter()
        .map(|table| format!("{SELECT_OVERRIDE_PREFIX}{table}"));
    keys_from_env(keys, vars)
}

/// The values of settings whose keys depend on other settings (no flag can
/// name them), found in the environment under their env names.
fn keys_from_env(
    keys: impl Iterator<Item = String>,
    vars: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let wanted: Vec<(String, String)> = keys.map(|key| (env_name(&key), key)).collect();
    vars.filter_map(|(var, value)| {
        wanted
            .iter()
            .find(|(env, _)| *env == var)
            .map(|(_, key)| (key.clone(), value))
    })
    .collect()
}

/// `snapshot.select.statement.overrides`: `(db, table)` to the SELECT its
/// snapshot runs. A listed table without a statement is refused (Debezium
/// warns and reads the whole table, which a user who listed it did not ask
/// for).
fn select_overrides(props: &Properties) -> Result<SelectOverrides, ConfigError> {
    let mut overrides = SelectOverrides::new();
    for table in converter_names(
        props
            .get("snapshot.select.statement.overrides")
            .unwrap_or_default(),
    ) {
        let key = format!("{SELECT_OVERRIDE_PREFIX}{table}");
        let statement = props.get(&key).map(str::trim).unwrap_or_default();
        let Some((db, name)) = table
            .split_once('.')
            .filter(|(d, t)| !d.is_empty() && !t.is_empty())
        else {
            return Err(ConfigError::Invalid {
                key: "snapshot.select.statement.overrides".into(),
                value: table.clone(),
                reason: "expected <db>.<table>".into(),
            });
        };
        if statement.is_empty() {
            return Err(ConfigError::Invalid {
                key,
                value: String::new(),
                reason: format!(
                    "snapshot.select.statement.overrides lists {table} but gives it no statement; \
                     set it (env {}) or remove {table} from the list",
                    env_name(&format!("{SELECT_OVERRIDE_PREFIX}{table}"))
                ),
            });
        }
        overrides.insert((db.to_owned(), name.to_owned()), statement.to_owned());
    }
    Ok(overrides)
}

/// `(db, table)` to its snapshot SELECT.
pub type SelectOverrides = BTreeMap<(String, String), String>;

/// The settings of one custom converter, after its name.
const CONVERTER_SETTINGS: [&str; 3] = ["type", "selector", "length.checker"];

/// The converter types `<name>.type` may name: Debezium's TINYINT(1)-to-
/// boolean converter under its current and its deprecated class name.
const BOOLEAN_CONVERTER_TYPES: [&str; 2] = [
    "io.debezium.connector.binlog.converters.TinyIntOneToBooleanConverter",
    "io.debezium.connector.mysql.converters.TinyIntOneToBooleanConverter",
];

/// The `converters` setting: each named converter's type checked, its
/// selector and length checker read. Only Debezium's
/// `TinyIntOneToBooleanConverter` is supported; any other type is refused
/// at start, never ignored (a converter left out changes the schemas).
fn boolean_converters(props: &Properties) -> Result<BooleanConverters, ConfigError> {
    let mut converters = BooleanConverters::default();
    for name in converter_names(props.get("converters").unwrap_or_default()) {
        let type_key = format!("{name}.type");
        let ty = props.get(&type_key).unwrap_or_default().trim();
        if !BOOLEAN_CONVERTER_TYPES.contains(&ty) {
            let reason = if ty.is_empty() {
                format!("converters names {name} but {type_key} is not set")
            } else {
                "this converter type is not supported".to_owned()
            };
            return Err(ConfigError::Invalid {
                key: type_key,
                value: ty.to_owned(),
                reason: format!("{reason}; set it to {}", BOOLEAN_CONVERTER_TYPES[0]),
            });
        }
        let selector_key = format!("{name}.selector");
        let selector = regex_list(&selector_key, props.get(&selector_key))?;
        let checker_key = format!("{name}.length.checker");
        let length_checker = match props.get(&checker_key).map(str::trim) {
            None | Some("") => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: checker_key,
                    value: v.to_owned(),
                    reason: "expected true or false".into(),
                })
            }
        };
        converters.push(selector, length_checker);
    }
    Ok(converters)
}

/// The settings of one transform, after `transforms.<name>.`.
const TRANSFORM_SETTINGS: [&str; 14] = [
    "type",
    "predicate",
    "negate",
    "regex",
    "replacement",
    "delete.tombstone.handling.mode",
    "add.fields",
    "add.fields.prefix",
    "add.headers",
    "add.headers.prefix",
    "replace.null.with.default",
    "route.by.field",
    "drop.fields.header.name",
    "drop.fields.from.key",
];

/// Settings named after an instance, `<prefix><name>.<setting>`: how
/// `converters` (`boolean.type`) and `transforms` (`transforms.unwrap.type`)
/// name theirs, so no flag can name them and the environment has them as
/// `<PREFIX><NAME>_<SETTING>`.
#[derive(Debug, Clone, Copy)]
pub struct NamedSettings {
    prefix: &'static str,
    settings: &'static [&'static str],
}

/// The settings of the converters `converters` lists.
pub const CONVERTER_KEYS: NamedSettings = NamedSettings {
    prefix: "",
    settings: &CONVERTER_SETTINGS,
};

/// The settings of the transforms `transforms` lists.
pub const TRANSFORM_KEYS: NamedSettings = NamedSettings {
    prefix: "transforms.",
    settings: &TRANSFORM_SETTINGS,
};

impl NamedSettings {
    /// Whether `key` is a setting of one of `names`.
    pub fn matches(&self, key: &str, names: &[String]) -> bool {
        names.iter().any(|name| {
            key.strip_prefix(self.prefix)
                .and_then(|rest| rest.strip_prefix(name.as_str()))
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|setting| self.settings.contains(&setting))
        })
    }

    /// The settings of `names` found in the environment, under their env
    /// names (`BOOLEAN_TYPE` for `boolean.type`,
    /// `TRANSFORMS_UNWRAP_ADD_FIELDS` for `transforms.unwrap.add.fields`).
    pub fn from_env(
        &self,
        names: &[String],
        vars: impl Iterator<Item = (String, String)>,
    ) -> Vec<(String, String)> {
        let keys = names.iter().flat_map(|name| {
            self.settings
                .iter()
                .map(move |setting| format!("{}{name}.{setting}", self.prefix))
        });
        keys_from_env(keys, vars)
    }
}

/// The `transforms` chain: Debezium's `ExtractNewRecordState` (at most
/// once) and Connect's `RegexRouter` (any number, applied in the listed
/// order), each with its settings read. Any other transform, and a
/// `predicate` (which would apply a transform to some records only), is
/// refused at start, never ignored: a consumer that expects records
/// transformed would otherwise get them unchanged.
fn transforms(
    props: &Properties,
) -> Result<(Option<ExtractNewRecordState>, Vec<RegexRouter>), ConfigError> {
    let list = props.get("transforms").unwrap_or_default();
    let mut unwrap = None;
    let mut routes = Vec::new();
    for name in converter_names(list) {
        let setting = |s: &str| {
            let key = format!("transforms.{name}.{s}");
            let value = props
                .get(&key)
                .map(str::trim)
                .unwrap_or_default()
                .to_owned();
            (key, value)
        };
        let (predicate_key, predicate) = setting("predicate");
        if !predicate.is_empty() {
            return Err(invalid(
                predicate_key,
                &predicate,
                "cdc applies transforms to every record, without predicates; remove it, or \
                 apply the transform downstream"
                    .into(),
            ));
        }
        let (type_key, ty) = setting("type");
        match ty.as_str() {
            ExtractNewRecordState::TYPE if unwrap.is_some() => {
                return Err(invalid(
                    "transforms".into(),
                    list,
                    format!(
                        "{} is listed twice; list it once",
                        ExtractNewRecordState::TYPE
                    ),
                ))
            }
            ExtractNewRecordState::TYPE => {
                unwrap = Some(extract_new_record_state(props, &name)?);
            }
            RegexRouter::TYPE => {
                let (regex_key, regex) = setting("regex");
                let (replacement_key, replacement) = setting("replacement");
                if regex.is_empty() || !props.0.contains_key(&replacement_key) {
                    let missing = match regex.is_empty() {
                        true => regex_key,
                        false => replacement_key,
                    };
                    return Err(ConfigError::Invalid {
                        key: missing.clone(),
                        value: String::new(),
                        reason: format!("{missing} is required by {}", RegexRouter::TYPE),
                    });
                }
                let router = RegexRouter::new(&regex, &replacement).map_err(|e| match e {
                    RouterError::Regex { .. } => invalid(regex_key, &regex, e.to_string()),
                    RouterError::Replacement(_) => {
                        invalid(replacement_key, &replacement, e.to_string())
                    }
                })?;
                routes.push(router);
            }
            "" => {
                return Err(invalid(
                    type_key,
                    "",
                    format!(
                        "transforms names {name} but its type is not set; cdc runs {} and {}",
                        ExtractNewRecordState::TYPE,
                        RegexRouter::TYPE
                    ),
                ))
            }
            other => {
                return Err(invalid(
                    type_key,
                    other,
                    format!(
                        "cdc runs no other Kafka Connect transform (SMT) than {} and {}; apply \
                         it downstream (e.g. in the sink connector)",
                        ExtractNewRecordState::TYPE,
                        RegexRouter::TYPE
                    ),
                ))
            }
        }
    }
    Ok((unwrap, routes))
}

fn invalid(key: String, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason,
    }
}

/// The settings of the `ExtractNewRecordState` named `name`.
fn extract_new_record_state(
    props: &Properties,
    name: &str,
) -> Result<ExtractNewRecordState, ConfigError> {
    let setting = |s: &str| {
        let key = format!("transforms.{name}.{s}");
        let value = props
            .get(&key)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        (key, value)
    };
    for unsupported in ["route.by.field", "drop.fields.header.name"] {
        let (key, value) = setting(unsupported);
        if !value.is_empty() {
            return Err(invalid(
                key,
                &value,
                "not supported by cdc (topics are per table, and no other transform sets the \
                 header); remove it"
                    .into(),
            ));
        }
    }
    for boolean in ["replace.null.with.default", "drop.fields.from.key"] {
        let (key, value) = setting(boolean);
        if !value.is_empty()
            && !value.eq_ignore_ascii_case("true")
            && !value.eq_ignore_ascii_case("false")
        {
            return Err(invalid(key, &value, "expected true or false".into()));
        }
    }
    let (mode_key, mode) = setting("delete.tombstone.handling.mode");
    let delete_tombstone_handling = match mode.as_str() {
        "" => DeleteTombstoneHandling::default(),
        m => DeleteTombstoneHandling::parse(m).ok_or_else(|| {
            invalid(
                mode_key.clone(),
                m,
                format!(
                    "expected one of {}",
                    DeleteTombstoneHandling::VALUES.join(", ")
                ),
            )
        })?,
    };
    // Unset is the default prefix; set to "" is no prefix.
    let prefix = |key: &str| -> String {
        props
            .get(&format!("transforms.{name}.{key}"))
            .map_or(ExtractNewRecordState::DEFAULT_PREFIX, str::trim)
            .to_owned()
    };
    let (fields_key, fields) = setting("add.fields");
    let (headers_key, headers) = setting("add.headers");
    ExtractNewRecordState::new(delete_tombstone_handling)
        .with_fields(&fields, &prefix("add.fields.prefix"))
        .map_err(|reason| invalid(fields_key, &fields, reason))?
        .with_headers(&headers, &prefix("add.headers.prefix"))
        .map_err(|reason| invalid(headers_key, &headers, reason))
}

/// Parses a `column.exclude.list` value (comma-separated regexes, anchored
/// and case-insensitive like every Debezium filter list).
pub fn column_filter(value: &str) -> Result<ColumnFilter, ConfigError> {
    Ok(ColumnFilter::new(regex_list(
        "column.exclude.list",
        Some(value),
    )?))
}

fn regex_list(key: &str, value: Option<&str>) -> Result<Vec<Regex>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pattern| {
            // Anchored and case-insensitive, as Debezium compiles its filter lists.
            Regex::new(&format!("(?i)^(?:{pattern})$")).map_err(|e| ConfigError::Invalid {
                key: key.to_owned(),
                value: pattern.to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The file property `key` loaded with its password (`<key>.password`),
/// `None` when unset; an error names the property and the file.
fn tls_file<T>(
    props: &Properties,
    key: &str,
    load: impl FnOnce(&Path, &str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    let Some(path) = props.get(key) else {
        return Ok(None);
    };
    let password = props.get(&format!("{key}.password")).unwrap_or_default();
    load(Path::new(path), password)
        .map(Some)
        .map_err(|reason| ConfigError::Invalid {
            key: key.to_owned(),
            value: path.to_owned(),
            reason,
        })
}

/// `gtid.source.includes` / `gtid.source.excludes`: which source server
/// UUIDs count, as in Debezium. A GTID of an excluded source neither
/// positions the connector on resume nor has its row changes captured (a
/// replica may carry other channels that the failover server lacks).
#[derive(Debug, Clone, Default)]
pub struct GtidSourceFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl GtidSourceFilter {
    /// From the two property values; both set is an error (Debezium refuses it too).
    pub fn new(includes: Option<&str>, excludes: Option<&str>) -> Result<Self, ConfigError> {
        let filter = Self {
            include: regex_list("gtid.source.includes", includes)?,
            exclude: regex_list("gtid.source.excludes", excludes)?,
        };
        if !filter.include.is_empty() && !filter.exclude.is_empty() {
            return Err(ConfigError::Invalid {
                key: "gtid.source.excludes".to_owned(),
                value: excludes.unwrap_or_default().to_owned(),
                reason: "set gtid.source.includes or gtid.source.excludes, not both".to_owned(),
            });
        }
        Ok(filter)
    }

    /// Whether nothing is filtered (the default).
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether transactions from server `uuid` count.
    pub fn includes(&self, uuid: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.iter().any(|r| r.is_match(uuid));
        }
        !self.exclude.iter().any(|r| r.is_match(uuid))
    }
}

/// `skipped.operations`: the streamed operations that are not emitted, as in
/// Debezium (`CommonConnectorConfig.determineSkippedOperations`). Debezium's
/// default is `t`: a TRUNCATE is not emitted unless this says `none` (or a
/// list without `t`). A skipped operation still moves the stored position
/// and is counted under `cdc_skipped_total{reason}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkippedOperations {
    pub create: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
}

impl SkippedOperations {
    /// Parses the property value; the same codes and the same refusals as
    /// Debezium's `validateSkippedOperation`.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: "skipped.operations".to_owned(),
            value: value.to_owned(),
            reason,
        };
        let mut skipped = Self::default();
        let (mut none, mut some) = (false, false);
        for code in value.split(',').map(str::trim) {
            match code {
                "none" => none = true,
                "c" => skipped.create = true,
                "u" => skipped.update = true,
                "d" => skipped.delete = true,
                "t" => skipped.truncate = true,
                // Debezium accepts it; reads come from the snapshot, which
                // skipped.operations does not touch.
                "r" => {}
                other => {
                    return Err(invalid(format!(
                        "unknown operation {other:?}; expected a comma-separated list of c, u, d, t, r, or none"
                    )))
                }
            }
            some |= code != "none";
        }
        if none && some {
            return Err(invalid(
                "'none' cannot be combined with other operations".to_owned(),
            ));
        }
        Ok(skipped)
    }
}

/// The options of the connection that reads the binlog: `opts` without
/// `database.initial.statements`, which Debezium runs on its JDBC
/// connections only (a statement meant for queries, a lock wait timeout or
/// a session variable, has no business on the replication stream).
pub fn binlog_opts(opts: &mysql_async::Opts) -> mysql_async::Opts {
    mysql_async::OptsBuilder::from_opts(opts.clone())
        .init(Vec::<String>::new())
        .into()
}

/// Splits `database.initial.statements` as Debezium does: on `;`, with `;;`
/// standing for a `;` inside a statement; blank statements are dropped.
pub fn initial_statements(value: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ';' {
            if chars.peek() == Some(&';') {
                chars.next();
                current.push(';');
                continue;
            }
            statements.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    statements.push(current);
    statements
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Connection to the source database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub server_id: u32,
    pub ssl_mode: SslMode,
    /// `database.ssl.truststore` and `database.ssl.keystore`, read and checked.
    pub tls: TlsFiles,
    /// `database.initial.statements`, split.
    pub initial_statements: Vec<String>,
}

impl DatabaseConfig {
    /// Client options; TLS unless `database.ssl.mode=disabled` (see
    /// [`DatabaseConfig::plain_opts`] for the `preferred` fallback). Every
    /// connection made with them runs `database.initial.statements` first;
    /// the binlog connection leaves them out ([`binlog_opts`]).
    pub fn opts(&self) -> mysql_async::Opts {
        self.builder()
            .ssl_opts(self.tls.ssl_opts(self.ssl_mode))
            .into()
    }

    /// The same options without TLS: what `preferred` uses against a server
    /// that offers none.
    pub fn plain_opts(&self) -> mysql_async::Opts {
        self.builder().into()
    }

    fn builder(&self) -> mysql_async::OptsBuilder {
        mysql_async::OptsBuilder::default()
            .init(self.initial_statements.clone())
            .ip_or_hostname(self.hostname.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose()))
            .prefer_socket(false)
    }
}

/// The validated connector settings.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub database: DatabaseConfig,
    pub topic_prefix: String,
    pub filter: TableFilter,
    /// `column.exclude.list` or `column.include.list`.
    pub column_filter: ColumnFilter,
    /// `column.truncate.to.N.chars`, `column.mask.with.N.chars`,
    /// `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`.
    pub column_mappers: ColumnMappers,
    /// `message.key.columns`.
    pub message_key_columns: MessageKeyColumns,
    /// `converters` of Debezium's `TinyIntOneToBooleanConverter`.
    pub boolean_converters: BooleanConverters,
    /// `transforms` naming Debezium's `ExtractNewRecordState`: flat rows
    /// instead of envelopes.
    pub unwrap: Option<ExtractNewRecordState>,
    /// `transforms` naming Connect's `RegexRouter`s, in order: topic names.
    pub routes: Vec<RegexRouter>,
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.select.statement.overrides` and their statements.
    pub snapshot_select_overrides: SelectOverrides,
    /// `snapshot.locking.mode`.
    pub snapshot_locking: SnapshotLocking,
    /// `event.processing.failure.handling.mode`.
    pub event_failure: EventFailureMode,
    /// `snapshot.lock.timeout.ms`.
    pub snapshot_lock_timeout: Duration,
    /// `gtid.source.includes` / `gtid.source.excludes`.
    pub gtid_filter: GtidSourceFilter,
    pub decimal_handling: DecimalHandling,
    pub time_precision: TimePrecision,
    pub bigint_unsigned: BigintUnsigned,
    /// `binary.handling.mode`.
    pub binary_handling: BinaryHandling,
    /// `include.query`: `source.query` from the binlog's Rows_query events.
    pub include_query: bool,
    pub tombstones_on_delete: bool,
    /// `skip.messages.without.change`.
    pub skip_messages_without_change: bool,
    /// `skipped.operations`.
    pub skipped_operations: SkippedOperations,
    /// `extended.headers.enabled`: Debezium's `__debezium.context.*` headers.
    pub extended_headers: bool,
    /// `include.schema.changes`: DDL to the `<topic.prefix>` topic.
    pub include_schema_changes: bool,
    /// `heartbeat.interval.ms`: Debezium heartbeat records; `None` when 0 (off).
    pub heartbeat_interval: Option<Duration>,
    /// `<topic.heartbeat.prefix>.<topic.prefix>`.
    pub heartbeat_topic: String,
    /// `heartbeat.action.query`.
    pub heartbeat_action_query: Option<String>,
    /// `provide.transaction.metadata`: the transaction topic
    /// (`<topic.prefix>.<topic.transaction>`), `None` when off.
    pub transaction_topic: Option<String>,
    /// `binlog.heartbeat.interval.ms`: the server's heartbeat period on the
    /// binlog connection (stall detection, independent of heartbeat records).
    pub binlog_heartbeat_interval: Duration,
    pub offset_storage: OffsetStorage,
    pub offset_flush_interval: Duration,
    /// `exactly.once.support` and its companions; `None`: at-least-once.
    pub exactly_once: Option<ExactlyOnce>,
    pub topic_partitions: i32,
    pub topic_replication: i32,
    pub compression: String,
    /// Signal channels and incremental snapshot settings.
    pub signals: SignalConfig,
    /// The text form, for the masked printout.
    pub properties: Properties,
}

impl ConnectorConfig {
    /// Validates properties, applying defaults for what is absent.
    pub fn from_properties(given: &Properties) -> Result<Self, ConfigError> {
        let mut props = given.clone();
        for p in PROPERTIES {
            if let Some(default) = p.default {
                props
                    .0
                    .entry(p.key.to_owned())
                    .or_insert(default.to_owned());
            }
        }
        let required = |key: &'static str| {
            props
                .get(key)
                .map(str::to_owned)
                .ok_or(ConfigError::Missing {
                    key,
                    env: env_name(key),
                })
        };
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        fn number<T: std::str::FromStr>(props: &Properties, key: &str) -> Result<T, ConfigError> {
            let value = props.get(key).unwrap_or_default();
            value.parse().map_err(|_| ConfigError::Invalid {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: "not a valid number in range".to_owned(),
            })
        }
        let choice = |key: &str| props.get(key).unwrap_or_default().to_owned();

        let topic_prefix = required("topic.prefix")?;
        if !topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "topic.prefix",
                &topic_prefix,
                "only letters, digits, '.', '_' and '-' are valid in topic names",
            ));
        }
        let server_id: u32 = number(&props, "database.server.id")?;
        if server_id == 0 {
            return Err(invalid(
                "database.server.id",
                "0",
                "must be 1..4294967295 and unique among the server's replicas",
            ));
        }
        let ssl = choice("database.ssl.mode");
        let ssl_mode = SslMode::parse(&ssl).ok_or_else(|| {
            invalid(
                "database.ssl.mode",
                &ssl,
                &format!("expected {}", SslMode::NAMES),
            )
        })?;
        let truststore = tls_file(&props, "database.ssl.truststore", TrustStore::load)?;
        let keystore = tls_file(&props, "database.ssl.keystore", |path, password| {
            KeyStore::load(path, Secret::new(password))
        })?;
        let database = DatabaseConfig {
            hostname: required("database.hostname")?,
            port: number(&props, "database.port")?,
            user: required("database.user")?,
            password: Secret::new(
                props
                    .0
                    .get("database.password")
                    .cloned()
                    .unwrap_or_default(),
            ),
            server_id,
            ssl_mode,
            tls: TlsFiles {
                truststore,
                keystore,
            },
            initial_statements: props
                .get("database.initial.statements")
                .map(initial_statements)
                .unwrap_or_default(),
        };
        let column_filter = match (
            props.get("column.include.list"),
            props.get("column.exclude.list"),
        ) {
            (Some(include), Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "column.include.list".into(),
                    value: include.to_owned(),
                    reason: "column.include.list and column.exclude.list cannot both be set \
                             (Debezium refuses it too): keep one"
                        .into(),
                })
            }
            (Some(include), None) => {
                ColumnFilter::including(regex_list("column.include.list", Some(include))?)
            }
            (None, exclude) => ColumnFilter::new(regex_list("column.exclude.list", exclude)?),
        };
        let column_mappers = column_mappers(&props)?;
        let boolean_converters = boolean_converters(&props)?;
        let (unwrap, routes) = transforms(&props)?;
        let message_key_columns = props
            .get("message.key.columns")
            .map(message_key_columns)
            .transpose()?
            .unwrap_or_default();
        let filter = TableFilter {
            database_include: regex_list(
                "database.include.list",
                props.get("database.include.list"),
            )?,
            database_exclude: regex_list(
                "database.exclude.list",
                props.get("database.exclude.list"),
            )?,
            table_include: regex_list("table.include.list", props.get("table.include.list"))?,
            table_exclude: regex_list("table.exclude.list", props.get("table.exclude.list"))?,
            snapshot_include: regex_list(
                "snapshot.include.collection.list",
                props.get("snapshot.include.collection.list"),
            )?,
        };
        let mode = choice("snapshot.mode");
        let snapshot_mode = SnapshotMode::parse(&mode).ok_or_else(|| {
            invalid(
                "snapshot.mode",
                &mode,
                "expected initial, initial_only, no_data, when_needed or always",
            )
        })?;
        let snapshot_select_overrides = select_overrides(&props)?;
        let locking = choice("snapshot.locking.mode");
        let snapshot_locking = SnapshotLocking::parse(&locking)
            .map_err(|why| invalid("snapshot.locking.mode", &locking, why))?;
        let snapshot_lock_timeout =
            Duration::from_millis(number(&props, "snapshot.lock.timeout.ms")?);
        let failure = choice("event.processing.failure.handling.mode");
        let event_failure = EventFailureMode::parse(&failure).ok_or_else(|| {
            invalid(
                "event.processing.failure.handling.mode",
                &failure,
                "expected fail, warn or skip",
            )
        })?;
        let gtid_filter = GtidSourceFilter::new(
            props.get("gtid.source.includes"),
            props.get("gtid.source.excludes"),
        )?;
        for key in ["schema.name.adjustment.mode", "field.name.adjustment.mode"] {
            let mode = choice(key);
            match mode.as_str() {
                "none" | "avro" => {}
                "avro_unicode" => {
                    return Err(invalid(
                        key,
                        &mode,
                        "not supported: cdc replaces each character Avro does not allow in a \
                         name with _ (avro); a consumer that expects _uXXXX escapes would see \
                         other names",
                    ))
                }
                _ => return Err(invalid(key, &mode, "expected none or avro")),
            }
        }
        let decimal = choice("decimal.handling.mode");
        let decimal_handling = match decimal.as_str() {
            "precise" => DecimalHandling::Precise,
            "double" => DecimalHandling::Double,
            "string" => DecimalHandling::String,
            _ => {
                return Err(invalid(
                    "decimal.handling.mode",
                    &decimal,
                    "expected precise, double or string",
                ))
            }
        };
        let time = choice("time.precision.mode");
        let time_precision =
            match time.as_str() {
                "adaptive_time_microseconds" => TimePrecision::AdaptiveTimeMicroseconds,
                "connect" => TimePrecision::Connect,
                _ => return Err(invalid(
                    "time.precision.mode",
                    &time,
                    "expected adaptive_time_microseconds or connect (adaptive is not supported)",
                )),
            };
        let bigint = choice("bigint.unsigned.handling.mode");
        let bigint_unsigned = match bigint.as_str() {
            "long" => BigintUnsigned::Long,
            "precise" => BigintUnsigned::Precise,
            _ => {
                return Err(invalid(
                    "bigint.unsigned.handling.mode",
                    &bigint,
                    "expected long or precise",
                ))
            }
        };
        let binary = choice("binary.handling.mode");
        let binary_handling = BinaryHandling::parse(&binary).ok_or_else(|| {
            invalid(
                "binary.handling.mode",
                &binary,
                "expected bytes, base64, base64-url-safe or hex",
            )
        })?;
        let tombstones = choice("tombstones.on.delete");
        let tombstones_on_delete = match tombstones.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(invalid(
                    "tombstones.on.delete",
                    &tombstones,
                    "expected true or false",
                ))
            }
        };
        let skipped_operations = SkippedOperations::parse(&choice("skipped.operations"))?;
        let flag = |key: &str| match choice(key).as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(invalid(key, other, "expected true or false")),
        };
        let extended_headers = flag("extended.headers.enabled")?;
        let include_schema_changes = flag("include.schema.changes")?;
        let include_query = flag("include.query")?;
        let skip_messages_without_change = flag("skip.messages.without.change")?;
        let heartbeat_ms: u64 = number(&props, "heartbeat.interval.ms")?;
        let heartbeat_prefix = choice("topic.heartbeat.prefix");
        if heartbeat_prefix.is_empty()
            || !heartbeat_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "topic.heartbeat.prefix",
                &heartbeat_prefix,
                "only letters, digits, '.', '_' and '-' are valid in topic names",
            ));
        }
        let heartbeat_topic = format!("{heartbeat_prefix}.{topic_prefix}");
        let heartbeat_action_query = props.get("heartbeat.action.query").map(str::to_owned);
        if heartbeat_action_query.is_some() && heartbeat_ms == 0 {
            tracing::warn!("heartbeat.action.query is set but heartbeat.interval.ms is 0: the query never runs (as in Debezium)");
        }
        let transaction_suffix = choice("topic.transaction");
        if transaction_suffix.is_empty()
            || !transaction_suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "topic.transaction",
                &transaction_suffix,
                "only letters, digits, '.', '_' and '-' are valid in topic names",
            ));
        }
        let transaction_topic = flag("provide.transaction.metadata")?
            .then(|| format!("{topic_prefix}.{transaction_suffix}"));
        let binlog_heartbeat_ms: u64 = number(&props, "binlog.heartbeat.interval.ms")?;
        if binlog_heartbeat_ms == 0 {
            return Err(invalid(
                "binlog.heartbeat.interval.ms",
                "0",
                "must be positive: the binlog connection needs server heartbeats to notice a silent stall",
            ));
        }
        let storage = choice("offset.storage");
        let offset_storage = match storage.as_str() {
            "kafka" => OffsetStorage::Kafka {
                topic: props
                    .get("offset.storage.topic")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("__cdc-offsets.{topic_prefix}")),
            },
            "file" => OffsetStorage::File {
                path: PathBuf::from(props.get("offset.storage.file.filename").ok_or(
                    ConfigError::Missing {
                        key: "offset.storage.file.filename",
                        env: env_name("offset.storage.file.filename"),
                    },
                )?),
            },
            _ => {
                return Err(invalid(
                    "offset.storage",
                    &storage,
                    "expected kafka or file",
                ))
            }
        };
        let compression = choice("compression.type");
        if !matches!(
            compression.as_str(),
            "none" | "lz4" | "zstd" | "snappy" | "gzip"
        ) {
            return Err(invalid(
                "compression.type",
                &compression,
                "expected none, lz4, zstd, snappy or gzip",
            ));
        }
        let topic_partitions: i32 = number(&props, "topic.creation.default.partitions")?;
        let topic_replication: i32 = number(&props, "topic.creation.default.replication.factor")?;
        if topic_partitions < 1 || topic_replication < 1 {
            return Err(invalid(
                "topic.creation.default.partitions",
                &format!("{topic_partitions}/{topic_replication}"),
                "partitions and replication factor must be at least 1",
            ));
        }
        let signals = signal_config(&props)?;
        let name = required("name")?;
        if let OffsetStorage::Kafka { topic } = &offset_storage {
            // Show the derived default in the printout.
            props
                .0
                .insert("offset.storage.topic".to_owned(), topic.clone());
        }
        let offset_flush_interval =
            Duration::from_millis(number(&props, "offset.flush.interval.ms")?);
        let exactly_once = exactly_once(&props, &name, &offset_storage, offset_flush_interval)?;
        if let Some(eos) = &exactly_once {
            // Show the derived default in the printout.
            props
                .0
                .insert("transactional.id".to_owned(), eos.transactional_id.clone());
        }
        Ok(Self {
            name,
            database,
            topic_prefix,
            filter,
            column_filter,
            column_mappers,
            message_key_columns,
            boolean_converters,
            unwrap,
            routes,
            snapshot_mode,
            snapshot_select_overrides,
            snapshot_locking,
            event_failure,
            snapshot_lock_timeout,
            gtid_filter,
            decimal_handling,
            time_precision,
            bigint_unsigned,
            binary_handling,
            include_query,
            tombstones_on_delete,
            skip_messages_without_change,
            skipped_operations,
            extended_headers,
            include_schema_changes,
            heartbeat_interval: (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms)),
            heartbeat_topic,
            heartbeat_action_query,
            transaction_topic,
            binlog_heartbeat_interval: Duration::from_millis(binlog_heartbeat_ms),
            offset_storage,
            offset_flush_interval,
            exactly_once,
            topic_partitions,
            topic_replication,
            compression,
            signals,
            properties: props,
        })
    }

    /// A config for tests and tools: required settings given, the rest defaults.
    ///
    /// # Panics
    /// When the given settings are invalid (a value `from_properties` refuses):
    /// the caller's bug, named in the message.
    // Documented exception: a test and tool constructor whose only inputs are
    // the caller's literals; production configs come from `from_properties`.
    #[allow(clippy::panic)]
    pub fn for_database(
        hostname: &str,
        port: u16,
        user: &str,
        password: &str,
        topic_prefix: &str,
    ) -> Self {
        let props = Properties(
            [
                ("database.hostname", hostname.to_owned()),
                ("database.port", port.to_string()),
                ("database.user", user.to_owned()),
                ("database.password", password.to_owned()),
                ("topic.prefix", topic_prefix.to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        Self::from_properties(&props).unwrap_or_else(|e| panic!("test config invalid: {e}"))
    }

    /// The effective settings, one `key = value` per line, secrets masked.
    pub fn describe(&self) -> String {
        self.properties
            .masked()
            .into_iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub connector: ConnectorConfig,
    pub kafka: pipeline::kafka::KafkaArgs,
    pub registry: pipeline::registry::RegistryArgs,
}

impl Config {
    /// Merges flags/env (already in `matches`) over the optional connector
    /// file, validates, and returns the config plus warnings to log.
    pub fn from_matches(
        matches: &ArgMatches,
        kafka: pipeline::kafka::KafkaArgs,
        mut registry: pipeline::registry::RegistryArgs,
        registry_url_from_default: bool,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut props = Properties::default();
        if let Some(path) = matches.get_one::<PathBuf>("config-file") {
            let (file_props, unknown) = read_connector_file(path)?;
            for key in unknown {
                warnings.push(format!(
                    "unknown setting {key} in {} ignored; see --help for the supported ones",
                    path.display()
                ));
            }
            props = file_props;
        }
        // Mapper keys carry their argument, so no flag can name them; the
        // environment beats the file as for every other setting.
        props.0.extend(column_mappers_from_env(std::env::vars()));
        for p in PROPERTIES {
            if let Some(value) = matches.get_one::<String>(p.key) {
                let from_user = matches!(
                    matches.value_source(p.key),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                );
                if from_user {
                    props.0.insert(p.key.to_owned(), value.clone());
                }
            }
        }
        // Converter and transform settings are named after the instance
        // (see `NamedSettings`): read for each name the lists give.
        let names = converter_names(props.get("converters").unwrap_or_default());
        props
            .0
            .extend(CONVERTER_KEYS.from_env(&names, std::env::vars()));
        let names = converter_names(props.get("transforms").unwrap_or_default());
        props
            .0
            .extend(TRANSFORM_KEYS.from_env(&names, std::env::vars()));
        let overridden = props
            .get("snapshot.select.statement.overrides")
            .unwrap_or_default()
            .to_owned();
        props
            .0
            .extend(select_overrides_from_env(&overridden, std::env::vars()));
        // Debezium files name the registry in the converter settings; use that
        // unless a flag or env set the registry explicitly.
        let converter_keys: Vec<String> = props
            .0
            .keys()
            .filter(|k| k.contains("converter."))
            .cloned()
            .collect();
        for key in converter_keys {
            let value = props.0.remove(&key).unwrap_or_default();
            if key.ends_with("schema.registry.url") && registry_url_from_default {
                registry.url = value.into();
            } else if key.ends_with("basic.auth.user.info")
                && registry.basic_auth_user_info.is_none()
            {
                registry.basic_auth_user_info = Some(value.into());
            }
        }
        let connector = ConnectorConfig::from_properties(&props)?;
        if connector.database.tls.truststore.is_some() && !connector.database.ssl_mode.verifies() {
            // A trust store suggests the user expects verification; say it is off.
            warnings.push(format!(
                "database.ssl.truststore is set but database.ssl.mode={} does not verify the \
                 server's certificate; use verify_ca or verify_identity",
                connector.database.ssl_mode
            ));
        }
        Ok((
            Self {
                connector,
                kafka,
                registry,
            },
            warnings,
        ))
    }

    /// The whole effective configuration, secrets masked.
    pub fn describe(&self) -> String {
        format!(
            "{}{}\n{}\n",
            self.connector.describe(),
            self.kafka.describe(),
            self.registry.describe()
        )
    }
}

/// Debezium's signalling and incremental snapshot settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalConfig {
    /// `signal.data.collection` as (database, table).
    pub data_collection: Option<(String, String)>,
    /// `signal.enabled.channels` has `source`.
    pub source_channel: bool,
    /// `signal.enabled.channels` has `kafka`: the topic (`signal.kafka.topic`).
    pub kafka_topic: Option<String>,
    /// `signal.kafka.groupId`.
    pub kafka_group_id: String,
    /// `incremental.snapshot.chunk.size`.
    pub chunk_size: u32,
    /// `read.only`.
    pub read_only: bool,
}

impl SignalConfig {
    /// Whether `db.table` is the signal table.
    pub fn is_signal_table(&self, database: &str, table: &str) -> bool {
        self.data_collection
            .as_ref()
            .is_some_and(|(d, t)| d == database && t == table)
    }
}

fn signal_config(props: &Properties) -> Result<SignalConfig, ConfigError> {
    let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let data_collection = match props.get("signal.data.collection") {
        None => None,
        Some(v) => match v.split_once('.') {
            Some((d, t)) if !d.is_empty() && !t.is_empty() && !t.contains('.') => {
                Some((d.to_owned(), t.to_owned()))
            }
            _ => {
                return Err(invalid(
                    "signal.data.collection",
                    v,
                    "expected <database>.<table>",
                ))
            }
        },
    };
    let channels = props.get("signal.enabled.channels").unwrap_or("source");
    let (mut source_channel, mut kafka_channel) = (false, false);
    for c in channels.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match c {
            "source" => source_channel = true,
            "kafka" => kafka_channel = true,
            other => {
                return Err(invalid(
                    "signal.enabled.channels",
                    channels,
                    &format!("unknown channel {other:?}: source and kafka are supported (jmx and file are not)"),
                ))
            }
        }
    }
    let kafka_topic = match (kafka_channel, props.get("signal.kafka.topic")) {
        (true, Some(t)) => Some(t.to_owned()),
        (true, None) => {
            return Err(ConfigError::Missing {
                key: "signal.kafka.topic",
                env: env_name("signal.kafka.topic"),
            })
        }
        (false, _) => None,
    };
    let chunk = props
        .get("incremental.snapshot.chunk.size")
        .unwrap_or("1024");
    let chunk_size: u32 = chunk.parse().ok().filter(|&n: &u32| n > 0).ok_or_else(|| {
        invalid(
            "incremental.snapshot.chunk.size",
            chunk,
            "expected a positive number",
        )
    })?;
    let strategy = props
        .get("incremental.snapshot.watermarking.strategy")
        .unwrap_or("insert_insert");
    if strategy != "insert_insert" {
        return Err(invalid(
            "incremental.snapshot.watermarking.strategy",
            strategy,
            "only insert_insert is supported (insert_delete is not)",
        ));
    }
    let read_only = match props.get("read.only").unwrap_or("false") {
        "true" => true,
        "false" => false,
        other => return Err(invalid("read.only", other, "expected true or false")),
    };
    Ok(SignalConfig {
        data_collection,
        source_channel,
        kafka_topic,
        kafka_group_id: props
            .get("signal.kafka.groupId")
            .unwrap_or("kafka-signal")
            .to_owned(),
        chunk_size,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Properties {
        Properties(
            [
                ("database.hostname", "db"),
                ("database.user", "cdc"),
                ("database.password", "hunter2"),
                ("topic.prefix", "mysql"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        )
    }

    #[test]
    fn binary_handling_and_include_query() {
        let with = |key: &str, value: &str| {
            let mut p = base();
            p.0.insert(key.into(), value.into());
            ConnectorConfig::from_properties(&p)
        };
        for (text, mode) in [
            ("bytes", BinaryHandling::Bytes),
            ("base64", BinaryHandling::Base64),
            ("base64-url-safe", BinaryHandling::Base64UrlSafe),
            ("hex", BinaryHandling::Hex),
        ] {
            let c = with("binary.handling.mode", text).unwrap();
            assert_eq!(c.binary_handling, mode);
        }
        let bad = with("binary.handling.mode", "base32")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("binary.handling.mode") && bad.contains("base64-url-safe"),
            "{bad}"
        );
        assert!(with("include.query", "true").unwrap().include_query);
        let bad = with("include.query", "yes").unwrap_err().to_string();
        assert!(bad.contains("include.query"), "{bad}");
    }

    #[test]
    fn converters_come_from_file_and_env_and_bad_ones_are_refused() {
        // From a connector file: the converter's settings are known keys.
        let (props, unknown) = parse_connector_json(
            r#"{"converters": "boolean, other", "boolean.type":
                "io.debezium.connector.binlog.converters.TinyIntOneToBooleanConverter",
                "boolean.selector": "shop\\.users\\.is_vip", "boolean.length.checker": "false",
                "other.type": "io.debezium.connector.mysql.converters.TinyIntOneToBooleanConverter",
                "stray.type": "x"}"#,
        )
        .unwrap();
        assert_eq!(unknown, vec!["stray.type".to_owned()]);
        let mut p = base();
        p.0.extend(props.0);
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(!c.boolean_converters.is_empty());

        // From the environment: <NAME>_TYPE for each listed name only.
        let env = CONVERTER_KEYS.from_env(
            &converter_names(" flag ,"),
            [
                ("FLAG_TYPE", "t"),
                ("FLAG_LENGTH_CHECKER", "false"),
                ("OTHER_TYPE", "u"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(
            env,
            vec![
                ("flag.type".to_owned(), "t".to_owned()),
                ("flag.length.checker".to_owned(), "false".to_owned())
            ]
        );

        let with = |pairs: &[(&str, &str)]| {
            let mut p = base();
            for (k, v) in pairs {
                p.0.insert((*k).into(), (*v).into());
            }
            ConnectorConfig::from_properties(&p).map_err(|e| e.to_string())
        };
        assert!(with(&[]).unwrap().boolean_converters.is_empty());
        let missing = with(&[("converters", "b")]).unwrap_err();
        assert!(
            missing.contains("b.type") && missing.contains("TinyIntOneToBooleanConverter"),
            "{missing}"
        );
        let other = with(&[
            ("converters", "b"),
            (
                "b.type",
                "io.debezium.connector.binlog.converters.JdbcSinkDataTypesConverter",
            ),
        ])
        .unwrap_err();
        assert!(other.contains("not supported"), "{other}");
        let checker = with(&[
            ("converters", "b"),
            (
                "b.type",
                "io.debezium.connector.binlog.converters.TinyIntOneToBooleanConverter",
            ),
            ("b.length.checker", "yes"),
        ])
        .unwrap_err();
        assert!(checker.contains("b.length.checker"), "{checker}");
    }

    #[test]
    fn defaults_follow_debezium() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert_eq!(c.database.port, 3306);
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert_eq!(c.decimal_handling, DecimalHandling::Precise);
        assert_eq!(c.time_precision, TimePrecision::AdaptiveTimeMicroseconds);
        assert_eq!(c.binary_handling, BinaryHandling::Bytes);
        assert!(!c.include_query);
        assert!(c.tombstones_on_delete);
        assert_eq!(
            c.skipped_operations,
            SkippedOperations {
                truncate: true,
                ..SkippedOperations::default()
            }
        );
        assert_eq!(c.database.ssl_mode, SslMode::Preferred);
        assert_eq!(
            c.offset_storage,
            OffsetStorage::Kafka {
                topic: "__cdc-offsets.mysql".into()
            }
        );
    }

    #[test]
    fn signal_settings() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert_eq!(c.signals.data_collection, None);
        assert!(c.signals.source_channel);
        assert_eq!(c.signals.chunk_size, 1024);
        assert!(!c.signals.read_only);
        let with = |pairs: &[(&str, &str)]| {
            let mut p = base();
            for (k, v) in pairs {
                p.0.insert((*k).into(), (*v).into());
            }
            ConnectorConfig::from_properties(&p).map(|c| c.signals)
        };
        let s = with(&[
            ("signal.data.collection", "shop.debezium_signal"),
            ("signal.enabled.channels", "source,kafka"),
            ("signal.kafka.topic", "signals"),
            ("incremental.snapshot.chunk.size", "10"),
        ])
        .unwrap();
        assert!(s.is_signal_table("shop", "debezium_signal"));
        assert!(!s.is_signal_table("shop", "users"));
        assert_eq!(s.kafka_topic.as_deref(), Some("signals"));
        assert_eq!(s.chunk_size, 10);
        let missing = with(&[("signal.enabled.channels", "kafka")]).unwrap_err();
        assert!(
            missing.to_string().contains("signal.kafka.topic"),
            "{missing}"
        );
        assert!(with(&[("signal.data.collection", "nodot")]).is_err());
        assert!(with(&[("incremental.snapshot.chunk.size", "0")]).is_err());
        assert!(with(&[("signal.enabled.channels", "jmx")]).is_err());
        assert!(with(&[("read.only", "true")]).unwrap().read_only);
        assert!(with(&[("read.only", "yes")]).is_err());
        assert!(
            !with(&[
                ("signal.enabled.channels", "kafka"),
                ("signal.kafka.topic", "s")
            ])
            .unwrap()
            .source_channel
        );
        assert!(with(&[(
            "incremental.snapshot.watermarking.strategy",
            "insert_delete"
        )])
        .is_err());
    }

    #[test]
    fn skipped_operations_parse_like_debezium() {
        let with = |v: &str| {
            let mut p = base();
            p.0.insert("skipped.operations".into(), v.into());
            ConnectorConfig::from_properties(&p).map(|c| c.skipped_operations)
        };
        assert_eq!(with("none").unwrap(), SkippedOperations::default());
        assert_eq!(
            with(" c, d ").unwrap(),
            SkippedOperations {
                create: true,
                delete: true,
                ..SkippedOperations::default()
            }
        );
        assert_eq!(
            with("r,u,t").unwrap(),
            SkippedOperations {
                update: true,
                truncate: true,
                ..SkippedOperations::default()
            }
        );
        let bad = with("x").unwrap_err().to_string();
        assert!(
            bad.contains("skipped.operations") && bad.contains("\"x\""),
            "{bad}"
        );
        let mixed = with("none,t").unwrap_err().to_string();
        assert!(mixed.contains("'none' cannot be combined"), "{mixed}");
    }

    #[test]
    fn ssl_modes_are_debeziums() {
        for (value, mode) in [
            ("disabled", SslMode::Disabled),
            ("preferred", SslMode::Preferred),
            ("REQUIRED", SslMode::Required),
            ("verify_ca", SslMode::VerifyCa),
            ("verify_identity", SslMode::VerifyIdentity),
        ] {
            let mut p = base();
            p.0.insert("database.ssl.mode".into(), value.into());
            let c = ConnectorConfig::from_properties(&p).unwrap();
            assert_eq!(c.database.ssl_mode, mode);
            assert_eq!(
                c.database.opts().ssl_opts().is_some(),
                mode != SslMode::Disabled
            );
            assert!(c.database.plain_opts().ssl_opts().is_none());
        }
        let mut p = base();
        p.0.insert("database.ssl.mode".into(), "verify-full".into());
        let err = ConnectorConfig::from_properties(&p).unwrap_err();
        assert!(err.to_string().contains("database.ssl.mode"), "{err}");
        assert!(err.to_string().contains("verify_identity"), "{err}");
    }

    #[test]
    fn tls_files_are_checked_at_start_and_named_in_the_error() {
        for key in ["database.ssl.truststore", "database.ssl.keystore"] {
            let mut p = base();
            p.0.insert("database.ssl.mode".into(), "verify_identity".into());
            p.0.insert(key.into(), "/nonexistent/store.p12".into());
            let err = ConnectorConfig::from_properties(&p)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key) && err.contains("/nonexistent/store.p12"),
                "{err}"
            );
            assert!(err.contains("cannot be read"), "{err}");
        }
        let mut p = base();
        p.0.insert("database.ssl.keystore.password".into(), "hunter2".into());
        p.0.insert("database.ssl.truststore.password".into(), "hunter3".into());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        let shown = format!("{:?} {:?} {}", c.database, c, c.describe());
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn missing_required_names_flag_and_env() {
        let mut p = base();
        p.0.remove("topic.prefix");
        let err = ConnectorConfig::from_properties(&p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "missing required setting topic.prefix (flag --topic.prefix, env TOPIC_PREFIX)"
        );
    }

    #[test]
    fn bad_enum_is_one_clear_line() {
        let mut p = base();
        p.0.insert("snapshot.mode".into(), "sometimes".into());
        let err = ConnectorConfig::from_properties(&p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("snapshot.mode=\"sometimes\""), "{err}");
        assert!(err.contains("when_needed"), "{err}");
    }

    #[test]
    fn secrets_are_masked() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        let text = c.describe();
        assert!(text.contains("database.password = ***"), "{text}");
        assert!(!text.contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    fn ids(list: &[&str]) -> Vec<(String, String)> {
        list.iter()
            .map(|full| {
                let (db, t) = full.split_once('.').unwrap();
                (db.to_owned(), t.to_owned())
            })
            .collect()
    }

    #[test]
    fn snapshot_order_follows_the_include_list() {
        let all = ids(&[
            "shop.users",
            "shop.items",
            "shop.purchases",
            "shop.item_tags",
            "a-b.x",
            "a.y",
            "other.t",
        ]);
        // Pattern by pattern, each pattern's tables in name order, no repeats.
        let mut p = base();
        p.0.insert(
            "table.include.list".into(),
            "shop.purchases,SHOP.ITEM.*,shop.items,shop.users".into(),
        );
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert_eq!(
            c.filter.snapshot_order(all.clone()),
            ids(&[
                "shop.purchases",
                "shop.item_tags",
                "shop.items",
                "shop.users"
            ])
        );
        // snapshot.include.collection.list removes, never reorders.
        p.0.insert(
            "snapshot.include.collection.list".into(),
            "shop.users,shop.purchases".into(),
        );
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert_eq!(
            c.filter.snapshot_order(all.clone()),
            ids(&["shop.purchases", "shop.users"])
        );
        // Without a table list: by `<db>.<table>` as one string.
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert_eq!(
            c.filter.snapshot_order(all),
            ids(&[
                "a-b.x",
                "a.y",
                "other.t",
                "shop.item_tags",
                "shop.items",
                "shop.purchases",
                "shop.users"
            ])
        );
    }

    #[test]
    fn heartbeats_follow_debezium_and_stall_detection_is_separate() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        // Debezium: heartbeat records off by default; our stall detection on.
        assert_eq!(c.heartbeat_interval, None);
        assert_eq!(c.heartbeat_topic, "__debezium-heartbeat.mysql");
        assert_eq!(c.heartbeat_action_query, None);
        assert_eq!(c.binlog_heartbeat_interval, Duration::from_secs(10));
        let mut p = base();
        p.0.insert("heartbeat.interval.ms".into(), "250".into());
        p.0.insert("topic.heartbeat.prefix".into(), "hb".into());
        p.0.insert(
            "heartbeat.action.query".into(),
            "UPDATE hb.beat SET ts = NOW()".into(),
        );
        p.0.insert("binlog.heartbeat.interval.ms".into(), "1500".into());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert_eq!(c.heartbeat_interval, Some(Duration::from_millis(250)));
        assert_eq!(c.heartbeat_topic, "hb.mysql");
        assert_eq!(
            c.heartbeat_action_query.as_deref(),
            Some("UPDATE hb.beat SET ts = NOW()")
        );
        assert_eq!(c.binlog_heartbeat_interval, Duration::from_millis(1500));
        for (key, bad) in [
            ("heartbeat.interval.ms", "-1"),
            ("heartbeat.interval.ms", "soon"),
            ("binlog.heartbeat.interval.ms", "0"),
            ("topic.heartbeat.prefix", "a b"),
        ] {
            let mut p = base();
            p.0.insert(key.into(), bad.into());
            let err = ConnectorConfig::from_properties(&p)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}={bad}: {err}");
        }
    }

    #[test]
    fn transaction_metadata_is_off_by_default_like_debezium() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert_eq!(c.transaction_topic, None);
        let mut p = base();
        p.0.insert("provide.transaction.metadata".into(), "true".into());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert_eq!(c.transaction_topic.as_deref(), Some("mysql.transaction"));
        p.0.insert("topic.transaction".into(), "tx".into());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert_eq!(c.transaction_topic.as_deref(), Some("mysql.tx"));
        p.0.insert("provide.transaction.metadata".into(), "yes".into());
        assert!(ConnectorConfig::from_properties(&p).is_err());
    }

    #[test]
    fn header_and_schema_topic_switches() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert!(c.extended_headers && c.include_schema_changes);
        let mut p = base();
        p.0.insert("extended.headers.enabled".into(), "false".into());
        p.0.insert("include.schema.changes".into(), "false".into());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(!c.extended_headers && !c.include_schema_changes);
        p.0.insert("include.schema.changes".into(), "maybe".into());
        assert!(ConnectorConfig::from_properties(&p).is_err());
    }

    #[test]
    fn filters_match_whole_names_like_debezium() {
        let mut p = base();
        p.0.insert(
            "table.include.list".into(),
            "shop\\.users, shop.item.*".into(),
        );
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(c.filter.includes("shop", "users"));
        assert!(c.filter.includes("shop", "items"));
        assert!(!c.filter.includes("shop", "users_archive"));
        assert!(!c.filter.includes("shop", "purchases"));

        let mut p = base();
        p.0.insert("database.include.list".into(), "shop".into());
        p.0.insert("table.exclude.list".into(), "shop\\.secret".into());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(c.filter.includes("shop", "users"));
        assert!(!c.filter.includes("shop", "secret"));
        assert!(!c.filter.includes("shopping", "users"));

        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert!(!c.filter.includes("mysql", "user"));
        assert!(c.filter.includes("anything", "t"));
    }

    #[test]
    fn column_exclude_list_matches_whole_qualified_column_names() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert!(c.column_filter.is_empty());
        assert!(!c.column_filter.excludes("shop", "users", "email"));

        let mut p = base();
        p.0.insert(
            "column.exclude.list".into(),
            "shop\\.users\\.email, shop\\.items\\.secret_.*".into(),
        );
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(!c.column_filter.is_empty());
        assert!(c.column_filter.excludes("shop", "users", "email"));
        assert!(c.column_filter.excludes("shop", "items", "secret_price"));
        // Whole-name match: neither a prefix, a suffix nor another table.
        assert!(!c.column_filter.excludes("shop", "users", "email_verified"));
        assert!(!c.column_filter.excludes("shop", "users", "id"));
        assert!(!c.column_filter.excludes("shop", "purchases", "email"));
        assert!(!c.column_filter.excludes("xshop", "users", "email"));
        // Case-insensitive, like Debezium's filter lists.
        assert!(c.column_filter.excludes("Shop", "USERS", "Email"));
        // An unescaped dot still matches the separator, as in Debezium.
        let f = column_filter("shop.users.name").unwrap();
        assert!(f.excludes("shop", "users", "name"));
        assert_eq!(f, column_filter(" shop.users.name ").unwrap());
        assert_ne!(f, ColumnFilter::default());

        let mut p = base();
        p.0.insert("column.exclude.list".into(), "shop.users.(".into());
        let err = ConnectorConfig::from_properties(&p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("column.exclude.list"), "{err}");
    }

    #[test]
    fn initial_statements_split_as_debezium_splits_them() {
        assert_eq!(
            initial_statements("SET a = 1; SET b = 'x;;y' ;; ;SELECT 1;"),
            ["SET a = 1", "SET b = 'x;y' ;", "SELECT 1"]
        );
        assert!(initial_statements(" ; ").is_empty());
        let mut p = base();
        p.0.insert(
            "database.initial.statements".into(),
            "SET SESSION wait_timeout = 600;SET @x = 1".into(),
        );
        let c = ConnectorConfig::from_properties(&p).unwrap();
        let opts = c.database.opts();
        assert_eq!(
            opts.init(),
            ["SET SESSION wait_timeout = 600", "SET @x = 1"]
        );
        assert!(binlog_opts(&opts).init().is_empty());
        assert_eq!(binlog_opts(&opts).tcp_port(), opts.tcp_port());
    }

    #[test]
    fn column_include_list_keeps_only_the_columns_it_names() {
        let mut p = base();
        p.0.insert(
            "column.include.list".into(),
            "shop\\.users\\.(id|email), shop\\.items\\..*".into(),
        );
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(!c.column_filter.is_empty());
        assert!(!c.column_filter.excludes("shop", "users", "id"));
        assert!(!c.column_filter.excludes("Shop", "Users", "EMAIL"));
        assert!(!c.column_filter.excludes("shop", "items", "price"));
        assert!(c.column_filter.excludes("shop", "users", "is_vip"));
        assert!(c.column_filter.excludes("shop", "purchases", "id"));
        assert_ne!(
            c.column_filter,
            column_filter("shop\\.users\\.(id|email)").unwrap()
        );

        p.0.insert("column.exclude.list".into(), "shop.users.email".into());
        let err = ConnectorConfig::from_properties(&p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot both be set"), "{err}");
    }

    #[test]
    fn connector_json_is_read_and_unknown_keys_reported() {
        let text = r#"{"name": "inventory", "config": {
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            "database.hostname": "mysql", "database.port": 3306,
            "database.user": "debezium", "database.password": "dbz",
            "database.server.id": "184054", "topic.prefix": "mysql",
            "value.converter.schema.registry.url": "http://registry:8081",
            "frobnicate": "yes"}}"#;
        let (props, unknown) = parse_connector_json(text).unwrap();
        assert_eq!(unknown, vec!["frobnicate".to_owned()]);
        assert_eq!(props.0["name"], "inventory");
        assert_eq!(props.0["database.port"], "3306");
        let c = ConnectorConfig::from_properties(&props).unwrap();
        assert_eq!(c.name, "inventory");
        assert_eq!(c.database.hostname, "mysql");
    }

    #[test]
    fn extract_new_record_state_and_regex_router_run_and_other_transforms_are_refused() {
        // From a connector file: the named transform's settings are known
        // keys; another transform's are unused, as in Connect.
        let (props, unknown) = parse_connector_json(
            r#"{"transforms": "unwrap", "transforms.unwrap.type":
                "io.debezium.transforms.ExtractNewRecordState",
                "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
                "transforms.unwrap.add.fields": "op,source.ts_ms",
                "transforms.unwrap.add.headers": "db",
                "transforms.unwrap.add.headers.prefix": "h_",
                "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter"}"#,
        )
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert!(!props.0.contains_key("transforms.route.type"));
        let mut p = base();
        p.0.extend(props.0);
        let smt = ConnectorConfig::from_properties(&p)
            .unwrap()
            .unwrap
            .unwrap();
        assert_eq!(
            smt.delete_tombstone_handling,
            DeleteTombstoneHandling::Rewrite
        );
        let names: Vec<_> = smt.add_fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["__op", "__source_ts_ms"]);
        assert_eq!(smt.add_headers[0].name, "h_db");

        // From the environment: TRANSFORMS_<NAME>_<SETTING> for listed names.
        let env = TRANSFORM_KEYS.from_env(
            &converter_names("unwrap"),
            [
                ("TRANSFORMS_UNWRAP_TYPE", "t"),
                ("TRANSFORMS_UNWRAP_ADD_FIELDS", "op"),
                ("TRANSFORMS_OTHER_TYPE", "u"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(
            env,
            vec![
                ("transforms.unwrap.type".to_owned(), "t".to_owned()),
                ("transforms.unwrap.add.fields".to_owned(), "op".to_owned())
            ]
        );

        let with = |pairs: &[(&str, &str)]| {
            let mut p = base();
            p.0.insert("transforms".into(), "unwrap".into());
            p.0.insert(
                "transforms.unwrap.type".into(),
                ExtractNewRecordState::TYPE.into(),
            );
            for (k, v) in pairs {
                p.0.insert((*k).into(), (*v).into());
            }
            ConnectorConfig::from_properties(&p).map_err(|e| e.to_string())
        };
        let default = with(&[]).unwrap().unwrap.unwrap();
        assert_eq!(default, ExtractNewRecordState::default());
        // A chain: the flat rows, and topics renamed by two routers in order.
        let chain = with(&[
            ("transforms", "unwrap, route,suffix"),
            ("transforms.route.type", RegexRouter::TYPE),
            ("transforms.route.regex", "mysql\\.(.*)"),
            ("transforms.route.replacement", "$1"),
            ("transforms.suffix.type", RegexRouter::TYPE),
            ("transforms.suffix.regex", "(.*)"),
            ("transforms.suffix.replacement", "$1.v2"),
        ])
        .unwrap();
        assert!(chain.unwrap.is_some());
        assert_eq!(
            crate::routing::route_all(&chain.routes, "mysql.shop.users"),
            "shop.users.v2"
        );
        for (pairs, names) in [
            (
                &[(
                    "transforms.unwrap.type",
                    "org.apache.kafka.connect.transforms.ReplaceField$Value",
                )][..],
                "transforms.unwrap.type",
            ),
            (
                &[
                    ("transforms", "unwrap,again"),
                    ("transforms.again.type", ExtractNewRecordState::TYPE),
                ][..],
                "listed twice",
            ),
            (&[("transforms", "other")][..], "transforms.other.type"),
            (
                &[("transforms.unwrap.predicate", "isUsers")][..],
                "without predicates",
            ),
            (
                &[
                    ("transforms", "route"),
                    ("transforms.route.type", RegexRouter::TYPE),
                    ("transforms.route.regex", "(.*)"),
                ][..],
                "transforms.route.replacement is required",
            ),
            (
                &[
                    ("transforms", "route"),
                    ("transforms.route.type", RegexRouter::TYPE),
                    ("transforms.route.regex", "(?!x).*"),
                    ("transforms.route.replacement", "y"),
                ][..],
                "invalid transforms.route.regex=",
            ),
            (
                &[
                    ("transforms", "route"),
                    ("transforms.route.type", RegexRouter::TYPE),
                    ("transforms.route.regex", "(.*)"),
                    ("transforms.route.replacement", "$2"),
                ][..],
                "invalid transforms.route.replacement=\"$2\"",
            ),
            (
                &[("transforms.unwrap.delete.tombstone.handling.mode", "none")][..],
                "rewrite-with-tombstone",
            ),
            (
                &[("transforms.unwrap.route.by.field", "category")][..],
                "route.by.field",
            ),
            (
                &[("transforms.unwrap.add.fields", "op,nope")][..],
                "\"nope\"",
            ),
            (
                &[("transforms.unwrap.add.headers", "after")][..],
                "transforms.unwrap.add.headers",
            ),
            (
                &[("transforms.unwrap.replace.null.with.default", "yes")][..],
                "true or false",
            ),
        ] {
            let err = with(pairs).unwrap_err();
            assert!(err.contains(names), "{pairs:?}: {err}");
        }
        // No transforms: envelopes.
        assert_eq!(
            ConnectorConfig::from_properties(&base()).unwrap().unwrap,
            None
        );
    }

    #[test]
    fn converters_other_than_confluent_avro_are_refused() {
        let file = |converter: &str| {
            format!(
                r#"{{"config": {{"database.hostname": "db", "topic.prefix": "p",
                "key.converter": "io.confluent.connect.avro.AvroConverter",
                "value.converter": "{converter}",
                "value.converter.schemas.enable": "false"}}}}"#
            )
        };
        assert!(parse_connector_json(&file(AVRO_CONVERTER)).is_ok());
        let err =
            parse_connector_json(&file("org.apache.kafka.connect.json.JsonConverter")).unwrap_err();
        assert!(
            err.starts_with(
                "value.converter=\"org.apache.kafka.connect.json.JsonConverter\": cdc writes Avro"
            ),
            "{err}"
        );
    }

    #[test]
    fn snapshot_select_overrides_from_a_file_or_the_environment() {
        let text = r#"{"config": {"database.hostname": "db", "topic.prefix": "p",
            "database.user": "u",
            "snapshot.select.statement.overrides": "shop.purchases, shop.users",
            "snapshot.select.statement.overrides.shop.purchases": "SELECT * FROM shop.purchases WHERE status = 1",
            "snapshot.select.statement.overrides.shop.users": " SELECT * FROM shop.users WHERE is_vip "}}"#;
        let (props, unknown) = parse_connector_json(text).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let c = ConnectorConfig::from_properties(&props).unwrap();
        let got: Vec<_> = c.snapshot_select_overrides.iter().collect();
        assert_eq!(
            got,
            vec![
                (
                    &("shop".to_owned(), "purchases".to_owned()),
                    &"SELECT * FROM shop.purchases WHERE status = 1".to_owned()
                ),
                (
                    &("shop".to_owned(), "users".to_owned()),
                    &"SELECT * FROM shop.users WHERE is_vip".to_owned()
                ),
            ]
        );
        let env = select_overrides_from_env(
            "shop.purchases",
            [
                (
                    "SNAPSHOT_SELECT_STATEMENT_OVERRIDES_SHOP_PURCHASES".to_owned(),
                    "SELECT 1".to_owned(),
                ),
                (
                    "SNAPSHOT_SELECT_STATEMENT_OVERRIDES_SHOP_USERS".to_owned(),
                    "not listed".to_owned(),
                ),
            ]
            .into_iter(),
        );
        assert_eq!(
            env,
            vec![(
                "snapshot.select.statement.overrides.shop.purchases".to_owned(),
                "SELECT 1".to_owned()
            )]
        );
        let mut p = base();
        p.0.insert(
            "snapshot.select.statement.overrides".into(),
            "shop.items".into(),
        );
        let err = ConnectorConfig::from_properties(&p)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid snapshot.select.statement.overrides.shop.items=\"\""),
            "{err}"
        );
        assert!(
            err.contains("env SNAPSHOT_SELECT_STATEMENT_OVERRIDES_SHOP_ITEMS"),
            "{err}"
        );
    }

    #[test]
    fn name_adjustment_is_avro_and_avro_unicode_is_refused() {
        for key in ["schema.name.adjustment.mode", "field.name.adjustment.mode"] {
            for ok in ["none", "avro"] {
                let mut p = base();
                p.0.insert(key.into(), ok.into());
                assert!(ConnectorConfig::from_properties(&p).is_ok(), "{key}={ok}");
            }
            let mut p = base();
            p.0.insert(key.into(), "avro_unicode".into());
            let err = ConnectorConfig::from_properties(&p)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("invalid {key}=\"avro_unicode\": not supported")),
                "{err}"
            );
        }
    }

    #[test]
    fn snapshot_locking_modes() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert_eq!(c.snapshot_locking, SnapshotLocking::Minimal);
        assert_eq!(c.snapshot_lock_timeout, Duration::from_secs(10));
        for (mode, want) in [
            ("extended", SnapshotLocking::Extended),
            ("none", SnapshotLocking::None),
        ] {
            let mut p = base();
            p.0.insert("snapshot.locking.mode".into(), mode.into());
            p.0.insert("snapshot.lock.timeout.ms".into(), "1500".into());
            let c = ConnectorConfig::from_properties(&p).unwrap();
            assert_eq!(
                (c.snapshot_locking, c.snapshot_lock_timeout),
                (want, Duration::from_millis(1500))
            );
        }
        for (mode, says) in [
            ("minimal_percona", "LOCK TABLES FOR BACKUP"),
            ("custom", "custom locking"),
            ("shared", "expected minimal, extended or none"),
        ] {
            let mut p = base();
            p.0.insert("snapshot.locking.mode".into(), mode.into());
            let err = ConnectorConfig::from_properties(&p)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("invalid snapshot.locking.mode=\"{mode}\"")),
                "{err}"
            );
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn event_processing_failure_modes() {
        let c = ConnectorConfig::from_properties(&base()).unwrap();
        assert_eq!(c.event_failure, EventFailureMode::Fail);
        for (mode, want) in [
            ("warn", EventFailureMode::Warn),
            ("skip", EventFailureMode::Skip),
            ("ignore", EventFailureMode::Skip),
        ] {
            let mut p = base();
            p.0.insert("event.processing.failure.handling.mode".into(), mode.into());
            let c = ConnectorConfig::from_properties(&p).unwrap();
            assert_eq!(c.event_failure, want);
        }
        let mut p = base();
        p.0.insert(
            "event.processing.failure.handling.mode".into(),
            "retry".into(),
        );
        let err = ConnectorConfig::from_properties(&p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected fail, warn or skip"), "{err}");
    }

    /// The config and warnings of `cdc <args>`, with the registry URL from its default.
    fn from_args(args: &[&str]) -> (Config, Vec<String>) {
        let m = augment_command(Command::new("cdc"))
            .try_get_matches_from(std::iter::once("cdc").chain(args.iter().copied()))
            .unwrap();
        Config::from_matches(
            &m,
            pipeline::kafka::KafkaArgs::plaintext("k:1"),
            pipeline::registry::RegistryArgs::new("http://default"),
            true,
        )
        .unwrap()
    }

    #[test]
    fn a_debezium_file_with_tls_stores_loads_and_warns_when_nothing_verifies() {
        let m = crate::tls::tests::Material::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let file = |mode: &str| {
            serde_json::json!({"config": {
                "database.hostname": "db", "database.user": "u", "topic.prefix": "p",
                "database.ssl.mode": mode,
                "database.ssl.truststore": m.path("trust.p12"),
                "database.ssl.truststore.password": "changeit",
                "database.ssl.keystore": m.path("client.p12"),
                "database.ssl.keystore.password": "secret",
            }})
            .to_string()
        };
        for (mode, warned) in [("required", true), ("verify_ca", false)] {
            std::fs::write(&path, file(mode)).unwrap();
            let (c, warnings) = from_args(&["--config-file", path.to_str().unwrap()]);
            assert_eq!(
                c.connector
                    .database
                    .tls
                    .truststore
                    .as_ref()
                    .unwrap()
                    .certificates(),
                1
            );
            assert!(c.connector.database.tls.keystore.is_some());
            assert_eq!(!warnings.is_empty(), warned, "{mode}: {warnings:?}");
            if warned {
                assert!(
                    warnings[0].contains("use verify_ca or verify_identity"),
                    "{warnings:?}"
                );
            }
            let shown = c.connector.describe();
            assert!(
                !shown.contains("changeit") && !shown.contains("secret"),
                "{shown}"
            );
        }
    }

    #[test]
    fn cli_beats_env_file_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(
            &path,
            r#"{"config": {"database.hostname": "from-file", "database.user": "u",
                "topic.prefix": "p", "database.port": "3307",
                "value.converter.schema.registry.url": "http://reg:1"}}"#,
        )
        .unwrap();
        let (c, warnings) = from_args(&[
            "--config-file",
            path.to_str().unwrap(),
            "--database.hostname",
            "from-cli",
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.connector.database.hostname, "from-cli");
        assert_eq!(c.connector.database.port, 3307);
        assert_eq!(c.registry.url.expose(), "http://reg:1");
    }

    #[test]
    fn env_names_follow_the_rule() {
        assert_eq!(env_name("database.server.id"), "DATABASE_SERVER_ID");
        assert_eq!(env_name("name"), "CONNECTOR_NAME");
    }

    #[test]
    fn gtid_source_filter() {
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let b = "83574839-ec64-11f1-9ef5-02fc00000001";
        assert!(GtidSourceFilter::default().includes(a));
        let only_a = GtidSourceFilter::new(Some("3E11FA47-.*"), None).unwrap();
        assert!(only_a.includes(a) && !only_a.includes(b));
        let not_a = GtidSourceFilter::new(None, Some(a)).unwrap();
        assert!(!not_a.includes(a) && not_a.includes(b));
        assert!(GtidSourceFilter::new(Some(a), Some(b)).is_err());
    }

    #[test]
    fn exactly_once_needs_kafka_offsets() {
        let with = |pairs: &[(&str, &str)]| {
            let mut p = base();
            for (k, v) in pairs {
                p.0.insert((*k).to_owned(), (*v).to_owned());
            }
            ConnectorConfig::from_properties(&p)
        };
        assert_eq!(with(&[]).unwrap().exactly_once, None);
        let c = with(&[("exactly.once.support", "required"), ("name", "shop")]).unwrap();
        assert_eq!(
            c.exactly_once,
            Some(ExactlyOnce {
                transactional_id: "cdc-shop-0".into(),
                boundary: TransactionBoundary::Poll,
            })
        );
        assert_eq!(c.properties.get("transactional.id"), Some("cdc-shop-0"));
        let c = with(&[
            ("exactly.once.support", "requested"),
            ("transaction.boundary", "interval"),
            ("transactional.id", "mine"),
        ])
        .unwrap();
        assert_eq!(
            c.exactly_once,
            Some(ExactlyOnce {
                transactional_id: "mine".into(),
                // offset.flush.interval.ms's default.
                boundary: TransactionBoundary::Interval(Duration::from_secs(1)),
            })
        );
        let c = with(&[
            ("exactly.once.support", "required"),
            ("transaction.boundary", "interval"),
            ("transaction.boundary.interval.ms", "250"),
        ])
        .unwrap();
        assert_eq!(
            c.exactly_once.map(|e| e.boundary),
            Some(TransactionBoundary::Interval(Duration::from_millis(250)))
        );
        // File offsets cannot join a Kafka transaction: one line naming the
        // setting and the fix.
        let file = [
            ("offset.storage", "file"),
            ("offset.storage.file.filename", "/tmp/o.json"),
        ];
        let err = with(&[file[0], file[1], ("exactly.once.support", "required")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exactly.once.support") && err.contains("offset.storage=kafka"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        // `requested` runs at-least-once instead.
        let c = with(&[file[0], file[1], ("exactly.once.support", "requested")]).unwrap();
        assert_eq!(c.exactly_once, None);
        for (key, value) in [
            ("exactly.once.support", "always"),
            ("transaction.boundary", "connector"),
            ("transaction.boundary.interval.ms", "0"),
        ] {
            let mut pairs = vec![
                ("exactly.once.support", "required"),
                ("transaction.boundary", "interval"),
            ];
            pairs.retain(|(k, _)| *k != key);
            pairs.push((key, value));
            let err = with(&pairs).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn column_mapper_keys_parse_and_rank_as_debezium_registers_them() {
        assert_eq!(
            column_mapper_key("column.truncate.to.20.chars"),
            Some(MapperKey::Truncate(20))
        );
        assert_eq!(
            column_mapper_key("column.mask.with.6.chars"),
            Some(MapperKey::Mask(6))
        );
        assert_eq!(
            column_mapper_key("column.mask.hash.v2.SHA-256.with.salt.Pepper.x"),
            Some(MapperKey::Hash {
                algorithm: "SHA-256".into(),
                salt: "Pepper.x".into(),
                version: HashVersion::V2,
            })
        );
        for not_a_mapper in [
            "column.truncate.to.x.chars",
            "column.mask.with.-1.chars",
            "column.mask.hash.SHA-256.with.salt.",
            "column.mask.hash.with.salt.s",
            "column.exclude.list",
        ] {
            assert_eq!(column_mapper_key(not_a_mapper), None, "{not_a_mapper}");
        }

        // A column named by several rules gets the first kind Debezium
        // registers (truncate, mask, hash, hash v2), whatever the key order.
        let mut p = base();
        for (k, v) in [
            (
                "column.mask.hash.v2.SHA-256.with.salt.s",
                "shop.users.(email|name)",
            ),
            ("column.mask.hash.MD5.with.salt.s", "shop.users.name"),
            ("column.mask.with.3.chars", "shop.users.(email|notes)"),
            ("column.truncate.to.2.chars", "shop.users.notes"),
        ] {
            p.0.insert(k.into(), v.into());
        }
        let c = ConnectorConfig::from_properties(&p).unwrap();
        let m = |col: &str| {
            c.column_mappers
                .mapping_for("shop", "users", col, "VARCHAR")
                .cloned()
        };
        assert_eq!(m("notes"), Some(ColumnMapping::Truncate(2)));
        assert_eq!(m("EMAIL"), Some(ColumnMapping::Mask(3)));
        assert_eq!(
            m("name"),
            Some(ColumnMapping::Hash {
                algorithm: HashAlgorithm::Md5,
                salt: "s".into(),
                version: HashVersion::V1,
            })
        );
        assert_eq!(m("id"), None);
        assert_eq!(
            c.column_mappers
                .mapping_for("shop", "items", "name", "VARCHAR"),
            None
        );
    }

    #[test]
    fn source_types_propagate_by_column_or_by_type_after_truncate_and_mask() {
        let mut p = base();
        for (k, v) in [
            ("column.propagate.source.type", "shop.items.(price|name)"),
            (
                "datatype.propagate.source.type",
                ".*\\.decimal, shop\\.items\\.INT UNSIGNED",
            ),
            (
                "column.mask.hash.SHA-256.with.salt.s",
                "shop.items.(name|sku)",
            ),
            ("column.truncate.to.3.chars", "shop.items.price"),
        ] {
            p.0.insert(k.into(), v.into());
        }
        let c = ConnectorConfig::from_properties(&p).unwrap();
        let m = |col: &str, ty: &str| {
            c.column_mappers
                .mapping_for("shop", "items", col, ty)
                .cloned()
        };
        // Truncate comes first, then propagation, before any hash.
        assert_eq!(m("price", "DECIMAL"), Some(ColumnMapping::Truncate(3)));
        assert_eq!(
            m("name", "VARCHAR"),
            Some(ColumnMapping::PropagateSourceType)
        );
        assert_eq!(
            m("cost", "DECIMAL"),
            Some(ColumnMapping::PropagateSourceType)
        );
        assert_eq!(
            m("qty", "int unsigned"),
            Some(ColumnMapping::PropagateSourceType)
        );
        assert_eq!(m("qty", "INT"), None);
        assert_eq!(
            c.column_mappers
                .mapping_for("shop", "users", "qty", "INT UNSIGNED"),
            None
        );
        assert!(matches!(
            m("sku", "VARCHAR"),
            Some(ColumnMapping::Hash { .. })
        ));

        // Empty means unset, as for the other list properties.
        let mut p = base();
        p.0.insert("column.propagate.source.type".into(), String::new());
        let c = ConnectorConfig::from_properties(&p).unwrap();
        assert!(c.column_mappers.is_empty());
    }

    #[test]
    fn bad_column_mappers_name_the_setting_and_hide_the_salt() {
        let with = |k: &str, v: &str| {
            let mut p = base();
            p.0.insert(k.into(), v.into());
            ConnectorConfig::from_properties(&p).map_err(|e| e.to_string())
        };
        let err = with(
            "column.mask.hash.SHA-999.with.salt.secret",
            "shop.users.email",
        )
        .unwrap_err();
        assert!(err.contains("unknown hash algorithm SHA-999"), "{err}");
        assert!(err.contains("SHA-256") && err.contains("SHA3-512"), "{err}");
        assert!(!err.contains("secret"), "the salt leaked: {err}");
        let err = with("column.mask.with.0.chars", "shop.users.email").unwrap_err();
        assert!(
            err.contains("column.mask.with.0.chars") && err.contains("positive"),
            "{err}"
        );
        let err = with("column.truncate.to.5.chars", "shop.users.(email").unwrap_err();
        assert!(err.contains("column.truncate.to.5.chars"), "{err}");
        // Java's names are case-insensitive and SHA is SHA-1.
        assert!(with("column.mask.hash.sha.with.salt.s", "shop.users.email").is_ok());

        let mut p = base();
        p.0.insert(
            "column.mask.hash.SHA-256.with.salt.Pepper".into(),
            "shop.users.email".into(),
        );
        let shown = ConnectorConfig::from_properties(&p).unwrap().describe();
        assert!(
            shown.contains("column.mask.hash.SHA-256.with.salt.*** = shop.users.email"),
            "{shown}"
        );
        assert!(!shown.contains("Pepper"), "{shown}");
    }

    #[test]
    fn column_mappers_come_from_files_and_environment_names() {
        let (props, unknown) = parse_connector_json(
            r#"{"column.mask.hash.SHA-256.with.salt.s": "shop.users.email",
                "column.truncate.to.10.chars": "shop.items.name"}"#,
        )
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(props.0.len(), 2);
        let env = column_mappers_from_env(
            [
                ("COLUMN_MASK_WITH_6_CHARS", "shop.users.email"),
                ("COLUMN_TRUNCATE_TO_20_CHARS", "shop.items.name"),
                ("COLUMN_MASK_WITH_X_CHARS", "ignored"),
                ("COLUMN_TRUNCATE_TO__CHARS", "ignored"),
                ("DATABASE_HOSTNAME", "ignored"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(
            env,
            vec![
                (
                    "column.mask.with.6.chars".to_owned(),
                    "shop.users.email".to_owned()
                ),
                (
                    "column.truncate.to.20.chars".to_owned(),
                    "shop.items.name".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn message_key_columns_follow_debezium_syntax() {
        let keys = message_key_columns("shop.purchases:user_id,item_id; .*\\.audit:id").unwrap();
        let cols = ["id", "item_id", "user_id", "quantity"];
        // Pattern order, not table order: user_id, then item_id.
        assert_eq!(keys.key_for("shop", "purchases", &cols), Some(vec![2, 1]));
        assert_eq!(keys.key_for("other", "audit", &["x", "ID"]), Some(vec![1]));
        // A table no rule names keeps its primary key.
        assert_eq!(keys.key_for("shop", "users", &["id", "email"]), None);
        for bad in [
            "shop.purchases",
            "shop.purchases:",
            ":id",
            "a:b:c",
            "shop.t: id",
            "shop.(:id",
        ] {
            let err = message_key_columns(bad).unwrap_err().to_string();
            assert!(err.contains("message.key.columns"), "{bad}: {err}");
        }
    }
}
