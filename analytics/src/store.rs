//! Postgres: the mirrors, the aggregates, the consumer offsets, in one
//! transaction per batch.
//!
//! Invariants enforced here:
//! - Exactly once: a batch's mirror writes, aggregate deltas and the Kafka
//!   offsets it covers commit in ONE transaction. The transaction first locks
//!   the batch's offset rows and checks they still hold the offsets the batch
//!   started from; if another instance (or an earlier life of this one) moved
//!   them, the batch is rolled back as [`Commit::Fenced`] and never applied.
//! - CDC changes are folded against the mirrored rows read inside the same
//!   transaction (see [`crate::fold`]), so duplicates are no-ops.
//! - `agg_item_stock` always equals, per mirrored item, the quantity of mirrored
//!   purchases created after the item's `inventory_updated_at`: item changes
//!   recompute the item's row, purchase changes add deltas. Item changes take
//!   an exclusive advisory lock per item and purchase batches a shared one, in
//!   ascending id order, so concurrent instances cannot interleave the two.
//! - Aggregate rows are written in ascending key order (BTreeMap), so concurrent
//!   batches do not deadlock on them; a deadlock or any other failure rolls the
//!   whole batch back. The caller retries it when the failure is transient
//!   ([`StoreError::recovery`], by SQLSTATE: connection loss, serialization
//!   failure, deadlock, resources, shutdown) and stops on a definite one
//!   (data exception, integrity violation, undefined column...).
//! - `agg_user_purchases.incomplete` / `incomplete_value` always equal, per
//!   user, the count and purchase_price sum of the mirrored purchases with
//!   status 0: they are deltas of the same per-user upsert as `purchases`
//!   (see [`crate::fold`]), so they cost no extra statement or row.
//! - Columns are read with `Row::try_get` ([`col`]): a column whose type
//!   drifted from what this build reads is a definite error, never a panic.
//! - A TRUNCATE (Debezium's `op` "t", [`Change::Truncate`]) clears, in the
//!   batch's transaction and so exactly once with its offset, everything the
//!   truncated table fed, before the batch's changes after it are folded
//!   against the now empty mirror ([`clear_truncated`]):
//!   - `purchases`: the mirror, `agg_item_purchases`, `agg_user_purchases`
//!     (with its per-user incomplete counts behind the dashboard's
//!     `incomplete_purchases_totals` / `abandoned_cart_totals`),
//!     `agg_orders_per_minute`; `agg_item_stock` back to 0 sold (its rows are
//!     per mirrored item); the funnel's `buyers` to 0 (nobody has a completed
//!     purchase); low-stock alerts re-evaluated; the abandoned-cart
//!     notifications and the sweep's purchase watermark (the purchases they
//!     name are gone, and MySQL's TRUNCATE restarts AUTO_INCREMENT, so new
//!     purchases reuse their ids and must be notified again).
//!   - `items`: the mirror, `agg_item_stock`, `low_stock_alert_state`. Sales
//!     per item stay: they are purchases' (the views join the items mirror,
//!     as the ground truth joins MySQL's).
//!   - `users`: the mirror only; purchase totals per user and pageview
//!     activity come from the purchases and pageview streams.
//!
//!   A purchases or items truncate first takes the push sweep's lock and
//!   then locks the tables it clears in EXCLUSIVE mode (readers go on, other
//!   instances' writers wait), so no concurrent batch or sweep folds a row it
//!   read before the truncate into the state after it. A re-delivered
//!   truncate record is below the stored offset and never applied again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement, Transaction};

use crate::decode::{cents_text, Change, ItemRow, PageviewEvent, PurchaseRow, UserRow};
use crate::fold::{self, final_states, ChannelDelta, FunnelDelta, UserChannelTotals};

mod embedded {
    refinery::embed_migrations!("../migrations/postgres");
}

/// Arbitrary constant: the session advisory lock that serialises concurrent
/// migration runs of several instances starting together.
const MIGRATION_LOCK: i64 = 0x616e_616c_7974_6963;

/// The push sweep's advisory lock ([`crate::push`]); a purchases TRUNCATE
/// takes it too, so no sweep notifies a cart read before the truncate.
pub const PUSH_SWEEP_LOCK: i64 = 0x7075_7368_7377_6570;

/// Advisory-lock class (first key of the two-key form, a key space apart from
/// the one-key item locks) of the per-user funnel lock: see [`lock_users`].
const FUNNEL_USER_LOCK_CLASS: i32 = 0x6675_6e6e;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transient: connection lost, deadlock, serialization failure, server
    /// restart... The batch was rolled back; retry it after a backoff.
    #[error("postgres: {}", describe_pg(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// Definite: the URL's TLS settings, or a server certificate they refuse.
    #[error(transparent)]
    Connect(pipeline::postgres::ConnectError),
    /// Definite unless Postgres rolled the migration back for a transient
    /// cause (see [`StoreError::recovery`]): the schema cannot be brought up
    /// to date; fix the database.
    #[error("postgres migrations failed: {}", describe_migration(.0))]
    Migration(#[from] refinery::Error),
    /// Definite: a column no longer has the type this build reads (the
    /// schema drifted from the migrations); retrying reads the same value.
    #[error("postgres column {column} cannot be read: {source}")]
    Column {
        column: usize,
        source: tokio_postgres::Error,
    },
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The server or the connection was momentarily unable (connection lost,
    /// serialization failure, deadlock, out of resources, shutting down):
    /// the same batch is retried after a backoff.
    Transient,
    /// The same statement on the same data fails again (data exception,
    /// integrity violation, undefined column, a column type drift...):
    /// retrying would hide the problem forever.
    Definite,
}

impl StoreError {
    /// The server's SQLSTATE, when the server answered with an error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Postgres(error) => error.code().map(|c| c.code()),
            Self::Migration(error) => migration_cause(error)?.code().map(|c| c.code()),
            Self::Column { .. } | Self::Connect(_) => None,
        }
    }

    /// Classifies by SQLSTATE ([`recovery_of_sqlstate`]); an error without
    /// one is client side (connection refused, reset, closed, timed out) and
    /// transient, except a column type drift. A migration that Postgres
    /// rolled back (each runs in its own transaction) is classified by that
    /// cause: a deadlock with a reader of the views it replaces is transient;
    /// a migration refinery refuses (changed or missing file) is definite.
    pub fn recovery(&self) -> Recovery {
        let postgres = match self {
            Self::Postgres(error) => error,
            Self::Migration(error) => match migration_cause(error) {
                Some(error) => error,
                None => return Recovery::Definite,
            },
            Self::Column { .. } | Self::Connect(_) => return Recovery::Definite,
        };
        match postgres.code() {
            Some(code) => recovery_of_sqlstate(code.code()),
            None => Recovery::Transient,
        }
    }
}

