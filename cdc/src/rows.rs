//! Row values: turn what the server sends (binlog row images, snapshot SELECT
//! rows) into [`Cell`]s, one per column in table order. The cell model and its
//! invariants are `debezium_avro::cell`'s; this module is the MySQL side of it.
//!
//! Invariants:
//! - Both paths produce IDENTICAL cells for the same stored data, whatever the
//!   transport representation (see `debezium_avro::Cell` for the normal form);
//!   binlog values are reinterpreted with the table's signedness when the
//!   event had no signedness metadata; YEAR keeps Debezium's per-phase zero
//!   year (`debezium_year`).
//! - Strings stay raw bytes in the column charset: they are decoded once, at encode
//!   time, by the codec that knows the charset.
//! - Binary JSON is printed by [`crate::jsonb`]; partial JSON updates are refused
//!   ([`DecodeError::JsonDiff`]), never guessed.
//! - Snapshot rows may come from the binary (`exec`) or the text (`query`) protocol;
//!   the snapshot session must run with `time_zone='+00:00'` so TIMESTAMP values
//!   are UTC, and with utf8mb4 (or utf8mb3) results, mysql_async's default: text
//!   of latin1/ascii columns then arrives converted to UTF-8 and is turned back
//!   into the column charset's bytes, like the binlog's
//!   (`debezium_avro::charset::to_column_charset`). Do not set
//!   `character_set_results = NULL` (MariaDB then still labels results
//!   utf8mb4). Prefer the binary protocol: the text protocol prints FLOAT with
//!   6 significant digits on MariaDB, which loses precision.

use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_async::{Row, Value};
use mysql_common::io::ParseBuf;

use debezium_avro::calendar::days_from_civil;
use debezium_avro::charset::{label_text, to_column_charset};
use debezium_avro::{into_canonical_decimal, Cell, ColumnSchema, DateTimeParts, TableSchema};

use crate::jsonb;

/// Errors while decoding a row. All are definite for the row at hand: the data or
/// the schema used to read it is wrong, and retrying the same event cannot help.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The row image does not have the schema's column count: the event was written
    /// under another schema (rebuild it with `TableSchema::from_table_map`) or the
    /// server does not log full row images (set `binlog_row_image=FULL`).
    #[error("row of {table} has {got} columns, its schema has {expected} (binlog_row_image must be FULL; the table may have changed)")]
    ColumnCount {
        table: String,
        expected: usize,
        got: usize,
    },
    /// A value does not fit its column's type.
    #[error("column {table}.{column} ({column_type}): {detail}")]
    Value {
        table: String,
        column: String,
        column_type: String,
        detail: String,
    },
    /// A partial JSON update (`binlog_row_value_options=PARTIAL_JSON`) cannot be
    /// turned into a full after-image.
    #[error("column {table}.{column}: partial JSON update in the binlog; set binlog_row_value_options='' on the server")]
    JsonDiff { table: String, column: String },
}

/// Decodes one binlog row image (before or after) of `table`.
pub fn row_from_binlog(row: BinlogRow, table: &TableSchema) -> Result<Vec<Cell>, DecodeError> {
    if row.len() != table.columns.len() {
        return Err(DecodeError::ColumnCount {
            table: table.qualified_name(),
            expected: table.columns.len(),
            got: row.len(),
        });
    }
    let mut cells = Vec::with_capacity(row.len());
    for (value, col) in row.unwrap().into_iter().zip(&table.columns) {
        cells.push(cell_from_binlog(value, col, table)?);
    }
    Ok(cells)
}

fn cell_from_binlog(
    value: BinlogValue<'_>,
    col: &ColumnSchema,
    table: &TableSchema,
) -> Result<Cell, DecodeError> {
    let cell = match value {
        BinlogValue::Value(v) => binlog_cell(v, col),
        // Debezium's binlog client prints binary JSON its own way (compact,
        // Java number formats): see `crate::jsonb`.
        BinlogValue::Jsonb(j) => {
            let mut text = String::new();
            jsonb::write(&j, &mut text).map(|()| Cell::Json(text))
        }
        BinlogValue::JsonDiff(_) => {
            return Err(DecodeError::JsonDiff {
                table: table.qualified_name(),
                column: col.name.clone(),
            })
        }
    };
    cell.map_err(|detail| value_error(table, col, detail))
}

