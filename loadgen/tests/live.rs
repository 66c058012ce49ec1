//! loadgen against the local stack: seeded distributions, exact pageviews,
//! totals that equal what MySQL and Kafka hold, and changes in the binlog.
//! Each test uses its own database and topic, so they run in parallel.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use loadgen::config::Config;
use loadgen::stats::Totals;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::prelude::Queryable;
use pipeline::pageview::{Pageview, CHANNELS};
use pipeline::testing::{unique_name, Stack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// The shop tables as the migrations define them, created in `database`.
const SHOP_TABLES: &str = include_str!("../../migrations/mysql/V2__shop_tables.sql");

async fn shop_database(stack: &Stack) -> String {
    let db = stack.fresh_mysql_database().await;
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    let ddl = SHOP_TABLES.replace("shop.", &format!("`{db}`."));
    for stmt in ddl.split(';').filter(|s| s.contains("CREATE")) {
        conn.query_drop(stmt).await.unwrap();
    }
    conn.disconnect().await.ok();
    db
}

fn config(stack: &Stack, db: &str, topic: &str, extra: &[&str]) -> Config {
    let url = stack.mysql_url(None);
    let mut args = vec![
        "loadgen",
        "--mysql-url",
        &url,
        "--database",
        db,
        "--kafka-bootstrap-servers",
        &stack.kafka_bootstrap_servers,
        "--pageviews-topic",
        topic,
        "--stats-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    Config::try_parse_from(args).expect("flags parse")
}

/// Runs loadgen to completion, returning its totals and printed output.
async fn run(config: Config) -> (Totals, String) {
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let out: loadgen::stats::Out = buf.clone();
    let totals = loadgen::run(config, CancellationToken::new(), out)
        .await
        .unwrap_or_else(|e| panic!("loadgen failed: {e}"));
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    (totals, text)
}

/// Every message of `topic`, read to partition EOF: (key, payload).
async fn read_topic(stack: &Stack, topic: &str) -> Vec<(String, Vec<u8>)> {
    let mut config = stack.kafka().client_config();
    config
        .set("group.id", unique_name("loadgen-test"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create().unwrap();
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        let partitions = metadata.topics()[0].partitions().len();
        assert!(partitions > 0, "topic {topic} has no partitions");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut at_end = HashSet::new();
        let mut messages = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while at_end.len() < partitions {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out reading {topic}"
            );
            match consumer.poll(Duration::from_millis(500)) {
                None => {}
                Some(Ok(m)) => messages.push((
                    String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap(),
                    m.payload().unwrap_or_default().to_vec(),
                )),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
            }
        }
        messages
    })
    .await
    .unwrap()
}

async fn count(conn: &mut mysql_async::Conn, sql: &str) -> u64 {
    conn.query_first::<u64, _>(sql).await.unwrap().unwrap_or(0)
}

#[tokio::test]
async fn a_seeded_run_has_the_original_distributions_and_valid_ids() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let topic = unique_name("pageviews");
    let (totals, _) = run(config(
        &stack,
        &db,
        &topic,
        &[
            "--seed",
            "11",
            "--purchases-per-sec",
            "2000",
            "--max-purchases",
            "400",
            "--pageviews-per-sec",
            "0",
            "--no-mutations",
            // The original's distributions (the session model skews them).
            "--uniform",
        ],
    ))
    .await;
    assert_eq!(totals.purchases, 400);
    let mut c = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM items").await, 1000);
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM users").await, 10_000);
    // Ids are 1..N: nothing at 0, nothing past N.
    assert_eq!(count(&mut c, "SELECT MIN(id) FROM items").await, 1);
    assert_eq!(count(&mut c, "SELECT MAX(id) FROM users").await, 10_000);

    let cats: Vec<String> = c
        .query("SELECT DISTINCT category FROM items ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(cats, ["clearance", "doodads", "gadgets", "widgets"]);
    let (min_p, max_p, min_i, max_i): (String, String, i64, i64) = c
        .query_first("SELECT CAST(MIN(price) AS CHAR), CAST(MAX(price) AS CHAR), MIN(inventory), MAX(inventory) FROM items")
        .await
        .unwrap()
        .unwrap();
    let (min_p, max_p): (f64, f64) = (min_p.parse().unwrap(), max_p.parse().unwrap());
    assert!(
        min_p >= 5.0 && max_p <= 500.0 && max_p - min_p > 400.0,
        "{min_p}..{max_p}"
    );
    assert!(min_i >= 1000 && max_i <= 5000, "{min_i}..{max_i}");
    let two_words = count(
        &mut c,
        "SELECT COUNT(*) FROM items WHERE name REGEXP '^[a-z]+ [a-z]+$'",
    )
    .await;
    assert_eq!(two_words, 1000);

    let vip = count(&mut c, "SELECT COUNT(*) FROM users WHERE is_vip").await as f64 / 10_000.0;
    assert!((vip - 2.0 / 11.0).abs() < 0.02, "VIP ratio {vip}");
    assert_eq!(
        count(
            &mut c,
            "SELECT COUNT(*) FROM users WHERE email NOT LIKE '%_@_%'"
        )
        .await,
        0
    );

    // Every purchase joins to an item and a user, with the original's shape.
    assert_eq!(
        count(
            &mut c,
            "SELECT COUNT(*) FROM purchases p JOIN items i ON i.id = p.item_id JOIN users u ON u.id = p.user_id \
             WHERE p.quantity BETWEEN 1 AND 5 AND p.status IN (0, 1) AND NOT p.deleted \
             AND p.purchase_price = i.price * p.quantity"
        )
        .await,
        400
    );
    let complete =
        count(&mut c, "SELECT COUNT(*) FROM purchases WHERE status = 1").await as f64 / 400.0;
    assert!((complete - 0.9).abs() < 0.06, "complete ratio {complete}");

    // Only the purchasers' own pageviews were sent, one per purchase.
    let msgs = read_topic(&stack, &topic).await;
    assert_eq!(msgs.len() as u64, totals.pageviews_delivered);
    assert_eq!(totals.purchase_pageviews, 400);
    let mut per_pair: HashMap<(u64, u64), i64> = HashMap::new();
    for (_, payload) in &msgs {
        let pv: Pageview = serde_json::from_slice(payload).unwrap();
        let pipeline::pageview::PageviewTarget::Product(item) = pv.target().unwrap() else {
            panic!("a purchaser's pageview is a product page: {pv:?}")
        };
        *per_pair.entry((pv.user_id, item)).or_default() += 1;
    }
    let purchases: Vec<(u64, u64)> = c
        .query("SELECT user_id, item_id FROM purchases")
        .await
        .unwrap();
    for pair in purchases {
        *per_pair.entry(pair).or_default() -= 1;
    }
    assert!(
        per_pair.values().all(|n| *n == 0),
        "pageviews and purchases differ"
    );

    // Running again reuses the seed instead of adding to it.
    let (again, out) = run(config(
        &stack,
        &db,
        &topic,
        &[
            "--max-purchases",
            "5",
            "--purchases-per-sec",
            "100",
            "--pageviews-per-sec",
            "0",
        ],
    ))
    .await;
    assert_eq!(again.seeding.unwrap().items_inserted, 0);
    assert!(out.contains("1000 items, 10000 users reused"), "{out}");
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM items").await, 1000);
    // --reseed starts over from id 1.
    let (re, _) = run(config(
        &stack,
        &db,
        &topic,
        &[
            "--reseed",
            "--items",
            "20",
            "--users",
            "30",
            "--max-purchases",
            "3",
            "--pageviews-per-sec",
            "0",
        ],
    ))
    .await;
    assert_eq!(re.seeding.unwrap().items_inserted, 20);
    assert_eq!(count(&mut c, "SELECT COUNT(*) FROM users").await, 30);
    assert_eq!(count(&mut c, "SELECT MAX(id) FROM items").await, 20);
    assert_eq!(
        count(&mut c, "SELECT COUNT(*) FROM purchases").await,
        3 - re.hard_deletes
    );
    c.disconnect().await.ok();
}

#[tokio::test]
async fn bounded_run_totals_equal_mysql_rows_and_kafka_messages() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let topic = unique_name("pageviews");
    let (totals, out) = run(config(
        &stack,
        &db,
        &topic,
        &[
            "--items",
            "50",
            "--users",
            "200",
            "--purchases-per-sec",
            "500",
            "--max-purchases",
            "300",
            "--pageviews-per-sec",
            "20000",
            "--max-pageviews",
            "4000",
            "--pageviews-partitions",
            "3",
            "--hard-deletes-per-purchase",
            "0.1",
            "--mysql-connections",
            "2",
        ],
    ))
    .await;
    assert_eq!(totals.purchases, 300);
    assert_eq!(totals.pageviews, 4000);
    assert_eq!(totals.purchase_pageviews, 300);
    assert_eq!(totals.pageviews_delivered, 4300);
    assert_eq!(totals.pageviews_failed, 0);
    assert!(totals.hard_deletes > 0, "{totals:?}");
    assert!(out.contains("totals after"), "{out}");
    assert!(out.contains("pageviews delivered 4300"), "{out}");

    let mut c = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    assert_eq!(
        count(&mut c, "SELECT COUNT(*) FROM purchases").await,
        totals.purchases - totals.hard_deletes
    );
    c.disconnect().await.ok();

    let msgs = read_topic(&stack, &topic).await;
    assert_eq!(msgs.len() as u64, totals.pageviews_delivered);
    for (key, payload) in &msgs {
        // Exactly the original's four fields, in its order, key = user id.
        let raw: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let keys: Vec<&String> = raw.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{raw}");
        let text = std::str::from_utf8(payload).unwrap();
        assert!(text.starts_with("{\"user_id\":"), "{text}");
        let pv: Pageview = serde_json::from_value(raw).unwrap();
        assert_eq!(key, &pv.user_id.to_string());
        assert!((1..=200).contains(&pv.user_id));
        assert!(CHANNELS.contains(&pv.channel.as_str()));
        match pv.target().unwrap() {
            pipeline::pageview::PageviewTarget::Product(id) => assert!((1..=50).contains(&id)),
            pipeline::pageview::PageviewTarget::Profile(id) => assert!((1..=200).contains(&id)),
        }
        let now = loadgen::pageviews::unix_now();
        assert!(
            (now - 600..=now).contains(&pv.received_at),
            "received_at in seconds: {pv:?}"
        );
    }
}

