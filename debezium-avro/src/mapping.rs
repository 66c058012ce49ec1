//! Column mappers: `column.truncate.to.N.chars`, `column.mask.with.N.chars`
//! and `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`, as Debezium's
//! `io.debezium.relational.mapping` applies them.
//!
//! What Debezium does, and so what this does:
//! - A mapper changes the value schema and values only (before/after); the
//!   key keeps the column as it is (`TableSchemaBuilder` builds key fields and
//!   key converters without mappers).
//! - It runs on the value the column's converter produced, so it sees what a
//!   consumer would have seen: the decoded text of a string, ENUM label or SET
//!   list, the text of a JSON document, decimal string or zoned timestamp, the
//!   bytes of a binary column. [`encode_mapped`] therefore encodes the value
//!   normally, reads that text or those bytes back, maps them, and writes the
//!   result.
//! - Schema parameters: a mask or hash rule adds `masked=true` to every
//!   column it names, whatever its type; a truncate rule adds
//!   `truncateLength=N` where truncation is possible, that is where the
//!   declared length is unknown or longer than N; a propagate rule adds
//!   `__debezium.source.column.type`, `.length` and `.scale` where the
//!   column has them, and `.name`, and leaves values alone.
//! - Mask and hash touch CHAR/VARCHAR/TEXT columns (and ENUM and SET, which
//!   Debezium's MySQL parser types as CHAR); other columns pass through. The
//!   mask replaces NULL too (`MaskingValueConverter` ignores its input); a
//!   hash of NULL is NULL.
//! - Truncation counts UTF-16 code units (`String.substring`); cutting a
//!   surrogate pair in half leaves a lone surrogate that UTF-8 encoding
//!   (Avro's) turns into `?`. Binary values are cut in bytes.

use std::fmt::Write;

use crate::cell::Cell;
use crate::column::{read_bytes, ColumnCodec, Kind, Replaced};
use crate::encode::{write_bytes, write_long, write_str};
use crate::options::{ColumnMapping, HashAlgorithm, HashVersion};
use crate::table::ColumnSchema;

/// What happens to a mapped column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueMap {
    /// Every value, NULL included, becomes this text.
    Mask(String),
    /// Non-null text becomes the hex digest of salt + text, cut to `max_chars`.
    Hash {
        algorithm: HashAlgorithm,
        salt: String,
        version: HashVersion,
        max_chars: Option<usize>,
    },
    /// Text longer than this many UTF-16 units is cut.
    TruncateText(usize),
    /// Bytes longer than this are cut.
    TruncateBytes(usize),
}

/// Whether Debezium's MySQL parser types the column as a character type
/// (`Types.CHAR`/`VARCHAR`/...), the only ones mask and hash rewrite.
fn is_character(kind: &Kind) -> bool {
    matches!(kind, Kind::Str(_) | Kind::Enum(_) | Kind::Set(_))
}

/// Whether the converted value is a Java `String`.
fn is_text(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Str(_)
            | Kind::BinText(_)
            | Kind::Enum(_)
            | Kind::Set(_)
            | Kind::Json
            | Kind::DecString
            | Kind::Zoned(_)
    )
}

