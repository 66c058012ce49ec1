//! Helpers for tests against the local stack: a fresh copy of the demo schema,
//! a connector config for it, running the connector in-process, and reading
//! topics back (to partition EOF) with Avro decoding through the registry.
//!
//! Every helper takes the [`Stack`] of one source server (MariaDB or MySQL,
//! `pipeline::testing::stack_for`), so one test body serves both flavours:
//! [`per_flavour!`](crate::per_flavour) turns `async fn name(flavour: Flavour)`
//! bodies into `mariadb::name` and `mysql::name` tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use apache_avro::types::Value;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use pipeline::testing::Stack;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers as _;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// For each `async fn name(flavour: Flavour)` named, a test `mariadb::name`
/// and a test `mysql::name` (multi-threaded runtime), so test names say the
/// server and `cargo test mysql::` runs one flavour.
#[macro_export]
macro_rules! per_flavour {
    ($($name:ident),* $(,)?) => {
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(pipeline::testing::Flavour::MariaDb).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(pipeline::testing::Flavour::MySql).await
                }
            )*
        }
    };
}

/// A fresh account name: `<prefix>_` and random hex, 32 characters at most
/// (MySQL's limit for user names; MariaDB allows 80).
pub fn account_name(prefix: &str) -> String {
    let mut name = pipeline::testing::unique_name(prefix);
    name.truncate(32);
    name
}

/// The password of the accounts [`connector_account`] creates.
pub const ACCOUNT_PASSWORD: &str = "pw";

/// A fresh account (see [`account_name`]) with the connector's privileges
/// (Debezium's documented grants), password [`ACCOUNT_PASSWORD`]: a test
/// that kills its connections, or grants it more, disturbs no other test.
pub async fn connector_account(conn: &mut mysql_async::Conn, prefix: &str) -> String {
    let user = account_name(prefix);
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{ACCOUNT_PASSWORD}'"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "GRANT SELECT, RELOAD, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, \
         REPLICATION CLIENT ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    user
}

/// `config` connecting as `user` (password [`ACCOUNT_PASSWORD`]).
pub fn as_account(config: &cdc::config::Config, user: &str) -> cdc::config::Config {
    with(
        config,
        &[
            ("database.user", user),
            ("database.password", ACCOUNT_PASSWORD),
        ],
    )
}

/// The server's current binlog file and position. MySQL removed `SHOW MASTER
/// STATUS` in 8.4 (`SHOW BINARY LOG STATUS` since 8.2); MariaDB keeps it.
pub async fn binlog_status(conn: &mut mysql_async::Conn, stack: &Stack) -> (String, u64) {
    let statement = match stack.flavour {
        pipeline::testing::Flavour::MariaDb => "SHOW MASTER STATUS",
        pipeline::testing::Flavour::MySql => "SHOW BINARY LOG STATUS",
    };
    let row: mysql_async::Row = conn
        .query_first(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
        .expect("binary logging is on");
    (row.get(0).unwrap(), row.get(1).unwrap())
}

const SHOP_TABLES: &str = include_str!("../../../migrations/mysql/V2__shop_tables.sql");

/// The demo's three tables in a fresh database; returns its name.
pub async fn demo_database(stack: &Stack) -> String {
    let db = stack.fresh_mysql_database().await;
    let mut conn = admin(stack, Some(&db)).await;
    let ddl: String = SHOP_TABLES
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("shop.", &format!("`{db}`."));
    for statement in ddl.split(';').filter(|s| !s.trim().is_empty()) {
        conn.query_drop(statement).await.unwrap();
    }
    db
}

pub async fn admin(stack: &Stack, db: Option<&str>) -> mysql_async::Conn {
    mysql_async::Conn::from_url(stack.mysql_url(db))
        .await
        .unwrap()
}

/// A connector config capturing only `db`, with a unique prefix and server id.
pub fn config(stack: &Stack, db: &str) -> cdc::config::Config {
    let prefix = pipeline::testing::unique_name("cdc");
    let mut connector = cdc::config::ConnectorConfig::for_database(
        &stack.mysql_host,
        stack.mysql_port,
        &stack.cdc_user,
        &stack.cdc_password,
        &prefix,
    );
    let mut props = connector.properties.clone();
    props
        .0
        .insert("database.include.list".into(), db.to_owned());
    let server_id = 1_000_000 + (uuid_like() % 1_000_000_000) as u32;
    props
        .0
        .insert("database.server.id".into(), server_id.to_string());
    props
        .0
        .insert("offset.flush.interval.ms".into(), "100".into());
    props
        .0
        .insert("binlog.heartbeat.interval.ms".into(), "2000".into());
    connector = cdc::config::ConnectorConfig::from_properties(&props).unwrap();
    cdc::config::Config {
        connector,
        kafka: stack.kafka(),
        registry: stack.registry(),
    }
}

fn uuid_like() -> u64 {
    let name = pipeline::testing::unique_name("x");
    u64::from_str_radix(&name[2..18], 16).unwrap()
}

/// A connector running in this process.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<cdc::RunSummary, cdc::CdcError>>,
}

