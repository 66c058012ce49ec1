//! debezium-avro: Debezium MySQL change events in Avro, independent of the
//! connector that reads the rows. Given a table's columns ([`TableSchema`])
//! and rows of normalised values ([`Cell`]), it builds the key and value
//! schemas (JSON, as Kafka Connect's AvroConverter registers them) and writes
//! the key and envelope datums, the schema-change and heartbeat records
//! and the primary-key-change header texts, byte for byte as Debezium 3.6 with
//! Confluent's AvroData does (compared record for record against recorded
//! Debezium output by the workspace's golden test).
//!
//! What it does not do: read a database, talk to Kafka or a registry, or
//! count metrics. Whatever the format cannot represent per row is either an
//! [`EnvelopeError`] or, where Debezium keeps going, a [`Replaced`] value
//! returned in [`Encoded`] for the caller to count and report. (The one log
//! line of its own: a column default the schema cannot carry, warned about
//! through `tracing` once when the table's codec is built.)
//!
//! Modules and their dependencies inside the crate (each arrow is a
//! `use crate::` path; there are no cycles, and nothing here depends on a
//! connector crate):
//! - [`calendar`], [`cell`], [`table`], [`options`], [`error`], `encode`
//!   (Avro primitives), `json` (schema JSON writer): none
//! - [`charset`] -> table
//! - [`header_text`] -> calendar
//! - [`source`] -> encode, json
//! - `column` -> calendar, cell, charset, encode, error, header_text, json,
//!   options, table
//! - `mapping` (column mappers) -> cell, column, encode, options, table
//! - [`envelope`] -> cell, column, encode, error, header_text, json,
//!   mapping, options, source, table, transaction
//! - [`schema_change`] -> encode, json, source
//! - [`heartbeat`] -> encode, json, source
//! - [`transaction`] -> encode, json, source
//! - [`unwrap`] (ExtractNewRecordState) -> cell, encode, envelope, error,
//!   json, source, transaction

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may; documented exceptions carry an
// `#[allow]` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod calendar;
pub mod cell;
pub mod charset;
mod column;
mod encode;
pub mod envelope;
pub mod error;
pub mod header_text;
pub mod heartbeat;
mod json;
mod mapping;
pub mod options;
pub mod schema_change;
pub mod source;
pub mod table;
pub mod transaction;
pub mod unwrap;

pub use cell::{canonical_decimal, into_canonical_decimal, Cell, DateTimeParts};
pub use column::Replaced;
pub use envelope::{Encoded, Op, TableCodec};
pub use error::EnvelopeError;
pub use options::{
    BigintUnsigned, BinaryHandling, BooleanConverters, ColumnFilter, ColumnMappers, ColumnMapping,
    ConverterConfig, DecimalHandling, HashAlgorithm, HashVersion, MapperSelector,
    MessageKeyColumns, TimePrecision,
};
pub use source::{SnapshotMarker, SourceInfo};
pub use table::{ColumnSchema, TableSchema, CURRENT_TIMESTAMP_DEFAULT};
pub use transaction::TransactionBlock;
