//! The Debezium converter options the format depends on: `decimal.handling.mode`,
//! `time.precision.mode`, `bigint.unsigned.handling.mode`,
//! `binary.handling.mode`, `column.exclude.list`,
//! the column mappers (`column.truncate.to.N.chars`, `column.mask.with.N.chars`,
//! `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`,
//! `column.propagate.source.type`, `datatype.propagate.source.type`),
//! `message.key.columns` and the TINYINT-to-boolean custom converter
//! (`converters`), plus the topic prefix and `source.version`. The
//! connector parses its configuration into these; nothing here reads a
//! configuration.
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

/// `binary.handling.mode`: how BINARY, VARBINARY and the BLOBs are written
/// (BIT(n) stays `io.debezium.data.Bits` bytes, as in Debezium).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryHandling {
    /// Avro `bytes`.
    #[default]
    Bytes,
    /// A `string` of standard base64 with padding (Java's `Base64.getEncoder()`).
    Base64,
    /// A `string` of URL-safe base64 with padding (`Base64.getUrlEncoder()`).
    Base64UrlSafe,
    /// A `string` of lowercase hex (Debezium's `HexConverter`).
    Hex,
}

impl BinaryHandling {
    /// The mode a `binary.handling.mode` value names.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "bytes" => Self::Bytes,
            "base64" => Self::Base64,
            "base64-url-safe" => Self::Base64UrlSafe,
            "hex" => Self::Hex,
            _ => return None,
        })
    }
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
        self.include == other.include && same_patterns(&self.patterns, &other.patterns)
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
    pub binary_handling: BinaryHandling,
    /// `source.version`.
    pub connector_version: String,
    /// `column.exclude.list` / `column.include.list`: columns left out of the
    /// value schema and values (still in the key when part of the primary
    /// key, as in Debezium).
    pub excluded_columns: ColumnFilter,
    /// `column.truncate.*`, `column.mask.*`, `*.propagate.source.type`:
    /// value fields of before/after (never the key) get schema parameters
    /// and, for truncate and mask, rewritten values.
    pub column_mappers: ColumnMappers,
    /// `message.key.columns`: the record key of the tables it names, in place
    /// of the primary key.
    pub message_key_columns: MessageKeyColumns,
    /// `converters` naming Debezium's `TinyIntOneToBooleanConverter`: the
    /// TINYINT columns it selects are `boolean`, in keys and values.
    pub boolean_converters: BooleanConverters,
}

impl ConverterConfig {
    /// A default Debezium connector's settings: every option at Debezium's
    /// default (the module's invariant), with this prefix and version.
    pub fn new(topic_prefix: &str, connector_version: &str) -> Self {
        Self {
            topic_prefix: topic_prefix.to_owned(),
            decimal_handling: DecimalHandling::default(),
            time_precision: TimePrecision::default(),
            bigint_unsigned: BigintUnsigned::default(),
            binary_handling: BinaryHandling::default(),
            connector_version: connector_version.to_owned(),
            excluded_columns: ColumnFilter::default(),
            column_mappers: ColumnMappers::default(),
            message_key_columns: MessageKeyColumns::default(),
            boolean_converters: BooleanConverters::default(),
        }
    }
}

/// Same patterns (by their text): lets [`ConverterConfig`] stay `Eq`.
fn same_patterns(a: &[Regex], b: &[Regex]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.as_str() == b.as_str())
}

/// A Java `MessageDigest` algorithm `column.mask.hash.<algorithm>...` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlgorithm {
    /// Every algorithm with its Java standard name.
    pub const ALL: [(HashAlgorithm, &'static str); 12] = [
        (HashAlgorithm::Md5, "MD5"),
        (HashAlgorithm::Sha1, "SHA-1"),
        (HashAlgorithm::Sha224, "SHA-224"),
        (HashAlgorithm::Sha256, "SHA-256"),
        (HashAlgorithm::Sha384, "SHA-384"),
        (HashAlgorithm::Sha512, "SHA-512"),
        (HashAlgorithm::Sha512_224, "SHA-512/224"),
        (HashAlgorithm::Sha512_256, "SHA-512/256"),
        (HashAlgorithm::Sha3_224, "SHA3-224"),
        (HashAlgorithm::Sha3_256, "SHA3-256"),
        (HashAlgorithm::Sha3_384, "SHA3-384"),
        (HashAlgorithm::Sha3_512, "SHA3-512"),
    ];

    /// From a Java standard name, case-insensitively as `MessageDigest.getInstance`
    /// takes it (`SHA-256`, `sha-256`, `MD5`); `SHA` and `SHA1` are Java's aliases of SHA-1.
    pub fn from_java_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("SHA") || name.eq_ignore_ascii_case("SHA1") {
            return Some(HashAlgorithm::Sha1);
        }
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(a, _)| *a)
    }

    /// The Java standard name.
    pub fn java_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("?", |(_, n)| n)
    }
}

