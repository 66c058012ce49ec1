//! analytics: folds the shop's CDC streams (`mysql.shop.users|items|purchases`,
//! Debezium Avro) and the `pageviews` JSON stream into the demo's summary
//! tables in Postgres, exactly once.
//!
//! - [`config`]: flags and environment.
//! - `batching`: batches bounded in records, bytes and time; the memory
//!   budget of what is in flight.
//! - [`consume`]: the consumer loop, offsets stored in Postgres, rebalances.
//! - [`decode`]: Confluent-framed Avro via the registry, pageview JSON.
//! - [`fold`]: changes -> mirror writes and additive aggregate deltas.
//! - [`store`]: one Postgres transaction per batch, migrations.
//! - [`dlq`]: the dead-letter topic.
//! - [`push`]: the seed's pushes (`high-value-users` topic, abandoned-cart
//!   topic and NOTIFY), from an outbox.
//! - [`retention`]: drops raw pageviews past their retention, off the
//!   batches' path.
//! - `fixtures` (feature `test-support`): Debezium-format Avro events for
//!   tests and the benchmark, built with the `debezium-avro` crate.
//! - `bench` (feature `bench`): the benchmark behind `analytics bench`.
//!   Without these features (a plain release build) neither module, nor the
//!   `bench` subcommand, is compiled in.
//! - [`startup`]: the watch over the steps before the consumer loop.
//!
//! Nothing stops silently: [`run`] returns an error (the binary exits
//! non-zero, a supervisor restarts it) when a consumer worker thread
//! panics, when Postgres refuses a batch definitely (see
//! [`store::Recovery`]: the ERROR names the batch's partitions and offsets
//! and the SQLSTATE), or when the push or the retention task ends on its
//! own; /healthz says why until the process is gone. Transient failures are
//! retried with [`pipeline::backoff`] and shown on /healthz while they last.

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod batching;
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
pub mod consume;
pub mod decode;
pub mod dlq;
#[cfg(feature = "test-support")]
pub mod fixtures;
pub mod fold;
pub mod push;
pub mod retention;
pub mod startup;
pub mod store;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use consume::{ConsumeError, Processor};
use dlq::{DeadLetters, DlqError};
use pipeline::backoff::Backoff;
use pipeline::registry::{RegistryClient, RegistryError};
use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dlq(#[from] DlqError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the consumer thread panicked: {0}")]
    Panicked(String),
    /// A task beside the consumer (the pushes, the log's retention) ended
    /// although no shutdown was asked (it panicked, or gave up on bad
    /// settings): its work would silently stop.
    #[error("the {task} task stopped: {cause}")]
    TaskStopped { task: &'static str, cause: String },
}

/// Applies migrations, retrying what a retry can fix
/// ([`StoreError::recovery`]): Postgres unreachable or starting up, a
/// migration it rolled back for a transient cause (a deadlock with a
/// dashboard reading the views a migration replaces, a lost connection). A
/// migration that waited `lock_timeout` for a reader's lock gives way to the
/// readers queued behind it and runs again. A definite failure (a wrong
/// password, a missing database, a refused migration) is returned at once.
pub async fn migrate_with_retry(
    url: &str,
    lock_timeout: Duration,
    shutdown: &AtomicBool,
) -> Result<(), StoreError> {
    let mut backoff = Backoff::default();
    loop {
        let error = match store::migrate(url, lock_timeout).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if error.recovery() == store::Recovery::Definite
            || shutdown.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(error);
        }
        let delay = backoff.next_delay();
        tracing::warn!(%error, ?delay, "postgres migrations not applied yet; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// Runs the service until `shutdown` is set.
pub async fn run(
    config: Config,
    health: pipeline::telemetry::Health,
    shutdown: Arc<AtomicBool>,
) -> Result<(), RunError> {
    tracing::info!(settings = %config.describe(), "analytics starting");
    // Every step until the consumer loop (which has its own watches) is
    // timed: a hang here is a WARN naming the step and a 503.
    let watch = startup::Watch::start(config.unassigned_limit(), health.clone());
    watch.step("migrations");
    migrate_with_retry(
        config.postgres_url.expose(),
        config.migration_lock_timeout(),
        &shutdown,
    )
    .await?;
    watch.step("write_settings");
    store::write_settings(
        config.postgres_url.expose(),
        config.inactivity_window_secs,
        config.pageview_log_secs,
    )
    .await?;
    watch.step("dead-letter topic");
    let dead_letters = DeadLetters::new(&config.kafka, &config.dead_letter_topic)?;
    let mut backoff = Backoff::default();
    while let Err(error) = dead_letters
        .ensure_topic(&config.kafka, config.dead_letter_replication_factor)
        .await
    {
        let delay = backoff.next_delay();
        tracing::warn!(%error, ?delay, "cannot create the dead-letter topic yet; retrying");
        tokio::time::sleep(delay).await;
    }
    watch.finish();
    // One registry client (one set of caches, one health report) for the
    // decoder and the pushes.
    let registry = RegistryClient::new(&config.registry)?.with_health(health.clone());
    let processor = Processor::new(
        &config,
        dead_letters,
        decode::Registry::new(registry.clone()),
    );
    // The pushes and the log's retention use connections of their own and
    // never hold up a batch; they stop with the consumer.
    let mut pushes = tokio::spawn(push::run(
        config.clone(),
        registry,
        shutdown.clone(),
        health.clone(),
    ));
    let mut retention = tokio::spawn(retention::run(
        config.postgres_url.expose().to_owned(),
        config.pageview_log_secs,
        shutdown.clone(),
        health.clone(),
    ));
    let runtime = tokio::runtime::Handle::current();
    let consumer_shutdown = shutdown.clone();
    let consumer_health = health.clone();
    let mut consumer = tokio::task::spawn_blocking(move || {
        consume::run_loop(
            &config,
            processor,
            runtime,
            consumer_shutdown,
            consumer_health,
        )
    });
    // Whichever ends first: the consumer (shutdown or a definite error), or
    // a side task, which ends only on shutdown unless something broke.
    let ((task, ended), (other_task, other)) = tokio::select! {
        consumed = &mut consumer => {
            shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
            let consumed = consumed.map_err(|e| RunError::Panicked(e.to_string()));
            for (task, handle) in [("push", pushes), ("retention", retention)] {
                handle.await.map_err(|e| RunError::TaskStopped { task, cause: e.to_string() })?;
            }
            return Ok(consumed??);
        }
        pushed = &mut pushes => (("push", pushed), ("retention", retention)),
        pruned = &mut retention => (("retention", pruned), ("push", pushes)),
    };
    let cause = match ended {
        Ok(()) if shutdown.load(std::sync::atomic::Ordering::SeqCst) => None,
        Ok(()) => Some("it ended on its own (see the error before)".to_owned()),
        Err(e) => Some(e.to_string()),
    };
    let early = cause.map(|cause| {
        tracing::error!(task, %cause, "a task beside the consumer stopped; stopping the service");
        health.unhealthy(format!("the {task} task stopped: {cause}"));
        shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        RunError::TaskStopped { task, cause }
    });
    let consumed = consumer
        .await
        .map_err(|e| RunError::Panicked(e.to_string()))?;
    other.await.map_err(|e| RunError::TaskStopped {
        task: other_task,
        cause: e.to_string(),
    })?;
    match early {
        Some(error) => Err(error),
        None => Ok(consumed?),
    }
}
