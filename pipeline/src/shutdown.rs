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

/// Sleeps `delay`, or less: returns within 100 ms of `stop` being set, so a
/// loop that waits between rounds (a sweep, a retry) still stops promptly.
/// For loops whose stop is an `AtomicBool` shared with blocking threads.
pub async fn sleep_unless(stop: &std::sync::atomic::AtomicBool, delay: std::time::Duration) {
    use std::sync::atomic::Ordering;
    let until = tokio::time::Instant::now() + delay;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(std::time::Duration::from_millis(100))).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::sleep_unless;

    #[tokio::test]
    async fn sleeps_the_whole_delay_without_a_stop() {
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        sleep_unless(&stop, Duration::from_millis(250)).await;
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn returns_soon_after_a_stop_not_after_the_delay() {
        let stop = Arc::new(AtomicBool::new(false));
        let setter = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            setter.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        sleep_unless(&stop, Duration::from_secs(60)).await;
        // Functional, not a timing claim: a minute's sleep ended early.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }
}