/// Which bytes of a value `column.mask.hash` digests: Debezium's
/// `HashingByteArrayStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashVersion {
    /// `column.mask.hash.<alg>...`: the Java serialization of the `String`
    /// (`ObjectOutputStream.writeObject`), Debezium's historical input.
    V1,
    /// `column.mask.hash.v2.<alg>...`: the string's bytes, so the digest is
    /// reproducible outside Java (`SHA2(CONCAT(salt, value), 256)`).
    V2,
}

/// What one column-mapper rule does to the columns it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnMapping {
    /// `column.truncate.to.N.chars`: text longer than N UTF-16 units (Java
    /// `String.length()`) and binary values longer than N bytes are cut.
    Truncate(usize),
    /// `column.mask.with.N.chars`: CHAR/VARCHAR/TEXT/ENUM/SET values become
    /// N asterisks.
    Mask(usize),
    /// `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`: CHAR/VARCHAR/
    /// TEXT/ENUM/SET values become the hex digest of salt + value, cut to the
    /// column's declared length.
    Hash {
        algorithm: HashAlgorithm,
        salt: String,
        version: HashVersion,
    },
    /// `column.propagate.source.type` / `datatype.propagate.source.type`:
    /// values unchanged; the value schema gets the column's source type,
    /// length, scale and name as `__debezium.source.column.*` parameters
    /// (what a JDBC sink reads to create the exact column type).
    PropagateSourceType,
}

/// What a rule's patterns are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapperSelector {
    /// The whole `<db>.<table>.<column>` name.
    Column,
    /// `<db>.<table>.<type name>`, the type name as Debezium's DDL parser
    /// records it (`VARCHAR`, `INT UNSIGNED`; [`crate::ColumnSchema::type_name`]).
    DataType,
}

/// Column-mapper rules in precedence order: the first rule whose patterns
/// match a column applies (Debezium's `ColumnMappers.mapperFor`); one rule
/// per column. Compile the patterns anchored and case-insensitive, as the
/// connector's configuration does.
#[derive(Debug, Clone, Default)]
pub struct ColumnMappers {
    rules: Vec<(MapperSelector, Vec<Regex>, ColumnMapping)>,
}

impl ColumnMappers {
    /// Adds a rule naming columns after the existing ones (so with lower
    /// precedence).
    pub fn push(&mut self, patterns: Vec<Regex>, mapping: ColumnMapping) {
        self.push_matching(MapperSelector::Column, patterns, mapping);
    }

    /// Adds a rule whose patterns match what `selector` says, after the
    /// existing ones.
    pub fn push_matching(
        &mut self,
        selector: MapperSelector,
        patterns: Vec<Regex>,
        mapping: ColumnMapping,
    ) {
        self.rules.push((selector, patterns, mapping));
    }

    /// Whether no column is ever mapped (the common case: no work per table).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The mapping of `database.table.column` (whose source type name is
    /// `type_name`), if a rule names it.
    pub fn mapping_for(
        &self,
        database: &str,
        table: &str,
        column: &str,
        type_name: &str,
    ) -> Option<&ColumnMapping> {
        if self.rules.is_empty() {
            return None;
        }
        let full = format!("{database}.{table}.{column}");
        let typed = format!("{database}.{table}.{type_name}");
        self.rules
            .iter()
            .find(|(selector, patterns, _)| {
                let subject = match selector {
                    MapperSelector::Column => &full,
                    MapperSelector::DataType => &typed,
                };
                patterns.iter().any(|r| r.is_match(subject))
            })
            .map(|(_, _, m)| m)
    }
}

