//! Purchases into MySQL, each with its purchaser's pageview, and the changes
//! that follow them (completions, soft and hard deletes, restocks, VIP
//! upgrades, email changes).
//!
//! Invariants:
//! - Every purchase names an item and a user read from the database, quantity
//!   1..=5, purchase_price = item price x quantity (a line total, exact in
//!   cents), and is committed on its own like the original's. Buyer, item and
//!   status come from the session model ([`crate::shoppers`]), or with
//!   `--uniform` uniformly with status 1 at probability 0.9 (the original's).
//! - What each worker does is a function of `--seed` and its index alone:
//!   changes are planned per purchase (not per clock tick) from the worker's own
//!   RNG and from the purchases that worker made, so one worker (the default)
//!   repeats a run statement for statement.
//! - A transient MySQL failure is retried until it succeeds or the run stops;
//!   an insert whose COMMIT went unanswered (connection lost after sending)
//!   is looked up by its id with a locking read, which waits for the
//!   transaction that sent it to end, before being sent again, so it is
//!   neither lost nor doubled.
//! - Changes only touch rows that exist and are eligible (a completion needs a
//!   live incomplete purchase, ...); planned changes with nothing eligible are
//!   counted as skipped, and changes MySQL applied to no row as no-ops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fake::rand::rngs::StdRng;
use fake::rand::Rng;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::MutationRates;
use crate::pageviews::{purchase_pageview, unix_now, Pacer, PageviewKind, PageviewSink};
use crate::seed::{self, Catalog};
use crate::shop::{classify, purchase_committed, Failure, ShopDb};
use crate::shoppers::Shoppers;
use crate::stats::{Counters, MutationKind};
use crate::Error;

/// A purchase as planned, before MySQL gives it an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NewPurchase {
    pub user_id: u64,
    pub item_id: u64,
    pub status: u8,
    pub quantity: u32,
    pub purchase_price_cents: u64,
}

pub fn plan_purchase<R: Rng + ?Sized>(rng: &mut R, catalog: &Catalog) -> NewPurchase {
    let item = catalog.random_item(rng);
    let user_id = catalog.random_user(rng);
    let quantity = rng.random_range(1..=5u32);
    let status = u8::from(rng.random_bool(0.9));
    NewPurchase {
        user_id,
        item_id: item.id,
        status,
        quantity,
        purchase_price_cents: item.price_cents * u64::from(quantity),
    }
}

/// A purchase by a shopper of the session model: the buyer and item drawn by
/// popularity, incomplete when the shopper abandons.
pub fn plan_shopper_purchase<R: Rng + ?Sized>(rng: &mut R, shoppers: &Shoppers) -> NewPurchase {
    let c = shoppers.plan_checkout(rng);
    let quantity = rng.random_range(1..=5u32);
    NewPurchase {
        user_id: c.user_id,
        item_id: c.item.id,
        status: c.status,
        quantity,
        purchase_price_cents: c.item.price_cents * u64::from(quantity),
    }
}

/// The next purchase under the model in use (`None`: uniform, the original's).
pub fn plan_next<R: Rng + ?Sized>(
    rng: &mut R,
    catalog: &Catalog,
    shoppers: Option<&Shoppers>,
) -> NewPurchase {
    match shoppers {
        Some(s) => plan_shopper_purchase(rng, s),
        None => plan_purchase(rng, catalog),
    }
}

/// A change to an existing row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Completion { purchase_id: u64 },
    SoftDelete { purchase_id: u64 },
    HardDelete { purchase_id: u64 },
    Restock { item_id: u64, inventory: u32 },
    VipUpgrade { user_id: u64 },
    EmailChange { user_id: u64, email: String },
}

impl Change {
    pub fn kind(&self) -> MutationKind {
        match self {
            Change::Completion { .. } => MutationKind::Completion,
            Change::SoftDelete { .. } => MutationKind::SoftDelete,
            Change::HardDelete { .. } => MutationKind::HardDelete,
            Change::Restock { .. } => MutationKind::Restock,
            Change::VipUpgrade { .. } => MutationKind::VipUpgrade,
            Change::EmailChange { .. } => MutationKind::EmailChange,
        }
    }

