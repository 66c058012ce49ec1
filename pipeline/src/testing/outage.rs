//! Outages on demand, for tests that prove a service waits one out.
//!
//! The stack's own broker and registry must never go down (other tests use
//! them), so a test takes its own:
//! - [`PrivateBroker`]: a second broker process (one of the stack's tansu
//!   binaries) on a free port that can be frozen (`SIGSTOP`: connections stay
//!   open and nothing answers, like a partition or a stalled broker) and
//!   thawed. With memory storage it is paused rather than restarted: a
//!   restart would lose the topics, which is data loss, not an outage. With
//!   libsql storage (the stack's persistent broker's binary) it can also be
//!   SIGTERMed or SIGKILLed and started again with its data.
//! - [`CuttableProxy`]: a TCP proxy in front of any endpoint (the registry)
//!   that can refuse and drop every connection, then come back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use super::free_port;
use super::{read_env_file, required, wait_until, Broker};

/// The memory broker's binary `make stack-up` built (`KAFKA_BROKER_BIN` in the
/// environment or `.stack/env`), or `None` with the reason printed.
///
/// # Panics
/// When the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`) and the
/// binary is not there.
pub fn broker_binary() -> Option<PathBuf> {
    broker_binary_for(Broker::Memory)
}

/// The binary of one of the stack's brokers: `KAFKA_BROKER_BIN` (memory
/// storage) or `KAFKA_PERSISTENT_BROKER_BIN` (libsql storage), or `None` with
/// the reason printed.
///
/// # Panics
/// When the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`) and the
/// binary is not there.
pub fn broker_binary_for(broker: Broker) -> Option<PathBuf> {
    let var = match broker {
        Broker::Memory => "KAFKA_BROKER_BIN",
        Broker::Persistent => "KAFKA_PERSISTENT_BROKER_BIN",
    };
    let path = std::env::var(var)
        .ok()
        .or_else(|| read_env_file().get(var).cloned())
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if path.is_none() {
        let reason = format!(
            "no {broker} broker binary: {var} is not set or not a file (run `make stack-up`)"
        );
        assert!(!required(), "{reason}");
        eprintln!("skipping: {reason}");
    }
    path
}

/// A broker process of the test's own; killed on drop.
///
/// With memory storage a restart would lose every topic, so such a broker is
/// only frozen ([`Self::pause`]); with libsql storage (a file in the broker's
/// own directory) it can also be stopped, killed and started again with its
/// data ([`Self::stop`], [`Self::kill`], [`Self::start_again`]).
#[derive(Debug)]
pub struct PrivateBroker {
    child: Option<Child>,
    binary: PathBuf,
    /// The libsql storage's directory (`None`: memory storage).
    dir: Option<PathBuf>,
    pub port: u16,
    paused: bool,
    starts: u32,
}

impl PrivateBroker {
    /// Starts the broker on `port` (in-memory storage) and waits until it
    /// accepts connections.
    pub async fn start(binary: &Path, port: u16) -> Self {
        Self::launch(binary, port, None).await
    }

    /// Starts a broker with libsql storage in `dir` (created if missing; the
    /// broker's log is `dir/tansu.log`) on `port`, and waits until it accepts
    /// connections. `binary` must be the libsql build
    /// ([`broker_binary_for`]`(Broker::Persistent)`).
    pub async fn start_persistent(binary: &Path, port: u16, dir: &Path) -> Self {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self::launch(binary, port, Some(dir.to_owned())).await
    }

    /// A broker like the stack's `broker`: memory storage, or libsql storage
    /// in a fresh directory under the system's temporary directory.
    pub async fn start_like(broker: Broker, binary: &Path, port: u16) -> Self {
        match broker {
            Broker::Memory => Self::start(binary, port).await,
            Broker::Persistent => {
                let dir = std::env::temp_dir().join(super::unique_name("private-broker"));
                Self::start_persistent(binary, port, &dir).await
            }
        }
    }

    async fn launch(binary: &Path, port: u16, dir: Option<PathBuf>) -> Self {
        let mut broker = Self {
            child: None,
            binary: binary.to_owned(),
            dir,
            port,
            paused: false,
            starts: 0,
        };
        broker.start_again().await;
        broker
    }

    /// Starts the stopped broker again (same port, same storage) and waits
    /// until it accepts connections.
    ///
    /// # Panics
    /// When it is still running, or does not listen within 30 s.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the private broker is still running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(&self.binary);
        command.arg("broker");
        match &self.dir {
            None => {
                command.args(["--storage-engine", "memory://tansu/"]);
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Some(dir) => {
                // tansu opens the URL's path relative to its working directory.
                command.args(["--storage-engine", "sqlite:///tansu.db"]);
                command.current_dir(dir);
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("tansu.log"))
                    .unwrap_or_else(|e| {
                        panic!("cannot open the broker log in {}: {e}", dir.display())
                    });
                let err = log.try_clone().expect("clone the log handle");
                command.stdout(log).stderr(err);
            }
        }
        let child = command
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.starts += 1;
        let port = self.port;
        wait_until(
            Duration::from_secs(30),
            "the private broker to listen",
            || async move {
                TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }

    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many times the broker process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The broker's log (libsql storage only; empty otherwise).
    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("tansu.log")).ok())
            .unwrap_or_default()
    }

    /// Freezes the broker: its sockets stay open, nothing is answered.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    /// SIGTERM, then waits until the process exited (a clean shutdown).
    ///
    /// # Panics
    /// When it is not running, or has not exited within 30 s.
    pub async fn stop(&mut self) {
        self.assert_restartable();
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        let child = self.child.as_mut().expect("running");
        while child.try_wait().expect("wait for the broker").is_none() {
            assert!(
                Instant::now() < deadline,
                "the private broker did not exit within 30 s of SIGTERM; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = None;
    }

    /// SIGKILL: nothing is flushed or closed.
    ///
    /// # Panics
    /// When it is not running.
    pub fn kill(&mut self) {
        self.assert_restartable();
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL the private broker");
        child.wait().expect("reap the private broker");
    }

    fn assert_restartable(&self) {
        assert!(
            self.dir.is_some(),
            "a broker with memory storage loses every topic when it stops; start it with start_persistent"
        );
        assert!(!self.paused, "the private broker is frozen");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the private broker is running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} the private broker");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if self.paused {
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // The data of a test's own broker goes with it, unless the test failed.
        if let Some(dir) = &self.dir {
            if std::thread::panicking() {
                eprintln!("private broker: data and log kept in {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// A TCP proxy to `upstream` on an ephemeral local port; aborted on drop.
#[derive(Debug)]
pub struct CuttableProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicU64::new(0));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, refused, connections) = (up.clone(), refused.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Accepted and dropped: the client sees the
                        // connection reset, as from a server that is down.
                        drop(client);
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(task);
                }
            }
        });
        Self {
            addr,
            up,
            refused,
            connections,
            accept,
        }
    }

    /// `http://<addr>`: the proxied endpoint as an HTTP base URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    /// Connections refused while cut: proof a client tried during the outage.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
