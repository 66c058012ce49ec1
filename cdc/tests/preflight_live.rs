//! The startup checks ([`cdc::preflight::check`]) against a real server with
//! the wrong binlog settings and an under-privileged account.
//!
//! The shared stack's MariaDB must keep ROW/FULL/FULL for every other test, so
//! this test initialises and starts a PRIVATE `mariadbd` in a temporary
//! directory on a free loopback port, and kills it on drop (a failing assert
//! does not leak the server). Without `mariadbd` installed the test is skipped
//! with a printed reason, unless the stack is required (`SHOP_STACK_REQUIRED=1`
//! or `CI=true`, as under `make test`, whose stack script installs MariaDB).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdc::preflight::{self, Flavor, PreflightError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// The source server's own `server_id`.
const SOURCE_SERVER_ID: u32 = 7;
/// The connector's `database.server.id` (distinct from the source's).
const OUR_SERVER_ID: u32 = 5400;
const BIN: &str = env!("CARGO_BIN_EXE_cdc");
/// The least-privilege connector account Debezium documents.
const CDC_GRANTS: &str = "SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR";

fn required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    };
    on("SHOP_STACK_REQUIRED") || on("CI")
}

/// `mariadbd` lives in sbin, which is not on every user's PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `(mariadb-install-db, mariadbd)`, or `None` with the skip reason printed.
fn programs() -> Option<(PathBuf, PathBuf)> {
    match (find_program("mariadb-install-db"), find_program("mariadbd")) {
        (Some(install), Some(server)) => Some((install, server)),
        _ => {
            let reason =
                "mariadbd / mariadb-install-db not installed (scripts/stack.sh installs them)";
            assert!(!required(), "{reason}");
            eprintln!("skipping: {reason}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn opts(port: u16, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

fn install(install_db: &Path, root: &Path) {
    let log = root.join("install.log");
    let status = Command::new(install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", root.join("data").display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ))
        .status()
        .expect("run mariadb-install-db");
    assert!(
        status.success(),
        "mariadb-install-db failed ({status}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A running private server; dropping it kills the process.
struct PrivateMariaDb {
    child: Child,
    port: u16,
    error_log: PathBuf,
}

impl PrivateMariaDb {
    /// Starts `mariadbd` on `root/data` with every binlog setting wrong
    /// (STATEMENT, MINIMAL image, MINIMAL metadata), the binary log on or off,
    /// and waits until it answers. The free port is probed before the server
    /// binds it, so another process may take it in between: then a new port
    /// is tried.
    async fn start(mariadbd: &Path, root: &Path, log_bin: bool) -> Self {
        for attempt in 1.. {
            let port = free_port();
            // One log per start, so a retry's diagnosis is not an old failure.
            let error_log = root.join(format!("error-{port}.log"));
            let mut cmd = Command::new(mariadbd);
            cmd.arg("--no-defaults")
                // Refused by a root mariadbd unless named; ignored (with a warning) otherwise.
                .arg("--user=root")
                .arg(format!("--datadir={}", root.join("data").display()))
                .arg(format!("--socket={}", root.join("mysqld.sock").display()))
                .arg(format!("--pid-file={}", root.join("mysqld.pid").display()))
                .arg(format!("--log-error={}", error_log.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--server-id={SOURCE_SERVER_ID}"))
                .args([
                    "--binlog-format=STATEMENT",
                    "--binlog-row-image=MINIMAL",
                    "--binlog-row-metadata=MINIMAL",
                    // Small: the test writes nothing, and the machine is shared.
                    "--innodb-buffer-pool-size=16M",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if log_bin {
                cmd.arg(format!("--log-bin={}", root.join("mysql-bin").display()));
            }
            let child = cmd.spawn().expect("spawn mariadbd");
            let mut server = Self {
                child,
                port,
                error_log,
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(log) if attempt < 3 && log.contains("already in use") => continue,
                Err(log) => panic!("mariadbd exited before answering:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// `Err` with the server's log when it exited instead of answering.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("({status})\n{}", self.log()));
            }
            if let Ok(conn) = Conn::new(opts(self.port, "root", "")).await {
                let _ = conn.disconnect().await;
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer on port {} within 60 s:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn admin(&self) -> Conn {
        Conn::new(opts(self.port, "root", "")).await.unwrap()
    }

    /// Clean shutdown, so the next start on the same datadir needs no recovery.
    async fn stop(mut self) {
        let mut conn = self.admin().await;
        // The server may drop the connection before it answers.
        let _ = conn.query_drop("SHUTDOWN").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not shut down:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        // Errors only mean it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

#[tokio::test]
async fn startup_checks_name_each_unfit_setting_and_pass_once_fixed() {
    let Some((install_db, mariadbd)) = programs() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    install(&install_db, dir.path());

    // 1. No binary log at all: the first thing an operator must fix.
    let server = PrivateMariaDb::start(&mariadbd, dir.path(), false).await;
    let lines = problems(server.port, "root", "", OUR_SERVER_ID).await;
    assert_line(
        &lines,
        &[
            "log_bin is OFF",
            "add log_bin=<basename> to the server config and restart",
        ],
    );
    assert_bad_formats(&lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    server.stop().await;

    // 2. Binary log on, but STATEMENT / MINIMAL / MINIMAL.
    let server = PrivateMariaDb::start(&mariadbd, dir.path(), true).await;
    let port = server.port;
    server
        .admin()
        .await
        .query_drop(format!(
            "CREATE USER 'weak'@'%' IDENTIFIED BY 'weak-pw';
             GRANT SELECT ON *.* TO 'weak'@'%';
             CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc-pw';
             GRANT {CDC_GRANTS} ON *.* TO 'cdc'@'%';"
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
    assert_eq!(info.flavor, Flavor::MariaDb);
    assert_eq!(info.server_id, SOURCE_SERVER_ID);
    assert!(info.gtid_mode);

    // Only the account remains wrong for the weak one.
    let lines = problems(port, "weak", "weak-pw", OUR_SERVER_ID).await;
    assert_weak_privileges(&lines);
    assert_eq!(lines.len(), 2, "{lines:#?}");

    server.stop().await;
}
