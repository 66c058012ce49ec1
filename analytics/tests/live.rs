//! Live tests against the local stack (`make stack-up`): each test gets a fresh
//! Postgres database, unique topics and its own consumer group.

mod harness;

use std::sync::atomic::Ordering;
use std::time::Duration;

use analytics::decode::{ItemRow, PageviewEvent, PurchaseRow, UserRow};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use harness::{assert_outputs_match, create_topics, setup, Env};
use pipeline::pageview::CHANNELS;
use pipeline::testing::{stack, wait_until};

const CATCH_UP: Duration = Duration::from_secs(120);

/// Now, at the seconds precision of the shop's TIMESTAMP/DATETIME columns.
fn now_s() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn user(id: i64, now: DateTime<Utc>) -> UserRow {
    UserRow {
        id,
        email: Some(format!("user{id}@example.com")),
        is_vip: Some(id % 3 == 0),
        created_at: Some(now - TimeDelta::days(3)),
        updated_at: Some(now - TimeDelta::days(3)),
    }
}

fn item(id: i64, name: &str, price: i64, inventory: i64, restocked: DateTime<Utc>) -> ItemRow {
    ItemRow {
        id,
        name: Some(name.into()),
        category: Some(["widgets", "gadgets", "doodads", "clearance"][id as usize % 4].into()),
        price: Some(price),
        inventory: Some(inventory),
        inventory_updated_at: Some(restocked),
        created_at: Some(restocked),
        updated_at: Some(restocked),
    }
}

/// The known sequence: inserts, updates, deletes, tombstones, restocks,
/// duplicates (a re-sent suffix, as after a cdc restart) and pageviews in and
/// out of the 3-minute window, plus a few records that must be dead-lettered.
async fn feed_known_sequence(env: &mut Env) {
    let now = now_s();
    let base = now - TimeDelta::minutes(30);
    let ts = |s: i64| base + TimeDelta::seconds(s);
    let long_ago = base - TimeDelta::hours(1);
    let mut items = vec![
        item(1, "red widget", 1_999, 100, long_ago),
        item(2, "blue gadget", 50_000, 80, long_ago),
        item(3, "green doodad", 1_250, 500, long_ago),
        // Two distinct items sharing a name: item_summary must keep them apart.
        item(4, "same name", 700, 70, long_ago),
        item(5, "same name", 800, 65, long_ago),
        // No purchases ever: remaining_stock must still list it, and it is low.
        item(6, "lonely item", 900, 40, long_ago),
    ];
    for i in &items {
        env.upsert_item(i.clone(), long_ago).await;
    }
    for u in 1..=6 {
        env.upsert_user(user(u, now), long_ago).await;
    }
    let mut purchases = Vec::new();
    for i in 1..=40i64 {
        let item_id = 1 + (i * 3) % 5;
        let quantity = 1 + i % 5;
        let user_id = if item_id == 2 { 3 } else { 1 + (i * 7) % 6 };
        let p = PurchaseRow {
            id: i,
            user_id: Some(user_id),
            item_id: Some(item_id),
            status: Some(if i % 7 == 0 { 0 } else { 1 }),
            quantity: Some(quantity),
            purchase_price: Some(items[item_id as usize - 1].price.unwrap() * quantity),
            deleted: Some(false),
            created_at: Some(ts(i * 20)),
            updated_at: Some(ts(i * 20)),
        };
        env.upsert_purchase(p.clone(), ts(i * 20)).await;
        purchases.push(p);
    }
    // Restock item 1 at t=200s: only later purchases count against it.
    items[0].inventory = Some(300);
    items[0].inventory_updated_at = Some(ts(200));
    env.upsert_item(items[0].clone(), ts(200)).await;
    // Updates: quantity (and line total), status, moved to another item.
    let mut p5 = purchases[4].clone();
    p5.quantity = Some(4);
    p5.purchase_price = Some(items[p5.item_id.unwrap() as usize - 1].price.unwrap() * 4);
    env.upsert_purchase(p5, ts(900)).await;
    let mark = env.log.len();
    let mut p10 = purchases[9].clone();
    p10.status = Some(0);
    env.upsert_purchase(p10, ts(901)).await;
    let mut p12 = purchases[11].clone();
    p12.item_id = Some(3);
    env.upsert_purchase(p12, ts(902)).await;
    // Delete with tombstone; a tombstone alone; a user deleted.
    env.delete_purchase(&purchases[14], ts(903)).await;
    let key16 = env.purchases.key(16);
    let topic = env.topics.purchases.clone();
    env.send(&topic, Some(&key16), None).await;
    env.truth.purchases.insert(16, None);
    env.delete_user(&user(6, now), ts(904)).await;
    // A cdc restart re-sends everything since `mark`.
    env.resend_from(mark).await;
    // Restock item 2 after its purchases: its remaining stock is the new inventory.
    items[1].inventory = Some(1_000);
    items[1].inventory_updated_at = Some(ts(1_500));
    env.upsert_item(items[1].clone(), ts(1_500)).await;

    // Pageviews: users 1 and 2 browse now; the others only an hour ago (out
    // of the 3-minute window), so they are inactive.
    for i in 0..300i64 {
        let user_id = if i % 50 == 49 { 99 } else { 1 + i % 6 };
        let recent = user_id <= 2;
        env.pageview(PageviewEvent {
            user_id,
            product: (i % 3 != 0).then_some(1 + i % 7),
            profile: None, // the harness fills in the profile page
            channel: CHANNELS[i as usize % 5].into(),
            received_at: if recent {
                now - TimeDelta::seconds(i % 30)
            } else {
                now - TimeDelta::hours(1) - TimeDelta::seconds(i)
            },
        })
        .await;
    }
}

async fn stop(mut instances: Vec<Instance>) {
    for i in &instances {
        i.0.store(true, Ordering::SeqCst);
    }
    for i in &mut instances {
        (&mut i.1).await.expect("instance stopped cleanly");
    }
}

/// An in-process instance, stopped when dropped (also when a test panics, so
/// the runtime does not wait forever on its consumer thread).
struct Instance(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
);

