//! Record keys as header text: what Kafka Connect's `SimpleHeaderConverter`
//! writes for Debezium's `__debezium.oldkey` / `__debezium.newkey` headers
//! (a Connect `Struct` through `Values.convertToString`, UTF-8).
//!
//! The rules, from `org.apache.kafka.connect.data.Values.append`:
//! - a struct is `{` + `"field":value` joined by `,` + `}`, fields in schema
//!   order, names quoted;
//! - numbers print with Java's `toString` (`Short`, `Integer`, `Long`:
//!   decimal; `Float`/`Double`: shortest digits, plain for 1e-3 <= |v| < 1e7,
//!   else `d.dddE±n`; `BigDecimal`: plain unless the adjusted exponent is
//!   below -6, then `dE-n`), booleans as `true`/`false`;
//! - strings quoted, with only `\` and `"` escaped (a backslash each);
//! - bytes as quoted standard Base64 with padding;
//! - `java.util.Date` (Connect's Date/Time/Timestamp logical types, used in
//!   `time.precision.mode=connect`) unquoted through `SimpleDateFormat` in the
//!   JVM zone (UTC here): `HH:mm:ss.SSS'Z'` when the instant is before
//!   1970-01-02, `yyyy-MM-dd` when it is a whole day, else
//!   `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`. (Java formats instants before 1582-10-15
//!   in the Julian calendar; such keys differ here.)

use crate::calendar::civil_from_days;

const DAY_MS: i64 = 86_400_000;

/// Appends `s` quoted as `Values.append` quotes an embedded string.
pub(crate) fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Standard Base64 with padding (`java.util.Base64.getEncoder()`).
pub fn base64(bytes: &[u8], out: &mut String) {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
}

/// Java's `Double.toString` / `Float.toString` layout of the shortest
/// round-trip digits of a value (`sci`: Rust's `{:e}` text of it).
fn java_floating(sci: &str, out: &mut String) {
    match sci {
        "NaN" => return out.push_str("NaN"),
        "inf" => return out.push_str("Infinity"),
        "-inf" => return out.push_str("-Infinity"),
        _ => {}
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if negative {
        out.push('-');
    }
    if digits.bytes().all(|b| b == b'0') {
        return out.push_str("0.0");
    }
    if (-3..7).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        out.push('E');
        out.push_str(&exp.to_string());
    }
}

pub(crate) fn java_double(v: f64, out: &mut String) {
    java_floating(&format!("{v:e}"), out);
}

pub(crate) fn java_float(v: f32, out: &mut String) {
    java_floating(&format!("{v:e}"), out);
}

/// `BigDecimal.toString` of canonical decimal text (`-123.4500`).
pub(crate) fn big_decimal(text: &str, out: &mut String) {
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int_part, frac) = body.split_once('.').unwrap_or((body, ""));
    let scale = frac.len() as i64;
    let all: String = format!("{int_part}{frac}");
    let unscaled = all.trim_start_matches('0');
    let unscaled = if unscaled.is_empty() { "0" } else { unscaled };
    let adjusted = unscaled.len() as i64 - 1 - scale;
    if negative && unscaled != "0" {
        out.push('-');
    }
    if adjusted >= -6 {
        // Plain: the integer part without redundant zeros, then the fraction.
        let int_trimmed = int_part.trim_start_matches('0');
        out.push_str(if int_trimmed.is_empty() {
            "0"
        } else {
            int_trimmed
        });
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    } else {
        out.push_str(&unscaled[..1]);
        if unscaled.len() > 1 {
            out.push('.');
            out.push_str(&unscaled[1..]);
        }
        out.push('E');
        out.push_str(&adjusted.to_string());
    }
}

