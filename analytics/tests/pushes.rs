//! The seed's pushes against the local stack: the `high-value-users` topic
//! (Debezium-style Avro upserts, deletes and tombstones), the
//! `abandoned-carts` topic and `NOTIFY abandoned_cart`, each cart once, also
//! across a restart.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use analytics::decode::{ItemRow, PageviewEvent, PurchaseRow, UserRow};
use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use futures::StreamExt;
use harness::{create_topics, setup, Env};
use pipeline::testing::{stack, unique_name, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

const CATCH_UP: Duration = Duration::from_secs(120);

fn now_s() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn user(id: i64, now: DateTime<Utc>) -> UserRow {
    UserRow {
        id,
        email: Some(format!("user{id}@example.com")),
        is_vip: Some(false),
        created_at: Some(now - TimeDelta::days(3)),
        updated_at: Some(now - TimeDelta::days(3)),
    }
}

fn purchase(id: i64, user_id: i64, status: i32, cents: i64, now: DateTime<Utc>) -> PurchaseRow {
    PurchaseRow {
        id,
        user_id: Some(user_id),
        item_id: Some(1),
        status: Some(status),
        quantity: Some(1),
        purchase_price: Some(cents),
        deleted: Some(false),
        created_at: Some(now),
        updated_at: Some(now),
    }
}

/// A pageview by `user_id` received at `at` (the inactivity clock).
async fn seen_at(env: &mut Env, user_id: i64, at: DateTime<Utc>) {
    env.pageview(PageviewEvent {
        user_id,
        product: Some(1),
        profile: None,
        channel: "search".into(),
        received_at: at,
    })
    .await;
}

/// LISTENs on the channel; every payload arrives on the receiver.
async fn listen(url: &str) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    client
        .batch_execute(&format!(
            "LISTEN {}",
            analytics::push::ABANDONED_CART_CHANNEL
        ))
        .await
        .unwrap();
    (client, rx)
}

/// Purchase ids of the notifications received so far (appended to `got`).
fn drain(rx: &mut mpsc::UnboundedReceiver<String>, got: &mut Vec<i64>) {
    while let Ok(payload) = rx.try_recv() {
        let json: serde_json::Value =
            serde_json::from_str(&payload).expect("NOTIFY payload is JSON");
        got.push(json["purchase_id"].as_i64().expect("purchase_id"));
    }
}

/// Every record of a one-partition topic, read to its end: (key, value).
fn read_topic(env: &Env, topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.stack.kafka_bootstrap_servers)
        .set("group.id", unique_name("push-reader"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + CATCH_UP;
    let mut records = Vec::new();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => records.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return records,
            _ => {}
        }
    }
    panic!("{topic} was not read to its end within {CATCH_UP:?}");
}

/// Decodes a Confluent-framed Avro datum with the writer schema from the registry.
async fn decode(registry: &str, bytes: &[u8]) -> Value {
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let client =
        pipeline::registry::RegistryClient::new(&pipeline::registry::RegistryArgs::new(registry))
            .unwrap();
    let schema = Schema::parse_str(&client.schema(id).await.unwrap()).unwrap();
    #[allow(deprecated)]
    apache_avro::from_avro_datum(&schema, &mut &bytes[5..], None).unwrap()
}

fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    &fields.iter().find(|(n, _)| n == name).unwrap().1
}

/// A nullable row as (email, lifetime value in cents, purchases).
fn row(value: &Value) -> Option<(Option<String>, i128, i64)> {
    let Value::Union(_, inner) = value else {
        panic!("not a union: {value:?}")
    };
    if **inner == Value::Null {
        return None;
    }
    let email = match field(inner, "email") {
        Value::Union(_, e) => match e.as_ref() {
            Value::String(s) => Some(s.clone()),
            _ => None,
        },
        other => panic!("email {other:?}"),
    };
    let Value::Decimal(ltv) = field(inner, "lifetime_value") else {
        panic!("lifetime_value is not a decimal")
    };
    let bytes: Vec<u8> = ltv.try_into().unwrap();
    let mut unscaled: i128 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for b in bytes {
        unscaled = (unscaled << 8) | i128::from(b);
    }
    let Value::Long(purchases) = field(inner, "purchases") else {
        panic!("purchases is not a long")
    };
    Some((email, unscaled, *purchases))
}