/// Why a rows event could not be turned into rows.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// Definite: the event's bytes do not parse.
    #[error("{0}")]
    Parse(std::io::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One row change: before and after images, `None` when the kind has none
/// (or when the row was skipped).
pub type RowImages = (Option<Vec<Cell>>, Option<Vec<Cell>>);

/// Decodes the rows of a rows event, leaving the first `skip` rows `(None,
/// None)` (parsed, not converted).
///
/// The common case (every column in each image, no partial JSON) is parsed
/// here with the column layout computed at most once per event: mysql_common's
/// per-row parser recomputes it and builds a named `Column` per value, which
/// was a third of the streaming CPU. Anything else goes through mysql_common;
/// both read values with mysql_common's own `BinlogValue` parser.
pub fn decode_rows(
    data: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    table: &TableSchema,
    skip: usize,
) -> Result<Vec<RowImages>, RowsError> {
    decode_rows_in(data, tme, None, table, skip)
}

/// A table map's column layout (type, metadata, signedness of each column),
/// derived once per table map: streaming sees the same map before every
/// rows event of a table, and deriving it per event was a tenth of the
/// connector thread's CPU at 100 transactions/s.
#[derive(Debug, Clone)]
pub struct ColumnLayout(Vec<(ColumnType, Box<[u8]>, bool)>);

impl ColumnLayout {
    /// The layout of every column of `tme`, or why it cannot be read.
    pub fn of(tme: &TableMapEvent<'_>) -> std::io::Result<Self> {
        let n = tme.columns_count() as usize;
        Ok(Self(
            layout(tme, n)?
                .into_iter()
                .map(|(ty, meta, unsigned)| (ty, Box::from(meta), unsigned))
                .collect(),
        ))
    }
}

/// [`decode_rows`] with `tme`'s layout derived beforehand (`None`: derive
/// it here). `layout` must be `ColumnLayout::of(tme)`.
pub fn decode_rows_in(
    data: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    layout: Option<&ColumnLayout>,
    table: &TableSchema,
    skip: usize,
) -> Result<Vec<RowImages>, RowsError> {
    let n = data.num_columns() as usize;
    let fast = !matches!(data, RowsEventData::PartialUpdateRowsEvent(_))
        && n == table.columns.len()
        && n as u64 == tme.columns_count()
        && data
            .columns_before_image()
            .is_none_or(|c| c.count_ones() == n && c.iter().take(n).all(|b| *b))
        && data
            .columns_after_image()
            .is_none_or(|c| c.count_ones() == n && c.iter().take(n).all(|b| *b));
    if !fast {
        let mut out = Vec::new();
        for (i, row) in data.rows(tme).enumerate() {
            let (before, after) = row.map_err(RowsError::Parse)?;
            if i < skip {
                out.push((None, None));
                continue;
            }
            let before = before.map(|r| row_from_binlog(r, table)).transpose()?;
            let after = after.map(|r| row_from_binlog(r, table)).transpose()?;
            out.push((before, after));
        }
        return Ok(out);
    }
    let derived;
    let layout: &[(ColumnType, Box<[u8]>, bool)] = match layout {
        Some(l) => &l.0,
        None => {
            derived = ColumnLayout::of(tme).map_err(RowsError::Parse)?;
            &derived.0
        }
    };
    let has_before = data.columns_before_image().is_some();
    let has_after = data.columns_after_image().is_some();
    let mut buf = ParseBuf(data.rows_data());
    let mut out = Vec::new();
    while !buf.is_empty() {
        let convert = out.len() >= skip;
        let before = if has_before {
            image(&mut buf, layout, table, convert)?
        } else {
            None
        };
        let after = if has_after {
            image(&mut buf, layout, table, convert)?
        } else {
            None
        };
        out.push((before, after));
    }
    Ok(out)
}

/// (type, metadata, unsigned) of each column, as mysql_common's row parser
/// derives them from the table map.
fn layout<'t>(
    tme: &'t TableMapEvent<'_>,
    n: usize,
) -> std::io::Result<Vec<(ColumnType, &'t [u8], bool)>> {
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
    let mut signedness = meta.iter_signedness();
    (0..n)
        .map(|i| {
            let ty = match tme.get_column_type(i) {
                Ok(Some(ty)) => ty,
                Ok(None) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "No column type",
                    ))
                }
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            };
            let unsigned = ty
                .is_numeric_type()
                .then(|| signedness.next())
                .flatten()
                .unwrap_or_default();
            Ok((ty, tme.get_column_metadata(i).unwrap_or(&[]), unsigned))
        })
        .collect()
}

/// One row image: null bitmap, then the non-null values.
fn image<'b>(
    buf: &mut ParseBuf<'b>,
    layout: &'b [(ColumnType, Box<[u8]>, bool)],
    table: &TableSchema,
    convert: bool,
) -> Result<Option<Vec<Cell>>, RowsError> {
    let eof = || {
        RowsError::Parse(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "rows event ends inside a row",
        ))
    };
    let nulls = buf.checked_eat(layout.len().div_ceil(8)).ok_or_else(eof)?;
    let mut cells = Vec::with_capacity(if convert { layout.len() } else { 0 });
    for (i, ((ty, meta, unsigned), col)) in layout.iter().zip(&table.columns).enumerate() {
        let (ty, unsigned) = (*ty, *unsigned);
        let value = if nulls[i / 8] & (1 << (i % 8)) != 0 {
            BinlogValue::Value(Value::NULL)
        } else if ty == ColumnType::MYSQL_TYPE_NEWDECIMAL {
            BinlogValue::Value(Value::Bytes(decimal_text(buf, meta)?))
        } else {
            buf.parse::<BinlogValue<'b>>((ty, &**meta, unsigned, false))
                .map_err(RowsError::Parse)?
        };
        if convert {
            cells.push(cell_from_binlog(value, col, table)?);
        }
    }
    Ok(convert.then_some(cells))
}

