//! Per-column mapping: MySQL column -> Connect/Avro schema JSON (as Debezium's
//! `BinlogValueConverters` + Confluent `AvroData` write it) and the encoder that
//! writes a [`Cell`] as that schema's Avro datum.
//!
//! Invariants: the union layout chosen here for the schema JSON is the one the
//! encoder writes (`["null",T]` -> null 0 / value 1; `[T,"null"]` when the column
//! has a default -> value 0 / null 1); a NOT NULL column never gets a null: a
//! NULL or zero date there becomes the column default, else the type's zero
//! (epoch), like Debezium's `convertValue` fallback.

use crate::calendar::{civil_from_days, days_from_civil};
use crate::cell::{canonical_decimal, Cell, DateTimeParts};
use crate::charset::{decode_latin1, encode_charset, Charset};
use crate::encode::*;
use crate::error::EnvelopeError;
use crate::json::J;
use crate::options::{
    BigintUnsigned, BinaryHandling, ConverterConfig, DecimalHandling, TimePrecision,
};
use crate::table::{ColumnSchema, CURRENT_TIMESTAMP_DEFAULT};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// Avro int/long (zigzag either way).
    Int,
    /// BIGINT UNSIGNED in precise mode: Decimal(20,0).
    UBigPrecise,
    Bool,
    /// A TINYINT under Debezium's `TinyIntOneToBooleanConverter`: true when
    /// the number is greater than zero (not when it is non-zero, as BIT(1)).
    /// A `Cell::Int` is read as the signed byte the binlog holds (an
    /// unsigned 200 streamed is -56: false, as Debezium's binlog client
    /// gives it), a `Cell::UInt` as the number (the snapshot's 200: true);
    /// the connector's binlog decoder gives an unsigned TINYINT as `Int`.
    TinyBool,
    Float,
    Double,
    DecPrecise,
    DecDouble,
    DecString,
    Str(Charset),
    Bytes,
    /// BINARY/VARBINARY/BLOB under `binary.handling.mode` base64,
    /// base64-url-safe or hex: an Avro string of the encoded bytes.
    BinText(BinaryHandling),
    Json,
    Enum(Vec<String>),
    Set(Vec<String>),
    /// BIT(n>1): little-endian, `len` bytes.
    Bits(usize),
    DateDays,
    TimeMicros,
    TimeMillis,
    TsMillis,
    TsMicros,
    /// `io.debezium.time.ZonedTimestamp` text; the column's fsp (see
    /// [`write_zoned`]).
    Zoned(u32),
    /// GEOMETRY, LINESTRING, POLYGON, MULTI* and GEOMETRYCOLLECTION:
    /// `io.debezium.data.geometry.Geometry`, a struct of the WKB and the
    /// SRID (null for 0). The cell holds MySQL's internal value: a
    /// little-endian SRID, then the WKB.
    Geometry,
    /// POINT: `io.debezium.data.geometry.Point`, the Geometry struct with
    /// the coordinates in front (`x`, `y`, `wkb`, `srid`).
    Point,
    /// MySQL 9's VECTOR: `io.debezium.data.FloatVector`, an array of
    /// floats. The cell holds the column's bytes: little-endian float32s.
    FloatVector,
}

/// Everything needed to encode one column.
#[derive(Debug, Clone)]
pub(crate) struct ColumnCodec {
    /// `<db>.<table>`, for warnings about replaced values.
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// `None`: NOT NULL (no union). `Some((null_branch, value_branch))`.
    pub(crate) union: Option<(u8, u8)>,
    /// Encoded value (no branch byte) written for NULL/zero dates in NOT NULL columns.
    pub(crate) fallback: Vec<u8>,
    /// The field JSON: `{"name":..,"type":..[,"default":..]}`.
    pub(crate) field_json: J,
    /// Connect's own Date/Time/Timestamp logical type (a `java.util.Date` in
    /// Connect), which header text prints as a date, not a number.
    pub(crate) connect_date: bool,
}

fn err(table: &str, col: &ColumnSchema, detail: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Unsupported {
        table: table.to_owned(),
        column: col.name.clone(),
        detail: detail.into(),
    }
}

fn charset_of(table: &str, col: &ColumnSchema) -> Result<Charset, EnvelopeError> {
    match col.charset.as_deref().unwrap_or("utf8mb4").to_lowercase().as_str() {
        "utf8mb4" | "utf8mb3" | "utf8" => Ok(Charset::Utf8),
        "latin1" => Ok(Charset::Latin1),
        "ascii" => Ok(Charset::Ascii),
        other => Err(err(
            table,
            col,
            format!("character set {other} is not supported (utf8mb4, utf8mb3, latin1, ascii, binary are)"),
        )),
    }
}

/// Avro-valid name, as Debezium's `SchemaNameAdjuster` writes it in `avro`
/// mode (`validFullname` with the underscore replacement): every character
/// outside `[A-Za-z0-9_]` becomes `_`, and a leading digit is kept behind a
/// `_` (`1st` becomes `_1st`, not `_st`).
pub(crate) fn sanitize_name(name: &str) -> String {
    adjust(name, |c| c.is_ascii_alphanumeric() || c == '_')
}

/// The same for a dotted full name: dots are kept, and only the very first
/// character must not be a digit (`mysql.1db.t` stays as it is), as
/// Debezium checks a full name as one string.
pub(crate) fn sanitize_fullname(name: &str) -> String {
    adjust(name, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Java strings are UTF-16: a character outside the BMP is two code units,
/// each replaced, so it becomes `__`.
fn adjust(name: &str, valid_after_first: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        let valid = if i == 0 {
            c.is_ascii_alphabetic() || c == '_'
        } else {
            valid_after_first(c)
        };
        if valid {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n('_', c.len_utf16()));
            if i == 0 && c.is_ascii_digit() {
                out.push(c);
            }
        }
    }
    out
}

