//! loadgen: the shop demo's traffic source.
//!
//! Seeds `items` and `users` (once; an existing seed is reused), then sends
//! purchases (with their purchasers' pageviews and the changes that follow) to
//! MySQL and pageviews to Kafka, each stream at its own target rate, with live
//! statistics, until a bound, a signal, or forever. Who browses and buys what
//! is the session model of [`shoppers`] (`--uniform`: the original's uniform
//! picks).
//!
//! Invariants of a run (details in each module):
//! - The same `--seed` gives the same rows (timestamps aside; with one MySQL
//!   connection, the same statements in the same order), and with `--uniform`
//!   the same pageviews too; with the session model ([`shoppers`], the
//!   default) which shopper browses also depends on when purchases end
//!   sessions.
//! - The totals returned and printed are what MySQL committed and Kafka
//!   acknowledged: the producer is flushed before they are taken.
//! - Bad configuration and unreachable services fail before any traffic, with
//!   one actionable line; outages during the run are retried.

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod pageviews;
pub mod seed;
pub mod shop;
pub mod shoppers;
pub mod stats;
pub mod traffic;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake::rand::rngs::StdRng;
use fake::rand::{Rng, SeedableRng};
use pipeline::kafka::{ensure_topic, TopicSpec};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::pageviews::{PageviewSink, PageviewStream};
use crate::seed::Catalog;
use crate::shop::ShopDb;
use crate::stats::{say, Counters, LiveStats, Out, Totals};

/// Why a run could not start or had to stop. Transient variants first: the
/// service may come back and a later run succeed; the rest need a change of
/// configuration, schema or data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach MySQL at {target}: {cause}; is it running, and are MYSQL_URL / --database right?")]
    MysqlUnreachable { target: String, cause: String },
    #[error("cannot reach Kafka ({kafka}): {cause}; is the broker up, and is KAFKA_BOOTSTRAP_SERVERS right?")]
    KafkaUnreachable { kafka: String, cause: String },

    #[error("bad flags: {0}")]
    Config(#[from] ConfigError),
    #[error("bad MYSQL_URL: {0}; expected mysql://user[:password]@host:port[/database]")]
    MysqlUrl(String),
    #[error("database `{database}` does not exist on {target}: apply migrations/mysql (make stack-up does) or pass --database")]
    MissingDatabase { target: String, database: String },
    #[error("{target} has no table `{table}`: apply migrations/mysql (make stack-up does) or point --database at the shop schema")]
    MissingTable { target: String, table: &'static str },
    #[error("MySQL at {target} refused {what}: {cause}")]
    MysqlRefused {
        target: String,
        what: &'static str,
        cause: String,
    },
    #[error("Kafka refused: {0}")]
    KafkaRefused(String),
    #[error("unexpected data: {0}")]
    BadData(String),
    #[error("internal error: {0}")]
    TaskFailed(String),
}

/// Independent random streams derived from the one `--seed`, so adding rows
/// to one does not shift the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Items,
    Users,
    Pageviews,
    /// Purchase worker `n`.
    Purchases(u32),
    /// The popularity rankings and the hot items' low stock (session model).
    UserPopularity,
    ItemPopularity,
    LowStock,
}

