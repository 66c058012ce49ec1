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
async fn forward_signals(shutdown: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("signal received: stopping, flushing pageviews, printing totals");
    shutdown.cancel();
}
