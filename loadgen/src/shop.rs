//! The shop database: connecting, checking the schema, and telling transient
//! MySQL failures from definite ones.
//!
//! Invariants:
//! - Nothing is written before [`ShopDb::connect`] has confirmed the server is
//!   reachable and the three shop tables exist, so a wrong URL or a missing
//!   migration is one clear line, not a failure deep into a run.
//! - [`classify`] is the one place deciding whether a failed statement may be
//!   retried and whether it may have been applied anyway (an I/O error after
//!   the statement was sent): callers never guess.
//! - Getting a connection is bounded by [`CONNECT_TIMEOUT`]: a server that
//!   accepts but never answers reads as unreachable (and is retried), never
//!   as a worker that silently stops.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

use crate::Error;

/// A pool of connections to the shop database.
#[derive(Debug, Clone)]
pub struct ShopDb {
    pool: Pool,
    /// `user@host:port/database`, for messages (never the password).
    target: String,
}

/// How a failed statement may be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with an error that says nothing was applied and
    /// that trying again later may work (deadlock, lock wait, shutdown...).
    TransientNotApplied,
    /// The connection broke; the statement may or may not have been applied.
    TransientUnknown,
    /// Retrying cannot help: schema, privileges, bad data.
    Definite,
}

/// How long getting a connection may take before MySQL counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Server error codes worth retrying: the statement was rolled back or never ran.
const TRANSIENT_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1213, // deadlock
    1290, // --read-only (failover in progress)
    3024, // max execution time exceeded
];

/// Server error codes of a KILL: the server may send them in place of the OK
/// of an autocommit statement that already committed (the kill flag is read
/// after the commit), so the outcome is unknown, as with a broken connection.
/// Counting such a DELETE as not applied lost count of rows under killed
/// connections (the replay found nothing to delete).
const KILLED_CODES: &[u16] = &[
    1317, // query interrupted
    1927, // connection killed (MariaDB)
];

pub fn classify(error: &mysql_async::Error) -> Failure {
    use mysql_async::{DriverError, Error as E};
    match error {
        E::Io(_) => Failure::TransientUnknown,
        E::Driver(DriverError::ConnectionClosed | DriverError::PoolDisconnected) => {
            Failure::TransientUnknown
        }
        E::Server(s) if TRANSIENT_CODES.contains(&s.code) => Failure::TransientNotApplied,
        E::Server(s) if KILLED_CODES.contains(&s.code) => Failure::TransientUnknown,
        _ => Failure::Definite,
    }
}

/// `user@host:port/database` for messages.
pub fn describe_db(db: &ShopDb) -> &str {
    &db.target
}

/// Options for `url` with its database replaced by `database`.
pub fn opts(url: &str, database: &str, connections: usize) -> Result<Opts, Error> {
    let base = Opts::from_url(url).map_err(|e| Error::MysqlUrl(format!("{e}")))?;
    let constraints = PoolConstraints::new(1, connections.max(1) + 1)
        .ok_or_else(|| Error::MysqlUrl("pool size out of range".into()))?;
    Ok(OptsBuilder::from_opts(base)
        .db_name(Some(database))
        .pool_opts(PoolOpts::default().with_constraints(constraints))
        .into())
}

pub fn describe_opts(opts: &Opts) -> String {
    format!(
        "{}@{}:{}/{}",
        opts.user().unwrap_or(""),
        opts.ip_or_hostname(),
        opts.tcp_port(),
        opts.db_name().unwrap_or("")
    )
}