impl
    From<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        tokio::task::JoinHandle<()>,
    )> for Instance
{
    fn from(
        (flag, task): (
            std::sync::Arc<std::sync::atomic::AtomicBool>,
            tokio::task::JoinHandle<()>,
        ),
    ) -> Self {
        Self(flag, task)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Two instances share the partitions of one group; they start before the
/// topics exist; every output equals the question asked over the raw data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outputs_equal_ground_truth_with_two_instances_sharing_partitions() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    let instances = vec![Instance::from(env.start(&[])), env.start(&[]).into()];
    create_topics(&env.stack, &env.topics).await;
    feed_known_sequence(&mut env).await;
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    let counts = assert_outputs_match(&client, &env.truth).await;
    for (name, n) in &counts {
        assert!(
            *n > 0,
            "{name} is empty: the sequence should exercise every output"
        );
    }
    // Mirrors equal the final MySQL state.
    let purchases: i64 = client
        .query_one("SELECT count(*) FROM purchases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        purchases,
        env.truth.purchases.values().flatten().count() as i64
    );
    // Freshness is recorded per stream.
    let streams: i64 = client
        .query_one("SELECT count(*) FROM freshness WHERE age_ms >= 0", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(streams, 2);
    stop(instances).await;
}

/// A restarted instance resumes from the offsets stored in Postgres: records
/// fed while it was down are applied once, and nothing is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_resumes_from_stored_offsets() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let now = now_s();
    for u in 1..=3 {
        env.upsert_user(user(u, now), now).await;
    }
    let first = Instance::from(env.start(&["--assignment", "all"]));
    env.wait_caught_up(CATCH_UP).await;
    stop(vec![first]).await;
    for i in 0..50 {
        env.pageview(PageviewEvent {
            user_id: 1 + i % 3,
            product: Some(1 + i % 4),
            profile: None, // the harness fills in the profile page
            channel: "social".into(),
            received_at: now,
        })
        .await;
    }
    let second = Instance::from(env.start(&["--assignment", "all"]));
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;
    stop(vec![second]).await;
}

/// Bad input never stops the pipeline: malformed JSON, an unknown URL shape,
/// non-Avro bytes and an unknown schema id go to the dead-letter topic with the
/// error in headers, are counted, and the good records around them apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_records_go_to_the_dead_letter_topic() {
    let Some(stack) = stack() else { return };
    let telemetry = pipeline::telemetry::serve(
        &pipeline::telemetry::TelemetryArgs {
            metrics_addr: String::new(),
            log_format: "text".into(),
        },
        pipeline::telemetry::Health::default(),
    )
    .await
    .expect("metrics recorder");
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let instance = Instance::from(env.start(&[]));
    let now = now_s();
    let pv = |user_id| PageviewEvent {
        user_id,
        product: Some(3),
        profile: None, // the harness fills in the profile page
        channel: "display".into(),
        received_at: now,
    };
    env.pageview(pv(1)).await;
    let pageviews = env.topics.pageviews.clone();
    let purchases = env.topics.purchases.clone();
    env.send(&pageviews, Some(b"1"), Some(b"{not json")).await;
    env.send(
        &pageviews,
        Some(b"1"),
        Some(br#"{"user_id": 1, "url": "/cart/3", "channel": "social", "received_at": 1}"#),
    )
    .await;
    let key = env.purchases.key(7);
    env.send(&purchases, Some(&key), Some(b"plain bytes, not avro"))
        .await;
    env.send(
        &purchases,
        Some(&key),
        Some(&[0, 0x7f, 0xff, 0xff, 0xf0, 2, 4]),
    )
    .await;
    env.pageview(pv(2)).await;
    env.upsert_purchase(
        PurchaseRow {
            id: 8,
            user_id: Some(1),
            item_id: Some(3),
            status: Some(1),
            quantity: Some(2),
            purchase_price: Some(2_500),
            deleted: Some(false),
            created_at: Some(now),
            updated_at: Some(now),
        },
        now,
    )
    .await;
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;

    // Every letter was acknowledged before its batch committed: all are there.
    let letters = dead_letters(&env);
    let mut kinds: Vec<String> = letters.iter().map(|h| h["error.kind"].clone()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["bad-json", "not-avro", "unknown-schema-id", "unknown-url"]
    );
    for h in &letters {
        assert!(!h["error"].is_empty());
        assert!(h["source.topic"] == pageviews || h["source.topic"] == purchases);
        assert!(h["source.offset"].parse::<i64>().is_ok());
        assert!(h["source.partition"].parse::<i32>().is_ok());
    }
    let metrics = telemetry.handle.render();
    let counted: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("analytics_dead_letters_total")
                && (l.contains(&pageviews) || l.contains(&purchases))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 4.0, "dead letters counted in /metrics:\n{metrics}");
    stop(vec![instance]).await;
}

/// A column added upstream (a new schema version mid-stream) breaks nothing:
/// events of both versions decode by field name and fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_column_added_upstream_is_tolerated() {
    use analytics::fixtures::{purchase_cells, text, CdcEncoder, TableSchema};

    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let instance = Instance::from(env.start(&[]));
    let now = now_s();
    env.upsert_item(item(1, "thing", 1_000, 500, now - TimeDelta::hours(1)), now)
        .await;
    env.upsert_user(user(1, now), now).await;
    let row = |id: i64, quantity: i64| PurchaseRow {
        id,
        user_id: Some(1),
        item_id: Some(1),
        status: Some(1),
        quantity: Some(quantity),
        purchase_price: Some(1_000 * quantity),
        deleted: Some(false),
        created_at: Some(now),
        updated_at: Some(now),
    };
    env.upsert_purchase(row(1, 1), now).await;
    env.upsert_purchase(row(2, 2), now).await;
    // ALTER TABLE purchases ADD COLUMN coupon: a new value schema version.
    let v2 = CdcEncoder::register(
        &env.stack.schema_registry_url,
        TableSchema::purchases(&env.topics.purchases).with_text_column("coupon"),
    )
    .await
    .unwrap();
    assert_ne!(v2.value_id, env.purchases.value_id);
    let topic = env.topics.purchases.clone();
    for (r, coupon) in [(row(2, 5), "SPRING"), (row(3, 3), "")] {
        let mut cells = purchase_cells(&r);
        cells.push(text(coupon));
        let (k, v) = (v2.key(r.id), v2.upsert("u", &cells, now));
        env.truth.purchases.insert(r.id, Some(r));
        env.send(&topic, Some(&k), Some(&v)).await;
    }
    // An old-version event after the new one still decodes.
    env.upsert_purchase(row(4, 1), now).await;
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;
    let sold: i64 = client
        .query_one(
            "SELECT items_sold FROM purchase_summary WHERE item_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sold, 1 + 5 + 3 + 1);
    stop(vec![instance]).await;
}

