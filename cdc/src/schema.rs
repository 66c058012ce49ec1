//! Table schemas: what a captured table looks like, from `information_schema` (the
//! current shape) or from a binlog TABLE_MAP event with FULL metadata (the shape the
//! row was written under).
//!
//! Invariants:
//! - `columns` are in table (ordinal) order, the order of binlog row images;
//!   `primary_key` holds indices into `columns`, in key order.
//! - `ColumnSchema::default` is normalised the way Debezium's DDL parser stores a
//!   default expression, whatever the server flavour: the unquoted literal text;
//!   `CURRENT_TIMESTAMP`/`NOW()` become the literal `1970-01-01 00:00:00`; `NULL`
//!   defaults and other expressions become `None`. The codec turns that text into
//!   a typed schema default exactly like Debezium's `BinlogDefaultValueConverter`.
//! - `data_type` is lowercase (`information_schema.COLUMNS.DATA_TYPE` spelling).

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::{ColumnType, GeometryType};
use mysql_async::prelude::Queryable;
use mysql_async::{from_value_opt, Row, Value};

use debezium_avro::charset::charset_of_collation;
use debezium_avro::{ColumnSchema, TableSchema, CURRENT_TIMESTAMP_DEFAULT};

/// Schemas never captured: the server's own.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Errors while reading a table's schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Transient: the server or the network failed; retry with a new connection.
    #[error("cannot read the schema of {table}: {source}")]
    Server {
        table: String,
        #[source]
        source: mysql_async::Error,
    },
    /// Definite: the metadata is not what this connector can use.
    #[error("unusable schema metadata for {table}: {reason}")]
    Invalid { table: String, reason: String },
    /// Definite: the TABLE_MAP event lacks FULL metadata (column names), so a row
    /// written under an older schema cannot be decoded. Set
    /// `binlog_row_metadata=FULL` on the server.
    #[error(
        "the binlog TABLE_MAP event of {table} carries no column names \
         (set binlog_row_metadata=FULL on the server)"
    )]
    NoFullMetadata { table: String },
}

/// Whether a TABLE_MAP event describes `schema`: same column count and, when
/// the event carries column names (FULL metadata), the same names in order.
pub fn matches_table_map(schema: &TableSchema, tme: &TableMapEvent<'_>) -> bool {
    if tme.columns_count() as usize != schema.columns.len() {
        return false;
    }
    let Ok(meta) = OptionalMetaExtractor::new(tme.iter_optional_meta()) else {
        return false;
    };
    let mut names = meta.iter_column_name().peekable();
    if names.peek().is_none() {
        // Without names only the count can be compared.
        return true;
    }
    let mut count = 0;
    for (col, name) in schema.columns.iter().zip(names) {
        match name {
            Ok(n) if n.name_raw() == col.name.as_bytes() => count += 1,
            _ => return false,
        }
    }
    count == schema.columns.len()
}

