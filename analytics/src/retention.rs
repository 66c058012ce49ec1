//! The retention of `pageview_log`, the raw pageviews behind the seed's
//! `v_pageviews` and `json_pageviews`.
//!
//! Each batch appends its pageviews to the log in its own transaction, so the
//! log holds every pageview exactly once. Dropping the old ones is not part
//! of that promise, and it is kept off the batches' path: a task on its own
//! Postgres connection deletes the pageviews older than the retention in
//! `analytics_settings` every tenth of the retention (at least 1 s apart),
//! so the log holds at most about 1.1 retentions of pageviews.
//!
//! Why not in the batch, as before: pruning there needed an index on
//! `received_at`, and that index cost each logged pageview an insertion:
//! in the 1M-pageview drain, a third to a half of Postgres' CPU (migration
//! step 9). Here the DELETE reads the log sequentially, ten times per
//! retention, so each pageview is read about 11 times in its life whatever
//! the retention: at 10x the demo's rate (7,500 pageviews/s, 15 minutes
//! kept) a prune every 90 s reads ~7M rows and deletes ~0.7M. The interval
//! is not capped: a long retention pruned every minute would read the
//! whole, larger log every minute. (Retentions of hours at such rates
//! would rather want the log partitioned by time, pruned by dropping
//! partitions; not built.)
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

/// How often the log is pruned for a retention of `retention_secs`: a tenth
/// of it, at least 1 s (a zero retention keeps nothing: leftovers of an
/// earlier setting go within a minute).
pub fn prune_interval(retention_secs: u32) -> Duration {
    if retention_secs == 0 {
        return Duration::from_secs(60);
    }
    Duration::from_secs(u64::from(retention_secs / 10).max(1))
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
    fn a_tenth_of_the_retention_at_least_a_second_apart() {
        assert_eq!(prune_interval(900), Duration::from_secs(90));
        assert_eq!(prune_interval(86_400), Duration::from_secs(8_640));
        assert_eq!(prune_interval(5), Duration::from_secs(1));
        assert_eq!(prune_interval(0), Duration::from_secs(60));
    }
}
