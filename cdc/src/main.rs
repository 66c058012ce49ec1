//! The cdc binary: settings (flags, env, Debezium connector JSON), telemetry,
//! signals, then [`cdc::run`]. `cdc verify` (same settings) runs
//! [`cdc::verify::verify`] instead, prints its report and exits with its code.

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may; documented exceptions carry an
// `#[allow]` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

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
    #[command(subcommand)]
    command: Option<Subcommand>,
}

#[derive(clap::Subcommand, Debug)]
enum Subcommand {
    /// Compare each captured table with its topic at one binlog position and
    /// report missing, extra and different keys. Exit 0: equal; 1: differences;
    /// 2: error; 3: no difference, but keys changed during the run could not
    /// be decided. Uses the connector's own settings.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// Examples shown per kind of finding and table.
    #[arg(long, default_value_t = 5)]
    examples: usize,
    /// Seconds to wait for the connector's stored offset to reach the
    /// verification point.
    #[arg(long = "wait-secs", default_value_t = 120)]
    wait_secs: u64,
    /// Rows read per primary-key chunk.
    #[arg(long = "chunk-rows", default_value_t = 10_000)]
    chunk_rows: usize,
}

/// Decoding allocates per column (mysql_common builds a `Column` per value):
/// mimalloc cuts the allocator's share of the streaming CPU several-fold.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One thread runs the connector, its binlog socket and the task serving
/// Kafka's delivery reports (`pipeline::kafka::spawn_delivery_task`): a
/// record is freed on the thread that allocated it, and no event crosses
/// threads on its way in (librdkafka's own threads do the broker I/O).
/// Measured on the 1M-row drain: about 9% more events per CPU-second than
/// the multi-thread runtime with a delivery thread.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    // Global: the connector's flags are accepted after `verify` too.
    let command = cdc::config::augment_command(Cli::command()).mut_args(|a| a.global(true));
    let matches = command.get_matches();
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
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Subcommand::Verify(args)) = cli.command {
        return Ok(verify(config, args).await);
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
            Ok(ExitCode::SUCCESS)
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

/// `cdc verify`: the report on stdout, its exit code (2 on any error).
async fn verify(config: cdc::config::Config, args: VerifyArgs) -> ExitCode {
    let options = cdc::verify::Options {
        examples: args.examples,
        wait: Duration::from_secs(args.wait_secs),
        chunk_rows: args.chunk_rows.max(1),
        ..cdc::verify::Options::default()
    };
    match cdc::verify::verify(&config, &options).await {
        Ok(report) => {
            let written = std::io::stdout()
                .lock()
                .write_all(report.render().as_bytes());
            match written {
                Ok(()) => ExitCode::from(report.exit_code()),
                Err(_) => ExitCode::from(cdc::verify::EXIT_ERROR),
            }
        }
        Err(error) => {
            let line = format!("cdc verify failed: {error}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            ExitCode::from(cdc::verify::EXIT_ERROR)
        }
    }
}
