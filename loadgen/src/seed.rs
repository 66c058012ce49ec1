//! The shop's starting rows: items and users with the original demo's
//! distributions, written in batches, and the catalog traffic draws from.
//!
//! Invariants:
//! - Generation is a pure function of the seed: items come from their own RNG
//!   stream and users from theirs, so the same `--seed` gives the same rows (and
//!   changing `--users` does not change the items).
//! - Seeding a table is all-or-nothing (one transaction per table), so a table
//!   that holds rows holds a whole seed and is reused as it is; `--reseed`
//!   empties all three tables first, with TRUNCATE (one statement per table,
//!   not a row per purchase): cdc passes it on as Debezium's truncate event
//!   when run with `skipped.operations=none` (the demo's setting; Debezium's
//!   default skips it), and analytics then clears what the table fed.
//! - The [`Catalog`] is read back from the database, so traffic only ever names
//!   ids that exist (the original drew ids from 0..N, and id 0 joined to nothing).

use fake::faker::internet::en::FreeEmail;
use fake::rand::seq::IndexedRandom;
use fake::rand::Rng;
use fake::Fake;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts, Value};
use serde::Serialize;

use crate::shop::{self, ShopDb};
use crate::Error;

/// The four categories of the original demo.
pub const CATEGORIES: [&str; 4] = ["widgets", "gadgets", "doodads", "clearance"];

/// Price bounds in cents (5.00 ..= 500.00, whole cents).
pub const PRICE_CENTS: std::ops::RangeInclusive<u64> = 500..=50_000;
/// Starting inventory bounds (and the range restocks draw from).
pub const INVENTORY: std::ops::RangeInclusive<u32> = 1000..=5000;

/// Concrete nouns for two-noun item names, like the original's. `fake` has no
/// plain English noun list (its `BsNoun` is 44 business buzzwords), so the
/// names use this one; emails come from `fake`.
const NOUNS: &[&str] = &[
    "anchor", "apron", "axe", "backpack", "badge", "balloon", "basket", "beacon", "bell",
    "blanket", "bottle", "bowl", "bracelet", "brush", "bucket", "buckle", "button", "cable",
    "camera", "candle", "canteen", "carpet", "chair", "chisel", "clock", "compass", "cork",
    "cushion", "desk", "drill", "drum", "easel", "envelope", "fan", "feather", "flask", "flute",
    "fork", "funnel", "gadget", "globe", "glove", "hammer", "hanger", "helmet", "hinge", "hook",
    "jar", "kettle", "key", "kite", "ladder", "lamp", "lantern", "lens", "locket", "magnet",
    "mallet", "map", "mirror", "mitten", "mug", "napkin", "needle", "notebook", "oven", "paddle",
    "pail", "pan", "pencil", "pillow", "pipe", "plate", "pliers", "pot", "pulley", "quilt",
    "radio", "rake", "ribbon", "rope", "ruler", "saddle", "scarf", "scissors", "shovel", "sieve",
    "skillet", "sled", "spatula", "spindle", "spoon", "sprocket", "stapler", "stool", "strap",
    "table", "teapot", "thimble", "torch", "towel", "tray", "trowel", "tumbler", "umbrella",
    "valve", "vase", "wagon", "wallet", "whistle", "widget", "wrench", "yarn", "zipper",
];

/// An item as generated, before the database gives it an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewItem {
    pub name: String,
    pub category: &'static str,
    pub price_cents: u64,
    pub inventory: u32,
}

/// A user as generated, before the database gives it an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewUser {
    pub email: String,
    pub is_vip: bool,
}

pub fn new_item<R: Rng + ?Sized>(rng: &mut R) -> NewItem {
    let first = NOUNS.choose(rng).copied().unwrap_or("widget");
    let second = NOUNS.choose(rng).copied().unwrap_or("gadget");
    NewItem {
        name: format!("{first} {second}"),
        category: CATEGORIES.choose(rng).copied().unwrap_or(CATEGORIES[0]),
        price_cents: rng.random_range(PRICE_CENTS),
        inventory: rng.random_range(INVENTORY),
    }
}

pub fn new_user<R: Rng + ?Sized>(rng: &mut R) -> NewUser {
    NewUser {
        email: new_email(rng),
        // The original: randint(0, 10) > 8, i.e. 2 chances in 11.
        is_vip: rng.random_range(0..=10) > 8,
    }
}

pub fn new_email<R: Rng + ?Sized>(rng: &mut R) -> String {
    FreeEmail().fake_with_rng(rng)
}

