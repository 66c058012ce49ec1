//! A PRIVATE MySQL server (Oracle's, the 9.x of Debian sid) for tests that must
//! change server settings, stop the server, purge its binlog or replicate
//! between two servers, which the shared stack's MySQL must never see.
//!
//! Debian 12 has no MySQL server package, so `scripts/stack.sh` keeps a minimal
//! Debian sid root with mysqld installed (`ORACLE_MYSQL_CHROOT` in
//! `.stack/env`) and runs the stack's server from it with `chroot`. A private
//! server runs the same way, from the same root.
//!
//! Invariants:
//! - Each server's files (datadir, binlog, socket, pid file, temporary
//!   directory, one error log per start) are in its own directory inside the
//!   chroot, `/srv/test-<uuid>`, because mysqld sees only the chroot; dropping
//!   the handle kills the process and deletes that directory, so a failing
//!   assert leaks neither a process nor ~150 MB of disk.
//! - A fresh datadir is a copy of a template initialised once per chroot
//!   (`mysqld --initialize-insecure` takes ~6 s, a copy ~0.3 s). The template
//!   holds `root@'%'` without a password; the copy loses `auto.cnf`, so each
//!   server gets its own `server_uuid` (replication refuses two equal ones) and
//!   so its own GTID source id.
//! - The process is `chroot ROOT env -i ... mysqld`, and both `chroot` and `env`
//!   exec, so the child's pid is mysqld's: a kill reaches the server itself.
//! - Every wait is polled with a deadline and fails with the server's log.
//! - Without the chroot a test is skipped with a printed reason, unless the
//!   stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`, as under
//!   `make test`, whose stack script builds the chroot).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::{free_port, required, unique_name};

/// The chroot that holds mysqld: `ORACLE_MYSQL_CHROOT` from the environment or
/// `.stack/env`, else the stack script's default cache location.
pub fn chroot() -> Option<PathBuf> {
    let root = std::env::var("ORACLE_MYSQL_CHROOT")
        .ok()
        .or_else(|| super::read_env_file().get("ORACLE_MYSQL_CHROOT").cloned())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/shop-demo/mysql-sid-root"))
        });
    match root {
        Some(root) if root.join("usr/sbin/mysqld").is_file() => Some(root),
        _ => {
            let reason =
                "no MySQL chroot with mysqld (ORACLE_MYSQL_CHROOT; `make stack-up` builds it)";
            assert!(!required(), "{reason}");
            eprintln!("skipping: {reason}");
            None
        }
    }
}