/// Maps a column to its kind and the Connect schema properties (before defaults).
/// Returns (kind, avro base type, props in AvroData order without connect.default,
/// trailing logical-type props).
#[allow(clippy::type_complexity)]
fn map_column(
    table: &str,
    col: &ColumnSchema,
    cfg: &ConverterConfig,
) -> Result<
    (
        Kind,
        &'static str,
        Option<i64>,
        Option<J>,
        Option<String>,
        Option<&'static str>,
        Vec<(&'static str, J)>,
    ),
    EnvelopeError,
> {
    // (kind, avro type, connect.version, connect.parameters, connect.name, connect.type, logical props)
    let connect = cfg.time_precision == TimePrecision::Connect;
    let fsp = col.datetime_precision.unwrap_or(0).min(6) as u32;
    let named = |name: &str| Some(name.to_owned());
    let params = |kv: Vec<(&str, String)>| {
        Some(J::obj(
            kv.into_iter().map(|(k, v)| (k, J::Str(v))).collect(),
        ))
    };
    // AvroConverter 7.0.16 writes a decimal's `scale` and `precision` right
    // after `type` and `logicalType` last (observed; see `build_column`).
    let decimal_logical = |p: u64, s: u64| {
        vec![
            ("scale", J::int(s as i64)),
            ("precision", J::int(p as i64)),
            ("logicalType", J::s("decimal")),
        ]
    };
    // Every TINYINT is int16, signed or not, TINYINT(1)/BOOLEAN included: what
    // Debezium 3.6.3 registers (observed; its MySQL converter widens TINYINT to
    // SMALLINT). BOOLEAN becomes boolean only with a tinyint-to-boolean converter.
    let u = col.unsigned;
    if cfg.boolean_converters.converts(table, col) {
        return Ok((Kind::TinyBool, "boolean", None, None, None, None, vec![]));
    }
    Ok(match col.data_type.as_str() {
        "tinyint" => (Kind::Int, "int", None, None, None, Some("int16"), vec![]),
        "smallint" if !u => (Kind::Int, "int", None, None, None, Some("int16"), vec![]),
        "smallint" | "mediumint" => (Kind::Int, "int", None, None, None, None, vec![]),
        "int" | "integer" if !u => (Kind::Int, "int", None, None, None, None, vec![]),
        "int" | "integer" => (Kind::Int, "long", None, None, None, None, vec![]),
        "bigint" if u && cfg.bigint_unsigned == BigintUnsigned::Precise => (
            Kind::UBigPrecise,
            "bytes",
            Some(1),
            params(vec![
                ("scale", "0".into()),
                ("connect.decimal.precision", "20".into()),
            ]),
            named("org.apache.kafka.connect.data.Decimal"),
            None,
            decimal_logical(20, 0),
        ),
        "bigint" => (Kind::Int, "long", None, None, None, None, vec![]),
        "float" => (Kind::Float, "float", None, None, None, None, vec![]),
        "double" | "real" => (Kind::Double, "double", None, None, None, None, vec![]),
        "decimal" | "numeric" => {
            let p = col.numeric_precision.unwrap_or(10);
            let s = col.numeric_scale.unwrap_or(0);
            match cfg.decimal_handling {
                DecimalHandling::Precise => (
                    Kind::DecPrecise,
                    "bytes",
                    Some(1),
                    params(vec![
                        ("scale", s.to_string()),
                        ("connect.decimal.precision", p.to_string()),
                    ]),
                    named("org.apache.kafka.connect.data.Decimal"),
                    None,
                    decimal_logical(p, s),
                ),
                DecimalHandling::Double => {
                    (Kind::DecDouble, "double", None, None, None, None, vec![])
                }
                DecimalHandling::String => {
                    (Kind::DecString, "string", None, None, None, None, vec![])
                }
            }
        }
        "bit" if col.numeric_precision.unwrap_or(1) <= 1 => {
            (Kind::Bool, "boolean", None, None, None, None, vec![])
        }
        "bit" => {
            let n = col.numeric_precision.unwrap_or(1);
            (
                Kind::Bits(n.div_ceil(8) as usize),
                "bytes",
                Some(1),
                params(vec![("length", n.to_string())]),
                named("io.debezium.data.Bits"),
                None,
                vec![],
            )
        }
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => (
            Kind::Str(charset_of(table, col)?),
            "string",
            None,
            None,
            None,
            None,
            vec![],
        ),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            match cfg.binary_handling {
                BinaryHandling::Bytes => (Kind::Bytes, "bytes", None, None, None, None, vec![]),
                mode => (
                    Kind::BinText(mode),
                    "string",
                    None,
                    None,
                    None,
                    None,
                    vec![],
                ),
            }
        }
        "json" => (
            Kind::Json,
            "string",
            Some(1),
            None,
            named("io.debezium.data.Json"),
            None,
            vec![],
        ),
        "enum" => (
            Kind::Enum(col.enum_values.clone()),
            "string",
            Some(1),
            params(vec![("allowed", col.enum_values.join(","))]),
            named("io.debezium.data.Enum"),
            None,
            vec![],
        ),
        "set" => (
            Kind::Set(col.enum_values.clone()),
            "string",
            Some(1),
            params(vec![("allowed", col.enum_values.join(","))]),
            named("io.debezium.data.EnumSet"),
            None,
            vec![],
        ),
        "year" => (
            Kind::Int,
            "int",
            Some(1),
            None,
            named("io.debezium.time.Year"),
            None,
            vec![],
        ),
        "date" if connect => (
            Kind::DateDays,
            "int",
            Some(1),
            None,
            named("org.apache.kafka.connect.data.Date"),
            None,
            vec![("logicalType", J::s("date"))],
        ),
        "date" => (
            Kind::DateDays,
            "int",
            Some(1),
            None,
            named("io.debezium.time.Date"),
            None,
            vec![],
        ),
        "time" if connect => (
            Kind::TimeMillis,
            "int",
            Some(1),
            None,
            named("org.apache.kafka.connect.data.Time"),
            None,
            vec![("logicalType", J::s("time-millis"))],
        ),
        "time" => (
            Kind::TimeMicros,
            "long",
            Some(1),
            None,
            named("io.debezium.time.MicroTime"),
            None,
            vec![],
        ),
        "datetime" if connect => (
            Kind::TsMillis,
            "long",
            Some(1),
            None,
            named("org.apache.kafka.connect.data.Timestamp"),
            None,
            vec![("logicalType", J::s("timestamp-millis"))],
        ),
        "datetime" if fsp <= 3 => (
            Kind::TsMillis,
            "long",
            Some(1),
            None,
            named("io.debezium.time.Timestamp"),
            None,
            vec![],
        ),
        "datetime" => (
            Kind::TsMicros,
            "long",
            Some(1),
            None,
            named("io.debezium.time.MicroTimestamp"),
            None,
            vec![],
        ),
        "timestamp" => (
            Kind::Zoned(fsp),
            "string",
            Some(1),
            None,
            named("io.debezium.time.ZonedTimestamp"),
            None,
            vec![],
        ),
        "geometry" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => (
            Kind::Geometry,
            "record",
            Some(1),
            None,
            named(GEOMETRY_NAME),
            None,
            vec![],
        ),
        "point" => (
            Kind::Point,
            "record",
            Some(1),
            None,
            named(POINT_NAME),
            None,
            vec![],
        ),
        "vector" => (
            Kind::FloatVector,
            "array",
            Some(1),
            None,
            named("io.debezium.data.FloatVector"),
            None,
            vec![],
        ),
        other => {
            return Err(err(
                table,
                col,
                format!("column type {other} is not supported"),
            ))
        }
    })
}

const GEOMETRY_NAME: &str = "io.debezium.data.geometry.Geometry";
const POINT_NAME: &str = "io.debezium.data.geometry.Point";

/// What comes before the `connect.*` properties in the type object of a
/// column whose Connect schema is a struct or an array: Avro's record
/// header (`type`, `name`, `namespace`, `fields`; AvroConverter 7.0.16
/// writes the struct's doc only as `connect.doc`, observed), or the
/// array's `items`. `None` for every other kind.
fn structured_head(kind: &Kind) -> Option<Vec<(&'static str, J)>> {
    let field = |name: &str, ty: J| J::obj(vec![("name", J::s(name)), ("type", ty)]);
    let optional = |name: &str, ty: &str| {
        J::obj(vec![
            ("name", J::s(name)),
            ("type", J::Arr(vec![J::s("null"), J::s(ty)])),
            ("default", J::Null),
        ])
    };
    let record = |name: &str, doc: &str, fields: Vec<J>| {
        vec![
            ("type", J::s("record")),
            ("name", J::s(name)),
            ("namespace", J::s("io.debezium.data.geometry")),
            ("fields", J::Arr(fields)),
            ("connect.doc", J::s(doc)),
        ]
    };
    match kind {
        Kind::Geometry => Some(record(
            "Geometry",
            "Geometry",
            vec![field("wkb", J::s("bytes")), optional("srid", "int")],
        )),
        Kind::Point => Some(record(
            "Point",
            "Geometry (POINT)",
            vec![
                field("x", J::s("double")),
                field("y", J::s("double")),
                optional("wkb", "bytes"),
                optional("srid", "int"),
            ],
        )),
        Kind::FloatVector => Some(vec![("type", J::s("array")), ("items", J::s("float"))]),
        _ => None,
    }
}

/// MySQL's internal geometry value split as Debezium's `BinlogGeometry`
/// does: the little-endian SRID (`None` for 0, "unset") and the WKB.
fn split_geometry(b: &[u8]) -> Result<(Option<i32>, &[u8]), String> {
    let (srid, wkb) = b
        .split_first_chunk::<4>()
        .ok_or_else(|| format!("geometry value of {} bytes has no SRID", b.len()))?;
    let srid = i32::from_le_bytes(*srid);
    Ok(((srid != 0).then_some(srid), wkb))
}

/// The coordinates of a 2D WKB point (21 bytes), as Debezium's
/// `Point.parseWKBPoint` reads them: byte order from the first byte.
fn wkb_point(wkb: &[u8]) -> Result<(f64, f64), String> {
    let point: &[u8; 21] = wkb
        .try_into()
        .map_err(|_| format!("WKB of {} bytes is not a 2D point", wkb.len()))?;
    let little = point[0] != 0;
    let (mut ty, mut x, mut y) = ([0u8; 4], [0u8; 8], [0u8; 8]);
    ty.copy_from_slice(&point[1..5]);
    x.copy_from_slice(&point[5..13]);
    y.copy_from_slice(&point[13..21]);
    let (ty, x, y) = if little {
        (
            u32::from_le_bytes(ty),
            f64::from_le_bytes(x),
            f64::from_le_bytes(y),
        )
    } else {
        (
            u32::from_be_bytes(ty),
            f64::from_be_bytes(x),
            f64::from_be_bytes(y),
        )
    };
    match ty {
        1 => Ok((x, y)),
        other => Err(format!("WKB geometry type {other} is not a 2D point")),
    }
}

