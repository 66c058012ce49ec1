//! What the live tests share: a fresh database and topics per test, Debezium
//! fixtures registered in the stack's registry, a producer that remembers the
//! offsets it wrote, a shadow model of the fed sequence (ground truth), and
//! the ground-truth queries of every output.
#![allow(dead_code)] // each test binary uses part of the harness

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use analytics::config::{Cli, Config};
use analytics::decode::{ItemRow, PageviewEvent, PurchaseRow, UserRow};
use analytics::fixtures::{item_cells, purchase_cells, user_cells, CdcEncoder, TableSchema};
use chrono::{DateTime, Utc};
use clap::Parser;
use pipeline::kafka::{ensure_topic, TopicSpec};
use pipeline::testing::{unique_name, wait_until, Stack};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio_postgres::Client;

pub const PARTITIONS: i32 = 3;
pub const LOW_STOCK: i64 = 60;

#[derive(Debug, Clone)]
pub struct Topics {
    pub users: String,
    pub items: String,
    pub purchases: String,
    pub pageviews: String,
    pub dead_letters: String,
    /// The pushes' topics (analytics/src/push.rs), unique like the inputs.
    pub high_value_users: String,
    pub abandoned_carts: String,
}

/// A produced record: (topic, key, value).
pub type Produced = (String, Option<Vec<u8>>, Option<Vec<u8>>);

pub struct Env {
    pub stack: Stack,
    pub postgres_url: String,
    pub topics: Topics,
    pub group: String,
    pub producer: FutureProducer,
    pub users: CdcEncoder,
    pub items: CdcEncoder,
    pub purchases: CdcEncoder,
    /// Next offset per partition after everything produced so far.
    pub produced: BTreeMap<(String, i32), i64>,
    /// Every record produced, in order: (topic, key, value).
    pub log: Vec<Produced>,
    pub truth: Truth,
}

