//! What was sent, counted once, where it happens, and reported live and at the end.
//!
//! Invariants:
//! - A purchase or change is counted only after MySQL committed it (for changes:
//!   by the rows MySQL reports as affected); a pageview is counted as sent when
//!   the producer accepted it and as delivered only when Kafka acknowledged it.
//!   So the final totals are what MySQL and Kafka hold, not what was attempted.
//! - Retries never count twice: a statement is counted when it finally succeeds.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Rate;
use crate::seed::SeedOutcome;

/// Where loadgen's human-readable output goes (stdout in the binary, a buffer
/// in tests).
pub type Out = Arc<Mutex<dyn Write + Send>>;

/// Writes one line; output errors (a closed pipe) must not stop the traffic.
pub fn say(out: &Out, line: &str) {
    let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(w, "{line}");
    let _ = w.flush();
}

/// The kinds of change made to existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    Completion,
    SoftDelete,
    HardDelete,
    Restock,
    VipUpgrade,
    EmailChange,
}

impl MutationKind {
    pub const ALL: [MutationKind; 6] = [
        MutationKind::Completion,
        MutationKind::SoftDelete,
        MutationKind::HardDelete,
        MutationKind::Restock,
        MutationKind::VipUpgrade,
        MutationKind::EmailChange,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MutationKind::Completion => "completions",
            MutationKind::SoftDelete => "soft_deletes",
            MutationKind::HardDelete => "hard_deletes",
            MutationKind::Restock => "restocks",
            MutationKind::VipUpgrade => "vip_upgrades",
            MutationKind::EmailChange => "email_changes",
        }
    }
}

/// Live counters shared by the traffic tasks and the Kafka delivery callback.
#[derive(Debug, Default)]
pub struct Counters {
    pub purchases: AtomicU64,
    pub purchase_pageviews: AtomicU64,
    pub pageviews: AtomicU64,
    pub delivered: AtomicU64,
    pub delivery_failures: AtomicU64,
    pub mutations: [AtomicU64; 6],
    /// Changes planned but with nothing eligible (e.g. no incomplete purchase yet).
    pub mutations_skipped: AtomicU64,
    /// Changes that found their row already changed or gone (0 rows affected).
    pub mutations_noop: AtomicU64,
    pub mysql_retries: AtomicU64,
    pub kafka_queue_full: AtomicU64,
    /// Errors librdkafka reported (broker down, ...), retried by the producer.
    pub kafka_errors: AtomicU64,
}

impl Counters {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn mutation(&self, kind: MutationKind) -> &AtomicU64 {
        &self.mutations[kind as usize]
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Final (or current) totals of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub seed: u64,
    pub seeding: Option<SeedOutcome>,
    /// From the start of traffic to its end (seeding excluded).
    pub elapsed_secs: f64,
    /// Time the producer took after the end to have every pageview acknowledged.
    pub flush_secs: f64,
    /// Purchases committed to MySQL.
    pub purchases: u64,
    /// Purchasers' own `/products/<item>` pageviews accepted by the producer.
    pub purchase_pageviews: u64,
    /// Rate-limited pageviews accepted by the producer.
    pub pageviews: u64,
    /// Pageviews of both kinds acknowledged by Kafka.
    pub pageviews_delivered: u64,
    /// Pageviews Kafka finally refused (after the producer's own retries).
    pub pageviews_failed: u64,
    pub completions: u64,
    pub soft_deletes: u64,
    pub hard_deletes: u64,
    pub restocks: u64,
    pub vip_upgrades: u64,
    pub email_changes: u64,
    pub mutations_skipped: u64,
    pub mutations_noop: u64,
    /// Transient MySQL failures retried.
    pub mysql_retries: u64,
    /// Times the producer's queue was full and sending waited.
    pub kafka_queue_full: u64,
    /// Errors librdkafka reported and retried (broker down, ...).
    pub kafka_errors: u64,
}

impl Totals {
    pub fn snapshot(
        c: &Counters,
        seed: u64,
        seeding: Option<SeedOutcome>,
        elapsed: Duration,
    ) -> Self {
        let g = Counters::get;
        let m = |k: MutationKind| g(c.mutation(k));
        Totals {
            seed,
            seeding,
            elapsed_secs: elapsed.as_secs_f64(),
            flush_secs: 0.0,
            purchases: g(&c.purchases),
            purchase_pageviews: g(&c.purchase_pageviews),
            pageviews: g(&c.pageviews),
            pageviews_delivered: g(&c.delivered),
            pageviews_failed: g(&c.delivery_failures),
            completions: m(MutationKind::Completion),
            soft_deletes: m(MutationKind::SoftDelete),
            hard_deletes: m(MutationKind::HardDelete),
            restocks: m(MutationKind::Restock),
            vip_upgrades: m(MutationKind::VipUpgrade),
            email_changes: m(MutationKind::EmailChange),
            mutations_skipped: g(&c.mutations_skipped),
            mutations_noop: g(&c.mutations_noop),
            mysql_retries: g(&c.mysql_retries),
            kafka_queue_full: g(&c.kafka_queue_full),
            kafka_errors: g(&c.kafka_errors),
        }
    }

    pub fn mutations(&self) -> u64 {
        self.completions
            + self.soft_deletes
            + self.hard_deletes
            + self.restocks
            + self.vip_upgrades
            + self.email_changes
    }

    /// All pageviews handed to the producer.
    pub fn pageviews_sent(&self) -> u64 {
        self.pageviews + self.purchase_pageviews
    }