/// Transient: class 08 (connection exception), 40001 serialization_failure,
/// 40P01 deadlock_detected, 40003 statement_completion_unknown, class 53
/// (insufficient resources), 55P03 lock_not_available, 57014 query_canceled
/// (statement timeout), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
/// cannot_connect_now, class 58 (system/I/O error). Everything else the
/// server says is definite: 22 data exception, 23 integrity violation, 42
/// syntax error or undefined object, 57P04 database_dropped, XX internal...
pub fn recovery_of_sqlstate(code: &str) -> Recovery {
    let transient = code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("58")
        || matches!(
            code,
            "40001" | "40P01" | "40003" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
        );
    if transient {
        Recovery::Transient
    } else {
        Recovery::Definite
    }
}

/// Column `idx` of `row`: [`Row::try_get`], a type mismatch being a definite
/// [`StoreError::Column`] instead of `Row::get`'s panic.
pub fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|source| StoreError::Column {
        column: idx,
        source,
    })
}

/// The server's message and SQLSTATE when there is one ("db error" alone says
/// nothing), else the client-side cause.
fn describe_pg(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// The Postgres error a migration failed with, if Postgres caused it.
fn migration_cause(error: &refinery::Error) -> Option<&tokio_postgres::Error> {
    match error.kind() {
        refinery::error::Kind::Connection(_, cause) => cause.downcast_ref(),
        _ => None,
    }
}

/// refinery's message, with Postgres' own (refinery prints only "db error").
fn describe_migration(error: &refinery::Error) -> String {
    match (error.kind(), migration_cause(error)) {
        (refinery::error::Kind::Connection(what, _), Some(cause)) => {
            format!("{what}: {}", describe_pg(cause))
        }
        _ => error.to_string(),
    }
}

/// Where a partition's batch starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The next offset this consumer believes is stored (`None`: nothing stored).
    pub committed: Option<i64>,
    /// The next offset after this batch.
    pub next: i64,
}

/// One batch, decoded: what to fold and which offsets it covers.
#[derive(Debug, Default)]
pub struct Batch {
    pub users: Vec<Change<UserRow>>,
    pub items: Vec<Change<ItemRow>>,
    pub purchases: Vec<Change<PurchaseRow>>,
    pub pageviews: Vec<PageviewEvent>,
    pub newest_cdc: Option<DateTime<Utc>>,
    pub newest_pageview: Option<DateTime<Utc>>,
    pub cdc_records: i64,
    pub pageview_records: i64,
    pub offsets: BTreeMap<(String, i32), PartitionProgress>,
}

/// Outcome of a batch transaction.
#[derive(Debug, PartialEq, Eq)]
pub enum Commit {
    Committed,
    /// Stored offsets differ from the batch's start: nothing was applied; the
    /// consumer must seek to the stored offsets.
    Fenced,
}

/// Connects under the URL's `sslmode` (see [`pipeline::postgres`]) and
/// keeps a background task driving the connection.
pub async fn connect(url: &str) -> Result<Client, StoreError> {
    pipeline::postgres::connect(url).await.map_err(|e| match e {
        pipeline::postgres::ConnectError::Postgres(e) => StoreError::Postgres(e),
        other => StoreError::Connect(other),
    })
}

/// How long a migration waits for a table lock before Postgres cancels it
/// (55P03, transient: [`crate::migrate_with_retry`] runs it again later).
/// A migration that replaces a view or alters a table waits for every
/// reader of it to finish, and every reader that comes after waits behind
/// the migration: without a bound one long dashboard query would freeze
/// every dashboard until it ends. Dashboards' own queries take milliseconds.
pub const MIGRATION_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies pending migrations (idempotent; safe when several instances start
/// at once). Each waits at most `lock_timeout` for a table lock (zero: no
/// bound; see [`MIGRATION_LOCK_TIMEOUT`]).
pub async fn migrate(url: &str, lock_timeout: Duration) -> Result<(), StoreError> {
    let mut client = connect(url).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // After the advisory lock: an instance waiting for another's
    // migrations to finish must not time out.
    let millis = lock_timeout.as_millis().to_string();
    client
        .execute(
            "SELECT set_config('lock_timeout', $1, false)",
            &[&millis.as_str()],
        )
        .await?;
    let result = embedded::migrations::runner().run_async(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = result?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied postgres migration");
    }
    Ok(())
}

/// Writes the settings the views and batches read (`analytics_settings`, one
/// row): the inactivity window of `inactive_users_last_3_mins` and how long
/// `pageview_log` keeps pageviews.
pub async fn write_settings(
    url: &str,
    inactivity_window_secs: u32,
    pageview_log_secs: u32,
) -> Result<(), StoreError> {
    let client = connect(url).await?;
    client
        .execute(
            "UPDATE analytics_settings SET inactivity_window = make_interval(secs => $1::bigint),
                                           pageview_log_retention = make_interval(secs => $2::bigint)",
            &[
                &i64::from(inactivity_window_secs),
                &i64::from(pageview_log_secs),
            ],
        )
        .await?;
    Ok(())
}

/// Stored next offsets of the given partitions (absent: none stored).
pub async fn read_offsets(
    client: &Client,
    group: &str,
    partitions: &[(String, i32)],
) -> Result<HashMap<(String, i32), i64>, StoreError> {
    let topics: Vec<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    let parts: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
    let rows = client
        .query(
            "SELECT o.topic, o.partition, o.next_offset FROM consumer_offsets o
             JOIN unnest($2::text[], $3::int[]) AS w(topic, partition)
               ON w.topic = o.topic AND w.partition = o.partition
             WHERE o.group_id = $1 AND o.next_offset >= 0",
            &[&group, &topics, &parts],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(((col::<String>(r, 0)?, col::<i32>(r, 1)?), col::<i64>(r, 2)?)))
        .collect()
}

/// The batch writer: one lazily (re)connected client.
#[derive(Debug)]
pub struct Store {
    url: String,
    group: String,
    low_stock_threshold: i64,
    client: Option<Client>,
    /// The client's prepared statements; emptied with every new connection
    /// (statements live in the server session that parsed them).
    statements: Mutex<HashMap<&'static str, Statement>>,
}

/// A batch's transaction, preparing each statement once per connection: an
/// unnamed statement costs a parse round trip on every call, which at the
/// small batches of a quiet stream is most of a commit's round trips.
struct Db<'a> {
    tx: Transaction<'a>,
    statements: &'a Mutex<HashMap<&'static str, Statement>>,
}

