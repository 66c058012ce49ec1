//! analytics: folds the shop's CDC streams (`mysql.shop.users|items|purchases`,
//! Debezium Avro) and the `pageviews` JSON stream into the demo's summary
//! tables in Postgres, exactly once.
//!
//! - [`config`]: flags and environment.
//! - [`consume`]: the consumer loop, offsets stored in Postgres, rebalances.
//! - [`decode`]: Confluent-framed Avro via the registry, pageview JSON.
//! - [`fold`]: changes -> mirror writes and additive aggregate deltas.
//! - [`store`]: one Postgres transaction per batch, migrations.
//! - [`dlq`]: the dead-letter topic.
//! - [`push`]: the seed's pushes (`high-value-users` topic, abandoned-cart
//!   topic and NOTIFY), from an outbox.
//! - [`fixtures`]: Debezium-format Avro events for tests and the benchmark.
//! - [`bench`]: the benchmark behind `analytics bench`.

pub mod bench;
pub mod config;
pub mod consume;
pub mod decode;
pub mod dlq;
pub mod fixtures;
pub mod fold;
pub mod push;
pub mod store;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
}

/// Applies migrations, retrying while Postgres is unreachable; a migration
/// that fails on a reachable database is fatal.
pub async fn migrate_with_retry(url: &str, shutdown: &AtomicBool) -> Result<(), StoreError> {
    let mut backoff = Backoff::default();
    loop {
        match store::migrate(url).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Postgres(error))
                if !shutdown.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "postgres unavailable for migrations; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(other) => return Err(other),
        }
    }
}

/// Runs the service until `shutdown` is set.
pub async fn run(
    config: Config,
    health: pipeline::telemetry::Health,
    shutdown: Arc<AtomicBool>,
) -> Result<(), RunError> {
    tracing::info!(settings = %config.describe(), "analytics starting");
    migrate_with_retry(config.postgres_url.expose(), &shutdown).await?;
    store::write_settings(
        config.postgres_url.expose(),
        config.inactivity_window_secs,
        config.pageview_log_secs,
    )
    .await?;
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
    // One registry client (one set of caches, one health report) for the
    // decoder and the pushes.
    let registry = RegistryClient::new(&config.registry)?.with_health(health.clone());
    let processor = Processor::new(
        &config,
        dead_letters,
        decode::Registry::new(registry.clone()),
    );
    // The pushes read committed tables on their own connection and never
    // hold up a batch; they stop with the consumer.
    let pushes = tokio::spawn(push::run(config.clone(), registry, shutdown.clone()));
    let runtime = tokio::runtime::Handle::current();
    let consumer_shutdown = shutdown.clone();
    let result = tokio::task::spawn_blocking(move || {
        consume::run_loop(&config, processor, runtime, consumer_shutdown, health)
    })
    .await
    .map_err(|e| RunError::Panicked(e.to_string()))?;
    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
    pushes
        .await
        .map_err(|e| RunError::Panicked(e.to_string()))?;
    Ok(result?)
}