/// Bytes of a DECIMAL's leading or trailing group of `n` digits (n < 9).
const DECIMAL_GROUP_BYTES: [usize; 9] = [0, 1, 1, 2, 2, 3, 3, 4, 4];

/// A binlog DECIMAL (`meta`: precision, scale), read as MySQL writes it
/// (`decimal2bin`: groups of 9 digits in 4 big-endian bytes, the partial
/// groups at both ends in fewer, every byte inverted when negative, then the
/// first bit flipped), printed straight into the canonical text that
/// [`debezium_avro::Cell::Decimal`] holds. mysql_common reads it into a
/// `Decimal` and prints that through `fmt`, which cost a backlog of purchases
/// about 3% of the connector's CPU; its reading is the reference of the
/// equivalence test below.
fn decimal_text(buf: &mut ParseBuf<'_>, meta: &[u8]) -> Result<Vec<u8>, RowsError> {
    let invalid =
        |what: String| RowsError::Parse(std::io::Error::new(std::io::ErrorKind::InvalidData, what));
    let (precision, scale) = match meta {
        [precision, scale, ..] if scale <= precision && *precision > 0 => {
            (usize::from(*precision), usize::from(*scale))
        }
        _ => {
            return Err(invalid(format!(
                "DECIMAL column metadata {meta:?} is not (precision, scale)"
            )))
        }
    };
    let (intg_full, prefix) = ((precision - scale) / 9, (precision - scale) % 9);
    let (frac_full, suffix) = (scale / 9, scale % 9);
    let size =
        DECIMAL_GROUP_BYTES[prefix] + 4 * (intg_full + frac_full) + DECIMAL_GROUP_BYTES[suffix];
    let raw = buf.checked_eat(size).ok_or_else(|| {
        RowsError::Parse(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "rows event ends inside a DECIMAL",
        ))
    })?;
    let negative = raw[0] & 0x80 == 0;
    let mask = if negative { 0xff } else { 0 };
    let mut groups = raw.iter().enumerate().map(|(i, b)| {
        let b = b ^ mask;
        if i == 0 {
            b ^ 0x80
        } else {
            b
        }
    });
    let mut group = |bytes: usize| -> u32 {
        groups
            .by_ref()
            .take(bytes)
            .fold(0u32, |x, b| x << 8 | u32::from(b))
    };
    let mut out = Vec::with_capacity(precision + 3);
    if negative {
        out.push(b'-');
    }
    let mut nonzero = false;
    let int_groups = std::iter::once(DECIMAL_GROUP_BYTES[prefix])
        .filter(|&bytes| bytes > 0)
        .chain(std::iter::repeat_n(4, intg_full));
    for (k, bytes) in int_groups.enumerate() {
        let x = group(bytes);
        let width = if k == 0 && prefix > 0 { prefix } else { 9 };
        if nonzero {
            push_digits(&mut out, x, width);
        } else if x != 0 {
            push_digits(&mut out, x, 1);
            nonzero = true;
        }
    }
    if !nonzero {
        out.push(b'0');
    }
    if scale > 0 {
        out.push(b'.');
        for _ in 0..frac_full {
            let x = group(4);
            nonzero |= x != 0;
            push_digits(&mut out, x, 9);
        }
        if suffix > 0 {
            let x = group(DECIMAL_GROUP_BYTES[suffix]);
            nonzero |= x != 0;
            push_digits(&mut out, x, suffix);
        }
    }
    if negative && !nonzero {
        // No negative zero in the canonical text.
        out.remove(0);
    }
    Ok(out)
}

/// `x` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut Vec<u8>, x: u32, width: usize) {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut rest = x;
    while rest > 0 || n < width {
        digits[n] = b'0' + (rest % 10) as u8;
        rest /= 10;
        n += 1;
    }
    out.extend(digits[..n].iter().rev());
}

/// Decodes one snapshot SELECT row (all columns, table order) of `table`.
pub fn row_from_snapshot(row: Row, table: &TableSchema) -> Result<Vec<Cell>, DecodeError> {
    if row.len() != table.columns.len() {
        return Err(DecodeError::ColumnCount {
            table: table.qualified_name(),
            expected: table.columns.len(),
            got: row.len(),
        });
    }
    let result_columns = row.columns();
    let mut cells = Vec::with_capacity(row.len());
    for ((value, col), rcol) in row
        .unwrap_raw()
        .into_iter()
        .zip(&table.columns)
        .zip(result_columns.iter())
    {
        let mut value = value.unwrap_or(Value::NULL);
        if let Value::Bytes(b) = &mut value {
            to_column_charset(b, col, rcol.character_set())
                .map_err(|detail| value_error(table, col, detail))?;
        }
        cells.push(snapshot_cell(value, col).map_err(|detail| value_error(table, col, detail))?);
    }
    Ok(cells)
}