impl Db<'_> {
    async fn statement(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.tx.prepare(sql).await?;
        self.statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sql, statement.clone());
        Ok(statement)
    }

    async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.tx.execute(&statement, params).await
    }

    async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.tx.query(&statement, params).await
    }
}

impl Store {
    pub fn new(url: impl Into<String>, group: impl Into<String>, low_stock_threshold: i64) -> Self {
        Self {
            url: url.into(),
            group: group.into(),
            low_stock_threshold,
            client: None,
            statements: Mutex::default(),
        }
    }

    pub async fn client(&mut self) -> Result<&mut Client, StoreError> {
        connected(&mut self.client, &mut self.statements, &self.url).await
    }

    /// Applies a batch and its offsets in one transaction.
    pub async fn commit(&mut self, batch: &Batch) -> Result<Commit, StoreError> {
        let group = self.group.clone();
        let threshold = self.low_stock_threshold;
        let client = connected(&mut self.client, &mut self.statements, &self.url).await?;
        let result = apply(client, &self.statements, &group, threshold, batch).await;
        if result.is_err() {
            // The connection may be unusable (e.g. the server restarted);
            // reconnect on the next attempt rather than reuse it.
            if self.client.as_ref().is_some_and(Client::is_closed) {
                self.client = None;
            }
        }
        result
    }
}

/// The open client in `slot`, (re)connected when there is none or it
/// closed (prepared statements belong to a connection: they go with it).
async fn connected<'a>(
    slot: &'a mut Option<Client>,
    statements: &mut Mutex<HashMap<&'static str, Statement>>,
    url: &str,
) -> Result<&'a mut Client, StoreError> {
    let client = match slot.take() {
        Some(client) if !client.is_closed() => client,
        _ => {
            statements
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            connect(url).await?
        }
    };
    Ok(slot.insert(client))
}

async fn apply(
    client: &mut Client,
    statements: &Mutex<HashMap<&'static str, Statement>>,
    group: &str,
    threshold: i64,
    batch: &Batch,
) -> Result<Commit, StoreError> {
    let tx = Db {
        tx: client.transaction().await?,
        statements,
    };
    if !fence(&tx, group, &batch.offsets).await? {
        tx.tx.rollback().await?;
        return Ok(Commit::Fenced);
    }

    let (users_truncated, user_changes) = fold::after_last_truncate(&batch.users);
    let (items_truncated, item_changes) = fold::after_last_truncate(&batch.items);
    let (purchases_truncated, purchase_changes) = fold::after_last_truncate(&batch.purchases);
    let alerts_to_check = clear_truncated(
        &tx,
        Truncated {
            users: users_truncated,
            items: items_truncated,
            purchases: purchases_truncated,
        },
    )
    .await?;

    // Purchases' previous rows and the items they touch, to lock items first.
    let purchase_finals = final_states(purchase_changes, |r: &PurchaseRow| r.id);
    let previous = read_purchases(&tx, purchase_finals.keys().copied().collect()).await?;
    let purchase_items = fold::purchase_items(&previous, &purchase_finals);
    let item_finals = final_states(item_changes, |r: &ItemRow| r.id);
    lock_items(&tx, &item_finals, &purchase_items).await?;

    apply_users(&tx, user_changes).await?;
    apply_items(&tx, &item_finals).await?;
    let mut funnel = BTreeMap::new();
    apply_purchases(
        &tx,
        &previous,
        &purchase_finals,
        &purchase_items,
        &mut funnel,
    )
    .await?;
    apply_pageviews(&tx, &batch.pageviews, &mut funnel).await?;
    apply_funnel(&tx, &funnel).await?;

    let mut touched: Vec<i64> = item_finals
        .keys()
        .copied()
        .chain(purchase_items)
        .chain(alerts_to_check)
        .collect();
    touched.sort_unstable();
    touched.dedup();
    update_low_stock_alerts(&tx, &touched, threshold).await?;

    store_offsets(&tx, group, &batch.offsets).await?;
    let now = Utc::now();
    for (stream, newest, n) in [
        ("cdc", batch.newest_cdc, batch.cdc_records),
        ("pageviews", batch.newest_pageview, batch.pageview_records),
    ] {
        if let Some(newest) = newest {
            let age_ms = (now - newest).num_milliseconds();
            tx.execute(
                "INSERT INTO freshness (stream, newest_event_at, committed_at, age_ms, batch_records)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (stream) DO UPDATE SET newest_event_at = excluded.newest_event_at,
                   committed_at = excluded.committed_at, age_ms = excluded.age_ms,
                   batch_records = excluded.batch_records",
                &[&stream, &newest, &now, &age_ms, &n],
            )
            .await?;
        }
    }
    tx.tx.commit().await?;
    Ok(Commit::Committed)
}

