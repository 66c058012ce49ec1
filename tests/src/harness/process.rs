//! One service as a child process.
//!
//! Invariants: stdout and stderr go to one log file that survives restarts
//! (each start appends a marker line), so a failure shows the whole history;
//! a [`Process`] kills its child when dropped, so no test leaves a service
//! running; [`binaries`] never runs a stale binary (it rebuilds when any source
//! the binaries are built from is newer than them).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The three services' binaries, built for this test run.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub cdc: PathBuf,
    pub loadgen: PathBuf,
    pub analytics: PathBuf,
}

const SERVICES: [&str; 3] = ["cdc", "loadgen", "analytics"];

/// The workspace root (the e2e crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The profile directory the test binary itself was built into
/// (`<target>/debug/deps/pipeline_e2e-*` -> `<target>/debug`): cargo gives an
/// integration test `CARGO_BIN_EXE_*` only for its own package's binaries, and
/// this finds the others' whatever CARGO_TARGET_DIR was.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary under <target>/<profile>/deps")
        .to_owned()
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

/// Sources the three binaries are built from (their crates, the shared
/// library, the embedded migrations, the lock file).
fn newest_source() -> Option<SystemTime> {
    let root = workspace_root();
    let mut paths: Vec<PathBuf> = SERVICES
        .iter()
        .flat_map(|s| [root.join(s).join("src"), root.join(s).join("Cargo.toml")])
        .collect();
    paths.extend([
        root.join("pipeline/src"),
        root.join("pipeline/Cargo.toml"),
        root.join("migrations"),
        root.join("Cargo.lock"),
    ]);
    paths.iter().filter_map(|p| newest_mtime(p)).max()
}

/// The built binaries, building them first (once per test process) when one
/// is missing or older than its sources.
///
/// # Panics
/// When the build fails: the message carries cargo's error output.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let dir = profile_dir();
        let paths: Vec<PathBuf> = SERVICES.iter().map(|s| dir.join(s)).collect();
        let built = paths.iter().filter_map(|p| newest_mtime(p)).min();
        let fresh = paths.iter().all(|p| p.is_file())
            && matches!((built, newest_source()), (Some(b), Some(s)) if b >= s);
        if !fresh {
            build(&dir);
        }
        Binaries {
            cdc: paths[0].clone(),
            loadgen: paths[1].clone(),
            analytics: paths[2].clone(),
        }
    })
}

fn build(profile_dir: &Path) {
    let target = profile_dir
        .parent()
        .expect("profile dir has a parent")
        .to_owned();
    eprintln!(
        "e2e: building cdc, loadgen and analytics into {}",
        target.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "cdc", "-p", "loadgen", "-p", "analytics"])
        .env("CARGO_TARGET_DIR", &target);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .expect("cannot run cargo to build the services");
    assert!(
        out.status.success(),
        "building cdc/loadgen/analytics failed ({}); the end of cargo's output:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr), 60)
    );
}

/// What is needed to start (and restart) a service.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name used in messages and the log file's name.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment: nothing is inherited but PATH and HOME, so a
    /// variable of the developer's shell (e.g. POSTGRES_URL) cannot leak in.
    pub env: Vec<(String, String)>,
}

/// A running (or exited) service with its log.
#[derive(Debug)]
pub struct Process {
    spec: Spec,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Process {
    /// Starts the service, its output appended to `<log_dir>/<name>.log`.
    pub fn start(spec: Spec, log_dir: &Path) -> Process {
        let log = log_dir.join(format!("{}.log", spec.name));
        let mut p = Process {
            spec,
            log,
            child: None,
            starts: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let _ = writeln!(
            file,
            "===== e2e: start #{} of {}: {} {}",
            self.starts,
            self.spec.name,
            self.spec.program.display(),
            self.spec.args.join(" ")
        );
        let err: File = file.try_clone().expect("clone log file handle");
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({}): {e}",
                self.spec.name,
                self.spec.program.display()
            )
        });
        self.child = Some(child);
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// How many times the service was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// SIGKILL (no chance to flush or commit anything) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's kill is SIGKILL on Unix; an already exited child is fine.
            let _ = child.kill();
            let _ = child.wait();
            self.note("killed with SIGKILL");
        }
    }

    /// SIGTERM: asks the service to stop cleanly (loadgen flushes and prints
    /// its totals). Sent with kill(1): the workspace forbids `unsafe`.
    pub fn terminate(&mut self) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -TERM {} failed", self.spec.name);
        self.note("sent SIGTERM");
    }

    /// SIGKILL, then start again with the same settings.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(f, "===== e2e: {} {what}", self.spec.name);
        }
    }

    /// The exit status if the service has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten()
    }

    /// Panics (with the log's tail) when the service is not running.
    pub fn assert_running(&mut self) {
        if self.child.is_none() {
            panic!("{} is not running (killed)", self.spec.name);
        }
        if let Some(status) = self.exited() {
            panic!(
                "{} exited unexpectedly ({status}); last log lines:\n{}",
                self.spec.name,
                self.tail(40)
            );
        }
    }

    /// Waits (polling) for the service to exit on its own.
    ///
    /// # Panics
    /// On timeout, with the log's tail.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {timeout:?}; last log lines:\n{}",
                    self.spec.name,
                    self.tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a clean exit (status 0).
    pub async fn wait_success(&mut self, timeout: Duration) {
        let status = self.wait_exit(timeout).await;
        assert!(
            status.success(),
            "{} failed ({status}); last log lines:\n{}",
            self.spec.name,
            self.tail(60)
        );
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log since the latest start.
    pub fn current_log(&self) -> String {
        let text = self.log_text();
        match text.rfind("===== e2e: start #") {
            Some(i) => text[i..].to_owned(),
            None => text,
        }
    }

    /// The last `n` lines of the log.
    pub fn tail(&self, n: usize) -> String {
        tail(&self.log_text(), n)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