    /// Human-readable final report.
    pub fn report(&self) -> Vec<String> {
        let rate = |n: u64| {
            if self.elapsed_secs > 0.0 {
                n as f64 / self.elapsed_secs
            } else {
                0.0
            }
        };
        let undelivered = self
            .pageviews_sent()
            .saturating_sub(self.pageviews_delivered + self.pageviews_failed);
        vec![
            format!(
                "totals after {:.1}s, producer flushed in {:.1}s (seed {}):",
                self.elapsed_secs, self.flush_secs, self.seed
            ),
            format!(
                "  mysql  purchases {} ({:.1}/s); completions {}, soft deletes {}, hard deletes {}, restocks {}, vip upgrades {}, email changes {}; skipped {} (nothing eligible), no-ops {}; retries {}",
                self.purchases,
                rate(self.purchases),
                self.completions,
                self.soft_deletes,
                self.hard_deletes,
                self.restocks,
                self.vip_upgrades,
                self.email_changes,
                self.mutations_skipped,
                self.mutations_noop,
                self.mysql_retries
            ),
            format!(
                "  kafka  pageviews delivered {} = {} rate-limited ({:.1}/s) + {} purchasers'; failed {}, undelivered {}; queue-full waits {}, client errors {}",
                self.pageviews_delivered,
                self.pageviews,
                rate(self.pageviews),
                self.purchase_pageviews,
                self.pageviews_failed,
                undelivered,
                self.kafka_queue_full,
                self.kafka_errors
            ),
        ]
    }
}

/// Prints target vs achieved rates every interval and mirrors the counters
/// into the `metrics` registry (served on /metrics by the binary).
#[derive(Debug)]
pub struct LiveStats {
    counters: Arc<Counters>,
    purchases_target: Rate,
    pageviews_target: Arc<AtomicU64>,
    last: (Instant, u64, u64, u64),
    started: Instant,
    /// False until one full interval has passed (the first one includes start-up).
    last_was_running: bool,
}

impl LiveStats {
    /// `pageviews_target` holds the current pageview target in millievents/s
    /// (it moves with --oscillate).
    pub fn new(
        counters: Arc<Counters>,
        purchases_target: Rate,
        pageviews_target: Arc<AtomicU64>,
    ) -> Self {
        let now = Instant::now();
        LiveStats {
            counters,
            purchases_target,
            pageviews_target,
            last: (now, 0, 0, 0),
            started: now,
            last_was_running: false,
        }
    }

    /// One line describing the interval since the previous call.
    pub fn tick(&mut self) -> String {
        let c = &self.counters;
        let now = Instant::now();
        let purchases = Counters::get(&c.purchases);
        let pageviews = Counters::get(&c.pageviews);
        let mutations: u64 = c.mutations.iter().map(Counters::get).sum();
        let dt = now.duration_since(self.last.0).as_secs_f64().max(1e-9);
        let p_rate = (purchases - self.last.1) as f64 / dt;
        let v_rate = (pageviews - self.last.2) as f64 / dt;
        let m_rate = (mutations - self.last.3) as f64 / dt;
        self.last = (now, purchases, pageviews, mutations);
        let target = |r: Rate| match r {
            Rate::PerSec(r) => format!("{r:.1}"),
            Rate::Max => "max".into(),
        };
        let pv_target = self.pageviews_target.load(Ordering::Relaxed);
        let pv_target = if pv_target == u64::MAX {
            "max".to_string()
        } else {
            format!("{:.1}", pv_target as f64 / 1000.0)
        };
        self.publish();
        let behind = match self.purchases_target {
            Rate::PerSec(t) if t > 0.0 && self.last_was_running && p_rate < 0.9 * t => {
                " | purchases behind target: MySQL is slow or away; more --mysql-connections may help"
            }
            _ => "",
        };
        self.last_was_running = true;
        format!(
            "[{:>6.0}s] purchases {:.1}/s (target {}) total {} | pageviews {:.1}/s (target {}) total {} delivered {} | changes {:.2}/s total {} | errors: mysql retries {}, kafka failed {}, queue full {}, client errors {}{behind}",
            now.duration_since(self.started).as_secs_f64(),
            p_rate,
            target(self.purchases_target),
            purchases,
            v_rate,
            pv_target,
            pageviews + Counters::get(&c.purchase_pageviews),
            Counters::get(&c.delivered),
            m_rate,
            mutations,
            Counters::get(&c.mysql_retries),
            Counters::get(&c.delivery_failures),
            Counters::get(&c.kafka_queue_full),
            Counters::get(&c.kafka_errors),
        )
    }

    /// Mirrors the counters into the metrics registry.
    pub fn publish(&self) {
        let c = &self.counters;
        let g = Counters::get;
        metrics::counter!("loadgen_purchases_total").absolute(g(&c.purchases));
        metrics::counter!("loadgen_pageviews_sent_total", "kind" => "random")
            .absolute(g(&c.pageviews));
        metrics::counter!("loadgen_pageviews_sent_total", "kind" => "purchase")
            .absolute(g(&c.purchase_pageviews));
        metrics::counter!("loadgen_pageviews_delivered_total").absolute(g(&c.delivered));
        metrics::counter!("loadgen_pageviews_failed_total").absolute(g(&c.delivery_failures));
        for k in MutationKind::ALL {
            metrics::counter!("loadgen_changes_total", "kind" => k.name())
                .absolute(g(c.mutation(k)));
        }
        metrics::counter!("loadgen_changes_skipped_total").absolute(g(&c.mutations_skipped));
        metrics::counter!("loadgen_mysql_retries_total").absolute(g(&c.mysql_retries));
    }
}
