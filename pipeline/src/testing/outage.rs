//! Outages on demand, for tests that prove a service waits one out.
//!
//! The stack's own broker and registry must never go down (other tests use
//! them), so a test takes its own:
//! - [`PrivateBroker`]: a second broker process (the stack's tansu binary) on
//!   a free port that can be frozen (`SIGSTOP`: connections stay open and
//!   nothing answers, like a partition or a stalled broker) and thawed. Its
//!   storage is in memory, so it is paused rather than restarted: a restart
//!   would lose the topics, which is data loss, not an outage.
//! - [`CuttableProxy`]: a TCP proxy in front of any endpoint (the registry)
//!   that can refuse and drop every connection, then come back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use super::free_port;
use super::{read_env_file, required, wait_until};

/// The broker binary `make stack-up` built (`KAFKA_BROKER_BIN` in the
/// environment or `.stack/env`), or `None` with the reason printed.
///
/// # Panics
/// When the stack is required (`SHOP_STACK_REQUIRED=1` or `CI=true`) and the
/// binary is not there.
pub fn broker_binary() -> Option<PathBuf> {
    let path = std::env::var("KAFKA_BROKER_BIN")
        .ok()
        .or_else(|| read_env_file().get("KAFKA_BROKER_BIN").cloned())
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    if path.is_none() {
        let reason =
            "no broker binary: KAFKA_BROKER_BIN is not set or not a file (run `make stack-up`)";
        assert!(!required(), "{reason}");
        eprintln!("skipping: {reason}");
    }
    path
}

/// A broker process of the test's own; killed on drop.
#[derive(Debug)]
pub struct PrivateBroker {
    child: Child,
    pub port: u16,
    paused: bool,
}

impl PrivateBroker {
    /// Starts the broker on `port` (in-memory storage) and waits until it
    /// accepts connections.
    pub async fn start(binary: &std::path::Path, port: u16) -> Self {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let broker = Self {
            child,
            port,
            paused: false,
        };
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
        broker
    }

    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} the private broker");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if self.paused {
            self.signal("-CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
