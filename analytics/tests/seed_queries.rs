//! The seed demo's SQL runs unchanged against the analytics database.
//!
//! Every query below is copied verbatim from the seeds (seeds/000, the
//! Materialize e-commerce demo, and seeds/003, its abandoned-cart guide that
//! adds `last_user_visit`): the bodies of its views and the SELECTs it tells
//! the reader to run. They run against a database analytics migrated and fed
//! (users, items, purchases through Debezium records, pageviews as JSON), and
//! each must return rows. Left out, because they are Materialize statements
//! and not queries: CREATE SOURCE/SECRET/CONNECTION/CLUSTER/INDEX/SINK and
//! SUBSCRIBE. One seed query is not Postgres syntax at all: v_pageviews' own
//! body (`regexp_match(...)[1]` needs parentheses around the call, and
//! Postgres 15 wants an alias on the subquery); it is checked with exactly
//! those two changes against `json_pageviews`.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use analytics::decode::{ItemRow, PageviewEvent, PurchaseRow, UserRow};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use harness::{create_topics, setup};
use pipeline::pageview::CHANNELS;
use pipeline::testing::stack;
use tokio_postgres::{Client, Row};

const CATCH_UP: Duration = Duration::from_secs(120);

/// (what, the seed's SQL verbatim, the columns it names).
const SEED_QUERIES: &[(&str, &str, &[&str])] = &[
    (
        "000 item_pageviews body",
        "SELECT target_id AS item_id,
           channel,
           COUNT(*) as pageviews
    FROM v_pageviews
    WHERE pageview_type = 'products'
    GROUP BY item_id, channel;",
        &["item_id", "channel", "pageviews"],
    ),
    (
        "000 item_pageviews select",
        "SELECT * FROM item_pageviews ORDER BY pageviews DESC LIMIT 10;",
        &["item_id", "channel", "pageviews"],
    ),
    (
        "000 purchase_summary body",
        "SELECT
           item_id,
           SUM(purchase_price) as revenue,
           COUNT(id) AS orders,
           SUM(quantity) AS items_sold
       FROM purchases
       GROUP BY item_id;",
        &["item_id", "revenue", "orders", "items_sold"],
    ),
    (
        "000 item_summary body",
        "SELECT
           items.name AS item_name,
           items.category AS item_category,
           SUM(purchase_summary.items_sold) as items_sold,
           SUM(purchase_summary.orders) as orders,
           SUM(purchase_summary.revenue) as revenue,
           SUM(item_pageviews.pageviews) as pageviews,
           SUM(purchase_summary.orders) / SUM(item_pageviews.pageviews)::double AS conversion_rate
       FROM items
       JOIN purchase_summary ON purchase_summary.item_id = items.id
       JOIN item_pageviews ON item_pageviews.item_id = items.id
       GROUP BY item_name, item_category;",
        &[
            "item_name",
            "item_category",
            "items_sold",
            "orders",
            "revenue",
            "pageviews",
            "conversion_rate",
        ],
    ),
    (
        "000 item_summary select",
        "SELECT * FROM item_summary ORDER BY conversion_rate DESC LIMIT 10;",
        &[
            "item_name",
            "item_category",
            "items_sold",
            "orders",
            "revenue",
            "pageviews",
            "conversion_rate",
            // Our addition: same-named items stay apart (analytics/README.md).
            "item_id",
        ],
    ),
    (
        "000 remaining_stock body",
        "SELECT
         items.id AS item_id,
         MAX(items.inventory) - SUM(purchases.quantity) AS remaining_stock
       FROM items
       JOIN purchases ON purchases.item_id = items.id
        AND purchases.created_at > items.inventory_updated_at
       GROUP BY items.id;",
        &["item_id", "remaining_stock"],
    ),
    (
        "000 trending_items body",
        "SELECT
           p1.item_id,
           (
               SELECT COUNT(*)
               FROM purchase_summary p2
               WHERE p2.items_sold > p1.items_sold
           ) as trend_rank
       FROM purchase_summary p1;",
        &["item_id", "trend_rank"],
    ),
    (
        "000 item_metadata body",
        "SELECT
           rs.item_id as id, rs.remaining_stock, ti.trend_rank
       FROM remaining_stock rs
       JOIN trending_items ti ON ti.item_id = rs.item_id;",
        &["id", "remaining_stock", "trend_rank"],
    ),
    (
        "000 high_value_users body",
        "SELECT
   users.id,
   users.email,
   SUM(purchase_price * quantity)::int AS lifetime_value,
   COUNT(*) as purchases
 FROM users
 JOIN purchases ON purchases.user_id = users.id
 GROUP BY 1,2
 HAVING SUM(purchase_price * quantity) > 10000;",
        &["id", "email", "lifetime_value", "purchases"],
    ),
    (
        "000 incomplete_purchases body",
        "SELECT
        users.id AS user_id,
        users.email AS email,
        users.is_vip AS is_vip,
        purchases.item_id,
        purchases.status,
        purchases.quantity,
        purchases.purchase_price,
        purchases.created_at,
        purchases.updated_at
    FROM users
    JOIN purchases ON purchases.user_id = users.id
    WHERE purchases.status = 0;",
        &[
            "user_id",
            "email",
            "is_vip",
            "item_id",
            "status",
            "quantity",
            "purchase_price",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "000 inactive_users_last_3_mins body",
        "SELECT
        user_id,
        date_trunc('minute', to_timestamp(received_at)) as visited_at_minute
    FROM v_pageviews
    WHERE
    mz_now() >= (received_at*1000 + 180000)::numeric
    GROUP BY 1,2;",
        &["user_id", "visited_at_minute"],
    ),
    (
        "000 inactive_users_last_3_mins select",
        "SELECT * FROM inactive_users_last_3_mins LIMIT 5;",
        &["user_id", "visited_at_minute"],
    ),
    (
        "000 abandoned_cart body",
        "SELECT
        incomplete_purchases.user_id,
        incomplete_purchases.email,
        incomplete_purchases.item_id,
        incomplete_purchases.purchase_price,
        incomplete_purchases.status
    FROM incomplete_purchases
    JOIN inactive_users_last_3_mins ON inactive_users_last_3_mins.user_id = incomplete_purchases.user_id
    GROUP BY 1, 2, 3, 4, 5;",
        &["user_id", "email", "item_id", "purchase_price", "status"],
    ),
    (
        "000 Metabase question",
        "SELECT * FROM item_summary ORDER BY conversion_rate DESC;",
        &[
            "item_name",
            "item_category",
            "items_sold",
            "orders",
            "revenue",
            "pageviews",
            "conversion_rate",
            "item_id",
        ],
    ),
    (
        "003 last_user_visit body",
        "SELECT DISTINCT ON(user_id) user_id, received_at
        FROM v_pageviews
        ORDER BY 1, 2 DESC;",
        &["user_id", "received_at"],
    ),
    (
        "003 inactive_users_last_3_mins body",
        "SELECT
            user_id,
            date_trunc('minute', to_timestamp(received_at)) as visited_at_minute
        FROM last_user_visit
        WHERE mz_now() >= (received_at*1000 + 180000)::numeric
        GROUP BY 1,2;",
        &["user_id", "visited_at_minute"],
    ),
    (
        "003 abandoned_cart select",
        "SELECT * FROM abandoned_cart LIMIT 10;",
        &["user_id", "email", "item_id", "purchase_price", "status"],
    ),
];

/// seeds/000's v_pageviews body with the only two changes Postgres needs:
/// parentheses around `regexp_match(...)` before `[1]`, an alias on the subquery.
const V_PAGEVIEWS_BODY_PG: &str = "SELECT
        (data->'user_id')::int AS user_id,
        -- Extract pageview type and target ID from URL
        (regexp_match(data->>'url', '/(products|profiles)/'))[1] AS pageview_type,
        ((regexp_match(data->>'url', '/(?:products|profiles)/(\\d+)'))[1])::int AS target_id,
        data->>'channel' AS channel,
        (data->>'received_at')::bigint AS received_at
    FROM (SELECT CONVERT_FROM(data, 'utf8')::jsonb AS data FROM json_pageviews) AS json_pageviews";

fn now_s() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Every row as text, sorted, for comparing two queries.
async fn rows_text(client: &Client, sql: &str) -> BTreeSet<String> {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

fn columns(rows: &[Row]) -> Vec<String> {
    rows.first()
        .map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_queries_run_unchanged_and_return_rows() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let analytics = env.start(&[]);

    let now = now_s();
    let long_ago = now - TimeDelta::days(1);
    for id in 1..=4i64 {
        env.upsert_user(
            UserRow {
                id,
                email: Some(format!("shopper{id}@example.com")),
                is_vip: Some(id == 1),
                created_at: Some(long_ago),
                updated_at: Some(long_ago),
            },
            long_ago,
        )
        .await;
    }
    for id in 1..=3i64 {
        env.upsert_item(
            ItemRow {
                id,
                name: Some(format!("item {id}")),
                category: Some("widgets".into()),
                price: Some(250_000 * id), // cents: 2,500.00 .. 7,500.00
                inventory: Some(1_000),
                inventory_updated_at: Some(long_ago),
                created_at: Some(long_ago),
                updated_at: Some(long_ago),
            },
            long_ago,
        )
        .await;
    }
    // User 1 spends past 10,000; user 4 leaves purchase 9 incomplete.
    for id in 1..=9i64 {
        let (user_id, item_id, quantity) = match id {
            1..=4 => (1, 1 + id % 3, 2),
            9 => (4, 2, 1),
            _ => (2 + id % 2, 1 + id % 3, 1),
        };
        let at = now - TimeDelta::minutes(10) + TimeDelta::seconds(id);
        env.upsert_purchase(
            PurchaseRow {
                id,
                user_id: Some(user_id),
                item_id: Some(item_id),
                status: Some(if id == 9 { 0 } else { 1 }),
                quantity: Some(quantity),
                purchase_price: Some(250_000 * item_id * quantity),
                deleted: Some(false),
                created_at: Some(at),
                updated_at: Some(at),
            },
            at,
        )
        .await;
    }
    // Users 1-3 browse now; user 4 last browsed 5 minutes ago (inside the
    // pageview log's 15 minutes, outside the 3-minute window).
    for i in 0..60i64 {
        let user_id = 1 + i % 4;
        let at = if user_id == 4 {
            now - TimeDelta::minutes(5) - TimeDelta::seconds(i)
        } else {
            now - TimeDelta::seconds(i)
        };
        env.pageview(PageviewEvent {
            user_id,
            product: (i % 3 != 0).then_some(1 + i % 3),
            profile: None, // the harness fills in the profile page
            channel: CHANNELS[i as usize % CHANNELS.len()].into(),
            received_at: at,
        })
        .await;
    }
    env.wait_caught_up(CATCH_UP).await;
    let client = env.postgres().await;

    for (what, sql, want) in SEED_QUERIES {
        let rows = client
            .query(*sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{what} does not run: {e}\n{sql}"));
        assert!(!rows.is_empty(), "{what} returned no rows:\n{sql}");
        assert_eq!(columns(&rows), *want, "{what}: columns");
    }

    // The raw-stream objects hold the very pageviews sent, with the seed's
    // columns: json_pageviews parsed the seed's way equals v_pageviews...
    let v_pageviews = rows_text(
        &client,
        "SELECT user_id, pageview_type, target_id, channel, received_at FROM v_pageviews",
    )
    .await;
    assert_eq!(v_pageviews.len(), 60, "one row per pageview sent");
    assert_eq!(rows_text(&client, V_PAGEVIEWS_BODY_PG).await, v_pageviews);
    // ...the seed's item_pageviews over it equals the maintained table...
    assert_eq!(
        rows_text(&client, SEED_QUERIES[0].1).await,
        rows_text(
            &client,
            "SELECT item_id, channel, pageviews FROM item_pageviews"
        )
        .await
    );
    // ...and the guide's DISTINCT ON equals last_user_visit.
    assert_eq!(
        rows_text(&client, SEED_QUERIES[14].1).await,
        rows_text(&client, "SELECT user_id, received_at FROM last_user_visit").await
    );
    // The seed's temporal filter and the maintained view agree on who is
    // inactive: user 4 only.
    let inactive = rows_text(&client, "SELECT user_id FROM inactive_users_last_3_mins").await;
    assert_eq!(inactive, BTreeSet::from(["4".to_owned()]));
    let abandoned = rows_text(&client, "SELECT user_id, item_id FROM abandoned_cart").await;
    assert_eq!(abandoned, BTreeSet::from(["4|2".to_owned()]));

    analytics.0.store(true, std::sync::atomic::Ordering::SeqCst);
    analytics.1.await.unwrap();
}
