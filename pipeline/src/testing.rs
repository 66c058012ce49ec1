//! A handle on the local stack for tests (feature `test-support`).
//!
//! `make stack-up` writes `.stack/env` at the workspace root; [`stack`] reads the
//! process environment first and that file second. Tests get fresh, UUID-named
//! MySQL and Postgres databases and unique topic names so they run in parallel
//! without sharing state, and [`wait_until`] for timed waits instead of sleeps.
//!
//! When no stack is configured, [`stack`] prints why and returns `None`, so a
//! plain `cargo test` on a fresh clone passes with the live tests skipped. Under
//! `make test` or CI (`SHOP_STACK_REQUIRED=1` or `CI=true`) a missing stack is a
//! failure instead: a green run must mean the live tests ran.
//!
//! The stack has two Kafka brokers ([`Broker`]): tansu with memory storage
//! (the default, fast) and tansu with libsql storage (`KAFKA_PERSISTENT_*`:
//! kept across restarts, exact fetches from inside a record batch).
//! `SHOP_TEST_BROKER=persistent` points every [`stack`] at the second one, so
//! a whole suite can run there; [`Stack::analytics_seek_back_records`] is the
//! memory broker's workaround analytics needs, 0 on the persistent one.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub mod outage;
pub mod private_mariadb;
pub mod private_mysql;

use crate::kafka::KafkaArgs;
use crate::registry::RegistryArgs;

/// The shop tables' DDL (`shop.`-qualified), as the migrations apply it.
pub const SHOP_TABLES_DDL: &str = include_str!("../../migrations/mysql/V2__shop_tables.sql");

/// The two source servers of the local stack. MariaDB is the default (the
/// `MYSQL_*` variables); Oracle's MySQL (`ORACLE_MYSQL_*`) is what the compose
/// demo runs and what real Debezium's MySQL connector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    MariaDb,
    MySql,
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::MariaDb, Flavour::MySql];

    /// The prefix of this server's variables in `.stack/env`.
    fn env_prefix(self) -> &'static str {
        match self {
            Flavour::MariaDb => "",
            Flavour::MySql => "ORACLE_",
        }
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavour::MariaDb => "MariaDB",
            Flavour::MySql => "MySQL",
        })
    }
}

/// The stack's two Kafka brokers (both tansu 0.6.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// In-memory storage (`KAFKA_BOOTSTRAP_SERVERS`): fast; loses everything
    /// when it stops, and answers a fetch from inside a record batch with the
    /// next batch.
    Memory,
    /// libsql storage in a file (`KAFKA_PERSISTENT_BOOTSTRAP_SERVERS`): keeps
    /// topics, records and group offsets across a restart; fetches exactly.
    Persistent,
}

/// Records analytics re-reads before a stored offset on the memory broker
/// (`--seek-back-records`; see analytics' `consume::fetch_start`): our
/// producers' largest batch. `make demo` uses the same figure.
pub const MEMORY_BROKER_SEEK_BACK_RECORDS: u32 = 10_000;

impl Broker {
    /// The broker `SHOP_TEST_BROKER` selects (`memory`, the default, or
    /// `persistent`).
    ///
    /// # Panics
    /// On any other value.
    pub fn selected() -> Broker {
        match std::env::var("SHOP_TEST_BROKER").as_deref() {
            Err(_) | Ok("") | Ok("memory") => Broker::Memory,
            Ok("persistent") => Broker::Persistent,
            Ok(other) => panic!("SHOP_TEST_BROKER={other:?}: use memory or persistent"),
        }
    }

    /// The variable holding this broker's bootstrap servers.
    fn bootstrap_var(self) -> &'static str {
        match self {
            Broker::Memory => "KAFKA_BOOTSTRAP_SERVERS",
            Broker::Persistent => "KAFKA_PERSISTENT_BOOTSTRAP_SERVERS",
        }
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Broker::Memory => "tansu (memory)",
            Broker::Persistent => "tansu (libsql)",
        })
    }
}

/// URLs and credentials of the running local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Which server `mysql_*` and `cdc_*` point at.
    pub flavour: Flavour,
    /// Which broker `kafka_bootstrap_servers` points at.
    pub broker: Broker,
    pub mysql_host: String,
    pub mysql_port: u16,
    /// Administrative account (creates databases and users).
    pub mysql_user: String,
    pub mysql_password: String,
    /// The least-privilege connector account from the shop migrations.
    pub cdc_user: String,
    pub cdc_password: String,
    pub postgres_host: String,
    pub postgres_port: u16,
    pub postgres_user: String,
    /// The CA that signed the stack's Postgres TLS certificate (which names
    /// 127.0.0.1, not `localhost`).
    pub postgres_ssl_ca: Option<PathBuf>,
    /// A role of the stack's Postgres that logs in with a client
    /// certificate only (`None` on a stack made before it existed).
    pub postgres_cert_login: Option<CertLogin>,
    pub kafka_bootstrap_servers: String,
    pub schema_registry_url: String,
    /// The server's own TLS material (the stack's MySQL; `None` for MariaDB,
    /// which the stack runs without TLS).
    pub mysql_tls: Option<StackTls>,
}

