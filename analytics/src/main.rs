//! analytics binary: wires settings, telemetry and [`analytics::run`].

// As in the library: failures are errors, never panics.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use analytics::config::{Cli, Command};
use anyhow::Context;
use clap::Parser;
use pipeline::telemetry::{self, Health};

fn main() -> anyhow::Result<()> {
    // Before the runtime: its worker threads must not exist yet (see below).
    keep_large_buffers_on_mmap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(&cli.config.telemetry);
    cli.config.validate()?;
    if cli.config.check_config {
        writeln!(std::io::stdout(), "{}", cli.config.describe())?;
        return Ok(());
    }
    match cli.command {
        Some(Command::Migrate) => {
            // As the service does: a Postgres still starting or a migration
            // rolled back for a transient cause is retried (a WARN each
            // time), here for --migrate-retry-secs or until Ctrl-C, then the
            // last failure is the exit's error. A definite one ends it at once.
            let shutdown = Arc::new(AtomicBool::new(false));
            let flag = shutdown.clone();
            let patience = std::time::Duration::from_secs(cli.config.migrate_retry_secs);
            tokio::spawn(async move {
                tokio::select! {
                    () = pipeline::shutdown::signal() => {}
                    () = tokio::time::sleep(patience) => {}
                }
                flag.store(true, Ordering::SeqCst);
            });
            analytics::migrate_with_retry(
                cli.config.postgres_url.expose(),
                cli.config.migration_lock_timeout(),
                &shutdown,
            )
            .await
            .context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        #[cfg(feature = "bench")]
        Some(Command::Bench(args)) => {
            let report = analytics::bench::run(&cli.config, &args).await?;
            writeln!(std::io::stdout(), "{report}")?;
            Ok(())
        }
        Some(Command::Run) | None => {
            let health = Health::default();
            telemetry::serve(&cli.config.telemetry, health.clone()).await?;
            let shutdown = Arc::new(AtomicBool::new(false));
            let flag = shutdown.clone();
            tokio::spawn(async move {
                pipeline::shutdown::signal().await;
                tracing::info!("shutting down after the batch in flight");
                flag.store(true, Ordering::SeqCst);
            });
            analytics::run(cli.config, health, shutdown).await?;
            Ok(())
        }
    }
}

/// A drain allocates and frees a batch's buffers (megabytes each) every few
/// hundred milliseconds. glibc raises its mmap threshold after the first such
/// free and from then on serves them from heaps that fragment and are not
/// trimmed: 1M pageviews peaked at 138 MB RSS with 16 MiB batches, 102 MB
/// with the threshold fixed (mimalloc, cdc's allocator, peaked at 185 MB).
/// Fixing it at glibc's default keeps every large buffer on its own mapping,
/// returned to the system when freed.
#[allow(unsafe_code)]
fn keep_large_buffers_on_mmap() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