/// Which tables a batch saw truncated.
#[derive(Debug, Clone, Copy)]
struct Truncated {
    users: bool,
    items: bool,
    purchases: bool,
}

/// Clears what each truncated table fed (see the module docs) and returns
/// the items whose low-stock alert may have cleared with it.
async fn clear_truncated(tx: &Db<'_>, truncated: Truncated) -> Result<Vec<i64>, StoreError> {
    if truncated.users {
        tx.execute("DELETE FROM users", &[]).await?;
    }
    if !truncated.items && !truncated.purchases {
        return Ok(Vec::new());
    }
    if truncated.purchases {
        // A sweep in progress finishes first; the next one starts after us.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUSH_SWEEP_LOCK])
            .await?;
    }
    // One statement, one fixed order. user_channels: a pageview batch writes
    // it before reading a user's completed purchases for the funnel, so it
    // either committed before (its buyer is reset below) or reads after us.
    tx.tx
        .batch_execute(
            "LOCK TABLE user_channels, purchases, items, agg_item_stock, agg_item_purchases,
                        agg_user_purchases, agg_orders_per_minute, agg_channel_funnel,
                        low_stock_alert_state, abandoned_cart_notifications, push_sweep_state
             IN EXCLUSIVE MODE",
        )
        .await?;
    let mut alerts = Vec::new();
    if truncated.items {
        tx.tx
            .batch_execute(
                "DELETE FROM items; DELETE FROM agg_item_stock; DELETE FROM low_stock_alert_state;",
            )
            .await?;
        tracing::info!(
            "items truncated upstream: cleared the items mirror, stock and low-stock alerts"
        );
    }
    if truncated.purchases {
        alerts = tx
            .query("SELECT item_id FROM low_stock_alert_state", &[])
            .await?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_, _>>()?;
        tx.tx
            .batch_execute(
                "DELETE FROM purchases;
                 DELETE FROM agg_item_purchases;
                 DELETE FROM agg_user_purchases;
                 DELETE FROM agg_orders_per_minute;
                 UPDATE agg_item_stock SET sold_since_restock = 0 WHERE sold_since_restock <> 0;
                 UPDATE agg_channel_funnel SET buyers = 0 WHERE buyers <> 0;
                 DELETE FROM abandoned_cart_notifications;
                 UPDATE push_sweep_state SET purchase_watermark = 0;",
            )
            .await?;
        tracing::info!(
            "purchases truncated upstream: cleared the purchases mirror and every summary it fed"
        );
    }
    Ok(alerts)
}

/// Locks the batch's offset rows and checks they hold what the batch started
/// from. A partition never committed gets a placeholder row (-1) first, so two
/// instances starting the same fresh partition also serialise on a row lock.
async fn fence(
    tx: &Db<'_>,
    group: &str,
    offsets: &BTreeMap<(String, i32), PartitionProgress>,
) -> Result<bool, StoreError> {
    if offsets.is_empty() {
        return Ok(true);
    }
    let topics: Vec<&str> = offsets.keys().map(|(t, _)| t.as_str()).collect();
    let parts: Vec<i32> = offsets.keys().map(|(_, p)| *p).collect();
    tx.execute(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
         SELECT $1, t, p, -1 FROM unnest($2::text[], $3::int[]) AS w(t, p)
         ORDER BY t, p
         ON CONFLICT DO NOTHING",
        &[&group, &topics, &parts],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT o.topic, o.partition, o.next_offset FROM consumer_offsets o
             JOIN unnest($2::text[], $3::int[]) AS w(topic, partition)
               ON w.topic = o.topic AND w.partition = o.partition
             WHERE o.group_id = $1
             ORDER BY o.topic, o.partition
             FOR UPDATE OF o",
            &[&group, &topics, &parts],
        )
        .await?;
    for row in rows {
        let key = (col::<String>(&row, 0)?, col::<i32>(&row, 1)?);
        let stored: i64 = col(&row, 2)?;
        let stored = (stored >= 0).then_some(stored);
        if offsets.get(&key).map(|p| p.committed) != Some(stored) {
            tracing::warn!(
                topic = %key.0, partition = key.1, ?stored,
                expected = ?offsets.get(&key).map(|p| p.committed),
                "stored offset moved under this batch (another instance owns the partition now); discarding the batch"
            );
            return Ok(false);
        }
    }
    Ok(true)
}

async fn store_offsets(
    tx: &Db<'_>,
    group: &str,
    offsets: &BTreeMap<(String, i32), PartitionProgress>,
) -> Result<(), StoreError> {
    let topics: Vec<&str> = offsets.keys().map(|(t, _)| t.as_str()).collect();
    let parts: Vec<i32> = offsets.keys().map(|(_, p)| *p).collect();
    let next: Vec<i64> = offsets.values().map(|p| p.next).collect();
    tx.execute(
        "UPDATE consumer_offsets o SET next_offset = w.n, updated_at = now()
         FROM unnest($2::text[], $3::int[], $4::bigint[]) AS w(t, p, n)
         WHERE o.group_id = $1 AND o.topic = w.t AND o.partition = w.p",
        &[&group, &topics, &parts, &next],
    )
    .await?;
    Ok(())
}