/// Builds the schema a row was written under from a TABLE_MAP event with FULL
/// metadata. Column defaults are unknown there: `defaults` (usually the current
/// `information_schema` schema) supplies the default of every column found there
/// under the same name and type. Without column names in the event (MINIMAL
/// metadata) the names of `defaults` are used when its width matches, else
/// `NoFullMetadata`.
pub fn from_table_map(
    tme: &TableMapEvent<'_>,
    defaults: Option<&TableSchema>,
) -> Result<TableSchema, SchemaError> {
    let database = tme.database_name().into_owned();
    let table = tme.table_name().into_owned();
    let qualified = format!("{database}.{table}");
    let invalid = |reason: String| SchemaError::Invalid {
        table: qualified.clone(),
        reason,
    };
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| invalid(format!("bad optional metadata: {e}")))?;
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("bad column names: {e}")))?;
    let count = tme.columns_count() as usize;
    let names = if names.len() == count {
        names
    } else {
        // MINIMAL metadata: positional names are only safe from a schema of the
        // same width (the caller vouches that it describes this event).
        match defaults {
            Some(d) if d.columns.len() == count => {
                d.columns.iter().map(|c| c.name.clone()).collect()
            }
            _ => return Err(SchemaError::NoFullMetadata { table: qualified }),
        }
    };
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    // ENUM and SET labels are not exposed by the extractor: read them directly.
    let mut enum_labels: Vec<Vec<String>> = Vec::new();
    let mut set_labels: Vec<Vec<String>> = Vec::new();
    // One per GEOMETRY column (the declared subtype) and one per VECTOR
    // column, in column order.
    let mut geometry_types: Vec<GeometryType> = Vec::new();
    let mut vector_dimensions: Vec<u64> = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| invalid(format!("bad optional metadata: {e}")))? {
            OptionalMetadataField::EnumStrValue(values) => {
                for v in values.iter_values() {
                    let v = v.map_err(|e| invalid(format!("bad ENUM labels: {e}")))?;
                    enum_labels.push(v.values().iter().map(|s| s.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for v in values.iter_values() {
                    let v = v.map_err(|e| invalid(format!("bad SET labels: {e}")))?;
                    set_labels.push(v.values().iter().map(|s| s.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::GeometryType(types) => {
                for t in types.iter_geometry_types() {
                    geometry_types
                        .push(t.map_err(|e| invalid(format!("bad geometry types: {e}")))?);
                }
            }
            OptionalMetadataField::Dimensionality(dims) => {
                for d in dims.iter_dimensionalities() {
                    vector_dimensions
                        .push(d.map_err(|e| invalid(format!("bad VECTOR dimensions: {e}")))?);
                }
            }
            _ => {}
        }
    }
    let (mut enum_labels, mut set_labels) = (enum_labels.into_iter(), set_labels.into_iter());
    let (mut geometry_types, mut vector_dimensions) =
        (geometry_types.into_iter(), vector_dimensions.into_iter());
    let null_bits = tme.null_bitmask();
    let mut columns = Vec::with_capacity(count);
    for (i, name) in names.into_iter().enumerate() {
        let ty = tme
            .get_column_type(i)
            .map_err(|e| invalid(format!("column {name}: {e}")))?
            .ok_or_else(|| invalid(format!("column {name}: no type")))?;
        let m = tme.get_column_metadata(i).unwrap_or(&[]);
        let unsigned = if ty.is_numeric_type() {
            signedness.next().unwrap_or(false)
        } else {
            false
        };
        let charset_id = if ty.is_character_type() {
            charsets
                .next()
                .transpose()
                .map_err(|e| invalid(e.to_string()))?
        } else if ty.is_enum_or_set_type() {
            enum_set_charsets
                .next()
                .transpose()
                .map_err(|e| invalid(e.to_string()))?
        } else {
            None
        };
        let charset = charset_id.map(|id| charset_of_collation(id).to_owned());
        let is_binary = charset.as_deref() == Some("binary");
        let meta_byte = |k: usize| m.get(k).copied().unwrap_or(0) as u64;
        let mut col = ColumnSchema {
            name,
            nullable: null_bits.get(i).map(|b| *b).unwrap_or(true),
            unsigned,
            ..ColumnSchema::default()
        };
        let (data_type, column_type): (String, String) = match ty {
            ColumnType::MYSQL_TYPE_TINY => ("tinyint".into(), "tinyint".into()),
            ColumnType::MYSQL_TYPE_SHORT => ("smallint".into(), "smallint".into()),
            ColumnType::MYSQL_TYPE_INT24 => ("mediumint".into(), "mediumint".into()),
            ColumnType::MYSQL_TYPE_LONG => ("int".into(), "int".into()),
            ColumnType::MYSQL_TYPE_LONGLONG => ("bigint".into(), "bigint".into()),
            ColumnType::MYSQL_TYPE_FLOAT => ("float".into(), "float".into()),
            ColumnType::MYSQL_TYPE_DOUBLE => ("double".into(), "double".into()),
            ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL => {
                col.numeric_precision = Some(meta_byte(0));
                col.numeric_scale = Some(meta_byte(1));
                (
                    "decimal".into(),
                    format!("decimal({},{})", meta_byte(0), meta_byte(1)),
                )
            }
            ColumnType::MYSQL_TYPE_YEAR => ("year".into(), "year(4)".into()),
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => {
                ("date".into(), "date".into())
            }
            ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => {
                let fsp = if ty == ColumnType::MYSQL_TYPE_TIME2 {
                    meta_byte(0)
                } else {
                    0
                };
                col.datetime_precision = Some(fsp);
                ("time".into(), with_fsp("time", fsp))
            }
            ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => {
                let fsp = if ty == ColumnType::MYSQL_TYPE_DATETIME2 {
                    meta_byte(0)
                } else {
                    0
                };
                col.datetime_precision = Some(fsp);
                ("datetime".into(), with_fsp("datetime", fsp))
            }
            ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
                let fsp = if ty == ColumnType::MYSQL_TYPE_TIMESTAMP2 {
                    meta_byte(0)
                } else {
                    0
                };
                col.datetime_precision = Some(fsp);
                ("timestamp".into(), with_fsp("timestamp", fsp))
            }
            ColumnType::MYSQL_TYPE_BIT => {
                let bits = meta_byte(1) * 8 + meta_byte(0);
                col.numeric_precision = Some(bits);
                ("bit".into(), format!("bit({bits})"))
            }
            ColumnType::MYSQL_TYPE_JSON => ("json".into(), "json".into()),
            ColumnType::MYSQL_TYPE_ENUM => {
                col.enum_values = enum_labels.next().unwrap_or_default();
                col.charset = charset.clone();
                (
                    "enum".into(),
                    format!("enum({})", quote_labels(&col.enum_values)),
                )
            }
            ColumnType::MYSQL_TYPE_SET => {
                col.enum_values = set_labels.next().unwrap_or_default();
                col.charset = charset.clone();
                (
                    "set".into(),
                    format!("set({})", quote_labels(&col.enum_values)),
                )
            }
            ColumnType::MYSQL_TYPE_BLOB
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB => {
                let prefix = match meta_byte(0) {
                    1 => "tiny",
                    3 => "medium",
                    4 => "long",
                    _ => "",
                };
                let kind = if is_binary { "blob" } else { "text" };
                col.charset = charset.clone();
                let dt = format!("{prefix}{kind}");
                (dt.clone(), dt)
            }
            ColumnType::MYSQL_TYPE_VARCHAR | ColumnType::MYSQL_TYPE_VAR_STRING => {
                col.charset = charset.clone();
                let max_bytes = meta_byte(0) | (meta_byte(1) << 8);
                col.char_max_length = Some(max_bytes);
                if is_binary {
                    ("varbinary".into(), format!("varbinary({max_bytes})"))
                } else {
                    ("varchar".into(), "varchar".into())
                }
            }
            ColumnType::MYSQL_TYPE_STRING => {
                col.charset = charset.clone();
                // Max length in bytes (BINARY(n) values are zero-padded to it).
                let (b0, b1) = (meta_byte(0), meta_byte(1));
                col.char_max_length = Some(if b0 & 0x30 != 0x30 {
                    b1 | (((b0 & 0x30) ^ 0x30) << 4)
                } else {
                    b1
                });
                if is_binary {
                    ("binary".into(), "binary".into())
                } else {
                    ("char".into(), "char".into())
                }
            }
            ColumnType::MYSQL_TYPE_GEOMETRY => {
                // information_schema's DATA_TYPE for each declared subtype.
                let dt = match geometry_types.next() {
                    Some(GeometryType::GEOM_POINT) => "point",
                    Some(GeometryType::GEOM_LINESTRING) => "linestring",
                    Some(GeometryType::GEOM_POLYGON) => "polygon",
                    Some(GeometryType::GEOM_MULTIPOINT) => "multipoint",
                    Some(GeometryType::GEOM_MULTILINESTRING) => "multilinestring",
                    Some(GeometryType::GEOM_MULTIPOLYGON) => "multipolygon",
                    Some(GeometryType::GEOM_GEOMETRYCOLLECTION) => "geomcollection",
                    Some(GeometryType::GEOM_GEOMETRY) | None => "geometry",
                };
                (dt.into(), dt.into())
            }
            ColumnType::MYSQL_TYPE_VECTOR => {
                let column_type = match vector_dimensions.next() {
                    Some(n) => format!("vector({n})"),
                    None => "vector".into(),
                };
                ("vector".into(), column_type)
            }
            other => {
                return Err(invalid(format!(
                    "column {}: unsupported binlog column type {other:?}",
                    col.name
                )))
            }
        };
        col.data_type = data_type;
        col.column_type = if unsigned {
            format!("{column_type} unsigned")
        } else {
            column_type
        };
        if let Some(current) = defaults {
            if let Some(c) = current.columns.iter().find(|c| c.name == col.name) {
                // MariaDB's information_schema spells MySQL's geomcollection
                // out; keep the server's name (the type name Debezium records).
                if col.data_type == "geomcollection" && c.data_type == "geometrycollection" {
                    col.data_type.clone_from(&c.data_type);
                }
                if c.data_type == col.data_type {
                    col.default.clone_from(&c.default);
                    // The binlog knows no display width: keep `tinyint(1)` etc.
                    if c.unsigned == col.unsigned {
                        col.column_type.clone_from(&c.column_type);
                    }
                    if col.charset.is_none() {
                        col.charset.clone_from(&c.charset);
                    }
                    if col.data_type != "binary" {
                        col.char_max_length = c.char_max_length;
                    }
                }
            }
        }
        columns.push(col);
    }
    let mut primary_key = Vec::new();
    for pk in meta.iter_primary_key() {
        let pk = pk.map_err(|e| invalid(format!("bad primary key metadata: {e}")))? as usize;
        if pk >= columns.len() {
            return Err(invalid(format!(
                "primary key column index {pk} out of range"
            )));
        }
        primary_key.push(pk);
    }
    Ok(TableSchema {
        database,
        table,
        columns,
        primary_key,
    })
}

fn with_fsp(base: &str, fsp: u64) -> String {
    if fsp == 0 {
        base.to_owned()
    } else {
        format!("{base}({fsp})")
    }
}

fn quote_labels(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("'{}'", l.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

fn server_error(table: &str) -> impl FnOnce(mysql_async::Error) -> SchemaError + '_ {
    move |source| SchemaError::Server {
        table: table.to_owned(),
        source,
    }
}

fn get_opt<T: mysql_async::prelude::FromValue>(
    row: &Row,
    idx: usize,
    what: &str,
    table: &str,
) -> Result<Option<T>, SchemaError> {
    match row.as_ref(idx) {
        None | Some(Value::NULL) => Ok(None),
        Some(v) => from_value_opt::<T>(v.clone())
            .map(Some)
            .map_err(|e| SchemaError::Invalid {
                table: table.to_owned(),
                reason: format!("{what}: {e}"),
            }),
    }
}

/// Reads a table's current schema from `information_schema`; `None` if it does
/// not exist (dropped, or not a base table).
pub async fn load_table_schema(
    conn: &mut mysql_async::Conn,
    database: &str,
    table: &str,
) -> Result<Option<TableSchema>, SchemaError> {
    let qualified = format!("{database}.{table}");
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(server_error(&qualified))?;
    let mariadb = version
        .unwrap_or_default()
        .to_lowercase()
        .contains("mariadb");
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
             CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, \
             CHARACTER_SET_NAME, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(server_error(&qualified))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let q = qualified.as_str();
    let mut columns = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = get_opt(row, 0, "COLUMN_NAME", q)?.unwrap_or_default();
        let data_type: String = get_opt::<String>(row, 1, "DATA_TYPE", q)?
            .unwrap_or_default()
            .to_lowercase();
        let column_type: String = get_opt::<String>(row, 2, "COLUMN_TYPE", q)?
            .unwrap_or_default()
            .to_lowercase();
        let nullable = get_opt::<String>(row, 3, "IS_NULLABLE", q)?.as_deref() == Some("YES");
        let raw_default: Option<String> = get_opt(row, 4, "COLUMN_DEFAULT", q)?;
        let extra: String = get_opt::<String>(row, 10, "EXTRA", q)?.unwrap_or_default();
        let enum_values = if data_type == "enum" || data_type == "set" {
            parse_labels(&column_type)
        } else {
            Vec::new()
        };
        columns.push(ColumnSchema {
            unsigned: column_type.contains("unsigned"),
            default: match raw_default.as_deref() {
                Some(raw) if !mariadb => binary_default_as_shown(raw, &column_type)
                    .or_else(|| normalize_default(Some(raw), false, &extra))
                    .map(|d| match data_type.as_str() {
                        // Debezium keeps SHOW CREATE TABLE's escapes
                        // (`it''s`) in a CHAR/VARCHAR literal default.
                        "char" | "varchar"
                            if !extra.to_ascii_lowercase().contains("default_generated") =>
                        {
                            escape_literal(&d)
                        }
                        _ => d,
                    }),
                raw => normalize_default(raw, mariadb, &extra),
            },
            char_max_length: get_opt(row, 5, "CHARACTER_MAXIMUM_LENGTH", q)?,
            numeric_precision: get_opt(row, 6, "NUMERIC_PRECISION", q)?,
            numeric_scale: get_opt(row, 7, "NUMERIC_SCALE", q)?,
            datetime_precision: get_opt(row, 8, "DATETIME_PRECISION", q)?,
            charset: get_opt(row, 9, "CHARACTER_SET_NAME", q)?,
            name,
            data_type,
            column_type,
            nullable,
            enum_values,
        });
    }
    let key_rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(server_error(&qualified))?;
    let mut primary_key = Vec::with_capacity(key_rows.len());
    for row in &key_rows {
        let name: String = get_opt(row, 0, "COLUMN_NAME", q)?.unwrap_or_default();
        let idx =
            columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| SchemaError::Invalid {
                    table: qualified.clone(),
                    reason: format!("primary key column {name} is not among the columns"),
                })?;
        primary_key.push(idx);
    }
    Ok(Some(TableSchema {
        database: database.to_owned(),
        table: table.to_owned(),
        columns,
        primary_key,
    }))
}

/// Base tables of every non-system schema, as `(database, table)`, sorted.
pub async fn list_tables(
    conn: &mut mysql_async::Conn,
) -> Result<Vec<(String, String)>, SchemaError> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(server_error("information_schema.TABLES"))?;
    Ok(rows
        .into_iter()
        .filter(|(db, _)| !SYSTEM_SCHEMAS.contains(&db.to_lowercase().as_str()))
        .collect())
}

/// ENUM/SET labels out of `enum('a','b''c')`.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type[start + 1..];
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            if c == ')' {
                break;
            }
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                c => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

fn is_current_timestamp(expr: &str) -> bool {
    let e = expr.trim().to_lowercase();
    ["current_timestamp", "now(", "localtime", "localtimestamp"]
        .iter()
        .any(|p| e.starts_with(p))
}

/// How `SHOW CREATE TABLE` writes a string literal's contents.
pub(crate) fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out
}

/// A BINARY/VARBINARY literal default as Debezium records it. MySQL's
/// `COLUMN_DEFAULT` writes it in hex (`0x6162`), without BINARY's zero
/// padding; Debezium parses `SHOW CREATE TABLE`, which writes the padded
/// value as a string literal (`'ab\0'`), and keeps its escapes: Debezium's
/// default is the text `ab\0` (four characters, also as the schema default's
/// bytes). Bytes that are not UTF-8 stay a hex literal in `SHOW CREATE
/// TABLE` (`0xC3A9FF`), of which Debezium's parser keeps the text between
/// the first two and the last character (`C3A9F`, observed), as it does for
/// `x'..'`. `None` when `raw` is not such a hex literal or the column is not
/// binary.
pub(crate) fn binary_default_as_shown(raw: &str, column_type: &str) -> Option<String> {
    let lower = column_type.to_ascii_lowercase();
    let pad_to = if let Some(rest) = lower.strip_prefix("binary(") {
        rest.strip_suffix(')')?.parse::<usize>().ok()?
    } else if lower.starts_with("varbinary(") {
        0
    } else {
        return None;
    };
    let hex = raw.strip_prefix("0x")?;
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    if bytes.len() < pad_to {
        bytes.resize(pad_to, 0);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(escape_literal(&text)),
        Err(_) => Some(hex.to_ascii_uppercase()[..hex.len() - 1].to_owned()),
    }
}

/// Normalises `COLUMN_DEFAULT` (see the module docs). MariaDB quotes string literals
/// and writes `NULL` for a NULL default; MySQL writes literals bare and flags
/// expression defaults with `DEFAULT_GENERATED` in `EXTRA`.
pub fn normalize_default(raw: Option<&str>, mariadb: bool, extra: &str) -> Option<String> {
    let raw = raw?;
    if mariadb {
        if raw == "NULL" {
            return None;
        }
        if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
            let inner = &raw[1..raw.len() - 1];
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        out.push('\'');
                    }
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some('r') => out.push('\r'),
                        Some('0') => out.push('\0'),
                        Some(n) => out.push(n),
                        None => {}
                    },
                    c => out.push(c),
                }
            }
            return Some(out);
        }
        if is_current_timestamp(raw) {
            return Some(CURRENT_TIMESTAMP_DEFAULT.to_owned());
        }
        let literal = raw.parse::<f64>().is_ok()
            || (raw.starts_with("b'") && raw.ends_with('\''))
            || (raw.starts_with("0x") && raw.len() > 2);
        return literal.then(|| raw.to_owned());
    }
    if extra.to_lowercase().contains("default_generated") {
        return is_current_timestamp(raw).then(|| CURRENT_TIMESTAMP_DEFAULT.to_owned());
    }
    Some(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unquoted() {
        assert_eq!(
            parse_labels("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_labels("set('x')"), vec!["x"]);
    }

    #[test]
    fn binary_defaults_are_shown_as_show_create_table_writes_them() {
        assert_eq!(
            binary_default_as_shown("0x6162", "binary(3)").as_deref(),
            Some("ab\\0")
        );
        assert_eq!(
            binary_default_as_shown("0x6162", "varbinary(8)").as_deref(),
            Some("ab")
        );
        assert_eq!(
            binary_default_as_shown("0x27005c", "varbinary(8)").as_deref(),
            Some("''\\0\\\\")
        );
        assert_eq!(
            binary_default_as_shown("0xC3A9FF", "varbinary(4)").as_deref(),
            Some("C3A9F")
        );
        assert_eq!(binary_default_as_shown("0x6162", "varchar(3)"), None);
        assert_eq!(binary_default_as_shown("ab", "binary(3)"), None);
        assert_eq!(binary_default_as_shown("0x6", "binary(3)"), None);
    }

    #[test]
    fn defaults_normalise_per_flavour() {
        assert_eq!(normalize_default(Some("NULL"), true, ""), None);
        assert_eq!(
            normalize_default(Some("'it''s'"), true, "").as_deref(),
            Some("it's")
        );
        assert_eq!(normalize_default(Some("0"), true, "").as_deref(), Some("0"));
        assert_eq!(
            normalize_default(
                Some("current_timestamp()"),
                true,
                "on update current_timestamp()"
            )
            .as_deref(),
            Some(CURRENT_TIMESTAMP_DEFAULT)
        );
        assert_eq!(normalize_default(Some("uuid()"), true, ""), None);
        assert_eq!(normalize_default(None, false, ""), None);
        assert_eq!(
            normalize_default(Some("abc"), false, "").as_deref(),
            Some("abc")
        );
        assert_eq!(
            normalize_default(Some("CURRENT_TIMESTAMP"), false, "DEFAULT_GENERATED").as_deref(),
            Some(CURRENT_TIMESTAMP_DEFAULT)
        );
        assert_eq!(
            normalize_default(Some("(rand())"), false, "DEFAULT_GENERATED"),
            None
        );
    }
}