fn two(v: i64, out: &mut String) {
    out.push(char::from(b'0' + (v / 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

fn time_of_day(ms: i64, out: &mut String) {
    let ms = ms.rem_euclid(DAY_MS);
    two(ms / 3_600_000, out);
    out.push(':');
    two(ms / 60_000 % 60, out);
    out.push(':');
    two(ms / 1000 % 60, out);
    out.push('.');
    let frac = ms % 1000;
    out.push(char::from(b'0' + (frac / 100) as u8));
    two(frac % 100, out);
    out.push('Z');
}

fn date(ms: i64, out: &mut String) {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    if y < 0 {
        out.push('-');
    }
    let y = y.abs();
    out.push_str(&format!("{y:04}"));
    out.push('-');
    two(i64::from(m), out);
    out.push('-');
    two(i64::from(d), out);
}

/// `Values.dateFormatFor(value).format(value)` for epoch milliseconds, UTC.
pub(crate) fn java_date(ms: i64, out: &mut String) {
    if ms < DAY_MS {
        time_of_day(ms, out);
    } else if ms % DAY_MS == 0 {
        date(ms, out);
    } else {
        date(ms, out);
        out.push('T');
        time_of_day(ms, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn strings_escape_only_backslash_and_quote() {
        assert_eq!(s(|o| quoted(r#"a"b\c'd"#, o)), r#""a\"b\\c'd""#);
        assert_eq!(s(|o| quoted("é\n", o)), "\"é\n\"");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(s(|o| base64(b"", o)), "");
        assert_eq!(s(|o| base64(b"f", o)), "Zg==");
        assert_eq!(s(|o| base64(b"fo", o)), "Zm8=");
        assert_eq!(s(|o| base64(b"foo", o)), "Zm9v");
        assert_eq!(s(|o| base64(&[0xff, 0xfe, 0x00, 0x01], o)), "//4AAQ==");
    }

    #[test]
    fn floating_like_java() {
        assert_eq!(s(|o| java_double(1.0, o)), "1.0");
        assert_eq!(s(|o| java_double(-2.5, o)), "-2.5");
        assert_eq!(s(|o| java_double(100.0, o)), "100.0");
        assert_eq!(s(|o| java_double(1234567.0, o)), "1234567.0");
        assert_eq!(s(|o| java_double(1e7, o)), "1.0E7");
        assert_eq!(s(|o| java_double(12345678.9, o)), "1.23456789E7");
        assert_eq!(s(|o| java_double(0.001, o)), "0.001");
        assert_eq!(s(|o| java_double(0.0001, o)), "1.0E-4");
        assert_eq!(s(|o| java_double(0.0, o)), "0.0");
        assert_eq!(s(|o| java_float(0.1, o)), "0.1");
        assert_eq!(s(|o| java_float(3.4e38, o)), "3.4E38");
    }

    #[test]
    fn big_decimal_like_java() {
        assert_eq!(s(|o| big_decimal("123.45", o)), "123.45");
        assert_eq!(s(|o| big_decimal("-0.50", o)), "-0.50");
        assert_eq!(s(|o| big_decimal("-0.00", o)), "0.00");
        assert_eq!(s(|o| big_decimal("42", o)), "42");
        assert_eq!(s(|o| big_decimal("0.000001", o)), "0.000001");
        assert_eq!(s(|o| big_decimal("0.0000001", o)), "1E-7");
        assert_eq!(s(|o| big_decimal("0.00000012", o)), "1.2E-7");
        assert_eq!(s(|o| big_decimal("0.00000000", o)), "0E-8");
    }

    #[test]
    fn dates_like_simple_date_format() {
        assert_eq!(s(|o| java_date(0, o)), "00:00:00.000Z");
        assert_eq!(s(|o| java_date(45_296_789, o)), "12:34:56.789Z");
        assert_eq!(s(|o| java_date(-1000, o)), "23:59:59.000Z");
        assert_eq!(s(|o| java_date(DAY_MS, o)), "1970-01-02");
        assert_eq!(s(|o| java_date(19_723 * DAY_MS, o)), "2024-01-01");
        assert_eq!(
            s(|o| java_date(19_723 * DAY_MS + 1, o)),
            "2024-01-01T00:00:00.001Z"
        );
    }
}
