//! The retention of `pageview_log`, the raw pageviews behind the seed's
//! `v_pageviews` and `json_pageviews`.
//!
//! Each batch appends its pageviews to the log in its own transaction, so the
//! log holds every pageview exactly once. Dropping the old ones is not part
//! of that promise, and it is kept off the batches' path: a task on its own
//! Postgres connection deletes the pageviews older than the retention in
//! `analytics_settings` every half retention (at least 1 s apart), so the
//! table holds up to 1.5 retentions of pageviews. Readers see exactly the
//! retention whenever the last prune ran: `v_pageviews` and `json_pageviews`
//! filter on it (migration step 9).
//!
//! Why not in the batch, as before: pruning there needed an index on
//! `received_at`, and that index cost each logged pageview an insertion:
//! in the 1M-pageview drain, a third to a half of Postgres' CPU, and
//! ~0.6-0.9 us per pageview even when received_at only grows (migration
//! step 9). Here the DELETE reads the log sequentially (~0.2 us per row), and
//! each pageview is read about 3 times in its life whatever the retention:
//! at 10x the demo's rate (7,500 pageviews/s, 15 minutes kept) a prune every
//! 7.5 minutes reads ~10M rows and deletes ~3.5M in ~3.2 s, and the vacuum
//! after it takes ~0.4 s (measured by hand, a build on the other core):
//! ~0.8% of a core on average, in one burst. (Retentions of hours at such
//! rates would rather want the log partitioned by time, pruned by dropping
//! partitions, with neither scans nor bursts; not built.)
//!
//! Failures (Postgres away, a statement refused) are logged, counted
//! (`analytics_retention_failures_total`) and shown on /healthz as the
//! dependency [`HEALTH_NAME`] until a prune succeeds; they never stop a
//! batch. Several instances may prune at once: a row deleted by one is
//! skipped by the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipeline::backoff::Backoff;
use tokio_postgres::Client;

use crate::store::{self, StoreError};

/// The name under which a failing prune shows on /healthz.
pub const HEALTH_NAME: &str = "pageview-log retention";

/// How often the log is pruned for a retention of `retention_secs`: every
/// half of it, at least 1 s apart (a zero retention keeps nothing: leftovers
/// of an earlier setting go within a minute). Pruning more often would read
/// the retained pageviews more often for the same deletions.
pub fn prune_interval(retention_secs: u32) -> Duration {
    if retention_secs == 0 {
        return Duration::from_secs(60);
    }
    Duration::from_secs(u64::from(retention_secs / 2).max(1))
}

/// Deletes the pageviews older than `analytics_settings`' retention and
/// returns how many went.
pub async fn prune(client: &Client) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM pageview_log
             WHERE received_at < (SELECT extract(epoch FROM now() - pageview_log_retention)::bigint
                                  FROM analytics_settings)",
            &[],
        )
        .await?)
}

/// Prunes every [`prune_interval`] of `retention_secs` until `shutdown` is
/// set, connecting (again) to `postgres_url` as needed; failures are retried
/// with backoff and shown on /healthz.
pub async fn run(
    postgres_url: String,
    retention_secs: u32,
    shutdown: Arc<AtomicBool>,
    health: pipeline::telemetry::Health,
) {
    let interval = prune_interval(retention_secs);
    let mut backoff = Backoff::default();
    let mut client: Option<Client> = None;
    while !shutdown.load(Ordering::Relaxed) {
        let result = async {
            let c = match client.as_mut() {
                Some(c) if !c.is_closed() => c,
                _ => client.insert(store::connect(&postgres_url).await?),
            };
            prune(c).await
        }
        .await;
        let delay = match result {
            Ok(pruned) => {
                backoff = Backoff::default();
                health.recovered(HEALTH_NAME);
                metrics::counter!("analytics_pageview_log_pruned_total").increment(pruned);
                tracing::debug!(pruned, "pageview_log pruned");
                interval
            }
            Err(error) => {
                metrics::counter!("analytics_retention_failures_total").increment(1);
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "pruning pageview_log failed; retrying");
                health.degraded(
                    HEALTH_NAME,
                    format!("pruning pageview_log failing: {error}"),
                );
                delay
            }
        };
        pipeline::shutdown::sleep_unless(&shutdown, delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_half_retention_at_least_a_second_apart() {
        assert_eq!(prune_interval(900), Duration::from_secs(450));
        assert_eq!(prune_interval(86_400), Duration::from_secs(43_200));
        assert_eq!(prune_interval(1), Duration::from_secs(1));
        assert_eq!(prune_interval(0), Duration::from_secs(60));
    }
}
