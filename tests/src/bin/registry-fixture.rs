//! In-memory Confluent Schema Registry TEST FIXTURE: see `e2e::registry`.

use std::{io::IsTerminal, net::SocketAddr};

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// In-memory Confluent-compatible schema registry: a TEST FIXTURE, not for production.
///
/// All state (schemas, subjects, compatibility levels) lives in this process's memory and is lost
/// when it exits; Avro only, no schema references, no authentication, simplified soft deletes.
/// It serves the subset of the Confluent REST API our services and tests use. docker-compose
/// uses a real registry (Redpanda's) instead. Logs go to stderr (filter with RUST_LOG); nothing
/// is printed on stdout.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set --listen or REGISTRY_LISTEN)",
                args.listen
            )
        })?;
    tracing::info!(
        addr = %listener.local_addr()?,
        "schema registry test fixture listening (in-memory, not for production)"
    );
    e2e::registry::serve(listener)
        .await
        .context("schema registry fixture server failed")
}