impl PartialEq for ColumnMappers {
    fn eq(&self, other: &Self) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|((sa, pa, ma), (sb, pb, mb))| sa == sb && ma == mb && same_patterns(pa, pb))
    }
}

impl Eq for ColumnMappers {}

/// `message.key.columns`: per table, the columns that make the record key
/// (Debezium's `Key.CustomKeyMapper`). Each pattern matches a whole
/// `<db>.<table>.<column>` name (the rule `shop.t:a,b` gives the patterns
/// `shop.t.a` and `shop.t.b`); a table's key is, pattern by pattern, the
/// columns each matches in table order. A table no pattern names keeps its
/// primary key.
#[derive(Debug, Clone, Default)]
pub struct MessageKeyColumns {
    patterns: Vec<Regex>,
}

impl MessageKeyColumns {
    /// From compiled `<table regex>\.<column>` patterns, in the setting's order.
    pub fn new(patterns: Vec<Regex>) -> Self {
        Self { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Indices into `columns` of the key of `database.table`, `None` when no
    /// pattern names one of its columns (the primary key then).
    pub fn key_for(&self, database: &str, table: &str, columns: &[&str]) -> Option<Vec<usize>> {
        if self.patterns.is_empty() {
            return None;
        }
        let full: Vec<String> = columns
            .iter()
            .map(|c| format!("{database}.{table}.{c}"))
            .collect();
        let mut key = Vec::new();
        for pattern in &self.patterns {
            for (i, name) in full.iter().enumerate() {
                if pattern.is_match(name) && !key.contains(&i) {
                    key.push(i);
                }
            }
        }
        (!key.is_empty()).then_some(key)
    }
}

impl PartialEq for MessageKeyColumns {
    fn eq(&self, other: &Self) -> bool {
        same_patterns(&self.patterns, &other.patterns)
    }
}

impl Eq for MessageKeyColumns {}

/// Debezium's `TinyIntOneToBooleanConverter`, one rule per converter the
/// `converters` setting names with that type (`<name>.selector`,
/// `<name>.length.checker`). A column is converted when a rule selects it:
/// its type is TINYINT or TINYINT UNSIGNED, its declared length is 1 unless
/// the rule's length checker is off, and the rule has no selector or one of
/// its patterns matches `<db>.<table>.<column>`. Every rule converts the same
/// way, so which of several rules matched does not matter.
///
/// Invariant: the converted column's schema is Connect's `boolean` (the
/// converter's `SchemaBuilder.bool()`, optional and with a default as the
/// column is) and a value is true exactly when it is greater than zero:
/// Debezium 3.6.3's converter tests `Number.intValue() > 0`, so a TINYINT(1)
/// holding -1 is false (MySQL would call it true).
#[derive(Debug, Clone, Default)]
pub struct BooleanConverters {
    rules: Vec<BooleanRule>,
}

#[derive(Debug, Clone)]
struct BooleanRule {
    /// Empty: every TINYINT column of every captured table.
    selector: Vec<Regex>,
    length_checker: bool,
}

impl BooleanConverters {
    /// Adds one converter's rule. Compile `selector` anchored and
    /// case-insensitive, as Debezium's `Predicates.includes` does.
    pub fn push(&mut self, selector: Vec<Regex>, length_checker: bool) {
        self.rules.push(BooleanRule {
            selector,
            length_checker,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `column` of `qualified_table` (`<db>.<table>`) is written as a boolean.
    pub fn converts(&self, qualified_table: &str, column: &crate::ColumnSchema) -> bool {
        if self.rules.is_empty() || column.data_type != "tinyint" {
            return false;
        }
        let declared_one = column.length() == Some(1);
        let full = format!("{qualified_table}.{}", column.name);
        self.rules.iter().any(|rule| {
            (!rule.length_checker || declared_one)
                && (rule.selector.is_empty() || rule.selector.iter().any(|r| r.is_match(&full)))
        })
    }
}

impl PartialEq for BooleanConverters {
    fn eq(&self, other: &Self) -> bool {
        self.rules.len() == other.rules.len()
            && self.rules.iter().zip(&other.rules).all(|(a, b)| {
                a.length_checker == b.length_checker && same_patterns(&a.selector, &b.selector)
            })
    }
}

impl Eq for BooleanConverters {}
