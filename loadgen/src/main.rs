//! loadgen binary: wires flags, telemetry, signals and [`loadgen::run`].

use clap::Parser;
use loadgen::config::Config;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    pipeline::telemetry::init_tracing(&config.telemetry);
    if let Err(e) = config.validate() {
        eprintln!("loadgen: bad flags: {e}");
        return std::process::ExitCode::from(2);
    }
    if config.check_config {
        // Also rejects a malformed MYSQL_URL, which `validate` leaves to connect time.
        if let Err(e) = loadgen::shop_opts(&config) {
            eprintln!("loadgen: bad flags: {e}");
            return std::process::ExitCode::from(2);
        }
        eprintln!(
            "{}",
            loadgen::describe(&config, loadgen::choose_seed(&config))
        );
        eprintln!("loadgen: configuration ok");
        return std::process::ExitCode::SUCCESS;
    }
    if !config.dry_run {
        if let Err(e) = pipeline::telemetry::serve(&config.telemetry, Default::default()).await {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(forward_signals(shutdown.clone()));
    match loadgen::run(config, shutdown, loadgen::stdout()).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM stops the traffic; `run` then flushes and prints totals.
/// A second signal exits at once (the flush may wait for an absent broker).
async fn forward_signals(shutdown: CancellationToken) {
    pipeline::shutdown::signal().await;
    tracing::info!(
        "signal received: stopping, flushing pageviews, printing totals (signal again to quit now)"
    );
    shutdown.cancel();
    pipeline::shutdown::signal().await;
    eprintln!("loadgen: interrupted again; quitting without waiting for the flush");
    std::process::exit(130);
}
