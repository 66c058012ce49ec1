//! The connector's metrics (exported by `pipeline::telemetry` on `/metrics`).
//!
//! Names are stable (dashboards and alerts depend on them); every record that is
//! skipped is counted under `cdc_skipped_total{reason}` so nothing disappears
//! silently.

use crate::offsets::SourceOffset;

/// One change event written (`op` is c/u/d/r, or `tombstone`).
pub fn event(table: &str, op: &'static str) {
    metrics::counter!("cdc_events_total", "table" => table.to_owned(), "op" => op).increment(1);
}

/// A record or event deliberately not written, by reason.
pub fn skipped(reason: &'static str) {
    metrics::counter!("cdc_skipped_total", "reason" => reason).increment(1);
}

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