/// Cents as the decimal text MySQL's DECIMAL columns take exactly ("123.45").
pub fn cents_text(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Parses DECIMAL text ("123.45", "7.5", "12") into cents; `None` when it has
/// more than two decimals or is not a number.
pub fn parse_cents(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 2 || whole.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

/// An item as traffic needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogItem {
    pub id: u64,
    pub price_cents: u64,
}

/// What exists to buy and who exists to buy it, as read from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub items: Vec<CatalogItem>,
    /// (id, is_vip), ordered by id.
    pub users: Vec<(u64, bool)>,
    /// Items whose inventory is below the seed's range (seeded low for the
    /// session model), ordered by id: the session model ranks them most
    /// popular even when the seed was made by another run with another --seed.
    pub low_stock: Vec<u64>,
}

impl Catalog {
    /// The catalog a fresh seed of these rows produces (ids 1..=N): used by
    /// --dry-run, which connects nowhere.
    pub fn assumed(items: &[NewItem], users: &[NewUser]) -> Self {
        Catalog {
            items: items
                .iter()
                .zip(1..)
                .map(|(it, id)| CatalogItem {
                    id,
                    price_cents: it.price_cents,
                })
                .collect(),
            users: users
                .iter()
                .zip(1..)
                .map(|(u, id)| (id, u.is_vip))
                .collect(),
            low_stock: items
                .iter()
                .zip(1..)
                .filter(|(it, _)| it.inventory < *INVENTORY.start())
                .map(|(_, id)| id)
                .collect(),
        }
    }

    pub fn random_item<R: Rng + ?Sized>(&self, rng: &mut R) -> CatalogItem {
        self.items[rng.random_range(0..self.items.len())]
    }

    pub fn random_user<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        self.users[rng.random_range(0..self.users.len())].0
    }
}

/// What seeding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeedOutcome {
    pub items_inserted: u64,
    pub users_inserted: u64,
    /// Rows found and reused.
    pub items_reused: u64,
    pub users_reused: u64,
}

pub fn generate_items(seed: u64, n: u32) -> Vec<NewItem> {
    let mut rng = crate::stream_rng(seed, crate::Stream::Items);
    (0..n).map(|_| new_item(&mut rng)).collect()
}

pub fn generate_users(seed: u64, n: u32) -> Vec<NewUser> {
    let mut rng = crate::stream_rng(seed, crate::Stream::Users);
    (0..n).map(|_| new_user(&mut rng)).collect()
}