/// SIGKILL the analytics binary repeatedly while input flows; once it has
/// caught up, every output still equals the ground truth exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_batch_keeps_outputs_exact() {
    use rand::{Rng, SeedableRng};

    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let binary = env!("CARGO_BIN_EXE_analytics");
    let spawn = |env: &Env| {
        let args = env.config_args(&["--assignment", "all", "--batch-max-records", "50"]);
        tokio::process::Command::new(binary)
            .args(&args[1..])
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn analytics")
    };
    let now = now_s();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 1..=5 {
        env.upsert_item(
            item(
                i,
                &format!("item {i}"),
                1_000 * i,
                10_000,
                now - TimeDelta::hours(1),
            ),
            now,
        )
        .await;
    }
    for u in 1..=10 {
        env.upsert_user(user(u, now), now).await;
    }
    let client = env.postgres().await;
    let mut next_id = 1i64;
    for round in 0..5 {
        let mut child = spawn(&env);
        let before = committed(&client).await;
        // Feed while it runs; kill it once it has committed something new.
        for _ in 0..400 {
            if next_id > 1 && rng.gen_bool(0.2) {
                let id = rng.gen_range(1..next_id);
                if rng.gen_bool(0.3) {
                    if let Some(Some(p)) = env.truth.purchases.get(&id).cloned() {
                        env.delete_purchase(&p, now_s()).await;
                    }
                } else if let Some(Some(mut p)) = env.truth.purchases.get(&id).cloned() {
                    p.quantity = Some(rng.gen_range(1..6));
                    p.status = Some(rng.gen_range(0..2));
                    env.upsert_purchase(p, now_s()).await;
                }
            } else {
                let p = PurchaseRow {
                    id: next_id,
                    user_id: Some(rng.gen_range(1..=10)),
                    item_id: Some(rng.gen_range(1..=5)),
                    status: Some(1),
                    quantity: Some(rng.gen_range(1..6)),
                    purchase_price: Some(rng.gen_range(100..100_000)),
                    deleted: Some(false),
                    created_at: Some(now - TimeDelta::seconds(rng.gen_range(0..600))),
                    updated_at: Some(now),
                };
                next_id += 1;
                env.upsert_purchase(p, now_s()).await;
            }
            env.pageview(PageviewEvent {
                user_id: rng.gen_range(1..=10),
                product: rng.gen_bool(0.5).then(|| rng.gen_range(1..=5)),
                profile: None, // the harness fills in the profile page
                channel: CHANNELS[rng.gen_range(0..5)].into(),
                received_at: now_s() - TimeDelta::seconds(rng.gen_range(0..600)),
            })
            .await;
        }
        wait_until(CATCH_UP, "a batch to commit before the kill", || {
            let client = &client;
            async move { (committed(client).await > before).then_some(()) }
        })
        .await;
        child.start_kill().expect("SIGKILL");
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "round {round}: killed, not exited");
    }
    let mut child = spawn(&env);
    env.wait_caught_up(CATCH_UP).await;
    assert_outputs_match(&client, &env.truth).await;
    child.start_kill().ok();
    child.wait().await.ok();
}

async fn committed(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0)
}

/// Postgres connections killed under the running instance (as in a Postgres
/// restart) are retried with backoff, never fatal, and nothing is applied
/// twice, even when a commit's outcome was lost with its connection (the
/// offset fence resolves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connection_loss_is_retried_exactly() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let instance = Instance::from(env.start(&["--assignment", "all", "--batch-max-records", "40"]));
    let admin = env.postgres().await;
    let now = now_s();
    for u in 1..=4 {
        env.upsert_user(user(u, now), now).await;
    }
    env.upsert_item(
        item(1, "thing", 500, 10_000, now - TimeDelta::hours(1)),
        now,
    )
    .await;
    let mut id = 0;
    for round in 0..6 {
        for _ in 0..60 {
            id += 1;
            env.upsert_purchase(
                PurchaseRow {
                    id,
                    user_id: Some(1 + id % 4),
                    item_id: Some(1),
                    status: Some(1),
                    quantity: Some(1 + id % 3),
                    purchase_price: Some(500 * (1 + id % 3)),
                    deleted: Some(false),
                    created_at: Some(now),
                    updated_at: Some(now),
                },
                now,
            )
            .await;
            env.pageview(PageviewEvent {
                user_id: 1 + id % 4,
                product: Some(1),
                profile: None, // the harness fills in the profile page
                channel: CHANNELS[(id % 5) as usize].into(),
                received_at: now,
            })
            .await;
        }
        let before = committed(&admin).await;
        wait_until(CATCH_UP, "progress before cutting connections", || {
            let admin = &admin;
            async move { (committed(admin).await > before).then_some(()) }
        })
        .await;
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(killed >= 1 || round > 0, "the instance holds a connection");
    }
    env.wait_caught_up(CATCH_UP).await;
    assert_outputs_match(&admin, &env.truth).await;
    stop(vec![instance]).await;
}

/// Purchases (new ones, and status flips of earlier ones, so buyers come and
/// go in the funnel) and pageviews, `n` of each, ids from `first_id`.
async fn feed_mixed(env: &mut Env, first_id: i64, n: i64) {
    let now = now_s();
    for id in first_id..first_id + n {
        env.upsert_purchase(
            PurchaseRow {
                id,
                user_id: Some(1 + id % 7),
                item_id: Some(1 + id % 3),
                status: Some(i32::from(id % 4 != 0)),
                quantity: Some(1 + id % 3),
                purchase_price: Some(700 * (1 + id % 3)),
                deleted: Some(false),
                created_at: Some(now),
                updated_at: Some(now),
            },
            now,
        )
        .await;
        if id % 5 == 0 {
            if let Some(Some(mut earlier)) = env.truth.purchases.get(&(id - 3)).cloned() {
                earlier.status = earlier.status.map(|s| 1 - s);
                env.upsert_purchase(earlier, now).await;
            }
        }
        env.pageview(PageviewEvent {
            user_id: 1 + (id * 3) % 11,
            product: (id % 2 == 0).then_some(1 + id % 3),
            profile: None, // the harness fills in the profile page
            channel: CHANNELS[(id % 5) as usize].into(),
            received_at: now,
        })
        .await;
    }
}

async fn seed_items_and_users(env: &mut Env) {
    let now = now_s();
    for i in 1..=3 {
        env.upsert_item(
            item(
                i,
                &format!("item {i}"),
                700,
                10_000,
                now - TimeDelta::hours(1),
            ),
            now,
        )
        .await;
    }
    for u in 1..=11 {
        env.upsert_user(user(u, now), now).await;
    }
}

