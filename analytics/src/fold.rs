//! Folding decoded changes into mirror writes and aggregate deltas.
//!
//! Invariants enforced here:
//! - A CDC change is folded against the row analytics applied last for that key
//!   (the mirror), never against the event's `before`: the delta of a key is
//!   `contribution(final row) - contribution(mirrored row)`. A re-sent event
//!   (cdc restart) therefore yields a zero delta, and several changes to one key
//!   inside a batch collapse to their net effect.
//! - Every delta is additive, so applying deltas from different partitions in
//!   any order (or concurrently, from several instances) gives the same totals.
//! - A TRUNCATE ends the history of a table: only the changes after the last
//!   one in a batch are folded ([`after_last_truncate`]), against the mirror
//!   the store has just emptied, so their deltas are the whole new state.
//! - A purchase counts as incomplete exactly when `incomplete_purchases`
//!   lists it (status 0; a NULL status is neither completed nor incomplete):
//!   its per-user deltas keep `agg_user_purchases.incomplete` equal to the
//!   user's mirrored purchases with status 0 (the view is those joined with
//!   `users`; migration V8's totals make the same join).
//! - `remaining_stock` counts a purchase when `created_at > inventory_updated_at`
//!   of the item as currently mirrored; the caller recomputes an item's row
//!   whenever the item itself changes, so deltas here use the current value.
//!
//! Nothing here touches I/O: the store reads the mirrors, calls these functions
//! and writes the result in the batch's transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::decode::{Cents, Change, PageviewEvent, PurchaseRow};

/// Whether `changes` hold a TRUNCATE, and the changes after the last one:
/// what came before it is gone with the table. The store clears what the
/// table fed, then folds only the rest, against an empty mirror.
pub fn after_last_truncate<R>(changes: &[Change<R>]) -> (bool, &[Change<R>]) {
    match changes.iter().rposition(|c| matches!(c, Change::Truncate)) {
        Some(at) => (true, &changes[at + 1..]),
        None => (false, changes),
    }
}

/// Last change per key wins: the mirror's final state for each key touched.
/// A TRUNCATE forgets the keys before it (call it with the changes after
/// the last one, see [`after_last_truncate`]: the table's other rows are
/// deleted by the store, not listed here).
pub fn final_states<R: Clone>(
    changes: &[Change<R>],
    key: impl Fn(&R) -> i64,
) -> BTreeMap<i64, Option<R>> {
    let mut out = BTreeMap::new();
    for change in changes {
        match change {
            Change::Upsert(row) => {
                out.insert(key(row), Some(row.clone()));
            }
            Change::Delete(id) => {
                out.insert(*id, None);
            }
            Change::Truncate => out.clear(),
        }
    }
    out
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SalesDelta {
    pub revenue: Cents,
    pub orders: i64,
    pub items_sold: i64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UserDelta {
    pub purchases: i64,
    pub completed: i64,
    pub lifetime_value: Cents,
    /// Purchases with status 0 (`incomplete_purchases`' rows of the user)
    /// and their purchase_price; a NULL status is neither completed nor
    /// incomplete (the view's `status = 0` is not true for it).
    pub incomplete: i64,
    pub incomplete_value: Cents,
}

/// Net effect of a batch of purchase changes on every purchase aggregate.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurchaseDeltas {
    pub by_item: BTreeMap<i64, SalesDelta>,
    pub by_user: BTreeMap<i64, UserDelta>,
    pub by_minute: BTreeMap<DateTime<Utc>, SalesDelta>,
    /// Change of `sold_since_restock` per item.
    pub stock: BTreeMap<i64, i64>,
}

impl PurchaseDeltas {
    fn add(
        &mut self,
        row: &PurchaseRow,
        sign: i64,
        restocked_at: &HashMap<i64, Option<DateTime<Utc>>>,
    ) {
        let price = row.purchase_price.unwrap_or(0) * sign;
        let quantity = row.quantity.unwrap_or(0) * sign;
        let sales = SalesDelta {
            revenue: price,
            orders: sign,
            items_sold: quantity,
        };
        if let Some(item) = row.item_id {
            add_sales(self.by_item.entry(item).or_default(), sales);
            // Only items present in the mirror have a stock row; an item that
            // arrives later is recomputed from the purchases mirror.
            if let (Some(Some(restock)), Some(created)) = (restocked_at.get(&item), row.created_at)
            {
                if created > *restock {
                    *self.stock.entry(item).or_default() += quantity;
                }
            }
        }
        if let Some(user) = row.user_id {
            let u = self.by_user.entry(user).or_default();
            u.purchases += sign;
            u.completed += if row.status.unwrap_or(0) != 0 {
                sign
            } else {
                0
            };
            u.lifetime_value += price;
            if row.status == Some(0) {
                u.incomplete += sign;
                u.incomplete_value += price;
            }
        }
        if let Some(created) = row.created_at {
            add_sales(self.by_minute.entry(minute_of(created)).or_default(), sales);
        }
    }

    /// Drops entries whose net delta is zero (duplicates, no-op updates).
    fn prune(&mut self) {
        self.by_item.retain(|_, d| *d != SalesDelta::default());
        self.by_user.retain(|_, d| *d != UserDelta::default());
        self.by_minute.retain(|_, d| *d != SalesDelta::default());
        self.stock.retain(|_, d| *d != 0);
    }
}

fn add_sales(into: &mut SalesDelta, d: SalesDelta) {
    into.revenue += d.revenue;
    into.orders += d.orders;
    into.items_sold += d.items_sold;
}

pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap_or(t)
}

