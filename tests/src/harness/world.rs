//! One test's isolated pipeline on the shared local stack.
//!
//! Invariants: every name a service could share with another test is fresh
//! here (MySQL database, Postgres database, cdc topic prefix and server id,
//! pageviews and dead-letter topics, consumer group, connector account when
//! asked for); services get their whole environment from here, nothing from
//! the test's own environment; when the test fails, the tail of every
//! service's log is printed and the log directory is kept.

use std::path::{Path, PathBuf};

use mysql_async::prelude::Queryable;
use pipeline::testing::{unique_name, Stack};

use super::process::{binaries, tail, Process, Spec};

/// The connector account a world's cdc logs in with.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub password: String,
}

/// What loadgen sends.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub seed: u64,
    pub items: u32,
    pub users: u32,
    /// 0 = seed the catalog only (no purchases, no pageviews).
    pub purchases: u64,
    pub purchases_per_sec: u32,
    /// Random pageviews besides each purchaser's own.
    pub pageviews: u64,
    pub pageviews_per_sec: u32,
    /// Status changes, deletes, restocks, VIP upgrades, email changes.
    pub mutations: bool,
}

impl Traffic {
    /// The same catalog, no traffic: loadgen seeds items and users and exits.
    pub fn seed_only(&self) -> Traffic {
        Traffic {
            purchases: 0,
            pageviews: 0,
            ..self.clone()
        }
    }
}

/// Every isolated name of one test's pipeline, and its services' settings.
#[derive(Debug)]
pub struct World {
    pub stack: Stack,
    /// Logs of the services.
    pub dir: PathBuf,
    pub mysql_database: String,
    pub postgres_url: String,
    pub topic_prefix: String,
    pub server_id: u32,
    pub pageviews_topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    pub account: Account,
    /// An item's low-stock alert fires below this (high enough that some fire).
    pub low_stock_threshold: i64,
}

impl World {
    /// Fresh databases and names. `dedicated_account` creates a connector
    /// account used by this test alone (so its connections can be told apart
    /// in SHOW PROCESSLIST); otherwise cdc uses the stack's connector account.
    pub async fn new(stack: Stack, dedicated_account: bool) -> World {
        let mysql_database = stack.fresh_shop_database().await;
        let postgres_url = stack.fresh_postgres_database().await;
        let topic_prefix = unique_name("e2e");
        let dir = std::env::temp_dir().join(&topic_prefix);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let account = if dedicated_account {
            create_connector_account(&stack).await
        } else {
            Account {
                user: stack.cdc_user.clone(),
                password: stack.cdc_password.clone(),
            }
        };
        let world = World {
            mysql_database,
            postgres_url,
            // Unique among the server's replicas; 2^31 - 2^20 ids to pick from.
            server_id: rand::random::<u32>() % (i32::MAX as u32 - (1 << 20)) + (1 << 20),
            pageviews_topic: unique_name("e2e-pageviews"),
            dead_letter_topic: unique_name("e2e-dead-letters"),
            group_id: unique_name("e2e-analytics"),
            topic_prefix,
            dir,
            account,
            stack,
            low_stock_threshold: 2000,
        };
        eprintln!(
            "e2e: world: mysql database {}, postgres {}, topic prefix {}, server id {}, pageviews {}, group {}, logs in {}",
            world.mysql_database,
            world.postgres_url,
            world.topic_prefix,
            world.server_id,
            world.pageviews_topic,
            world.group_id,
            world.dir.display()
        );
        world
    }