/// Builds a column's codec: schema JSON, union layout, fallback value.
/// `extra_parameters` (a column mapper's, see `mapping`) go after the
/// converter's own in `connect.parameters`, as the mapper's
/// `alterFieldSchema` adds them after the converter built the schema.
pub(crate) fn build_column(
    table: &str,
    col: &ColumnSchema,
    cfg: &ConverterConfig,
    extra_parameters: &[(&str, String)],
) -> Result<ColumnCodec, EnvelopeError> {
    let (kind, avro_type, version, mut parameters, connect_name, connect_type, logical) =
        map_column(table, col, cfg)?;
    if !extra_parameters.is_empty() {
        let mut all = match parameters {
            Some(J::Obj(fields)) => fields,
            _ => Vec::new(),
        };
        all.extend(
            extra_parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), J::Str(v.clone()))),
        );
        parameters = Some(J::Obj(all));
    }
    // An unparsable default costs the schema its default, never the table (Debezium
    // logs and drops such defaults too); it is reported once, here.
    let default = col.default.as_deref().and_then(|text| {
        default_cell(&kind, col, text)
            .and_then(|c| {
                c.map(|c| default_json(&kind, &c).map(|j| (c, j)))
                    .transpose()
            })
            .unwrap_or_else(|detail| {
                tracing::warn!(
                    table,
                    column = %col.name,
                    default = text,
                    %detail,
                    "column default cannot be represented; the schema carries no default"
                );
                None
            })
    });
    let (default, default_json) = match default {
        Some((c, j)) => (Some(c), Some(j)),
        None => (None, None),
    };

    // The type object, AvroData property order: decimal `scale`/`precision`
    // first, then the connect.* properties, then `logicalType`.
    let (leading, logical): (Vec<_>, Vec<_>) =
        logical.into_iter().partition(|(k, _)| *k != "logicalType");
    let mut props: Vec<(&str, J)> = leading;
    if let Some(v) = version {
        props.push(("connect.version", J::int(v)));
    }
    if let Some(p) = parameters {
        props.push(("connect.parameters", p));
    }
    if let Some(d) = &default_json {
        props.push(("connect.default", d.clone()));
    }
    if let Some(n) = &connect_name {
        props.push(("connect.name", J::Str(n.clone())));
    }
    if let Some(t) = connect_type {
        props.push(("connect.type", J::s(t)));
    }
    props.extend(logical);
    let base = if let Some(mut head) = structured_head(&kind) {
        head.extend(props);
        J::obj(head)
    } else if props.is_empty() {
        J::s(avro_type)
    } else {
        let mut fields = vec![("type", J::s(avro_type))];
        fields.extend(props);
        J::obj(fields)
    };
    let field_name = sanitize_name(&col.name);
    let (field_type, field_default, union) = match (col.nullable, &default_json) {
        (true, None) => (
            J::Arr(vec![J::s("null"), base]),
            Some(J::Null),
            Some((0u8, 1u8)),
        ),
        (true, Some(d)) => (
            J::Arr(vec![base, J::s("null")]),
            Some(d.clone()),
            Some((1u8, 0u8)),
        ),
        (false, d) => (base, d.clone(), None),
    };
    let mut field = vec![("name", J::Str(field_name)), ("type", field_type)];
    if let Some(d) = field_default {
        field.push(("default", d));
    }
    let fallback_cell = default.clone().unwrap_or_else(|| zero_cell(&kind));
    let mut fallback = Vec::new();
    encode_value(&kind, &fallback_cell, &mut fallback).map_err(|d| err(table, col, d))?;
    let connect_date = matches!(
        connect_name.as_deref(),
        Some(
            "org.apache.kafka.connect.data.Date"
                | "org.apache.kafka.connect.data.Time"
                | "org.apache.kafka.connect.data.Timestamp"
        )
    );
    Ok(ColumnCodec {
        connect_date,
        table: table.to_owned(),
        name: col.name.clone(),
        kind,
        union,
        fallback,
        field_json: J::obj(field),
    })
}

/// The value Debezium falls back to for a NOT NULL column without default.
fn zero_cell(kind: &Kind) -> Cell {
    match kind {
        Kind::Int | Kind::UBigPrecise => Cell::Int(0),
        Kind::Bool | Kind::TinyBool => Cell::Int(0),
        Kind::Float => Cell::Float(0.0),
        Kind::Double | Kind::DecDouble => Cell::Double(0.0),
        Kind::DecPrecise | Kind::DecString => Cell::Decimal("0".into()),
        Kind::Str(_)
        | Kind::Bytes
        | Kind::BinText(_)
        | Kind::Json
        | Kind::Enum(_)
        | Kind::Set(_) => Cell::Bytes(Vec::new()),
        Kind::Bits(n) => Cell::Bits(vec![0; *n]),
        Kind::DateDays => Cell::Date {
            year: 1970,
            month: 1,
            day: 1,
        },
        Kind::TimeMicros | Kind::TimeMillis => Cell::Time {
            negative: false,
            hours: 0,
            minutes: 0,
            seconds: 0,
            micros: 0,
        },
        Kind::TsMillis | Kind::TsMicros => Cell::datetime((1970, 1, 1, 0, 0, 0, 0)),
        Kind::Zoned(_) => Cell::TimestampUtc { secs: 0, micros: 0 },
        // Debezium's empty geometry: GEOMETRYCOLLECTION EMPTY, no SRID.
        Kind::Geometry => Cell::Bytes(vec![0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0]),
        // POINT(0 0): Debezium's empty geometry is no point.
        Kind::Point => {
            let mut b = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
            b.extend_from_slice(&[0; 16]);
            Cell::Bytes(b)
        }
        Kind::FloatVector => Cell::Bytes(Vec::new()),
    }
}

fn parse_bits_literal(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix("b'")
        .and_then(|r| r.strip_suffix('\''))
        .unwrap_or(t);
    if inner.chars().all(|c| c == '0' || c == '1') && !inner.is_empty() {
        u64::from_str_radix(inner, 2).map_err(|e| e.to_string())
    } else {
        inner.parse::<u64>().map_err(|e| e.to_string())
    }
}

fn is_zero_date_text(t: &str) -> bool {
    let t = t.trim();
    if t == "0" {
        return true;
    }
    let date = t.split([' ', 'T']).next().unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3 && parts.iter().any(|p| p.chars().all(|c| c == '0'))
}

