//! The startup checks ([`cdc::preflight::check`]) against a real server with
//! the wrong binlog settings and an under-privileged account.
//!
//! The shared stack's servers must keep ROW/FULL/FULL for every other test, so
//! each test starts a PRIVATE server (`mariadb::*`: `mariadbd` in a temporary
//! directory; `mysql::*`: Oracle's mysqld in the stack's chroot) on a free
//! loopback port, and kills it on drop (a failing assert does not leak the
//! server). Without the server programs the test is skipped with a printed
//! reason, unless the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`,
//! as under `make test`, whose stack script installs both).

mod stack_support;

use std::process::{Command, Stdio};

use cdc::preflight::{self, Flavor, PreflightError};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use pipeline::testing::private_mariadb::opts;
use pipeline::testing::Flavour;
use stack_support::PrivateServer;

per_flavour!(startup_checks_name_each_unfit_setting_and_pass_once_fixed);

/// The source server's own `server_id`.
const SOURCE_SERVER_ID: u32 = 7;
/// The connector's `database.server.id` (distinct from the source's).
const OUR_SERVER_ID: u32 = 5400;
const BIN: &str = env!("CARGO_BIN_EXE_cdc");
/// The least-privilege connector account Debezium documents (MariaDB 10.5+
/// spells REPLICATION CLIENT as BINLOG MONITOR).
fn cdc_grants(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::MariaDb => "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR",
        Flavour::MySql => "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT",
    }
}

/// Every binlog setting wrong (STATEMENT, MINIMAL image, MINIMAL metadata),
/// the binary log on or off (MySQL logs by default: off is `--skip-log-bin`,
/// which wins over the private server's own `--log-bin` as it comes later).
fn unfit_args(flavour: Flavour, root: &std::path::Path, log_bin: bool) -> Vec<String> {
    let mut args = vec![
        format!("--server-id={SOURCE_SERVER_ID}"),
        "--binlog-format=STATEMENT".into(),
        "--binlog-row-image=MINIMAL".into(),
        "--binlog-row-metadata=MINIMAL".into(),
    ];
    match (flavour, log_bin) {
        (Flavour::MariaDb, true) => {
            args.push(format!("--log-bin={}", root.join("mysql-bin").display()))
        }
        (Flavour::MySql, false) => args.push("--skip-log-bin".into()),
        _ => {}
    }
    args
}

/// The problem lines `check` reports; panics if it passes or cannot query.
async fn problems(port: u16, user: &str, password: &str, server_id: u32) -> Vec<String> {
    let mut conn = Conn::new(opts(port, user, password)).await.unwrap();
    let result = preflight::check(&mut conn, user, server_id).await;
    let _ = conn.disconnect().await;
    match result {
        Err(PreflightError::Unfit(lines)) => {
            for line in &lines {
                assert!(!line.contains('\n'), "not one line: {line:?}");
            }
            lines
        }
        Err(other) => panic!("expected Unfit, got {other}"),
        Ok(info) => panic!("expected Unfit, check passed: {info:?}"),
    }
}

/// Asserts that exactly one line contains every fragment.
fn assert_line(lines: &[String], fragments: &[&str]) {
    let hits = lines
        .iter()
        .filter(|l| fragments.iter().all(|f| l.contains(f)))
        .count();
    assert_eq!(hits, 1, "one line with {fragments:?} in {lines:#?}");
}

fn assert_bad_formats(lines: &[String]) {
    assert_line(
        lines,
        &["binlog_format is STATEMENT", "set binlog_format=ROW"],
    );
    assert_line(
        lines,
        &["binlog_row_image is MINIMAL", "set binlog_row_image=FULL"],
    );
    assert_line(
        lines,
        &[
            "binlog_row_metadata is MINIMAL",
            "set binlog_row_metadata=FULL",
        ],
    );
}

fn assert_weak_privileges(lines: &[String]) {
    for privilege in ["REPLICATION SLAVE", "REPLICATION CLIENT"] {
        assert_line(
            lines,
            &[
                &format!("the account weak lacks {privilege};"),
                &format!("run GRANT {privilege} ON *.* TO <account>"),
            ],
        );
    }
}