/// A row of a snapshot SELECT the user wrote (`snapshot.select.statement.overrides`):
/// its columns are matched to the table's by name, ignoring case, as
/// Debezium matches them; a table column the SELECT leaves out is null, a
/// result column the table lacks is ignored.
pub fn row_from_snapshot_by_name(row: Row, table: &TableSchema) -> Result<Vec<Cell>, DecodeError> {
    let result_columns = row.columns();
    let mut values: Vec<Option<Value>> = row.unwrap_raw();
    let mut cells = Vec::with_capacity(table.columns.len());
    for col in &table.columns {
        let found = result_columns
            .iter()
            .position(|r| r.name_str().eq_ignore_ascii_case(&col.name));
        let Some(i) = found else {
            cells.push(Cell::Null);
            continue;
        };
        let mut value = values[i].take().unwrap_or(Value::NULL);
        if let Value::Bytes(b) = &mut value {
            to_column_charset(b, col, result_columns[i].character_set())
                .map_err(|detail| value_error(table, col, detail))?;
        }
        cells.push(snapshot_cell(value, col).map_err(|detail| value_error(table, col, detail))?);
    }
    Ok(cells)
}

fn value_error(table: &TableSchema, col: &ColumnSchema, detail: String) -> DecodeError {
    DecodeError::Value {
        table: table.qualified_name(),
        column: col.name.clone(),
        column_type: col.column_type.clone(),
        detail,
    }
}

fn int_width(data_type: &str) -> u32 {
    match data_type {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    }
}

fn unexpected(v: &Value) -> String {
    format!("unexpected value {v:?}")
}

fn text(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| format!("non-UTF-8 text {v:?}"))
}

/// Integer cell from any representation, with the column's signedness.
fn int_cell(v: Value, col: &ColumnSchema) -> Result<Cell, String> {
    let width = int_width(&col.data_type);
    if col.unsigned {
        let u = match v {
            Value::UInt(u) => u,
            // Without signedness metadata the binlog sign-extends: undo it.
            Value::Int(i) if width == 64 => i as u64,
            Value::Int(i) => (i as u64) & ((1u64 << width) - 1),
            Value::Bytes(b) => text(&b)?.trim().parse().map_err(|e| format!("{e}"))?,
            other => return Err(unexpected(&other)),
        };
        Ok(Cell::UInt(u))
    } else {
        let i = match v {
            // A binlog value read as unsigned (wrong signedness metadata): sign-extend.
            Value::Int(i) if width < 64 && i >= 1i64 << (width - 1) => i - (1i64 << width),
            Value::Int(i) => i,
            Value::UInt(u) => i64::try_from(u).map_err(|_| format!("{u} out of range"))?,
            Value::Bytes(b) => text(&b)?.trim().parse().map_err(|e| format!("{e}"))?,
            other => return Err(unexpected(&other)),
        };
        Ok(Cell::Int(i))
    }
}

fn year_cell(v: Value, binlog: bool) -> Result<Cell, String> {
    let y: i64 = match v {
        Value::Int(i) => i,
        Value::UInt(u) => u as i64,
        Value::Bytes(b) => text(&b)?.trim().parse().map_err(|e| format!("{e}"))?,
        other => return Err(unexpected(&other)),
    };
    Ok(Cell::Int(debezium_year(y, binlog)))
}

/// A YEAR as Debezium 3.6.3 emits it. Streaming: the binlog stores YEAR as
/// one byte `year - 1900` and the binlog client adds 1900 back, so the zero
/// year `0000` arrives as 1900 (Debezium's behaviour, kept). Snapshot: the
/// JDBC value goes through `BinlogValueConverters.convertYearToInt`, whose
/// two-digit-year adjuster (`adjustTemporal`) maps 0..=69 to 2000..=2069
/// and 70..=99 to 1970..=1999, so `0000` arrives as 2000.
fn debezium_year(y: i64, binlog: bool) -> i64 {
    match y {
        _ if binlog => y,
        0..=69 => y + 2000,
        70..=99 => y + 1900,
        _ => y,
    }
}

fn float_cell(v: Value) -> Result<Cell, String> {
    match v {
        Value::Float(f) => Ok(Cell::Float(f)),
        Value::Double(d) => Ok(Cell::Float(d as f32)),
        Value::Bytes(b) => text(&b)?
            .trim()
            .parse()
            .map(Cell::Float)
            .map_err(|e| format!("{e}")),
        other => Err(unexpected(&other)),
    }
}

fn double_cell(v: Value) -> Result<Cell, String> {
    match v {
        Value::Double(d) => Ok(Cell::Double(d)),
        Value::Float(f) => Ok(Cell::Double(f as f64)),
        Value::Bytes(b) => text(&b)?
            .trim()
            .parse()
            .map(Cell::Double)
            .map_err(|e| format!("{e}")),
        other => Err(unexpected(&other)),
    }
}

