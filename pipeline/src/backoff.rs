//! The one retry wait every service uses: exponential with jitter.
//!
//! The wait doubles from `initial` up to `max`, plus a random extra of up to a
//! quarter of it, so instances that lost the same server at the same moment
//! do not all come back in the same millisecond.

use std::time::Duration;

use rand::Rng;

/// Capped exponential backoff with jitter. [`Backoff::next_delay`] for loops
/// that keep their state here; [`Backoff::delay`] for loops that count their
/// own attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 10 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The wait before the next retry; each call doubles the base.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        with_jitter(base)
    }

    /// Back to the shortest wait (after a success that ends an outage).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The wait before retry `attempt` (0-based): `initial * 2^attempt`,
    /// capped at `max`, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        with_jitter(base)
    }
}

/// `base` plus up to a quarter of it.
fn with_jitter(base: Duration) -> Duration {
    let quarter = u64::try_from(base.as_millis() / 4).unwrap_or(u64::MAX);
    base + Duration::from_millis(rand::thread_rng().gen_range(0..=quarter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, base_ms: u64) -> bool {
        d >= Duration::from_millis(base_ms) && d <= Duration::from_millis(base_ms + base_ms / 4)
    }

    #[test]
    fn doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for base in [100, 200, 400, 800, 1000, 1000] {
            let d = b.next_delay();
            assert!(within(d, base), "{d:?} not in [{base}, {base}*1.25]");
        }
        b.reset();
        assert!(within(b.next_delay(), 100));
    }

    #[test]
    fn attempt_based_delay_matches() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert!(within(b.delay(0), 100));
        assert!(within(b.delay(3), 800));
        assert!(within(b.delay(6), 5000));
        assert!(within(b.delay(u32::MAX), 5000));
    }

    #[test]
    fn jitter_varies() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let delays: std::collections::HashSet<Duration> = (0..50).map(|_| b.delay(0)).collect();
        assert!(delays.len() > 1, "no jitter in {delays:?}");
    }
}
