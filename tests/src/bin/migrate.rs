//! Applies the repository's MySQL and Postgres migrations (see `e2e::migrate`).

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Apply migrations/mysql and migrations/postgres (idempotent)")]
struct Args {
    /// MySQL server URL with an administrative account.
    #[arg(long, env = "MYSQL_URL")]
    mysql_url: Option<String>,
    /// Postgres URL of the analytics database (created if missing).
    #[arg(long, env = "POSTGRES_URL")]
    postgres_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mysql_url.is_none() && args.postgres_url.is_none() {
        anyhow::bail!("nothing to do: pass --mysql-url and/or --postgres-url");
    }
    if let Some(url) = &args.mysql_url {
        let applied = e2e::migrate::mysql(url).await?;
        eprintln!("mysql: {} migration(s) applied {applied:?}", applied.len());
    }
    if let Some(url) = &args.postgres_url {
        let applied = e2e::migrate::postgres(url).await?;
        eprintln!(
            "postgres: {} migration(s) applied {applied:?}",
            applied.len()
        );
    }
    Ok(())
}