/// Parses a normalised default literal the way `BinlogDefaultValueConverter` does.
/// `None`: the field gets no default (e.g. a zero date in a nullable column).
fn default_cell(kind: &Kind, col: &ColumnSchema, text: &str) -> Result<Option<Cell>, String> {
    let t = text.trim();
    let bool_num = match t.to_ascii_lowercase().as_str() {
        "true" => Some("1"),
        "false" => Some("0"),
        _ => None,
    };
    let num = bool_num.unwrap_or(t);
    let cell = match kind {
        Kind::Int if col.data_type == "year" => {
            Cell::Int(num.parse::<i64>().map_err(|e| e.to_string())?)
        }
        Kind::Int | Kind::UBigPrecise => {
            // Decimal-looking integer defaults are rounded, as Debezium does.
            let rounded = || -> Result<f64, String> {
                num.parse::<f64>()
                    .map(f64::round)
                    .map_err(|e| format!("{e}: {num:?}"))
            };
            if col.unsigned {
                match num.parse::<u64>() {
                    Ok(u) => Cell::UInt(u),
                    Err(_) => Cell::UInt(rounded()? as u64),
                }
            } else {
                match num.parse::<i64>() {
                    Ok(i) => Cell::Int(i),
                    Err(_) => Cell::Int(rounded()? as i64),
                }
            }
        }
        Kind::Bool => Cell::Int(i64::from(parse_bits_literal(num)? != 0)),
        // The converter sees the default Debezium already parsed as a number.
        Kind::TinyBool if col.unsigned => {
            Cell::UInt(num.parse::<u64>().map_err(|e| format!("{e}: {num:?}"))?)
        }
        Kind::TinyBool => Cell::Int(num.parse::<i64>().map_err(|e| format!("{e}: {num:?}"))?),
        Kind::Bits(n) => {
            let v = parse_bits_literal(t)?;
            Cell::Bits(v.to_be_bytes()[8 - (*n).min(8)..].to_vec())
        }
        Kind::Float => Cell::Float(num.parse::<f64>().map_err(|e| e.to_string())? as f32),
        Kind::Double | Kind::DecDouble => {
            Cell::Double(num.parse::<f64>().map_err(|e| e.to_string())?)
        }
        Kind::DecPrecise | Kind::DecString => Cell::Decimal(canonical_decimal(
            num,
            col.numeric_scale.unwrap_or(0) as usize,
        )?),
        Kind::Str(cs) => Cell::Bytes(encode_charset(t, *cs)?),
        Kind::Bytes | Kind::BinText(_) | Kind::Json | Kind::Enum(_) | Kind::Set(_) => {
            Cell::Bytes(text.as_bytes().to_vec())
        }
        Kind::DateDays => {
            if is_zero_date_text(t) {
                if col.nullable {
                    return Ok(None);
                }
                zero_cell(kind)
            } else {
                let (y, m, d, ..) = parse_dt(t)?;
                Cell::Date {
                    year: y,
                    month: m,
                    day: d,
                }
            }
        }
        Kind::TsMillis | Kind::TsMicros => {
            if is_zero_date_text(t) {
                if col.nullable {
                    return Ok(None);
                }
                zero_cell(kind)
            } else {
                Cell::datetime(parse_dt(t)?)
            }
        }
        Kind::Zoned(_) => {
            if is_zero_date_text(t) || t == CURRENT_TIMESTAMP_DEFAULT {
                if col.nullable {
                    return Ok(None);
                }
                zero_cell(kind)
            } else {
                // Debezium reads the literal in the connector JVM's zone; UTC here.
                let (y, m, d, h, mi, s, us) = parse_dt(t)?;
                let secs = days_from_civil(y as i64, m as u32, d as u32) * 86_400
                    + h as i64 * 3600
                    + mi as i64 * 60
                    + s as i64;
                Cell::TimestampUtc { secs, micros: us }
            }
        }
        Kind::TimeMicros | Kind::TimeMillis => {
            // `YYYY-MM-DD HH:MM:SS` defaults keep their time part.
            let time = t.rsplit(' ').next().unwrap_or(t);
            let (negative, rest) = match time.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, time),
            };
            let (hms, frac) = rest.split_once('.').unwrap_or((rest, ""));
            let mut p = hms.split(':').map(|x| x.parse::<u32>());
            let hours = p
                .next()
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or(0);
            let minutes = p
                .next()
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or(0) as u8;
            let seconds = p
                .next()
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or(0) as u8;
            let micros = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<6}")[..6]
                    .parse::<u32>()
                    .map_err(|e| e.to_string())?
            };
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            }
        }
        // MySQL gives these columns expression defaults only (none here).
        Kind::Geometry | Kind::Point | Kind::FloatVector => {
            return Err(format!("no literal default for a {} column", col.data_type))
        }
    };
    Ok(Some(cell))
}

fn parse_dt(t: &str) -> Result<DateTimeParts, String> {
    let (date, time) = t.split_once([' ', 'T']).unwrap_or((t, ""));
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 {
        return Err(format!("invalid date {t:?}"));
    }
    let p = |s: &str| s.parse::<u32>().map_err(|e| format!("{e} in {t:?}"));
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.split(':').filter(|x| !x.is_empty());
    let h = tp.next().map(p).transpose()?.unwrap_or(0);
    let mi = tp.next().map(p).transpose()?.unwrap_or(0);
    let s = tp.next().map(p).transpose()?.unwrap_or(0);
    let us = if frac.is_empty() {
        0
    } else {
        p(&format!("{frac:0<6}")[..6])?
    };
    Ok((
        p(d[0])? as u16,
        p(d[1])? as u8,
        p(d[2])? as u8,
        h as u8,
        mi as u8,
        s as u8,
        us,
    ))
}

/// Avro JSON default (and `connect.default`) of a default cell, as AvroData writes it.
fn default_json(kind: &Kind, cell: &Cell) -> Result<J, String> {
    let mut enc = Vec::new();
    encode_value(kind, cell, &mut enc)?;
    let latin1 = |b: &[u8]| J::Str(b.iter().map(|&c| c as char).collect());
    Ok(match kind {
        Kind::Bool | Kind::TinyBool => J::Bool(enc[0] != 0),
        Kind::Float => J::Num(fmt_float(f32::from_le_bytes(
            enc[..4].try_into().map_err(|_| "float")?,
        ) as f64)),
        Kind::Double | Kind::DecDouble => J::Num(fmt_float(f64::from_le_bytes(
            enc[..8].try_into().map_err(|_| "double")?,
        ))),
        Kind::Int
        | Kind::DateDays
        | Kind::TimeMicros
        | Kind::TimeMillis
        | Kind::TsMillis
        | Kind::TsMicros => J::int(read_long(&enc)),
        Kind::Str(_)
        | Kind::BinText(_)
        | Kind::Json
        | Kind::Enum(_)
        | Kind::Set(_)
        | Kind::Zoned(_)
        | Kind::DecString => {
            J::Str(String::from_utf8(read_bytes(&enc).to_vec()).map_err(|e| e.to_string())?)
        }
        Kind::Bytes | Kind::Bits(_) | Kind::DecPrecise | Kind::UBigPrecise => {
            latin1(read_bytes(&enc))
        }
        Kind::Geometry | Kind::Point | Kind::FloatVector => {
            return Err("structured values have no default here".into())
        }
    })
}

fn fmt_float(v: f64) -> String {
    // Jackson prints doubles with a fraction part (`1.0`); Rust's Debug does too.
    format!("{v:?}")
}