async fn read_purchases(
    tx: &Db<'_>,
    ids: Vec<i64>,
) -> Result<HashMap<i64, PurchaseRow>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT id, user_id, item_id, status, quantity, (purchase_price * 100)::bigint,
                    deleted, created_at, updated_at
             FROM purchases WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let row = PurchaseRow {
                id: col(r, 0)?,
                user_id: col(r, 1)?,
                item_id: col(r, 2)?,
                status: col(r, 3)?,
                quantity: col(r, 4)?,
                purchase_price: col(r, 5)?,
                deleted: col(r, 6)?,
                created_at: col(r, 7)?,
                updated_at: col(r, 8)?,
            };
            Ok((row.id, row))
        })
        .collect()
}

async fn lock_items(
    tx: &Db<'_>,
    item_finals: &BTreeMap<i64, Option<ItemRow>>,
    purchase_items: &[i64],
) -> Result<(), StoreError> {
    // BTreeMap: ascending ids; `true` = exclusive (the item itself changes).
    let mut locks: BTreeMap<i64, bool> = purchase_items.iter().map(|&i| (i, false)).collect();
    for id in item_finals.keys() {
        locks.insert(*id, true);
    }
    if locks.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = locks.keys().copied().collect();
    let exclusive: Vec<bool> = locks.values().copied().collect();
    tx.execute(
        "SELECT CASE WHEN x THEN pg_advisory_xact_lock(k)::text
                     ELSE pg_advisory_xact_lock_shared(k)::text END
         FROM unnest($1::bigint[], $2::bool[]) AS w(k, x)",
        &[&ids, &exclusive],
    )
    .await?;
    Ok(())
}

async fn apply_users(tx: &Db<'_>, changes: &[Change<UserRow>]) -> Result<(), StoreError> {
    let finals = final_states(changes, |r: &UserRow| r.id);
    let rows: Vec<&UserRow> = finals.values().flatten().collect();
    let deleted: Vec<i64> = finals
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !rows.is_empty() {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let emails: Vec<Option<&str>> = rows.iter().map(|r| r.email.as_deref()).collect();
        let vip: Vec<Option<bool>> = rows.iter().map(|r| r.is_vip).collect();
        let created: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.created_at).collect();
        let updated: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.updated_at).collect();
        tx.execute(
            "INSERT INTO users (id, email, is_vip, created_at, updated_at)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::timestamptz[], $5::timestamptz[])
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, is_vip = excluded.is_vip,
               created_at = excluded.created_at, updated_at = excluded.updated_at",
            &[&ids, &emails, &vip, &created, &updated],
        )
        .await?;
    }
    if !deleted.is_empty() {
        tx.execute("DELETE FROM users WHERE id = ANY($1)", &[&deleted])
            .await?;
    }
    Ok(())
}

/// Mirrors items and recomputes the stock row of every item changed.
async fn apply_items(
    tx: &Db<'_>,
    finals: &BTreeMap<i64, Option<ItemRow>>,
) -> Result<(), StoreError> {
    let rows: Vec<&ItemRow> = finals.values().flatten().collect();
    let deleted: Vec<i64> = finals
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !rows.is_empty() {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let names: Vec<Option<&str>> = rows.iter().map(|r| r.name.as_deref()).collect();
        let categories: Vec<Option<&str>> = rows.iter().map(|r| r.category.as_deref()).collect();
        let prices: Vec<Option<String>> = rows.iter().map(|r| r.price.map(cents_text)).collect();
        let inventory: Vec<Option<i64>> = rows.iter().map(|r| r.inventory).collect();
        let restocked: Vec<Option<DateTime<Utc>>> =
            rows.iter().map(|r| r.inventory_updated_at).collect();
        let created: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.created_at).collect();
        let updated: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.updated_at).collect();
        tx.execute(
            "INSERT INTO items (id, name, category, price, inventory, inventory_updated_at, created_at, updated_at)
             SELECT id, name, category, price::numeric, inventory, iu, c, u
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                         $6::timestamptz[], $7::timestamptz[], $8::timestamptz[])
                  AS w(id, name, category, price, inventory, iu, c, u)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, category = excluded.category,
               price = excluded.price, inventory = excluded.inventory,
               inventory_updated_at = excluded.inventory_updated_at,
               created_at = excluded.created_at, updated_at = excluded.updated_at",
            &[&ids, &names, &categories, &prices, &inventory, &restocked, &created, &updated],
        )
        .await?;
        // One item's purchases through purchases_item_created, never all purchases.
        tx.execute(
            "INSERT INTO agg_item_stock (item_id, sold_since_restock)
             SELECT i.id, COALESCE((SELECT sum(p.quantity) FROM purchases p
                                    WHERE p.item_id = i.id AND p.created_at > i.inventory_updated_at), 0)
             FROM items i WHERE i.id = ANY($1)
             ORDER BY i.id
             ON CONFLICT (item_id) DO UPDATE SET sold_since_restock = excluded.sold_since_restock",
            &[&ids],
        )
        .await?;
    }
    if !deleted.is_empty() {
        tx.execute("DELETE FROM items WHERE id = ANY($1)", &[&deleted])
            .await?;
        tx.execute(
            "DELETE FROM agg_item_stock WHERE item_id = ANY($1)",
            &[&deleted],
        )
        .await?;
    }
    Ok(())
}

