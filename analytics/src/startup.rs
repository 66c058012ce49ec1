//! The startup watch: every step before the consumer loop (migrations,
//! settings, the dead-letter topic...) is timed, so an instance that hangs
//! there is reported instead of looking healthy.
//!
//! Seen: an instance hung after its migrations check (writing its settings,
//! or creating the dead-letter topic on a broker that stopped answering)
//! with /healthz green, because the stuck-group watch of [`crate::consume`]
//! only starts with the consumer loop. Here a step still running after the
//! same limit (`--unassigned-sessions` session timeouts) logs a WARN naming
//! the step (repeated every minute) and turns /healthz unhealthy until the
//! step ends; the steps keep retrying by themselves (a broker or database
//! that comes back lets the instance start).
//!
//! The watch runs on its own task, so a step that blocks its thread (a
//! synchronous client call) is still reported while a runtime worker is free.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::telemetry::Health;

/// How often the watch looks at the running step.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often an overdue step's WARN is repeated.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The decision part of the watch (no clock, no I/O): which step runs since
/// when, and whether it is due for a WARN.
#[derive(Debug)]
pub struct Steps {
    limit: Duration,
    current: Option<(&'static str, Instant)>,
    last_warn: Option<Instant>,
    /// The reason shown on /healthz, when this watch set it.
    reported: Option<String>,
}

/// What the watch should do after a look.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is overdue.
    Fine,
    /// The step is overdue: show the reason on /healthz; `warn`: log it now.
    Overdue { reason: String, warn: bool },
}

impl Steps {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            current: None,
            last_warn: None,
            reported: None,
        }
    }

    /// `step` starts now; returns the reason to clear from /healthz when the
    /// previous step had been reported.
    pub fn begin(&mut self, step: &'static str, now: Instant) -> Option<String> {
        self.current = Some((step, now));
        self.last_warn = None;
        self.reported.take()
    }

    /// Every step is done; returns the reason to clear, if one was shown.
    pub fn finish(&mut self) -> Option<String> {
        self.current = None;
        self.reported.take()
    }

    /// A look at the running step at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let Some((step, since)) = self.current else {
            return Verdict::Fine;
        };
        let waited = now.saturating_duration_since(since);
        if waited < self.limit {
            return Verdict::Fine;
        }
        let reason = format!(
            "startup step {step:?} has not finished after {}s (limit {}s): \
             the instance is not consuming yet",
            waited.as_secs(),
            self.limit.as_secs()
        );
        let warn = self
            .last_warn
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        if warn {
            self.last_warn = Some(now);
        }
        self.reported = Some(reason.clone());
        Verdict::Overdue { reason, warn }
    }
}

/// The watch, running on its own task until [`Watch::finish`].
#[derive(Debug)]
pub struct Watch {
    steps: Arc<Mutex<Steps>>,
    health: Health,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn start(limit: Duration, health: Health) -> Self {
        let steps = Arc::new(Mutex::new(Steps::new(limit)));
        let task = {
            let (steps, health) = (steps.clone(), health.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(CHECK_EVERY).await;
                    // Reported under the lock, so a step ending meanwhile
                    // clears exactly what was shown.
                    let mut steps = lock(&steps);
                    if let Verdict::Overdue { reason, warn } = steps.check(Instant::now()) {
                        if warn {
                            tracing::warn!("{reason}");
                        }
                        health.unhealthy(reason);
                    }
                }
            })
        };
        Self {
            steps,
            health,
            task,
        }
    }

    /// The next step starts (the previous one ended).
    pub fn step(&self, step: &'static str) {
        tracing::debug!(step, "startup step");
        let mut steps = lock(&self.steps);
        let cleared = steps.begin(step, Instant::now());
        self.clear(cleared);
    }

    /// Startup is over: the consumer loop's own watches take over.
    pub fn finish(self) {
        self.task.abort();
        let mut steps = lock(&self.steps);
        let cleared = steps.finish();
        self.clear(cleared);
    }

    fn clear(&self, cleared: Option<String>) {
        let Some(reason) = cleared else { return };
        tracing::info!("the overdue startup step finished");
        // Only clear what this watch said.
        if self.health.problem().as_deref() == Some(reason.as_str()) {
            self.health.healthy();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(steps: &Mutex<Steps>) -> std::sync::MutexGuard<'_, Steps> {
    steps.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_past_the_limit_is_reported_by_name_and_warned_once_a_minute() {
        let mut steps = Steps::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(steps.check(t0), Verdict::Fine, "no step yet");
        assert_eq!(steps.begin("migrations", t0), None);
        assert_eq!(steps.check(t0 + Duration::from_secs(29)), Verdict::Fine);
        let Verdict::Overdue { reason, warn } = steps.check(t0 + Duration::from_secs(30)) else {
            panic!("overdue at the limit");
        };
        assert!(warn);
        assert!(reason.contains("\"migrations\""), "{reason}");
        assert!(reason.contains("after 30s"), "{reason}");
        // Still shown, but the WARN waits a minute.
        let Verdict::Overdue { warn, .. } = steps.check(t0 + Duration::from_secs(45)) else {
            panic!("still overdue");
        };
        assert!(!warn);
        let Verdict::Overdue { warn, .. } = steps.check(t0 + Duration::from_secs(90)) else {
            panic!("still overdue");
        };
        assert!(warn);
    }

    #[test]
    fn the_next_step_clears_the_report_and_restarts_the_clock() {
        let mut steps = Steps::new(Duration::from_secs(3));
        let t0 = Instant::now();
        steps.begin("write_settings", t0);
        let Verdict::Overdue { reason, .. } = steps.check(t0 + Duration::from_secs(5)) else {
            panic!("overdue");
        };
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(steps.begin("dead-letter topic", t1), Some(reason));
        assert_eq!(steps.check(t1 + Duration::from_secs(2)), Verdict::Fine);
        let Verdict::Overdue { reason, warn } = steps.check(t1 + Duration::from_secs(3)) else {
            panic!("the new step is overdue too");
        };
        assert!(warn, "a new step warns at once");
        assert!(reason.contains("\"dead-letter topic\""), "{reason}");
        assert_eq!(steps.finish(), Some(reason));
        assert_eq!(steps.check(t1 + Duration::from_secs(100)), Verdict::Fine);
        assert_eq!(steps.finish(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watch_turns_health_unhealthy_and_back() {
        let health = Health::default();
        let watch = Watch::start(Duration::from_millis(100), health.clone());
        watch.step("hanging step");
        let deadline = Instant::now() + Duration::from_secs(10);
        while health.problem().is_none() {
            assert!(Instant::now() < deadline, "never reported");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let problem = health.problem().unwrap_or_default();
        assert!(problem.contains("\"hanging step\""), "{problem}");
        watch.finish();
        assert_eq!(health.problem(), None);
    }
}