fn read_long(b: &[u8]) -> i64 {
    let mut z: u64 = 0;
    for (i, byte) in b.iter().enumerate() {
        z |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

pub(crate) fn read_bytes(b: &[u8]) -> &[u8] {
    let len = read_long(b) as usize;
    let header = b.iter().position(|x| x & 0x80 == 0).map_or(0, |p| p + 1);
    &b[header..header + len]
}

fn write_text(out: &mut Vec<u8>, b: &[u8], cs: Charset) -> Result<(), String> {
    match cs {
        Charset::Utf8 | Charset::Ascii => {
            // utf8mb3 is a subset of UTF-8; ASCII bytes are valid UTF-8.
            if std::str::from_utf8(b).is_err() {
                return Err(format!(
                    "invalid {cs:?} bytes {:?}",
                    String::from_utf8_lossy(b)
                ));
            }
            write_bytes(out, b);
        }
        Charset::Latin1 => {
            if b.is_ascii() {
                write_bytes(out, b);
            } else {
                write_str(out, &decode_latin1(b));
            }
        }
    }
    Ok(())
}

fn micros_of_day(h: u32, m: u8, s: u8, us: u32) -> i64 {
    (h as i64 * 3600 + m as i64 * 60 + s as i64) * 1_000_000 + us as i64
}

fn epoch_micros(year: u16, month: u8, day: u8, h: u8, mi: u8, s: u8, us: u32) -> i64 {
    days_from_civil(year as i64, month as u32, day as u32) * 86_400_000_000
        + micros_of_day(h as u32, mi, s, us)
}

/// Writes `YYYY-MM-DDTHH:MM:SS[.f{fsp}]Z` (no allocation: this is per row).
/// `fsp`: `Some` pads the fraction to that many digits (streaming), `None`
/// prints it as needed (snapshot).
fn write_zoned(out: &mut Vec<u8>, secs: i64, micros: u32, fsp: Option<u32>) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let mut buf = [0u8; 32];
    let mut n = 0;
    let mut put = |v: u32, width: usize, sep: Option<u8>| {
        let mut v = v;
        for i in (0..width).rev() {
            buf[n + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        n += width;
        if let Some(c) = sep {
            buf[n] = c;
            n += 1;
        }
    };
    put(y.clamp(0, 9999) as u32, 4, Some(b'-'));
    put(m, 2, Some(b'-'));
    put(d, 2, Some(b'T'));
    put(sod / 3600, 2, Some(b':'));
    put(sod % 3600 / 60, 2, Some(b':'));
    // Debezium's two formatters (ZonedTimestamp.toIsoString): a streamed
    // value (a ZonedDateTime from the binlog client) with exactly the
    // column's fsp digits; a snapshot value (a JDBC Timestamp) with
    // ISO_OFFSET_DATE_TIME, the fraction only when not zero and trailing
    // zeros dropped (`...:01Z`, `...:00.5Z`, `...:00.000001Z`).
    let (frac, digits) = match fsp {
        Some(fsp) => {
            let fsp = fsp.min(6);
            (micros / 10u32.pow(6 - fsp), fsp as usize)
        }
        None => {
            let (mut frac, mut digits) = (micros, 6);
            while frac != 0 && frac % 10 == 0 {
                frac /= 10;
                digits -= 1;
            }
            (frac, if micros == 0 { 0 } else { digits })
        }
    };
    if digits == 0 {
        put(sod % 60, 2, Some(b'Z'));
    } else {
        put(sod % 60, 2, Some(b'.'));
        put(frac, digits, Some(b'Z'));
    }
    write_bytes(out, &buf[..n]);
}

/// A binary value as `binary.handling.mode` writes it, as Debezium's
/// `JdbcValueConverters.convertBinaryTo*`: Java's `Base64.getEncoder()` /
/// `getUrlEncoder()` (both padded) or `HexConverter` (lowercase).
fn binary_text(mode: BinaryHandling, bytes: &[u8]) -> String {
    use base64::Engine as _;
    match mode {
        BinaryHandling::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        BinaryHandling::Base64UrlSafe => base64::engine::general_purpose::URL_SAFE.encode(bytes),
        BinaryHandling::Hex | BinaryHandling::Bytes => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            let mut text = String::with_capacity(bytes.len() * 2);
            for b in bytes {
                text.push(DIGITS[usize::from(b >> 4)] as char);
                text.push(DIGITS[usize::from(b & 0x0f)] as char);
            }
            text
        }
    }
}

fn mismatch(kind: &Kind, cell: &Cell) -> String {
    format!("value {cell:?} does not fit schema kind {kind:?}")
}

/// Writes one non-null value (no union branch) for `kind`.
pub(crate) fn encode_value(kind: &Kind, cell: &Cell, out: &mut Vec<u8>) -> Result<(), String> {
    match (kind, cell) {
        (Kind::Int, Cell::Int(i)) => write_long(out, *i),
        (Kind::Int, Cell::UInt(u)) => write_long(out, *u as i64),
        (Kind::UBigPrecise, Cell::UInt(u)) => {
            write_bytes(out, &unscaled_bytes(false, u.to_string().as_bytes()))
        }
        (Kind::UBigPrecise, Cell::Int(i)) => write_bytes(
            out,
            &unscaled_bytes(*i < 0, i.unsigned_abs().to_string().as_bytes()),
        ),
        (Kind::Bool, Cell::Bits(b)) => write_bool(out, b.iter().any(|&x| x != 0)),
        (Kind::Bool, Cell::Int(i)) => write_bool(out, *i != 0),
        (Kind::Bool, Cell::UInt(u)) => write_bool(out, *u != 0),
        (Kind::TinyBool, Cell::Int(i)) => write_bool(out, (*i as i8) > 0),
        (Kind::TinyBool, Cell::UInt(u)) => write_bool(out, *u > 0),
        (Kind::Float, Cell::Float(f)) => write_float(out, *f),
        (Kind::Float, Cell::Double(d)) => write_float(out, *d as f32),
        (Kind::Double, Cell::Double(d)) => write_double(out, *d),
        (Kind::Double, Cell::Float(f)) => write_double(out, *f as f64),
        (Kind::DecPrecise, Cell::Decimal(t)) => {
            let negative = t.starts_with('-');
            let mut digits = [0u8; 80];
            let mut n = 0;
            for b in t.bytes().filter(u8::is_ascii_digit) {
                *digits
                    .get_mut(n)
                    .ok_or_else(|| format!("decimal {t} too long"))? = b;
                n += 1;
            }
            write_bytes(out, &unscaled_bytes(negative, &digits[..n]));
        }
        (Kind::DecDouble, Cell::Decimal(t)) => {
            write_double(out, t.parse().map_err(|e| format!("{e}: {t}"))?)
        }
        (Kind::DecDouble, Cell::Double(d)) => write_double(out, *d),
        (Kind::DecString, Cell::Decimal(t)) => write_str(out, t),
        (Kind::Str(cs), Cell::Bytes(b)) => write_text(out, b, *cs)?,
        (Kind::Bytes, Cell::Bytes(b)) => write_bytes(out, b),
        (Kind::BinText(mode), Cell::Bytes(b)) => write_str(out, &binary_text(*mode, b)),
        (Kind::Json, Cell::Json(s)) => write_str(out, s),
        (Kind::Json, Cell::Bytes(b)) => write_text(out, b, Charset::Utf8)?,
        (Kind::Enum(labels), Cell::EnumIndex(i)) => {
            let label = match *i {
                0 => "",
                i => labels
                    .get(i as usize - 1)
                    .map(String::as_str)
                    .ok_or_else(|| format!("ENUM index {i} out of range"))?,
            };
            write_str(out, label);
        }
        (Kind::Enum(_) | Kind::Set(_), Cell::Bytes(b)) => write_text(out, b, Charset::Utf8)?,
        (Kind::Set(labels), Cell::SetBits(bits)) => {
            let mut s = String::new();
            for (i, l) in labels.iter().enumerate().take(64) {
                if bits & (1u64 << i) != 0 {
                    if !s.is_empty() {
                        s.push(',');
                    }
                    s.push_str(l);
                }
            }
            write_str(out, &s);
        }
        (Kind::Bits(n), Cell::Bits(be)) => {
            let mut le: Vec<u8> = be.iter().rev().copied().collect();
            le.resize(*n, 0);
            write_bytes(out, &le);
        }
        (Kind::DateDays, Cell::Date { year, month, day }) => write_long(
            out,
            days_from_civil(*year as i64, *month as u32, *day as u32),
        ),
        (
            Kind::DateDays,
            Cell::DateTime {
                year, month, day, ..
            },
        ) => write_long(
            out,
            days_from_civil(*year as i64, *month as u32, *day as u32),
        ),
        (
            Kind::TimeMicros,
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            },
        ) => {
            let v = micros_of_day(*hours, *minutes, *seconds, *micros);
            write_long(out, if *negative { -v } else { v });
        }
        (
            Kind::TimeMillis,
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            },
        ) => {
            // Connect's Time is a time of day; `ColumnCodec::encode` replaces
            // other values before they get here (only a default can).
            if time_outside_day(cell) {
                return Err(format!(
                    "TIME {}{hours}:{minutes:02}:{seconds:02} is outside 00:00:00..24:00:00 and cannot be \
                     written with time.precision.mode=connect; use adaptive_time_microseconds",
                    if *negative { "-" } else { "" }
                ));
            }
            write_long(
                out,
                micros_of_day(*hours, *minutes, *seconds, *micros) / 1000,
            );
        }
        (
            Kind::TsMillis | Kind::TsMicros,
            Cell::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            },
        ) => {
            let us = epoch_micros(*year, *month, *day, *hour, *minute, *second, *micros);
            let millis = matches!(kind, Kind::TsMillis);
            write_long(out, if millis { us.div_euclid(1000) } else { us })
        }
        (Kind::TsMillis, Cell::Date { year, month, day }) => write_long(
            out,
            days_from_civil(*year as i64, *month as u32, *day as u32) * 86_400_000,
        ),
        (Kind::Geometry, Cell::Bytes(b)) => {
            let (srid, wkb) = split_geometry(b)?;
            write_bytes(out, wkb);
            write_opt_long(out, srid.map(i64::from));
        }
        (Kind::Point, Cell::Bytes(b)) => {
            let (srid, wkb) = split_geometry(b)?;
            let (x, y) = wkb_point(wkb)?;
            write_double(out, x);
            write_double(out, y);
            out.push(2);
            write_bytes(out, wkb);
            write_opt_long(out, srid.map(i64::from));
        }
        (Kind::FloatVector, Cell::Bytes(b)) => {
            // Avro's array: a block of n items, then the empty block. The
            // column's bytes are already the items' encoding.
            if b.len() % 4 != 0 {
                return Err(format!("VECTOR value of {} bytes is not float32s", b.len()));
            }
            if !b.is_empty() {
                write_long(out, (b.len() / 4) as i64);
                out.extend_from_slice(b);
            }
            write_long(out, 0);
        }
        (Kind::Zoned(fsp), Cell::TimestampUtc { secs, micros }) => {
            write_zoned(out, *secs, *micros, Some(*fsp))
        }
        (Kind::Zoned(_), Cell::SnapshotTimestamp { secs, micros }) => {
            write_zoned(out, *secs, *micros, None)
        }
        _ => return Err(mismatch(kind, cell)),
    }
    Ok(())
}

/// A TIME that Connect's `Time` (a time of day) cannot hold: negative or
/// beyond 24:00:00 (which itself is allowed, as in Debezium's `Time.toMilliOfDay`).
fn time_outside_day(cell: &Cell) -> bool {
    match cell {
        Cell::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => {
            let us = micros_of_day(*hours, *minutes, *seconds, *micros);
            (*negative && us != 0) || us > 86_400_000_000
        }
        _ => false,
    }
}