/// TLS material of the stack's MySQL: the CA that signed its certificate
/// (which names 127.0.0.1, not `localhost`) and a client certificate.
#[derive(Debug, Clone)]
pub struct StackTls {
    /// PEM.
    pub ca: PathBuf,
    /// PKCS#12: a client certificate of the same CA with its key.
    pub keystore: PathBuf,
    pub keystore_password: String,
}

/// A Postgres role whose login is a client certificate (pg_hba's `cert`).
#[derive(Debug, Clone)]
pub struct CertLogin {
    pub user: String,
    /// PEM, signed by the CA of [`Stack::postgres_ssl_ca`].
    pub cert: PathBuf,
    /// PEM (PKCS#8, unencrypted).
    pub key: PathBuf,
}

fn env_file() -> PathBuf {
    std::env::var_os("STACK_ENV_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".stack")
                .join("env")
        })
}

pub(crate) fn read_env_file() -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(env_file()) else {
        return HashMap::new();
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

fn required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    };
    on("SHOP_STACK_REQUIRED") || on("CI")
}

/// The local stack, or `None` (with the reason printed) when none is configured.
///
/// # Panics
/// When the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`) but missing.
pub fn stack() -> Option<Stack> {
    stack_for(Flavour::MariaDb)
}

/// The local stack with `mysql_*`/`cdc_*` pointing at the `flavour` server,
/// or `None` (with the reason printed) when none is configured.
///
/// # Panics
/// When the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`) but missing.
pub fn stack_for(flavour: Flavour) -> Option<Stack> {
    stack_with(flavour, Broker::selected())
}

/// The local stack with Kafka on its persistent (libsql) broker whatever
/// `SHOP_TEST_BROKER` says, or `None` (with the reason printed).
///
/// # Panics
/// When the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`) but missing.
pub fn persistent_stack() -> Option<Stack> {
    stack_with(Flavour::MariaDb, Broker::Persistent)
}

fn stack_with(flavour: Flavour, broker: Broker) -> Option<Stack> {
    match Stack::from_env_with(flavour, broker) {
        Ok(stack) => Some(stack),
        Err(missing) => {
            let reason = format!(
                "no local stack: {missing} is not set and not in {} (run `make stack-up`)",
                env_file().display()
            );
            if required() {
                panic!("{reason}");
            }
            eprintln!("skipping: {reason}");
            None
        }
    }
}

impl Stack {
    /// Reads the stack's settings with MariaDB as the source server; `Err`
    /// names the first missing variable.
    pub fn from_env() -> Result<Self, String> {
        Self::from_env_for(Flavour::MariaDb)
    }

    /// Reads the stack's settings with `flavour` as the source server and the
    /// broker `SHOP_TEST_BROKER` selects; `Err` names the first missing
    /// variable.
    pub fn from_env_for(flavour: Flavour) -> Result<Self, String> {
        Self::from_env_with(flavour, Broker::selected())
    }

