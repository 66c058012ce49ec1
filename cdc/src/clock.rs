//! The wall clock, for the times records carry (`ts_ms` of snapshot reads and
//! schema changes, the source lag): one reading function so every stage
//! means the same thing by "now".
//!
//! Invariant: never fails; a clock before 1970 reads as 0 (the epoch) rather
//! than stopping the connector over a timestamp.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