impl ColumnCodec {
    /// Writes the field: union branch (if any) and value; NULL and zero dates per
    /// the module invariants.
    ///
    /// A TIME outside 00:00:00..24:00:00 under `time.precision.mode=connect`
    /// is written as NULL (nullable column) or as the column's fallback (NOT
    /// NULL: its default, else 00:00:00) and reported: Debezium's
    /// converter gives up on such a value with a warning and the record is
    /// still sent, so the stream never stops on it. (Debezium itself fails the
    /// record when the column is NOT NULL without a default; we keep going.)
    /// Such a value is pushed to `replaced` for the caller to count and report.
    #[inline]
    pub(crate) fn encode(
        &self,
        cell: &Cell,
        out: &mut Vec<u8>,
        replaced: &mut Vec<Replaced>,
    ) -> Result<(), String> {
        let is_null = matches!(cell, Cell::Null | Cell::ZeroDate)
            || (matches!(self.kind, Kind::TimeMillis)
                && time_outside_day(cell)
                && self.replaced(cell, replaced));
        match (self.union, is_null) {
            (Some((null_branch, _)), true) => write_long(out, null_branch as i64),
            (Some((_, value_branch)), false) => {
                write_long(out, value_branch as i64);
                encode_value(&self.kind, cell, out)?;
            }
            (None, true) => out.extend_from_slice(&self.fallback),
            (None, false) => encode_value(&self.kind, cell, out)?,
        }
        Ok(())
    }

    /// Appends the value as Kafka Connect's `SimpleHeaderConverter` prints
    /// it inside a struct (see [`crate::header_text`]). NULL (and a value
    /// [`Self::encode`] replaces) prints as what `encode` writes instead.
    pub(crate) fn header_text(&self, cell: &Cell, out: &mut String) -> Result<(), String> {
        use crate::header_text::*;
        let replaced = matches!(cell, Cell::Null | Cell::ZeroDate)
            || (matches!(self.kind, Kind::TimeMillis) && time_outside_day(cell));
        if replaced && self.union.is_some() {
            out.push_str("null");
            return Ok(());
        }
        let mut enc = Vec::new();
        if replaced {
            enc.extend_from_slice(&self.fallback);
        } else {
            encode_value(&self.kind, cell, &mut enc)?;
        }
        match &self.kind {
            Kind::Int => out.push_str(&read_long(&enc).to_string()),
            Kind::UBigPrecise => match cell {
                Cell::UInt(u) => out.push_str(&u.to_string()),
                Cell::Int(i) => out.push_str(&i.to_string()),
                _ => out.push('0'),
            },
            Kind::Bool | Kind::TinyBool => out.push_str(if enc[0] != 0 { "true" } else { "false" }),
            Kind::Float => java_float(
                f32::from_le_bytes(enc[..4].try_into().map_err(|_| "float")?),
                out,
            ),
            Kind::Double | Kind::DecDouble => java_double(
                f64::from_le_bytes(enc[..8].try_into().map_err(|_| "double")?),
                out,
            ),
            Kind::DecPrecise => match cell {
                Cell::Decimal(t) => big_decimal(t, out),
                _ => out.push('0'),
            },
            Kind::DecString
            | Kind::Str(_)
            | Kind::BinText(_)
            | Kind::Json
            | Kind::Enum(_)
            | Kind::Set(_)
            | Kind::Zoned(_) => quoted(
                std::str::from_utf8(read_bytes(&enc)).map_err(|e| e.to_string())?,
                out,
            ),
            Kind::Bytes | Kind::Bits(_) => {
                out.push('"');
                base64(read_bytes(&enc), out);
                out.push('"');
            }
            Kind::DateDays if self.connect_date => java_date(read_long(&enc) * 86_400_000, out),
            Kind::TimeMillis | Kind::TsMillis if self.connect_date => {
                java_date(read_long(&enc), out)
            }
            Kind::DateDays
            | Kind::TimeMicros
            | Kind::TimeMillis
            | Kind::TsMillis
            | Kind::TsMicros => out.push_str(&read_long(&enc).to_string()),
            // Structs print as `{"field":value,..}`, lists as `[v,..]`.
            Kind::Geometry | Kind::Point => {
                let mut zero = None;
                let (srid, wkb) =
                    split_geometry(self.structured_bytes(cell, replaced, &mut zero)?)?;
                out.push('{');
                if matches!(self.kind, Kind::Point) {
                    let (x, y) = wkb_point(wkb)?;
                    out.push_str("\"x\":");
                    java_double(x, out);
                    out.push_str(",\"y\":");
                    java_double(y, out);
                    out.push(',');
                }
                out.push_str("\"wkb\":\"");
                base64(wkb, out);
                out.push_str("\",\"srid\":");
                match srid {
                    Some(s) => out.push_str(&s.to_string()),
                    None => out.push_str("null"),
                }
                out.push('}');
            }
            Kind::FloatVector => {
                let mut zero = None;
                let b = self.structured_bytes(cell, replaced, &mut zero)?;
                out.push('[');
                for (i, f) in b.chunks_exact(4).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let mut float = [0u8; 4];
                    float.copy_from_slice(f);
                    java_float(f32::from_le_bytes(float), out);
                }
                out.push(']');
            }
        }
        Ok(())
    }

    /// The bytes a geometry or VECTOR cell prints from: a replaced one's
    /// are its fallback's (`zero_cell`: these columns have no defaults).
    fn structured_bytes<'c>(
        &self,
        cell: &'c Cell,
        replaced: bool,
        zero: &'c mut Option<Cell>,
    ) -> Result<&'c [u8], String> {
        let cell = if replaced {
            &*zero.insert(zero_cell(&self.kind))
        } else {
            cell
        };
        match cell {
            Cell::Bytes(b) => Ok(b),
            other => Err(format!("{} cell {other:?} is not bytes", self.name)),
        }
    }

    /// Records a value written as NULL/fallback instead (always `true`).
    #[cold]
    fn replaced(&self, cell: &Cell, replaced: &mut Vec<Replaced>) -> bool {
        replaced.push(Replaced {
            reason: "time_outside_day",
            table: self.table.clone(),
            column: self.name.clone(),
            detail: format!(
                "TIME {} is outside 00:00:00..24:00:00, which time.precision.mode=connect cannot represent; written as {}",
                match cell {
                    Cell::Time { negative, hours, minutes, seconds, micros } => format!(
                        "{}{hours}:{minutes:02}:{seconds:02}.{micros:06}",
                        if *negative { "-" } else { "" }
                    ),
                    other => format!("{other:?}"),
                },
                if self.union.is_some() { "null" } else { "the column's default (else 00:00:00)" }
            ),
        });
        true
    }
}

