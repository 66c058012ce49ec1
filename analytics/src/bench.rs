//! `analytics bench`: drain rates and query latency, printed (never asserted).
//!
//! 1. Uses the (fresh) database of `--postgres-url` and creates fresh topics.
//! 2. Produces a backlog of pageviews, drains it with an instance and reports
//!    pageviews/s (from instance start to the last commit) and the
//!    instance's peak RSS. The instance is a child process (this binary,
//!    `analytics run`, with this command line's options and the bench's
//!    topics and group), so its peak RSS is its own: this process's
//!    producer may queue hundreds of MB while it writes the backlog.
//! 3. Produces the shop seed (items, users) and purchase change events
//!    (inserts, then updates and deletes), drains them the same way, reports
//!    CDC events/s.
//! 4. Tops the purchases up to `--query-purchases` through the same fold and
//!    store code (synthetic batches, no Kafka) and times every output query
//!    (`SELECT * FROM <output>`, all rows fetched), reporting p50/p95; then
//!    what a dashboard asks of `incomplete_purchases` and `abandoned_cart`
//!    (the newest rows and the totals, migration V8), the same way.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use pipeline::kafka::{ensure_topic, TopicSpec};
use pipeline::pageview::CHANNELS;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::{Assignment, BenchArgs, Cli, Config};
use crate::decode::{Change, ItemRow, PurchaseRow, UserRow};
use crate::fixtures::{item_cells, purchase_cells, user_cells, CdcEncoder, TableSchema};
use crate::store::{self, Batch, Store};

const ITEMS: i64 = 1_000;
const USERS: i64 = 10_000;
const OUTPUTS: [&str; 15] = [
    "item_pageviews",
    "purchase_summary",
    "item_summary",
    "remaining_stock",
    "trending_items",
    "item_metadata",
    "high_value_users",
    "incomplete_purchases",
    "inactive_users_last_3_mins",
    "abandoned_cart",
    "order_trends",
    "low_stock_alerts",
    "conversion_funnel",
    "top_sellers",
    "most_viewed_products",
];

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Fixture(#[from] crate::fixtures::FixtureError),
}

fn setup_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// `run`'s settings with the bench's own topics, group and batches.
fn bench_config(config: &Config, tag: &str) -> Config {
    let mut config = config.clone();
    config.group_id = tag.to_owned();
    config.users_topic = format!("{tag}.users");
    config.items_topic = format!("{tag}.items");
    config.purchases_topic = format!("{tag}.purchases");
    config.pageviews_topic = format!("{tag}.pageviews");
    config.dead_letter_topic = format!("{tag}.dead-letters");
    config.high_value_users_topic = format!("{tag}.high-value-users");
    config.abandoned_carts_topic = format!("{tag}.abandoned-carts");
    config.assignment = Assignment::All;
    // Catch-up batches: pageview folds shrink with batch size (a batch of
    // 100,000 upserts fewer rows per record than two of 50,000), and the
    // linger is raised so that batches fill up. --batch-max-bytes stays as
    // given: the peak RSS is measured under the instance's own bound.
    config.batch_max_records = config.batch_max_records.max(100_000);
    config.batch_linger_ms = config.batch_linger_ms.max(500);
    config
}

