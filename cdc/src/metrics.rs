//! The connector's metrics (exported by `pipeline::telemetry` on `/metrics`).
//!
//! Names are stable (dashboards and alerts depend on them); every record that is
//! skipped is counted under `cdc_skipped_total{reason}` so nothing disappears
//! silently.

use crate::offsets::SourceOffset;

/// A record or event deliberately not written, by reason.
pub fn skipped(reason: &'static str) {
    metrics::counter!("cdc_skipped_total", "reason" => reason).increment(1);
}

/// A column value that cannot be represented and was written as null (or the
/// column's fallback) instead: counted per value under
/// `cdc_skipped_total{reason}`, and warned about at most once per
/// [`REPLACED_WARN_EVERY`] with the number of values since the last warning,
/// so a table full of such values cannot flood the log.
pub fn value_replaced(replaced: &debezium_avro::Replaced) {
    let debezium_avro::Replaced {
        reason,
        table,
        column,
        detail,
    } = replaced;
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARN_MS: AtomicU64 = AtomicU64::new(0);
    static SINCE_WARN: AtomicU64 = AtomicU64::new(0);
    skipped(reason);
    SINCE_WARN.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let last = LAST_WARN_MS.load(Ordering::Relaxed);
    if (last == 0 || now.saturating_sub(last) >= REPLACED_WARN_EVERY.as_millis() as u64)
        && LAST_WARN_MS
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let count = SINCE_WARN.swap(0, Ordering::Relaxed);
        tracing::warn!(
            table = table.as_str(),
            column = column.as_str(),
            reason = *reason,
            values = count,
            "{detail}"
        );
    }
}

/// At most one [`value_replaced`] warning per this period.
pub const REPLACED_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// An error by kind (the connector may recover from it).
pub fn error(kind: &'static str) {
    metrics::counter!("cdc_errors_total", "kind" => kind).increment(1);
}

/// How far the connector is behind the source (event header time).
pub fn lag_ms(ms: i64) {
    metrics::gauge!("cdc_source_lag_ms").set(ms.max(0) as f64);
}

/// Snapshot progress.
pub fn snapshot_rows(done: u64, estimated_total: u64) {
    metrics::gauge!("cdc_snapshot_rows").set(done as f64);
    metrics::gauge!("cdc_snapshot_rows_estimated_total").set(estimated_total as f64);
}

/// The stored (acknowledged) position: binlog file number and byte offset.
pub fn position(offset: &SourceOffset) {
    let file_number = offset
        .file
        .rsplit('.')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    metrics::gauge!("cdc_stored_binlog_file_number").set(file_number as f64);
    metrics::gauge!("cdc_stored_binlog_position").set(offset.pos as f64);
}

/// 1 while streaming from the binlog, 0 otherwise.
pub fn streaming(on: bool) {
    metrics::gauge!("cdc_streaming").set(if on { 1.0 } else { 0.0 });
}

/// `cdc_events_total{table,op}` handles of one table, resolved once: looking a
/// labelled counter up per record (owned label strings, hashing) costs more
/// than encoding the record.
pub struct EventCounters {
    create: metrics::Counter,
    update: metrics::Counter,
    delete: metrics::Counter,
    read: metrics::Counter,
    tombstone: metrics::Counter,
    truncate: metrics::Counter,
}

impl EventCounters {
    pub fn new(table: &str) -> Self {
        let counter = |op: &'static str| metrics::counter!("cdc_events_total", "table" => table.to_owned(), "op" => op);
        Self {
            create: counter("c"),
            update: counter("u"),
            delete: counter("d"),
            read: counter("r"),
            tombstone: counter("tombstone"),
            truncate: counter("t"),
        }
    }

    pub fn create(&self) -> &metrics::Counter {
        &self.create
    }

    pub fn update(&self) -> &metrics::Counter {
        &self.update
    }

    pub fn delete(&self) -> &metrics::Counter {
        &self.delete
    }

    pub fn read(&self) -> &metrics::Counter {
        &self.read
    }

    pub fn tombstone(&self) -> &metrics::Counter {
        &self.tombstone
    }

    pub fn truncate(&self) -> &metrics::Counter {
        &self.truncate
    }
}

impl std::fmt::Debug for EventCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCounters").finish_non_exhaustive()
    }
}

/// The last record of a transaction was acknowledged by Kafka: time since cdc
/// read its commit event (`cdc_read_to_ack_seconds`) and, when the source
/// recorded a microsecond commit time (MySQL 8 GTID events), since the commit
/// (`cdc_commit_to_ack_seconds`; header timestamps have 1 s resolution and
/// are not used).
pub fn transaction_acked(read: std::time::Instant, commit_us: Option<u64>) {
    metrics::histogram!("cdc_read_to_ack_seconds").record(read.elapsed().as_secs_f64());
    if let Some(commit_us) = commit_us {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        // A clock behind the source's is recorded as 0, not skipped: the
        // transaction was acknowledged.
        let seconds = now_us.saturating_sub(commit_us) as f64 / 1e6;
        metrics::histogram!("cdc_commit_to_ack_seconds").record(seconds);
    }
}
