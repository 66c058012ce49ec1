//! Ground truth: every analytics output computed independently, from MySQL's
//! final tables and the pageviews read back from Kafka, following each
//! output's definition in `migrations/postgres` (not analytics' code); and the
//! same outputs read from analytics' Postgres database.
//!
//! Invariants: both sides are converted to the same exact values (money in
//! cents, times in Unix seconds, DATETIME wall clock read as UTC like
//! Debezium's `connect` mode); the outputs that depend on the clock
//! (`inactive_users_last_3_mins`, `abandoned_cart`) are computed for the
//! `now()` of the very transaction that read analytics' side; `fired_at` of
//! `low_stock_alerts` (the commit time of the alert) has no ground truth and
//! is left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mysql_async::prelude::Queryable;
use pipeline::pageview::{Pageview, PageviewTarget};

use super::table::{Row, Table};
use super::topics::TopicContents;

#[derive(Debug, Clone)]
pub struct Item {
    pub id: i64,
    pub name: Option<String>,
    pub category: Option<String>,
    pub price_cents: Option<i64>,
    pub inventory: Option<i64>,
    pub inventory_updated_at: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: Option<String>,
    pub is_vip: Option<bool>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Purchase {
    pub id: i64,
    pub user_id: Option<i64>,
    pub item_id: Option<i64>,
    pub status: Option<i64>,
    pub quantity: Option<i64>,
    pub price_cents: Option<i64>,
    pub deleted: Option<bool>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// The raw data the pipeline started from.
#[derive(Debug, Clone)]
pub struct Source {
    pub items: Vec<Item>,
    pub users: Vec<User>,
    pub purchases: Vec<Purchase>,
    pub pageviews: Vec<Pageview>,
}

/// MySQL TIMESTAMP as Unix seconds.
const TS: &str = "CAST(UNIX_TIMESTAMP({}) AS SIGNED)";
/// MySQL DATETIME (no zone) as seconds since 1970-01-01 00:00:00 of its wall
/// clock: Debezium's `connect` mode reads DATETIME as UTC.
const DT: &str = "TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {})";

fn ts(col: &str) -> String {
    TS.replace("{}", col)
}

fn dt(col: &str) -> String {
    DT.replace("{}", col)
}

impl Source {
    /// Reads MySQL's tables (final: call it once loadgen has exited) and
    /// parses the pageviews read back from their topic.
    ///
    /// # Panics
    /// When a pageview is not the JSON loadgen must write, or its key is not
    /// its user id.
    pub async fn read(mysql: &mut mysql_async::Conn, pageviews: &TopicContents) -> Source {
        type ItemRow = (
            i64,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let items: Vec<ItemRow> = mysql
            .query(format!(
                "SELECT CAST(id AS SIGNED), name, category, CAST(ROUND(price * 100) AS SIGNED), \
                 inventory, {}, {}, {} FROM items",
                ts("inventory_updated_at"),
                ts("created_at"),
                dt("updated_at")
            ))
            .await
            .expect("read MySQL items");
        let items = items
            .into_iter()
            .map(|r| Item {
                id: r.0,
                name: r.1,
                category: r.2,
                price_cents: r.3,
                inventory: r.4,
                inventory_updated_at: r.5,
                created_at: r.6,
                updated_at: r.7,
            })
            .collect();
        type UserRow = (i64, Option<String>, Option<i64>, Option<i64>, Option<i64>);
        let users: Vec<UserRow> = mysql
            .query(format!(
                "SELECT CAST(id AS SIGNED), email, is_vip, {}, {} FROM users",
                ts("created_at"),
                dt("updated_at")
            ))
            .await
            .expect("read MySQL users");
        let users = users
            .into_iter()
            .map(|r| User {
                id: r.0,
                email: r.1,
                is_vip: r.2.map(|v| v != 0),
                created_at: r.3,
                updated_at: r.4,
            })
            .collect();
        type PurchaseRow = (
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let purchases: Vec<PurchaseRow> = mysql
            .query(format!(
                "SELECT CAST(id AS SIGNED), CAST(user_id AS SIGNED), CAST(item_id AS SIGNED), \
                 CAST(status AS SIGNED), CAST(quantity AS SIGNED), \
                 CAST(ROUND(purchase_price * 100) AS SIGNED), deleted, {}, {} FROM purchases",
                ts("created_at"),
                dt("updated_at")
            ))
            .await
            .expect("read MySQL purchases");
        let purchases = purchases
            .into_iter()
            .map(|r| Purchase {
                id: r.0,
                user_id: r.1,
                item_id: r.2,
                status: r.3,
                quantity: r.4,
                price_cents: r.5,
                deleted: r.6.map(|v| v != 0),
                created_at: r.7,
                updated_at: r.8,
            })
            .collect();
        let pageviews = pageviews
            .records
            .iter()
            .map(|r| {
                let payload = r.payload.as_deref().unwrap_or_else(|| {
                    panic!("pageview at {}/{} has no value", r.partition, r.offset)
                });
                let pv: Pageview = serde_json::from_slice(payload).unwrap_or_else(|e| {
                    panic!(
                        "pageview at {}/{} is not pageview JSON ({e}): {}",
                        r.partition,
                        r.offset,
                        String::from_utf8_lossy(payload)
                    )
                });
                assert_eq!(
                    r.key.as_deref(),
                    Some(pv.key().as_bytes()),
                    "pageview at {}/{}: the key must be the user id",
                    r.partition,
                    r.offset
                );
                pv
            })
            .collect();
        Source {
            items,
            users,
            purchases,
            pageviews,
        }
    }
}

/// Per-item sales over every purchase row present in MySQL.
#[derive(Debug, Default, Clone, Copy)]
struct Sales {
    revenue: i64,
    orders: i64,
    items_sold: i64,
}

impl Sales {
    fn add(&mut self, p: &Purchase) {
        // SQL's SUM skips NULLs; loadgen always sets price and quantity.
        self.revenue += p.price_cents.unwrap_or(0);
        self.orders += 1;
        self.items_sold += p.quantity.unwrap_or(0);
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct UserSales {
    purchases: i64,
    completed: i64,
    lifetime_value: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct ChannelViews {
    pageviews: i64,
    product_pageviews: i64,
}

/// How many values in `all` are greater than `v` (rank() - 1).
fn greater(all: &[i64], v: i64) -> i64 {
    all.iter().filter(|x| **x > v).count() as i64
}

/// `10000` in cents: high_value_users' lifetime value threshold.
const HIGH_VALUE_CENTS: i64 = 1_000_000;
const INACTIVE_AFTER_SECS: f64 = 180.0;

/// Every output as the definitions in `migrations/postgres` say it must be.
/// `now` is the Unix time (seconds, fractional) the time-window outputs are
/// evaluated at; `low_stock_threshold` the one analytics was started with.
pub fn expected(source: &Source, now: f64, low_stock_threshold: i64) -> Vec<Table> {
    let items: BTreeMap<i64, &Item> = source.items.iter().map(|i| (i.id, i)).collect();
    let users: BTreeMap<i64, &User> = source.users.iter().map(|u| (u.id, u)).collect();

    let mut by_item: BTreeMap<i64, Sales> = BTreeMap::new();
    let mut by_user: BTreeMap<i64, UserSales> = BTreeMap::new();
    let mut by_minute: BTreeMap<i64, Sales> = BTreeMap::new();
    for p in &source.purchases {
        if let Some(item) = p.item_id {
            by_item.entry(item).or_default().add(p);
        }
        if let Some(user) = p.user_id {
            let u = by_user.entry(user).or_default();
            u.purchases += 1;
            u.completed += i64::from(p.status.is_some_and(|s| s != 0));
            u.lifetime_value += p.price_cents.unwrap_or(0);
        }
        if let Some(created) = p.created_at {
            by_minute
                .entry(created.div_euclid(60) * 60)
                .or_default()
                .add(p);
        }
    }

    let mut item_channel: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut item_views: BTreeMap<i64, i64> = BTreeMap::new();
    let mut last_seen: BTreeMap<i64, i64> = BTreeMap::new();
    let mut user_channel: BTreeMap<(i64, String), ChannelViews> = BTreeMap::new();
    for pv in &source.pageviews {
        let user = pv.user_id as i64;
        let last = last_seen.entry(user).or_insert(pv.received_at);
        *last = (*last).max(pv.received_at);
        let uc = user_channel.entry((user, pv.channel.clone())).or_default();
        uc.pageviews += 1;
        match pv.target() {
            Ok(PageviewTarget::Product(item)) => {
                let item = item as i64;
                uc.product_pageviews += 1;
                *item_channel.entry((item, pv.channel.clone())).or_default() += 1;
                *item_views.entry(item).or_default() += 1;
            }
            Ok(PageviewTarget::Profile(_)) => {}
            Err(e) => panic!("loadgen wrote a pageview analytics cannot place: {e}"),
        }
    }

    let mut out = Vec::new();

    // The mirrors: analytics' copy of MySQL's rows, every column.
    out.push(Table::new(
        "users (mirror)",
        &["id", "email", "is_vip", "created_at", "updated_at"],
        source
            .users
            .iter()
            .map(|u| {
                vec![
                    u.id.into(),
                    u.email.clone().into(),
                    u.is_vip.into(),
                    u.created_at.into(),
                    u.updated_at.into(),
                ]
            })
            .collect(),
    ));
    out.push(Table::new(
        "items (mirror)",
        &[
            "id",
            "name",
            "category",
            "price_cents",
            "inventory",
            "inventory_updated_at",
            "created_at",
            "updated_at",
        ],
        source
            .items
            .iter()
            .map(|i| {
                vec![
                    i.id.into(),
                    i.name.clone().into(),
                    i.category.clone().into(),
                    i.price_cents.into(),
                    i.inventory.into(),
                    i.inventory_updated_at.into(),
                    i.created_at.into(),
                    i.updated_at.into(),
                ]
            })
            .collect(),
    ));
    out.push(Table::new(
        "purchases (mirror)",
        &[
            "id",
            "user_id",
            "item_id",
            "status",
            "quantity",
            "price_cents",
            "deleted",
            "created_at",
            "updated_at",
        ],
        source
            .purchases
            .iter()
            .map(|p| {
                vec![
                    p.id.into(),
                    p.user_id.into(),
                    p.item_id.into(),
                    p.status.into(),
                    p.quantity.into(),
                    p.price_cents.into(),
                    p.deleted.into(),
                    p.created_at.into(),
                    p.updated_at.into(),
                ]
            })
            .collect(),
    ));

    out.push(Table::new(
        "item_pageviews",
        &["item_id", "channel", "pageviews"],
        item_channel
            .iter()
            .map(|((item, channel), n)| vec![(*item).into(), channel.as_str().into(), (*n).into()])
            .collect(),
    ));

    out.push(Table::new(
        "purchase_summary",
        &["item_id", "revenue_cents", "orders", "items_sold"],
        by_item
            .iter()
            .map(|(item, s)| {
                vec![
                    (*item).into(),
                    s.revenue.into(),
                    s.orders.into(),
                    s.items_sold.into(),
                ]
            })
            .collect(),
    ));

    out.push(Table::new(
        "item_summary",
        &[
            "item_name",
            "item_category",
            "items_sold",
            "orders",
            "revenue_cents",
            "pageviews",
            "conversion_rate",
            "item_id",
        ],
        items
            .values()
            .filter_map(|i| {
                let s = by_item.get(&i.id).filter(|s| s.orders > 0)?;
                let views = *item_views.get(&i.id).filter(|v| **v > 0)?;
                Some(vec![
                    i.name.clone().into(),
                    i.category.clone().into(),
                    s.items_sold.into(),
                    s.orders.into(),
                    s.revenue.into(),
                    views.into(),
                    (s.orders as f64 / views as f64).into(),
                    i.id.into(),
                ])
            })
            .collect(),
    ));

    // inventory - quantity of the item's purchases created after its last
    // restock (strictly after: a purchase in the restock's second predates it).
    let remaining: BTreeMap<i64, Option<i64>> = items
        .values()
        .map(|i| {
            let sold: i64 = source
                .purchases
                .iter()
                .filter(|p| p.item_id == Some(i.id))
                .filter(|p| matches!((p.created_at, i.inventory_updated_at), (Some(c), Some(r)) if c > r))
                .map(|p| p.quantity.unwrap_or(0))
                .sum();
            (i.id, i.inventory.map(|inv| inv - sold))
        })
        .collect();
    out.push(Table::new(
        "remaining_stock",
        &["item_id", "remaining_stock"],
        remaining
            .iter()
            .map(|(id, r)| vec![(*id).into(), (*r).into()])
            .collect(),
    ));

    let sold: Vec<i64> = by_item.values().map(|s| s.items_sold).collect();
    let trend: BTreeMap<i64, i64> = by_item
        .iter()
        .map(|(item, s)| (*item, greater(&sold, s.items_sold)))
        .collect();
    out.push(Table::new(
        "trending_items",
        &["item_id", "trend_rank"],
        trend
            .iter()
            .map(|(item, rank)| vec![(*item).into(), (*rank).into()])
            .collect(),
    ));
    out.push(Table::new(
        "item_metadata",
        &["id", "remaining_stock", "trend_rank"],
        trend
            .iter()
            .filter_map(|(item, rank)| {
                let r = remaining.get(item)?;
                Some(vec![(*item).into(), (*r).into(), (*rank).into()])
            })
            .collect(),
    ));

    out.push(Table::new(
        "high_value_users",
        &["id", "email", "lifetime_value_cents", "purchases"],
        users
            .values()
            .filter_map(|u| {
                let s = by_user
                    .get(&u.id)
                    .filter(|s| s.lifetime_value > HIGH_VALUE_CENTS)?;
                Some(vec![
                    u.id.into(),
                    u.email.clone().into(),
                    s.lifetime_value.into(),
                    s.purchases.into(),
                ])
            })
            .collect(),
    ));

    let incomplete: Vec<(&User, &Purchase)> = source
        .purchases
        .iter()
        .filter(|p| p.status == Some(0))
        .filter_map(|p| Some((*users.get(&p.user_id?)?, p)))
        .collect();
    out.push(Table::new(
        "incomplete_purchases",
        &[
            "user_id",
            "email",
            "is_vip",
            "item_id",
            "status",
            "quantity",
            "purchase_price_cents",
            "created_at",
            "updated_at",
        ],
        incomplete
            .iter()
            .map(|(u, p)| {
                vec![
                    u.id.into(),
                    u.email.clone().into(),
                    u.is_vip.into(),
                    p.item_id.into(),
                    p.status.into(),
                    p.quantity.into(),
                    p.price_cents.into(),
                    p.created_at.into(),
                    p.updated_at.into(),
                ]
            })
            .collect(),
    ));

    // The window outputs read user_activity (newest pageview per user); it is
    // compared too, so the windows are checked even when a run is shorter
    // than the window and the views are empty.
    out.push(Table::new(
        "user_activity (backs inactive_users_last_3_mins)",
        &["user_id", "last_pageview_at"],
        last_seen
            .iter()
            .map(|(u, t)| vec![(*u).into(), (*t).into()])
            .collect(),
    ));
    let inactive: BTreeMap<i64, i64> = last_seen
        .iter()
        .filter(|(_, t)| (**t as f64) <= now - INACTIVE_AFTER_SECS)
        .map(|(u, t)| (*u, t.div_euclid(60) * 60))
        .collect();
    out.push(Table::new(
        "inactive_users_last_3_mins",
        &["user_id", "visited_at_minute"],
        inactive
            .iter()
            .map(|(u, m)| vec![(*u).into(), (*m).into()])
            .collect(),
    ));
    let abandoned: BTreeSet<Row> = incomplete
        .iter()
        .filter(|(u, _)| inactive.contains_key(&u.id))
        .map(|(u, p)| {
            vec![
                u.id.into(),
                u.email.clone().into(),
                p.item_id.into(),
                p.price_cents.into(),
                p.status.into(),
            ]
        })
        .collect();
    out.push(Table::new(
        "abandoned_cart",
        &[
            "user_id",
            "email",
            "item_id",
            "purchase_price_cents",
            "status",
        ],
        abandoned.into_iter().collect(),
    ));

    out.push(Table::new(
        "order_trends",
        &["minute", "orders", "revenue_cents", "items_sold"],
        by_minute
            .iter()
            .map(|(m, s)| {
                vec![
                    (*m).into(),
                    s.orders.into(),
                    s.revenue.into(),
                    s.items_sold.into(),
                ]
            })
            .collect(),
    ));

    out.push(Table::new(
        "low_stock_alerts (without fired_at)",
        &["item_id", "item_name", "remaining_stock", "threshold"],
        remaining
            .iter()
            .filter_map(|(id, r)| {
                let r = r.filter(|r| *r < low_stock_threshold)?;
                Some(vec![
                    (*id).into(),
                    items[id].name.clone().into(),
                    r.into(),
                    low_stock_threshold.into(),
                ])
            })
            .collect(),
    ));

    let mut funnel: BTreeMap<&str, [i64; 5]> = BTreeMap::new();
    for ((user, channel), v) in &user_channel {
        let f = funnel.entry(channel.as_str()).or_default();
        let viewer = v.product_pageviews > 0;
        let buyer = viewer && by_user.get(user).is_some_and(|s| s.completed > 0);
        f[0] += 1;
        f[1] += i64::from(viewer);
        f[2] += i64::from(buyer);
        f[3] += v.pageviews;
        f[4] += v.product_pageviews;
    }
    out.push(Table::new(
        "conversion_funnel",
        &[
            "channel",
            "visitors",
            "product_viewers",
            "buyers",
            "pageviews",
            "product_pageviews",
            "conversion_rate",
        ],
        funnel
            .iter()
            .map(|(channel, f)| {
                vec![
                    (*channel).into(),
                    f[0].into(),
                    f[1].into(),
                    f[2].into(),
                    f[3].into(),
                    f[4].into(),
                    (f[2] as f64 / f[0] as f64).into(),
                ]
            })
            .collect(),
    ));

    let name_of = |id: &i64| items.get(id).and_then(|i| i.name.clone());
    let category_of = |id: &i64| items.get(id).and_then(|i| i.category.clone());
    out.push(Table::new(
        "top_sellers",
        &[
            "item_id",
            "item_name",
            "item_category",
            "items_sold",
            "orders",
            "revenue_cents",
            "sales_rank",
        ],
        by_item
            .iter()
            .map(|(item, s)| {
                vec![
                    (*item).into(),
                    name_of(item).into(),
                    category_of(item).into(),
                    s.items_sold.into(),
                    s.orders.into(),
                    s.revenue.into(),
                    (1 + greater(&sold, s.items_sold)).into(),
                ]
            })
            .collect(),
    ));

    let views: Vec<i64> = item_views.values().copied().collect();
    out.push(Table::new(
        "most_viewed_products",
        &[
            "item_id",
            "item_name",
            "item_category",
            "pageviews",
            "view_rank",
        ],
        item_views
            .iter()
            .map(|(item, n)| {
                vec![
                    (*item).into(),
                    name_of(item).into(),
                    category_of(item).into(),
                    (*n).into(),
                    (1 + greater(&views, *n)).into(),
                ]
            })
            .collect(),
    ));
    out
}

/// The same outputs, in the same order, read from analytics' Postgres.
const ACTUAL: &[&str] = &[
    "SELECT id, email, is_vip, extract(epoch FROM created_at)::bigint, \
     extract(epoch FROM updated_at)::bigint FROM users",
    "SELECT id, name, category, (price * 100)::bigint, inventory, \
     extract(epoch FROM inventory_updated_at)::bigint, extract(epoch FROM created_at)::bigint, \
     extract(epoch FROM updated_at)::bigint FROM items",
    "SELECT id, user_id, item_id, status::bigint, quantity, (purchase_price * 100)::bigint, deleted, \
     extract(epoch FROM created_at)::bigint, extract(epoch FROM updated_at)::bigint FROM purchases",
    "SELECT item_id, channel, pageviews FROM item_pageviews",
    "SELECT item_id, (revenue * 100)::bigint, orders, items_sold FROM purchase_summary",
    "SELECT item_name, item_category, items_sold, orders, (revenue * 100)::bigint, pageviews, \
     conversion_rate, item_id FROM item_summary",
    "SELECT item_id, remaining_stock::bigint FROM remaining_stock",
    "SELECT item_id, trend_rank::bigint FROM trending_items",
    "SELECT id, remaining_stock::bigint, trend_rank::bigint FROM item_metadata",
    "SELECT id, email, (lifetime_value * 100)::bigint, purchases FROM high_value_users",
    "SELECT user_id, email, is_vip, item_id, status::bigint, quantity, (purchase_price * 100)::bigint, \
     extract(epoch FROM created_at)::bigint, extract(epoch FROM updated_at)::bigint \
     FROM incomplete_purchases",
    "SELECT user_id, extract(epoch FROM last_pageview_at)::bigint FROM user_activity",
    "SELECT user_id, extract(epoch FROM visited_at_minute)::bigint FROM inactive_users_last_3_mins",
    "SELECT user_id, email, item_id, (purchase_price * 100)::bigint, status::bigint FROM abandoned_cart",
    "SELECT extract(epoch FROM minute)::bigint, orders, (revenue * 100)::bigint, items_sold \
     FROM order_trends",
    "SELECT item_id, item_name, remaining_stock::bigint, threshold FROM low_stock_alerts",
    "SELECT channel, visitors, product_viewers, buyers, pageviews, product_pageviews, conversion_rate \
     FROM conversion_funnel",
    "SELECT item_id, item_name, item_category, items_sold, orders, (revenue * 100)::bigint, \
     sales_rank::bigint FROM top_sellers",
    "SELECT item_id, item_name, item_category, pageviews, view_rank::bigint FROM most_viewed_products",
];

/// analytics' outputs, named and ordered like [`expected`]'s (the names and
/// columns are taken from the ground truth), read in one snapshot, with the
/// `now()` of that snapshot in Unix seconds.
///
/// # Errors
/// The Postgres error, e.g. while analytics has not created its schema yet.
pub async fn actual(
    client: &mut tokio_postgres::Client,
    shape: &[Table],
) -> Result<(f64, Vec<Table>), tokio_postgres::Error> {
    assert_eq!(shape.len(), ACTUAL.len(), "one query per output");
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let now: f64 = tx
        .query_one("SELECT extract(epoch FROM now())::float8", &[])
        .await?
        .get(0);
    let mut tables = Vec::new();
    for (sql, table) in ACTUAL.iter().zip(shape) {
        let rows = tx.query(*sql, &[]).await?;
        let rows: Vec<Row> = rows.iter().map(|r| cells(r, sql)).collect();
        tables.push(Table::new(table.name, &table.columns, rows));
    }
    tx.commit().await?;
    Ok((now, tables))
}

fn cells(row: &tokio_postgres::Row, sql: &str) -> Row {
    use tokio_postgres::types::Type;
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| match *col.type_() {
            Type::BOOL => row.get::<_, Option<bool>>(i).into(),
            Type::INT2 => row.get::<_, Option<i16>>(i).map(i64::from).into(),
            Type::INT4 => row.get::<_, Option<i32>>(i).map(i64::from).into(),
            Type::INT8 => row.get::<_, Option<i64>>(i).into(),
            Type::FLOAT8 => row.get::<_, Option<f64>>(i).into(),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.get::<_, Option<String>>(i).into()
            }
            ref other => panic!(
                "column {} of `{sql}` has type {other}: cast it to bigint, float8 or text",
                col.name()
            ),
        })
        .collect()
}

/// Diffs of every output that differs (empty when all equal).
pub fn differences(expected: &[Table], actual: &[Table]) -> Vec<String> {
    expected
        .iter()
        .zip(actual)
        .filter_map(|(e, a)| e.diff(a, 8))
        .collect()
}

/// Row counts per output, to show what a run actually exercised.
pub fn summary(tables: &[Table]) -> String {
    let counts: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{}={}",
                t.name.split(' ').next().unwrap_or(t.name),
                t.rows.len()
            )
        })
        .collect();
    counts.join(" ")
}

/// Consumer offsets analytics stored for a group: (topic, partition) -> next.
pub async fn stored_offsets(
    client: &tokio_postgres::Client,
    group: &str,
) -> Result<HashMap<(String, i32), i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1",
            &[&group],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::table::Cell;

    fn purchase(
        id: i64,
        user: i64,
        item: i64,
        status: i64,
        qty: i64,
        cents: i64,
        at: i64,
    ) -> Purchase {
        Purchase {
            id,
            user_id: Some(user),
            item_id: Some(item),
            status: Some(status),
            quantity: Some(qty),
            price_cents: Some(cents),
            deleted: Some(false),
            created_at: Some(at),
            updated_at: Some(at),
        }
    }

    fn pageview(user: u64, url: &str, channel: &str, at: i64) -> Pageview {
        Pageview {
            user_id: user,
            url: url.into(),
            channel: channel.into(),
            received_at: at,
        }
    }

    fn source() -> Source {
        let item = |id, inventory, restocked| Item {
            id,
            name: Some(format!("item {id}")),
            category: Some("widgets".into()),
            price_cents: Some(500),
            inventory: Some(inventory),
            inventory_updated_at: Some(restocked),
            created_at: Some(0),
            updated_at: Some(restocked),
        };
        let user = |id| User {
            id,
            email: Some(format!("u{id}@example.com")),
            is_vip: Some(false),
            created_at: Some(0),
            updated_at: Some(0),
        };
        let mut deleted = purchase(3, 2, 2, 1, 5, 1_000_000, 50);
        deleted.deleted = Some(true);
        Source {
            items: vec![item(1, 100, 100), item(2, 50, 0)],
            users: vec![user(1), user(2)],
            purchases: vec![
                // In the restock's second: not sold since the restock.
                purchase(1, 1, 1, 1, 2, 1000, 100),
                purchase(2, 1, 1, 0, 3, 1500, 160),
                deleted,
            ],
            pageviews: vec![
                pageview(1, "/products/1", "social", 10),
                pageview(1, "/profiles/2", "social", 20),
                pageview(2, "/products/2", "display", 500),
            ],
        }
    }

    fn rows_of(tables: &[Table], name: &str) -> Vec<Row> {
        tables
            .iter()
            .find(|t| t.name.starts_with(name))
            .unwrap_or_else(|| panic!("no table {name}"))
            .rows
            .clone()
    }

    fn row(cells: &[Cell]) -> Row {
        cells.to_vec()
    }

    #[test]
    fn outputs_follow_the_definitions() {
        use Cell::{Float, Int, Text};
        // user 1's last pageview (20) is 181 s old; user 2's is recent.
        let t = expected(&source(), 201.0, 50);
        assert_eq!(
            rows_of(&t, "purchase_summary"),
            vec![
                row(&[Int(1), Int(2500), Int(2), Int(5)]),
                row(&[Int(2), Int(1_000_000), Int(1), Int(5)]),
            ],
            "soft-deleted purchases count: the definition is every row present"
        );
        assert_eq!(
            rows_of(&t, "remaining_stock"),
            vec![row(&[Int(1), Int(97)]), row(&[Int(2), Int(45)])]
        );
        assert_eq!(
            rows_of(&t, "trending_items"),
            vec![row(&[Int(1), Int(0)]), row(&[Int(2), Int(0)])],
            "ties share a rank"
        );
        assert!(
            rows_of(&t, "high_value_users").is_empty(),
            "exactly 10000 is not more than 10000"
        );
        assert_eq!(rows_of(&t, "incomplete_purchases").len(), 1);
        assert_eq!(
            rows_of(&t, "inactive_users_last_3_mins"),
            vec![row(&[Int(1), Int(0)])]
        );
        assert_eq!(
            rows_of(&t, "abandoned_cart"),
            vec![row(&[
                Int(1),
                Text("u1@example.com".into()),
                Int(1),
                Int(1500),
                Int(0)
            ])]
        );
        assert_eq!(
            rows_of(&t, "order_trends"),
            vec![
                row(&[Int(0), Int(1), Int(1_000_000), Int(5)]),
                row(&[Int(60), Int(1), Int(1000), Int(2)]),
                row(&[Int(120), Int(1), Int(1500), Int(3)]),
            ]
        );
        assert_eq!(
            rows_of(&t, "low_stock_alerts"),
            vec![row(&[Int(2), Text("item 2".into()), Int(45), Int(50)])]
        );
        assert_eq!(
            rows_of(&t, "conversion_funnel"),
            vec![
                row(&[
                    Text("display".into()),
                    Int(1),
                    Int(1),
                    Int(1),
                    Int(1),
                    Int(1),
                    Float(1.0)
                ]),
                row(&[
                    Text("social".into()),
                    Int(1),
                    Int(1),
                    Int(1),
                    Int(2),
                    Int(1),
                    Float(1.0)
                ]),
            ]
        );
        assert_eq!(
            rows_of(&t, "item_summary"),
            vec![
                row(&[
                    Text("item 1".into()),
                    Text("widgets".into()),
                    Int(5),
                    Int(2),
                    Int(2500),
                    Int(1),
                    Float(2.0),
                    Int(1)
                ]),
                row(&[
                    Text("item 2".into()),
                    Text("widgets".into()),
                    Int(5),
                    Int(1),
                    Int(1_000_000),
                    Int(1),
                    Float(1.0),
                    Int(2)
                ]),
            ]
        );
        // A moment earlier nobody is inactive yet.
        let t = expected(&source(), 199.0, 50);
        assert!(rows_of(&t, "inactive_users_last_3_mins").is_empty());
        assert!(rows_of(&t, "abandoned_cart").is_empty());
    }
}