    /// The statement this change runs (conditions make a replay a no-op).
    pub fn sql(&self) -> &'static str {
        match self {
            Change::Completion { .. } => {
                "UPDATE purchases SET status = 1 WHERE id = ? AND status = 0 AND deleted = FALSE"
            }
            Change::SoftDelete { .. } => {
                "UPDATE purchases SET deleted = TRUE WHERE id = ? AND deleted = FALSE"
            }
            Change::HardDelete { .. } => "DELETE FROM purchases WHERE id = ?",
            Change::Restock { .. } => {
                "UPDATE items SET inventory = ?, inventory_updated_at = CURRENT_TIMESTAMP WHERE id = ?"
            }
            Change::VipUpgrade { .. } => "UPDATE users SET is_vip = TRUE WHERE id = ? AND is_vip = FALSE",
            Change::EmailChange { .. } => "UPDATE users SET email = ? WHERE id = ?",
        }
    }

    fn params(&self) -> mysql_async::Params {
        match self {
            Change::Completion { purchase_id }
            | Change::SoftDelete { purchase_id }
            | Change::HardDelete { purchase_id } => (*purchase_id,).into(),
            Change::Restock { item_id, inventory } => (*inventory, *item_id).into(),
            Change::VipUpgrade { user_id } => (*user_id,).into(),
            Change::EmailChange { user_id, email } => (email.clone(), *user_id).into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tracked {
    complete: bool,
    soft_deleted: bool,
}

/// The purchases this worker made and their state, so changes pick eligible rows.
/// Lists may hold stale ids; they are dropped when drawn.
#[derive(Debug, Default)]
pub struct Tracker {
    state: HashMap<u64, Tracked>,
    incomplete: Vec<u64>,
    /// With the session model: incomplete purchases in the order made, with
    /// this worker's purchase count when made. A completion takes the oldest,
    /// and only once `completion_delay` purchases have passed: the shopper
    /// comes back after going quiet, never while their cart should show as
    /// abandoned.
    waiting: std::collections::VecDeque<(u64, u64)>,
    completion_delay: Option<u64>,
    made: u64,
    live: Vec<u64>,
    existing: Vec<u64>,
    /// Users this worker may upgrade (its share of the non-VIP users).
    non_vip: Vec<u64>,
}

impl Tracker {
    /// Worker `index` of `workers` owns every `workers`-th non-VIP user, so two
    /// workers never race to upgrade the same one.
    pub fn new(catalog: &Catalog, index: usize, workers: usize) -> Self {
        Tracker {
            non_vip: catalog
                .users
                .iter()
                .filter(|(_, vip)| !vip)
                .map(|(id, _)| *id)
                .skip(index)
                .step_by(workers.max(1))
                .collect(),
            ..Tracker::default()
        }
    }

    /// Completions wait `purchases` of this worker's purchases after the
    /// purchase they complete, oldest first (the session model's quiet time).
    pub fn with_completion_delay(mut self, purchases: u64) -> Self {
        self.completion_delay = Some(purchases);
        self
    }

    pub fn purchased(&mut self, id: u64, status: u8) {
        self.made += 1;
        if status == 0 && self.completion_delay.is_some() {
            self.waiting.push_back((id, self.made));
        }
        let complete = status != 0;
        self.state.insert(
            id,
            Tracked {
                complete,
                soft_deleted: false,
            },
        );
        if !complete {
            self.incomplete.push(id);
        }
        self.live.push(id);
        self.existing.push(id);
    }

    /// Draws a random id from `list` whose state passes `ok`, removing it
    /// (and any stale ids met on the way).
    fn draw<R: Rng + ?Sized>(
        state: &HashMap<u64, Tracked>,
        list: &mut Vec<u64>,
        rng: &mut R,
        ok: impl Fn(&Tracked) -> bool,
    ) -> Option<u64> {
        while !list.is_empty() {
            let id = list.swap_remove(rng.random_range(0..list.len()));
            if state.get(&id).is_some_and(&ok) {
                return Some(id);
            }
        }
        None
    }

    /// The oldest incomplete purchase made at least `delay` purchases ago and
    /// still eligible (live, not completed), dropping stale ones on the way.
    fn oldest_waiting(&mut self, delay: u64) -> Option<u64> {
        while let Some(&(id, made)) = self.waiting.front() {
            let eligible = self
                .state
                .get(&id)
                .is_some_and(|t| !t.complete && !t.soft_deleted);
            if !eligible {
                self.waiting.pop_front();
                continue;
            }
            if made + delay > self.made {
                return None;
            }
            self.waiting.pop_front();
            return Some(id);
        }
        None
    }

    /// Plans one change of `kind`; `None` when no row is eligible.
    pub fn plan<R: Rng + ?Sized>(
        &mut self,
        kind: MutationKind,
        rng: &mut R,
        catalog: &Catalog,
    ) -> Option<Change> {
        match kind {
            MutationKind::Completion => {
                let id = match self.completion_delay {
                    Some(delay) => self.oldest_waiting(delay)?,
                    None => Self::draw(&self.state, &mut self.incomplete, rng, |t| {
                        !t.complete && !t.soft_deleted
                    })?,
                };
                if let Some(t) = self.state.get_mut(&id) {
                    t.complete = true;
                }
                Some(Change::Completion { purchase_id: id })
            }
            MutationKind::SoftDelete => {
                let id = Self::draw(&self.state, &mut self.live, rng, |t| !t.soft_deleted)?;
                if let Some(t) = self.state.get_mut(&id) {
                    t.soft_deleted = true;
                }
                Some(Change::SoftDelete { purchase_id: id })
            }
            MutationKind::HardDelete => {
                let id = Self::draw(&self.state, &mut self.existing, rng, |_| true)?;
                self.state.remove(&id);
                Some(Change::HardDelete { purchase_id: id })
            }
            MutationKind::Restock => Some(Change::Restock {
                item_id: catalog.random_item(rng).id,
                inventory: rng.random_range(seed::INVENTORY),
            }),
            MutationKind::VipUpgrade => {
                if self.non_vip.is_empty() {
                    return None;
                }
                let user_id = self
                    .non_vip
                    .swap_remove(rng.random_range(0..self.non_vip.len()));
                Some(Change::VipUpgrade { user_id })
            }
            MutationKind::EmailChange => Some(Change::EmailChange {
                user_id: catalog.random_user(rng),
                email: seed::new_email(rng),
            }),
        }
    }
}

/// How many changes of each kind follow one purchase: the whole part of the
/// rate, plus one more with the fractional part as probability.
pub fn changes_after_purchase<R: Rng + ?Sized>(
    rates: &MutationRates,
    rng: &mut R,
) -> Vec<MutationKind> {
    let per_kind = [
        (MutationKind::Completion, rates.completions_per_purchase),
        (MutationKind::SoftDelete, rates.soft_deletes_per_purchase),
        (MutationKind::HardDelete, rates.hard_deletes_per_purchase),
        (MutationKind::Restock, rates.restocks_per_purchase),
        (MutationKind::VipUpgrade, rates.vip_upgrades_per_purchase),
        (MutationKind::EmailChange, rates.email_changes_per_purchase),
    ];
    let mut out = Vec::new();
    for (kind, rate) in per_kind {
        if rate <= 0.0 {
            continue;
        }
        let whole = rate.trunc() as usize;
        let extra = usize::from(rng.random_bool(rate.fract().clamp(0.0, 1.0)));
        out.extend(std::iter::repeat_n(kind, whole + extra));
    }
    out
}

/// What every purchase worker shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub db: ShopDb,
    pub sink: Arc<PageviewSink>,
    pub catalog: Arc<Catalog>,
    /// The session model; `None` with --uniform.
    pub shoppers: Option<Arc<Shoppers>>,
    pub counters: Arc<Counters>,
    pub pacer: Arc<Pacer>,
    pub rates: MutationRates,
    /// Purchases claimed so far across workers (for --max-purchases).
    pub claimed: Arc<AtomicU64>,
    pub max_purchases: Option<u64>,
    pub cancel: CancellationToken,
}

/// One purchase worker: claims a purchase, waits for its token, sends the
/// purchaser's pageview, commits the purchase, then the changes that follow.
pub async fn run_worker(
    shared: Shared,
    mut rng: StdRng,
    index: usize,
    workers: usize,
) -> Result<(), Error> {
    let mut tracker = Tracker::new(&shared.catalog, index, workers);
    if let Some(shoppers) = &shared.shoppers {
        tracker = tracker.with_completion_delay(shoppers.quiet_purchases() / workers as u64);
    }
    let mut conn: Option<Conn> = None;
    loop {
        if shared.cancel.is_cancelled() {
            return Ok(());
        }
        if let Some(max) = shared.max_purchases {
            if shared.claimed.fetch_add(1, Ordering::Relaxed) >= max {
                return Ok(());
            }
        }
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return Ok(()),
            _ = shared.pacer.acquire(1) => {}
        }
        let purchase = plan_next(&mut rng, &shared.catalog, shared.shoppers.as_deref());
        // Like the original: the purchaser views the product, then buys it.
        let pv = purchase_pageview(&mut rng, purchase.user_id, purchase.item_id, unix_now());
        shared.sink.send(&pv, PageviewKind::Purchase).await?;
        let Some(id) = insert_purchase(&shared, &mut conn, &purchase).await? else {
            return Ok(()); // cancelled while MySQL was away
        };
        shared.counters.add(&shared.counters.purchases, 1);
        tracker.purchased(id, purchase.status);
        for kind in changes_after_purchase(&shared.rates, &mut rng) {
            let Some(change) = tracker.plan(kind, &mut rng, &shared.catalog) else {
                shared.counters.add(&shared.counters.mutations_skipped, 1);
                continue;
            };
            let Some(affected) = apply_change(&shared, &mut conn, &change).await? else {
                return Ok(());
            };
            if affected == 0 {
                shared.counters.add(&shared.counters.mutations_noop, 1);
            } else {
                shared
                    .counters
                    .add(shared.counters.mutation(change.kind()), affected);
            }
        }
    }
}