fn decimal_cell(v: Value, col: &ColumnSchema) -> Result<Cell, String> {
    let scale = col.numeric_scale.unwrap_or(0) as usize;
    let raw = match v {
        Value::Bytes(b) => String::from_utf8(b).map_err(|e| format!("{e}"))?,
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Double(d) => d.to_string(),
        other => return Err(unexpected(&other)),
    };
    into_canonical_decimal(raw, scale).map(Cell::Decimal)
}

fn bits_cell(v: Value, col: &ColumnSchema) -> Result<Cell, String> {
    let bits = col.numeric_precision.unwrap_or(1).max(1) as usize;
    let len = bits.div_ceil(8);
    let mut b = match v {
        Value::Bytes(b) => b,
        Value::Int(i) => (i as u64).to_be_bytes().to_vec(),
        Value::UInt(u) => u.to_be_bytes().to_vec(),
        other => return Err(unexpected(&other)),
    };
    // Normalise to exactly ceil(n/8) big-endian bytes.
    while b.len() > len && b[0] == 0 {
        b.remove(0);
    }
    if b.len() > len {
        return Err(format!("{} bytes for BIT({bits})", b.len()));
    }
    if b.len() < len {
        let mut padded = vec![0u8; len - b.len()];
        padded.extend_from_slice(&b);
        b = padded;
    }
    Ok(Cell::Bits(b))
}

fn enum_index_of(label: &[u8], col: &ColumnSchema) -> Result<u16, String> {
    if label.is_empty() {
        return Ok(0);
    }
    let label = label_text(label, col);
    col.enum_values
        .iter()
        .position(|l| l.eq_ignore_ascii_case(&label))
        .map(|p| p as u16 + 1)
        .ok_or_else(|| {
            format!(
                "{label:?} is not one of the ENUM labels {:?}",
                col.enum_values
            )
        })
}

fn set_bits_of(labels: &[u8], col: &ColumnSchema) -> Result<u64, String> {
    let mut bits = 0u64;
    if labels.is_empty() {
        return Ok(0);
    }
    for label in label_text(labels, col).split(',') {
        let p = col
            .enum_values
            .iter()
            .position(|l| l.eq_ignore_ascii_case(label))
            .ok_or_else(|| {
                format!(
                    "{label:?} is not one of the SET labels {:?}",
                    col.enum_values
                )
            })?;
        bits |= 1u64 << p;
    }
    Ok(bits)
}

fn is_zero_date(month: u8, day: u8) -> bool {
    month == 0 || day == 0
}

/// Parses `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`.
fn parse_datetime_text(s: &str) -> Result<DateTimeParts, String> {
    let bad = || format!("invalid date/time text {s:?}");
    let (date, time) = s.trim().split_once([' ', 'T']).unwrap_or((s.trim(), ""));
    let mut d = date.split('-');
    let y = d.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let m = d.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let dd = d.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    if time.is_empty() {
        return Ok((y, m, dd, 0, 0, 0, 0));
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let h = t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let mi = t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let sec = t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    Ok((y, m, dd, h, mi, sec, frac_micros(frac).ok_or_else(bad)?))
}

fn frac_micros(frac: &str) -> Option<u32> {
    if frac.is_empty() {
        return Some(0);
    }
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u32 = frac.parse().ok()?;
    Some(v * 10u32.pow(6 - frac.len() as u32))
}

fn date_cell(v: Value) -> Result<Cell, String> {
    let (year, month, day) = match v {
        Value::Date(y, m, d, ..) => (y, m, d),
        Value::Bytes(b) => {
            let (y, m, d, ..) = parse_datetime_text(text(&b)?)?;
            (y, m, d)
        }
        other => return Err(unexpected(&other)),
    };
    if is_zero_date(month, day) {
        return Ok(Cell::ZeroDate);
    }
    Ok(Cell::Date { year, month, day })
}

fn datetime_parts(v: Value) -> Result<DateTimeParts, String> {
    match v {
        Value::Date(y, m, d, h, mi, s, us) => Ok((y, m, d, h, mi, s, us)),
        Value::Bytes(b) => parse_datetime_text(text(&b)?),
        other => Err(unexpected(&other)),
    }
}

fn datetime_cell(v: Value) -> Result<Cell, String> {
    let parts = datetime_parts(v)?;
    if is_zero_date(parts.1, parts.2) {
        return Ok(Cell::ZeroDate);
    }
    Ok(Cell::datetime(parts))
}

fn time_cell(v: Value) -> Result<Cell, String> {
    match v {
        Value::Time(negative, days, h, m, s, us) => Ok(Cell::Time {
            negative,
            hours: days * 24 + h as u32,
            minutes: m,
            seconds: s,
            micros: us,
        }),
        Value::Bytes(b) => {
            let s = text(&b)?.trim();
            let bad = || format!("invalid TIME text {s:?}");
            let (negative, rest) = match s.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, s),
            };
            let (hms, frac) = rest.split_once('.').unwrap_or((rest, ""));
            let mut t = hms.split(':');
            let hours = t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let minutes = t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let seconds = t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let micros = frac_micros(frac).ok_or_else(bad)?;
            let zero = hours == 0 && minutes == 0 && seconds == 0 && micros == 0;
            Ok(Cell::Time {
                negative: negative && !zero,
                hours,
                minutes,
                seconds,
                micros,
            })
        }
        other => Err(unexpected(&other)),
    }
}

