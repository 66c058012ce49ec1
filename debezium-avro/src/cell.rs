//! [`Cell`]: one column value as the connector hands it to the encoder,
//! normalised so that every path that reads a row (binlog row images, snapshot
//! SELECTs, tests) produces the same cell for the same stored data.
//!
//! Invariants (the producer of a cell guarantees them; the encoder relies on them):
//! - signed integer columns give `Int`, unsigned give `UInt`;
//! - DECIMAL gives canonical text ([`canonical_decimal`]) with exactly the
//!   column's scale digits;
//! - ENUM gives its 1-based index, SET its bitmask, BIT its big-endian bytes
//!   padded to `ceil(n/8)`;
//! - TIMESTAMP gives seconds+micros since the epoch (UTC), tagged by the phase
//!   it comes from (Debezium prints the two differently); YEAR an `Int`;
//! - any all-zero or zero-month/day date/datetime/timestamp gives `ZeroDate`;
//! - strings stay raw bytes in the column charset: they are decoded once, at
//!   encode time, by the codec that knows the charset (see `charset`).

/// One column value, normalised (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Canonical decimal text: optional `-`, integer digits, `.` and exactly `scale` digits.
    Decimal(String),
    /// Raw bytes; for text columns in the column's charset.
    Bytes(Vec<u8>),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    /// A TIMESTAMP from the binlog: Debezium prints its fraction with the
    /// column's fsp digits (`...:01.000Z` for TIMESTAMP(3)).
    TimestampUtc {
        secs: i64,
        micros: u32,
    },
    /// A TIMESTAMP read by the snapshot: Debezium (JDBC `Timestamp`,
    /// ISO_OFFSET_DATE_TIME) prints its fraction only as needed
    /// (`...:01Z`, `...:00.5Z`).
    SnapshotTimestamp {
        secs: i64,
        micros: u32,
    },
    Json(String),
    /// 1-based ENUM index; 0 is the empty "error" value.
    EnumIndex(u16),
    SetBits(u64),
    /// BIT(n) value, big-endian, `ceil(n/8)` bytes.
    Bits(Vec<u8>),
    /// `0000-00-00` style value of a DATE/DATETIME/TIMESTAMP column.
    ZeroDate,
}

/// Year, month, day, hour, minute, second, microseconds.
pub type DateTimeParts = (u16, u8, u8, u8, u8, u8, u32);

impl Cell {
    /// A DATETIME cell from its parts (year, month, day, hour, minute, second, µs).
    pub fn datetime(parts: DateTimeParts) -> Cell {
        let (year, month, day, hour, minute, second, micros) = parts;
        Cell::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        }
    }
}

/// Canonical decimal text with exactly `scale` fraction digits (see [`Cell::Decimal`]).
pub fn canonical_decimal(raw: &str, scale: usize) -> Result<String, String> {
    let raw = raw.trim();
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("invalid decimal text {raw:?}"));
    }
    let int_part = int_part.trim_start_matches('0');
    let mut out = String::with_capacity(int_part.len() + scale + 3);
    if negative {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if scale > 0 {
        out.push('.');
        let take = frac_part.len().min(scale);
        out.push_str(&frac_part[..take]);
        out.extend(std::iter::repeat_n('0', scale - take));
    }
    if negative && out[1..].bytes().all(|b| b == b'0' || b == b'.') {
        out.remove(0);
    }
    Ok(out)
}

/// [`canonical_decimal`] taking ownership: text that is already canonical
/// (what MySQL's binlog decimals print as, nearly always) is kept as it is,
/// without a second allocation and copy per value.
pub fn into_canonical_decimal(raw: String, scale: usize) -> Result<String, String> {
    if is_canonical_decimal(&raw, scale) {
        Ok(raw)
    } else {
        canonical_decimal(&raw, scale)
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]{scale})?`, the fraction present iff `scale > 0`,
/// and not a negative zero: exactly what [`canonical_decimal`] returns.
fn is_canonical_decimal(raw: &str, scale: usize) -> bool {
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((int_part, frac_part)) if scale > 0 => (int_part, frac_part),
        None if scale == 0 => (digits, ""),
        _ => return false,
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !int_part.is_empty()
        && digits_only(int_part)
        && (int_part == "0" || !int_part.starts_with('0'))
        && frac_part.len() == scale
        && digits_only(frac_part)
        && !(negative && int_part == "0" && frac_part.bytes().all(|b| b == b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_is_kept_and_the_rest_made_canonical() {
        for (raw, scale) in [
            ("0", 0),
            ("12", 0),
            ("-12", 0),
            ("0.00", 2),
            ("12.50", 2),
            ("-0.01", 2),
            ("123456789012.123456789", 9),
        ] {
            assert!(is_canonical_decimal(raw, scale), "{raw} scale {scale}");
            assert_eq!(into_canonical_decimal(raw.to_owned(), scale).unwrap(), raw);
        }
        // Not canonical: each is what canonical_decimal makes of it.
        for (raw, scale) in [
            ("-0.00", 2),
            ("-0", 0),
            ("0000000012.00", 2),
            ("012", 0),
            ("12.5", 2),
            ("12.500", 2),
            ("12", 2),
            ("12.0", 0),
            (".5", 1),
            ("+1", 0),
            ("1.", 0),
        ] {
            assert!(!is_canonical_decimal(raw, scale), "{raw} scale {scale}");
            assert_eq!(
                into_canonical_decimal(raw.to_owned(), scale),
                canonical_decimal(raw, scale),
                "{raw} scale {scale}"
            );
        }
        assert!(into_canonical_decimal("1x".to_owned(), 0).is_err());
        assert!(into_canonical_decimal(String::new(), 0).is_err());
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(canonical_decimal("5", 2).unwrap(), "5.00");
        assert_eq!(canonical_decimal("-0012.5", 2).unwrap(), "-12.50");
        assert_eq!(canonical_decimal("-0.00", 2).unwrap(), "0.00");
        assert_eq!(canonical_decimal(".5", 1).unwrap(), "0.5");
        assert_eq!(canonical_decimal("12", 0).unwrap(), "12");
        assert!(canonical_decimal("1e3", 0).is_err());
    }
}
