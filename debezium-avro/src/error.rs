//! [`EnvelopeError`]: why a table cannot get a codec or a row cannot be encoded.
//!
//! Invariant: every variant is definite and names the table (and column): the
//! same schema or row fails the same way again, so a caller reports or skips,
//! never retries.

/// Errors building a codec or encoding a row. All are definite: the table or the
/// row cannot be represented; fix the schema/config, or skip the table.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The column's type, charset or default cannot be mapped.
    #[error("table {table}, column {column}: {detail}")]
    Unsupported {
        table: String,
        column: String,
        detail: String,
    },
    /// A row value does not fit the column's schema (decoded under another schema?).
    #[error("table {table}, column {column}: {detail}")]
    Value {
        table: String,
        column: String,
        detail: String,
    },
    /// The row has a different number of cells than the table has columns.
    #[error("table {table}: row has {got} values, the schema has {expected} columns")]
    RowWidth {
        table: String,
        expected: usize,
        got: usize,
    },
}