fn timestamp_cell(v: Value, binlog: bool) -> Result<Cell, String> {
    match v {
        // Binlog TIMESTAMP2: "<secs>[.<micros>]" since the epoch; old TIMESTAMP: Int.
        Value::Bytes(b) if binlog => {
            let s = text(&b)?;
            let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
            let secs: i64 = secs.parse().map_err(|e| format!("{e} in {s:?}"))?;
            let micros = frac_micros(frac).ok_or_else(|| format!("bad fraction in {s:?}"))?;
            if secs == 0 && micros == 0 {
                return Ok(Cell::ZeroDate);
            }
            Ok(Cell::TimestampUtc { secs, micros })
        }
        Value::Int(0) | Value::UInt(0) if binlog => Ok(Cell::ZeroDate),
        Value::Int(secs) if binlog => Ok(Cell::TimestampUtc { secs, micros: 0 }),
        Value::UInt(secs) if binlog => Ok(Cell::TimestampUtc {
            secs: secs as i64,
            micros: 0,
        }),
        other => {
            // Snapshot: a UTC wall-clock value (the session runs at +00:00).
            let (y, m, d, h, mi, s, us) = datetime_parts(other)?;
            if is_zero_date(m, d) {
                return Ok(Cell::ZeroDate);
            }
            let secs = days_from_civil(y as i64, m as u32, d as u32) * 86_400
                + h as i64 * 3600
                + mi as i64 * 60
                + s as i64;
            Ok(Cell::SnapshotTimestamp { secs, micros: us })
        }
    }
}

fn bytes_cell(v: Value, col: &ColumnSchema, binlog: bool) -> Result<Cell, String> {
    match v {
        Value::Bytes(mut b) => {
            // The binlog strips BINARY(n)'s trailing zero padding; the server returns it.
            if binlog && col.data_type == "binary" {
                if let Some(n) = col.char_max_length {
                    if (b.len() as u64) < n {
                        b.resize(n as usize, 0);
                    }
                }
            }
            Ok(Cell::Bytes(b))
        }
        Value::Int(i) => Ok(Cell::Bytes(i.to_string().into_bytes())),
        Value::UInt(u) => Ok(Cell::Bytes(u.to_string().into_bytes())),
        other => Err(unexpected(&other)),
    }
}

fn binlog_cell(v: Value, col: &ColumnSchema) -> Result<Cell, String> {
    if v == Value::NULL {
        return Ok(Cell::Null);
    }
    match col.data_type.as_str() {
        "enum" => match v {
            Value::Int(i) => Ok(Cell::EnumIndex(i as u16)),
            Value::UInt(u) => Ok(Cell::EnumIndex(u as u16)),
            Value::Bytes(b) => enum_index_of(&b, col).map(Cell::EnumIndex),
            other => Err(unexpected(&other)),
        },
        "set" => match v {
            // Little-endian bitmask of 1..8 bytes.
            Value::Bytes(b) => {
                let mut bits = 0u64;
                for (i, byte) in b.iter().take(8).enumerate() {
                    bits |= (*byte as u64) << (8 * i);
                }
                Ok(Cell::SetBits(bits))
            }
            Value::Int(i) => Ok(Cell::SetBits(i as u64)),
            Value::UInt(u) => Ok(Cell::SetBits(u)),
            other => Err(unexpected(&other)),
        },
        "json" => match v {
            // MariaDB logs JSON as its text.
            Value::Bytes(b) => String::from_utf8(b)
                .map(Cell::Json)
                .map_err(|e| format!("{e}")),
            other => Err(unexpected(&other)),
        },
        "timestamp" => timestamp_cell(v, true),
        "year" => year_cell(v, true),
        "tinyint" if col.unsigned => int_cell(v, col).map(binlog_unsigned_tinyint),
        _ => common_cell(v, col, true),
    }
}

/// An unsigned TINYINT read from the binlog as `Cell::Int` (0..=255), where
/// the snapshot's is `Cell::UInt`: the same number to every encoder but
/// one. Debezium's binlog client hands its TINYINT-to-boolean converter the
/// column's byte as a signed number (200 is -56, so false) while its JDBC
/// snapshot hands it 200 (true); `Kind::TinyBool` in debezium-avro reads an
/// `Int` as that signed byte and a `UInt` as the number, so each phase
/// matches Debezium's. Every other kind writes both variants alike.
fn binlog_unsigned_tinyint(cell: Cell) -> Cell {
    match cell {
        Cell::UInt(u) => Cell::Int(u as i64),
        other => other,
    }
}

