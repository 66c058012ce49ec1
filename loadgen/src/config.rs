//! Command-line flags, each with an environment fallback so `make loadgen`,
//! docker-compose and tests configure loadgen the same way.
//!
//! Invariant: a [`Config`] that passed [`Config::validate`] describes a run that
//! can start; every bad combination is refused here with one actionable line,
//! before anything connects anywhere.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use pipeline::kafka::KafkaArgs;
use pipeline::pageview::PAGEVIEWS_TOPIC;
use pipeline::telemetry::TelemetryArgs;

/// A target rate for one stream: events per second, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Events per second; 0 turns the stream off.
    PerSec(f64),
    /// No limit: as fast as MySQL or the Kafka producer accept (benchmarks).
    Max,
}

impl Rate {
    pub fn is_off(self) -> bool {
        self == Rate::PerSec(0.0)
    }

    /// The rate as a number, `None` when unlimited.
    pub fn per_sec(self) -> Option<f64> {
        match self {
            Rate::PerSec(r) => Some(r),
            Rate::Max => None,
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") || s.eq_ignore_ascii_case("unlimited") {
            return Ok(Rate::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r >= 0.0 => Ok(Rate::PerSec(r)),
            _ => Err(format!(
                "{s:?} is not a rate: give events per second (e.g. 750, 0.5, 0 = off) or `max`"
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSec(r) => write!(f, "{r}/s"),
            Rate::Max => f.write_str("max"),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 60s, 5m, 1h30m"))
}

/// How often each kind of change follows a purchase, as expected changes per
/// purchase. Tying them to the purchase stream (rather than to the clock) keeps
/// a seeded run's sequence of statements identical whatever the timing, and
/// makes every CDC path scale with the load.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct MutationRates {
    /// Incomplete purchases (status 0) marked complete, per purchase.
    #[arg(long, env = "COMPLETIONS_PER_PURCHASE", default_value_t = 0.03)]
    pub completions_per_purchase: f64,
    /// Purchases soft-deleted (`deleted = true`), per purchase.
    #[arg(long, env = "SOFT_DELETES_PER_PURCHASE", default_value_t = 0.01)]
    pub soft_deletes_per_purchase: f64,
    /// Purchases deleted outright, per purchase.
    #[arg(long, env = "HARD_DELETES_PER_PURCHASE", default_value_t = 0.005)]
    pub hard_deletes_per_purchase: f64,
    /// Items restocked (new inventory, inventory_updated_at = now), per purchase.
    #[arg(long, env = "RESTOCKS_PER_PURCHASE", default_value_t = 0.02)]
    pub restocks_per_purchase: f64,
    /// Users upgraded to VIP, per purchase.
    #[arg(long, env = "VIP_UPGRADES_PER_PURCHASE", default_value_t = 0.005)]
    pub vip_upgrades_per_purchase: f64,
    /// Users given a new email address, per purchase.
    #[arg(long, env = "EMAIL_CHANGES_PER_PURCHASE", default_value_t = 0.01)]
    pub email_changes_per_purchase: f64,
}

impl MutationRates {
    pub const NONE: MutationRates = MutationRates {
        completions_per_purchase: 0.0,
        soft_deletes_per_purchase: 0.0,
        hard_deletes_per_purchase: 0.0,
        restocks_per_purchase: 0.0,
        vip_upgrades_per_purchase: 0.0,
        email_changes_per_purchase: 0.0,
    };

    fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("--completions-per-purchase", self.completions_per_purchase),
            (
                "--soft-deletes-per-purchase",
                self.soft_deletes_per_purchase,
            ),
            (
                "--hard-deletes-per-purchase",
                self.hard_deletes_per_purchase,
            ),
            ("--restocks-per-purchase", self.restocks_per_purchase),
            (
                "--vip-upgrades-per-purchase",
                self.vip_upgrades_per_purchase,
            ),
            (
                "--email-changes-per-purchase",
                self.email_changes_per_purchase,
            ),
        ]
    }
}

/// The session model (see [`crate::shoppers`]): who browses and buys what.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ShopperSettings {
    /// The original demo's traffic instead of shoppers: every pageview and
    /// purchase picks its user and item uniformly, 90% of purchases complete,
    /// every item starts with 1000..5000 in stock.
    #[arg(long, env = "UNIFORM")]
    pub uniform: bool,
    /// Zipf exponent of user popularity (0 = uniform; 1: the top user is seen
    /// about as often as the next hundred together).
    #[arg(long, env = "USER_SKEW", default_value_t = 1.0)]
    pub user_skew: f64,
    /// Zipf exponent of item popularity, for product pages and purchases.
    #[arg(long, env = "ITEM_SKEW", default_value_t = 1.0)]
    pub item_skew: f64,
    /// Most pages a session browses (each browses 2..=this many, uniformly).
    #[arg(long, env = "SESSION_PAGES", default_value_t = 10)]
    pub session_pages: u32,
    /// Mean time between two pages of one session; with the pageview rate it
    /// sets how many sessions browse at once (at most a quarter of the users).
    #[arg(long, env = "THINK_TIME", default_value = "2s", value_parser = parse_duration)]
    pub think_time: Duration,
    /// Share of checkouts left incomplete (status 0) by occasional shoppers;
    /// regulars (the most popular 1% of users) always complete.
    #[arg(long, env = "ABANDON_RATE", default_value_t = 0.1)]
    pub abandon_rate: f64,
    /// How long a shopper who left an incomplete purchase neither browses nor
    /// buys (longer than analytics' inactivity window, so the cart shows up
    /// in `abandoned_cart`).
    #[arg(long, env = "QUIET_AFTER_ABANDON", default_value = "10m", value_parser = parse_duration)]
    pub quiet_after_abandon: Duration,
    /// The most popular items seeded with a low inventory (150..=400), so their
    /// stock runs down and low-stock alerts fire within minutes at the demo rates.
    #[arg(long, env = "LOW_STOCK_ITEMS", default_value_t = 5)]
    pub low_stock_items: u32,
}

/// Shop traffic generator: seeds items and users, then sends purchases to MySQL
/// and pageviews to Kafka at the rates asked for.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version, about)]
pub struct Config {
    /// MySQL server (credentials, host, port); the database comes from --database.
    #[arg(
        long,
        env = "MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306",
        hide_env_values = true
    )]
    pub mysql_url: pipeline::secret::SecretUrl,
    /// Database holding the shop tables (users, items, purchases).
    #[arg(long, env = "MYSQL_DATABASE", default_value = "shop")]
    pub database: String,
    /// MySQL connections sending purchases (default: one per 250 purchases/s,
    /// 4 for `max`). Each commits its purchases one by one; with more than one,
    /// auto-increment ids interleave differently from run to run.
    #[arg(long, env = "MYSQL_CONNECTIONS")]
    pub mysql_connections: Option<usize>,

    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic the pageviews go to (created when missing).
    #[arg(long, env = "PAGEVIEWS_TOPIC", default_value = PAGEVIEWS_TOPIC)]
    pub pageviews_topic: String,
    /// Partitions of the pageviews topic when loadgen creates it.
    #[arg(long, env = "PAGEVIEWS_PARTITIONS", default_value_t = 1)]
    pub pageviews_partitions: i32,
    /// Replication factor of the pageviews topic when loadgen creates it (a
    /// cloud cluster such as Confluent Cloud requires 3).
    #[arg(long, env = "PAGEVIEWS_REPLICATION_FACTOR", default_value_t = 1)]
    pub pageviews_replication_factor: i32,

    /// Items to seed.
    #[arg(long, env = "SEED_ITEMS", default_value_t = 1000)]
    pub items: u32,
    /// Users to seed.
    #[arg(long, env = "SEED_USERS", default_value_t = 10_000)]
    pub users: u32,
    /// Rows per multi-row INSERT while seeding.
    #[arg(long, env = "SEED_BATCH", default_value_t = 1000)]
    pub seed_batch: usize,
    /// Empty purchases, items and users and seed again (otherwise an existing
    /// seed is reused).
    #[arg(long, env = "RESEED")]
    pub reseed: bool,

    /// Purchases per second (0 = none, `max` = unlimited).
    #[arg(long, env = "PURCHASES_PER_SEC", default_value = "10")]
    pub purchases_per_sec: Rate,
    /// Pageviews per second besides each purchaser's own (0 = none, `max` = unlimited).
    #[arg(long, env = "PAGEVIEWS_PER_SEC", default_value = "750")]
    pub pageviews_per_sec: Rate,
    /// Swing the pageview rate along a sine around its mean, as the original
    /// demo did (between 1/3 and 5/3 of the mean).
    #[arg(long, env = "OSCILLATE")]
    pub oscillate: bool,
    /// Period of that swing (the original's: 2*pi*1000 s, about 1.75 h).
    #[arg(long, env = "OSCILLATE_PERIOD", default_value = "6283s", value_parser = parse_duration)]
    pub oscillate_period: Duration,

    #[command(flatten)]
    pub shoppers: ShopperSettings,

    #[command(flatten)]
    pub mutations: MutationRates,
    /// No status changes, deletes, restocks, VIP upgrades or email changes.
    #[arg(long, env = "NO_MUTATIONS")]
    pub no_mutations: bool,

    /// Seed of the random generator; the same seed gives the same rows and
    /// events (a random one is chosen and printed when unset).
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,
    /// Stop after this long (e.g. 60s, 5m).
    #[arg(long, env = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many purchases.
    #[arg(long, env = "MAX_PURCHASES")]
    pub max_purchases: Option<u64>,
    /// Stop after this many pageviews (not counting purchasers' own).
    #[arg(long, env = "MAX_PAGEVIEWS")]
    pub max_pageviews: Option<u64>,
    /// Print sample rows and events without connecting anywhere.
    #[arg(long, env = "DRY_RUN")]
    pub dry_run: bool,
    /// Validate the configuration, print it (no secrets) and exit.
    #[arg(long)]
    pub check_config: bool,
    /// How often live statistics are printed.
    #[arg(long, env = "STATS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// A flag combination that cannot work; the message says what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Refuses combinations that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.items == 0 || self.users == 0 {
            return bad(
                "--items and --users must be at least 1 (purchases need an item and a user)".into(),
            );
        }
        if self.mysql_connections == Some(0) || self.mysql_connections > Some(64) {
            return bad("--mysql-connections must be 1..=64".into());
        }
        if self.seed_batch == 0 || self.seed_batch > 10_000 {
            return bad(format!(
                "--seed-batch {} is out of range: use 1..=10000 rows per INSERT",
                self.seed_batch
            ));
        }
        if self.pageviews_partitions < 1 {
            return bad("--pageviews-partitions must be at least 1".into());
        }
        if self.pageviews_replication_factor < 1 {
            return bad("--pageviews-replication-factor must be at least 1".into());
        }
        if self.database.is_empty() || self.database.contains('`') {
            return bad(format!(
                "--database {:?} is not a usable database name",
                self.database
            ));
        }
        if self.pageviews_topic.is_empty() {
            return bad("--pageviews-topic must not be empty".into());
        }
        if self.oscillate && self.oscillate_period.is_zero() {
            return bad("--oscillate-period must be longer than zero".into());
        }
        if self.stats_interval.is_zero() {
            return bad("--stats-interval must be longer than zero".into());
        }
        let sh = &self.shoppers;
        for (flag, v) in [("--user-skew", sh.user_skew), ("--item-skew", sh.item_skew)] {
            if !(v.is_finite() && (0.0..=5.0).contains(&v)) {
                return bad(format!(
                    "{flag} {v} is out of range: give a Zipf exponent in 0..=5 (0 = uniform)"
                ));
            }
        }
        if !(sh.abandon_rate.is_finite() && (0.0..=1.0).contains(&sh.abandon_rate)) {
            return bad(format!(
                "--abandon-rate {} is out of range: give a share in 0..=1",
                sh.abandon_rate
            ));
        }
        if !(2..=1000).contains(&sh.session_pages) {
            return bad("--session-pages must be 2..=1000".into());
        }
        if sh.think_time.is_zero() {
            return bad("--think-time must be longer than zero".into());
        }
        for (flag, v) in self.mutations.named() {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return bad(format!(
                    "{flag} {v} is out of range: give 0..=10 changes per purchase"
                ));
            }
        }
        if self.oscillate && self.pageviews_per_sec == Rate::Max {
            return bad(
                "--oscillate needs a numeric --pageviews-per-sec to swing around, not `max`".into(),
            );
        }
        Ok(())
    }

    /// Purchase workers (and MySQL connections) to run.
    pub fn connections(&self) -> usize {
        self.mysql_connections
            .unwrap_or(match self.purchases_per_sec {
                // One connection commits a few hundred purchases a second.
                Rate::PerSec(r) => ((r / 250.0).ceil() as usize).clamp(1, 16),
                Rate::Max => 4,
            })
    }

    /// Items seeded with a low stock (none with --uniform).
    pub fn low_stock_items(&self) -> u32 {
        if self.shoppers.uniform {
            0
        } else {
            self.shoppers.low_stock_items
        }
    }

    /// The mutation rates in effect (none with --no-mutations).
    pub fn effective_mutations(&self) -> MutationRates {
        if self.no_mutations {
            MutationRates::NONE
        } else {
            self.mutations.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["loadgen"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("flags parse")
    }

    #[test]
    fn defaults_are_the_demo() {
        let c = parse(&[]);
        assert_eq!(c.purchases_per_sec, Rate::PerSec(10.0));
        assert_eq!(c.pageviews_per_sec, Rate::PerSec(750.0));
        assert_eq!((c.items, c.users), (1000, 10_000));
        assert_eq!(c.database, "shop");
        assert_eq!(c.pageviews_topic, "pageviews");
        assert!(!c.oscillate && !c.no_mutations && !c.dry_run);
        assert_eq!(c.connections(), 1);
        c.validate().unwrap();
        assert_eq!(parse(&["--purchases-per-sec", "1000"]).connections(), 4);
        assert_eq!(
            parse(&["--purchases-per-sec", "1000", "--mysql-connections", "2"]).connections(),
            2
        );
    }

    #[test]
    fn rates_durations_and_bounds_parse() {
        let c = parse(&[
            "--purchases-per-sec",
            "max",
            "--pageviews-per-sec",
            "0.5",
            "--duration",
            "1m30s",
            "--max-purchases",
            "7",
        ]);
        assert_eq!(c.purchases_per_sec, Rate::Max);
        assert_eq!(c.pageviews_per_sec, Rate::PerSec(0.5));
        assert_eq!(c.duration, Some(Duration::from_secs(90)));
        assert_eq!(c.max_purchases, Some(7));
    }

    #[test]
    fn bad_flags_are_refused_with_a_hint() {
        let err = Config::try_parse_from(["loadgen", "--pageviews-per-sec=-3"]).unwrap_err();
        assert!(err.to_string().contains("is not a rate"), "{err}");
        let err = Config::try_parse_from(["loadgen", "--duration", "soon"]).unwrap_err();
        assert!(err.to_string().contains("60s"), "{err}");
        let err = parse(&["--items", "0"]).validate().unwrap_err();
        assert!(err.0.contains("--items"), "{err}");
        let err = parse(&["--restocks-per-purchase", "11"])
            .validate()
            .unwrap_err();
        assert!(err.0.contains("--restocks-per-purchase"), "{err}");
        let err = parse(&["--oscillate", "--pageviews-per-sec", "max"])
            .validate()
            .unwrap_err();
        assert!(err.0.contains("--oscillate"), "{err}");
    }

    #[test]
    fn no_mutations_zeroes_every_rate() {
        assert_eq!(
            parse(&["--no-mutations"]).effective_mutations(),
            MutationRates::NONE
        );
        assert!(parse(&[]).effective_mutations().completions_per_purchase > 0.0);
    }
}