/// Creates the four input topics (tansu has no auto-create).
pub async fn create_topics(stack: &Stack, topics: &Topics) {
    for t in [
        &topics.users,
        &topics.items,
        &topics.purchases,
        &topics.pageviews,
    ] {
        ensure_topic(
            &stack.kafka(),
            &TopicSpec {
                name: t,
                partitions: PARTITIONS,
                replication: 1,
                configs: &[],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create topic {t}: {e}"));
    }
}

/// The four input topics with one partition each: what cdc creates
/// (`topic.creation.default.partitions=1`), so a truncate is ordered with
/// every change of its table.
pub async fn create_single_partition_topics(stack: &Stack, topics: &Topics) {
    for t in [
        &topics.users,
        &topics.items,
        &topics.purchases,
        &topics.pageviews,
    ] {
        ensure_topic(
            &stack.kafka(),
            &TopicSpec {
                name: t,
                partitions: 1,
                replication: 1,
                configs: &[],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create topic {t}: {e}"));
    }
}

/// A fresh database, unique topic names (not created yet: see
/// [`create_topics`]) and registered schemas.
pub async fn setup(stack: Stack) -> Env {
    pipeline::telemetry::init_tracing(&pipeline::telemetry::TelemetryArgs {
        metrics_addr: String::new(),
        log_format: "text".into(),
    });
    let postgres_url = stack.fresh_postgres_database().await;
    let topics = Topics {
        users: unique_name("users"),
        items: unique_name("items"),
        purchases: unique_name("purchases"),
        pageviews: unique_name("pageviews"),
        dead_letters: unique_name("dlq"),
        high_value_users: unique_name("high-value-users"),
        abandoned_carts: unique_name("abandoned-carts"),
    };
    let registry = stack.schema_registry_url.clone();
    let users = CdcEncoder::register(&registry, TableSchema::users(&topics.users))
        .await
        .unwrap();
    let items = CdcEncoder::register(&registry, TableSchema::items(&topics.items))
        .await
        .unwrap();
    let purchases = CdcEncoder::register(&registry, TableSchema::purchases(&topics.purchases))
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap_servers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    Env {
        group: unique_name("group"),
        stack,
        postgres_url,
        topics,
        producer,
        users,
        items,
        purchases,
        produced: BTreeMap::new(),
        log: Vec::new(),
        truth: Truth::default(),
    }
}

impl Env {
    /// Settings for an analytics instance on this test's database and topics.
    pub fn args(&self) -> Vec<String> {
        [
            "analytics",
            "--postgres-url",
            &self.postgres_url,
            "--kafka-bootstrap-servers",
            &self.stack.kafka_bootstrap_servers,
            "--schema-registry-url",
            &self.stack.schema_registry_url,
            "--metrics-addr",
            "",
            "--group-id",
            &self.group,
            "--users-topic",
            &self.topics.users,
            "--items-topic",
            &self.topics.items,
            "--purchases-topic",
            &self.topics.purchases,
            "--pageviews-topic",
            &self.topics.pageviews,
            "--dead-letter-topic",
            &self.topics.dead_letters,
            "--high-value-users-topic",
            &self.topics.high_value_users,
            "--abandoned-carts-topic",
            &self.topics.abandoned_carts,
            "--batch-max-records",
            "200",
            "--batch-linger-ms",
            "50",
            "--low-stock-threshold",
            &LOW_STOCK.to_string(),
            "--topic-refresh-ms",
            "500",
            "--session-timeout-ms",
            "6000",
            // The stack's memory broker needs the workaround; on the
            // persistent one (SHOP_TEST_BROKER=persistent) the default path,
            // without it, runs.
            "--seek-back-records",
            &self.stack.analytics_seek_back_records().to_string(),
            // Both of the stack's brokers hold a fetch until this runs out.
            "--fetch-wait-max-ms",
            "25",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// [`Env::args`] with `extra` (`--flag value` pairs) overriding defaults.
    pub fn config_args(&self, extra: &[&str]) -> Vec<String> {
        let base = self.args();
        let mut args = vec![base[0].clone()];
        for pair in base[1..].chunks(2) {
            if !extra.contains(&pair[0].as_str()) {
                args.extend(pair.iter().cloned());
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn config(&self, extra: &[&str]) -> Config {
        let cli = Cli::parse_from(self.config_args(extra));
        cli.config.validate().unwrap();
        cli.config
    }

    /// Starts an in-process instance; set the flag to stop it.
    pub fn start(&self, extra: &[&str]) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
        let config = self.config(extra);
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = shutdown.clone();
        let task = tokio::spawn(async move {
            analytics::run(config, pipeline::telemetry::Health::default(), flag)
                .await
                .expect("analytics run");
        });
        (shutdown, task)
    }

    pub async fn send(&mut self, topic: &str, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
        let next = self
            .produced
            .entry((topic.to_owned(), delivery.partition))
            .or_default();
        *next = (*next).max(delivery.offset + 1);
        self.log.push((
            topic.to_owned(),
            key.map(<[u8]>::to_vec),
            payload.map(<[u8]>::to_vec),
        ));
    }

    /// Re-sends every record from `mark` on, in order: what a cdc restart
    /// re-delivers. The final state per key is unchanged, so is the truth.
    pub async fn resend_from(&mut self, mark: usize) {
        let suffix = self.log[mark..].to_vec();
        for (topic, key, value) in suffix {
            self.send(&topic, key.as_deref(), value.as_deref()).await;
        }
    }

    pub async fn upsert_user(&mut self, row: UserRow, ts: DateTime<Utc>) {
        let (k, v) = (
            self.users.key(row.id),
            self.users.upsert("c", &user_cells(&row), ts),
        );
        self.truth.users.insert(row.id, Some(row));
        let topic = self.topics.users.clone();
        self.send(&topic, Some(&k), Some(&v)).await;
    }

    pub async fn upsert_item(&mut self, row: ItemRow, ts: DateTime<Utc>) {
        let (k, v) = (
            self.items.key(row.id),
            self.items.upsert("u", &item_cells(&row), ts),
        );
        self.truth.items.insert(row.id, Some(row));
        let topic = self.topics.items.clone();
        self.send(&topic, Some(&k), Some(&v)).await;
    }

    /// Produces a purchase insert/update and returns the encoded record so
    /// tests can re-send it as a duplicate.
    pub async fn upsert_purchase(
        &mut self,
        row: PurchaseRow,
        ts: DateTime<Utc>,
    ) -> (Vec<u8>, Vec<u8>) {
        let (k, v) = (
            self.purchases.key(row.id),
            self.purchases.upsert("c", &purchase_cells(&row), ts),
        );
        self.truth.purchases.insert(row.id, Some(row));
        let topic = self.topics.purchases.clone();
        self.send(&topic, Some(&k), Some(&v)).await;
        (k, v)
    }

    /// A Debezium delete (`d` with `before`), then its tombstone.
    pub async fn delete_purchase(&mut self, row: &PurchaseRow, ts: DateTime<Utc>) {
        let (k, v) = (
            self.purchases.key(row.id),
            self.purchases.delete(&purchase_cells(row), ts),
        );
        self.truth.purchases.insert(row.id, None);
        let topic = self.topics.purchases.clone();
        self.send(&topic, Some(&k), Some(&v)).await;
        self.send(&topic, Some(&k), None).await;
    }

    pub async fn delete_user(&mut self, row: &UserRow, ts: DateTime<Utc>) {
        let (k, v) = (
            self.users.key(row.id),
            self.users.delete(&user_cells(row), ts),
        );
        self.truth.users.insert(row.id, None);
        let topic = self.topics.users.clone();
        self.send(&topic, Some(&k), Some(&v)).await;
        self.send(&topic, Some(&k), None).await;
    }

    /// Debezium's truncate event of `table` ("users", "items" or
    /// "purchases"): null key, `op` "t"; the table is empty afterwards.
    /// Returns the record's offset (the topic must have one partition, as
    /// cdc creates them: a truncate is ordered only within its partition).
    pub async fn truncate(&mut self, table: &str, ts: DateTime<Utc>) -> i64 {
        let (topic, value) = match table {
            "users" => {
                self.truth.users.clear();
                (self.topics.users.clone(), self.users.truncate(ts))
            }
            "items" => {
                self.truth.items.clear();
                (self.topics.items.clone(), self.items.truncate(ts))
            }
            "purchases" => {
                self.truth.purchases.clear();
                (self.topics.purchases.clone(), self.purchases.truncate(ts))
            }
            other => panic!("no table {other}"),
        };
        let offset = self.produced.get(&(topic.clone(), 0)).copied().unwrap_or(0);
        self.send(&topic, None, Some(&value)).await;
        offset
    }

    pub async fn pageview(&mut self, mut pv: PageviewEvent) {
        // received_at travels as Unix seconds.
        pv.received_at = DateTime::from_timestamp(pv.received_at.timestamp(), 0).unwrap();
        // A page that is not a product is the next user's profile.
        pv.profile = pv.product.is_none().then_some(pv.user_id + 1);
        let url = match (pv.product, pv.profile) {
            (Some(item), _) => format!("/products/{item}"),
            (None, profile) => format!("/profiles/{}", profile.unwrap_or_default()),
        };
        let json = serde_json::json!({
            "user_id": pv.user_id, "url": url, "channel": pv.channel,
            "received_at": pv.received_at.timestamp(),
        })
        .to_string();
        let key = pv.user_id.to_string();
        self.truth.pageviews.push(pv);
        let topic = self.topics.pageviews.clone();
        self.send(&topic, Some(key.as_bytes()), Some(json.as_bytes()))
            .await;
    }

    pub async fn postgres(&self) -> Client {
        analytics::store::connect(&self.postgres_url).await.unwrap()
    }

    /// Waits until the stored offsets cover everything produced.
    pub async fn wait_caught_up(&self, timeout: Duration) {
        let client = self.postgres().await;
        let want = self.produced.clone();
        let group = self.group.clone();
        wait_until(timeout, "analytics to commit every produced offset", || {
            let (client, want, group) = (&client, &want, &group);
            async move {
                let rows = client
                    .query(
                        "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1",
                        &[group],
                    )
                    .await
                    .ok()?;
                let got: HashMap<(String, i32), i64> = rows
                    .iter()
                    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                    .collect();
                want.iter()
                    .all(|(k, v)| got.get(k) == Some(v))
                    .then_some(())
            }
        })
        .await;
    }
}

/// The fed sequence's final state: what MySQL holds, and every pageview.
#[derive(Debug, Default, Clone)]
pub struct Truth {
    pub users: BTreeMap<i64, Option<UserRow>>,
    pub items: BTreeMap<i64, Option<ItemRow>>,
    pub purchases: BTreeMap<i64, Option<PurchaseRow>>,
    pub pageviews: Vec<PageviewEvent>,
}

fn cents(c: Option<i64>) -> Option<String> {
    c.map(analytics::decode::cents_text)
}

impl Truth {
    /// Loads the raw data into `raw_*` tables of the test database.
    pub async fn load(&self, client: &Client) {
        client
            .batch_execute(
                "DROP TABLE IF EXISTS raw_users, raw_items, raw_purchases, raw_pageviews;
                 CREATE TABLE raw_users (id bigint, email text, is_vip boolean);
                 CREATE TABLE raw_items (id bigint, name text, category text, inventory bigint,
                                         inventory_updated_at timestamptz);
                 CREATE TABLE raw_purchases (id bigint, user_id bigint, item_id bigint, status int,
                                             quantity bigint, purchase_price numeric,
                                             created_at timestamptz, updated_at timestamptz);
                 CREATE TABLE raw_pageviews (user_id bigint, product bigint, channel text,
                                             received_at timestamptz);",
            )
            .await
            .unwrap();
        for u in self.users.values().flatten() {
            client
                .execute(
                    "INSERT INTO raw_users VALUES ($1, $2, $3)",
                    &[&u.id, &u.email, &u.is_vip],
                )
                .await
                .unwrap();
        }
        for i in self.items.values().flatten() {
            client
                .execute(
                    "INSERT INTO raw_items VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &i.id,
                        &i.name,
                        &i.category,
                        &i.inventory,
                        &i.inventory_updated_at,
                    ],
                )
                .await
                .unwrap();
        }
        for p in self.purchases.values().flatten() {
            client
                .execute(
                    "INSERT INTO raw_purchases VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7, $8)",
                    &[
                        &p.id,
                        &p.user_id,
                        &p.item_id,
                        &p.status,
                        &p.quantity,
                        &cents(p.purchase_price),
                        &p.created_at,
                        &p.updated_at,
                    ],
                )
                .await
                .unwrap();
        }
        for pv in &self.pageviews {
            client
                .execute(
                    "INSERT INTO raw_pageviews VALUES ($1, $2, $3, $4)",
                    &[&pv.user_id, &pv.product, &pv.channel, &pv.received_at],
                )
                .await
                .unwrap();
        }
    }
}

/// (output, the maintained answer, the same question over raw data).
pub fn ground_truth_queries() -> Vec<(&'static str, String, String)> {
    let ps = "(SELECT item_id, sum(purchase_price) AS revenue, count(id) AS orders,
                      sum(quantity) AS items_sold
               FROM raw_purchases WHERE item_id IS NOT NULL GROUP BY item_id)";
    let pv = "(SELECT product AS item_id, count(*) AS pageviews FROM raw_pageviews
               WHERE product IS NOT NULL GROUP BY product)";
    let rs = "(SELECT i.id AS item_id, i.inventory - COALESCE((SELECT sum(p.quantity) FROM raw_purchases p
                 WHERE p.item_id = i.id AND p.created_at > i.inventory_updated_at), 0) AS remaining_stock
               FROM raw_items i)";
    let ti = format!(
        "(SELECT p1.item_id, (SELECT count(*) FROM {ps} p2 WHERE p2.items_sold > p1.items_sold) AS trend_rank
          FROM {ps} p1)"
    );
    let ip = "(SELECT u.id AS user_id, u.email, u.is_vip, p.item_id, p.status, p.quantity,
                      p.purchase_price, p.created_at, p.updated_at
               FROM raw_users u JOIN raw_purchases p ON p.user_id = u.id WHERE p.status = 0)";
    let inactive = "(SELECT user_id, date_trunc('minute', max(received_at)) AS visited_at_minute
                     FROM raw_pageviews GROUP BY user_id
                     HAVING max(received_at) <= now() - interval '3 minutes')";
    vec![
        (
            "item_pageviews",
            "SELECT item_id, channel, pageviews FROM item_pageviews".into(),
            "SELECT product, channel, count(*) FROM raw_pageviews WHERE product IS NOT NULL GROUP BY 1, 2"
                .into(),
        ),
        (
            "purchase_summary",
            "SELECT item_id, revenue, orders, items_sold FROM purchase_summary".into(),
            format!("SELECT * FROM {ps} x"),
        ),
        (
            "item_summary",
            "SELECT item_name, item_category, items_sold, orders, revenue, pageviews, conversion_rate, item_id
             FROM item_summary"
                .into(),
            format!(
                "SELECT i.name, i.category, ps.items_sold, ps.orders, ps.revenue, pv.pageviews,
                        ps.orders::float8 / pv.pageviews, i.id
                 FROM raw_items i JOIN {ps} ps ON ps.item_id = i.id JOIN {pv} pv ON pv.item_id = i.id"
            ),
        ),
        (
            "remaining_stock",
            "SELECT item_id, remaining_stock FROM remaining_stock".into(),
            format!("SELECT * FROM {rs} x"),
        ),
        (
            "trending_items",
            "SELECT item_id, trend_rank FROM trending_items".into(),
            format!("SELECT * FROM {ti} x"),
        ),
        (
            "item_metadata",
            "SELECT id, remaining_stock, trend_rank FROM item_metadata".into(),
            format!("SELECT rs.item_id, rs.remaining_stock, ti.trend_rank FROM {rs} rs JOIN {ti} ti ON ti.item_id = rs.item_id"),
        ),
        (
            "high_value_users",
            "SELECT id, email, lifetime_value, purchases FROM high_value_users".into(),
            "SELECT u.id, u.email, sum(p.purchase_price), count(*) FROM raw_users u
             JOIN raw_purchases p ON p.user_id = u.id GROUP BY 1, 2 HAVING sum(p.purchase_price) > 10000"
                .into(),
        ),
        (
            "incomplete_purchases",
            "SELECT * FROM incomplete_purchases".into(),
            format!("SELECT * FROM {ip} x"),
        ),
        (
            "inactive_users_last_3_mins",
            "SELECT user_id, visited_at_minute FROM inactive_users_last_3_mins".into(),
            format!("SELECT * FROM {inactive} x"),
        ),
        (
            "abandoned_cart",
            "SELECT user_id, email, item_id, purchase_price, status FROM abandoned_cart".into(),
            format!(
                "SELECT ip.user_id, ip.email, ip.item_id, ip.purchase_price, ip.status FROM {ip} ip
                 JOIN {inactive} iu ON iu.user_id = ip.user_id GROUP BY 1, 2, 3, 4, 5"
            ),
        ),
        // What the dashboard asks of the two (migration V8): pages of the
        // newest 5 rows (a total order: ties end on the purchase id) and
        // totals, from the maintained per-user incomplete counts.
        (
            "incomplete_purchases_page",
            "SELECT * FROM incomplete_purchases_page(5)".into(),
            "SELECT p.id, u.id, u.email, u.is_vip, p.item_id, p.status, p.quantity, p.purchase_price,
                    p.created_at, p.updated_at
             FROM raw_users u JOIN raw_purchases p ON p.user_id = u.id WHERE p.status = 0
             ORDER BY p.created_at DESC NULLS LAST, p.id DESC LIMIT 5"
                .into(),
        ),
        (
            "incomplete_purchases_totals",
            "SELECT purchases, users, value FROM incomplete_purchases_totals".into(),
            format!(
                "SELECT count(*), count(DISTINCT ip.user_id), COALESCE(sum(ip.purchase_price), 0)
                 FROM {ip} ip"
            ),
        ),
        (
            "abandoned_cart_page",
            "SELECT * FROM abandoned_cart_page(5)".into(),
            "WITH last AS (SELECT user_id, max(received_at) AS at FROM raw_pageviews GROUP BY user_id
                           HAVING max(received_at) <= now() - interval '3 minutes')
             SELECT p.id, u.id, u.email, p.item_id, p.purchase_price, p.status, p.quantity,
                    p.created_at, l.at + interval '3 minutes'
             FROM raw_users u JOIN raw_purchases p ON p.user_id = u.id JOIN last l ON l.user_id = u.id
             WHERE p.status = 0
             ORDER BY l.at DESC, u.id DESC, p.created_at DESC NULLS LAST, p.id DESC LIMIT 5"
                .into(),
        ),
        (
            "abandoned_cart_totals",
            "SELECT carts, users, value FROM abandoned_cart_totals".into(),
            format!(
                "SELECT count(*), count(DISTINCT ip.user_id), COALESCE(sum(ip.purchase_price), 0)
                 FROM {ip} ip JOIN {inactive} iu ON iu.user_id = ip.user_id"
            ),
        ),
        (
            "order_trends",
            "SELECT minute, orders, revenue, items_sold FROM order_trends".into(),
            "SELECT date_trunc('minute', created_at), count(*), sum(purchase_price), sum(quantity)
             FROM raw_purchases WHERE created_at IS NOT NULL GROUP BY 1"
                .into(),
        ),
        (
            "low_stock_alerts",
            "SELECT item_id, item_name, remaining_stock, threshold FROM low_stock_alerts WHERE fired_at IS NOT NULL"
                .into(),
            format!(
                "SELECT i.id, i.name, rs.remaining_stock, {LOW_STOCK}::bigint FROM raw_items i
                 JOIN {rs} rs ON rs.item_id = i.id WHERE rs.remaining_stock < {LOW_STOCK}"
            ),
        ),
        (
            "conversion_funnel",
            "SELECT channel, visitors, product_viewers, buyers, pageviews, product_pageviews, conversion_rate
             FROM conversion_funnel"
                .into(),
            "WITH uc AS (SELECT user_id, channel, count(*) AS pv,
                                count(*) FILTER (WHERE product IS NOT NULL) AS ppv
                         FROM raw_pageviews GROUP BY 1, 2),
                  buyers AS (SELECT DISTINCT user_id FROM raw_purchases WHERE status <> 0)
             SELECT channel, count(*), count(*) FILTER (WHERE ppv > 0),
                    count(*) FILTER (WHERE ppv > 0 AND b.user_id IS NOT NULL), sum(pv), sum(ppv),
                    (count(*) FILTER (WHERE ppv > 0 AND b.user_id IS NOT NULL))::float8 / count(*)
             FROM uc LEFT JOIN buyers b USING (user_id) GROUP BY channel"
                .into(),
        ),
        (
            "top_sellers",
            "SELECT item_id, item_name, item_category, items_sold, orders, revenue, sales_rank FROM top_sellers"
                .into(),
            format!(
                "SELECT ps.item_id, i.name, i.category, ps.items_sold, ps.orders, ps.revenue,
                        rank() OVER (ORDER BY ps.items_sold DESC)
                 FROM {ps} ps LEFT JOIN raw_items i ON i.id = ps.item_id"
            ),
        ),
        (
            "most_viewed_products",
            "SELECT item_id, item_name, item_category, pageviews, view_rank FROM most_viewed_products".into(),
            format!(
                "SELECT pv.item_id, i.name, i.category, pv.pageviews, rank() OVER (ORDER BY pv.pageviews DESC)
                 FROM {pv} pv LEFT JOIN raw_items i ON i.id = pv.item_id"
            ),
        ),
    ]
}

/// Asserts every output equals its question computed over the raw data, and
/// that the checked outputs are not trivially empty where the data says
/// otherwise. Returns the row count of each output.
pub async fn assert_outputs_match(client: &Client, truth: &Truth) -> BTreeMap<&'static str, i64> {
    truth.load(client).await;
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, maintained, expected) in ground_truth_queries() {
        let diff = format!(
            "SELECT 'missing' AS side, t::text FROM (({expected}) EXCEPT ALL ({maintained})) t
             UNION ALL
             SELECT 'unexpected', m::text FROM (({maintained}) EXCEPT ALL ({expected})) m
             LIMIT 20"
        );
        let rows = client
            .query(&diff, &[])
            .await
            .unwrap_or_else(|e| panic!("{name}: comparison query failed: {e}"));
        if !rows.is_empty() {
            let lines: Vec<String> = rows
                .iter()
                .map(|r| format!("  {} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect();
            failures.push(format!(
                "{name} differs from ground truth:\n{}",
                lines.join("\n")
            ));
        }
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM ({maintained}) x"), &[])
            .await
            .unwrap()
            .get(0);
        counts.insert(name, n);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    counts
}