/// Runs the benchmark and returns the printable report.
pub async fn run(config: &Config, args: &BenchArgs) -> Result<String, BenchError> {
    let tag = format!("bench_{}", Utc::now().format("%Y%m%d%H%M%S"));
    let config = bench_config(config, &tag);
    let argv: Vec<OsString> = std::env::args_os().collect();
    let instance = instance_args(&argv, &config)?;
    for (topic, partitions) in [
        (&config.users_topic, 1),
        (&config.items_topic, 1),
        (&config.purchases_topic, 3),
        (&config.pageviews_topic, 3),
    ] {
        ensure_topic(
            &config.kafka,
            &TopicSpec {
                name: topic,
                partitions,
                replication: 1,
                configs: &[],
            },
        )
        .await
        .map_err(setup_err)?;
    }
    store::migrate(
        config.postgres_url.expose(),
        config.migration_lock_timeout(),
    )
    .await?;
    // loadgen's batching (pipeline::kafka::bulk_batching), so the backlog
    // has the record batches (size, lz4) a real one would have.
    let mut producer_config = config.kafka.client_config();
    producer_config.set("partitioner", "murmur2_random");
    let producer: FutureProducer = pipeline::kafka::bulk_batching(&mut producer_config)
        .create()
        .map_err(setup_err)?;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "analytics bench ({tag}, database {}, batches of up to {} records / {} bytes / {} ms; \
         each drain runs `analytics run` as a child process)",
        config.postgres_masked(),
        config.batch_max_records,
        config.batch_max_bytes,
        config.batch_linger_ms
    );

    // Pageviews.
    let now = Utc::now().trunc_subsecs(0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let started = Instant::now();
    let mut batch = Vec::new();
    for i in 0..args.pageviews {
        let user = rng.gen_range(1..=USERS);
        let url = if rng.gen_bool(0.5) {
            format!("/products/{}", rng.gen_range(1..=ITEMS))
        } else {
            format!("/profiles/{}", rng.gen_range(1..=USERS))
        };
        let json = serde_json::json!({
            "user_id": user, "url": url, "channel": CHANNELS[(i % 5) as usize],
            // Every fifth user stopped browsing 10-30 minutes ago (inactive).
            "received_at": (now - TimeDelta::seconds(if user % 5 == 0 {
                rng.gen_range(600..1_800)
            } else {
                rng.gen_range(0..600)
            }))
            .timestamp(),
        })
        .to_string();
        batch.push((user.to_string().into_bytes(), Some(json.into_bytes())));
        if batch.len() == 50_000 {
            produce(
                &producer,
                &config.pageviews_topic,
                std::mem::take(&mut batch),
            )
            .await?;
        }
    }
    produce(&producer, &config.pageviews_topic, batch).await?;
    let _ = writeln!(
        report,
        "produced {} pageviews in {:.1?}",
        args.pageviews,
        started.elapsed()
    );
    let drained = drain(&config, &instance, 0, args.pageviews as i64).await?;
    let _ = writeln!(
        report,
        "{}",
        drained.describe("pageviews", "pageviews", 300_000)
    );
    let _ = writeln!(report, "{}", drained.describe_rss("pageviews"));
    let _ = writeln!(report, "{}", drained.describe_cpu("pageviews", "pageviews"));

    // CDC: seed + purchase change events.
    let registry = &pipeline::registry::RegistryClient::new(&config.registry)
        .map_err(crate::fixtures::FixtureError::from)?;
    let users =
        CdcEncoder::register_with(registry, TableSchema::users(&config.users_topic)).await?;
    let items =
        CdcEncoder::register_with(registry, TableSchema::items(&config.items_topic)).await?;
    let purchases =
        CdcEncoder::register_with(registry, TableSchema::purchases(&config.purchases_topic))
            .await?;
    let long_ago = now - TimeDelta::days(1);
    let mut seed = Vec::new();
    for id in 1..=ITEMS {
        let row = bench_item(id, &mut rng, long_ago);
        seed.push((
            items.key(id),
            Some(items.upsert("r", &item_cells(&row), long_ago)),
        ));
    }
    produce(&producer, &config.items_topic, seed).await?;
    let mut seed = Vec::new();
    for id in 1..=USERS {
        let row = UserRow {
            id,
            email: Some(format!("user{id}@example.com")),
            is_vip: Some(rng.gen_bool(2.0 / 11.0)),
            created_at: Some(long_ago),
            updated_at: Some(long_ago),
        };
        seed.push((
            users.key(id),
            Some(users.upsert("r", &user_cells(&row), long_ago)),
        ));
    }
    produce(&producer, &config.users_topic, seed).await?;
    let inserts = args.purchase_events * 8 / 10;
    let mut events = Vec::new();
    let mut rows = Vec::new();
    for id in 1..=inserts as i64 {
        let row = bench_purchase(id, &mut rng, now);
        events.push((
            purchases.key(id),
            Some(purchases.upsert("c", &purchase_cells(&row), now)),
        ));
        rows.push(row);
    }
    for n in 0..(args.purchase_events - inserts) {
        let pick = rng.gen_range(0..rows.len());
        let row = &mut rows[pick];
        if n % 4 == 0 {
            events.push((
                purchases.key(row.id),
                Some(purchases.delete(&purchase_cells(row), now)),
            ));
        } else {
            row.status = Some(1 - row.status.unwrap_or(1));
            events.push((
                purchases.key(row.id),
                Some(purchases.upsert("u", &purchase_cells(row), now)),
            ));
        }
    }
    let cdc_events = events.len() as i64 + ITEMS + USERS;
    for chunk in events.chunks(50_000) {
        produce(&producer, &config.purchases_topic, chunk.to_vec()).await?;
    }
    let drained = drain(&config, &instance, args.pageviews as i64, cdc_events).await?;
    let what = format!(
        "CDC events ({} purchase changes + seed)",
        args.purchase_events
    );
    let _ = writeln!(report, "{}", drained.describe(&what, "events", 30_000));
    let _ = writeln!(report, "{}", drained.describe_rss("CDC events"));
    let _ = writeln!(report, "{}", drained.describe_cpu("CDC events", "events"));

    // Top up to the query size through the fold/store path.
    let mut store_client = Store::new(
        config.postgres_url.expose(),
        "bench-topup",
        config.low_stock_threshold,
    );
    let have = inserts as i64;
    let started = Instant::now();
    let mut next = have + 1;
    while next <= args.query_purchases as i64 {
        let end = (next + 50_000).min(args.query_purchases as i64 + 1);
        let batch = Batch {
            purchases: (next..end)
                .map(|id| Change::Upsert(bench_purchase(id, &mut rng, now)))
                .collect(),
            ..Batch::default()
        };
        store_client.commit(&batch).await?;
        next = end;
    }
    let client = store_client.client().await?;
    let total: i64 = client
        .query_one("SELECT count(*) FROM purchases", &[])
        .await
        .map_err(store::StoreError::from)?
        .get(0);
    let _ = writeln!(
        report,
        "topped up to {total} purchases in {:.1?} (direct batches of 50000)",
        started.elapsed()
    );
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .map_err(store::StoreError::from)?;
    let _ = writeln!(report, "query time per output at {total} purchases ({} runs, all rows fetched; target p95 <= 20 ms):", args.query_runs);
    for output in OUTPUTS {
        let line = time_query(
            client,
            output,
            &format!("SELECT * FROM {output}"),
            args.query_runs,
        )
        .await?;
        let _ = writeln!(report, "{line}");
    }
    let _ = writeln!(
        report,
        "what the dashboard asks of them at {total} purchases ({} runs; a page of the newest {DASHBOARD_PAGE} rows, totals in one row; target p95 <= 20 ms):",
        args.query_runs
    );
    for (name, sql) in DASHBOARD_QUERIES {
        let line = time_query(client, name, sql, args.query_runs).await?;
        let _ = writeln!(report, "{line}");
    }
    Ok(report)
}