/// A value the format cannot represent, written as null (nullable column) or
/// as the column's fallback (its default, else the type's zero) instead of
/// failing the record, as Debezium's converters do. The encoder only reports
/// it: counting and logging are the caller's (a data change nobody sees
/// would be a silent failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// Why, as a short metric label (`time_outside_day`).
    pub reason: &'static str,
    /// `<db>.<table>`.
    pub table: String,
    pub column: String,
    /// The value and what was written instead, for the log.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::BooleanConverters;

    #[test]
    fn zoned_format() {
        let zoned = |secs, micros, fsp| {
            let mut out = Vec::new();
            write_zoned(&mut out, secs, micros, fsp);
            String::from_utf8(out[1..].to_vec()).unwrap()
        };
        // Streamed: the column's fsp digits.
        assert_eq!(zoned(1_673_397_250, 0, Some(0)), "2023-01-11T00:34:10Z");
        assert_eq!(
            zoned(1_673_397_250, 5_000, Some(3)),
            "2023-01-11T00:34:10.005Z"
        );
        assert_eq!(zoned(1, 0, Some(3)), "1970-01-01T00:00:01.000Z");
        assert_eq!(zoned(0, 0, Some(6)), "1970-01-01T00:00:00.000000Z");
        // Snapshot: as Debezium's ISO_OFFSET_DATE_TIME, no zero fraction and
        // no trailing zeros, whatever the column's fsp.
        assert_eq!(zoned(1, 0, None), "1970-01-01T00:00:01Z");
        assert_eq!(
            zoned(1_709_208_000, 500_000, None),
            "2024-02-29T12:00:00.5Z"
        );
        assert_eq!(zoned(1_767_225_600, 1, None), "2026-01-01T00:00:00.000001Z");
        assert_eq!(
            zoned(2_147_483_647, 999_000, None),
            "2038-01-19T03:14:07.999Z"
        );
        assert_eq!(
            zoned(2_147_483_647, 999_999, None),
            "2038-01-19T03:14:07.999999Z"
        );
        // Through the codec: the cell says which phase it comes from.
        let mut out = Vec::new();
        let cell = Cell::SnapshotTimestamp { secs: 1, micros: 0 };
        encode_value(&Kind::Zoned(6), &cell, &mut out).unwrap();
        assert_eq!(&out[1..], b"1970-01-01T00:00:01Z");
        out.clear();
        let cell = Cell::TimestampUtc { secs: 1, micros: 0 };
        encode_value(&Kind::Zoned(6), &cell, &mut out).unwrap();
        assert_eq!(&out[1..], b"1970-01-01T00:00:01.000000Z");
    }

    /// Debezium's defaults, as a connector configured with nothing else has them.
    fn test_config() -> ConverterConfig {
        ConverterConfig::new("p", "v")
    }

    fn time_column(nullable: bool, default: Option<&str>) -> ColumnCodec {
        let col = ColumnSchema {
            name: "t".into(),
            data_type: "time".into(),
            column_type: "time".into(),
            nullable,
            default: default.map(str::to_owned),
            ..ColumnSchema::default()
        };
        let cfg = ConverterConfig {
            time_precision: TimePrecision::Connect,
            ..test_config()
        };
        build_column("db.t", &col, &cfg, &[]).unwrap()
    }

    fn time(negative: bool, hours: u32, micros: u32) -> Cell {
        Cell::Time {
            negative,
            hours,
            minutes: 0,
            seconds: 0,
            micros,
        }
    }

    fn encoded(codec: &ColumnCodec, cell: &Cell) -> Vec<u8> {
        let mut out = Vec::new();
        let mut replaced = Vec::new();
        codec.encode(cell, &mut out, &mut replaced).unwrap();
        out
    }

    #[test]
    fn connect_time_outside_a_day_is_replaced_not_fatal() {
        let nullable = time_column(true, None);
        // Nullable: the null branch (0 of ["null", int]).
        assert_eq!(encoded(&nullable, &time(false, 838, 0)), [0]);
        assert_eq!(encoded(&nullable, &time(true, 1, 0)), [0]);
        assert_eq!(encoded(&nullable, &time(false, 24, 1)), [0]);
        // 24:00:00 itself is a valid time of day for Debezium (86_400_000 ms).
        let mut want = vec![2];
        write_long(&mut want, 86_400_000);
        assert_eq!(encoded(&nullable, &time(false, 24, 0)), want);
        // -00:00:00 is zero.
        assert_eq!(encoded(&nullable, &time(true, 0, 0)), [2, 0]);

        // Each replaced value is reported to the caller, not counted here.
        let mut replaced = Vec::new();
        nullable
            .encode(&time(false, 838, 0), &mut Vec::new(), &mut replaced)
            .unwrap();
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced[0].reason, "time_outside_day");
        assert_eq!(
            (replaced[0].table.as_str(), replaced[0].column.as_str()),
            ("db.t", "t")
        );
        assert!(replaced[0]
            .detail
            .starts_with("TIME 838:00:00.000000 is outside"));
        nullable
            .encode(&time(false, 1, 0), &mut Vec::new(), &mut replaced)
            .unwrap();
        assert_eq!(replaced.len(), 1, "an in-range TIME is not replaced");

        // NOT NULL without default: the converter's fallback, 00:00:00.
        let not_null = time_column(false, None);
        assert_eq!(encoded(&not_null, &time(false, 100, 0)), [0]);
        // NOT NULL with a default: the default (12:00:00 = 43_200_000 ms).
        let with_default = time_column(false, Some("12:00:00"));
        let mut want = Vec::new();
        write_long(&mut want, 43_200_000);
        assert_eq!(encoded(&with_default, &time(true, 5, 0)), want);
    }

    fn binary_column(mode: BinaryHandling, nullable: bool, default: Option<&str>) -> ColumnCodec {
        let col = ColumnSchema {
            name: "b".into(),
            data_type: "varbinary".into(),
            column_type: "varbinary(8)".into(),
            nullable,
            default: default.map(str::to_owned),
            ..ColumnSchema::default()
        };
        let cfg = ConverterConfig {
            binary_handling: mode,
            ..test_config()
        };
        build_column("db.t", &col, &cfg, &[]).unwrap()
    }

    #[test]
    fn binary_handling_modes_write_strings_as_java_encodes_them() {
        let bytes = [0xfb, 0xff, 0x00, 0x41];
        for (mode, text) in [
            (BinaryHandling::Base64, "+/8AQQ=="),
            (BinaryHandling::Base64UrlSafe, "-_8AQQ=="),
            (BinaryHandling::Hex, "fbff0041"),
        ] {
            let codec = binary_column(mode, false, None);
            assert_eq!(
                codec.field_json.to_json(),
                r#"{"name":"b","type":"string"}"#
            );
            let mut want = Vec::new();
            write_str(&mut want, text);
            assert_eq!(
                encoded(&codec, &Cell::Bytes(bytes.to_vec())),
                want,
                "{mode:?}"
            );
            // A default is written in the same encoding.
            let with_default = binary_column(mode, true, Some("ab"));
            let field = with_default.field_json.to_json();
            let default = match mode {
                BinaryHandling::Hex => "6162",
                _ => "YWI=",
            };
            assert!(
                field.contains(&format!(r#""default":"{default}""#)),
                "{mode:?}: {field}"
            );
        }
        let bytes_mode = binary_column(BinaryHandling::Bytes, false, None);
        assert_eq!(
            bytes_mode.field_json.to_json(),
            r#"{"name":"b","type":"bytes"}"#
        );
        assert_eq!(
            BinaryHandling::parse("base64-url-safe"),
            Some(BinaryHandling::Base64UrlSafe)
        );
        assert_eq!(BinaryHandling::parse("BYTES"), None);
    }

    fn tinyint_column(
        column_type: &str,
        nullable: bool,
        default: Option<&str>,
        converters: &BooleanConverters,
    ) -> ColumnCodec {
        let col = ColumnSchema {
            name: "f".into(),
            data_type: "tinyint".into(),
            column_type: column_type.into(),
            unsigned: column_type.contains("unsigned"),
            nullable,
            default: default.map(str::to_owned),
            ..ColumnSchema::default()
        };
        let cfg = ConverterConfig {
            boolean_converters: converters.clone(),
            ..test_config()
        };
        build_column("db.t", &col, &cfg, &[]).unwrap()
    }

    #[test]
    fn tinyint_boolean_converter_selects_and_converts_as_debezium() {
        let anchored = |p: &str| regex::Regex::new(&format!("(?i)^(?:{p})$")).unwrap();
        let mut all_ones = BooleanConverters::default();
        all_ones.push(Vec::new(), true);

        // TINYINT(1): boolean, optional, default converted (1 -> true).
        let codec = tinyint_column("tinyint(1)", true, Some("1"), &all_ones);
        assert_eq!(
            codec.field_json.to_json(),
            r#"{"name":"f","type":[{"type":"boolean","connect.default":true},"null"],"default":true}"#
        );
        // Greater than zero is true; -1 is false (Debezium's intValue() > 0).
        for (cell, want) in [
            (Cell::Int(1), 1u8),
            (Cell::Int(2), 1),
            (Cell::Int(0), 0),
            (Cell::Int(-1), 0),
            (Cell::Int(-128), 0),
            (Cell::UInt(200), 1),
            // An unsigned TINYINT from the binlog: the signed byte.
            (Cell::Int(200), 0),
            (Cell::Int(100), 1),
        ] {
            assert_eq!(encoded(&codec, &cell), [0, want], "{cell:?}");
        }
        // NOT NULL without default: false.
        let not_null = tinyint_column("tinyint(1)", false, None, &all_ones);
        assert_eq!(
            not_null.field_json.to_json(),
            r#"{"name":"f","type":"boolean"}"#
        );
        // The length checker leaves plain TINYINT alone.
        let plain = tinyint_column("tinyint", true, None, &all_ones);
        assert!(plain.field_json.to_json().contains("int16"));

        // Without the length checker, a selector picks columns by name.
        let mut selected = BooleanConverters::default();
        selected.push(vec![anchored(r"db\.t\.F")], false);
        let wide = tinyint_column("tinyint unsigned", true, None, &selected);
        assert_eq!(
            wide.field_json.to_json(),
            r#"{"name":"f","type":["null","boolean"],"default":null}"#
        );
        let mut other = BooleanConverters::default();
        other.push(vec![anchored(r"db\.t\.g")], false);
        let kept = tinyint_column("tinyint(1)", true, None, &other);
        assert!(kept.field_json.to_json().contains("int16"));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("a-b c"), "a_b_c");
        assert_eq!(sanitize_name("1abc"), "_1abc");
        assert_eq!(sanitize_name("ünï"), "_n_");
        assert_eq!(sanitize_name("a😀"), "a__");
        assert_eq!(sanitize_fullname("mysql.my-db.t1"), "mysql.my_db.t1");
        assert_eq!(sanitize_fullname("mysql.1db.t1"), "mysql.1db.t1");
        assert_eq!(sanitize_fullname("1.x"), "_1.x");
    }

    fn wkb_point(x: f64, y: f64) -> Vec<u8> {
        let mut b = vec![1, 1, 0, 0, 0];
        b.extend_from_slice(&x.to_le_bytes());
        b.extend_from_slice(&y.to_le_bytes());
        b
    }

    fn mysql_geometry(srid: u32, wkb: &[u8]) -> Cell {
        let mut b = srid.to_le_bytes().to_vec();
        b.extend_from_slice(wkb);
        Cell::Bytes(b)
    }

    #[test]
    fn geometry_is_the_wkb_and_the_srid_or_null() {
        let wkb = wkb_point(1.0, 2.0);
        let mut out = Vec::new();
        encode_value(&Kind::Geometry, &mysql_geometry(4326, &wkb), &mut out).unwrap();
        let mut expected = vec![42]; // 21 bytes, zigzag
        expected.extend_from_slice(&wkb);
        expected.extend_from_slice(&[2, 0xcc, 0x43]); // branch 1, zigzag(4326)
        assert_eq!(out, expected);

        out.clear();
        encode_value(&Kind::Geometry, &mysql_geometry(0, &wkb), &mut out).unwrap();
        assert_eq!(out.last(), Some(&0), "SRID 0 is null");
        assert!(encode_value(&Kind::Geometry, &Cell::Bytes(vec![1, 2]), &mut out).is_err());
    }

    #[test]
    fn point_puts_its_coordinates_first_and_refuses_other_shapes() {
        let wkb = wkb_point(-1.5, 2.25);
        let mut out = Vec::new();
        encode_value(&Kind::Point, &mysql_geometry(0, &wkb), &mut out).unwrap();
        assert_eq!(&out[..8], &(-1.5f64).to_le_bytes());
        assert_eq!(&out[8..16], &2.25f64.to_le_bytes());
        assert_eq!(&out[16..18], &[2, 42]);
        assert_eq!(&out[18..39], &wkb[..]);
        assert_eq!(&out[39..], &[0]);
        // Big-endian WKB reads the same.
        let mut be = vec![0, 0, 0, 0, 1];
        be.extend_from_slice(&(-1.5f64).to_be_bytes());
        be.extend_from_slice(&2.25f64.to_be_bytes());
        let mut out_be = Vec::new();
        encode_value(&Kind::Point, &mysql_geometry(0, &be), &mut out_be).unwrap();
        assert_eq!(&out_be[..16], &out[..16]);
        // A LINESTRING is no point.
        let line = [1, 2, 0, 0, 0, 0, 0, 0, 0];
        assert!(encode_value(&Kind::Point, &mysql_geometry(0, &line), &mut out).is_err());
    }

    #[test]
    fn vector_is_an_array_of_its_floats() {
        let floats: Vec<u8> = [1.5f32, -2.0, 3.25]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        encode_value(&Kind::FloatVector, &Cell::Bytes(floats.clone()), &mut out).unwrap();
        assert_eq!(out[0], 6, "one block of 3 items");
        assert_eq!(&out[1..13], &floats[..]);
        assert_eq!(&out[13..], &[0]);
        out.clear();
        encode_value(&Kind::FloatVector, &Cell::Bytes(Vec::new()), &mut out).unwrap();
        assert_eq!(out, [0]);
        assert!(encode_value(&Kind::FloatVector, &Cell::Bytes(vec![0; 5]), &mut out).is_err());
    }

    #[test]
    fn structured_columns_have_debeziums_connect_schemas() {
        let col = |name: &str, data_type: &str, nullable: bool| ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable,
            ..ColumnSchema::default()
        };
        let geometry = build_column("db.t", &col("g", "polygon", true), &test_config(), &[])
            .unwrap()
            .field_json
            .to_json();
        assert_eq!(
            geometry,
            r#"{"name":"g","type":["null",{"type":"record","name":"Geometry","namespace":"io.debezium.data.geometry","fields":[{"name":"wkb","type":"bytes"},{"name":"srid","type":["null","int"],"default":null}],"connect.doc":"Geometry","connect.version":1,"connect.name":"io.debezium.data.geometry.Geometry"}],"default":null}"#
        );
        let point = build_column("db.t", &col("p", "point", false), &test_config(), &[])
            .unwrap()
            .field_json
            .to_json();
        assert!(
            point.starts_with(r#"{"name":"p","type":{"type":"record","name":"Point","#),
            "{point}"
        );
        let vector = build_column("db.t", &col("v", "vector", true), &test_config(), &[])
            .unwrap()
            .field_json
            .to_json();
        assert_eq!(
            vector,
            r#"{"name":"v","type":["null",{"type":"array","items":"float","connect.version":1,"connect.name":"io.debezium.data.FloatVector"}],"default":null}"#
        );
        for json in [geometry, point, vector] {
            serde_json::from_str::<serde_json::Value>(&json).unwrap();
        }
    }

    #[test]
    fn a_struct_type_is_defined_once_per_schema() {
        let col = |name: &str, data_type: &str| ColumnSchema {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: true,
            ..ColumnSchema::default()
        };
        let table = crate::TableSchema {
            database: "db".into(),
            table: "t".into(),
            columns: vec![
                ColumnSchema {
                    nullable: false,
                    ..col("id", "int")
                },
                col("g", "geometry"),
                col("ls", "linestring"),
                col("p", "point"),
                col("q", "point"),
            ],
            primary_key: vec![0],
        };
        let codec = crate::TableCodec::new(&table, &test_config()).unwrap();
        let schema = &codec.value_schema_json;
        assert_eq!(
            schema.matches(r#""name":"Geometry""#).count(),
            1,
            "{schema}"
        );
        assert_eq!(schema.matches(r#""name":"Point""#).count(), 1, "{schema}");
        assert!(schema.contains(r#"{"name":"ls","type":["null","io.debezium.data.geometry.Geometry"],"default":null}"#), "{schema}");
        assert!(
            schema.contains(
                r#"{"name":"q","type":["null","io.debezium.data.geometry.Point"],"default":null}"#
            ),
            "{schema}"
        );
    }

    /// Key header text (`__debezium.newkey`): Connect's `Values` prints a
    /// struct as `{"field":value,..}` in schema order and a list as `[..]`;
    /// a replaced NOT NULL value as the fallback the record carries.
    #[test]
    fn structured_values_print_as_connect_header_text() {
        let codec = |data_type: &str, nullable: bool| {
            let col = ColumnSchema {
                name: "c".into(),
                data_type: data_type.into(),
                column_type: data_type.into(),
                nullable,
                ..ColumnSchema::default()
            };
            build_column("db.t", &col, &test_config(), &[]).unwrap()
        };
        let text = |codec: &ColumnCodec, cell: &Cell| {
            let mut out = String::new();
            codec.header_text(cell, &mut out).unwrap();
            out
        };
        let point = mysql_geometry(0, &wkb_point(1.5, -2.0));
        assert_eq!(
            text(&codec("point", true), &point),
            r#"{"x":1.5,"y":-2.0,"wkb":"AQEAAAAAAAAAAAD4PwAAAAAAAADA","srid":null}"#
        );
        assert_eq!(
            text(
                &codec("geometry", true),
                &mysql_geometry(4326, &wkb_point(1.5, -2.0))
            ),
            r#"{"wkb":"AQEAAAAAAAAAAAD4PwAAAAAAAADA","srid":4326}"#
        );
        assert_eq!(
            text(&codec("point", false), &Cell::Null),
            r#"{"x":0.0,"y":0.0,"wkb":"AQEAAAAAAAAAAAAAAAAAAAAAAAAA","srid":null}"#
        );
        assert_eq!(text(&codec("point", true), &Cell::Null), "null");
        let floats: Vec<u8> = [1.5f32, -2.0, 3.25]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(
            text(&codec("vector", true), &Cell::Bytes(floats)),
            "[1.5,-2.0,3.25]"
        );
    }
}