/// Reads the binlog from `from` to its current end and returns, per table of
/// `db`, the kinds of row change seen: "insert", "delete", and "update:<column>"
/// for each column an update changed.
async fn binlog_changes(
    stack: &Stack,
    db: &str,
    from: (String, u64),
) -> HashMap<String, HashSet<String>> {
    let conn = mysql_async::Conn::from_url(stack.mysql_url(None))
        .await
        .unwrap();
    let server_id = 4_000_000 + (std::process::id() % 100_000);
    let mut stream = conn
        .get_binlog_stream(
            mysql_async::BinlogStreamRequest::new(server_id)
                .with_filename(from.0.as_bytes())
                .with_pos(from.1)
                .with_non_blocking(),
        )
        .await
        .unwrap();
    let columns: HashMap<&str, &[&str]> = HashMap::from([
        (
            "purchases",
            &[
                "id",
                "user_id",
                "item_id",
                "status",
                "quantity",
                "purchase_price",
                "deleted",
                "created_at",
                "updated_at",
            ][..],
        ),
        (
            "items",
            &[
                "id",
                "name",
                "category",
                "price",
                "inventory",
                "inventory_updated_at",
                "created_at",
                "updated_at",
            ][..],
        ),
        (
            "users",
            &["id", "email", "is_vip", "created_at", "updated_at"][..],
        ),
    ]);
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
            continue;
        };
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            continue;
        };
        if tme.database_name() != db {
            continue;
        }
        let table = tme.table_name().to_string();
        let kinds = seen.entry(table.clone()).or_default();
        match &rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                kinds.insert("insert".into());
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                kinds.insert("delete".into());
            }
            _ => {
                for row in rows.rows(tme) {
                    let (Some(before), Some(after)) = row.unwrap() else {
                        continue;
                    };
                    for (i, name) in columns[table.as_str()].iter().enumerate() {
                        if before.as_ref(i) != after.as_ref(i) && !name.ends_with("updated_at") {
                            kinds.insert(format!("update:{name}"));
                        }
                        if *name == "inventory_updated_at" && before.as_ref(i) != after.as_ref(i) {
                            kinds.insert("update:inventory_updated_at".into());
                        }
                    }
                }
            }
        }
    }
    seen
}