/// A snapshot row's cells as the binlog would have given them (where the
/// two phases differ in a way an encoder sees): for comparing a table read
/// with streamed records (`cdc verify`).
pub fn as_streamed(cells: &[Cell], table: &TableSchema) -> Vec<Cell> {
    cells
        .iter()
        .zip(&table.columns)
        .map(|(cell, col)| match cell {
            // The binlog's TIMESTAMP cell: Debezium prints its fraction differently.
            Cell::SnapshotTimestamp { secs, micros } => Cell::TimestampUtc {
                secs: *secs,
                micros: *micros,
            },
            Cell::UInt(_) if col.data_type == "tinyint" && col.unsigned => {
                binlog_unsigned_tinyint(cell.clone())
            }
            other => other.clone(),
        })
        .collect()
}

fn snapshot_cell(v: Value, col: &ColumnSchema) -> Result<Cell, String> {
    if v == Value::NULL {
        return Ok(Cell::Null);
    }
    match col.data_type.as_str() {
        "enum" => match v {
            Value::Bytes(b) => enum_index_of(&b, col).map(Cell::EnumIndex),
            Value::Int(i) => Ok(Cell::EnumIndex(i as u16)),
            Value::UInt(u) => Ok(Cell::EnumIndex(u as u16)),
            other => Err(unexpected(&other)),
        },
        "set" => match v {
            Value::Bytes(b) => set_bits_of(&b, col).map(Cell::SetBits),
            Value::Int(i) => Ok(Cell::SetBits(i as u64)),
            Value::UInt(u) => Ok(Cell::SetBits(u)),
            other => Err(unexpected(&other)),
        },
        "json" => match v {
            Value::Bytes(b) => String::from_utf8(b)
                .map(Cell::Json)
                .map_err(|e| format!("{e}")),
            other => Err(unexpected(&other)),
        },
        "timestamp" => timestamp_cell(v, false),
        "year" => year_cell(v, false),
        _ => common_cell(v, col, false),
    }
}

