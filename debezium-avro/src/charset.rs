//! Character sets: which MySQL charsets text columns may use, the bytes of
//! each, and the repair of snapshot text the server converted to the
//! connection charset.
//!
//! Invariants:
//! - A text [`crate::Cell`] holds the column's own bytes (what the binlog
//!   logs); decoding to UTF-8 happens once, in the encoder, by [`Charset`].
//! - MySQL `latin1` is Windows-1252 (0x80..=0x9F are the CP1252 specials), and
//!   [`decode_latin1`] / [`encode_charset`] are inverses on it.
//! - Unknown collation ids map to `unknown`, which the codec rejects for text
//!   columns rather than guessing.

use crate::table::ColumnSchema;

/// How text columns store their characters (the charsets the codec supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Latin1,
    Ascii,
}

/// Windows-1252 (MySQL's `latin1`) code points of bytes 0x80..=0x9F.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// Text of MySQL `latin1` (Windows-1252) bytes.
pub fn decode_latin1(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (0x80..0xa0).contains(&c) {
                CP1252_HIGH[(c - 0x80) as usize]
            } else {
                c as char
            }
        })
        .collect()
}

/// `s` as bytes of charset `cs`; an error names a character `cs` cannot hold.
pub fn encode_charset(s: &str, cs: Charset) -> Result<Vec<u8>, String> {
    match cs {
        Charset::Utf8 => Ok(s.as_bytes().to_vec()),
        Charset::Ascii if s.is_ascii() => Ok(s.as_bytes().to_vec()),
        Charset::Ascii => Err(format!("{s:?} is not ASCII")),
        Charset::Latin1 => s
            .chars()
            .map(|c| {
                if (c as u32) < 0x80 || (0xa0..=0xff).contains(&(c as u32)) {
                    Ok(c as u32 as u8)
                } else {
                    CP1252_HIGH
                        .iter()
                        .position(|&h| h == c)
                        .map(|p| 0x80 + p as u8)
                        .ok_or_else(|| format!("{c:?} has no latin1 byte"))
                }
            })
            .collect(),
    }
}

/// Character set of a collation id (binlog metadata carries collation ids).
/// Unknown ids map to `unknown`, which the codec rejects for text columns.
pub fn charset_of_collation(id: u16) -> &'static str {
    match id {
        63 => "binary",
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => "latin1",
        11 | 65 => "ascii",
        33 | 76 | 83 | 192..=215 | 223 => "utf8mb3",
        45 | 46 | 224..=247 | 255..=323 => "utf8mb4",
        // MariaDB 10.10+ UCA 14.0.0 collations: utf8mb3 2048.., utf8mb4 2304..
        2048..=2303 => "utf8mb3",
        2304..=2559 => "utf8mb4",
        _ => "unknown",
    }
}

/// Whether a column's values are text in its charset (strings, ENUM and SET).
fn is_text_column(col: &ColumnSchema) -> bool {
    matches!(
        col.data_type.as_str(),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
    )
}

/// A snapshot session without `character_set_results = NULL` gets text converted
/// to the connection charset (utf8mb4/utf8mb3): turn it back into the column's
/// charset so the cell equals the binlog's raw bytes.
pub fn to_column_charset(
    b: &mut Vec<u8>,
    col: &ColumnSchema,
    result_collation: u16,
) -> Result<(), String> {
    if !is_text_column(col) || b.is_ascii() {
        return Ok(());
    }
    let sent_as = charset_of_collation(result_collation);
    let stored_as = col.charset.as_deref().unwrap_or("utf8mb4");
    let utf8 = |c: &str| matches!(c, "utf8mb4" | "utf8mb3" | "utf8");
    if sent_as == "binary" || sent_as == stored_as || (utf8(sent_as) && utf8(stored_as)) {
        return Ok(());
    }
    if !utf8(sent_as) {
        return Err(format!(
            "the snapshot connection sends text as {sent_as}; use utf8mb4 or character_set_results = NULL"
        ));
    }
    let text = std::str::from_utf8(b).map_err(|e| format!("{e}"))?;
    let charset = match stored_as {
        "latin1" => Charset::Latin1,
        "ascii" => Charset::Ascii,
        other => return Err(format!("character set {other} is not supported")),
    };
    *b = encode_charset(text, charset)?;
    Ok(())
}

/// Label text of raw ENUM/SET bytes in the column's charset.
pub fn label_text<'a>(b: &'a [u8], col: &ColumnSchema) -> std::borrow::Cow<'a, str> {
    if col.charset.as_deref() == Some("latin1") && !b.is_ascii() {
        std::borrow::Cow::Owned(decode_latin1(b))
    } else {
        String::from_utf8_lossy(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_round_trip() {
        let s = "caf\u{e9} \u{20ac}";
        let b = encode_charset(s, Charset::Latin1).unwrap();
        assert_eq!(b, [b'c', b'a', b'f', 0xe9, b' ', 0x80]);
        assert_eq!(decode_latin1(&b), s);
    }

    #[test]
    fn collations_map_to_charsets() {
        assert_eq!(charset_of_collation(45), "utf8mb4");
        assert_eq!(charset_of_collation(255), "utf8mb4");
        assert_eq!(charset_of_collation(33), "utf8mb3");
        assert_eq!(charset_of_collation(8), "latin1");
        assert_eq!(charset_of_collation(63), "binary");
        assert_eq!(charset_of_collation(9999), "unknown");
    }
}