/// Rows a dashboard page shows; the dashboard crate's panels ask for as many.
const DASHBOARD_PAGE: usize = 10;

/// What a dashboard asks of the two outputs that return every incomplete
/// purchase (migration V8): the newest rows, and how many / how much.
const DASHBOARD_QUERIES: [(&str, &str); 4] = [
    (
        "incomplete_purchases_page",
        "SELECT * FROM incomplete_purchases_page(10)",
    ),
    (
        "incomplete_purchases_totals",
        "SELECT * FROM incomplete_purchases_totals",
    ),
    (
        "abandoned_cart_page",
        "SELECT * FROM abandoned_cart_page(10)",
    ),
    (
        "abandoned_cart_totals",
        "SELECT * FROM abandoned_cart_totals",
    ),
];

/// Runs `sql` `runs` times fetching every row, then as many times under
/// `EXPLAIN ANALYZE`, and returns the report line: p50/p95 as the client
/// sees it, and p95 of the execution inside the server.
async fn time_query(
    client: &tokio_postgres::Client,
    name: &str,
    sql: &str,
    runs: usize,
) -> Result<String, BenchError> {
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        rows = client
            .query(sql, &[])
            .await
            .map_err(store::StoreError::from)?
            .len();
        times.push(t.elapsed());
    }
    // The same query's execution inside the server, without sending
    // rows: tells a query that is slow from one that returns a lot.
    let mut server = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let plan = client
            .query(&format!("EXPLAIN (ANALYZE, TIMING OFF) {sql}"), &[])
            .await
            .map_err(store::StoreError::from)?;
        let ms = plan
            .iter()
            .find_map(|r| {
                r.get::<_, String>(0)
                    .trim()
                    .strip_prefix("Execution Time: ")?
                    .trim_end_matches(" ms")
                    .parse::<f64>()
                    .ok()
            })
            .ok_or_else(|| {
                setup_err(format!(
                    "EXPLAIN ANALYZE of {name} printed no \"Execution Time: N ms\" line"
                ))
            })?;
        server.push(Duration::from_secs_f64(ms / 1e3));
    }
    let pct = |times: &mut Vec<Duration>, p: f64| {
        times.sort();
        times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1]
    };
    Ok(format!(
        "  {name:<28} rows {rows:>7}  p50 {:>8.2} ms  p95 {:>8.2} ms  (in the server: p95 {:>7.2} ms)",
        pct(&mut times, 0.5).as_secs_f64() * 1e3,
        pct(&mut times, 0.95).as_secs_f64() * 1e3,
        pct(&mut server, 0.95).as_secs_f64() * 1e3
    ))
}

