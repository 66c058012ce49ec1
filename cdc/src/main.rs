//! The cdc binary: settings (flags, env, Debezium connector JSON), telemetry,
//! signals, then [`cdc::run`].

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may; documented exceptions carry an
// `#[allow]` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::Write;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use pipeline::kafka::KafkaArgs;
use pipeline::registry::RegistryArgs;
use pipeline::telemetry::{Health, TelemetryArgs};
use tokio_util::sync::CancellationToken;

/// MySQL/MariaDB binlog to Debezium-envelope Avro change events on Kafka.
#[derive(clap::Parser, Debug)]
#[command(name = "cdc", version)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

/// Decoding allocates per column (mysql_common builds a `Column` per value):
/// mimalloc cuts the allocator's share of the streaming CPU several-fold.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = cdc::config::augment_command(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let registry_default = matches.value_source("url") == Some(ValueSource::DefaultValue);
    pipeline::telemetry::init_tracing(&cli.telemetry);
    let (config, warnings) =
        cdc::config::Config::from_matches(&matches, cli.kafka, cli.registry, registry_default)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    if matches.get_flag("check-config") {
        let mut out = std::io::stdout().lock();
        out.write_all(config.describe().as_bytes())?;
        return Ok(());
    }
    tracing::info!("effective configuration:\n{}", config.describe());

    let health = Health::default();
    health.unhealthy("starting");
    let _telemetry = pipeline::telemetry::serve(&cli.telemetry, health.clone()).await?;

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        pipeline::shutdown::signal().await;
        tracing::info!("shutdown requested; finishing in-flight records");
        signal.cancel();
    });

    match cdc::run(config, shutdown, health).await {
        Ok(summary) => {
            tracing::info!(?summary, "stopped");
            Ok(())
        }
        Err(error) => {
            let kind = if error.is_transient() {
                "transient (a restart may succeed)"
            } else {
                "definite (fix the cause, then restart)"
            };
            Err(error).with_context(|| format!("cdc stopped: {kind}"))
        }
    }
}
