//! `analytics bench`: drain rates and query latency, printed (never asserted).
//!
//! 1. Uses the (fresh) database of `--postgres-url` and creates fresh topics.
//! 2. Produces a backlog of pageviews, drains it with an in-process instance
//!    and reports pageviews/s (from instance start to the last commit).
//! 3. Produces the shop seed (items, users) and purchase change events
//!    (inserts, then updates and deletes), drains them, reports CDC events/s.
//! 4. Tops the purchases up to `--query-purchases` through the same fold and
//!    store code (synthetic batches, no Kafka) and times every output query
//!    (`SELECT * FROM <output>`, all rows fetched), reporting p50/p95; then
//!    what a dashboard asks of `incomplete_purchases` and `abandoned_cart`
//!    (the newest rows and the totals, migration V8), the same way.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use pipeline::kafka::{ensure_topic, TopicSpec};
use pipeline::pageview::CHANNELS;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::{Assignment, BenchArgs, Config};
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

/// Runs the benchmark and returns the printable report.
pub async fn run(config: &Config, args: &BenchArgs) -> Result<String, BenchError> {
    let tag = format!("bench_{}", Utc::now().format("%Y%m%d%H%M%S"));
    let mut config = config.clone();
    config.group_id = tag.clone();
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
    // linger is raised so that batches fill up.
    config.batch_max_records = config.batch_max_records.max(100_000);
    config.batch_linger_ms = config.batch_linger_ms.max(500);
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
    store::migrate(config.postgres_url.expose()).await?;
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
        "analytics bench ({tag}, database {}, batches of up to {} records / {} ms)",
        config.postgres_masked(),
        config.batch_max_records,
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
    let drained = drain(&config, 0, args.pageviews as i64).await?;
    let _ = writeln!(
        report,
        "{}",
        drained.describe("pageviews", "pageviews", 200_000)
    );

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
    let drained = drain(&config, args.pageviews as i64, cdc_events).await?;
    let what = format!(
        "CDC events ({} purchase changes + seed)",
        args.purchase_events
    );
    let _ = writeln!(report, "{}", drained.describe(&what, "events", 30_000));

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
}

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
}

/// Runs an instance until the stored offsets sum to `already + records`.
async fn drain(config: &Config, already: i64, records: i64) -> Result<Drained, BenchError> {
    let total = already + records;
    let shutdown = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let task = tokio::spawn(crate::run(
        config.clone(),
        pipeline::telemetry::Health::default(),
        shutdown.clone(),
    ));
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
        if task.is_finished() {
            return Err(setup_err("the analytics instance stopped during the drain"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let end = Instant::now();
    shutdown.store(true, Ordering::SeqCst);
    task.await
        .map_err(setup_err)?
        .map_err(|e| setup_err(format!("analytics: {e}")))?;
    let (steady_from, at_first) = first.unwrap_or((started, already));
    Ok(Drained {
        records,
        total: took,
        steady_records: total - at_first,
        steady: end.duration_since(steady_from),
    })
}
