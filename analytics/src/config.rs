//! Settings: flags with environment fallbacks. Options go before a subcommand
//! (`analytics --postgres-url ... migrate`), or come from the environment.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use pipeline::kafka::KafkaArgs;
use pipeline::registry::RegistryArgs;
use pipeline::secret::SecretUrl;
use pipeline::telemetry::TelemetryArgs;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "analytics",
    about = "Folds the shop's CDC and pageview streams into the demo's summary tables in Postgres, exactly once."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Consume and fold (the default).
    Run,
    /// Apply the Postgres migrations and exit (transient failures, such as a
    /// Postgres still starting, are retried for --migrate-retry-secs).
    Migrate,
    /// Benchmark against the local stack and print figures (uses fresh topics
    /// and the database of --postgres-url, which should be empty). Only in
    /// builds with the `bench` feature (scripts/bench.sh).
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
}

#[cfg(feature = "bench")]
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Pageviews in the backlog to drain.
    #[arg(long, default_value_t = 1_000_000)]
    pub pageviews: u64,
    /// Purchase change events in the backlog to drain.
    #[arg(long, default_value_t = 100_000)]
    pub purchase_events: u64,
    /// Purchases in the database when timing the output queries.
    #[arg(long, default_value_t = 1_000_000)]
    pub query_purchases: u64,
    /// Executions of each output query for its p95.
    #[arg(long, default_value_t = 50)]
    pub query_runs: usize,
}