/// Deltas of moving each key from its mirrored row (`previous`) to its final
/// row (`finals`). `restocked_at` maps item id -> the mirrored item's
/// `inventory_updated_at` (outer `None`/missing: item not mirrored).
pub fn fold_purchases(
    previous: &HashMap<i64, PurchaseRow>,
    finals: &BTreeMap<i64, Option<PurchaseRow>>,
    restocked_at: &HashMap<i64, Option<DateTime<Utc>>>,
) -> PurchaseDeltas {
    let mut deltas = PurchaseDeltas::default();
    for (id, new) in finals {
        let old = previous.get(id);
        if old == new.as_ref() {
            continue;
        }
        if let Some(old) = old {
            deltas.add(old, -1, restocked_at);
        }
        if let Some(new) = new {
            deltas.add(new, 1, restocked_at);
        }
    }
    deltas.prune();
    deltas
}

/// Item ids whose stock a purchase batch may change: the items of the mirrored
/// and of the final rows.
pub fn purchase_items(
    previous: &HashMap<i64, PurchaseRow>,
    finals: &BTreeMap<i64, Option<PurchaseRow>>,
) -> Vec<i64> {
    let mut items: Vec<i64> = previous
        .values()
        .filter_map(|r| r.item_id)
        .chain(finals.values().flatten().filter_map(|r| r.item_id))
        .collect();
    items.sort_unstable();
    items.dedup();
    items
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelDelta {
    pub pageviews: i64,
    pub product_pageviews: i64,
}

/// Net effect of a batch of pageviews. Channels borrow from the batch's
/// events: folding allocates per key, not per pageview.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageviewDeltas<'a> {
    pub item_channel: BTreeMap<(i64, &'a str), i64>,
    pub item_views: BTreeMap<i64, i64>,
    pub user_last_seen: BTreeMap<i64, DateTime<Utc>>,
    pub user_channel: BTreeMap<(i64, &'a str), ChannelDelta>,
}

pub fn fold_pageviews<'a>(
    pageviews: impl IntoIterator<Item = &'a PageviewEvent>,
) -> PageviewDeltas<'a> {
    let mut d = PageviewDeltas::default();
    for pv in pageviews {
        let last = d.user_last_seen.entry(pv.user_id).or_insert(pv.received_at);
        *last = (*last).max(pv.received_at);
        let channel = &*pv.channel;
        let uc = d.user_channel.entry((pv.user_id, channel)).or_default();
        uc.pageviews += 1;
        if let Some(item) = pv.product {
            uc.product_pageviews += 1;
            *d.item_channel.entry((item, channel)).or_default() += 1;
            *d.item_views.entry(item).or_default() += 1;
        }
    }
    d
}

/// What a batch changes in one channel's row of the conversion funnel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FunnelDelta {
    pub visitors: i64,
    pub product_viewers: i64,
    pub buyers: i64,
    pub pageviews: i64,
    pub product_pageviews: i64,
}

impl FunnelDelta {
    pub fn add(&mut self, d: FunnelDelta) {
        self.visitors += d.visitors;
        self.product_viewers += d.product_viewers;
        self.buyers += d.buyers;
        self.pageviews += d.pageviews;
        self.product_pageviews += d.product_pageviews;
    }
}

/// A `user_channels` row as the batch's upsert left it (`now`), and what the
/// batch added to it (`added`). Counts only grow, so the row's totals before
/// the batch are `now - added`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChannelTotals {
    pub user_id: i64,
    pub channel: String,
    pub added: ChannelDelta,
    pub now: ChannelDelta,
}

impl UserChannelTotals {
    /// The user had no pageview from this channel before the batch.
    pub fn new_visitor(&self) -> bool {
        self.now.pageviews > 0 && self.now.pageviews == self.added.pageviews
    }