#[tokio::test]
async fn every_kind_of_change_reaches_the_binlog() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let topic = unique_name("pageviews");
    // Seed first, and date the inventory an hour back, so that a restock's
    // new inventory_updated_at differs even within the seed's second.
    let seeding = [
        "--seed",
        "5",
        "--items",
        "20",
        "--users",
        "40",
        "--max-purchases",
        "1",
    ];
    run(config(
        &stack,
        &db,
        &topic,
        &[
            &seeding[..],
            &["--pageviews-per-sec", "0", "--no-mutations"],
        ]
        .concat(),
    ))
    .await;
    let mut admin = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    admin
        .query_drop("UPDATE items SET inventory_updated_at = NOW() - INTERVAL 1 HOUR")
        .await
        .unwrap();
    let row: mysql_async::Row = admin
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .expect("binlog on");
    let start: (String, u64) = (row.get(0).unwrap(), row.get(1).unwrap());
    admin.disconnect().await.ok();

    let (totals, _) = run(config(
        &stack,
        &db,
        &topic,
        &[
            "--seed",
            "5",
            "--items",
            "20",
            "--users",
            "40",
            "--purchases-per-sec",
            "1000",
            "--max-purchases",
            "200",
            "--pageviews-per-sec",
            "0",
            // Rates high enough that 200 purchases surely bring every kind.
            "--completions-per-purchase",
            "0.5",
            "--soft-deletes-per-purchase",
            "0.2",
            "--hard-deletes-per-purchase",
            "0.2",
            "--restocks-per-purchase",
            "0.2",
            "--vip-upgrades-per-purchase",
            "0.1",
            "--email-changes-per-purchase",
            "0.2",
            // Shoppers who abandon come back at once: completions need not
            // wait out a quiet time (10 minutes of purchases by default).
            "--quiet-after-abandon",
            "0s",
        ],
    ))
    .await;
    for (kind, n) in [
        ("completions", totals.completions),
        ("soft deletes", totals.soft_deletes),
        ("hard deletes", totals.hard_deletes),
        ("restocks", totals.restocks),
        ("vip upgrades", totals.vip_upgrades),
        ("email changes", totals.email_changes),
    ] {
        assert!(n > 0, "no {kind}: {totals:?}");
    }
    let seen = binlog_changes(&stack, &db, start).await;
    let expect = [
        ("purchases", "insert"),
        ("purchases", "update:status"),
        ("purchases", "update:deleted"),
        ("purchases", "delete"),
        ("items", "update:inventory_updated_at"),
        ("users", "update:is_vip"),
        ("users", "update:email"),
    ];
    for (table, kind) in expect {
        assert!(
            seen.get(table).is_some_and(|k| k.contains(kind)),
            "{table}: no {kind} in the binlog; saw {seen:?}"
        );
    }
    // Changes touched only the columns they own.
    assert!(
        !seen["purchases"].contains("update:purchase_price"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn missing_schema_is_one_actionable_line() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = stack.fresh_mysql_database().await; // no tables
    let buf: loadgen::stats::Out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let err = loadgen::run(
        config(&stack, &db, "unused", &[]),
        CancellationToken::new(),
        buf,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("has no table") && err.contains("migrations/mysql"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test]
async fn unreachable_mysql_is_one_actionable_line() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let mut c = config(&stack, "shop", "unused", &[]);
    // Port 1 on loopback: nothing listens there.
    c.mysql_url = "mysql://root@127.0.0.1:1".into();
    let buf: loadgen::stats::Out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let err = loadgen::run(c, CancellationToken::new(), buf)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot reach MySQL at root@127.0.0.1:1/shop"),
        "{err}"
    );
    assert!(err.contains("MYSQL_URL"), "{err}");
}

#[tokio::test]
async fn killed_connections_are_retried_without_losing_count() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let topic = unique_name("pageviews");
    let cfg = config(
        &stack,
        &db,
        &topic,
        &[
            "--items",
            "20",
            "--users",
            "40",
            "--purchases-per-sec",
            "150",
            "--max-purchases",
            "450",
            "--pageviews-per-sec",
            "0",
            "--mysql-connections",
            "2",
            "--completions-per-purchase",
            "0.3",
            "--hard-deletes-per-purchase",
            "0.1",
        ],
    );
    let running = tokio::spawn(run(cfg));
    let mut admin = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    let mut kills = 0;
    for round in 1..=3u64 {
        // Kill loadgen's connections each time another 100 purchases are in.
        pipeline::testing::wait_until(Duration::from_secs(60), "purchases to arrive", || {
            let url = stack.mysql_url(Some(&db));
            async move {
                let mut c = mysql_async::Conn::from_url(url).await.ok()?;
                let n = count(&mut c, "SELECT COUNT(*) FROM purchases").await;
                c.disconnect().await.ok();
                (n >= round * 100).then_some(())
            }
        })
        .await;
        let me: u64 = admin
            .query_first("SELECT CONNECTION_ID()")
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<u64> = admin
            .exec(
                "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> ?",
                (db.as_str(), me),
            )
            .await
            .unwrap();
        for id in ids {
            if admin.query_drop(format!("KILL {id}")).await.is_ok() {
                kills += 1;
            }
        }
    }
    let (totals, _) = running.await.unwrap();
    assert!(kills > 0);
    assert!(
        totals.mysql_retries > 0,
        "no retry after {kills} kills: {totals:?}"
    );
    assert_eq!(totals.purchases, 450);
    assert_eq!(
        count(&mut admin, "SELECT COUNT(*) FROM purchases").await,
        totals.purchases - totals.hard_deletes,
        "{totals:?}"
    );
    admin.disconnect().await.ok();
}

