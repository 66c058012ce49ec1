//! Startup checks: is this server able to feed the connector?
//!
//! Like Materialize's `ensure_*` checks, every requirement is verified before a
//! single record is written, and each unmet one becomes ONE actionable line
//! naming the setting and the fix. All lines are reported together so an
//! operator fixes the server once, not once per restart.
//!
//! Invariant: when [`check`] returns `Ok`, the binlog carries full row images
//! with full metadata in ROW format (what decoding relies on: column names,
//! signedness and primary keys come from the table map, not from a catalog that
//! may have changed since), and the account can read the binlog.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

/// Which server family we talk to; it decides GTID handling and statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

/// What preflight learned about the server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: (u16, u16, u16),
    pub version_string: String,
    /// The source server's own `server_id`.
    pub server_id: u32,
    /// MySQL `gtid_mode=ON` (MariaDB always has GTIDs).
    pub gtid_mode: bool,
}

impl ServerInfo {
    /// `SHOW MASTER STATUS` was removed in MySQL 8.4 (renamed in 8.2).
    pub fn binlog_status_statement(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.version >= (8, 2, 0) => "SHOW BINARY LOG STATUS",
            _ => "SHOW MASTER STATUS",
        }
    }

    /// The session variable that asks the source for heartbeats (ns).
    pub fn heartbeat_variable(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.version >= (8, 4, 0) => "@source_heartbeat_period",
            _ => "@master_heartbeat_period",
        }
    }

    /// `SHOW REPLICAS` replaced `SHOW SLAVE HOSTS` in MySQL 8.0.22.
    fn replicas_statement(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.version >= (8, 0, 22) => "SHOW REPLICAS",
            _ => "SHOW SLAVE HOSTS",
        }
    }
}

/// Why the connector cannot start against this server.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Transient: the server may come back; retry with backoff.
    #[error("cannot query the source database: {0}")]
    Query(#[from] mysql_async::Error),
    /// Definite: an operator must change the server or the account.
    #[error("the source database is not ready for change capture:\n{}", .0.join("\n"))]
    Unfit(Vec<String>),
}

fn parse_version(text: &str) -> (u16, u16, u16) {
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u16>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Reads flavour and version.
pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, PreflightError> {
    let version_string: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let flavor = if version_string.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    let server_id: u32 = conn
        .query_first("SELECT @@server_id")
        .await?
        .unwrap_or_default();
    let gtid_mode = match flavor {
        Flavor::MariaDb => true,
        Flavor::MySql => conn
            .query_first::<String, _>("SELECT @@GLOBAL.gtid_mode")
            .await
            .ok()
            .flatten()
            .is_some_and(|m| m.eq_ignore_ascii_case("ON")),
    };
    Ok(ServerInfo {
        flavor,
        version: parse_version(&version_string),
        version_string,
        server_id,
        gtid_mode,
    })
}

/// The server variables the binlog format depends on (absent ones are `None`).
#[derive(Debug, Clone, Default)]
pub struct BinlogSettings {
    pub log_bin: Option<String>,
    pub binlog_format: Option<String>,
    pub binlog_row_image: Option<String>,
    pub binlog_row_metadata: Option<String>,
    pub binlog_row_value_options: Option<String>,
}

async fn binlog_settings(conn: &mut Conn) -> Result<BinlogSettings, PreflightError> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', \
             'binlog_row_image', 'binlog_row_metadata', 'binlog_row_value_options')",
        )
        .await?;
    let mut s = BinlogSettings::default();
    for (name, value) in rows {
        let slot = match name.to_ascii_lowercase().as_str() {
            "log_bin" => &mut s.log_bin,
            "binlog_format" => &mut s.binlog_format,
            "binlog_row_image" => &mut s.binlog_row_image,
            "binlog_row_metadata" => &mut s.binlog_row_metadata,
            "binlog_row_value_options" => &mut s.binlog_row_value_options,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(s)
}

/// One line per unmet binlog requirement (pure, so it is unit tested).
pub fn binlog_problems(s: &BinlogSettings, flavor: Flavor) -> Vec<String> {
    let mut problems = Vec::new();
    let is =
        |v: &Option<String>, want: &str| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want));
    if !is(&s.log_bin, "ON") && !is(&s.log_bin, "1") {
        let how = match flavor {
            Flavor::MariaDb => "add log_bin=<basename> to the server config",
            Flavor::MySql => "remove skip-log-bin / disable_log_bin from the server config (MySQL 8 logs by default)",
        };
        problems.push(format!(
            "log_bin is {}; the binary log is off: {how} and restart",
            s.log_bin.as_deref().unwrap_or("absent")
        ));
    }
    if !is(&s.binlog_format, "ROW") {
        problems.push(format!(
            "binlog_format is {}; set binlog_format=ROW in the server config and restart \
             (SET GLOBAL only affects new sessions)",
            s.binlog_format.as_deref().unwrap_or("absent")
        ));
    }
    if !is(&s.binlog_row_image, "FULL") {
        problems.push(format!(
            "binlog_row_image is {}; set binlog_row_image=FULL in the server config and restart \
             (before/after images must carry every column)",
            s.binlog_row_image.as_deref().unwrap_or("absent")
        ));
    }
    match &s.binlog_row_metadata {
        Some(v) if v.eq_ignore_ascii_case("FULL") => {}
        Some(v) => problems.push(format!(
            "binlog_row_metadata is {v}; set binlog_row_metadata=FULL in the server config \
             (MariaDB 10.5+/MySQL 8.0.1+) and restart"
        )),
        None => problems.push(
            "binlog_row_metadata is not supported by this server; upgrade to MariaDB 10.5+ or \
             MySQL 8.0.1+ and set binlog_row_metadata=FULL"
                .to_owned(),
        ),
    }
    if s.binlog_row_value_options
        .as_deref()
        .is_some_and(|v| v.to_ascii_uppercase().contains("PARTIAL_JSON"))
    {
        problems.push(
            "binlog_row_value_options is PARTIAL_JSON; set binlog_row_value_options='' in the \
             server config and restart (partial JSON diffs cannot rebuild the full document)"
                .to_owned(),
        );
    }
    problems
}

