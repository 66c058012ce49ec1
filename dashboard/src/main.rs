//! dashboard binary: settings, telemetry, and the HTTP server of
//! [`dashboard::router`].

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use pipeline::secret::SecretUrl;
use pipeline::telemetry::{self, Health, TelemetryArgs};

#[derive(Parser, Debug)]
#[command(
    name = "dashboard",
    about = "A live web dashboard over the analytics tables (revenue, top items, funnel, alerts, carts, high-value users, freshness)."
)]
struct Cli {
    /// Postgres holding the analytics tables (libpq URL); only read.
    #[arg(
        long,
        env = "POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/analytics",
        hide_env_values = true
    )]
    postgres_url: SecretUrl,
    /// Address the page is served on.
    #[arg(long, env = "DASHBOARD_ADDR", default_value = "127.0.0.1:8088")]
    listen: String,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    /// Print the settings (secrets masked) and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(&cli.telemetry);
    let addr: std::net::SocketAddr = cli
        .listen
        .parse()
        .with_context(|| format!("invalid --listen {:?}", cli.listen))?;
    let describe = format!(
        "postgres={} listen={addr} metrics={}",
        cli.postgres_url, cli.telemetry.metrics_addr
    );
    if cli.check_config {
        writeln!(std::io::stdout(), "{describe}")?;
        return Ok(());
    }
    tracing::info!(settings = %describe, "dashboard starting");
    let health = Health::default();
    telemetry::serve(&cli.telemetry, health.clone()).await?;
    let app = dashboard::router(dashboard::Dashboard::new(cli.postgres_url.expose(), health));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; pick a free port with --listen"))?;
    tracing::info!(url = %format!("http://{addr}/"), "serving the dashboard");
    axum::serve(listener, app)
        .with_graceful_shutdown(pipeline::shutdown::signal())
        .await?;
    Ok(())
}