fn bench_item(id: i64, rng: &mut impl Rng, at: DateTime<Utc>) -> ItemRow {
    ItemRow {
        id,
        name: Some(format!("item {id}")),
        category: Some(["widgets", "gadgets", "doodads", "clearance"][rng.gen_range(0..4)].into()),
        price: Some(rng.gen_range(500..50_000)),
        inventory: Some(rng.gen_range(1_000..5_000)),
        inventory_updated_at: Some(at),
        created_at: Some(at),
        updated_at: Some(at),
    }
}

fn bench_purchase(id: i64, rng: &mut impl Rng, now: DateTime<Utc>) -> PurchaseRow {
    let quantity = rng.gen_range(1..=5);
    let created = now - TimeDelta::seconds(rng.gen_range(0..86_400));
    PurchaseRow {
        id,
        user_id: Some(rng.gen_range(1..=USERS)),
        item_id: Some(rng.gen_range(1..=ITEMS)),
        status: Some(if rng.gen_bool(0.9) { 1 } else { 0 }),
        quantity: Some(quantity),
        purchase_price: Some(rng.gen_range(500..50_000) * quantity),
        deleted: Some(false),
        created_at: Some(created),
        updated_at: Some(created),
    }
}

type Keyed = (Vec<u8>, Option<Vec<u8>>);

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    records: Vec<Keyed>,
) -> Result<(), BenchError> {
    let sends: Vec<_> = records
        .iter()
        .map(|(key, value)| {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(topic).key(key.as_slice());
            if let Some(v) = value {
                record = record.payload(v.as_slice());
            }
            producer.send(record, Duration::from_secs(120))
        })
        .collect();
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| setup_err(format!("produce to {topic}: {e}")))?;
    }
    producer.flush(Duration::from_secs(60)).map_err(setup_err)?;
    Ok(())
}

/// How a backlog drained.
#[derive(Debug)]
struct Drained {
    records: i64,
    /// From instance start (migrations, join, assignment) to the last commit.
    total: Duration,
    /// Records committed after the first batch, and the time they took.
    steady_records: i64,
    steady: Duration,
    /// The instance process's peak resident set (VmHWM), in KiB.
    peak_rss_kib: u64,
    /// The instance's CPU time (user + system) over its life up to the last
    /// commit, startup included.
    instance_cpu: Duration,
    /// What the Postgres server's processes spent meanwhile (the fold's
    /// upserts run there), when /proc shows them.
    postgres_cpu: Option<Duration>,
}

/// The issue's bound on the instance's peak RSS during a drain.
const RSS_TARGET_MB: u64 = 128;

impl Drained {
    fn describe(&self, what: &str, unit: &str, target: u64) -> String {
        let rate = |n: i64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
        format!(
            "drained {} {what} in {:.2?}: {:.0} {unit}/s including startup; \
             {:.0} {unit}/s after the first batch (target >= {target})",
            self.records,
            self.total,
            rate(self.records, self.total),
            rate(self.steady_records, self.steady),
        )
    }

    /// The drain's cost in CPU, which the broker's speed does not bound:
    /// records per CPU-second of the instance, and of the instance and
    /// Postgres together.
    fn describe_cpu(&self, what: &str, unit: &str) -> String {
        let per = |cpu: Duration| self.records as f64 / cpu.as_secs_f64().max(1e-9);
        let mut line = format!(
            "  instance CPU {:.2} s during the {what} drain: {:.0} {unit} per instance CPU-second",
            self.instance_cpu.as_secs_f64(),
            per(self.instance_cpu),
        );
        if let Some(pg) = self.postgres_cpu {
            line += &format!(
                "; Postgres CPU {:.2} s: {:.0} {unit} per CPU-second of both",
                pg.as_secs_f64(),
                per(self.instance_cpu + pg),
            );
        }
        line
    }