/// Client options for the server on `port` (plain TCP: with
/// caching_sha2_password, mysql_async then fetches the server's RSA key).
pub fn opts(port: u16, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

/// The settings a binlog connector needs, as the compose demo's MySQL has
/// them: ROW, FULL image, FULL metadata, GTIDs on, UTC. `server_id` is the
/// source's own. Later arguments override these (mysqld keeps the last).
pub fn replication_args(server_id: u32) -> Vec<String> {
    vec![
        format!("--server-id={server_id}"),
        "--binlog-format=ROW".into(),
        "--binlog-row-image=FULL".into(),
        "--binlog-row-metadata=FULL".into(),
        "--gtid-mode=ON".into(),
        "--enforce-gtid-consistency=ON".into(),
        "--default-time-zone=+00:00".into(),
    ]
}

/// Runs `mysqld` inside `root` with a clean environment; returns the command.
fn mysqld(root: &Path) -> Command {
    let mut cmd = Command::new("chroot");
    cmd.arg(root).args([
        "env",
        "-i",
        "TZ=UTC",
        "LANG=C.UTF-8",
        "PATH=/usr/sbin:/usr/bin",
        "/usr/sbin/mysqld",
        "--no-defaults",
        "--user=root",
    ]);
    cmd
}

/// The template datadir (inside the chroot), initialised on first use. An
/// exclusive `mkdir` lock keeps parallel tests from initialising it twice.
fn template(root: &Path) -> PathBuf {
    let dir = Path::new("/srv/test-template");
    let host = root.join(dir.strip_prefix("/").unwrap());
    if host.join("ready").is_file() {
        return dir.to_owned();
    }
    let lock = root.join("srv/test-template.lock");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if std::fs::create_dir(&lock).is_ok() {
            break;
        }
        if host.join("ready").is_file() {
            return dir.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {} (remove it if no test runs)",
            lock.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let result = std::panic::catch_unwind(|| {
        if host.join("ready").is_file() {
            return;
        }
        let _ = std::fs::remove_dir_all(&host);
        std::fs::create_dir_all(host.join("tmp")).unwrap();
        // Runs at the end of --initialize, not binlogged (there is no binlog yet).
        std::fs::write(
            host.join("init.sql"),
            "CREATE USER 'root'@'%' IDENTIFIED BY '';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n",
        )
        .unwrap();
        let log = host.join("init.log");
        let status = mysqld(root)
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .arg(format!("--log-error={}", dir.join("init.log").display()))
            .arg(format!("--init-file={}", dir.join("init.sql").display()))
            .arg("--initialize-insecure")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run chroot mysqld --initialize-insecure");
        assert!(
            status.success(),
            "mysqld --initialize-insecure failed ({status}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let _ = std::fs::remove_file(host.join("data/auto.cnf"));
        std::fs::write(host.join("ready"), "").unwrap();
    });
    let _ = std::fs::remove_dir(&lock);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    dir.to_owned()
}

/// A private server; dropping it kills the process and deletes its files.
#[derive(Debug)]
pub struct PrivateMySql {
    chroot: PathBuf,
    /// The server's directory as mysqld sees it (inside the chroot).
    dir: PathBuf,
    args: Vec<String>,
    /// `None` while stopped.
    child: Option<Child>,
    pub port: u16,
    starts: u32,
    error_log: PathBuf,
}

impl PrivateMySql {
    /// Starts a server on a fresh datadir with the extra server `args` (see
    /// [`replication_args`]; the binlog is always on, in the server's own
    /// directory, unless `args` say `--skip-log-bin`), and waits until it
    /// answers. Another process may take the probed free port first: then a
    /// new port is tried.
    pub async fn start(chroot: &Path, args: &[String]) -> Self {
        let template = template(chroot);
        let dir = PathBuf::from("/srv").join(unique_name("test"));
        let host_dir = chroot.join(dir.strip_prefix("/").unwrap());
        std::fs::create_dir_all(host_dir.join("tmp")).unwrap();
        std::fs::create_dir_all(host_dir.join("binlog")).unwrap();
        std::fs::create_dir_all(host_dir.join("files")).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(chroot.join(template.join("data").strip_prefix("/").unwrap()))
            .arg(host_dir.join("data"))
            .status()
            .expect("run cp");
        assert!(status.success(), "copying the template datadir failed");
        let mut server = Self {
            chroot: chroot.to_owned(),
            dir,
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
                Err(log) => panic!("mysqld exited before answering:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// A path inside the server's directory, as seen from the host.
    pub fn host_path(&self, name: &str) -> PathBuf {
        self.chroot
            .join(self.dir.strip_prefix("/").unwrap())
            .join(name)
    }

    /// Starts the stopped server again on the same port and datadir (a
    /// connector configured with the port must find it there).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        if let Err(log) = self.spawn_and_wait().await {
            panic!("mysqld did not come back on port {}:\n{log}", self.port);
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.starts += 1;
        // One log per start, so a failure's diagnosis is not an old one.
        let log_name = format!("error-{}-{}.log", self.port, self.starts);
        self.error_log = self.host_path(&log_name);
        let inside = |name: &str| self.dir.join(name).display().to_string();
        let child = mysqld(&self.chroot)
            .arg(format!("--datadir={}", inside("data")))
            .arg(format!("--tmpdir={}", inside("tmp")))
            .arg(format!("--socket={}", inside("mysqld.sock")))
            .arg(format!("--pid-file={}", inside("mysqld.pid")))
            .arg(format!("--log-error={}", inside(&log_name)))
            .arg(format!("--log-bin={}", inside("binlog/mysql-bin")))
            // The packaged default (/var/lib/mysql-files) does not exist in the chroot.
            .arg(format!("--secure-file-priv={}", inside("files")))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            // The X protocol would listen on *:33060, shared by every server.
            .arg("--mysqlx=OFF")
            .arg("--skip-name-resolve")
            // Small: the tests write little, and the machine is shared
            // (performance_schema alone is ~400 MB of RSS).
            .arg("--performance-schema=OFF")
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--innodb-redo-log-capacity=16M")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chroot mysqld");
        self.child = Some(child);
        self.wait_ready().await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// `Err` with the server's log when it exited instead of answering.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
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
                "mysqld did not answer on port {} within 90 s:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `mysql://root@127.0.0.1:<port>/<database>` (root has no password).
    pub fn url(&self, database: Option<&str>) -> String {
        format!(
            "mysql://root@127.0.0.1:{}/{}",
            self.port,
            database.unwrap_or("")
        )
    }

    pub async fn admin(&self) -> Conn {
        Conn::new(opts(self.port, "root", "")).await.unwrap()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Clean shutdown, so the next start on the same datadir needs no recovery.
    pub async fn stop(&mut self) {
        let mut conn = self.admin().await;
        // The server may drop the connection before it answers.
        let _ = conn.query_drop("SHUTDOWN").await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let child = self.child.as_mut().expect("running");
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "mysqld did not shut down:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = None;
    }

    /// SIGKILL: the next start runs crash recovery.
    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the running mysqld: SIGSTOP
    /// freezes it with its connections open, as a hung host would.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("mysqld is running");
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} mysqld");
    }

    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL mysqld");
        child.wait().unwrap();
    }
}

impl Drop for PrivateMySql {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // Errors only mean it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(self.chroot.join(self.dir.strip_prefix("/").unwrap()));
    }
}