/// Global privileges the account lacks, judged from `SHOW GRANTS` text.
/// `ALL PRIVILEGES ON *.*` covers everything; `REPLICATION CLIENT` is spelled
/// `BINLOG MONITOR` by MariaDB 10.5+, `REPLICATION SLAVE` may be `REPLICATION REPLICA`.
pub fn missing_privileges(grants: &[String]) -> Vec<&'static str> {
    let mut global = String::new();
    for g in grants {
        let upper = g.to_ascii_uppercase();
        if let Some((privs, rest)) = upper.split_once(" ON ") {
            if rest.trim_start().starts_with("*.*") {
                global.push_str(privs);
                global.push(',');
            }
        }
    }
    if global.contains("ALL PRIVILEGES") {
        return Vec::new();
    }
    let has = |p: &str| global.contains(p);
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !has("REPLICATION CLIENT") && !has("BINLOG MONITOR") && !has("SUPER") {
        missing.push("REPLICATION CLIENT");
    }
    missing
}

async fn privilege_problems(conn: &mut Conn, user: &str) -> Result<Vec<String>, PreflightError> {
    let grants: Vec<String> = conn.query("SHOW GRANTS FOR CURRENT_USER()").await?;
    let has_roles = grants.iter().any(|g| {
        let u = g.to_ascii_uppercase();
        u.starts_with("GRANT `") || u.starts_with("GRANT '")
    });
    let missing = missing_privileges(&grants);
    if missing.is_empty() || has_roles {
        // With roles the text does not show effective privileges; the dump
        // request itself will fail with an access-denied error if one is absent.
        return Ok(Vec::new());
    }
    Ok(missing
        .into_iter()
        .map(|p| {
            format!(
                "the account {user} lacks {p}; run GRANT {p} ON *.* TO <account> \
                 (the connector needs SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, \
                 REPLICATION CLIENT / BINLOG MONITOR)"
            )
        })
        .collect())
}

/// Why `include.query=true` would leave `source.query` null, if it would
/// (pure, so it is unit tested): MariaDB sends its ANNOTATE_ROWS events only
/// to a replica that asks with a dump flag the binlog client cannot set;
/// MySQL writes Rows_query events only where `binlog_rows_query_log_events`
/// is ON (`rows_query`: its global value).
pub fn query_problem(flavor: Flavor, rows_query: Option<&str>) -> Option<String> {
    match flavor {
        Flavor::MariaDb => Some(
            "include.query=true has no effect on MariaDB: its ANNOTATE_ROWS events are not \
             requested, so source.query stays null"
                .to_owned(),
        ),
        Flavor::MySql if rows_query.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1") => {
            None
        }
        Flavor::MySql => Some(format!(
            "include.query=true but binlog_rows_query_log_events is {}: source.query stays null \
             for sessions that do not turn it on; run SET PERSIST binlog_rows_query_log_events=ON",
            rows_query.unwrap_or("absent")
        )),
    }
}

/// `include.query=true`: a warning when the server will not give the
/// statements (not an error: the changes themselves are complete).
pub async fn warn_about_query(conn: &mut Conn, flavor: Flavor) -> Result<(), PreflightError> {
    let value: Option<String> = match flavor {
        Flavor::MariaDb => None,
        Flavor::MySql => {
            conn.query_first("SELECT @@GLOBAL.binlog_rows_query_log_events")
                .await?
        }
    };
    if let Some(problem) = query_problem(flavor, value.as_deref()) {
        tracing::warn!("{problem}");
    }
    Ok(())
}

