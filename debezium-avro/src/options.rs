//! The Debezium converter options the format depends on: `decimal.handling.mode`,
//! `time.precision.mode`, `bigint.unsigned.handling.mode`, `column.exclude.list`,
//! plus the topic prefix and `source.version`. The connector parses its
//! configuration into these; nothing here reads a configuration.
//!
//! Invariant: every option defaults to Debezium's default, so
//! `ConverterConfig { topic_prefix, connector_version, ..}` with defaults
//! encodes exactly what a default Debezium connector emits.

use regex::Regex;

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalHandling {
    #[default]
    Precise,
    Double,
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    #[default]
    AdaptiveTimeMicroseconds,
    Connect,
}

/// `bigint.unsigned.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BigintUnsigned {
    #[default]
    Long,
    Precise,
}

/// `column.exclude.list` (or its complement, `column.include.list`): columns
/// left out of change-event values. Patterns match the whole
/// `<db>.<table>.<column>` name, like the connector's table filter.
///
/// Debezium applies it to the value schema and values only: a primary-key
/// column always stays in the record key (`TableSchemaBuilder` adds key
/// fields before and regardless of the column filter), so keys, and with them
/// partitioning and compaction, do not change when a key column is excluded.
#[derive(Debug, Clone, Default)]
pub struct ColumnFilter {
    patterns: Vec<Regex>,
    /// `column.include.list`: the patterns name the columns kept, not the
    /// ones left out (Debezium refuses both lists at once, and so does the
    /// connector's configuration).
    include: bool,
}

impl ColumnFilter {
    /// From compiled `column.exclude.list` patterns. Debezium anchors them and
    /// matches case-insensitively: compile them that way (the connector's
    /// configuration does).
    pub fn new(exclude: Vec<Regex>) -> Self {
        Self {
            patterns: exclude,
            include: false,
        }
    }

    /// From compiled `column.include.list` patterns: every other column of
    /// every table is left out of values.
    pub fn including(include: Vec<Regex>) -> Self {
        Self {
            patterns: include,
            include: true,
        }
    }

    /// Whether no column is ever excluded (the common case: no work per table).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `database.table.column` is left out of values.
    pub fn excludes(&self, database: &str, table: &str, column: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let full = format!("{database}.{table}.{column}");
        self.patterns.iter().any(|r| r.is_match(&full)) != self.include
    }
}

/// Same patterns, same filter: lets [`ConverterConfig`] stay `Eq`.
impl PartialEq for ColumnFilter {
    fn eq(&self, other: &Self) -> bool {
        self.include == other.include
            && self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|(a, b)| a.as_str() == b.as_str())
    }
}

impl Eq for ColumnFilter {}

/// Converter settings, the Debezium options of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConverterConfig {
    /// `topic.prefix`, also `source.name`.
    pub topic_prefix: String,
    pub decimal_handling: DecimalHandling,
    pub time_precision: TimePrecision,
    pub bigint_unsigned: BigintUnsigned,
    /// `source.version`.
    pub connector_version: String,
    /// `column.exclude.list` / `column.include.list`: columns left out of the
    /// value schema and values (still in the key when part of the primary
    /// key, as in Debezium).
    pub excluded_columns: ColumnFilter,
}