/// Waits until session `waiter` is blocked on a row lock.
async fn wait_for_lock_wait(stack: &Stack, db: &str, waiter: u32) {
    pipeline::testing::wait_until(
        Duration::from_secs(30),
        "the lookup to wait for the lock",
        || {
            let url = stack.mysql_url(Some(db));
            async move {
                let mut c = mysql_async::Conn::from_url(url).await.ok()?;
                let waiting: Option<u64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.innodb_trx \
                     WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'",
                        (waiter,),
                    )
                    .await
                    .ok()?;
                c.disconnect().await.ok();
                (waiting? > 0).then_some(())
            }
        },
    )
    .await;
}

/// The lookup of an unanswered COMMIT waits for the transaction that
/// inserted the row to end, and answers with its outcome: committed, rolled
/// back, or killed with its session. It names no session, so a server
/// restart that hands the old session's id to a new one cannot make it wait
/// forever (the SHOW PROCESSLIST check it replaced did, and loadgen wrote
/// nothing after a MariaDB restart).
#[tokio::test]
async fn an_unanswered_commit_is_looked_up_once_its_transaction_ends() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let url = stack.mysql_url(Some(&db));
    let mut admin = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    let mut lookup = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    // A row nobody inserted is not there, at once.
    assert!(!loadgen::shop::purchase_committed(&mut lookup, 999_999)
        .await
        .unwrap());

    for ending in ["COMMIT", "ROLLBACK", "KILL"] {
        let mut writer = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
        writer.query_drop("START TRANSACTION").await.unwrap();
        writer
            .query_drop(
                "INSERT INTO purchases (user_id, item_id, status, quantity, purchase_price) \
                 VALUES (1, 1, 1, 1, 1.00)",
            )
            .await
            .unwrap();
        let row = writer.last_insert_id().unwrap();
        let waiter = lookup.id();
        let looking = tokio::spawn(async move {
            let found = loadgen::shop::purchase_committed(&mut lookup, row).await;
            (lookup, found)
        });
        wait_for_lock_wait(&stack, &db, waiter).await;
        assert!(
            !looking.is_finished(),
            "{ending}: answered before the transaction ended"
        );
        match ending {
            "KILL" => {
                admin
                    .query_drop(format!("KILL {}", writer.id()))
                    .await
                    .unwrap();
                drop(writer);
            }
            end => {
                writer.query_drop(end).await.unwrap();
                writer.disconnect().await.unwrap();
            }
        }
        let (back, found) = looking.await.unwrap();
        lookup = back;
        assert_eq!(found.unwrap(), ending == "COMMIT", "{ending}");
    }
    lookup.disconnect().await.ok();
    admin.disconnect().await.ok();
}