/// How partitions are shared.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Join the consumer group; instances share the partitions.
    Group,
    /// Read every partition of the topics alone (no group coordination).
    All,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Postgres holding the summary tables (libpq URL).
    #[arg(
        long,
        env = "POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub postgres_url: SecretUrl,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Consumer group; offsets are stored per group in Postgres.
    #[arg(long, env = "ANALYTICS_GROUP_ID", default_value = "analytics")]
    pub group_id: String,
    #[arg(
        long,
        env = "ANALYTICS_ASSIGNMENT",
        value_enum,
        default_value = "group"
    )]
    pub assignment: Assignment,
    #[arg(
        long,
        env = "ANALYTICS_USERS_TOPIC",
        default_value = "mysql.shop.users"
    )]
    pub users_topic: String,
    #[arg(
        long,
        env = "ANALYTICS_ITEMS_TOPIC",
        default_value = "mysql.shop.items"
    )]
    pub items_topic: String,
    #[arg(
        long,
        env = "ANALYTICS_PURCHASES_TOPIC",
        default_value = "mysql.shop.purchases"
    )]
    pub purchases_topic: String,
    #[arg(long, env = "ANALYTICS_PAGEVIEWS_TOPIC", default_value = pipeline::pageview::PAGEVIEWS_TOPIC)]
    pub pageviews_topic: String,
    /// Where records that cannot be decoded go, with the error in headers.
    #[arg(
        long,
        env = "ANALYTICS_DEAD_LETTER_TOPIC",
        default_value = "analytics.dead-letters"
    )]
    pub dead_letter_topic: String,
    /// Replication factor of the dead-letter topic when analytics creates it
    /// (a cloud cluster such as Confluent Cloud requires 3).
    #[arg(
        long,
        env = "ANALYTICS_DEAD_LETTER_REPLICATION_FACTOR",
        default_value_t = 1
    )]
    pub dead_letter_replication_factor: i32,
    /// A batch commits after this many records...
    #[arg(long, env = "ANALYTICS_BATCH_MAX_RECORDS", default_value_t = 50_000)]
    pub batch_max_records: usize,
    /// ...or when its records hold this many bytes (keys, values and ~40
    /// bytes of index each)... This bounds the consumer's memory: about 2x
    /// this in batches being collected and decoded, their decoded rows, and
    /// half of it in librdkafka's prefetch queue, whose settings follow
    /// from it (see `analytics::batching`). The default keeps a 100,000-
    /// pageview batch whole and the process under 128 MB.
    #[arg(long, env = "ANALYTICS_BATCH_MAX_BYTES", default_value_t = DEFAULT_BATCH_MAX_BYTES)]
    pub batch_max_bytes: usize,
    /// ...or this long after its first record, at most. A batch goes as
    /// soon as the records fetched so far are taken and no earlier batch is
    /// still being decoded or committed; the linger only bounds how long
    /// records wait behind a busy commit (larger batches under load).
    #[arg(long, env = "ANALYTICS_BATCH_LINGER_MS", default_value_t = 50)]
    pub batch_linger_ms: u64,
    /// Longest time the broker may hold a fetch waiting for data (librdkafka's
    /// `fetch.wait.max.ms`). Kafka and Redpanda answer as soon as data
    /// arrives; a broker that answers only when this runs out (the local
    /// stack's tansu) adds it to every record's latency, so the local stack
    /// sets 25.
    #[arg(long, env = "ANALYTICS_FETCH_WAIT_MAX_MS", default_value_t = 500)]
    pub fetch_wait_max_ms: u64,
    /// An item's low-stock alert fires when its remaining stock drops below this.
    #[arg(long, env = "ANALYTICS_LOW_STOCK_THRESHOLD", default_value_t = 100)]
    pub low_stock_threshold: i64,
    /// A user with no pageview for this many seconds is inactive
    /// (`inactive_users_last_3_mins`, hence `abandoned_cart`). The demo's
    /// 3 minutes by default; written to `analytics_settings` at start, so the
    /// views follow the instance started last.
    #[arg(long, env = "ANALYTICS_INACTIVITY_WINDOW_SECS", default_value_t = 180)]
    pub inactivity_window_secs: u32,
    /// How long `pageview_log` (the seed's `v_pageviews` and `json_pageviews`)
    /// keeps each pageview, in seconds of `received_at`; 0 keeps none.
    #[arg(long, env = "ANALYTICS_PAGEVIEW_LOG_SECS", default_value_t = 900)]
    pub pageview_log_secs: u32,
    /// How often topics that do not exist yet are looked for.
    #[arg(long, env = "ANALYTICS_TOPIC_REFRESH_MS", default_value_t = 2_000)]
    pub topic_refresh_ms: u64,
    /// Group session timeout: how long a dead instance keeps its partitions.
    #[arg(long, env = "ANALYTICS_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// An instance that holds no partition for this many session timeouts
    /// while its input topics exist logs a WARN and turns /healthz unhealthy
    /// (a group that never assigns it anything, e.g. a stalled coordinator);
    /// so does a startup step (migrations, settings, the dead-letter topic)
    /// still running after as long.
    #[arg(long, env = "ANALYTICS_UNASSIGNED_SESSIONS", default_value_t = 3)]
    pub unassigned_sessions: u32,
    /// Records to re-read before a partition's stored offset when it
    /// (re)starts; those before the offset are dropped. 0 (the default) for a
    /// real Kafka or Redpanda. A broker that answers a fetch from inside a
    /// record batch with the NEXT batch (the local stack's tansu with memory
    /// storage) would silently skip the rest of that batch: starting up to a
    /// batch's size earlier puts the stored offset behind a batch boundary.
    /// The local stack sets 10000 (our producers' largest batch).
    #[arg(long, env = "ANALYTICS_SEEK_BACK_RECORDS", default_value_t = 0)]
    pub seek_back_records: u32,
    /// How long a migration waits for a table lock (a dashboard's query on
    /// a view it replaces) before it gives way, lets the queries queued
    /// behind it run, and is tried again; 0 waits without bound.
    #[arg(long, env = "ANALYTICS_MIGRATION_LOCK_TIMEOUT_MS", default_value_t = DEFAULT_MIGRATION_LOCK_TIMEOUT_MS)]
    pub migration_lock_timeout_ms: u64,
    /// How long `analytics migrate` retries transient failures (Postgres
    /// unreachable or starting, a migration rolled back by a deadlock)
    /// before it exits with the last one. The service itself retries
    /// without bound.
    #[arg(long, env = "ANALYTICS_MIGRATE_RETRY_SECS", default_value_t = 60)]
    pub migrate_retry_secs: u64,
    /// Topic the `high_value_users` changes are pushed to (Debezium-style
    /// Avro envelope, key the user id).
    #[arg(
        long,
        env = "ANALYTICS_HIGH_VALUE_USERS_TOPIC",
        default_value = "high-value-users"
    )]
    pub high_value_users_topic: String,
    /// Topic each newly abandoned cart is pushed to (JSON, key the user id);
    /// the same JSON goes to `NOTIFY abandoned_cart`.
    #[arg(
        long,
        env = "ANALYTICS_ABANDONED_CARTS_TOPIC",
        default_value = "abandoned-carts"
    )]
    pub abandoned_carts_topic: String,
    /// How often the pushes look for newly abandoned carts and high-value
    /// changes, and send what is queued.
    #[arg(long, env = "ANALYTICS_PUSH_INTERVAL_MS", default_value_t = 1_000)]
    pub push_interval_ms: u64,
    /// Replication factor of the push topics when analytics creates them
    /// (a cloud broker wants 3).
    #[arg(long, env = "ANALYTICS_PUSH_REPLICATION_FACTOR", default_value_t = 1)]
    pub push_replication_factor: i32,
    /// Print the settings (secrets masked) and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// `--migration-lock-timeout-ms`: the store's [`crate::store::MIGRATION_LOCK_TIMEOUT`].