async fn apply_purchases(
    tx: &Db<'_>,
    previous: &HashMap<i64, PurchaseRow>,
    finals: &BTreeMap<i64, Option<PurchaseRow>>,
    items: &[i64],
    funnel: &mut BTreeMap<String, FunnelDelta>,
) -> Result<(), StoreError> {
    if finals.is_empty() {
        return Ok(());
    }
    // The items' restock times as mirrored now (after this batch's item changes).
    let restocked_at: HashMap<i64, Option<DateTime<Utc>>> = tx
        .query(
            "SELECT id, inventory_updated_at FROM items WHERE id = ANY($1)",
            &[&items],
        )
        .await?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_, StoreError>>()?;
    let deltas = fold::fold_purchases(previous, finals, &restocked_at);

    // Mirror: write only rows that changed; a duplicate writes nothing.
    let rows: Vec<&PurchaseRow> = finals
        .iter()
        .filter_map(|(id, r)| r.as_ref().filter(|r| previous.get(id) != Some(r)))
        .collect();
    let deleted: Vec<i64> = finals
        .iter()
        .filter(|(id, r)| r.is_none() && previous.contains_key(id))
        .map(|(k, _)| *k)
        .collect();
    if !rows.is_empty() {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let users: Vec<Option<i64>> = rows.iter().map(|r| r.user_id).collect();
        let items: Vec<Option<i64>> = rows.iter().map(|r| r.item_id).collect();
        let status: Vec<Option<i32>> = rows.iter().map(|r| r.status).collect();
        let quantity: Vec<Option<i64>> = rows.iter().map(|r| r.quantity).collect();
        let price: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.purchase_price.map(cents_text))
            .collect();
        let deleted_flag: Vec<Option<bool>> = rows.iter().map(|r| r.deleted).collect();
        let created: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.created_at).collect();
        let updated: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.updated_at).collect();
        tx.execute(
            "INSERT INTO purchases (id, user_id, item_id, status, quantity, purchase_price, deleted, created_at, updated_at)
             SELECT id, u, i, s, q, p::numeric, d, c, up
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::bigint[], $6::text[],
                         $7::bool[], $8::timestamptz[], $9::timestamptz[])
                  AS w(id, u, i, s, q, p, d, c, up)
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, item_id = excluded.item_id,
               status = excluded.status, quantity = excluded.quantity,
               purchase_price = excluded.purchase_price, deleted = excluded.deleted,
               created_at = excluded.created_at, updated_at = excluded.updated_at",
            &[&ids, &users, &items, &status, &quantity, &price, &deleted_flag, &created, &updated],
        )
        .await?;
    }
    if !deleted.is_empty() {
        tx.execute("DELETE FROM purchases WHERE id = ANY($1)", &[&deleted])
            .await?;
    }

    if !deltas.by_item.is_empty() {
        let ids: Vec<i64> = deltas.by_item.keys().copied().collect();
        let revenue: Vec<String> = deltas
            .by_item
            .values()
            .map(|d| cents_text(d.revenue))
            .collect();
        let orders: Vec<i64> = deltas.by_item.values().map(|d| d.orders).collect();
        let sold: Vec<i64> = deltas.by_item.values().map(|d| d.items_sold).collect();
        tx.execute(
            "INSERT INTO agg_item_purchases AS a (item_id, revenue, orders, items_sold)
             SELECT k, r::numeric, o, s FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS w(k, r, o, s)
             ON CONFLICT (item_id) DO UPDATE SET revenue = a.revenue + excluded.revenue,
               orders = a.orders + excluded.orders, items_sold = a.items_sold + excluded.items_sold",
            &[&ids, &revenue, &orders, &sold],
        )
        .await?;
    }
    if !deltas.by_user.is_empty() {
        let ids: Vec<i64> = deltas.by_user.keys().copied().collect();
        let purchases: Vec<i64> = deltas.by_user.values().map(|d| d.purchases).collect();
        let completed: Vec<i64> = deltas.by_user.values().map(|d| d.completed).collect();
        let value: Vec<String> = deltas
            .by_user
            .values()
            .map(|d| cents_text(d.lifetime_value))
            .collect();
        let incomplete: Vec<i64> = deltas.by_user.values().map(|d| d.incomplete).collect();
        let incomplete_value: Vec<String> = deltas
            .by_user
            .values()
            .map(|d| cents_text(d.incomplete_value))
            .collect();
        // The incomplete counts ride on the same row update: maintaining
        // them costs no statement and no row beyond what the batch writes.
        let completed_now: Vec<(i64, i64)> = tx
            .query(
                "INSERT INTO agg_user_purchases AS a (user_id, purchases, completed, lifetime_value,
                                                      incomplete, incomplete_value)
                 SELECT k, p, c, v::numeric, i, iv::numeric
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[])
                      AS w(k, p, c, v, i, iv)
                 ON CONFLICT (user_id) DO UPDATE SET purchases = a.purchases + excluded.purchases,
                   completed = a.completed + excluded.completed,
                   lifetime_value = a.lifetime_value + excluded.lifetime_value,
                   incomplete = a.incomplete + excluded.incomplete,
                   incomplete_value = a.incomplete_value + excluded.incomplete_value
                 RETURNING user_id, completed",
                &[&ids, &purchases, &completed, &value, &incomplete, &incomplete_value],
            )
            .await?
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect::<Result<_, StoreError>>()?;
        let flips = fold::buyer_flips(&completed_now, &deltas.by_user);
        if !flips.is_empty() {
            let users: Vec<i64> = flips.keys().copied().collect();
            let signs: Vec<i64> = flips.values().copied().collect();
            lock_users(tx, &users).await?;
            // Every channel the flipped users viewed products from gains or
            // loses them as buyers.
            for row in tx
                .query(
                    "SELECT uc.channel, sum(w.s)::bigint
                     FROM user_channels uc
                     JOIN unnest($1::bigint[], $2::bigint[]) AS w(u, s) ON uc.user_id = w.u
                     WHERE uc.product_pageviews > 0
                     GROUP BY uc.channel",
                    &[&users, &signs],
                )
                .await?
            {
                funnel.entry(col(&row, 0)?).or_default().add(FunnelDelta {
                    buyers: col(&row, 1)?,
                    ..FunnelDelta::default()
                });
            }
        }
    }
    if !deltas.by_minute.is_empty() {
        let minutes: Vec<DateTime<Utc>> = deltas.by_minute.keys().copied().collect();
        let revenue: Vec<String> = deltas
            .by_minute
            .values()
            .map(|d| cents_text(d.revenue))
            .collect();
        let orders: Vec<i64> = deltas.by_minute.values().map(|d| d.orders).collect();
        let sold: Vec<i64> = deltas.by_minute.values().map(|d| d.items_sold).collect();
        tx.execute(
            "INSERT INTO agg_orders_per_minute AS a (minute, revenue, orders, items_sold)
             SELECT k, r::numeric, o, s FROM unnest($1::timestamptz[], $2::text[], $3::bigint[], $4::bigint[]) AS w(k, r, o, s)
             ON CONFLICT (minute) DO UPDATE SET revenue = a.revenue + excluded.revenue,
               orders = a.orders + excluded.orders, items_sold = a.items_sold + excluded.items_sold",
            &[&minutes, &revenue, &orders, &sold],
        )
        .await?;
    }
    if !deltas.stock.is_empty() {
        let ids: Vec<i64> = deltas.stock.keys().copied().collect();
        let sold: Vec<i64> = deltas.stock.values().copied().collect();
        tx.execute(
            "INSERT INTO agg_item_stock AS a (item_id, sold_since_restock)
             SELECT * FROM unnest($1::bigint[], $2::bigint[])
             ON CONFLICT (item_id) DO UPDATE SET sold_since_restock = a.sold_since_restock + excluded.sold_since_restock",
            &[&ids, &sold],
        )
        .await?;
    }
    Ok(())
}