/// The schema parameters `mapping` adds to `col`'s value field, and what it
/// does to its values (`None`: they pass through).
pub(crate) fn plan(
    mapping: &ColumnMapping,
    col: &ColumnSchema,
    kind: &Kind,
) -> (Vec<(&'static str, String)>, Option<ValueMap>) {
    let length = col.length().filter(|&l| l > 0).map(|l| l as usize);
    match mapping {
        ColumnMapping::Truncate(n) => {
            // Possible only where the length is unknown or longer than N.
            if col.length().is_some_and(|l| l >= 0 && l as usize <= *n) {
                return (Vec::new(), None);
            }
            let map = if is_text(kind) {
                Some(ValueMap::TruncateText(*n))
            } else if matches!(kind, Kind::Bytes) {
                Some(ValueMap::TruncateBytes(*n))
            } else {
                None
            };
            (vec![("truncateLength", n.to_string())], map)
        }
        ColumnMapping::PropagateSourceType => {
            // Debezium's `PropagateSourceMetadataToSchemaParameter`, in its order.
            let mut params = vec![("__debezium.source.column.type", col.type_name())];
            if let Some(length) = col.length() {
                params.push(("__debezium.source.column.length", length.to_string()));
            }
            if let Some(scale) = col.scale() {
                params.push(("__debezium.source.column.scale", scale.to_string()));
            }
            // `.comment` would come here: Debezium records column comments
            // only with `include.schema.comments=true`, which cdc does not
            // offer (its default is false).
            params.push(("__debezium.source.column.name", col.name.clone()));
            (params, None)
        }
        ColumnMapping::Mask(n) => (
            vec![("masked", "true".to_owned())],
            is_character(kind).then(|| ValueMap::Mask("*".repeat(*n))),
        ),
        ColumnMapping::Hash {
            algorithm,
            salt,
            version,
        } => (
            vec![("masked", "true".to_owned())],
            is_character(kind).then(|| ValueMap::Hash {
                algorithm: *algorithm,
                salt: salt.clone(),
                version: *version,
                max_chars: length,
            }),
        ),
    }
}

/// Writes `cell` of a mapped column: union branch and the mapped value.
pub(crate) fn encode_mapped(
    col: &ColumnCodec,
    map: &ValueMap,
    cell: &Cell,
    out: &mut Vec<u8>,
    replaced: &mut Vec<Replaced>,
) -> Result<(), String> {
    let value_branch = |out: &mut Vec<u8>| {
        if let Some((_, branch)) = col.union {
            write_long(out, i64::from(branch));
        }
    };
    if let ValueMap::Mask(mask) = map {
        value_branch(out);
        write_str(out, mask);
        return Ok(());
    }
    if matches!(cell, Cell::Null | Cell::ZeroDate) {
        return col.encode(cell, out, replaced);
    }
    let mut plain = Vec::with_capacity(32);
    crate::column::encode_value(&col.kind, cell, &mut plain)?;
    let value = read_bytes(&plain);
    value_branch(out);
    match map {
        ValueMap::Mask(_) => {}
        ValueMap::TruncateBytes(n) => write_bytes(out, &value[..value.len().min(*n)]),
        ValueMap::TruncateText(n) => write_str(out, &truncate_utf16(text(value)?, *n)),
        ValueMap::Hash {
            algorithm,
            salt,
            version,
            max_chars,
        } => {
            let mut hex = hash_hex(*algorithm, *version, salt, text(value)?);
            if let Some(max) = max_chars {
                hex.truncate(*max);
            }
            write_str(out, &hex);
        }
    }
    Ok(())
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("mapped value is not UTF-8: {e}"))
}

/// `s` cut to `max` UTF-16 code units, as Java's `substring(0, max)` and
/// then UTF-8 encoding do: half a surrogate pair becomes `?`.
pub(crate) fn truncate_utf16(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let mut units = 0;
    for (at, ch) in s.char_indices() {
        let width = ch.len_utf16();
        if units + width > max {
            if units < max {
                return format!("{}?", &s[..at]).into();
            }
            return s[..at].into();
        }
        units += width;
    }
    s.into()
}