/// Checks everything; `Ok` carries what later stages need to know.
pub async fn check(
    conn: &mut Conn,
    user: &str,
    our_server_id: u32,
) -> Result<ServerInfo, PreflightError> {
    let info = server_info(conn).await?;
    tracing::info!(
        version = %info.version_string,
        flavor = ?info.flavor,
        server_id = info.server_id,
        gtid_mode = info.gtid_mode,
        "source database"
    );
    let mut problems = binlog_problems(&binlog_settings(conn).await?, info.flavor);
    problems.extend(privilege_problems(conn, user).await?);
    // Server-side binlog filters silently drop changes of whole databases.
    if let Ok(Some(row)) = conn
        .query_first::<Row, _>(info.binlog_status_statement())
        .await
    {
        let do_db: Option<String> = row.get_opt(2).and_then(Result::ok);
        let ignore_db: Option<String> = row.get_opt(3).and_then(Result::ok);
        for (name, value) in [("binlog_do_db", do_db), ("binlog_ignore_db", ignore_db)] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                tracing::warn!(
                    "the server filters its binlog ({name}={value}); changes of filtered \
                     databases never reach the connector: remove {name} from the server config"
                );
            }
        }
    }
    if info.server_id == our_server_id {
        problems.push(format!(
            "database.server.id={our_server_id} equals the source server's own server_id; \
             choose another database.server.id"
        ));
    }
    match conn.query::<Row, _>(info.replicas_statement()).await {
        Ok(rows) => {
            for row in rows {
                let id: Option<u32> = row.get(0);
                if id == Some(our_server_id) {
                    let host: Option<String> = row.get(1);
                    // Not fatal: it may be this connector's own previous
                    // connection, which the server drops when we reconnect.
                    tracing::warn!(
                        "a replica with server id {our_server_id} is already connected (host {}); \
                         if it is not a previous run of this connector, give each replica a \
                         unique database.server.id or they will disconnect each other",
                        host.unwrap_or_default()
                    );
                }
            }
        }
        Err(error) => {
            tracing::debug!(%error, "cannot list replicas; server id clash check skipped")
        }
    }
    if problems.is_empty() {
        Ok(info)
    } else {
        Err(PreflightError::Unfit(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> BinlogSettings {
        BinlogSettings {
            log_bin: Some("ON".into()),
            binlog_format: Some("ROW".into()),
            binlog_row_image: Some("FULL".into()),
            binlog_row_metadata: Some("FULL".into()),
            binlog_row_value_options: Some(String::new()),
        }
    }

    #[test]
    fn good_settings_pass() {
        assert!(binlog_problems(&good(), Flavor::MariaDb).is_empty());
    }

    #[test]
    fn each_bad_setting_is_one_actionable_line() {
        let mut s = good();
        s.binlog_row_metadata = Some("MINIMAL".into());
        assert_eq!(
            binlog_problems(&s, Flavor::MySql),
            vec![
                "binlog_row_metadata is MINIMAL; set binlog_row_metadata=FULL in the server \
                  config (MariaDB 10.5+/MySQL 8.0.1+) and restart"
                    .to_owned()
            ]
        );
        let s = BinlogSettings {
            log_bin: Some("OFF".into()),
            binlog_format: Some("MIXED".into()),
            binlog_row_image: Some("MINIMAL".into()),
            binlog_row_metadata: None,
            binlog_row_value_options: Some("PARTIAL_JSON".into()),
        };
        let p = binlog_problems(&s, Flavor::MySql);
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[0].starts_with("log_bin is OFF"));
        assert!(p[1].starts_with("binlog_format is MIXED; set binlog_format=ROW"));
        assert!(p[2].starts_with("binlog_row_image is MINIMAL"));
        assert!(p[3].contains("not supported"));
        assert!(p[4].starts_with("binlog_row_value_options is PARTIAL_JSON"));
    }

    #[test]
    fn include_query_needs_rows_query_events_on_mysql() {
        assert_eq!(query_problem(Flavor::MySql, Some("ON")), None);
        assert_eq!(query_problem(Flavor::MySql, Some("1")), None);
        let off = query_problem(Flavor::MySql, Some("0")).unwrap_or_default();
        assert!(off.contains("binlog_rows_query_log_events is 0"), "{off}");
        assert!(
            off.contains("SET PERSIST binlog_rows_query_log_events=ON"),
            "{off}"
        );
        let maria = query_problem(Flavor::MariaDb, None).unwrap_or_default();
        assert!(maria.contains("no effect on MariaDB"), "{maria}");
    }

    #[test]
    fn grants_parsing() {
        let ok = vec!["GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`".to_owned()];
        assert!(missing_privileges(&ok).is_empty());
        let all =
            vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION".to_owned()];
        assert!(missing_privileges(&all).is_empty());
        let weak = vec![
            "GRANT USAGE ON *.* TO `u`@`%`".to_owned(),
            "GRANT ALL PRIVILEGES ON `shop`.* TO `u`@`%`".to_owned(),
        ];
        assert_eq!(
            missing_privileges(&weak),
            vec!["REPLICATION SLAVE", "REPLICATION CLIENT"]
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("10.11.19-MariaDB-0+deb12u1"), (10, 11, 19));
        assert_eq!(parse_version("8.4.3"), (8, 4, 3));
    }
}