/// Rows a run leaves behind, timestamps aside.
async fn contents(stack: &Stack, db: &str) -> Vec<String> {
    let mut c = mysql_async::Conn::from_url(stack.mysql_url(Some(db)))
        .await
        .unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT CONCAT_WS(',', id, name, category, price, inventory) FROM items ORDER BY id",
        "SELECT CONCAT_WS(',', id, email, is_vip) FROM users ORDER BY id",
        "SELECT CONCAT_WS(',', id, user_id, item_id, status, quantity, purchase_price, deleted) FROM purchases ORDER BY id",
    ] {
        rows.extend(c.query::<String, _>(sql).await.unwrap());
    }
    c.disconnect().await.ok();
    rows
}

#[tokio::test]
async fn the_same_seed_writes_the_same_rows() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let mut results = Vec::new();
    for seed in ["21", "21", "22"] {
        let db = shop_database(&stack).await;
        let topic = unique_name("pageviews");
        let flags = [
            "--seed",
            seed,
            "--items",
            "30",
            "--users",
            "60",
            "--purchases-per-sec",
            "500",
            // One connection: statements in one order, ids in one order.
            "--mysql-connections",
            "1",
            "--max-purchases",
            "200",
            "--pageviews-per-sec",
            "0",
            "--completions-per-purchase",
            "0.2",
            "--soft-deletes-per-purchase",
            "0.1",
            "--hard-deletes-per-purchase",
            "0.1",
            "--restocks-per-purchase",
            "0.1",
            "--vip-upgrades-per-purchase",
            "0.1",
            "--email-changes-per-purchase",
            "0.1",
        ];
        run(config(&stack, &db, &topic, &flags)).await;
        results.push(contents(&stack, &db).await);
    }
    assert!(results[0].len() > 250, "{}", results[0].len());
    assert_eq!(results[0], results[1], "same seed, different rows");
    assert_ne!(results[0], results[2], "different seeds, same rows");
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {text}"))
}