/// Lowercase hex of the digest of salt + value, as Debezium's
/// `HashValueConverter` (both strings as UTF-8 bytes: Java's
/// `String.getBytes()` under a UTF-8 default charset).
pub(crate) fn hash_hex(
    algorithm: HashAlgorithm,
    version: HashVersion,
    salt: &str,
    value: &str,
) -> String {
    let input = match version {
        HashVersion::V1 => java_serialized_string(value),
        HashVersion::V2 => value.as_bytes().to_vec(),
    };
    let digest = digest(algorithm, salt.as_bytes(), &input);
    let mut hex = String::with_capacity(digest.len() * 2);
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn digest(algorithm: HashAlgorithm, salt: &[u8], data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    fn run<D: Digest>(salt: &[u8], data: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        d.update(salt);
        d.update(data);
        d.finalize().to_vec()
    }
    match algorithm {
        HashAlgorithm::Md5 => run::<md5::Md5>(salt, data),
        HashAlgorithm::Sha1 => run::<sha1::Sha1>(salt, data),
        HashAlgorithm::Sha224 => run::<sha2::Sha224>(salt, data),
        HashAlgorithm::Sha256 => run::<sha2::Sha256>(salt, data),
        HashAlgorithm::Sha384 => run::<sha2::Sha384>(salt, data),
        HashAlgorithm::Sha512 => run::<sha2::Sha512>(salt, data),
        HashAlgorithm::Sha512_224 => run::<sha2::Sha512_224>(salt, data),
        HashAlgorithm::Sha512_256 => run::<sha2::Sha512_256>(salt, data),
        HashAlgorithm::Sha3_224 => run::<sha3::Sha3_224>(salt, data),
        HashAlgorithm::Sha3_256 => run::<sha3::Sha3_256>(salt, data),
        HashAlgorithm::Sha3_384 => run::<sha3::Sha3_384>(salt, data),
        HashAlgorithm::Sha3_512 => run::<sha3::Sha3_512>(salt, data),
    }
}

/// The bytes `new ObjectOutputStream(bos).writeObject(s)` leaves in `bos`:
/// the stream header (`AC ED 00 05`), then `TC_STRING` (0x74) with a u16
/// length, or `TC_LONGSTRING` (0x7C) with a u64 length past 65535 bytes,
/// then the string in Java's modified UTF-8 (NUL as `C0 80`, characters
/// beyond the BMP as two 3-byte surrogates).
pub(crate) fn java_serialized_string(s: &str) -> Vec<u8> {
    let mut utf = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007F => utf.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                utf.push(0xC0 | (unit >> 6) as u8);
                utf.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                utf.push(0xE0 | (unit >> 12) as u8);
                utf.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                utf.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    let mut out = vec![0xAC, 0xED, 0x00, 0x05];
    match u16::try_from(utf.len()) {
        Ok(len) => {
            out.push(0x74);
            out.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            out.push(0x7C);
            out.extend_from_slice(&(utf.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&utf);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::TableCodec;
    use crate::options::{ColumnMappers, ConverterConfig, MessageKeyColumns};
    use crate::table::TableSchema;

    #[test]
    fn truncation_counts_utf16_units_like_java() {
        assert_eq!(truncate_utf16("héllo", 3), "hél");
        assert_eq!(truncate_utf16("ab", 5), "ab");
        // 😀 is two UTF-16 units: cut after one, Java keeps a lone surrogate
        // that encodes as '?'.
        assert_eq!(truncate_utf16("a😀b", 2), "a?");
        assert_eq!(truncate_utf16("a😀b", 3), "a😀");
        assert_eq!(truncate_utf16("a😀b", 1), "a");
    }

    #[test]
    fn java_serialization_of_strings() {
        assert_eq!(
            java_serialized_string("ab"),
            [0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, 0x02, b'a', b'b']
        );
        // NUL and é in modified UTF-8; 😀 as two 3-byte surrogates.
        assert_eq!(
            java_serialized_string("\0é😀")[4..],
            [0x74, 0x00, 0x0A, 0xC0, 0x80, 0xC3, 0xA9, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]
        );
        let long = "x".repeat(70_000);
        let ser = java_serialized_string(&long);
        assert_eq!(ser[4], 0x7C);
        assert_eq!(ser[5..13], 70_000u64.to_be_bytes());
    }

    #[test]
    fn hashes_are_salted_hex_digests() {
        // SHA-256("saltvalue"), as `printf saltvalue | sha256sum` prints it.
        // The salt goes first: SHA-256("abc").
        assert_eq!(
            hash_hex(HashAlgorithm::Sha256, HashVersion::V2, "a", "bc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_hex(HashAlgorithm::Md5, HashVersion::V2, "", ""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            hash_hex(HashAlgorithm::Sha1, HashVersion::V2, "a", "bc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_ne!(
            hash_hex(HashAlgorithm::Sha1, HashVersion::V1, "a", "bc"),
            hash_hex(HashAlgorithm::Sha1, HashVersion::V2, "a", "bc")
        );
    }

    fn config(mappers: ColumnMappers, keys: MessageKeyColumns) -> ConverterConfig {
        ConverterConfig {
            column_mappers: mappers,
            message_key_columns: keys,
            ..ConverterConfig::new("p", "v")
        }
    }

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(&format!("(?i)^(?:{p})$")).unwrap()
    }

    fn users() -> TableSchema {
        let col = |name: &str, data_type: &str, column_type: &str| ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: name != "id",
            charset: (data_type != "int").then(|| "utf8mb4".to_owned()),
            ..ColumnSchema::default()
        };
        TableSchema {
            database: "shop".into(),
            table: "users".into(),
            columns: vec![
                col("id", "int", "int"),
                col("email", "varchar", "varchar(255)"),
                col("name", "varchar", "varchar(4)"),
            ],
            primary_key: vec![0],
        }
    }

    fn field<'a>(schema: &'a serde_json::Value, record: &str, name: &str) -> &'a serde_json::Value {
        let fields = match record {
            "Key" => &schema["fields"],
            _ => &schema["fields"][0]["type"][1]["fields"],
        };
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
    }

    #[test]
    fn a_masked_column_is_masked_in_values_only_and_null_too() {
        let mut mappers = ColumnMappers::default();
        mappers.push(vec![re(r"shop\.users\.(email|id)")], ColumnMapping::Mask(3));
        mappers.push(vec![re(r"shop\.users\.name")], ColumnMapping::Truncate(10));
        let codec = TableCodec::new(&users(), &config(mappers, Default::default())).unwrap();
        let value: serde_json::Value = serde_json::from_str(&codec.value_schema_json).unwrap();
        let email = field(&value, "Value", "email");
        assert_eq!(email["type"][1]["connect.parameters"]["masked"], "true");
        // The id is named too: its value schema says masked, its int values
        // stay, and the key knows nothing of it.
        assert_eq!(
            field(&value, "Value", "id")["type"]["connect.parameters"]["masked"],
            "true"
        );
        let key: serde_json::Value =
            serde_json::from_str(codec.key_schema_json.as_deref().unwrap()).unwrap();
        assert_eq!(field(&key, "Key", "id")["type"], "int");
        // VARCHAR(4) cannot be longer than 10: no truncateLength.
        assert!(field(&value, "Value", "name")["type"][1]
            .get("connect.parameters")
            .is_none());

        let row = [Cell::Int(7), Cell::Bytes(b"ann@x".to_vec()), Cell::Null];
        let mut out = Vec::new();
        let mut replaced = Vec::new();
        let codec_row = |row: &[Cell], out: &mut Vec<u8>, replaced: &mut Vec<Replaced>| {
            codec.encode_row(row, out, replaced).unwrap()
        };
        codec_row(&row, &mut out, &mut replaced);
        // id 7 (zigzag 14), email branch 1 + "***", name null.
        assert_eq!(out, [14, 2, 6, b'*', b'*', b'*', 0]);
        out.clear();
        codec_row(
            &[Cell::Int(7), Cell::Null, Cell::Null],
            &mut out,
            &mut replaced,
        );
        assert_eq!(out, [14, 2, 6, b'*', b'*', b'*', 0], "NULL is masked too");
        out.clear();
        assert!(codec.encode_key(&row, &mut out).unwrap().written);
        assert_eq!(out, [14]);
    }

    #[test]
    fn truncation_and_hashing_of_values() {
        let mut mappers = ColumnMappers::default();
        mappers.push(vec![re(r"shop\.users\.email")], ColumnMapping::Truncate(3));
        mappers.push(
            vec![re(r"shop\.users\.name")],
            ColumnMapping::Hash {
                algorithm: HashAlgorithm::Sha256,
                salt: "a".into(),
                version: HashVersion::V2,
            },
        );
        let codec = TableCodec::new(&users(), &config(mappers, Default::default())).unwrap();
        let value: serde_json::Value = serde_json::from_str(&codec.value_schema_json).unwrap();
        assert_eq!(
            field(&value, "Value", "email")["type"][1]["connect.parameters"]["truncateLength"],
            "3"
        );
        let row = [
            Cell::Int(1),
            Cell::Bytes("héllo".into()),
            Cell::Bytes(b"bc".to_vec()),
        ];
        let mut out = Vec::new();
        codec.encode_row(&row, &mut out, &mut Vec::new()).unwrap();
        // "hél" is 4 bytes; the SHA-256 hex of "abc" cut to VARCHAR(4).
        let mut expected = vec![2, 2, 8];
        expected.extend_from_slice("hél".as_bytes());
        expected.extend_from_slice(&[2, 8]);
        expected.extend_from_slice(b"ba78");
        assert_eq!(out, expected);
    }

    #[test]
    fn message_key_columns_replace_the_primary_key() {
        let keys =
            MessageKeyColumns::new(vec![re(r"shop\.users\.name"), re(r"shop\.users\.email")]);
        let codec = TableCodec::new(&users(), &config(Default::default(), keys)).unwrap();
        assert_eq!(codec.key_columns().collect::<Vec<_>>(), ["name", "email"]);
        let key: serde_json::Value =
            serde_json::from_str(codec.key_schema_json.as_deref().unwrap()).unwrap();
        assert_eq!(key["fields"].as_array().unwrap().len(), 2);
        let other = MessageKeyColumns::new(vec![re(r"shop\.items\.name")]);
        let codec = TableCodec::new(&users(), &config(Default::default(), other)).unwrap();
        assert_eq!(codec.key_columns().collect::<Vec<_>>(), ["id"]);
    }
}