pub const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS: u64 =
    crate::store::MIGRATION_LOCK_TIMEOUT.as_millis() as u64;

/// `--batch-max-bytes`: 16 MiB.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 16 << 20;
/// Bounds of `--batch-max-bytes`: below 1 MiB a batch would not hold one
/// fetch (librdkafka's `fetch.max.bytes` cannot go below 1 MB); above 1 GiB
/// the derived librdkafka settings leave their range, and no demo needs it.
pub const BATCH_MAX_BYTES_RANGE: std::ops::RangeInclusive<usize> = (1 << 20)..=(1 << 30);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let topics = [
            &self.users_topic,
            &self.items_topic,
            &self.purchases_topic,
            &self.pageviews_topic,
            &self.high_value_users_topic,
            &self.abandoned_carts_topic,
        ];
        for (i, t) in topics.iter().enumerate() {
            if t.is_empty() {
                return Err(ConfigError::Invalid("topic names must not be empty".into()));
            }
            if topics[..i].contains(t) || *t == &self.dead_letter_topic {
                return Err(ConfigError::Invalid(format!(
                    "topic {t:?} is configured twice; every input, push and the dead-letter topic must differ"
                )));
            }
        }
        if self.batch_max_records == 0 {
            return Err(ConfigError::Invalid(
                "--batch-max-records must be at least 1".into(),
            ));
        }
        if !BATCH_MAX_BYTES_RANGE.contains(&self.batch_max_bytes) {
            return Err(ConfigError::Invalid(format!(
                "--batch-max-bytes must be between {} (1 MiB) and {} (1 GiB), not {}",
                BATCH_MAX_BYTES_RANGE.start(),
                BATCH_MAX_BYTES_RANGE.end(),
                self.batch_max_bytes
            )));
        }
        if self.push_replication_factor < 1 {
            return Err(ConfigError::Invalid(
                "--push-replication-factor must be at least 1".into(),
            ));
        }
        if self.dead_letter_replication_factor < 1 {
            return Err(ConfigError::Invalid(
                "--dead-letter-replication-factor must be at least 1".into(),
            ));
        }
        if self.inactivity_window_secs == 0 {
            return Err(ConfigError::Invalid(
                "--inactivity-window-secs must be at least 1".into(),
            ));
        }
        if self.unassigned_sessions == 0 {
            return Err(ConfigError::Invalid(
                "--unassigned-sessions must be at least 1".into(),
            ));
        }
        if self.group_id.is_empty() {
            return Err(ConfigError::Invalid("--group-id must not be empty".into()));
        }
        Ok(())
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }

    /// How long a migration waits for a table lock (zero: no bound).
    pub fn migration_lock_timeout(&self) -> Duration {
        Duration::from_millis(self.migration_lock_timeout_ms)
    }

    /// How long holding no partition (while the topics exist) is tolerated.
    pub fn unassigned_limit(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms) * self.unassigned_sessions
    }

    /// The Postgres URL (or key=value string) with any password masked.
    pub fn postgres_masked(&self) -> String {
        self.postgres_url.masked()
    }

    /// One line per setting, secrets masked.
    pub fn describe(&self) -> String {
        format!(
            "postgres={} {} {} group={} assignment={:?} topics=[{}, {}, {}, {}] dead-letters={} \
             batch={} records/{} bytes/{} ms low-stock-threshold={} inactivity-window={}s pageview-log={}s \
             pushes=[{}, {}] every {} ms migration-lock-timeout={} ms session-timeout={} ms unassigned-limit={}s seek-back={} records metrics={}",
            self.postgres_masked(),
            self.kafka.describe(),
            self.registry.describe(),
            self.group_id,
            self.assignment,
            self.users_topic,
            self.items_topic,
            self.purchases_topic,
            self.pageviews_topic,
            self.dead_letter_topic,
            self.batch_max_records,
            self.batch_max_bytes,
            self.batch_linger_ms,
            self.low_stock_threshold,
            self.inactivity_window_secs,
            self.pageview_log_secs,
            self.high_value_users_topic,
            self.abandoned_carts_topic,
            self.push_interval_ms,
            self.migration_lock_timeout_ms,
            self.session_timeout_ms,
            self.unassigned_limit().as_secs(),
            self.seek_back_records,
            self.telemetry.metrics_addr,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        let cli = Cli::parse_from([
            "analytics",
            "--postgres-url",
            "host=h user=u password=pg-secret dbname=d",
            "--kafka-sasl-password",
            "sasl-secret",
            "--schema-registry-url",
            "http://u:url-secret@r:8081",
            "--schema-registry-basic-auth-user-info",
            "u:auth-secret",
        ]);
        let shown = format!("{} {:?}", cli.config.describe(), cli);
        for secret in ["pg-secret", "sasl-secret", "url-secret", "auth-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("password=***"), "{shown}");
    }

    #[test]
    fn duplicate_topics_are_refused() {
        let cli = Cli::parse_from(["analytics", "--pageviews-topic", "mysql.shop.users"]);
        assert!(cli.config.validate().is_err());
        let cli = Cli::parse_from(["analytics", "migrate"]);
        assert!(cli.config.validate().is_ok());
        assert!(matches!(cli.command, Some(Command::Migrate)));
    }

    /// The defaults, not what the environment says (the local stack's
    /// `.stack/env` turns the workarounds on).
    fn default_of(id: &str) -> String {
        use clap::CommandFactory;
        let command = Cli::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .unwrap_or_else(|| panic!("no argument {id}"));
        arg.get_default_values()[0].to_string_lossy().into_owned()
    }

    #[test]
    fn batch_max_bytes_defaults_reads_its_env_and_is_validated() {
        use clap::CommandFactory;
        assert_eq!(default_of("batch_max_bytes"), "16777216");
        assert_eq!(DEFAULT_BATCH_MAX_BYTES, 16 << 20);
        let command = Cli::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == "batch_max_bytes")
            .expect("the argument");
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some("ANALYTICS_BATCH_MAX_BYTES")
        );
        assert_eq!(arg.get_long(), Some("batch-max-bytes"));
        let parsed = |v: &str| {
            let cli = Cli::parse_from(["analytics", "--batch-max-bytes", v]);
            assert_eq!(cli.config.batch_max_bytes.to_string(), v);
            cli.config
        };
        assert!(parsed("1048576").validate().is_ok());
        assert!(parsed("1073741824").validate().is_ok());
        for bad in ["0", "1048575", "1073741825"] {
            let error = parsed(bad).validate().expect_err(bad).to_string();
            assert_eq!(
                error,
                format!(
                    "--batch-max-bytes must be between 1048576 (1 MiB) and 1073741824 (1 GiB), not {bad}"
                )
            );
        }
        assert!(Cli::try_parse_from(["analytics", "--batch-max-bytes", "16MB"]).is_err());
        let shown = parsed("33554432").describe();
        assert!(shown.contains("records/33554432 bytes/"), "{shown}");
    }

    #[test]
    fn local_broker_workarounds_are_off_by_default() {
        assert_eq!(default_of("seek_back_records"), "0");
        assert_eq!(default_of("fetch_wait_max_ms"), "500");
        assert_eq!(default_of("assignment"), "group");
        let cli = Cli::parse_from([
            "analytics",
            "--session-timeout-ms",
            "10000",
            "--unassigned-sessions",
            "3",
        ]);
        assert_eq!(cli.config.unassigned_limit(), Duration::from_secs(30));
        let cli = Cli::parse_from(["analytics", "--unassigned-sessions", "0"]);
        assert!(cli.config.validate().is_err());
    }
}