pub fn stream_rng(seed: u64, stream: Stream) -> StdRng {
    let salt: u64 = match stream {
        Stream::Items => 1,
        Stream::Users => 2,
        Stream::Pageviews => 3,
        Stream::UserPopularity => 4,
        Stream::ItemPopularity => 5,
        Stream::LowStock => 6,
        Stream::Purchases(n) => 0x100 + u64::from(n),
    };
    // SplitMix-style mixing so nearby seeds and salts give unrelated streams.
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// The seed to use: the one given, or a fresh random one (printed, so the run
/// can be repeated).
pub fn choose_seed(config: &Config) -> u64 {
    config.seed.unwrap_or_else(|| fake::rand::rng().random())
}

/// The MySQL connection options the configuration describes.
pub fn shop_opts(config: &Config) -> Result<mysql_async::Opts, Error> {
    shop::opts(
        config.mysql_url.expose(),
        &config.database,
        config.connections(),
    )
}

/// One line saying where loadgen connects and what it will send.
pub fn describe(config: &Config, seed: u64) -> String {
    let mysql = shop::opts(
        config.mysql_url.expose(),
        &config.database,
        config.connections(),
    )
    .map(|o| shop::describe_opts(&o))
    .unwrap_or_else(|_| "<bad MYSQL_URL>".into());
    let rates = config.effective_mutations();
    format!(
        "loadgen: mysql={mysql} (x{}) {} topic={} | purchases {} pageviews {}{} changes/purchase {:.3} | traffic {} | seed {seed}{}{}{}",
        config.connections(),
        config.kafka.describe(),
        config.pageviews_topic,
        config.purchases_per_sec,
        config.pageviews_per_sec,
        if config.oscillate { " (oscillating)" } else { "" },
        rates.completions_per_purchase
            + rates.soft_deletes_per_purchase
            + rates.hard_deletes_per_purchase
            + rates.restocks_per_purchase
            + rates.vip_upgrades_per_purchase
            + rates.email_changes_per_purchase,
        shoppers::describe(&config.shoppers),
        config.duration.map(|d| format!(" duration {}", humantime::format_duration(d))).unwrap_or_default(),
        config.max_purchases.map(|n| format!(" max-purchases {n}")).unwrap_or_default(),
        config.max_pageviews.map(|n| format!(" max-pageviews {n}")).unwrap_or_default(),
    )
}

/// --dry-run: prints sample rows and events, as JSON lines, connecting nowhere.
pub fn dry_run(config: &Config, seed: u64, out: &Out) -> Result<(), Error> {
    config.validate()?;
    const SAMPLES: usize = 5;
    let mut items = seed::generate_items(seed, config.items);
    shoppers::lower_hot_stock(seed, &mut items, config.low_stock_items());
    let users = seed::generate_users(seed, config.users);
    let catalog = Catalog::assumed(&items, &users);
    let shoppers = (!config.shoppers.uniform).then(|| {
        shoppers::Shoppers::new(seed, &catalog, &config.shoppers, config.purchases_per_sec)
    });
    let mut sessions = shoppers
        .as_ref()
        .map(|s| shoppers::Sessions::new(s, config.pageviews_per_sec.per_sec()));
    say(
        out,
        &format!("{} (dry run: nothing is sent)", describe(config, seed)),
    );
    let line = |kind: &str, value: serde_json::Value| say(out, &format!("{kind} {value}"));
    for (id, it) in (1..).zip(items.iter().take(SAMPLES)) {
        line(
            "item",
            serde_json::json!({"id": id, "name": it.name, "category": it.category,
                "price": seed::cents_text(it.price_cents), "inventory": it.inventory}),
        );
    }
    for (id, u) in (1..).zip(users.iter().take(SAMPLES)) {
        line(
            "user",
            serde_json::json!({"id": id, "email": u.email, "is_vip": u.is_vip}),
        );
    }
    let now = pageviews::unix_now();
    let mut rng = stream_rng(seed, Stream::Purchases(0));
    let mut tracker = traffic::Tracker::new(&catalog, 0, 1);
    let rates = config.effective_mutations();
    let mut changes = Vec::new();
    for id in 1..=SAMPLES as u64 * 4 {
        let p = traffic::plan_next(&mut rng, &catalog, shoppers.as_ref());
        let pv = pageviews::purchase_pageview(&mut rng, p.user_id, p.item_id, now);
        tracker.purchased(id, p.status);
        for kind in traffic::changes_after_purchase(&rates, &mut rng) {
            if let Some(c) = tracker.plan(kind, &mut rng, &catalog) {
                changes.push(c);
            }
        }
        if id <= SAMPLES as u64 {
            say(out, &pageview_line(&pv));
            line(
                "purchase",
                serde_json::json!({"id": id, "user_id": p.user_id, "item_id": p.item_id,
                    "status": p.status, "quantity": p.quantity,
                    "purchase_price": seed::cents_text(p.purchase_price_cents)}),
            );
        }
    }
    // Changes are rare by design; show one of each kind the rates allow even
    // when 20 purchases did not happen to plan them.
    for kind in stats::MutationKind::ALL {
        if changes.iter().all(|c| c.kind() != kind) {
            if let Some(c) = tracker.plan(kind, &mut rng, &catalog) {
                changes.push(c);
            }
        }
    }
    for c in changes.iter().filter(|c| rate_of(&rates, c.kind()) > 0.0) {
        line("change", serde_json::json!({"sql": c.sql(), "change": c}));
    }
    let mut rng = stream_rng(seed, Stream::Pageviews);
    for _ in 0..SAMPLES {
        let pv = match (&shoppers, &mut sessions) {
            (Some(s), Some(sessions)) => sessions.next(s, &mut rng, now),
            _ => pageviews::random_pageview(&mut rng, &catalog, now),
        };
        say(out, &pageview_line(&pv));
    }
    Ok(())
}

/// `pageview key=<kafka key> <exact JSON payload>`.
fn pageview_line(pv: &pipeline::pageview::Pageview) -> String {
    let json = serde_json::to_string(pv).unwrap_or_default();
    format!("pageview key={} {json}", pv.key())
}

fn rate_of(rates: &config::MutationRates, kind: stats::MutationKind) -> f64 {
    use stats::MutationKind as K;
    match kind {
        K::Completion => rates.completions_per_purchase,
        K::SoftDelete => rates.soft_deletes_per_purchase,
        K::HardDelete => rates.hard_deletes_per_purchase,
        K::Restock => rates.restocks_per_purchase,
        K::VipUpgrade => rates.vip_upgrades_per_purchase,
        K::EmailChange => rates.email_changes_per_purchase,
    }
}

/// How long to wait for Kafka at startup and for the producer at the end.
const KAFKA_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const KAFKA_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs loadgen until a bound is reached, `duration` passes, or `shutdown` is
/// cancelled (SIGINT/SIGTERM in the binary); then flushes the producer, prints
/// the totals and returns them.
pub async fn run(config: Config, shutdown: CancellationToken, out: Out) -> Result<Totals, Error> {
    config.validate()?;
    let seed = choose_seed(&config);
    if config.dry_run {
        dry_run(&config, seed, &out)?;
        return Ok(Totals::snapshot(
            &Counters::default(),
            seed,
            None,
            Duration::ZERO,
        ));
    }
    say(&out, &describe(&config, seed));

    let opts = shop::opts(
        config.mysql_url.expose(),
        &config.database,
        config.connections(),
    )?;
    let db = ShopDb::connect(opts).await?;

    let counters = Arc::new(Counters::default());
    let sink = Arc::new(PageviewSink::new(
        &config.kafka,
        &config.pageviews_topic,
        counters.clone(),
    )?);
    let topic = TopicSpec {
        name: &config.pageviews_topic,
        partitions: config.pageviews_partitions,
        replication: config.pageviews_replication_factor,
        configs: &[],
    };
    // Probe with our own client first: it fails fast and quietly, where the
    // admin client would log every failed connection attempt.
    sink.probe(KAFKA_PROBE_TIMEOUT)
        .await
        .map_err(|cause| Error::KafkaUnreachable {
            kafka: config.kafka.bootstrap_servers.clone(),
            cause,
        })?;
    match tokio::time::timeout(KAFKA_STARTUP_TIMEOUT, ensure_topic(&config.kafka, &topic)).await {
        Ok(Ok(())) => {}
        Ok(Err(pipeline::kafka::TopicError::Unreachable { source, .. })) => {
            return Err(Error::KafkaUnreachable {
                kafka: config.kafka.bootstrap_servers.clone(),
                cause: source.to_string(),
            })
        }
        Ok(Err(e)) => return Err(Error::KafkaRefused(e.to_string())),
        Err(_) => {
            return Err(Error::KafkaUnreachable {
                kafka: config.kafka.bootstrap_servers.clone(),
                cause: format!("no answer within {KAFKA_STARTUP_TIMEOUT:?}"),
            })
        }
    }

    let (seeding, catalog) = seed::ensure_seed(
        &db,
        seed,
        config.items,
        config.users,
        config.seed_batch,
        config.reseed,
        config.low_stock_items(),
    )
    .await?;
    say(
        &out,
        &format!(
            "seed: {} items, {} users inserted; {} items, {} users reused{}",
            seeding.items_inserted,
            seeding.users_inserted,
            seeding.items_reused,
            seeding.users_reused,
            if seeding.items_reused + seeding.users_reused > 0 {
                " (--reseed to start over)"
            } else {
                ""
            }
        ),
    );
    let catalog = Arc::new(catalog);
    let shoppers = (!config.shoppers.uniform).then(|| {
        Arc::new(shoppers::Shoppers::new(
            seed,
            &catalog,
            &config.shoppers,
            config.purchases_per_sec,
        ))
    });

    let started = Instant::now();
    let stop = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    // Streams whose end ends the run: those with a bound. Without any bound the
    // run ends only by --duration or a signal.
    let bounded_purchases = config.max_purchases.is_some() && !config.purchases_per_sec.is_off();
    let bounded_pageviews = config.max_pageviews.is_some() && !config.pageviews_per_sec.is_off();
    let mut bounded_left = usize::from(bounded_purchases) + usize::from(bounded_pageviews);

    let pageview_target = Arc::new(AtomicU64::new(0));
    {
        let stream = PageviewStream {
            rate: config.pageviews_per_sec,
            oscillate: config.oscillate.then_some(config.oscillate_period),
            max: config.max_pageviews,
        };
        let (sink, catalog, target, stop) = (
            sink.clone(),
            catalog.clone(),
            pageview_target.clone(),
            stop.clone(),
        );
        let browsing = match &shoppers {
            Some(s) => pageviews::Browsing::Sessions(
                s.clone(),
                shoppers::Sessions::new(s, config.pageviews_per_sec.per_sec()),
            ),
            None => pageviews::Browsing::Uniform(catalog),
        };
        let rng = stream_rng(seed, Stream::Pageviews);
        tasks.spawn(async move {
            let r = pageviews::run_stream(stream, sink, browsing, rng, target, stop).await;
            (TaskKind::Pageviews, r)
        });
    }
    if !config.purchases_per_sec.is_off() {
        let shared = traffic::Shared {
            db: db.clone(),
            sink: sink.clone(),
            catalog: catalog.clone(),
            shoppers: shoppers.clone(),
            counters: counters.clone(),
            pacer: Arc::new(pageviews::Pacer::new(config.purchases_per_sec.per_sec())),
            rates: config.effective_mutations(),
            claimed: Arc::new(AtomicU64::new(0)),
            max_purchases: config.max_purchases,
            cancel: stop.clone(),
        };
        let workers = config.connections();
        for i in 0..workers {
            let shared = shared.clone();
            let rng = stream_rng(seed, Stream::Purchases(i as u32));
            tasks.spawn(async move {
                let r = traffic::run_worker(shared, rng, i, workers).await;
                (TaskKind::Purchases, r)
            });
        }
    }
    let mut purchase_workers_left = if config.purchases_per_sec.is_off() {
        0
    } else {
        config.connections()
    };

    let mut live = LiveStats::new(counters.clone(), config.purchases_per_sec, pageview_target);
    let mut ticker = tokio::time::interval(config.stats_interval);
    ticker.tick().await; // the first tick is immediate
    let deadline = config.duration.map(|d| tokio::time::Instant::now() + d);
    let mut failure: Option<Error> = None;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = until_deadline => break,
            _ = ticker.tick() => say(&out, &live.tick()),
            done = tasks.join_next() => {
                let Some(done) = done else { break };
                match done {
                    Ok((_, Err(e))) => { failure = Some(e); break; }
                    Err(join) => { failure = Some(Error::TaskFailed(format!("a traffic task crashed: {join}"))); break; }
                    Ok((TaskKind::Purchases, Ok(()))) => {
                        purchase_workers_left -= 1;
                        if purchase_workers_left == 0 && bounded_purchases {
                            bounded_left -= 1;
                        }
                    }
                    Ok((TaskKind::Pageviews, Ok(()))) => {
                        if bounded_pageviews {
                            bounded_left -= 1;
                        }
                    }
                }
                if (bounded_purchases || bounded_pageviews) && bounded_left == 0 {
                    break;
                }
            }
        }
    }
    stop.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Ok((_, Err(e))) = done {
            failure.get_or_insert(e);
        }
    }
    let elapsed = started.elapsed();
    let flush_started = Instant::now();
    let in_flight = sink.clone().flush(FLUSH_TIMEOUT).await;
    let flush_secs = flush_started.elapsed().as_secs_f64();
    if in_flight > 0 {
        say(
            &out,
            &format!("warning: {in_flight} pageviews still unacknowledged after {FLUSH_TIMEOUT:?}; they are counted as neither delivered nor failed"),
        );
    }
    db.disconnect().await;
    let totals = Totals {
        flush_secs,
        ..Totals::snapshot(&counters, seed, Some(seeding), elapsed)
    };
    live.publish();
    for line in totals.report() {
        say(&out, &line);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(totals),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    Purchases,
    Pageviews,
}

/// `Out` over the process's stdout.
pub fn stdout() -> Out {
    Arc::new(std::sync::Mutex::new(std::io::stdout()))
}