#[tokio::test]
async fn sigterm_flushes_and_prints_totals_that_match() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let topic = unique_name("pageviews");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--database",
            &db,
            "--pageviews-topic",
            &topic,
            "--items",
            "50",
            "--users",
            "100",
        ])
        .args([
            "--purchases-per-sec",
            "50",
            "--pageviews-per-sec",
            "2000",
            "--hard-deletes-per-purchase",
            "0.1",
        ])
        .env("MYSQL_URL", stack.mysql_url(None))
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.kafka_bootstrap_servers)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    pipeline::testing::wait_until(Duration::from_secs(60), "purchases to arrive", || {
        let url = stack.mysql_url(Some(&db));
        async move {
            let mut c = mysql_async::Conn::from_url(url).await.ok()?;
            let n = c
                .query_first::<u64, _>("SELECT COUNT(*) FROM purchases")
                .await
                .ok()??;
            c.disconnect().await.ok();
            (n >= 30).then_some(())
        }
    })
    .await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let purchases = number_after(&stdout, "mysql  purchases");
    let hard_deletes = number_after(&stdout, "hard deletes");
    let delivered = number_after(&stdout, "pageviews delivered");
    assert_eq!(number_after(&stdout, "undelivered"), 0, "{stdout}");

    let mut c = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    assert_eq!(
        count(&mut c, "SELECT COUNT(*) FROM purchases").await,
        purchases - hard_deletes,
        "{stdout}"
    );
    c.disconnect().await.ok();
    assert_eq!(
        read_topic(&stack, &topic).await.len() as u64,
        delivered,
        "{stdout}"
    );
}

#[tokio::test]
async fn a_duration_ends_the_run() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = shop_database(&stack).await;
    let topic = unique_name("pageviews");
    let (totals, _) = run(config(
        &stack,
        &db,
        &topic,
        &[
            "--items",
            "10",
            "--users",
            "10",
            "--duration",
            "1500ms",
            "--purchases-per-sec",
            "20",
        ],
    ))
    .await;
    assert!(totals.elapsed_secs >= 1.5, "{totals:?}");
    assert!(totals.purchases > 0 && totals.pageviews > 0, "{totals:?}");
    let mut c = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .unwrap();
    assert_eq!(
        count(&mut c, "SELECT COUNT(*) FROM purchases").await,
        totals.purchases - totals.hard_deletes
    );
    c.disconnect().await.ok();
    assert_eq!(
        read_topic(&stack, &topic).await.len() as u64,
        totals.pageviews_delivered
    );
}