fn common_cell(v: Value, col: &ColumnSchema, binlog: bool) -> Result<Cell, String> {
    match col.data_type.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => int_cell(v, col),
        "float" => float_cell(v),
        "double" | "real" => double_cell(v),
        "decimal" | "numeric" => decimal_cell(v, col),
        "bit" => bits_cell(v, col),
        "date" => date_cell(v),
        "datetime" => datetime_cell(v),
        "time" => time_cell(v),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "binary"
        | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            bytes_cell(v, col, binlog)
        }
        // MySQL's internal geometry (SRID, then WKB) and VECTOR's float32s,
        // as the binlog and the snapshot's SELECT both give them.
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" | "vector" => match v {
            Value::Bytes(b) => Ok(Cell::Bytes(b)),
            other => Err(unexpected(&other)),
        },
        other => Err(format!("unsupported column type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MySQL's `decimal2bin` of the digit groups `groups` (most significant
    /// first, each below 10^its width) of a DECIMAL(precision, scale).
    fn decimal_bin(precision: usize, scale: usize, negative: bool, groups: &[u32]) -> Vec<u8> {
        let intg = precision - scale;
        let widths = std::iter::once(intg % 9)
            .filter(|&w| w > 0)
            .chain(std::iter::repeat_n(9, intg / 9))
            .chain(std::iter::repeat_n(9, scale / 9))
            .chain(std::iter::once(scale % 9).filter(|&w| w > 0));
        let mut bytes: Vec<u8> = Vec::new();
        for (width, x) in widths.zip(groups) {
            let len = if width == 9 {
                4
            } else {
                DECIMAL_GROUP_BYTES[width]
            };
            bytes.extend(&x.to_be_bytes()[4 - len..]);
        }
        if negative {
            bytes.iter_mut().for_each(|b| *b = !*b);
        }
        bytes[0] ^= 0x80;
        bytes
    }

    /// What the connector made of a binlog DECIMAL before `decimal_text`:
    /// mysql_common's reading, printed, made canonical.
    fn mysql_common_text(bytes: &[u8], precision: usize, scale: usize) -> String {
        let d = mysql_common::binlog::decimal::Decimal::read_bin(bytes, precision, scale, false)
            .unwrap();
        debezium_avro::canonical_decimal(&d.to_string(), scale).unwrap()
    }

    #[test]
    fn binlog_decimals_read_as_mysql_common_reads_them() {
        // xorshift: reproducible without a dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for precision in 1..=65usize {
            for scale in 0..=precision.min(30) {
                for case in 0..12 {
                    let intg = precision - scale;
                    let widths: Vec<usize> = std::iter::once(intg % 9)
                        .filter(|&w| w > 0)
                        .chain(std::iter::repeat_n(9, intg / 9))
                        .chain(std::iter::repeat_n(9, scale / 9))
                        .chain(std::iter::once(scale % 9).filter(|&w| w > 0))
                        .collect();
                    // Zero, all nines, then random groups with runs of zeros
                    // (leading zero groups are where printing differs).
                    let groups: Vec<u32> = widths
                        .iter()
                        .map(|&w| {
                            let limit = 10u64.pow(w as u32);
                            match case {
                                0 => 0,
                                1 => (limit - 1) as u32,
                                _ if next() % 3 == 0 => 0,
                                _ => (next() % limit) as u32,
                            }
                        })
                        .collect();
                    let negative = case % 2 == 1;
                    let bytes = decimal_bin(precision, scale, negative, &groups);
                    let mut buf = ParseBuf(&bytes);
                    let ours = decimal_text(&mut buf, &[precision as u8, scale as u8]).unwrap();
                    assert!(
                        buf.is_empty(),
                        "DECIMAL({precision},{scale}) left bytes unread"
                    );
                    let expected = mysql_common_text(&bytes, precision, scale);
                    assert_eq!(
                        String::from_utf8(ours).unwrap(),
                        expected,
                        "DECIMAL({precision},{scale}) groups {groups:?} negative {negative}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
        // Metadata that cannot be a DECIMAL's, and a truncated value.
        for meta in [&[][..], &[5][..], &[2, 3][..], &[0, 0][..]] {
            assert!(decimal_text(&mut ParseBuf(&[0x80, 0, 0, 0]), meta).is_err());
        }
        assert!(decimal_text(&mut ParseBuf(&[0x80]), &[10, 2]).is_err());
    }

    #[test]
    fn zero_year_is_debeziums_per_phase() {
        // Streaming: the binlog client's 1900 + byte 0.
        assert_eq!(year_cell(Value::Int(1900), true).unwrap(), Cell::Int(1900));
        assert_eq!(year_cell(Value::Int(2155), true).unwrap(), Cell::Int(2155));
        // Snapshot: Debezium's two-digit-year adjuster turns 0 into 2000.
        assert_eq!(
            year_cell(Value::Bytes(b"0000".to_vec()), false).unwrap(),
            Cell::Int(2000)
        );
        assert_eq!(year_cell(Value::Int(0), false).unwrap(), Cell::Int(2000));
        assert_eq!(year_cell(Value::Int(1901), false).unwrap(), Cell::Int(1901));
    }

    #[test]
    fn text_and_binary_protocols_agree() {
        let col = |dt: &str, unsigned: bool| ColumnSchema {
            name: "c".into(),
            data_type: dt.into(),
            column_type: dt.into(),
            unsigned,
            numeric_scale: Some(2),
            numeric_precision: Some(10),
            ..ColumnSchema::default()
        };
        let pairs: Vec<(Value, Value, ColumnSchema)> = vec![
            (
                Value::Int(-5),
                Value::Bytes(b"-5".to_vec()),
                col("int", false),
            ),
            (
                Value::UInt(u64::MAX),
                Value::Bytes(b"18446744073709551615".to_vec()),
                col("bigint", true),
            ),
            (
                Value::Date(2024, 2, 29, 0, 0, 0, 0),
                Value::Bytes(b"2024-02-29".to_vec()),
                col("date", false),
            ),
            (
                Value::Date(2024, 2, 29, 1, 2, 3, 450_000),
                Value::Bytes(b"2024-02-29 01:02:03.45".to_vec()),
                col("datetime", false),
            ),
            (
                Value::Time(true, 1, 2, 3, 4, 5),
                Value::Bytes(b"-26:03:04.000005".to_vec()),
                col("time", false),
            ),
            (
                Value::Date(2023, 1, 11, 0, 34, 10, 0),
                Value::Bytes(b"2023-01-11 00:34:10".to_vec()),
                col("timestamp", false),
            ),
            (
                Value::Date(0, 0, 0, 0, 0, 0, 0),
                Value::Bytes(b"0000-00-00 00:00:00".to_vec()),
                col("timestamp", false),
            ),
        ];
        for (bin, txt, c) in pairs {
            assert_eq!(
                snapshot_cell(bin, &c).unwrap(),
                snapshot_cell(txt, &c).unwrap(),
                "{}",
                c.data_type
            );
        }
    }

    #[test]
    fn binlog_unsigned_reinterpretation() {
        let c = ColumnSchema {
            data_type: "tinyint".into(),
            unsigned: true,
            ..ColumnSchema::default()
        };
        // TINYINT keeps the number in the other variant (`binlog_unsigned_tinyint`).
        assert_eq!(binlog_cell(Value::Int(-1), &c).unwrap(), Cell::Int(255));
        let c = ColumnSchema {
            data_type: "smallint".into(),
            unsigned: true,
            ..ColumnSchema::default()
        };
        assert_eq!(binlog_cell(Value::Int(-1), &c).unwrap(), Cell::UInt(65535));
        let c = ColumnSchema {
            data_type: "timestamp".into(),
            ..ColumnSchema::default()
        };
        assert_eq!(
            binlog_cell(Value::Bytes(b"1673397250.5".to_vec()), &c).unwrap(),
            Cell::TimestampUtc {
                secs: 1_673_397_250,
                micros: 500_000
            }
        );
        assert_eq!(
            binlog_cell(Value::Bytes(b"0".to_vec()), &c).unwrap(),
            Cell::ZeroDate
        );
    }
}