    /// Reads the stack's settings with `flavour` as the source server and
    /// `broker` as Kafka; `Err` names the first missing variable.
    pub fn from_env_with(flavour: Flavour, broker: Broker) -> Result<Self, String> {
        let file = read_env_file();
        let mysql = |k: &str| format!("{}{k}", flavour.env_prefix());
        let get = |k: &str| -> Result<String, String> {
            std::env::var(k)
                .ok()
                .or_else(|| file.get(k).cloned())
                .ok_or_else(|| k.to_owned())
        };
        let port = |k: &str| -> Result<u16, String> {
            get(k)?.parse().map_err(|_| format!("{k} (not a port)"))
        };
        let (cdc_user, cdc_password) = match flavour {
            Flavour::MariaDb => ("CDC_MYSQL_USER", "CDC_MYSQL_PASSWORD"),
            Flavour::MySql => ("ORACLE_MYSQL_CDC_USER", "ORACLE_MYSQL_CDC_PASSWORD"),
        };
        Ok(Self {
            flavour,
            broker,
            mysql_host: get(&mysql("MYSQL_HOST"))?,
            mysql_port: port(&mysql("MYSQL_PORT"))?,
            mysql_user: get(&mysql("MYSQL_USER"))?,
            mysql_password: get(&mysql("MYSQL_PASSWORD")).unwrap_or_default(),
            cdc_user: get(cdc_user)?,
            cdc_password: get(cdc_password)?,
            postgres_host: get("POSTGRES_HOST")?,
            postgres_port: port("POSTGRES_PORT")?,
            postgres_user: get("POSTGRES_USER")?,
            postgres_ssl_ca: get("POSTGRES_SSL_CA").ok().map(PathBuf::from),
            postgres_cert_login: match (
                get("POSTGRES_CERT_USER"),
                get("POSTGRES_SSL_CLIENT_CERT"),
                get("POSTGRES_SSL_CLIENT_KEY"),
            ) {
                (Ok(user), Ok(cert), Ok(key)) => Some(CertLogin {
                    user,
                    cert: cert.into(),
                    key: key.into(),
                }),
                _ => None,
            },
            kafka_bootstrap_servers: get(broker.bootstrap_var())?,
            schema_registry_url: get("SCHEMA_REGISTRY_URL")?,
            mysql_tls: match flavour {
                Flavour::MariaDb => None,
                Flavour::MySql => Some(StackTls {
                    ca: get("ORACLE_MYSQL_SSL_CA")?.into(),
                    keystore: get("ORACLE_MYSQL_SSL_KEYSTORE")?.into(),
                    keystore_password: get("ORACLE_MYSQL_SSL_KEYSTORE_PASSWORD")?,
                }),
            },
        })
    }

    /// `mysql://` URL of the admin account, optionally with a default database.
    pub fn mysql_url(&self, database: Option<&str>) -> String {
        let auth = if self.mysql_password.is_empty() {
            self.mysql_user.clone()
        } else {
            format!("{}:{}", self.mysql_user, self.mysql_password)
        };
        format!(
            "mysql://{auth}@{}:{}/{}",
            self.mysql_host,
            self.mysql_port,
            database.unwrap_or("")
        )
    }

    /// `postgres://` URL of a database on the stack's Postgres.
    pub fn postgres_url(&self, database: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{database}",
            self.postgres_user, self.postgres_host, self.postgres_port
        )
    }

    /// `--seek-back-records` for an analytics instance on this stack's
    /// broker: the memory broker's workaround, none on the persistent one.
    pub fn analytics_seek_back_records(&self) -> u32 {
        match self.broker {
            Broker::Memory => MEMORY_BROKER_SEEK_BACK_RECORDS,
            Broker::Persistent => 0,
        }
    }

    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs::plaintext(&self.kafka_bootstrap_servers)
    }

    pub fn registry(&self) -> RegistryArgs {
        RegistryArgs::new(&self.schema_registry_url)
    }

    /// Creates an empty MySQL database named `t_<uuid>` and returns its name.
    pub async fn fresh_mysql_database(&self) -> String {
        use mysql_async::prelude::Queryable;
        let name = unique_name("t");
        let mut conn = mysql_async::Conn::from_url(self.mysql_url(None))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the stack's MySQL: {e}"));
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        conn.disconnect().await.ok();
        name
    }

    /// Creates a fresh database holding the demo's `users`, `items` and
    /// `purchases` tables, exactly as `migrations/mysql` defines them, and
    /// returns its name.
    pub async fn fresh_shop_database(&self) -> String {
        use mysql_async::prelude::Queryable;
        let name = self.fresh_mysql_database().await;
        let ddl = SHOP_TABLES_DDL.replace("shop.", &format!("`{name}`."));
        let mut conn = mysql_async::Conn::from_url(self.mysql_url(Some(&name)))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the stack's MySQL: {e}"));
        conn.query_drop(ddl)
            .await
            .unwrap_or_else(|e| panic!("cannot create the shop tables in {name}: {e}"));
        conn.disconnect().await.ok();
        name
    }

    /// Creates an empty Postgres database named `t_<uuid>` and returns its URL.
    pub async fn fresh_postgres_database(&self) -> String {
        let name = unique_name("t");
        let (client, connection) =
            tokio_postgres::connect(&self.postgres_url("postgres"), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the stack's Postgres: {e}"));
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        drop(client);
        let _ = task.await;
        self.postgres_url(&name)
    }
}

/// A loopback port nothing listens on right now (the OS picked it, then it
/// was freed, so another process may still take it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// `<prefix>_<32 hex digits>`: unique database, topic or group names per test.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it returns `Some`, every 50 ms up to `timeout`.
///
/// # Panics
/// On timeout, naming `what` was awaited.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