    fn describe_rss(&self, what: &str) -> String {
        format!(
            "  instance peak RSS {:.1} MB during the {what} drain \
             (VmHWM of the `analytics run` child process; target <= {RSS_TARGET_MB} MB)",
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

/// The command line of a drain instance: the options this bench was given
/// on its command line (`argv`; the environment is inherited), then the
/// bench's topics, group and batches, which replace them, then `run`.
/// Values go as `--name=value`, so a value starting with `-` stays a value.
fn instance_args(argv: &[OsString], config: &Config) -> Result<Vec<OsString>, BenchError> {
    use clap::parser::ValueSource;
    use clap::CommandFactory;
    let assignment = match config.assignment {
        Assignment::All => "all",
        Assignment::Group => "group",
    };
    let overrides: [(&str, String); 12] = [
        ("group-id", config.group_id.clone()),
        ("users-topic", config.users_topic.clone()),
        ("items-topic", config.items_topic.clone()),
        ("purchases-topic", config.purchases_topic.clone()),
        ("pageviews-topic", config.pageviews_topic.clone()),
        ("dead-letter-topic", config.dead_letter_topic.clone()),
        (
            "high-value-users-topic",
            config.high_value_users_topic.clone(),
        ),
        (
            "abandoned-carts-topic",
            config.abandoned_carts_topic.clone(),
        ),
        ("assignment", assignment.to_owned()),
        ("batch-max-records", config.batch_max_records.to_string()),
        ("batch-linger-ms", config.batch_linger_ms.to_string()),
        // No /metrics endpoint: it could collide with a running instance's.
        ("metrics-addr", String::new()),
    ];
    let command = Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(|e| setup_err(format!("cannot re-read the command line: {e}")))?;
    let mut args = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else {
            continue;
        };
        if matches.value_source(id) != Some(ValueSource::CommandLine)
            || overrides.iter().any(|(name, _)| *name == long)
        {
            continue;
        }
        if !arg.get_action().takes_values() {
            args.push(OsString::from(format!("--{long}")));
            continue;
        }
        let values = matches
            .try_get_raw(id)
            .map_err(|e| setup_err(format!("cannot re-read --{long}: {e}")))?;
        for value in values.into_iter().flatten() {
            let mut pair = OsString::from(format!("--{long}="));
            pair.push(value);
            args.push(pair);
        }
    }
    for (name, value) in overrides {
        args.push(OsString::from(format!("--{name}={value}")));
    }
    args.push(OsString::from("run"));
    Ok(args)
}

/// The peak resident set (`VmHWM`, KiB) in a `/proc/<pid>/status` text.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Runs an instance (a child process: this binary with `args`) until the
/// stored offsets sum to `already + records`, reads its peak RSS, and stops
/// it with SIGTERM as a supervisor would.
async fn drain(
    config: &Config,
    args: &[OsString],
    already: i64,
    records: i64,
) -> Result<Drained, BenchError> {
    let total = already + records;
    let exe = std::env::current_exe().map_err(setup_err)?;
    let postgres_before = postgres_cpu();
    let started = Instant::now();
    // Its log goes to this process's stderr; its stdout (nothing) away
    // from the report.
    let mut child = tokio::process::Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| setup_err(format!("cannot start {}: {e}", exe.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| setup_err("the analytics instance exited at once"))?;
    let client = store::connect(config.postgres_url.expose()).await?;
    let mut first: Option<(Instant, i64)> = None;
    let took = loop {
        let done: i64 = client
            .query_one(
                "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets WHERE group_id = $1",
                &[&config.group_id],
            )
            .await
            .map_err(store::StoreError::from)?
            .get(0);
        if done >= total {
            break started.elapsed();
        }
        if first.is_none() && done > already {
            first = Some((Instant::now(), done));
        }
        if let Some(status) = child.try_wait().map_err(setup_err)? {
            return Err(setup_err(format!(
                "the analytics instance stopped during the drain ({status}); its log is above"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let end = Instant::now();
    // VmHWM only grows: read now, it covers the whole drain.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(setup_err)?;
    let peak_rss_kib = vm_hwm_kib(&status)
        .ok_or_else(|| setup_err(format!("no VmHWM line in /proc/{pid}/status")))?;
    let instance_cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| cpu_of_stat(&stat))
        .ok_or_else(|| setup_err(format!("no CPU times in /proc/{pid}/stat")))?;
    let postgres_cpu = postgres_before
        .zip(postgres_cpu())
        .map(|(before, after)| after.saturating_sub(before));
    let signalled = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .map_err(|e| setup_err(format!("kill -TERM {pid}: {e}")))?;
    if !signalled.success() {
        return Err(setup_err(format!("kill -TERM {pid}: {signalled}")));
    }
    match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => {
            return Err(setup_err(format!(
                "the analytics instance failed on SIGTERM ({status}); its log is above"
            )))
        }
        Ok(Err(e)) => return Err(setup_err(e)),
        Err(_) => {
            return Err(setup_err(
                "the analytics instance did not stop within 60 s of SIGTERM",
            ))
        }
    }
    let (steady_from, at_first) = first.unwrap_or((started, already));
    Ok(Drained {
        records,
        total: took,
        steady_records: total - at_first,
        steady: end.duration_since(steady_from),
        peak_rss_kib,
        instance_cpu,
        postgres_cpu,
    })
}

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux
/// everywhere this runs; procfs does not say).
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time in a `/proc/<pid>/stat` line.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    // The command name may hold spaces: fields start after its last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// CPU time of the processes named `postgres` that /proc shows now (a
/// local server: the stack's, or one in the same container). `None` when
/// there are none (a remote server).
fn postgres_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let is_postgres = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .is_some_and(|(comm, _)| comm == "postgres");
        if let (true, Some(cpu)) = (is_postgres, cpu_of_stat(&stat)) {
            total += cpu;
            found = true;
        }
    }
    found.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        // A command name with a space and a ')' of its own.
        let stat = "4242 (analytics (x) y) S 1 4242 4242 0 -1 4194560 2540 0 0 0 \
                    250 37 0 0 20 0 9 0 1000 900000000 24000 18446744073709551615";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_millis(2870)));
        assert_eq!(cpu_of_stat("4242 (cut short) S 1"), None);
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn an_instance_gets_the_benchs_options_and_its_topics() {
        let given = argv(&[
            "analytics",
            "--postgres-url",
            "postgres://u:pw@db:5432/bench",
            "--kafka-bootstrap-servers",
            "k1:9092,k2:9092",
            "--kafka-sasl-password=-starts-with-a-dash",
            "--batch-max-bytes",
            "2097152",
            "--batch-max-records",
            "7",
            "--group-id",
            "mine",
            "--metrics-addr",
            "127.0.0.1:9999",
            "bench",
            "--pageviews",
            "5",
        ]);
        let cli = Cli::parse_from(&given);
        let config = bench_config(&cli.config, "bench_1");
        let args = instance_args(&given, &config).expect("args");
        let mut child_argv = vec![OsString::from("analytics")];
        child_argv.extend(args.iter().cloned());
        let child = Cli::try_parse_from(&child_argv).expect("the instance's command line parses");
        assert!(matches!(child.command, Some(crate::config::Command::Run)));
        let got = child.config;
        let mut want = config.clone();
        want.telemetry.metrics_addr = String::new();
        assert_eq!(got.describe(), want.describe());
        assert_eq!(got.postgres_url.expose(), "postgres://u:pw@db:5432/bench");
        assert_eq!(
            got.kafka
                .sasl_password
                .as_ref()
                .map(|p| p.expose().to_owned()),
            Some("-starts-with-a-dash".to_owned())
        );
        assert_eq!(got.group_id, "bench_1");
        assert_eq!(got.pageviews_topic, "bench_1.pageviews");
        assert_eq!(got.assignment, Assignment::All);
        assert_eq!(got.batch_max_records, 100_000);
        assert_eq!(got.batch_max_bytes, 2_097_152);
        assert_eq!(got.telemetry.metrics_addr, "");
        // The bench's own options stay with the bench.
        assert!(!args
            .iter()
            .any(|a| a.to_string_lossy().contains("pageviews=5")));
    }

    #[test]
    fn the_peak_rss_is_read_from_proc_status() {
        let status =
            "Name:\tanalytics\nVmPeak:\t  900000 kB\nVmHWM:\t   98304 kB\nVmRSS:\t   90000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(98_304));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").expect("proc");
        assert!(vm_hwm_kib(&own).is_some_and(|kib| kib > 0));
    }
}