pub fn start(config: cdc::config::Config) -> Running {
    // Connector logs on stderr when asked for (libtest does not capture them).
    if std::env::var_os("CDC_TEST_LOG").is_some() {
        pipeline::telemetry::init_tracing(&pipeline::telemetry::TelemetryArgs {
            metrics_addr: String::new(),
            log_format: "text".into(),
        });
    }
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(cdc::run(
        config,
        shutdown.clone(),
        pipeline::telemetry::Health::default(),
    ));
    Running { shutdown, task }
}

impl Running {
    pub async fn stop(self) -> cdc::RunSummary {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("connector did not stop within 60 s")
            .expect("connector task panicked")
            .unwrap_or_else(|e| panic!("connector failed: {e}"))
    }
}

/// One Kafka record, decoded.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Value>,
    /// `None` for a tombstone.
    pub value: Option<Value>,
    pub value_schema_id: Option<u32>,
    /// Kafka headers in order, values as UTF-8 text.
    pub headers: Vec<(String, Option<String>)>,
    /// The Kafka record's timestamp (ms since the epoch), if it has one.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    pub fn field(&self, name: &str) -> Option<&Value> {
        field(self.value.as_ref()?, name)
    }

    pub fn op(&self) -> Option<String> {
        match self.field("op")? {
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A column of the `after` (or, when absent, `before`) image.
    pub fn column(&self, image: &str, name: &str) -> Option<Value> {
        let img = unwrap_union(self.field(image)?);
        field(img, name).map(|v| unwrap_union(v).clone())
    }

    pub fn key_id(&self) -> Option<i64> {
        match field(self.key.as_ref()?, "id")? {
            Value::Long(n) => Some(*n),
            _ => None,
        }
    }

    pub fn snapshot_marker(&self) -> Option<String> {
        let source = self.field("source")?;
        match unwrap_union(field(source, "snapshot")?) {
            Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
            _ => None,
        }
    }
}

pub fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

pub fn field<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    match unwrap_union(record) {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

/// Schema texts by id, fetched once.
#[derive(Default)]
pub struct Schemas {
    cache: HashMap<u32, apache_avro::Schema>,
}

impl Schemas {
    async fn get(&mut self, stack: &Stack, id: u32) -> &apache_avro::Schema {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.cache.entry(id) {
            let client = pipeline::registry::RegistryClient::new(&stack.registry())
                .unwrap_or_else(|e| panic!("{e}"));
            let text = client
                .schema(id)
                .await
                .unwrap_or_else(|e| panic!("schema {id}: {e}"));
            let schema = apache_avro::Schema::parse_str(&text)
                .unwrap_or_else(|e| panic!("registered schema {id} does not parse: {e}"));
            slot.insert(schema);
        }
        &self.cache[&id]
    }

    pub async fn decode(&mut self, stack: &Stack, framed: &[u8]) -> (u32, Value) {
        assert_eq!(framed[0], 0, "magic byte");
        let id = u32::from_be_bytes(framed[1..5].try_into().unwrap());
        let schema = self.get(stack, id).await;
        let mut reader = &framed[5..];
        #[allow(deprecated)]
        let value = apache_avro::from_avro_datum(schema, &mut reader, None)
            .unwrap_or_else(|e| panic!("datum does not decode with schema {id}: {e}"));
        assert!(reader.is_empty(), "trailing bytes after the datum");
        (id, value)
    }
}

/// Every record of partition 0 of `topic` (all test topics have one partition),
/// read up to the partition's end.
pub async fn read_topic(stack: &Stack, topic: &str, schemas: &mut Schemas) -> Vec<Record> {
    read_topic_head(stack, topic, schemas, usize::MAX).await
}

/// The first `limit` records of partition 0 of `topic` (fewer at the
/// partition's end): for a topic written on a timer (heartbeats), whose end a
/// reader may never catch up with.
pub async fn read_topic_head(
    stack: &Stack,
    topic: &str,
    schemas: &mut Schemas,
    limit: usize,
) -> Vec<Record> {
    let consumer: StreamConsumer = stack
        .kafka()
        .client_config()
        .set("group.id", pipeline::testing::unique_name("g"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut raw = Vec::new();
    {
        let mut stream = consumer.stream();
        while raw.len() < limit {
            let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .unwrap_or_else(|_| panic!("no partition EOF on {topic} within 30 s"));
            match next {
                None | Some(Err(KafkaError::PartitionEOF(_))) => break,
                // The topic may not exist yet.
                Some(Err(_)) => break,
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    let text = h.value.map(|v| {
                                        String::from_utf8(v.to_vec()).expect("UTF-8 header")
                                    });
                                    (h.key.to_owned(), text)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    raw.push((
                        m.key().map(<[u8]>::to_vec),
                        m.payload().map(<[u8]>::to_vec),
                        headers,
                        m.timestamp().to_millis(),
                    ))
                }
            }
        }
    }
    let mut records = Vec::with_capacity(raw.len());
    for (key, value, headers, timestamp_ms) in raw {
        let key = match key {
            Some(k) => Some(schemas.decode(stack, &k).await.1),
            None => None,
        };
        let (value_schema_id, value) = match value {
            Some(v) => {
                let (id, value) = schemas.decode(stack, &v).await;
                (Some(id), Some(value))
            }
            None => (None, None),
        };
        records.push(Record {
            key,
            value,
            value_schema_id,
            headers,
            timestamp_ms,
        });
    }
    records
}

/// Reads `topic` until `done(records)` holds (polling, 60 s limit).
pub async fn wait_for_records(
    stack: &Stack,
    topic: &str,
    what: &str,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let mut schemas = Schemas::default();
    let mut last_len = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let records = read_topic(stack, topic, &mut schemas).await;
        if done(&records) {
            return records;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what} on {topic}; {} records: {:#?}",
                records.len(),
                records
                    .iter()
                    .map(|r| (r.key_id(), r.op()))
                    .collect::<Vec<_>>()
            );
        }
        if records.len() != last_len {
            last_len = records.len();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Folds a topic like a Debezium upsert consumer: key id -> last `after`.
pub fn replay(records: &[Record]) -> BTreeMap<i64, Record> {
    let mut state = BTreeMap::new();
    for r in records {
        let Some(id) = r.key_id() else { continue };
        match &r.value {
            None => {
                state.remove(&id);
            }
            Some(_) => match r.column("after", "id") {
                Some(_) => {
                    state.insert(id, r.clone());
                }
                None => {
                    state.remove(&id);
                }
            },
        }
    }
    state
}

pub fn string(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => panic!("not a string: {other:?}"),
    }
}

/// Number of records in partition 0 of `topic`, undecoded (read to partition EOF).
pub async fn count(stack: &Stack, topic: &str) -> usize {
    let consumer: StreamConsumer = stack
        .kafka()
        .client_config()
        .set("group.id", pipeline::testing::unique_name("g"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut n = 0;
    let mut stream = consumer.stream();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(_))) => n += 1,
            _ => return n,
        }
    }
}

/// The position a connector stored in the file offset store at `path`, if
/// it has stored one.
pub fn file_offset(path: &std::path::Path) -> Option<cdc::offsets::SourceOffset> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Waits until the connector stored a position (its snapshot or no_data start).
pub async fn wait_for_stored_offset(stack: &Stack, config: &cdc::config::Config) {
    let cdc::config::OffsetStorage::Kafka { topic } = &config.connector.offset_storage else {
        panic!("expected the Kafka offset store");
    };
    pipeline::testing::wait_until(Duration::from_secs(60), "a stored offset", || async {
        (count(stack, topic).await > 0).then_some(())
    })
    .await;
}

/// `config` with some connector properties set (Debezium names).
pub fn with(config: &cdc::config::Config, pairs: &[(&str, &str)]) -> cdc::config::Config {
    let mut props = config.connector.properties.clone();
    for (k, v) in pairs {
        props.0.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut config = config.clone();
    config.connector = cdc::config::ConnectorConfig::from_properties(&props).unwrap();
    config
}

/// `(id, email)` of every user: from the table, and from the users topic's
/// records replayed by key. A test asserts they are equal.
pub async fn users_in_table_and_topic(
    conn: &mut mysql_async::Conn,
    records: &[Record],
) -> (Vec<(u64, Option<String>)>, Vec<(u64, Option<String>)>) {
    let table: Vec<(u64, Option<String>)> = conn
        .query("SELECT id, email FROM users ORDER BY id")
        .await
        .unwrap();
    let replayed = replay(records)
        .iter()
        .map(|(id, r)| (*id as u64, string(r.column("after", "email"))))
        .collect();
    (table, replayed)
}

/// A private source server of either flavour (tests that restart servers or
/// change their settings), killed and deleted on drop.
pub enum PrivateServer {
    MariaDb {
        server: pipeline::testing::private_mariadb::PrivateMariaDb,
        /// Datadir, binlog and logs; deleted after the server is killed.
        _dir: tempfile::TempDir,
    },
    MySql(pipeline::testing::private_mysql::PrivateMySql),
}

impl PrivateServer {
    /// A server with the binlog settings a connector needs (ROW, FULL, FULL,
    /// UTC; GTIDs on MySQL) and its own `server_id`, or `None` (skipped, the
    /// reason printed) when the server programs are not installed.
    pub async fn start(flavour: pipeline::testing::Flavour, server_id: u32) -> Option<Self> {
        Self::start_with(flavour, |root| match flavour {
            pipeline::testing::Flavour::MariaDb => {
                pipeline::testing::private_mariadb::replication_args(root, server_id)
            }
            pipeline::testing::Flavour::MySql => {
                pipeline::testing::private_mysql::replication_args(server_id)
            }
        })
        .await
    }

    /// A server started with `args(dir)` (`dir`: a MariaDB server's own
    /// directory, for its `--log-bin` path; MySQL always logs into its own).
    pub async fn start_with(
        flavour: pipeline::testing::Flavour,
        args: impl FnOnce(&std::path::Path) -> Vec<String>,
    ) -> Option<Self> {
        use pipeline::testing::{private_mariadb, private_mysql};
        match flavour {
            pipeline::testing::Flavour::MariaDb => {
                let programs = private_mariadb::programs()?;
                let dir = tempfile::tempdir().unwrap();
                private_mariadb::install(&programs, dir.path());
                let server = private_mariadb::PrivateMariaDb::start(
                    &programs,
                    dir.path(),
                    &args(dir.path()),
                )
                .await;
                Some(Self::MariaDb { server, _dir: dir })
            }
            pipeline::testing::Flavour::MySql => {
                let root = private_mysql::chroot()?;
                let args = args(std::path::Path::new("/"));
                Some(Self::MySql(
                    private_mysql::PrivateMySql::start(&root, &args).await,
                ))
            }
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Self::MariaDb { server, .. } => server.port,
            Self::MySql(server) => server.port,
        }
    }

    /// `stack` (its Kafka and registry) with this server as the source, its
    /// root (no password) as both the admin and the connector account.
    pub fn stack(&self, stack: &Stack) -> Stack {
        Stack {
            mysql_host: "127.0.0.1".into(),
            mysql_port: self.port(),
            mysql_user: "root".into(),
            mysql_password: String::new(),
            cdc_user: "root".into(),
            cdc_password: String::new(),
            ..stack.clone()
        }
    }

    /// Root (no password) on the server.
    pub async fn admin(&self) -> mysql_async::Conn {
        match self {
            Self::MariaDb { server, .. } => server.admin().await,
            Self::MySql(server) => server.admin().await,
        }
    }

    /// A connection as `user` (plain TCP).
    pub async fn connect(&self, user: &str, password: &str) -> mysql_async::Conn {
        let opts = pipeline::testing::private_mysql::opts(self.port(), user, password);
        mysql_async::Conn::new(opts)
            .await
            .unwrap_or_else(|e| panic!("{user} cannot log in: {e}"))
    }

    /// Clean shutdown.
    pub async fn stop(&mut self) {
        match self {
            Self::MariaDb { server, .. } => server.stop().await,
            Self::MySql(server) => server.stop().await,
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a frozen server keeps its
    /// connections open and answers nothing, as a hung host does.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        match self {
            Self::MariaDb { server, .. } => server.signal(signal),
            Self::MySql(server) => server.signal(signal),
        }
    }

    /// SIGKILL: the next start recovers.
    pub fn kill(&mut self) {
        match self {
            Self::MariaDb { server, .. } => server.kill(),
            Self::MySql(server) => server.kill(),
        }
    }

    /// Starts the stopped server on the same port and datadir.
    pub async fn start_again(&mut self) {
        match self {
            Self::MariaDb { server, .. } => server.start_again().await,
            Self::MySql(server) => server.start_again().await,
        }
    }
}

/// A child process (the `cdc` binary) writing into a log file; killed on
/// drop, the log printed if the test is failing (the log is what explains a
/// failure).
pub struct LoggedChild {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl LoggedChild {
    /// Spawns `command` with stdin closed and stdout and stderr into `log`.
    pub fn spawn(mut command: std::process::Command, log: std::path::PathBuf) -> Self {
        use std::process::Stdio;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("spawn the cdc binary");
        Self { child, log }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        // SIGKILL: the abort a test wants, or cleanup.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("cdc log:\n{}", self.log_text());
        }
    }
}

/// The `cdc` binary at `bin` set up for `config` on the stack (as its
/// account), offsets in the file `offsets`, registry at `registry` (the
/// stack's unless a test gives its own); callers add their own flags,
/// environment and stdio.
pub fn cdc_command(
    bin: &str,
    stack: &Stack,
    config: &cdc::config::Config,
    offsets: &std::path::Path,
    registry: &str,
) -> std::process::Command {
    let c = &config.connector;
    let mut command = std::process::Command::new(bin);
    command
        .args(["--offset.storage", "file"])
        .args(["--offset.storage.file.filename", offsets.to_str().unwrap()])
        .args(["--database.hostname", &stack.mysql_host])
        .args(["--database.port", &stack.mysql_port.to_string()])
        .args(["--database.user", &c.database.user])
        .args(["--database.password", c.database.password.expose()])
        .args(["--database.server.id", &c.database.server_id.to_string()])
        .args(["--topic.prefix", &c.topic_prefix])
        .args([
            "--database.include.list",
            &c.properties.0["database.include.list"],
        ])
        .args(["--kafka-bootstrap-servers", &stack.kafka_bootstrap_servers])
        .args(["--schema-registry-url", registry]);
    command
}

/// Runs the connector until it stops by itself at start; its error, which
/// must be definite.
pub async fn refused_at_start(config: cdc::config::Config) -> cdc::CdcError {
    let err = tokio::time::timeout(Duration::from_secs(60), start(config).task)
        .await
        .expect("the connector stops at start")
        .unwrap()
        .expect_err("refused");
    assert!(!err.is_transient(), "{err}");
    err
}

/// What a verifying `database.ssl.mode` refuses on a server with the stack's
/// CA (`ca`) and a certificate naming 127.0.0.1: the name `localhost` under
/// `verify_identity`, and the system's CAs under `verify_ca`. Both are a
/// definite `CdcError::Tls` saying what to check. `config_for` gives the
/// connector's settings with the pairs added.
pub async fn wrong_name_and_unknown_ca_are_refused(
    config_for: impl Fn(&[(&str, &str)]) -> cdc::config::Config,
    ca: &str,
) {
    let err = refused_at_start(config_for(&[
        ("database.hostname", "localhost"),
        ("database.ssl.mode", "verify_identity"),
        ("database.ssl.truststore", ca),
    ]))
    .await;
    let text = err.to_string();
    assert!(matches!(err, cdc::CdcError::Tls(_)), "{text}");
    assert!(
        text.contains("database.ssl.mode=verify_identity")
            && text.contains("name database.hostname \"localhost\""),
        "{text}"
    );
    eprintln!("by a name the certificate lacks: {text}");
    let err = refused_at_start(config_for(&[("database.ssl.mode", "verify_ca")])).await;
    let text = err.to_string();
    assert!(matches!(err, cdc::CdcError::Tls(_)), "{text}");
    assert!(text.contains("database.ssl.truststore"), "{text}");
    eprintln!("with the system's CAs: {text}");
}

/// A fresh connector account that must show a client certificate
/// (`REQUIRE X509`; `REPLICATION CLIENT` is `BINLOG MONITOR` on MariaDB):
/// its name, and its settings under `verify_identity` with the key store's
/// certificate and without one.
pub async fn x509_account(
    conn: &mut mysql_async::Conn,
    tls: &pipeline::testing::StackTls,
    config_for: impl Fn(&[(&str, &str)]) -> cdc::config::Config,
) -> (String, cdc::config::Config, cdc::config::Config) {
    let user = account_name("x");
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw' REQUIRE X509;
         GRANT SELECT, RELOAD, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, \
         REPLICATION CLIENT ON *.* TO '{user}'@'%';"
    ))
    .await
    .unwrap();
    let ca = tls.ca.display().to_string();
    let keystore = tls.keystore.display().to_string();
    let account = [
        ("database.user", user.as_str()),
        ("database.password", "pw"),
        ("database.ssl.mode", "verify_identity"),
        ("database.ssl.truststore", ca.as_str()),
    ];
    let mut with_keystore = account.to_vec();
    with_keystore.extend([
        ("database.ssl.keystore", keystore.as_str()),
        (
            "database.ssl.keystore.password",
            tls.keystore_password.as_str(),
        ),
    ]);
    let with = config_for(&with_keystore);
    let without = config_for(&account);
    (user, with, without)
}

/// The server turns an X509 account away without a client certificate.
pub async fn denied_without_a_client_certificate(config: cdc::config::Config) {
    let err = tokio::time::timeout(Duration::from_secs(60), start(config).task)
        .await
        .expect("the connector stops at start")
        .unwrap()
        .expect_err("an X509 account without a client certificate");
    assert!(err.to_string().contains("Access denied"), "{err}");
}