const INSERT_PURCHASE: &str =
    "INSERT INTO purchases (user_id, item_id, status, quantity, purchase_price) VALUES (?, ?, ?, ?, ?)";

fn purchase_params(p: &NewPurchase) -> mysql_async::Params {
    (
        p.user_id,
        p.item_id,
        p.status,
        p.quantity,
        seed::cents_text(p.purchase_price_cents),
    )
        .into()
}

/// Backoff between retries: 100 ms doubling to 5 s, with jitter.
fn backoff(attempt: u32) -> Duration {
    pipeline::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
        .delay(attempt)
}

/// Waits before retry `attempt`; false when the run was cancelled meanwhile.
async fn pause(shared: &Shared, attempt: u32, error: &(dyn std::fmt::Display + Sync)) -> bool {
    shared.counters.add(&shared.counters.mysql_retries, 1);
    if attempt == 0 || attempt.is_power_of_two() {
        tracing::warn!(%error, attempt, "MySQL unavailable, retrying");
    }
    tokio::select! {
        _ = shared.cancel.cancelled() => false,
        _ = tokio::time::sleep(backoff(attempt)) => true,
    }
}

/// A connection, reconnecting with retries; `None` when cancelled.
async fn connection<'a>(
    shared: &Shared,
    slot: &'a mut Option<Conn>,
) -> Result<Option<&'a mut Conn>, Error> {
    let mut attempt = 0;
    while slot.is_none() {
        match shared.db.conn().await {
            Ok(c) => *slot = Some(c),
            Err(e @ Error::MysqlUnreachable { .. }) => {
                if !pause(shared, attempt, &e).await {
                    return Ok(None);
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(slot.as_mut())
}

/// Inserts the purchase and returns its id; `None` when cancelled first.
///
/// The insert runs in an explicit transaction so its id is known before the
/// COMMIT is sent: when the COMMIT's answer is lost (a killed or broken
/// connection), the row is looked up by that id, which no other writer can
/// have. Looking it up by its values instead matched another worker's
/// identical purchase now and then, and counted a purchase that was never
/// written. A failure before the COMMIT leaves nothing behind: the server
/// rolls an unfinished transaction back when its connection ends.
async fn insert_purchase(
    shared: &Shared,
    slot: &mut Option<Conn>,
    p: &NewPurchase,
) -> Result<Option<u64>, Error> {
    let mut attempt = 0;
    let mut unconfirmed: Option<u64> = None;
    loop {
        let Some(conn) = connection(shared, slot).await? else {
            return Ok(None);
        };
        if let Some(row) = unconfirmed {
            // The previous attempt's COMMIT may have landed: look for it first.
            match purchase_committed(conn, row).await {
                Ok(true) => return Ok(Some(row)),
                Ok(false) => unconfirmed = None,
                Err(e) => {
                    *slot = None;
                    if classify(&e) == Failure::Definite {
                        return Err(shared
                            .db
                            .refused("looking up an unacknowledged purchase", e));
                    }
                    if !pause(shared, attempt, &e).await {
                        return Ok(None);
                    }
                    attempt += 1;
                    continue;
                }
            }
        }
        match insert_once(conn, p).await {
            Ok(id) => return Ok(Some(id)),
            Err(failed) => match classify(&failed.error) {
                Failure::Definite => {
                    return Err(shared.db.refused("inserting a purchase", failed.error))
                }
                failure => {
                    if failure == Failure::TransientUnknown {
                        unconfirmed = failed.committing;
                    }
                    *slot = None;
                    if !pause(shared, attempt, &failed.error).await {
                        return Ok(None);
                    }
                    attempt += 1;
                }
            },
        }
    }
}

/// A failed insert; `committing` holds the row's id when the COMMIT was sent.
struct InsertFailed {
    committing: Option<u64>,
    error: mysql_async::Error,
}

/// One attempt: START TRANSACTION, INSERT, COMMIT.
async fn insert_once(conn: &mut Conn, p: &NewPurchase) -> Result<u64, InsertFailed> {
    let before_commit = |error| InsertFailed {
        committing: None,
        error,
    };
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .map_err(before_commit)?;
    tx.exec_drop(INSERT_PURCHASE, purchase_params(p))
        .await
        .map_err(before_commit)?;
    let id = tx.last_insert_id().unwrap_or(0);
    tx.commit().await.map_err(|error| InsertFailed {
        committing: Some(id),
        error,
    })?;
    Ok(id)
}

/// Applies a change, retrying transient failures (every change is safe to
/// replay: its conditions or absolute values make a second run a no-op).
/// Returns the affected rows; `None` when cancelled first.
async fn apply_change(
    shared: &Shared,
    slot: &mut Option<Conn>,
    change: &Change,
) -> Result<Option<u64>, Error> {
    let mut attempt = 0;
    let mut replayed = false;
    loop {
        let Some(conn) = connection(shared, slot).await? else {
            return Ok(None);
        };
        match conn.exec_drop(change.sql(), change.params()).await {
            Ok(()) => {
                let affected = conn.affected_rows();
                // A replay after an unknown outcome may find the first attempt
                // applied: count the change once, as intended.
                return Ok(Some(if replayed { affected.max(1) } else { affected }));
            }
            Err(e) => match classify(&e) {
                Failure::Definite => return Err(shared.db.refused("changing a row", e)),
                failure => {
                    replayed |= failure == Failure::TransientUnknown;
                    *slot = None;
                    if !pause(shared, attempt, &e).await {
                        return Ok(None);
                    }
                    attempt += 1;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::CatalogItem;
    use fake::rand::SeedableRng;

    fn catalog() -> Catalog {
        Catalog {
            items: (1..=10)
                .map(|id| CatalogItem {
                    id,
                    price_cents: id * 100 + 1,
                })
                .collect(),
            users: (1..=100).map(|id| (id, id % 5 == 0)).collect(),
            low_stock: Vec::new(),
        }
    }

    #[test]
    fn purchases_follow_the_original_distributions() {
        let c = catalog();
        let mut rng = StdRng::seed_from_u64(3);
        let ps: Vec<_> = (0..10_000).map(|_| plan_purchase(&mut rng, &c)).collect();
        for p in &ps {
            assert!(
                (1..=10).contains(&p.item_id) && (1..=100).contains(&p.user_id),
                "{p:?}"
            );
            assert!((1..=5).contains(&p.quantity), "{p:?}");
            assert!(p.status <= 1);
            assert_eq!(
                p.purchase_price_cents,
                (p.item_id * 100 + 1) * u64::from(p.quantity)
            );
        }
        let complete = ps.iter().filter(|p| p.status == 1).count() as f64 / ps.len() as f64;
        assert!((complete - 0.9).abs() < 0.015, "{complete}");
        for q in 1..=5 {
            assert!(ps.iter().any(|p| p.quantity == q));
        }
    }

    #[test]
    fn changes_only_touch_eligible_rows() {
        let c = catalog();
        let mut rng = StdRng::seed_from_u64(4);
        let mut t = Tracker::new(&c, 0, 1);
        assert_eq!(t.plan(MutationKind::Completion, &mut rng, &c), None);
        assert_eq!(t.plan(MutationKind::HardDelete, &mut rng, &c), None);
        t.purchased(1, 0);
        t.purchased(2, 1);
        assert_eq!(
            t.plan(MutationKind::Completion, &mut rng, &c),
            Some(Change::Completion { purchase_id: 1 })
        );
        // Purchase 1 is complete now: nothing left to complete.
        assert_eq!(t.plan(MutationKind::Completion, &mut rng, &c), None);
        let mut deleted = Vec::new();
        while let Some(Change::SoftDelete { purchase_id }) =
            t.plan(MutationKind::SoftDelete, &mut rng, &c)
        {
            deleted.push(purchase_id);
        }
        deleted.sort();
        assert_eq!(deleted, [1, 2]);
        // Every VIP upgrade names a distinct user who was not VIP.
        let mut upgraded = Vec::new();
        while let Some(Change::VipUpgrade { user_id }) =
            t.plan(MutationKind::VipUpgrade, &mut rng, &c)
        {
            assert!(user_id % 5 != 0);
            upgraded.push(user_id);
        }
        upgraded.sort();
        upgraded.dedup();
        assert_eq!(upgraded.len(), 80);
        let Some(Change::Restock { item_id, inventory }) =
            t.plan(MutationKind::Restock, &mut rng, &c)
        else {
            panic!("restocks always have an item")
        };
        assert!((1..=10).contains(&item_id) && seed::INVENTORY.contains(&inventory));
    }

    #[test]
    fn with_a_delay_completions_wait_and_take_the_oldest() {
        let c = catalog();
        let mut rng = StdRng::seed_from_u64(6);
        let mut t = Tracker::new(&c, 0, 1).with_completion_delay(3);
        t.purchased(1, 0);
        t.purchased(2, 1);
        t.purchased(3, 0);
        // Purchase 1 was 2 purchases ago: its shopper is still quiet.
        assert_eq!(t.plan(MutationKind::Completion, &mut rng, &c), None);
        t.purchased(4, 1);
        assert_eq!(
            t.plan(MutationKind::Completion, &mut rng, &c),
            Some(Change::Completion { purchase_id: 1 })
        );
        assert_eq!(t.plan(MutationKind::Completion, &mut rng, &c), None);
        // A soft-deleted cart is never completed.
        while t.plan(MutationKind::SoftDelete, &mut rng, &c).is_some() {}
        t.purchased(5, 1);
        t.purchased(6, 1);
        assert_eq!(t.plan(MutationKind::Completion, &mut rng, &c), None);
    }

    #[test]
    fn workers_share_out_the_non_vip_users() {
        let c = catalog();
        let a = Tracker::new(&c, 0, 2).non_vip;
        let b = Tracker::new(&c, 1, 2).non_vip;
        assert_eq!(a.len() + b.len(), 80);
        assert!(a.iter().all(|id| !b.contains(id)));
    }

    #[test]
    fn change_counts_follow_their_rates() {
        let rates = MutationRates {
            completions_per_purchase: 0.25,
            soft_deletes_per_purchase: 1.5,
            ..MutationRates::NONE
        };
        let mut rng = StdRng::seed_from_u64(5);
        let mut n = HashMap::new();
        for _ in 0..10_000 {
            for k in changes_after_purchase(&rates, &mut rng) {
                *n.entry(k.name()).or_insert(0u32) += 1;
            }
        }
        assert!((2300..2700).contains(&n["completions"]), "{n:?}");
        assert!((14_600..15_400).contains(&n["soft_deletes"]), "{n:?}");
        assert_eq!(n.len(), 2);
        assert!(changes_after_purchase(&MutationRates::NONE, &mut rng).is_empty());
    }
}