    /// The user's first product pageview from this channel is in the batch.
    pub fn new_product_viewer(&self) -> bool {
        self.now.product_pageviews > 0 && self.now.product_pageviews == self.added.product_pageviews
    }
}

/// Funnel deltas of a pageview batch: the counts of every (user, channel)
/// pair the batch `added`; visitors, product viewers and buyers from the
/// pairs' rows that may be `firsts` (the store returns only rows whose totals
/// equal what the batch added in either count; others are ignored here
/// anyway). `buyers`: which of the new product viewers have a completed
/// purchase, read after the batch's upsert under the users' funnel lock (so a
/// purchase batch flipping the same user either committed before, and is
/// seen here, or sees this batch's rows itself).
pub fn funnel_from_pageviews<'a>(
    added: &BTreeMap<(i64, &'a str), ChannelDelta>,
    firsts: &'a [UserChannelTotals],
    buyers: &HashSet<i64>,
) -> BTreeMap<&'a str, FunnelDelta> {
    let mut out: BTreeMap<&str, FunnelDelta> = BTreeMap::new();
    for ((_, channel), d) in added {
        let f = out.entry(*channel).or_default();
        f.pageviews += d.pageviews;
        f.product_pageviews += d.product_pageviews;
    }
    for row in firsts {
        let viewer = row.new_product_viewer();
        out.entry(row.channel.as_str())
            .or_default()
            .add(FunnelDelta {
                visitors: i64::from(row.new_visitor()),
                product_viewers: i64::from(viewer),
                buyers: i64::from(viewer && buyers.contains(&row.user_id)),
                ..FunnelDelta::default()
            });
    }
    out
}

