//! How every service learns it should stop: SIGINT (Ctrl-C) or SIGTERM (what
//! `docker stop`, systemd and `make demo` send).

/// Resolves at the first SIGINT or SIGTERM.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        // No SIGTERM handler could be installed: Ctrl-C still works.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