async fn published(client: &tokio_postgres::Client) -> BTreeMap<i64, String> {
    client
        .query(
            "SELECT user_id, lifetime_value::text FROM high_value_users_published",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn high_value_users_and_abandoned_carts_are_pushed_once() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let high_value_topic = env.topics.high_value_users.clone();
    let carts_topic = env.topics.abandoned_carts.clone();
    let extra = ["--push-interval-ms", "200", "--assignment", "all"];
    let (_listener, mut notifications) = listen(&env.postgres_url).await;
    let now = now_s();
    env.upsert_item(
        ItemRow {
            id: 1,
            name: Some("widget".into()),
            category: Some("widgets".into()),
            price: Some(100),
            inventory: Some(1_000_000),
            inventory_updated_at: Some(now - TimeDelta::days(1)),
            created_at: Some(now - TimeDelta::days(1)),
            updated_at: Some(now - TimeDelta::days(1)),
        },
        now,
    )
    .await;
    for u in 1..=6 {
        env.upsert_user(user(u, now), now).await;
    }
    // Users 1 and 2 cross $10,000 (completed purchases).
    env.upsert_purchase(purchase(1, 1, 1, 600_000, now), now)
        .await;
    env.upsert_purchase(purchase(2, 1, 1, 600_000, now), now)
        .await;
    let gone = purchase(3, 2, 1, 1_100_000, now);
    env.upsert_purchase(gone.clone(), now).await;
    // User 3 left a cart an hour ago; user 4's inactivity window ends in a
    // few seconds (the cart becomes abandoned while analytics runs); user 5
    // is still browsing.
    env.upsert_purchase(purchase(4, 3, 0, 5_000, now), now)
        .await;
    seen_at(&mut env, 3, now - TimeDelta::hours(1)).await;
    env.upsert_purchase(purchase(5, 4, 0, 7_000, now), now)
        .await;
    seen_at(
        &mut env,
        4,
        now - TimeDelta::minutes(3) + TimeDelta::seconds(5),
    )
    .await;
    env.upsert_purchase(purchase(6, 5, 0, 9_000, now), now)
        .await;
    seen_at(&mut env, 5, now).await;

    let (flag, task) = env.start(&extra);
    let client = env.postgres().await;
    let mut got = Vec::new();
    wait_until(CATCH_UP, "carts of users 3 and 4 notified", || {
        drain(&mut notifications, &mut got);
        let done = got.len() >= 2;
        async move { done.then_some(()) }
    })
    .await;
    wait_until(CATCH_UP, "users 1 and 2 published", || {
        let client = &client;
        async move { (published(client).await.len() == 2).then_some(()) }
    })
    .await;

    // User 1 buys more (an update); user 2's purchase is deleted (leaves the set).
    env.upsert_purchase(purchase(7, 1, 1, 100_000, now), now)
        .await;
    env.delete_purchase(&gone, now).await;
    wait_until(CATCH_UP, "user 1 updated and user 2 gone", || {
        let client = &client;
        async move {
            let p = published(client).await;
            (p.len() == 1 && p.get(&1).map(String::as_str) == Some("13000.00")).then_some(())
        }
    })
    .await;

    // Restart: nothing is notified twice; a cart abandoned after it is.
    flag.store(true, Ordering::SeqCst);
    task.await.unwrap();
    let (flag, task) = env.start(&extra);
    env.upsert_purchase(purchase(8, 6, 0, 3_000, now), now)
        .await;
    seen_at(&mut env, 6, now - TimeDelta::hours(1)).await;
    wait_until(CATCH_UP, "user 6's cart notified", || {
        drain(&mut notifications, &mut got);
        let done = got.contains(&8);
        async move { done.then_some(()) }
    })
    .await;
    wait_until(CATCH_UP, "the outbox drained", || {
        let client = &client;
        async move {
            let n: i64 = client
                .query_one("SELECT count(*) FROM push_outbox", &[])
                .await
                .ok()?
                .get(0);
            (n == 0).then_some(())
        }
    })
    .await;
    drain(&mut notifications, &mut got);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![4, 5, 8],
        "each abandoned cart notified once; user 5 is browsing"
    );

    // The abandoned-carts topic: the same carts, once each, keyed by user.
    let carts: Vec<(String, i64)> = read_topic(&env, &carts_topic)
        .into_iter()
        .map(|(k, v)| {
            let v: serde_json::Value = serde_json::from_slice(&v.expect("a cart event")).unwrap();
            assert_eq!(v["status"], 0);
            assert_eq!(v["email"], format!("user{}@example.com", v["user_id"]));
            (
                String::from_utf8(k).unwrap(),
                v["purchase_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let ids: BTreeSet<i64> = carts.iter().map(|c| c.1).collect();
    assert_eq!(carts.len(), 3);
    assert_eq!(ids, BTreeSet::from([4, 5, 8]));
    assert!(carts.contains(&("3".into(), 4)) && carts.contains(&("6".into(), 8)));

    // The high-value-users topic, followed as a Debezium sink would.
    let registry = env.stack.schema_registry_url.clone();
    let mut sink: BTreeMap<i64, (Option<String>, i128, i64)> = BTreeMap::new();
    let mut last_after: BTreeMap<i64, Option<(Option<String>, i128, i64)>> = BTreeMap::new();
    let mut ops: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (key, value) in read_topic(&env, &high_value_topic) {
        let Value::Long(id) = *field(&decode(&registry, &key).await, "id") else {
            panic!("key id is not a long")
        };
        let Some(value) = value else {
            ops.entry(id).or_default().push("tombstone".into());
            sink.remove(&id);
            continue;
        };
        let envelope = decode(&registry, &value).await;
        let Value::String(op) = field(&envelope, "op") else {
            panic!("op is not a string")
        };
        let (before, after) = (
            row(field(&envelope, "before")),
            row(field(&envelope, "after")),
        );
        // Each event's `before` is what the previous one's `after` left.
        assert_eq!(
            &before,
            last_after.get(&id).unwrap_or(&None),
            "user {id}: before of {op} is the previous after"
        );
        match (op.as_str(), &after) {
            ("c" | "u", Some(row)) => {
                sink.insert(id, row.clone());
            }
            ("d", None) => {
                sink.remove(&id);
            }
            other => panic!("user {id}: unexpected event {other:?}"),
        }
        last_after.insert(id, after);
        ops.entry(id).or_default().push(op.clone());
    }
    assert_eq!(
        sink,
        BTreeMap::from([(1, (Some("user1@example.com".into()), 1_300_000, 3))]),
        "the sink holds exactly the high-value set"
    );
    let user1 = &ops[&1];
    assert_eq!(user1.first().map(String::as_str), Some("c"));
    assert_eq!(user1.last().map(String::as_str), Some("u"));
    let user2 = &ops[&2];
    assert_eq!(user2.first().map(String::as_str), Some("c"));
    assert_eq!(
        user2[user2.len() - 2..].to_vec(),
        vec!["d".to_string(), "tombstone".to_string()],
        "leaving the set is a delete and a tombstone"
    );
    flag.store(true, Ordering::SeqCst);
    task.await.unwrap();
}
