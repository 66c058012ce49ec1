//! Applies the repository's migrations with refinery: `migrations/mysql` (the
//! shop schema and the connector account) and `migrations/postgres` (the
//! analytics schema). Idempotent: applied versions are recorded and skipped.
//!
//! The MySQL history table lives in its own database, `schema_migrations`, not
//! in `shop`, so a connector capturing `shop` sees only the demo's tables.

use mysql_async::prelude::Queryable;

mod mysql_migrations {
    refinery::embed_migrations!("../migrations/mysql");
}
mod postgres_migrations {
    refinery::embed_migrations!("../migrations/postgres");
}

/// Database that holds refinery's history of the MySQL migrations.
pub const MYSQL_HISTORY_DATABASE: &str = "schema_migrations";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to MySQL at {url}: {source}")]
    MysqlConnect {
        url: String,
        source: mysql_async::Error,
    },
    #[error("cannot connect to Postgres at {url}: {source}")]
    PostgresConnect {
        url: String,
        source: tokio_postgres::Error,
    },
    #[error("a MySQL migration failed: {0}")]
    Mysql(refinery::Error),
    #[error("a Postgres migration failed: {0}")]
    Postgres(refinery::Error),
    #[error("{0}")]
    Setup(String),
}

/// Applies `migrations/mysql` on the server at `url` (any default database is ignored).
pub async fn mysql(url: &str) -> Result<Vec<String>, MigrateError> {
    let connect_err = |source| MigrateError::MysqlConnect {
        url: url.to_owned(),
        source,
    };
    let opts = mysql_async::Opts::from_url(url).map_err(|e| MigrateError::Setup(e.to_string()))?;
    let mut conn = mysql_async::Conn::new(opts.clone())
        .await
        .map_err(connect_err)?;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {MYSQL_HISTORY_DATABASE}"
    ))
    .await
    .map_err(connect_err)?;
    conn.disconnect().await.ok();
    let opts = mysql_async::OptsBuilder::from_opts(opts).db_name(Some(MYSQL_HISTORY_DATABASE));
    let mut pool = mysql_async::Pool::new(opts);
    let report = mysql_migrations::migrations::runner()
        .run_async(&mut pool)
        .await
        .map_err(MigrateError::Mysql)?;
    pool.disconnect().await.ok();
    Ok(names(&report))
}

/// Applies `migrations/postgres` to the database in `url`, creating it if missing.
pub async fn postgres(url: &str) -> Result<Vec<String>, MigrateError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| MigrateError::Setup(e.to_string()))?;
    let database = config
        .get_dbname()
        .ok_or_else(|| MigrateError::Setup(format!("{url} names no database")))?
        .to_owned();
    let connect = |config: tokio_postgres::Config| async move {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok::<_, tokio_postgres::Error>(client)
    };
    let connect_err = |source| MigrateError::PostgresConnect {
        url: url.to_owned(),
        source,
    };
    let mut admin = config.clone();
    admin.dbname("postgres");
    let client = connect(admin).await.map_err(connect_err)?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(connect_err)?
        .is_some();
    if !exists {
        let quoted = database.replace('"', "\"\"");
        client
            .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
            .await
            .map_err(connect_err)?;
    }
    drop(client);
    let mut client = connect(config).await.map_err(connect_err)?;
    let report = postgres_migrations::migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(MigrateError::Postgres)?;
    Ok(names(&report))
}

fn names(report: &refinery::Report) -> Vec<String> {
    report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect()
}