    /// The row topic cdc writes a table's changes to.
    pub fn cdc_topic(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.topic_prefix, self.mysql_database)
    }

    /// Admin connection to this world's MySQL database.
    pub async fn mysql(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.stack.mysql_url(Some(&self.mysql_database)))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to MySQL: {e}"))
    }

    /// Connection to this world's Postgres database.
    pub async fn postgres(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.postgres_url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.postgres_url));
        tokio::spawn(connection);
        client
    }

    fn common_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "KAFKA_BOOTSTRAP_SERVERS".into(),
                self.stack.kafka_bootstrap_servers.clone(),
            ),
            (
                "SCHEMA_REGISTRY_URL".into(),
                self.stack.schema_registry_url.clone(),
            ),
            // Port 0: several tests' services run at once.
            ("METRICS_ADDR".into(), "127.0.0.1:0".into()),
            ("RUST_LOG".into(), "info".into()),
            ("RUST_BACKTRACE".into(), "1".into()),
            // Plain logs: they are read by tests and people, not terminals.
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// cdc capturing this world's database, with Debezium's property names.
    pub fn cdc_spec(&self) -> Spec {
        let mut env = self.common_env();
        env.extend(
            [
                ("DATABASE_HOSTNAME", self.stack.mysql_host.clone()),
                ("DATABASE_PORT", self.stack.mysql_port.to_string()),
                ("DATABASE_USER", self.account.user.clone()),
                ("DATABASE_PASSWORD", self.account.password.clone()),
                ("DATABASE_SERVER_ID", self.server_id.to_string()),
                ("TOPIC_PREFIX", self.topic_prefix.clone()),
                ("DATABASE_INCLUDE_LIST", self.mysql_database.clone()),
                // As the original demo's connector was configured.
                ("TIME_PRECISION_MODE", "connect".into()),
                ("CONNECTOR_NAME", format!("{}-connector", self.topic_prefix)),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Spec {
            name: "cdc".into(),
            program: binaries().cdc.clone(),
            args: Vec::new(),
            env,
        }
    }

    /// analytics folding this world's topics into its Postgres database.
    pub fn analytics_spec(&self) -> Spec {
        let mut env = self.common_env();
        env.extend(
            [
                ("POSTGRES_URL", self.postgres_url.clone()),
                ("ANALYTICS_GROUP_ID", self.group_id.clone()),
                ("ANALYTICS_USERS_TOPIC", self.cdc_topic("users")),
                ("ANALYTICS_ITEMS_TOPIC", self.cdc_topic("items")),
                ("ANALYTICS_PURCHASES_TOPIC", self.cdc_topic("purchases")),
                ("ANALYTICS_PAGEVIEWS_TOPIC", self.pageviews_topic.clone()),
                (
                    "ANALYTICS_DEAD_LETTER_TOPIC",
                    self.dead_letter_topic.clone(),
                ),
                (
                    "ANALYTICS_LOW_STOCK_THRESHOLD",
                    self.low_stock_threshold.to_string(),
                ),
                // This world's own push topics, not the demo's.
                (
                    "ANALYTICS_HIGH_VALUE_USERS_TOPIC",
                    format!("{}.high-value-users", self.dead_letter_topic),
                ),
                (
                    "ANALYTICS_ABANDONED_CARTS_TOPIC",
                    format!("{}.abandoned-carts", self.dead_letter_topic),
                ),
                // Topics appear while the test runs; look for them often.
                ("ANALYTICS_TOPIC_REFRESH_MS", "500".into()),
                // A SIGKILLed member keeps its partitions this long.
                ("ANALYTICS_SESSION_TIMEOUT_MS", "6000".into()),
                // Both of the stack's brokers hold a fetch until this runs out.
                ("ANALYTICS_FETCH_WAIT_MAX_MS", "25".into()),
                // The memory broker's workaround; none on the persistent one.
                (
                    "ANALYTICS_SEEK_BACK_RECORDS",
                    self.stack.analytics_seek_back_records().to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Spec {
            name: "analytics".into(),
            program: binaries().analytics.clone(),
            args: Vec::new(),
            env,
        }
    }

    /// loadgen writing to this world's database and pageviews topic.
    pub fn loadgen_spec(&self, traffic: &Traffic) -> Spec {
        let mut env = self.common_env();
        env.push(("MYSQL_URL".into(), self.stack.mysql_url(None)));
        let mut args: Vec<String> = [
            "--database",
            &self.mysql_database,
            "--pageviews-topic",
            &self.pageviews_topic,
            "--seed",
            &traffic.seed.to_string(),
            "--items",
            &traffic.items.to_string(),
            "--users",
            &traffic.users.to_string(),
            "--stats-interval",
            "2s",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut push = |flag: &str, value: String| {
            args.push(flag.to_owned());
            args.push(value);
        };
        if traffic.purchases == 0 {
            push("--purchases-per-sec", "0".into());
        } else {
            push("--purchases-per-sec", traffic.purchases_per_sec.to_string());
            push("--max-purchases", traffic.purchases.to_string());
        }
        if traffic.pageviews == 0 {
            push("--pageviews-per-sec", "0".into());
        } else {
            push("--pageviews-per-sec", traffic.pageviews_per_sec.to_string());
            push("--max-pageviews", traffic.pageviews.to_string());
        }
        if traffic.mutations {
            // Many more changes than the demo's defaults, so every CDC path
            // (updates, soft and hard deletes, restocks) is exercised.
            for (flag, rate) in [
                ("--completions-per-purchase", "0.04"),
                ("--soft-deletes-per-purchase", "0.05"),
                ("--hard-deletes-per-purchase", "0.05"),
                ("--restocks-per-purchase", "0.05"),
                ("--vip-upgrades-per-purchase", "0.05"),
                ("--email-changes-per-purchase", "0.05"),
            ] {
                push(flag, rate.into());
            }
            // Shoppers who abandon come back at once, so completions (status
            // updates) happen in a short run too (loadgen's default quiet
            // time is 10 minutes of purchases).
            push("--quiet-after-abandon", "0s".into());
        } else {
            args.push("--no-mutations".into());
        }
        let seed_only = traffic.purchases == 0 && traffic.pageviews == 0;
        Spec {
            name: if seed_only { "loadgen-seed" } else { "loadgen" }.into(),
            program: binaries().loadgen.clone(),
            args,
            env,
        }
    }

    pub fn start(&self, spec: Spec) -> Process {
        Process::start(spec, &self.dir)
    }

    pub fn start_cdc(&self) -> Process {
        self.start(self.cdc_spec())
    }

    pub fn start_analytics(&self) -> Process {
        self.start(self.analytics_spec())
    }

    pub fn start_loadgen(&self, traffic: &Traffic) -> Process {
        self.start(self.loadgen_spec(traffic))
    }

    pub fn log_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for World {
    /// On failure: every service's log tail, and the directory is kept;
    /// on success the logs are removed (kept with `E2E_KEEP_LOGS=1`).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            logs.sort();
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                eprintln!(
                    "\n----- last lines of {} -----\n{}",
                    log.display(),
                    tail(&text, 40)
                );
            }
            eprintln!("e2e: logs kept in {}", self.dir.display());
        } else if std::env::var_os("E2E_KEEP_LOGS").is_some() {
            eprintln!("e2e: logs kept in {} (E2E_KEEP_LOGS)", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A connector account for one test, with the privileges of the stack's.
async fn create_connector_account(stack: &Stack) -> Account {
    let account = Account {
        user: format!("cdc_{}", &unique_name("u")[2..18]),
        password: unique_name("pw"),
    };
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(None))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to MySQL: {e}"));
    conn.query_drop(format!(
        "CREATE USER '{}'@'%' IDENTIFIED BY '{}'",
        account.user, account.password
    ))
    .await
    .unwrap_or_else(|e| panic!("cannot create connector account {}: {e}", account.user));
    conn.query_drop(format!(
        "GRANT SELECT, RELOAD, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{}'@'%'",
        account.user
    ))
    .await
    .unwrap_or_else(|e| panic!("cannot grant connector privileges to {}: {e}", account.user));
    conn.disconnect().await.ok();
    account
}
