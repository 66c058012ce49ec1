//! What the encoder knows of a captured table: its columns in
//! `information_schema.COLUMNS` terms. The connector fills these from
//! `information_schema` or from a binlog TABLE_MAP event; this crate only
//! reads them.
//!
//! Invariants (the producer guarantees them):
//! - `columns` are in table (ordinal) order, the order of row images and of
//!   [`crate::Cell`] rows; `primary_key` holds indices into `columns`, in key order.
//! - `ColumnSchema::default` is normalised the way Debezium's DDL parser stores
//!   a default expression: the unquoted literal text; `CURRENT_TIMESTAMP`/`NOW()`
//!   become [`CURRENT_TIMESTAMP_DEFAULT`]; `NULL` defaults and other
//!   expressions become `None`. The codec turns that text into a typed schema
//!   default exactly like Debezium's `BinlogDefaultValueConverter`.
//! - `data_type` is lowercase (`information_schema.COLUMNS.DATA_TYPE` spelling).

/// One captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnSchema>,
    /// Column indices, key order. Empty: no primary key (records get a null key).
    pub primary_key: Vec<usize>,
}

/// One column, in `information_schema.COLUMNS` terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnSchema {
    pub name: String,
    /// `DATA_TYPE`, lowercase: `int`, `varchar`, `decimal`, `timestamp`, ...
    pub data_type: String,
    /// Full `COLUMN_TYPE`, e.g. `tinyint(1) unsigned`, `enum('a','b')`.
    pub column_type: String,
    pub unsigned: bool,
    pub nullable: bool,
    /// Normalised default literal (see the module docs).
    pub default: Option<String>,
    pub char_max_length: Option<u64>,
    pub numeric_precision: Option<u64>,
    pub numeric_scale: Option<u64>,
    pub datetime_precision: Option<u64>,
    /// Character set name (`utf8mb4`, `latin1`, `binary`, ...), for string, ENUM and SET.
    pub charset: Option<String>,
    /// ENUM / SET labels in declaration order.
    pub enum_values: Vec<String>,
}

impl TableSchema {
    /// `database.table`, for messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }
}

impl ColumnSchema {
    /// The declared length Debezium's DDL parser records for the column
    /// (`Column.length()`); `None` where it records none (-1).
    pub fn length(&self) -> Option<i32> {
        length_scale(&self.data_type, &self.column_type, self.enum_values.len()).0
    }

    /// The declared scale Debezium's DDL parser records (`Column.scale()`):
    /// the second number of `decimal(12,2)`.
    pub fn scale(&self) -> Option<i32> {
        length_scale(&self.data_type, &self.column_type, self.enum_values.len()).1
    }

    /// The type name Debezium's MySQL DDL parser records
    /// (`Column.typeName()`): `DATA_TYPE` upper-cased, ` UNSIGNED` appended
    /// for unsigned numbers (`INT UNSIGNED`, `TINYINT` for BOOLEAN).
    pub fn type_name(&self) -> String {
        let mut name = self.data_type.to_ascii_uppercase();
        if self.unsigned {
            name.push_str(" UNSIGNED");
        }
        name
    }
}

/// `(length, scale)` as Debezium's DDL parser records them from a column
/// type: the numbers in the parentheses of `COLUMN_TYPE` (`decimal(12,2)`,
/// `varchar(255)`, `datetime(3)`, `tinyint(1)`), ENUM 1 and SET the length
/// of all its `labels` joined by commas counting one per label (`2n - 1`).
pub fn length_scale(
    data_type: &str,
    column_type: &str,
    labels: usize,
) -> (Option<i32>, Option<i32>) {
    if data_type == "enum" {
        return (Some(1), None);
    }
    if data_type == "set" {
        return (Some((2 * labels as i32 - 1).max(0)), None);
    }
    let Some(args) = column_type
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(args, _)| args)
    else {
        return (None, None);
    };
    let mut parts = args.split(',').map(|p| p.trim().parse::<i32>().ok());
    (parts.next().flatten(), parts.next().flatten())
}

/// The epoch literal Debezium's DDL parser substitutes for `CURRENT_TIMESTAMP`.
pub const CURRENT_TIMESTAMP_DEFAULT: &str = "1970-01-01 00:00:00";