/// The headers of every record in the dead-letter topic, read to its end
/// (partition EOF: the local broker's end-offset answers are wrong).
fn dead_letters(env: &Env) -> Vec<std::collections::HashMap<String, String>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::{Headers, Message};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.stack.kafka_bootstrap_servers)
        .set("group.id", pipeline::testing::unique_name("dlq-reader"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&env.topics.dead_letters, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + CATCH_UP;
    let mut letters = Vec::new();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => letters.push(
                m.headers()
                    .into_iter()
                    .flat_map(|h| h.iter())
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect(),
            ),
            Some(Err(KafkaError::PartitionEOF(_))) => return letters,
            _ => {}
        }
    }
    panic!("the dead-letter topic was not read to its end within {CATCH_UP:?}");
}

/// Kafka unavailable is waited out, never fatal: analytics starts while its
/// broker is down, and later the broker freezes (SIGSTOP: connections open,
/// nothing answered) right after records were produced. Once it answers
/// again, every output equals the ground truth and nothing was dead-lettered.
async fn kafka_outage_is_waited_out(extra: &[&str], freeze: Duration) {
    use pipeline::testing::outage::{broker_binary_for, free_port, PrivateBroker};

    let Some(mut stack) = stack() else { return };
    // A broker of the kind the suite runs against (SHOP_TEST_BROKER).
    let Some(binary) = broker_binary_for(stack.broker) else {
        return;
    };
    let port = free_port();
    stack.kafka_bootstrap_servers = format!("127.0.0.1:{port}");
    let mut env = setup(stack).await;
    let instance = Instance::from(env.start(extra));
    // The outage at start: nothing listens on the port for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !instance.1.is_finished(),
        "analytics gave up while Kafka was down"
    );
    let mut broker = PrivateBroker::start_like(env.stack.broker, &binary, port).await;
    create_topics(&env.stack, &env.topics).await;
    seed_items_and_users(&mut env).await;
    feed_mixed(&mut env, 1, 60).await;
    env.wait_caught_up(CATCH_UP).await;

    // The outage mid-stream, with records not consumed yet.
    feed_mixed(&mut env, 61, 60).await;
    broker.pause();
    tokio::time::sleep(freeze).await;
    assert!(
        !instance.1.is_finished(),
        "analytics gave up while Kafka was frozen"
    );
    broker.resume();
    feed_mixed(&mut env, 121, 60).await;
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;
    assert_eq!(
        dead_letters(&env).len(),
        0,
        "an outage must never dead-letter records"
    );
    stop(vec![instance]).await;
}

/// Consumer-group mode, the broker frozen for less than the group session
/// timeout (the harness's 6 s): the member keeps its partitions and resumes.
/// A longer freeze cannot be tested in group mode on the local broker: tansu
/// 0.6 never expires the member whose session ran out meanwhile, keeps naming
/// it the group's leader in every JoinGroup answer and refuses the others'
/// SyncGroup (UNKNOWN_MEMBER_ID), so the group never forms again; Kafka
/// expires that member and the group rebalances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_kafka_outage_is_waited_out_in_a_consumer_group() {
    kafka_outage_is_waited_out(&[], Duration::from_secs(3)).await;
}

/// Self-assigned partitions (no group membership to lose): a freeze well past
/// every client timeout that matters here (session, fetch wait, metadata).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_kafka_outage_is_waited_out() {
    kafka_outage_is_waited_out(&["--assignment", "all"], Duration::from_secs(12)).await;
}

/// A schema registry outage while a new schema version arrives: the batch is
/// retried until the registry answers (the records are fine, the registry is
/// not), never dead-lettered, and then applies exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_outage_is_retried_not_dead_lettered() {
    use analytics::fixtures::{purchase_cells, text, CdcEncoder, TableSchema};
    use pipeline::testing::outage::CuttableProxy;

    let Some(mut stack) = stack() else { return };
    let direct = stack.schema_registry_url.clone();
    let upstream: std::net::SocketAddr = direct
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the stack's registry URL is http://<ip>:<port>");
    let proxy = CuttableProxy::start(upstream).await;
    stack.schema_registry_url = proxy.http_url();
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let instance = Instance::from(env.start(&[]));
    seed_items_and_users(&mut env).await;
    feed_mixed(&mut env, 1, 40).await;
    env.wait_caught_up(CATCH_UP).await;

    proxy.cut();
    // A new value schema (a column added upstream), registered while
    // analytics cannot reach the registry: its id is unknown to analytics.
    let v2 = CdcEncoder::register(
        &direct,
        TableSchema::purchases(&env.topics.purchases).with_text_column("coupon"),
    )
    .await
    .unwrap();
    let now = now_s();
    let topic = env.topics.purchases.clone();
    for id in [41, 42] {
        let row = PurchaseRow {
            id,
            user_id: Some(2),
            item_id: Some(3),
            status: Some(1),
            quantity: Some(2),
            purchase_price: Some(1_400),
            deleted: Some(false),
            created_at: Some(now),
            updated_at: Some(now),
        };
        let mut cells = purchase_cells(&row);
        cells.push(text("SPRING"));
        let (k, v) = (v2.key(id), v2.upsert("c", &cells, now));
        env.truth.purchases.insert(id, Some(row));
        env.send(&topic, Some(&k), Some(&v)).await;
    }
    feed_mixed(&mut env, 43, 20).await;
    // Retried, not given up: several fetch attempts during the outage.
    wait_until(CATCH_UP, "analytics to retry the schema fetch", || {
        let proxy = &proxy;
        async move { (proxy.refused() >= 2).then_some(()) }
    })
    .await;
    proxy.restore();
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;
    assert_eq!(
        dead_letters(&env).len(),
        0,
        "a registry outage must never dead-letter records"
    );
    stop(vec![instance]).await;
}