/// Users whose buyer status (`completed > 0`) a purchase batch flipped: `+1`
/// became a buyer, `-1` no longer is. `completed_now`: each user's count after
/// the batch's upsert; the count before is `completed_now - delta`.
pub fn buyer_flips(
    completed_now: &[(i64, i64)],
    deltas: &BTreeMap<i64, UserDelta>,
) -> BTreeMap<i64, i64> {
    completed_now
        .iter()
        .filter_map(|&(user, now)| {
            let before = now - deltas.get(&user).map_or(0, |d| d.completed);
            match (before > 0, now > 0) {
                (false, true) => Some((user, 1)),
                (true, false) => Some((user, -1)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn purchase(id: i64, item: i64, qty: i64, price: Cents, created: i64) -> PurchaseRow {
        PurchaseRow {
            id,
            user_id: Some(10),
            item_id: Some(item),
            status: Some(1),
            quantity: Some(qty),
            purchase_price: Some(price),
            deleted: Some(false),
            created_at: Some(t(created)),
            updated_at: Some(t(created)),
        }
    }

    #[test]
    fn a_duplicate_event_folds_to_nothing() {
        let row = purchase(1, 5, 2, 1000, 100);
        let previous = HashMap::from([(1, row.clone())]);
        let finals = final_states(&[Change::Upsert(row)], |r: &PurchaseRow| r.id);
        let restock = HashMap::from([(5, Some(t(0)))]);
        assert_eq!(
            fold_purchases(&previous, &finals, &restock),
            PurchaseDeltas::default()
        );
    }

    #[test]
    fn an_update_moves_the_contribution_between_items_and_minutes() {
        let old = purchase(1, 5, 2, 1000, 100);
        let mut new = purchase(1, 6, 3, 1500, 200);
        new.status = Some(0);
        let previous = HashMap::from([(1, old)]);
        let finals = final_states(&[Change::Upsert(new)], |r: &PurchaseRow| r.id);
        let restock = HashMap::from([(5, Some(t(0))), (6, Some(t(150)))]);
        let d = fold_purchases(&previous, &finals, &restock);
        assert_eq!(
            d.by_item[&5],
            SalesDelta {
                revenue: -1000,
                orders: -1,
                items_sold: -2
            }
        );
        assert_eq!(
            d.by_item[&6],
            SalesDelta {
                revenue: 1500,
                orders: 1,
                items_sold: 3
            }
        );
        assert_eq!(
            d.by_user[&10],
            UserDelta {
                purchases: 0,
                completed: -1,
                lifetime_value: 500,
                incomplete: 1,
                incomplete_value: 1500,
            }
        );
        assert_eq!(d.stock, BTreeMap::from([(5, -2), (6, 3)]));
        assert_eq!(d.by_minute[&t(60)].orders, -1);
        assert_eq!(d.by_minute[&t(180)].orders, 1);
    }

    #[test]
    fn insert_then_delete_in_one_batch_nets_to_zero_and_purchases_before_restock_do_not_count() {
        let row = purchase(2, 5, 2, 1000, 100);
        let changes = [Change::Upsert(row.clone()), Change::Delete(2)];
        let finals = final_states(&changes, |r: &PurchaseRow| r.id);
        assert_eq!(finals[&2], None);
        let restock = HashMap::from([(5, Some(t(500)))]);
        let d = fold_purchases(&HashMap::new(), &finals, &restock);
        assert_eq!(d, PurchaseDeltas::default());
        let finals = final_states(&changes[..1], |r: &PurchaseRow| r.id);
        let d = fold_purchases(&HashMap::new(), &finals, &restock);
        assert!(d.stock.is_empty(), "created before the restock");
        assert_eq!(d.by_item[&5].orders, 1);
    }

    #[test]
    fn only_the_changes_after_the_last_truncate_are_folded() {
        let changes = [
            Change::Upsert(purchase(1, 5, 1, 100, 10)),
            Change::Truncate,
            Change::Upsert(purchase(2, 5, 1, 100, 10)),
            Change::Truncate,
            Change::Upsert(purchase(1, 6, 2, 300, 20)),
        ];
        let (truncated, rest) = after_last_truncate(&changes);
        assert!(truncated);
        assert_eq!(rest, &changes[4..]);
        let finals = final_states(rest, |r: &PurchaseRow| r.id);
        assert_eq!(finals.keys().copied().collect::<Vec<_>>(), vec![1]);
        // final_states on its own forgets what a truncate removed, too.
        assert_eq!(final_states(&changes, |r: &PurchaseRow| r.id), finals);
        let (truncated, rest) = after_last_truncate(&changes[..1]);
        assert!(!truncated);
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn pageviews_fold_per_item_channel_and_user() {
        let pv = |user, product, channel: &str, at| PageviewEvent {
            user_id: user,
            product,
            profile: product.is_none().then_some(user + 1),
            channel: channel.to_owned().into(),
            received_at: t(at),
        };
        let batch = [
            pv(1, Some(7), "social", 10),
            pv(1, None, "social", 5),
            pv(2, Some(7), "display", 3),
        ];
        let d = fold_pageviews(&batch);
        assert_eq!(d.item_views[&7], 2);
        assert_eq!(d.item_channel[&(7, "social")], 1);
        assert_eq!(d.user_last_seen[&1], t(10));
        assert_eq!(
            d.user_channel[&(1, "social")],
            ChannelDelta {
                pageviews: 2,
                product_pageviews: 1
            }
        );
    }

    #[test]
    fn a_first_product_view_makes_a_product_viewer_and_a_buyer_only_with_a_completed_purchase() {
        let row = |user, channel: &str, added: (i64, i64), now: (i64, i64)| UserChannelTotals {
            user_id: user,
            channel: channel.into(),
            added: ChannelDelta {
                pageviews: added.0,
                product_pageviews: added.1,
            },
            now: ChannelDelta {
                pageviews: now.0,
                product_pageviews: now.1,
            },
        };
        let rows = [
            // New visitor, first product view, has bought: all three.
            row(1, "social", (2, 1), (2, 1)),
            // Known visitor, first product view, never bought.
            row(2, "social", (1, 1), (5, 1)),
            // Known product viewer: counts only.
            row(3, "social", (3, 2), (9, 4)),
            // New visitor without a product view.
            row(4, "search", (1, 0), (1, 0)),
        ];
        let added: BTreeMap<(i64, &str), ChannelDelta> = rows
            .iter()
            .map(|r| ((r.user_id, r.channel.as_str()), r.added))
            .collect();
        let d = funnel_from_pageviews(&added, &rows, &HashSet::from([1, 3]));
        assert_eq!(
            d["social"],
            FunnelDelta {
                visitors: 1,
                product_viewers: 2,
                buyers: 1,
                pageviews: 6,
                product_pageviews: 4
            }
        );
        assert_eq!(d["search"].visitors, 1);
        assert_eq!(d["search"].product_viewers, 0);
    }

    #[test]
    fn buyer_status_flips_both_ways_and_only_across_zero() {
        let delta = |completed| UserDelta {
            completed,
            ..UserDelta::default()
        };
        let deltas = BTreeMap::from([(1, delta(1)), (2, delta(-1)), (3, delta(1)), (4, delta(0))]);
        // user 1: 0 -> 1 (flip up); 2: 1 -> 0 (down); 3: 1 -> 2 (none); 4: unchanged.
        let flips = buyer_flips(&[(1, 1), (2, 0), (3, 2), (4, 3)], &deltas);
        assert_eq!(flips, BTreeMap::from([(1, 1), (2, -1)]));
    }
}