/// Seeds whichever of items and users is empty (all three tables after
/// emptying them, with `reseed`), then reads the catalog back.
pub async fn ensure_seed(
    db: &ShopDb,
    seed: u64,
    items: u32,
    users: u32,
    batch: usize,
    reseed: bool,
    low_stock_items: u32,
) -> Result<(SeedOutcome, Catalog), Error> {
    let mut conn = db.conn().await?;
    if reseed {
        for table in ["purchases", "items", "users"] {
            // TRUNCATE also resets AUTO_INCREMENT, so a reseed starts at id 1 again.
            conn.query_drop(format!("TRUNCATE TABLE {table}"))
                .await
                .map_err(|e| db.refused("TRUNCATE (for --reseed)", e))?;
        }
    }
    let existing_items = count(db, &mut conn, "items").await?;
    let existing_users = count(db, &mut conn, "users").await?;
    let mut outcome = SeedOutcome {
        items_inserted: 0,
        users_inserted: 0,
        items_reused: existing_items,
        users_reused: existing_users,
    };
    let todo = if existing_items == 0 {
        u64::from(items)
    } else {
        0
    } + if existing_users == 0 {
        u64::from(users)
    } else {
        0
    };
    let bar = indicatif::ProgressBar::new(todo);
    bar.set_style(
        indicatif::ProgressStyle::with_template("seeding {bar:40} {pos}/{len} rows {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if existing_items == 0 {
        let mut rows = generate_items(seed, items);
        crate::shoppers::lower_hot_stock(seed, &mut rows, low_stock_items);
        outcome.items_inserted = insert_batched(
            db,
            &mut conn,
            "INSERT INTO items (name, category, price, inventory) VALUES ",
            "(?,?,?,?)",
            &rows,
            batch,
            &bar,
            |it| {
                vec![
                    it.name.clone().into(),
                    it.category.into(),
                    cents_text(it.price_cents).into(),
                    it.inventory.into(),
                ]
            },
        )
        .await?;
    }
    if existing_users == 0 {
        let rows = generate_users(seed, users);
        outcome.users_inserted = insert_batched(
            db,
            &mut conn,
            "INSERT INTO users (email, is_vip) VALUES ",
            "(?,?)",
            &rows,
            batch,
            &bar,
            |u| vec![u.email.clone().into(), u.is_vip.into()],
        )
        .await?;
    }
    bar.finish_and_clear();
    let catalog = load_catalog(db, &mut conn).await?;
    Ok((outcome, catalog))
}

async fn count(db: &ShopDb, conn: &mut Conn, table: &str) -> Result<u64, Error> {
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .map_err(|e| db.refused("counting existing rows", e))?;
    Ok(n.unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
async fn insert_batched<T>(
    db: &ShopDb,
    conn: &mut Conn,
    head: &str,
    tuple: &str,
    rows: &[T],
    batch: usize,
    bar: &indicatif::ProgressBar,
    values: impl Fn(&T) -> Vec<Value>,
) -> Result<u64, Error> {
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(|e| db.refused("starting the seed transaction", e))?;
    for chunk in rows.chunks(batch) {
        let mut sql = String::with_capacity(head.len() + chunk.len() * (tuple.len() + 1));
        sql.push_str(head);
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(tuple);
        }
        let params: Vec<Value> = chunk.iter().flat_map(&values).collect();
        tx.exec_drop(sql, params)
            .await
            .map_err(|e| db.refused("seeding", e))?;
        bar.inc(chunk.len() as u64);
    }
    tx.commit()
        .await
        .map_err(|e| db.refused("committing the seed", e))?;
    Ok(rows.len() as u64)
}

/// Reads every item's id and price and every user's id and VIP flag.
pub async fn load_catalog(db: &ShopDb, conn: &mut Conn) -> Result<Catalog, Error> {
    let items: Vec<(u64, String)> = conn
        .query("SELECT id, CAST(price AS CHAR) FROM items ORDER BY id")
        .await
        .map_err(|e| db.refused("reading items", e))?;
    let items = items
        .into_iter()
        .map(|(id, price)| {
            parse_cents(&price)
                .map(|price_cents| CatalogItem { id, price_cents })
                .ok_or_else(|| {
                    Error::BadData(format!("item {id} has price {price:?}, not a DECIMAL(7,2)"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let users: Vec<(u64, bool)> = conn
        .query("SELECT id, COALESCE(is_vip, FALSE) FROM users ORDER BY id")
        .await
        .map_err(|e| db.refused("reading users", e))?;
    if items.is_empty() || users.is_empty() {
        return Err(Error::BadData(format!(
            "{} has {} items and {} users after seeding; purchases need both (try --reseed)",
            shop::describe_db(db),
            items.len(),
            users.len()
        )));
    }
    let low_stock: Vec<u64> = conn
        .exec(
            "SELECT id FROM items WHERE inventory < ? ORDER BY id",
            (*INVENTORY.start(),),
        )
        .await
        .map_err(|e| db.refused("reading items", e))?;
    Ok(Catalog {
        items,
        users,
        low_stock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn items_follow_the_original_distributions() {
        let items = generate_items(7, 5000);
        let cats: HashSet<_> = items.iter().map(|i| i.category).collect();
        assert_eq!(cats, CATEGORIES.into_iter().collect::<HashSet<_>>());
        for it in &items {
            assert!(PRICE_CENTS.contains(&it.price_cents), "{it:?}");
            assert!(INVENTORY.contains(&it.inventory), "{it:?}");
            let words: Vec<_> = it.name.split(' ').collect();
            assert_eq!(words.len(), 2, "{it:?}");
            assert!(words.iter().all(|w| NOUNS.contains(w)), "{it:?}");
        }
        // Uniform prices: the mean sits near the middle of 5.00..500.00.
        let mean = items.iter().map(|i| i.price_cents as f64).sum::<f64>() / items.len() as f64;
        assert!((mean - 25_250.0).abs() < 1_000.0, "mean price {mean}");
        // Every category gets roughly a quarter.
        for c in CATEGORIES {
            let n = items.iter().filter(|i| i.category == c).count();
            assert!((1000..1500).contains(&n), "{c}: {n}");
        }
    }

    #[test]
    fn about_two_users_in_eleven_are_vip() {
        let users = generate_users(7, 20_000);
        let ratio = users.iter().filter(|u| u.is_vip).count() as f64 / users.len() as f64;
        assert!((ratio - 2.0 / 11.0).abs() < 0.01, "vip ratio {ratio}");
        assert!(users.iter().all(|u| u.email.contains('@')));
    }

    #[test]
    fn the_seed_decides_the_rows() {
        assert_eq!(generate_items(1, 50), generate_items(1, 50));
        assert_ne!(generate_items(1, 50), generate_items(2, 50));
        assert_eq!(generate_users(1, 50), generate_users(1, 50));
        // Items do not depend on how many users there are.
        assert_eq!(generate_items(3, 10), generate_items(3, 20)[..10].to_vec());
    }

    #[test]
    fn cents_round_trip_through_decimal_text() {
        for c in [0, 5, 50, 500, 12_345, 50_000] {
            assert_eq!(parse_cents(&cents_text(c)), Some(c));
        }
        assert_eq!(cents_text(500), "5.00");
        assert_eq!(parse_cents("7.5"), Some(750));
        assert_eq!(parse_cents("12"), Some(1200));
        assert_eq!(parse_cents("1.234"), None);
        assert_eq!(parse_cents("abc"), None);
    }
}