/// Two instances fold, at the same moment, one user's first product pageview
/// (one instance) and first completed purchase (the other): each reads the
/// other side's table, and the per-user funnel lock must make exactly one of
/// them count the user as a buyer. Many rounds, both batches committed
/// concurrently on two connections each round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pageview_and_purchase_batches_count_each_buyer_once() {
    use analytics::decode::Change;
    use analytics::store::{
        migrate, Batch, Commit, PartitionProgress, Store, MIGRATION_LOCK_TIMEOUT,
    };

    const ROUNDS: i64 = 150;
    let Some(stack) = stack() else { return };
    let url = stack.fresh_postgres_database().await;
    migrate(&url, MIGRATION_LOCK_TIMEOUT).await.unwrap();
    let mut pageviews = Store::new(&url, "funnel-race", 100);
    let mut purchases = Store::new(&url, "funnel-race", 100);
    let now = now_s();
    let progress = |round: i64| PartitionProgress {
        committed: (round > 0).then_some(round),
        next: round + 1,
    };
    for round in 0..ROUNDS {
        let user = round + 1;
        let mut viewed = Batch::default();
        viewed.pageviews.push(PageviewEvent {
            user_id: user,
            product: Some(1),
            profile: None, // the harness fills in the profile page
            channel: "social".into(),
            received_at: now,
        });
        viewed
            .offsets
            .insert(("pageviews".into(), 0), progress(round));
        let mut bought = Batch::default();
        bought.purchases.push(Change::Upsert(PurchaseRow {
            id: user,
            user_id: Some(user),
            item_id: Some(1),
            status: Some(1),
            quantity: Some(1),
            purchase_price: Some(100),
            deleted: Some(false),
            created_at: Some(now),
            updated_at: Some(now),
        }));
        bought
            .offsets
            .insert(("purchases".into(), 0), progress(round));
        let (a, b) = tokio::join!(pageviews.commit(&viewed), purchases.commit(&bought));
        assert_eq!(a.unwrap(), Commit::Committed);
        assert_eq!(b.unwrap(), Commit::Committed);
    }
    let client = analytics::store::connect(&url).await.unwrap();
    let row = client
        .query_one(
            "SELECT visitors, product_viewers, buyers FROM conversion_funnel WHERE channel = 'social'",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        counts,
        (ROUNDS, ROUNDS, ROUNDS),
        "(visitors, product viewers, buyers)"
    );
}

/// A TRUNCATE (Debezium's `op` "t" with a null key, what cdc emits with
/// `skipped.operations=none`, e.g. for `loadgen --reseed`) clears everything
/// the table fed, in the batch's transaction: after it, and after new rows
/// that reuse the truncated ids (MySQL restarts AUTO_INCREMENT), every output
/// equals the ground truth of the table as it is now. cdc re-sending the
/// truncate and what followed it changes nothing; a re-delivery of the
/// truncate record itself (an offset already stored) is fenced, so it never
/// clears rows written after it. Then items and users are truncated and
/// partly refilled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncate_clears_what_the_table_fed_exactly_once() {
    use analytics::decode::Change;
    use analytics::store::{Batch, Commit, PartitionProgress, Store};

    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    harness::create_single_partition_topics(&env.stack, &env.topics).await;
    let instance = Instance::from(env.start(&["--assignment", "all"]));
    feed_known_sequence(&mut env).await;
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;
    let sum = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .unwrap()
                .get::<_, Option<i64>>(0)
                .unwrap_or(0)
        }
    };
    // What the truncate must clear is there to clear.
    assert!(sum("SELECT sum(buyers)::bigint FROM agg_channel_funnel").await > 0);
    assert!(sum("SELECT sum(sold_since_restock)::bigint FROM agg_item_stock").await > 0);
    assert!(sum("SELECT count(*) FROM agg_orders_per_minute").await > 0);

    let now = now_s();
    let mark = env.log.len();
    let truncate_at = env.truncate("purchases", now).await;
    // New purchases reuse ids 1.. with other items, users and amounts.
    for id in 1..=12i64 {
        env.upsert_purchase(
            PurchaseRow {
                id,
                user_id: Some(1 + id % 4),
                item_id: Some(1 + id % 6),
                status: Some(i32::from(id % 3 != 0)),
                quantity: Some(10 + id),
                purchase_price: Some(333 * id),
                deleted: Some(false),
                created_at: Some(now - TimeDelta::seconds(id)),
                updated_at: Some(now),
            },
            now,
        )
        .await;
    }
    env.wait_caught_up(CATCH_UP).await;
    assert_outputs_match(&client, &env.truth).await;
    assert_eq!(sum("SELECT count(*) FROM purchases").await, 12);
    assert_eq!(
        sum("SELECT count(*) FROM abandoned_cart_notifications WHERE purchase_id > 12").await,
        0,
        "notifications of truncated purchases are gone"
    );

    // cdc re-sends the truncate and everything after it (a restart before
    // their position was stored): the same final state.
    env.resend_from(mark).await;
    env.wait_caught_up(CATCH_UP).await;
    assert_outputs_match(&client, &env.truth).await;
    stop(vec![instance]).await;

    // The truncate record delivered again at its own offset (a consumer
    // that did not know it was applied): fenced, nothing cleared.
    let mut store = Store::new(&env.postgres_url, &env.group, harness::LOW_STOCK);
    let mut replay = Batch {
        purchases: vec![Change::Truncate],
        cdc_records: 1,
        ..Batch::default()
    };
    replay.offsets.insert(
        (env.topics.purchases.clone(), 0),
        PartitionProgress {
            committed: Some(truncate_at),
            next: truncate_at + 1,
        },
    );
    assert_eq!(store.commit(&replay).await.unwrap(), Commit::Fenced);
    assert_outputs_match(&client, &env.truth).await;
    assert_eq!(sum("SELECT count(*) FROM purchases").await, 12);

    // Items and users: their mirrors (and the items' stock and alerts) are
    // cleared; sales per item and per user are purchases' and stay.
    let instance = Instance::from(env.start(&["--assignment", "all"]));
    let long_ago = now - TimeDelta::hours(2);
    env.truncate("items", now).await;
    env.truncate("users", now).await;
    env.upsert_item(item(2, "new gadget", 4_200, 30, long_ago), now)
        .await;
    env.upsert_item(
        item(5, "new thing", 100, 500, now - TimeDelta::seconds(5)),
        now,
    )
    .await;
    for u in [1, 3] {
        env.upsert_user(user(u, now), now).await;
    }
    env.wait_caught_up(CATCH_UP).await;
    assert_outputs_match(&client, &env.truth).await;
    assert_eq!(sum("SELECT count(*) FROM items").await, 2);
    assert_eq!(sum("SELECT count(*) FROM users").await, 2);
    assert_eq!(sum("SELECT count(*) FROM agg_item_stock").await, 2);
    assert_eq!(sum("SELECT count(*) FROM purchases").await, 12);
    stop(vec![instance]).await;
}