impl ShopDb {
    /// Connects and checks that the shop tables exist.
    pub async fn connect(opts: Opts) -> Result<Self, Error> {
        let target = describe_opts(&opts);
        let db = ShopDb {
            pool: Pool::new(opts),
            target,
        };
        let mut conn = db.conn().await?;
        for table in ["users", "items", "purchases"] {
            let exists: Option<u64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_name = ?",
                    (table,),
                )
                .await
                .map_err(|e| db.refused("checking the schema", e))?;
            if exists.unwrap_or(0) == 0 {
                return Err(Error::MissingTable {
                    target: db.target.clone(),
                    table,
                });
            }
        }
        Ok(db)
    }

    /// A connection from the pool; failure to get one means MySQL is unreachable.
    pub async fn conn(&self) -> Result<Conn, Error> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get_conn()).await {
            Ok(got) => got.map_err(|e| self.unreachable(e)),
            Err(_) => Err(Error::MysqlUnreachable {
                target: self.target.clone(),
                cause: format!("no connection within {CONNECT_TIMEOUT:?}"),
            }),
        }
    }

    pub fn unreachable(&self, e: mysql_async::Error) -> Error {
        match classify(&e) {
            Failure::Definite => self.refused("connecting", e),
            _ => Error::MysqlUnreachable {
                target: self.target.clone(),
                cause: e.to_string(),
            },
        }
    }

    pub fn refused(&self, what: &'static str, e: mysql_async::Error) -> Error {
        if let mysql_async::Error::Server(s) = &e {
            if s.code == 1049 {
                let (target, database) = self.target.rsplit_once('/').unwrap_or((&self.target, ""));
                return Error::MissingDatabase {
                    target: target.to_owned(),
                    database: database.to_owned(),
                };
            }
        }
        match classify(&e) {
            Failure::Definite => Error::MysqlRefused {
                target: self.target.clone(),
                what,
                cause: e.to_string(),
            },
            _ => Error::MysqlUnreachable {
                target: self.target.clone(),
                cause: e.to_string(),
            },
        }
    }

    pub async fn disconnect(self) {
        // Errors here only mean a connection was already gone.
        let _ = self.pool.disconnect().await;
    }
}

/// Whether purchase `row`, whose COMMIT went unanswered, was committed.
///
/// The read locks the row, so it waits for the transaction that inserted it
/// to end: a killed session may still be finishing that COMMIT when the
/// client has already reconnected, and a plain read then missed the row, the
/// purchase was sent again and written twice. The wait is bounded by the
/// server's `innodb_lock_wait_timeout` (a transient error, retried).
///
/// This replaced waiting for the sending session to leave `SHOW
/// PROCESSLIST`: after a server restart connection ids start again from 1,
/// a new session took the old one's id, and the lookup waited forever while
/// the worker wrote nothing.
pub async fn purchase_committed(conn: &mut Conn, row: u64) -> Result<bool, mysql_async::Error> {
    // LOCK IN SHARE MODE rather than FOR SHARE: MariaDB 10.11 has only the former.
    let found = conn
        .exec_first::<u64, _, _>(
            "SELECT id FROM purchases WHERE id = ? LOCK IN SHARE MODE",
            (row,),
        )
        .await?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_flag_overrides_the_url() {
        let o = opts("mysql://root@127.0.0.1:13306/other", "shop", 4).unwrap();
        assert_eq!(describe_opts(&o), "root@127.0.0.1:13306/shop");
        let o = opts("mysql://u:secret@db:3306", "t_1", 1).unwrap();
        assert!(!describe_opts(&o).contains("secret"));
        assert!(matches!(
            opts("http://x", "shop", 1),
            Err(Error::MysqlUrl(_))
        ));
    }

    #[test]
    fn errors_are_sorted_by_what_retrying_can_do() {
        let server = |code| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: String::new(),
                state: String::new(),
            })
        };
        assert_eq!(classify(&server(1213)), Failure::TransientNotApplied);
        assert_eq!(classify(&server(1927)), Failure::TransientUnknown);
        assert_eq!(classify(&server(1317)), Failure::TransientUnknown);
        assert_eq!(classify(&server(1146)), Failure::Definite);
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other("reset")));
        assert_eq!(classify(&io), Failure::TransientUnknown);
    }
}
