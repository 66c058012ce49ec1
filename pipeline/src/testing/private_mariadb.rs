//! A PRIVATE `mariadbd` for tests that must change server settings or stop
//! the server, which the shared stack's MariaDB (used by every other test)
//! must never see.
//!
//! Invariants:
//! - The server lives in a caller-owned directory (datadir, socket, pid file,
//!   one error log per start) on a loopback port; dropping the handle kills it,
//!   so a failing assert does not leak the process.
//! - Nothing is shared with other servers: datadir, socket, pid file and
//!   temporary directory are all under the caller's directory.
//! - Every wait is polled with a deadline and fails with the server's log.
//! - Without `mariadbd` installed a test is skipped with a printed reason,
//!   unless the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`, as
//!   under `make test`, whose stack script installs MariaDB).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::{free_port, required};

/// `mariadbd` lives in sbin, which is not on every user's PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The installed server programs.
#[derive(Debug)]
pub struct Programs {
    pub install_db: PathBuf,
    pub mariadbd: PathBuf,
}

/// The server programs, or `None` with the skip reason printed.
pub fn programs() -> Option<Programs> {
    match (find_program("mariadb-install-db"), find_program("mariadbd")) {
        (Some(install_db), Some(mariadbd)) => Some(Programs {
            install_db,
            mariadbd,
        }),
        _ => {
            let reason =
                "mariadbd / mariadb-install-db not installed (scripts/stack.sh installs them)";
            assert!(!required(), "{reason}");
            eprintln!("skipping: {reason}");
            None
        }
    }
}

pub fn opts(port: u16, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

/// The settings a binlog connector needs (ROW, FULL image, FULL metadata),
/// with the source's `server_id` and UTC as the server time zone.
pub fn replication_args(root: &Path, server_id: u32) -> Vec<String> {
    vec![
        format!("--log-bin={}", root.join("mysql-bin").display()),
        format!("--server-id={server_id}"),
        "--binlog-format=ROW".into(),
        "--binlog-row-image=FULL".into(),
        "--binlog-row-metadata=FULL".into(),
        "--default-time-zone=+00:00".into(),
    ]
}

/// The server's own temporary directory: with the shared /tmp, concurrent
/// bootstraps were seen to lose their internal temporary tables
/// ("Unknown table 'mysql.tmp_user_sys'").
fn tmpdir(root: &Path) -> PathBuf {
    root.join("tmp")
}

/// Initialises an empty datadir at `root/data`.
pub fn install(programs: &Programs, root: &Path) {
    let log = root.join("install.log");
    std::fs::create_dir_all(tmpdir(root)).unwrap();
    let status = Command::new(&programs.install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", root.join("data").display()))
        .arg(format!("--tmpdir={}", tmpdir(root).display()))
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

/// A private server; dropping it kills the process.
#[derive(Debug)]
pub struct PrivateMariaDb {
    mariadbd: PathBuf,
    root: PathBuf,
    args: Vec<String>,
    /// `None` while stopped.
    child: Option<Child>,
    pub port: u16,
    starts: u32,
    error_log: PathBuf,
}

impl PrivateMariaDb {
    /// Starts `mariadbd` on `root/data` (see [`install`]) with the extra
    /// server `args`, and waits until it answers. The free port is probed
    /// before the server binds it, so another process may take it in between:
    /// then a new port is tried.
    pub async fn start(programs: &Programs, root: &Path, args: &[String]) -> Self {
        let mut server = Self {
            mariadbd: programs.mariadbd.clone(),
            root: root.to_owned(),
            args: args.to_vec(),
            child: None,
            port: 0,
            starts: 0,
            error_log: PathBuf::new(),
        };
        for attempt in 1.. {
            server.port = free_port();
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(log) if attempt < 3 && log.contains("already in use") => continue,
                Err(log) => panic!("mariadbd exited before answering:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Starts the stopped server again on the same port and datadir (a
    /// connector configured with the port must find it there).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        if let Err(log) = self.spawn_and_wait().await {
            panic!("mariadbd did not come back on port {}:\n{log}", self.port);
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.starts += 1;
        // One log per start, so a failure's diagnosis is not an old one.
        self.error_log = self
            .root
            .join(format!("error-{}-{}.log", self.port, self.starts));
        let child = Command::new(&self.mariadbd)
            .arg("--no-defaults")
            // Refused by a root mariadbd unless named; ignored (with a warning) otherwise.
            .arg("--user=root")
            .arg(format!("--datadir={}", self.root.join("data").display()))
            .arg(format!("--tmpdir={}", tmpdir(&self.root).display()))
            .arg(format!(
                "--socket={}",
                self.root.join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.root.join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", self.error_log.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            // Small: the tests write little, and the machine is shared.
            .arg("--innodb-buffer-pool-size=16M")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        self.child = Some(child);
        self.wait_ready().await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// `Err` with the server's log when it exited instead of answering.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
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

    pub async fn admin(&self) -> Conn {
        Conn::new(opts(self.port, "root", "")).await.unwrap()
    }

    /// Clean shutdown, so the next start on the same datadir needs no recovery.
    pub async fn stop(&mut self) {
        let mut conn = self.admin().await;
        // The server may drop the connection before it answers.
        let _ = conn.query_drop("SHUTDOWN").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let child = self.child.as_mut().expect("running");
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not shut down:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = None;
    }

    /// SIGKILL: the next start runs crash recovery.
    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the running mariadbd: SIGSTOP
    /// freezes it with its connections open, as a hung host would.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("mariadbd is running");
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} mariadbd");
    }

    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL mariadbd");
        child.wait().unwrap();
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // Errors only mean it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