async fn startup_checks_name_each_unfit_setting_and_pass_once_fixed(flavour: Flavour) {
    // 1. No binary log at all: the first thing an operator must fix.
    let Some(mut server) =
        PrivateServer::start_with(flavour, |root| unfit_args(flavour, root, false)).await
    else {
        return;
    };
    let lines = problems(server.port(), "root", "", OUR_SERVER_ID).await;
    let fix = match flavour {
        Flavour::MariaDb => "add log_bin=<basename> to the server config and restart",
        Flavour::MySql => "remove skip-log-bin / disable_log_bin from the server config",
    };
    assert_line(&lines, &["log_bin is OFF", fix]);
    assert_bad_formats(&lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    server.stop().await;
    drop(server);

    // 2. Binary log on, but STATEMENT / MINIMAL / MINIMAL.
    let Some(mut server) =
        PrivateServer::start_with(flavour, |root| unfit_args(flavour, root, true)).await
    else {
        return;
    };
    let port = server.port();
    server
        .admin()
        .await
        .query_drop(format!(
            "CREATE USER 'weak'@'%' IDENTIFIED BY 'weak-pw';
             GRANT SELECT ON *.* TO 'weak'@'%';
             CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc-pw';
             GRANT {} ON *.* TO 'cdc'@'%';",
            cdc_grants(flavour)
        ))
        .await
        .unwrap();

    // Every problem is reported at once, each on its own line.
    let lines = problems(port, "weak", "weak-pw", OUR_SERVER_ID).await;
    assert_bad_formats(&lines);
    assert_weak_privileges(&lines);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("log_bin")),
        "{lines:#?}"
    );

    // The properly granted account has only the server's problems.
    let lines = problems(port, "cdc", "cdc-pw", OUR_SERVER_ID).await;
    assert_bad_formats(&lines);
    assert_eq!(lines.len(), 3, "{lines:#?}");

    // Borrowing the source's own server id is named too.
    let lines = problems(port, "cdc", "cdc-pw", SOURCE_SERVER_ID).await;
    assert_line(
        &lines,
        &[
            &format!(
                "database.server.id={SOURCE_SERVER_ID} equals the source server's own server_id"
            ),
            "choose another database.server.id",
        ],
    );
    assert_eq!(lines.len(), 4, "{lines:#?}");

    // The binary stops before touching Kafka, printing the same lines and
    // calling the failure definite (a restart alone cannot help).
    let out = Command::new(BIN)
        .args(["--database.hostname", "127.0.0.1"])
        .args(["--database.port", &port.to_string()])
        .args(["--database.user", "weak", "--database.password", "weak-pw"])
        .args(["--database.server.id", &OUR_SERVER_ID.to_string()])
        .args(["--topic.prefix", "preflight"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the cdc binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cdc started:\n{stderr}");
    assert!(stderr.contains("definite"), "{stderr}");
    for fragment in [
        "binlog_format is STATEMENT; set binlog_format=ROW",
        "binlog_row_image is MINIMAL; set binlog_row_image=FULL",
        "binlog_row_metadata is MINIMAL; set binlog_row_metadata=FULL",
        "the account weak lacks REPLICATION SLAVE; run GRANT REPLICATION SLAVE ON *.* TO <account>",
        "the account weak lacks REPLICATION CLIENT; run GRANT REPLICATION CLIENT ON *.* TO <account>",
    ] {
        assert!(stderr.contains(fragment), "{fragment:?} not in:\n{stderr}");
    }

    // 3. These three are dynamic: fixed on the running server, the checks pass.
    server
        .admin()
        .await
        .query_drop(
            "SET GLOBAL binlog_format = ROW, binlog_row_image = FULL, \
             binlog_row_metadata = FULL",
        )
        .await
        .unwrap();
    let mut conn = Conn::new(opts(port, "cdc", "cdc-pw")).await.unwrap();
    let info = preflight::check(&mut conn, "cdc", OUR_SERVER_ID)
        .await
        .expect("checks pass on a fixed server with the documented grants");
    let _ = conn.disconnect().await;
    assert_eq!(info.server_id, SOURCE_SERVER_ID);
    match flavour {
        Flavour::MariaDb => {
            assert_eq!(info.flavor, Flavor::MariaDb);
            assert!(info.gtid_mode, "MariaDB always has GTIDs");
        }
        Flavour::MySql => {
            assert_eq!(info.flavor, Flavor::MySql);
            assert!(info.version >= (8, 4, 0), "{}", info.version_string);
            assert_eq!(info.binlog_status_statement(), "SHOW BINARY LOG STATUS");
            let mode: String = server
                .admin()
                .await
                .query_first("SELECT @@GLOBAL.gtid_mode")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(info.gtid_mode, mode == "ON", "gtid_mode={mode}");
        }
    }

    // Only the account remains wrong for the weak one.
    let lines = problems(port, "weak", "weak-pw", OUR_SERVER_ID).await;
    assert_weak_privileges(&lines);
    assert_eq!(lines.len(), 2, "{lines:#?}");

    server.stop().await;
}