/// Appends the batch's pageviews to `pageview_log` (behind the seed's
/// `v_pageviews`); nothing when the retention in `analytics_settings` is
/// zero. Pageviews already past the retention (an old backlog) are not
/// written at all. Dropping the old ones is [`crate::retention`]'s, off the
/// batch's path.
///
/// The rows go by COPY (binary), not an INSERT of unnested arrays: in the
/// 1M-pageview drain the log was nearly half of Postgres' CPU (2.2 of 5.0
/// s), and Postgres the drain's bound.
async fn log_pageviews(tx: &Db<'_>, pageviews: &[PageviewEvent]) -> Result<(), StoreError> {
    let cutoff = tx
        .query(
            "SELECT extract(epoch FROM now() - pageview_log_retention)::bigint
             FROM analytics_settings
             WHERE pageview_log_retention > interval '0'",
            &[],
        )
        .await?
        .first()
        .map(|row| col::<i64>(row, 0))
        .transpose()?;
    let Some(cutoff) = cutoff else {
        return Ok(());
    };
    if pageviews.iter().all(|p| p.received_at.timestamp() < cutoff) {
        return Ok(());
    }
    let statement = tx
        .statement(
            "COPY pageview_log (user_id, pageview_type, target_id, channel, received_at)
             FROM STDIN BINARY",
        )
        .await?;
    let sink = tx.tx.copy_in(&statement).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::TEXT, Type::INT8, Type::TEXT, Type::INT8],
    );
    let mut writer = std::pin::pin!(writer);
    for p in pageviews {
        let at = p.received_at.timestamp();
        if at < cutoff {
            continue;
        }
        let kind = if p.product.is_some() {
            "products"
        } else {
            "profiles"
        };
        let target = p.product.or(p.profile);
        let channel: &str = &p.channel;
        writer
            .as_mut()
            .write(&[&p.user_id, &kind, &target, &channel, &at])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn apply_pageviews(
    tx: &Db<'_>,
    pageviews: &[PageviewEvent],
    funnel: &mut BTreeMap<String, FunnelDelta>,
) -> Result<(), StoreError> {
    if pageviews.is_empty() {
        return Ok(());
    }
    log_pageviews(tx, pageviews).await?;
    let d = fold::fold_pageviews(pageviews);
    if !d.item_channel.is_empty() {
        let items: Vec<i64> = d.item_channel.keys().map(|(i, _)| *i).collect();
        let channels: Vec<&str> = d.item_channel.keys().map(|(_, c)| *c).collect();
        let n: Vec<i64> = d.item_channel.values().copied().collect();
        tx.execute(
            "INSERT INTO item_pageviews AS a (item_id, channel, pageviews)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])
             ON CONFLICT (item_id, channel) DO UPDATE SET pageviews = a.pageviews + excluded.pageviews",
            &[&items, &channels, &n],
        )
        .await?;
        let items: Vec<i64> = d.item_views.keys().copied().collect();
        let n: Vec<i64> = d.item_views.values().copied().collect();
        tx.execute(
            "INSERT INTO agg_item_views AS a (item_id, pageviews)
             SELECT * FROM unnest($1::bigint[], $2::bigint[])
             ON CONFLICT (item_id) DO UPDATE SET pageviews = a.pageviews + excluded.pageviews",
            &[&items, &n],
        )
        .await?;
    }
    let users: Vec<i64> = d.user_last_seen.keys().copied().collect();
    let seen: Vec<DateTime<Utc>> = d.user_last_seen.values().copied().collect();
    tx.execute(
        "INSERT INTO user_activity AS a (user_id, last_pageview_at)
         SELECT * FROM unnest($1::bigint[], $2::timestamptz[])
         ON CONFLICT (user_id) DO UPDATE
           SET last_pageview_at = GREATEST(a.last_pageview_at, excluded.last_pageview_at)",
        &[&users, &seen],
    )
    .await?;
    let users: Vec<i64> = d.user_channel.keys().map(|(u, _)| *u).collect();
    let channels: Vec<&str> = d.user_channel.keys().map(|(_, c)| *c).collect();
    let views: Vec<i64> = d.user_channel.values().map(|c| c.pageviews).collect();
    let product: Vec<i64> = d
        .user_channel
        .values()
        .map(|c| c.product_pageviews)
        .collect();
    // Only the pairs whose totals equal what this batch added (a first
    // pageview or a first product pageview) come back: in steady state most
    // pairs exist and returning every row would cost a transfer per batch.
    let firsts: Vec<UserChannelTotals> = tx
        .query(
            "WITH w AS (
               SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
                 AS w(user_id, channel, pageviews, product_pageviews)
             ), up AS (
               INSERT INTO user_channels AS a (user_id, channel, pageviews, product_pageviews)
               SELECT * FROM w
               ON CONFLICT (user_id, channel) DO UPDATE SET pageviews = a.pageviews + excluded.pageviews,
                 product_pageviews = a.product_pageviews + excluded.product_pageviews
               RETURNING a.user_id, a.channel, a.pageviews, a.product_pageviews
             )
             SELECT up.user_id, up.channel, w.pageviews, w.product_pageviews,
                    up.pageviews, up.product_pageviews
             FROM up JOIN w ON w.user_id = up.user_id AND w.channel = up.channel
             WHERE up.pageviews = w.pageviews
                OR (w.product_pageviews > 0 AND up.product_pageviews = w.product_pageviews)",
            &[&users, &channels, &views, &product],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(UserChannelTotals {
                user_id: col(r, 0)?,
                channel: col(r, 1)?,
                added: ChannelDelta {
                    pageviews: col(r, 2)?,
                    product_pageviews: col(r, 3)?,
                },
                now: ChannelDelta {
                    pageviews: col(r, 4)?,
                    product_pageviews: col(r, 5)?,
                },
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let mut new_viewers: Vec<i64> = firsts
        .iter()
        .filter(|t| t.new_product_viewer())
        .map(|t| t.user_id)
        .collect();
    new_viewers.sort_unstable();
    new_viewers.dedup();
    let mut buyers = HashSet::new();
    if !new_viewers.is_empty() {
        lock_users(tx, &new_viewers).await?;
        for row in tx
            .query(
                "SELECT user_id FROM agg_user_purchases WHERE user_id = ANY($1) AND completed > 0",
                &[&new_viewers],
            )
            .await?
        {
            buyers.insert(col::<i64>(&row, 0)?);
        }
    }
    for (channel, delta) in fold::funnel_from_pageviews(&d.user_channel, &firsts, &buyers) {
        // A handful of channels: one allocation per channel and batch.
        funnel.entry(channel.to_owned()).or_default().add(delta);
    }
    Ok(())
}

/// Serialises, per user, the two sides of the funnel's buyer count: a
/// pageview batch making the user a product viewer reads the user's
/// completed purchases, a purchase batch flipping the user's buyer status
/// reads the user's product-viewer channels. Each takes this lock after its
/// own upsert and before its read, so whichever commits second sees the
/// other's rows and the user is counted exactly once (READ COMMITTED: each
/// statement reads what was committed when it started). Ascending ids, so two
/// batches wait rather than deadlock.
async fn lock_users(tx: &Db<'_>, users: &[i64]) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, (u % 2147483648)::int)::text
         FROM unnest($2::bigint[]) AS w(u)",
        &[&FUNNEL_USER_LOCK_CLASS, &users],
    )
    .await?;
    Ok(())
}

/// One upsert per channel, ascending, after both sides of the batch added
/// their deltas (a single statement, so concurrent batches lock the hot
/// channel rows in the same order).
async fn apply_funnel(
    tx: &Db<'_>,
    funnel: &BTreeMap<String, FunnelDelta>,
) -> Result<(), StoreError> {
    let rows: Vec<(&String, &FunnelDelta)> = funnel
        .iter()
        .filter(|(_, d)| **d != FunnelDelta::default())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let channels: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    let column =
        |f: fn(&FunnelDelta) -> i64| -> Vec<i64> { rows.iter().map(|(_, d)| f(d)).collect() };
    tx.execute(
        "INSERT INTO agg_channel_funnel AS a
           (channel, visitors, product_viewers, buyers, pageviews, product_pageviews)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
         ON CONFLICT (channel) DO UPDATE SET visitors = a.visitors + excluded.visitors,
           product_viewers = a.product_viewers + excluded.product_viewers,
           buyers = a.buyers + excluded.buyers,
           pageviews = a.pageviews + excluded.pageviews,
           product_pageviews = a.product_pageviews + excluded.product_pageviews",
        &[
            &channels,
            &column(|d| d.visitors),
            &column(|d| d.product_viewers),
            &column(|d| d.buyers),
            &column(|d| d.pageviews),
            &column(|d| d.product_pageviews),
        ],
    )
    .await?;
    Ok(())
}

/// Fires (records with the commit time) or clears the alert of every item whose
/// stock may have changed in this batch.
async fn update_low_stock_alerts(
    tx: &Db<'_>,
    items: &[i64],
    threshold: i64,
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO low_stock_alert_state (item_id, threshold, remaining_at_fire, fired_at)
         SELECT item_id, $2, remaining_stock, clock_timestamp() FROM remaining_stock
         WHERE item_id = ANY($1) AND remaining_stock < $2
         ORDER BY item_id
         ON CONFLICT (item_id) DO NOTHING",
        &[&items, &threshold],
    )
    .await?;
    tx.execute(
        "DELETE FROM low_stock_alert_state a WHERE a.item_id = ANY($1) AND NOT EXISTS (
             SELECT 1 FROM remaining_stock r WHERE r.item_id = a.item_id AND r.remaining_stock < $2)",
        &[&items, &threshold],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod recovery_tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_transient_or_definite() {
        for transient in [
            "08000", "08006", "08003", "40001", "40P01", "53100", "53300", "57P01", "57P03",
            "57014", "55P03", "58030",
        ] {
            assert_eq!(
                recovery_of_sqlstate(transient),
                Recovery::Transient,
                "{transient}"
            );
        }
        for definite in [
            "22003", "22P02", "23505", "23514", "23503", "42703", "42P01", "42601", "57P04",
            "XX000", "40002",
        ] {
            assert_eq!(
                recovery_of_sqlstate(definite),
                Recovery::Definite,
                "{definite}"
            );
        }
    }
}