/// The broker restarts with its data under a running instance: first a clean
/// stop (SIGTERM), later a crash (SIGKILL), each time started again on the
/// same file (tansu with libsql storage, the stack's persistent lane's
/// binary; the memory broker would lose every topic). The instance rides both
/// out by itself on the default path (no seek-back): records produced before,
/// between and after the restarts apply exactly once, its stored offsets
/// resume, and every output equals the ground truth. Self-assigned
/// partitions: tansu 0.6.0 with libsql storage can panic on a consumer group
/// update conflict (README, "The local broker").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_with_its_data_is_ridden_out() {
    use pipeline::testing::outage::{broker_binary_for, free_port, PrivateBroker};
    use pipeline::testing::{unique_name, Broker};

    let Some(mut stack) = stack() else { return };
    let Some(binary) = broker_binary_for(Broker::Persistent) else {
        return;
    };
    let dir = std::env::temp_dir().join(unique_name("restarted-broker"));
    let mut broker = PrivateBroker::start_persistent(&binary, free_port(), &dir).await;
    stack.kafka_bootstrap_servers = broker.bootstrap_servers();
    stack.broker = Broker::Persistent;
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    seed_items_and_users(&mut env).await;
    let instance = Instance::from(env.start(&["--assignment", "all"]));
    feed_mixed(&mut env, 1, 60).await;
    env.wait_caught_up(CATCH_UP).await;

    broker.stop().await;
    broker.start_again().await;
    feed_mixed(&mut env, 61, 60).await;
    env.wait_caught_up(CATCH_UP).await;

    broker.kill();
    broker.start_again().await;
    feed_mixed(&mut env, 121, 60).await;
    env.wait_caught_up(CATCH_UP).await;

    assert!(
        !instance.1.is_finished(),
        "analytics gave up across the broker restarts"
    );
    assert_eq!(broker.starts(), 3, "first start and two restarts");
    let client = env.postgres().await;
    assert_outputs_match(&client, &env.truth).await;
    assert_eq!(
        dead_letters(&env).len(),
        0,
        "a broker restart must never dead-letter records"
    );
    stop(vec![instance]).await;
}

/// The per-user incomplete counts behind the dashboard's totals (migration
/// V8), folded batch by batch through the store, equal the full views after
/// every batch: inserts of every status (and a NULL one), status flips both
/// ways, price and owner changes, re-sent rows, deletes, a user leaving the
/// users mirror, a purchases TRUNCATE followed by ids reused, all with two
/// offsets per batch as the consumer commits them. The pages equal the
/// newest rows of the full views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_incomplete_and_abandoned_state_equals_the_full_views() {
    use analytics::decode::Change;
    use analytics::store::{
        migrate, Batch, Commit, PartitionProgress, Store, MIGRATION_LOCK_TIMEOUT,
    };
    use rand::{Rng, SeedableRng};

    let Some(stack) = stack() else { return };
    let url = stack.fresh_postgres_database().await;
    migrate(&url, MIGRATION_LOCK_TIMEOUT).await.unwrap();
    let mut store = Store::new(&url, "incomplete-state", 100);
    let client = analytics::store::connect(&url).await.unwrap();
    let now = now_s();
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    // Users 1..=30 are mirrored, 31..=35 never are (their purchases are in
    // neither view); even users stopped browsing 10 minutes ago (inactive),
    // odd ones browse now.
    let seed = Batch {
        users: (1..=30).map(|id| Change::Upsert(user(id, now))).collect(),
        items: (1..=4)
            .map(|id| Change::Upsert(item(id, "thing", 1_000, 100, now - TimeDelta::days(1))))
            .collect(),
        pageviews: (1..=35)
            .map(|u| PageviewEvent {
                user_id: u,
                product: Some(1 + u % 4),
                profile: None,
                channel: CHANNELS[u as usize % CHANNELS.len()].into(),
                received_at: if u % 2 == 0 {
                    now - TimeDelta::minutes(10) - TimeDelta::seconds(u)
                } else {
                    now
                },
            })
            .collect(),
        ..Batch::default()
    };
    let mut offset = 0;
    let mut commit = |mut batch: Batch| {
        batch.offsets.insert(
            ("purchases".into(), 0),
            PartitionProgress {
                committed: (offset > 0).then_some(offset),
                next: offset + 1,
            },
        );
        offset += 1;
        batch
    };
    assert_eq!(
        store.commit(&commit(seed)).await.unwrap(),
        Commit::Committed
    );

    // Distinct created_at per id (the view has no id to break ties on), a
    // few NULL ones; statuses 0 (a third), 1, 2 and NULL.
    let purchase = |rng: &mut rand::rngs::StdRng, id: i64| PurchaseRow {
        id,
        user_id: Some(rng.gen_range(1..=35)),
        item_id: Some(rng.gen_range(1..=4)),
        status: match rng.gen_range(0..12) {
            0..=3 => Some(0),
            4..=8 => Some(1),
            9 | 10 => Some(2),
            _ => None,
        },
        quantity: Some(rng.gen_range(1..=3)),
        // Few distinct prices: one user's two carts of one item at one
        // price happen, which abandoned_cart's GROUP BY folds into one row.
        purchase_price: Some(100 * rng.gen_range(1..=3)),
        deleted: Some(false),
        created_at: (id % 37 != 0).then(|| now - TimeDelta::minutes(20) + TimeDelta::seconds(id)),
        updated_at: Some(now),
    };
    let mut live: std::collections::BTreeMap<i64, PurchaseRow> = Default::default();
    for round in 0..8 {
        let mut batch = Batch::default();
        if round == 5 {
            // Everything before is gone; ids restart (AUTO_INCREMENT).
            batch.purchases.push(Change::Truncate);
            live.clear();
        }
        if round == 6 {
            // A user leaves the mirror: their purchases leave both views.
            batch.users.push(Change::Delete(4));
        }
        let base = live.keys().next_back().copied().unwrap_or(0);
        for id in base + 1..=base + 60 {
            let row = purchase(&mut rng, id);
            live.insert(id, row.clone());
            batch.purchases.push(Change::Upsert(row));
        }
        if round == 7 {
            // One user's two carts of the same item at the same price: two
            // carts, one row of abandoned_cart (user 2 is inactive).
            for id in base + 61..=base + 62 {
                let row = PurchaseRow {
                    user_id: Some(2),
                    item_id: Some(3),
                    status: Some(0),
                    purchase_price: Some(4_200),
                    ..purchase(&mut rng, id)
                };
                live.insert(id, row.clone());
                batch.purchases.push(Change::Upsert(row));
            }
        }
        let ids: Vec<i64> = live.keys().copied().collect();
        for _ in 0..40 {
            let id = ids[rng.gen_range(0..ids.len())];
            let Some(mut row) = live.get(&id).cloned() else {
                continue;
            };
            match rng.gen_range(0..5) {
                0 => {
                    live.remove(&id);
                    batch.purchases.push(Change::Delete(id));
                    continue;
                }
                1 => row.status = Some(i32::from(row.status == Some(0))),
                2 => row.purchase_price = Some(row.purchase_price.unwrap_or(0) + 50),
                3 => row.user_id = Some(rng.gen_range(1..=35)),
                _ => {} // re-sent unchanged
            }
            live.insert(id, row.clone());
            batch.purchases.push(Change::Upsert(row));
        }
        assert_eq!(
            store.commit(&commit(batch)).await.unwrap(),
            Commit::Committed
        );

        let same = |maintained: &'static str, full: &'static str| {
            let client = &client;
            async move {
                let diff = format!(
                    "SELECT 'missing', t::text FROM (({full}) EXCEPT ALL ({maintained})) t
                     UNION ALL
                     SELECT 'unexpected', m::text FROM (({maintained}) EXCEPT ALL ({full})) m"
                );
                let rows: Vec<String> = client
                    .query(&diff, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| format!("{} {}", r.get::<_, &str>(0), r.get::<_, &str>(1)))
                    .collect();
                assert!(rows.is_empty(), "round {round}: {maintained}\n{rows:#?}");
            }
        };
        // Per user, against the mirror (users not mirrored included).
        same(
            "SELECT user_id, incomplete, incomplete_value FROM agg_user_purchases
             WHERE incomplete <> 0 OR incomplete_value <> 0",
            "SELECT user_id, count(*), sum(purchase_price) FROM purchases
             WHERE status = 0 GROUP BY user_id",
        )
        .await;
        same(
            "SELECT purchases, users, value FROM incomplete_purchases_totals",
            "SELECT count(*), count(DISTINCT user_id), COALESCE(sum(purchase_price), 0)
             FROM incomplete_purchases",
        )
        .await;
        same(
            "SELECT user_id, email, is_vip, item_id, status, quantity, purchase_price, created_at,
                    updated_at
             FROM incomplete_purchases_page(10)",
            "SELECT * FROM incomplete_purchases ORDER BY created_at DESC NULLS LAST LIMIT 10",
        )
        .await;
        // Abandoned carts: the view before its GROUP BY (one row per cart)...
        same(
            "SELECT carts, users, value FROM abandoned_cart_totals",
            "SELECT count(*), count(DISTINCT ip.user_id), COALESCE(sum(ip.purchase_price), 0)
             FROM incomplete_purchases ip JOIN inactive_users_last_3_mins iu USING (user_id)",
        )
        .await;
        // ...and the view itself: its rows are the page's rows grouped.
        same(
            "SELECT DISTINCT user_id, email, item_id, purchase_price, status
             FROM abandoned_cart_page(1000)",
            "SELECT * FROM abandoned_cart",
        )
        .await;
        same(
            "SELECT user_id, email, item_id, purchase_price, status, created_at
             FROM abandoned_cart_page(10)",
            "SELECT ip.user_id, ip.email, ip.item_id, ip.purchase_price, ip.status, ip.created_at
             FROM incomplete_purchases ip JOIN user_activity ua USING (user_id)
             WHERE ua.last_pageview_at <= now() - interval '3 minutes'
             ORDER BY ua.last_pageview_at DESC, ip.user_id DESC, ip.created_at DESC NULLS LAST
             LIMIT 10",
        )
        .await;
    }
    let carts: i64 = client
        .query_one("SELECT carts FROM abandoned_cart_totals", &[])
        .await
        .unwrap()
        .get(0);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM abandoned_cart", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        rows > 10 && carts > rows,
        "the data exercises the page and the view's GROUP BY: {carts} carts, {rows} view rows"
    );
}

/// The raw pageview log keeps the retention's pageviews and no more: a
/// pageview past it is not written; one that ages past it leaves the views
/// at once and the table at the retention task's next prune (on its own
/// connection, every half retention); the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pageview_log_keeps_its_retention_and_drops_what_ages_past_it() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let now = now_s();
    let pv = |user_id, received_at| PageviewEvent {
        user_id,
        product: Some(2),
        profile: None, // the harness fills in the profile page
        channel: "search".into(),
        received_at,
    };
    // 20 s kept, pruned every 10 s. The pageviews that must stay are an hour
    // ahead, so a slow catch-up cannot age them out.
    let instance = Instance::from(env.start(&["--assignment", "all", "--pageview-log-secs", "20"]));
    env.pageview(pv(1, now + TimeDelta::hours(1))).await;
    env.pageview(pv(2, now - TimeDelta::hours(1))).await;
    env.pageview(pv(3, now + TimeDelta::hours(1))).await;
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;
    let users = |rows: Vec<tokio_postgres::Row>| -> Vec<i64> {
        rows.iter().map(|r| i64::from(r.get::<_, i32>(0))).collect()
    };
    let in_table = "SELECT user_id::int FROM pageview_log ORDER BY 1";
    let in_view = "SELECT user_id FROM v_pageviews ORDER BY 1";
    assert_eq!(
        users(client.query(in_table, &[]).await.unwrap()),
        vec![1, 3],
        "the pageview an hour old is past the retention: not written"
    );
    // A pageview that has aged past the retention since it was written: out
    // of the views at once, out of the table at the next prune.
    client
        .execute(
            "INSERT INTO pageview_log (user_id, pageview_type, target_id, channel, received_at)
             VALUES (4, 'products', 2, 'search', extract(epoch FROM now())::bigint - 3600)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(users(client.query(in_view, &[]).await.unwrap()), vec![1, 3]);
    let json = client
        .query("SELECT count(*) FROM json_pageviews", &[])
        .await
        .unwrap();
    assert_eq!(
        json[0].get::<_, i64>(0),
        2,
        "json_pageviews filters the same way"
    );
    wait_until(
        Duration::from_secs(60),
        "the retention task to prune the aged pageview",
        || {
            let client = &client;
            async move {
                let rows = client.query(in_table, &[]).await.ok()?;
                (!users(rows).contains(&4)).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        users(client.query(in_table, &[]).await.unwrap()),
        vec![1, 3],
        "the pageviews inside the retention stay"
    );
    stop(vec![instance]).await;
}

mod migration {
    //! A Postgres database held at migration V8, for the upgrade to V9 (which
    //! drops `pageview_log`'s index and replaces the views that read it)
    //! while other sessions read it.

    use std::time::Duration;

    use pipeline::testing::{wait_until, Stack};
    use tokio_postgres::Client;

    mod embedded {
        refinery::embed_migrations!("../migrations/postgres");
    }

    pub async fn connect(url: &str) -> Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// A fresh database migrated to V8: its URL and a client on it.
    pub async fn database_at_v8(stack: &Stack) -> (String, Client) {
        let url = stack.fresh_postgres_database().await;
        let mut client = connect(&url).await;
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(8))
            .run_async(&mut client)
            .await
            .unwrap();
        (url, client)
    }

    /// Until a session (V9) waits for a lock on `pageview_log`.
    pub async fn wait_for_a_lock_wait_on_pageview_log(client: &Client) {
        wait_until(
            Duration::from_secs(60),
            "V9 waiting for a reader's lock on pageview_log",
            || async {
                let waiting: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_locks \
                         WHERE NOT granted AND relation = 'pageview_log'::regclass",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                (waiting > 0).then_some(())
            },
        )
        .await;
    }

    pub async fn version(client: &Client) -> i32 {
        client
            .query_one("SELECT max(version) FROM refinery_schema_history", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// [`analytics::migrate_with_retry`] with `lock_timeout`, in a task.
    pub fn spawn_migrations(
        url: String,
        lock_timeout: Duration,
    ) -> tokio::task::JoinHandle<Result<(), analytics::store::StoreError>> {
        tokio::spawn(async move {
            analytics::migrate_with_retry(
                &url,
                lock_timeout,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .await
        })
    }

    /// The migrations' task ends within a minute, successfully, at V9.
    pub async fn assert_finished_at_v9(
        client: &Client,
        migrating: tokio::task::JoinHandle<Result<(), analytics::store::StoreError>>,
    ) {
        let migrated = tokio::time::timeout(Duration::from_secs(60), migrating)
            .await
            .expect("the migrations did not finish once the reader committed")
            .unwrap();
        assert!(migrated.is_ok(), "{migrated:?}");
        assert_eq!(version(client).await, 9);
    }
}

/// A migration that deadlocks with a reader is rolled back by Postgres and
/// run again, not fatal: a dashboard reading `pageview_log` while V9 drops
/// its index (AccessExclusive on the table, waiting for the reader) and then
/// wanting a table V9 already altered. CI once saw analytics exit on exactly
/// this while a test polled the views during its startup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_deadlocked_with_a_reader_runs_again() {
    let Some(stack) = stack() else { return };
    let (url, setup) = migration::database_at_v8(&stack).await;

    // The reader holds pageview_log and never looks for deadlocks itself
    // within the test; the migration's sessions look after 3 s, so the
    // migration is the one Postgres rolls back.
    let reader = migration::connect(&url).await;
    reader
        .batch_execute(
            "BEGIN; SET LOCAL deadlock_timeout = '600s'; SELECT count(*) FROM pageview_log",
        )
        .await
        .unwrap();
    // No lock timeout: the deadlock, not the timeout, rolls V9 back.
    let migrating = migration::spawn_migrations(
        format!("{url}?options=-c%20deadlock_timeout%3D3s"),
        Duration::ZERO,
    );
    migration::wait_for_a_lock_wait_on_pageview_log(&setup).await;
    // Granted only once the migration's transaction, which holds
    // item_pageviews (its fillfactor changed) while waiting for the reader,
    // is rolled back: it cannot commit before the reader does.
    tokio::time::timeout(
        Duration::from_secs(60),
        reader.batch_execute("LOCK TABLE item_pageviews IN SHARE ROW EXCLUSIVE MODE"),
    )
    .await
    .expect("the migration was not rolled back by the deadlock")
    .unwrap();
    reader.batch_execute("COMMIT").await.unwrap();

    migration::assert_finished_at_v9(&setup, migrating).await;
    let index: Option<String> = setup
        .query_one("SELECT to_regclass('pageview_log_received_at')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(index, None, "V9 applied: the index is gone");
}

/// A migration behind a long query (a dashboard's report on `pageview_log`)
/// waits at most its lock timeout, then gives way: the queries queued behind
/// its pending exclusive lock run while the long one still holds the table,
/// and the migration applies once the long query ends. Without the bound
/// every later reader of the table waits for the long query too.
#[tokio::test]
async fn a_migration_behind_a_long_query_gives_way_to_the_readers_behind_it() {
    let Some(stack) = stack() else { return };
    let (url, setup) = migration::database_at_v8(&stack).await;

    let long_query = migration::connect(&url).await;
    long_query
        .batch_execute("BEGIN; SELECT count(*) FROM pageview_log")
        .await
        .unwrap();
    let migrating = migration::spawn_migrations(url.clone(), Duration::from_secs(1));
    migration::wait_for_a_lock_wait_on_pageview_log(&setup).await;
    // Queued behind V9's pending ACCESS EXCLUSIVE lock; Postgres cancels
    // it first if V9 never gives way (the long query is still open).
    let reader = migration::connect(&url).await;
    let read = reader
        .batch_execute("SET statement_timeout = '30s'; SELECT count(*) FROM pageview_log")
        .await;
    assert!(
        read.is_ok(),
        "a reader behind the migration waited for the long query: {read:?}"
    );
    assert_eq!(
        migration::version(&setup).await,
        8,
        "V9 cannot apply while the long query holds its table"
    );
    assert!(
        !migrating.is_finished(),
        "the migration gave up: {migrating:?}"
    );

    long_query.batch_execute("COMMIT").await.unwrap();
    migration::assert_finished_at_v9(&setup, migrating).await;
}

/// A failure no retry can fix ends the migrations at once with Postgres'
/// reason, instead of a WARN repeated forever: here a database that does
/// not exist (3D000), as a wrong password (28P01) would.
#[tokio::test]
async fn a_definite_postgres_error_ends_the_migrations_at_once() {
    let Some(stack) = stack() else { return };
    let missing = stack.postgres_url(&format!("no_such_database_{}", std::process::id()));
    let migrating = migration::spawn_migrations(missing, Duration::ZERO);
    let result = tokio::time::timeout(Duration::from_secs(60), migrating)
        .await
        .expect("the migrations kept retrying a database that does not exist")
        .unwrap();
    let error = result.expect_err("migrations into a database that does not exist");
    assert_eq!(error.sqlstate(), Some("3D000"), "{error}");
    assert_eq!(error.recovery(), analytics::store::Recovery::Definite);
}
