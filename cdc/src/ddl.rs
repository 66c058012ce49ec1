//! What goes to the schema-change topic (`include.schema.changes`): the DDL
//! statements Debezium's MySQL connector records, for the captured databases.
//!
//! Snapshot ([`snapshot_changes`]), in Debezium's order
//! (`BinlogSnapshotChangeEventSource.readTableStructure`): `SET
//! character_set_server=..., collation_server=...`; `DROP TABLE IF EXISTS`
//! for every table of the captured databases (sorted by `<db>.<table>`); then
//! per database `DROP DATABASE IF EXISTS`, `CREATE DATABASE .. CHARSET ..
//! COLLATE ..`, `USE`, and each table's `SHOW CREATE TABLE` text.
//!
//! Streaming ([`streaming_changes`]): each CREATE/ALTER/DROP/RENAME statement
//! of the binlog (TRUNCATE is a row operation: never a schema change, a
//! truncate record on the table's topic unless `skipped.operations` has `t`;
//! [`truncated_table`] names its table) whose database is
//! captured, split into one record per table like Debezium's DDL parser does
//! (a `DROP TABLE a, b` becomes `DROP TABLE `db`.`a`` and `DROP TABLE
//! `db`.`b``).
//!
//! Where this cannot equal Debezium: Debezium keeps its own schema model by
//! parsing every DDL statement and serialises a table from that model; here a
//! created or altered table is read from information_schema when the
//! statement is processed. When cdc lags behind several statements on one
//! table (or the table was dropped since), the `table` block shows the
//! current definition (or is null), not the one right after that statement.
//! Column details (`jdbcType`, `length`, `defaultValueExpression`, ...)
//! follow Debezium's DDL parser as far as information_schema tells them.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::config::TableFilter;
use debezium_avro::schema_change::{ChangeType, ColumnDef, SchemaChange, TableChange, TableDef};
use debezium_avro::SourceInfo;

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// `java.sql.Types` code Debezium's MySQL DDL parser gives a column type.
fn jdbc_type(data_type: &str) -> i32 {
    match data_type {
        "bit" => -7,
        "tinyint" | "smallint" => 5,
        "mediumint" | "int" | "integer" | "year" => 4,
        "bigint" => -5,
        "float" => 6,
        "double" | "real" => 8,
        "decimal" | "numeric" => 3,
        "char" | "enum" | "set" => 1,
        "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => 12,
        "binary" => -2,
        "varbinary" => -3,
        "tinyblob" | "blob" | "mediumblob" | "longblob" => 2004,
        "date" => 91,
        "time" => 92,
        "datetime" => 93,
        "timestamp" => 2014,
        "boolean" | "bool" => 16,
        _ => 1111,
    }
}

/// `(length, scale)` as Debezium records them (see
/// [`debezium_avro::table::length_scale`]).
fn length_scale(data_type: &str, column_type: &str) -> (Option<i32>, Option<i32>) {
    let labels = if data_type == "set" {
        crate::schema::parse_labels(column_type).len()
    } else {
        0
    };
    debezium_avro::table::length_scale(data_type, column_type, labels)
}

/// A default as Debezium 3.6.3's parser records it from `SHOW CREATE TABLE`
/// (`DefaultValueParserListener`), given information_schema's
/// `COLUMN_DEFAULT` and `EXTRA`: none for `NULL` and for an expression
/// default (`DEFAULT (expr)`); `1970-01-01 00:00:00` for `CURRENT_TIMESTAMP`
/// and its synonyms (any fsp); a string literal as written between its
/// quotes, escapes kept (`'it''s'` gives `it''s`); `b'101'`/`x'0A'` without
/// the prefix and quotes; other literals as they are.
fn default_expression(raw: Option<String>, extra: &str) -> Option<String> {
    let raw = raw?;
    if raw.eq_ignore_ascii_case("null") {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    // MySQL marks such defaults DEFAULT_GENERATED; MariaDB writes them as
    // calls (`current_timestamp()`). A string literal of that text is neither.
    let now = ["current_timestamp", "now(", "localtime"]
        .iter()
        .any(|p| lower.starts_with(p))
        && (extra.contains("default_generated") || lower.ends_with(')'));
    if now {
        return Some("1970-01-01 00:00:00".to_owned());
    }
    // MariaDB quotes literals in COLUMN_DEFAULT as SHOW CREATE TABLE does.
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(inner.to_owned());
    }
    if let Some(inner) = ["b'", "x'"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &raw[2..]))
        .and_then(|r| r.strip_suffix('\''))
    {
        return Some(inner.to_owned());
    }
    // MySQL: an expression default (`DEFAULT_GENERATED` without being a
    // CURRENT_TIMESTAMP); Debezium records none.
    if extra.contains("default_generated") {
        return None;
    }
    // MySQL gives the literal unescaped; SHOW CREATE TABLE, which Debezium
    // parses, escapes `'` and `\` (and control characters).
    Some(crate::schema::escape_literal(&raw))
}

/// ENUM/SET labels as Debezium's parser records them: the quoted tokens of
/// the definition as written (`'small'`, `'it''s'`).
fn raw_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type[start + 1..];
    let mut labels = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == ')' {
            break;
        }
        if c != '\'' {
            continue;
        }
        let mut end = body.len();
        while let Some((j, c)) = chars.next() {
            match c {
                '\'' if chars.peek().map(|p| p.1) == Some('\'') => {
                    chars.next();
                }
                '\'' => {
                    end = j + 1;
                    break;
                }
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
        }
        labels.push(body[i..end].to_owned());
    }
    labels
}

/// `Column.typeUsesCharset()`: for these JDBC types Debezium's column
/// records its own charset, else the table's default (`ColumnImpl`).
fn type_uses_charset(jdbc_type: i32) -> bool {
    matches!(
        jdbc_type,
        -16 | -15 | -9 | -1 | 1 | 12 | 70 | 2005 | 2009 | 2011
    )
}

/// A table's definition as Debezium's schema-change `table` block, read from
/// information_schema; `None` when the table does not exist (any more).
pub async fn load_table_def(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<TableDef>, mysql_async::Error> {
    let meta: Option<(Option<String>, Option<String>)> = conn
        .exec_first(
            "SELECT t.TABLE_COLLATION, c.CHARACTER_SET_NAME \
             FROM information_schema.TABLES t \
             LEFT JOIN information_schema.COLLATIONS c ON c.COLLATION_NAME = t.TABLE_COLLATION \
             WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?",
            (database, table),
        )
        .await?;
    let Some((collation, charset)) = meta else {
        return Ok(None);
    };
    let default_charset_name = charset.or_else(|| {
        collation
            .as_deref()
            .and_then(|c| c.split_once('_').map(|(cs, _)| cs.to_owned()))
    });
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
             CHARACTER_SET_NAME, EXTRA, ORDINAL_POSITION, COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |i: usize| -> Option<String> { row.get::<Option<String>, _>(i).flatten() };
        let name = text(0).unwrap_or_default();
        let data_type = text(1).unwrap_or_default().to_ascii_lowercase();
        let column_type = text(2).unwrap_or_default().to_ascii_lowercase();
        let extra = text(6).unwrap_or_default().to_ascii_lowercase();
        let unsigned = column_type.contains("unsigned");
        let mut type_name = data_type.to_ascii_uppercase();
        if unsigned {
            type_name.push_str(" UNSIGNED");
        }
        let (length, scale) = length_scale(&data_type, &column_type);
        // Debezium marks AUTO_INCREMENT and ON UPDATE columns as both.
        let auto_incremented = extra.contains("auto_increment") || extra.contains("on update");
        // Debezium: the charset the DDL names (CHARACTER SET or COLLATE),
        // else the table's default, for character types only.
        let jdbc = jdbc_type(&data_type);
        let charset_name = if type_uses_charset(jdbc) {
            text(5).or_else(|| default_charset_name.clone())
        } else {
            None
        };
        columns.push(ColumnDef {
            name,
            jdbc_type: jdbc,
            type_expression: Some(type_name.clone()),
            type_name,
            charset_name,
            length,
            scale,
            position: row.get::<Option<i32>, _>(7).flatten().unwrap_or(0),
            optional: text(3).is_some_and(|n| n.eq_ignore_ascii_case("YES")),
            auto_incremented,
            // MySQL's `DEFAULT_GENERATED` (a CURRENT_TIMESTAMP default) is not one.
            generated: auto_incremented
                || extra.contains("virtual generated")
                || extra.contains("stored generated")
                || extra.contains("persistent"),
            // Debezium records comments only under
            // `include.schema.comments=true` (default false), not offered here.
            comment: None,
            default_value_expression: match text(4) {
                Some(raw) => match crate::schema::binary_default_as_shown(&raw, &column_type) {
                    Some(shown) => Some(shown),
                    None => default_expression(Some(raw), &extra),
                },
                None => None,
            },
            enum_values: if matches!(data_type.as_str(), "enum" | "set") {
                raw_labels(&text(2).unwrap_or_default())
            } else {
                Vec::new()
            },
        });
    }
    let primary_key_column_names: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await?;
    Ok(Some(TableDef {
        default_charset_name,
        primary_key_column_names,
        columns,
        comment: None,
    }))
}

fn record(
    database: &str,
    ddl: String,
    changes: Vec<TableChange>,
    source: &SourceInfo,
) -> SchemaChange {
    SchemaChange {
        database: database.to_owned(),
        ddl,
        changes,
        source: source.clone(),
        ts_ms: crate::clock::now_ms(),
    }
}

/// The snapshot's schema-change records (see the module docs), for the
/// captured databases among `tables` (every base table of the server).
/// `source` is the snapshot's position; each record gets its own time.
pub async fn snapshot_changes(
    conn: &mut Conn,
    filter: &TableFilter,
    tables: &[(String, String)],
    source: &SourceInfo,
) -> Result<Vec<SchemaChange>, mysql_async::Error> {
    let mut tables: Vec<(String, &str, &str)> = tables
        .iter()
        .filter(|(db, _)| filter.includes_database(db))
        .map(|(db, t)| (format!("{db}.{t}"), db.as_str(), t.as_str()))
        .collect();
    tables.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    if tables.is_empty() {
        return Ok(out);
    }
    let at = |source: &SourceInfo| SourceInfo {
        ts_ms: crate::clock::now_ms(),
        ..source.clone()
    };

    let vars: Vec<(String, String)> = conn
        .query("SHOW VARIABLES WHERE Variable_name IN ('character_set_server','collation_server')")
        .await?;
    let mut vars = vars;
    vars.sort();
    let set = vars
        .iter()
        .map(|(k, v)| {
            if v.contains([',', ';']) {
                format!("{k}='{v}'")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.push(record("", format!("SET {set}"), Vec::new(), &at(source)));

    for (_, db, t) in &tables {
        let change = TableChange {
            kind: ChangeType::Drop,
            database: db.to_string(),
            table: t.to_string(),
            definition: None,
        };
        out.push(record(
            db,
            format!("DROP TABLE IF EXISTS {}.{}", quote(db), quote(t)),
            vec![change],
            &at(source),
        ));
    }

    let locales: Vec<(String, Option<String>, Option<String>)> = conn
        .query("SELECT schema_name, default_character_set_name, default_collation_name FROM information_schema.schemata")
        .await?;
    let mut databases: Vec<&str> = Vec::new();
    for (_, db, _) in &tables {
        if databases.last() != Some(db) {
            databases.push(db);
        }
    }
    for db in databases {
        out.push(record(
            db,
            format!("DROP DATABASE IF EXISTS {}", quote(db)),
            Vec::new(),
            &at(source),
        ));
        let mut create = format!("CREATE DATABASE {}", quote(db));
        if let Some((_, charset, collation)) = locales.iter().find(|(name, _, _)| name == db) {
            if let Some(cs) = charset {
                create.push_str(&format!(" CHARSET {cs}"));
            }
            if let Some(co) = collation {
                create.push_str(&format!(" COLLATE {co}"));
            }
        }
        out.push(record(db, create, Vec::new(), &at(source)));
        out.push(record(
            db,
            format!("USE {}", quote(db)),
            Vec::new(),
            &at(source),
        ));
        for (_, _, t) in tables.iter().filter(|(_, d, _)| d == &db) {
            let shown: Option<Row> = conn
                .query_first(format!("SHOW CREATE TABLE {}.{}", quote(db), quote(t)))
                .await?;
            let Some(ddl) = shown.and_then(|r| r.get::<String, _>(1)) else {
                continue;
            };
            let definition = load_table_def(conn, db, t).await?;
            let change = TableChange {
                kind: ChangeType::Create,
                database: db.to_string(),
                table: t.to_string(),
                definition,
            };
            out.push(record(db, ddl, vec![change], &at(source)));
        }
    }
    Ok(out)
}

/// A lexical token of a DDL statement.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word (keyword or identifier), as written.
    Word(String),
    /// A back-quoted identifier, unquoted.
    Quoted(String),
    /// Any other character (`.`, `,`, `(`, ...); string literals become `'`.
    Punct(char),
}

/// Tokens with their start offsets in `sql`.
fn tokenize(sql: &str) -> Vec<(usize, Token)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
            }
            b'#' => i = sql[i..].find('\n').map_or(bytes.len(), |p| i + p + 1),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |p| i + p + 1)
            }
            b'`' => {
                let start = i;
                let mut name = String::new();
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'`' {
                        if bytes.get(i + 1) == Some(&b'`') {
                            name.push('`');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    let ch = sql[i..].chars().next().unwrap_or(' ');
                    name.push(ch);
                    i += ch.len_utf8();
                }
                out.push((start, Token::Quoted(name)));
            }
            b'\'' | b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == c {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                out.push((start, Token::Punct('\'')));
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                out.push((start, Token::Word(sql[start..i].to_owned())));
            }
            _ => {
                out.push((i, Token::Punct(c as char)));
                i += 1;
            }
        }
    }
    out
}

/// What a DDL statement does, per table or database.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    /// A table created or altered (`ALTER`: also renamed, indexed).
    Table(ChangeType, String, String),
    /// A table dropped; the statement text before the first table name.
    Drop(String, String, String),
    /// Anything else: a database-level record for this database.
    Database(String),
}

struct Parser<'a> {
    sql: &'a str,
    tokens: Vec<(usize, Token)>,
    at: usize,
    default_db: &'a str,
}

impl Parser<'_> {
    fn keyword(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(word))
    }

    fn eat(&mut self, word: &str) -> bool {
        let yes = self.keyword(word);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn eat_all(&mut self, words: &[&str]) -> bool {
        let save = self.at;
        if words.iter().all(|w| self.eat(w)) {
            true
        } else {
            self.at = save;
            false
        }
    }

    fn ident(&mut self) -> Option<String> {
        match self.tokens.get(self.at) {
            Some((_, Token::Word(w) | Token::Quoted(w))) => {
                self.at += 1;
                Some(w.clone())
            }
            _ => None,
        }
    }

    fn punct(&mut self, c: char) -> bool {
        let yes = matches!(self.tokens.get(self.at), Some((_, Token::Punct(p))) if *p == c);
        if yes {
            self.at += 1;
        }
        yes
    }

    /// `[db.]table`.
    fn table_ref(&mut self) -> Option<(String, String)> {
        let first = self.ident()?;
        if self.punct('.') {
            let table = self.ident()?;
            Some((first, table))
        } else {
            Some((self.default_db.to_owned(), first))
        }
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.sql.len(), |(o, _)| *o)
    }

    fn effects(&mut self) -> Vec<Effect> {
        let db_level = |db: &str| vec![Effect::Database(db.to_owned())];
        if self.eat("CREATE") {
            self.eat_all(&["OR", "REPLACE"]);
            self.eat("TEMPORARY");
            if self.eat("TABLE") {
                self.eat_all(&["IF", "NOT", "EXISTS"]);
                return self
                    .table_ref()
                    .map(|(db, t)| vec![Effect::Table(ChangeType::Create, db, t)])
                    .unwrap_or_default();
            }
            if self.eat("DATABASE") || self.eat("SCHEMA") {
                self.eat_all(&["IF", "NOT", "EXISTS"]);
                return self.ident().map(|db| db_level(&db)).unwrap_or_default();
            }
            for modifier in ["UNIQUE", "FULLTEXT", "SPATIAL"] {
                self.eat(modifier);
            }
            if self.eat("INDEX") {
                return self.index_target();
            }
        } else if self.eat("ALTER") {
            self.eat("ONLINE");
            self.eat("IGNORE");
            if self.eat("TABLE") {
                let Some((db, t)) = self.table_ref() else {
                    return Vec::new();
                };
                // ALTER TABLE a RENAME [TO|AS] b: the table is b afterwards.
                while self.at < self.tokens.len() {
                    if self.eat("RENAME")
                        && !["COLUMN", "INDEX", "KEY"].iter().any(|k| self.keyword(k))
                    {
                        let _ = self.eat("TO") || self.eat("AS");
                        if let Some((ndb, nt)) = self.table_ref() {
                            return vec![Effect::Table(ChangeType::Alter, ndb, nt)];
                        }
                    }
                    self.at += 1;
                }
                return vec![Effect::Table(ChangeType::Alter, db, t)];
            }
            if self.eat("DATABASE") || self.eat("SCHEMA") {
                // `ALTER DATABASE CHARACTER SET ..` names no database.
                let options = [
                    "CHARACTER",
                    "CHARSET",
                    "DEFAULT",
                    "COLLATE",
                    "READ",
                    "ENCRYPTION",
                ];
                return match self.ident() {
                    Some(db) if !options.iter().any(|o| db.eq_ignore_ascii_case(o)) => {
                        db_level(&db)
                    }
                    _ => db_level(self.default_db),
                };
            }
        } else if self.eat("DROP") {
            self.eat("TEMPORARY");
            if self.eat("TABLE") || self.eat("TABLES") {
                self.eat_all(&["IF", "EXISTS"]);
                let prefix = self.sql[..self.offset()].to_owned();
                let mut out = Vec::new();
                while let Some((db, t)) = self.table_ref() {
                    out.push(Effect::Drop(prefix.clone(), db, t));
                    if !self.punct(',') {
                        break;
                    }
                }
                return out;
            }
            if self.eat("DATABASE") || self.eat("SCHEMA") {
                self.eat_all(&["IF", "EXISTS"]);
                return self.ident().map(|db| db_level(&db)).unwrap_or_default();
            }
            if self.eat("INDEX") {
                return self.index_target();
            }
        } else if self.eat("RENAME") && (self.eat("TABLE") || self.eat("TABLES")) {
            let mut out = Vec::new();
            while self.table_ref().is_some() && self.eat("TO") {
                let Some((db, t)) = self.table_ref() else {
                    break;
                };
                out.push(Effect::Table(ChangeType::Alter, db, t));
                if !self.punct(',') {
                    break;
                }
            }
            return out;
        }
        db_level(self.default_db)
    }

    /// `INDEX name [USING ..] ON table`: the table is altered.
    fn index_target(&mut self) -> Vec<Effect> {
        while self.at < self.tokens.len() {
            if self.eat("ON") {
                return self
                    .table_ref()
                    .map(|(db, t)| vec![Effect::Table(ChangeType::Alter, db, t)])
                    .unwrap_or_default();
            }
            self.at += 1;
        }
        Vec::new()
    }
}

/// The table a `TRUNCATE [TABLE] [db.]table` statement empties
/// (`default_db`: the query event's current database), or `None` when the
/// statement is not one (MySQL's TRUNCATE takes exactly one table).
pub fn truncated_table(sql: &str, default_db: &str) -> Option<(String, String)> {
    let mut parser = Parser {
        sql,
        tokens: tokenize(sql),
        at: 0,
        default_db,
    };
    if !parser.eat("TRUNCATE") {
        return None;
    }
    parser.eat("TABLE");
    let (db, table) = parser.table_ref()?;
    (!db.is_empty()).then_some((db, table))
}

fn effects(sql: &str, default_db: &str) -> Vec<Effect> {
    Parser {
        sql,
        tokens: tokenize(sql),
        at: 0,
        default_db,
    }
    .effects()
}

/// The schema-change records of one DDL statement read from the binlog
/// (`default_db`: the query event's current database). Tables are read
/// through `catalog` when there is one.
pub async fn streaming_changes(
    catalog: Option<&mut Conn>,
    filter: &TableFilter,
    statement: &str,
    default_db: &str,
    source: &SourceInfo,
) -> Result<Vec<SchemaChange>, mysql_async::Error> {
    let mut catalog = catalog;
    let mut out = Vec::new();
    for effect in effects(statement, default_db) {
        match effect {
            Effect::Database(db) => {
                if !db.is_empty() && filter.includes_database(&db) {
                    out.push(record(&db, statement.to_owned(), Vec::new(), source));
                }
            }
            Effect::Drop(prefix, db, t) => {
                if filter.includes_database(&db) {
                    let ddl = format!("{prefix}{}.{}", quote(&db), quote(&t));
                    let change = TableChange {
                        kind: ChangeType::Drop,
                        database: db.clone(),
                        table: t,
                        definition: None,
                    };
                    out.push(record(&db, ddl, vec![change], source));
                }
            }
            Effect::Table(kind, db, t) => {
                if filter.includes_database(&db) {
                    let definition = match catalog.as_deref_mut() {
                        Some(conn) => load_table_def(conn, &db, &t).await?,
                        None => None,
                    };
                    let change = TableChange {
                        kind,
                        database: db.clone(),
                        table: t,
                        definition,
                    };
                    out.push(record(&db, statement.to_owned(), vec![change], source));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: ChangeType, db: &str, table: &str) -> Effect {
        Effect::Table(kind, db.into(), table.into())
    }

    #[test]
    fn truncate_names_its_table() {
        let named = |db: &str, t: &str| Some((db.to_owned(), t.to_owned()));
        assert_eq!(
            truncated_table("TRUNCATE TABLE purchases", "shop"),
            named("shop", "purchases")
        );
        assert_eq!(
            truncated_table("/* x */ truncate `other`.`a b`", "shop"),
            named("other", "a b")
        );
        assert_eq!(truncated_table("TRUNCATE TABLE t", ""), None);
        assert_eq!(truncated_table("DROP TABLE t", "shop"), None);
    }

    #[test]
    fn statements_split_per_table() {
        assert_eq!(
            effects("CREATE TABLE IF NOT EXISTS `t 1` (id int)", "shop"),
            vec![t(ChangeType::Create, "shop", "t 1")]
        );
        assert_eq!(
            effects("/* c */ alter table other.t add column x int", "shop"),
            vec![t(ChangeType::Alter, "other", "t")]
        );
        assert_eq!(
            effects("ALTER TABLE a RENAME TO b", "shop"),
            vec![t(ChangeType::Alter, "shop", "b")]
        );
        assert_eq!(
            effects("ALTER TABLE a RENAME COLUMN x TO y", "shop"),
            vec![t(ChangeType::Alter, "shop", "a")]
        );
        assert_eq!(
            effects("DROP TABLE `a`,`x`.`b` /* generated by server */", "shop"),
            vec![
                Effect::Drop("DROP TABLE ".into(), "shop".into(), "a".into()),
                Effect::Drop("DROP TABLE ".into(), "x".into(), "b".into()),
            ]
        );
        assert_eq!(
            effects("RENAME TABLE a TO b, c TO d", "shop"),
            vec![
                t(ChangeType::Alter, "shop", "b"),
                t(ChangeType::Alter, "shop", "d")
            ]
        );
        assert_eq!(
            effects("CREATE UNIQUE INDEX i ON t (x)", "shop"),
            vec![t(ChangeType::Alter, "shop", "t")]
        );
        assert_eq!(
            effects("DROP INDEX i ON x.t", "shop"),
            vec![t(ChangeType::Alter, "x", "t")]
        );
        assert_eq!(
            effects("CREATE DATABASE IF NOT EXISTS `new`", "shop"),
            vec![Effect::Database("new".into())]
        );
        assert_eq!(
            effects("CREATE VIEW v AS SELECT 1", "shop"),
            vec![Effect::Database("shop".into())]
        );
    }

    #[test]
    fn column_details() {
        assert_eq!(
            length_scale("decimal", "decimal(12,2)"),
            (Some(12), Some(2))
        );
        assert_eq!(length_scale("varchar", "varchar(255)"), (Some(255), None));
        assert_eq!(length_scale("int", "int unsigned"), (None, None));
        assert_eq!(length_scale("enum", "enum('a','b')"), (Some(1), None));
        assert_eq!(length_scale("set", "set('a','b','c')"), (Some(5), None));
        let dflt = |raw: &str, extra: &str| default_expression(Some(raw.into()), extra);
        // As Debezium 3.6.3's parser records SHOW CREATE TABLE's defaults.
        assert_eq!(dflt("'it''s'", ""), Some("it''s".into())); // MariaDB
        assert_eq!(dflt("it's \\", ""), Some("it''s \\\\".into())); // MySQL
        assert_eq!(
            dflt("current_timestamp()", "on update current_timestamp()"),
            Some("1970-01-01 00:00:00".into())
        );
        assert_eq!(
            dflt("CURRENT_TIMESTAMP(3)", "default_generated"),
            Some("1970-01-01 00:00:00".into())
        );
        assert_eq!(
            dflt("CURRENT_TIMESTAMP", ""),
            Some("CURRENT_TIMESTAMP".into())
        );
        assert_eq!(dflt("(1 + 2)", "default_generated"), None);
        assert_eq!(dflt("b'101'", ""), Some("101".into()));
        assert_eq!(dflt("NULL", ""), None);
        assert_eq!(dflt("0", ""), Some("0".into()));
        assert_eq!(
            raw_labels("enum('small','it''s','a\\\\b','x\"y')"),
            ["'small'", "'it''s'", "'a\\\\b'", "'x\"y'"]
        );
        assert!(type_uses_charset(jdbc_type("enum")));
        assert!(type_uses_charset(jdbc_type("longtext")));
        assert!(!type_uses_charset(jdbc_type("json")));
        assert!(!type_uses_charset(jdbc_type("blob")));
        assert_eq!(jdbc_type("tinyint"), 5);
        assert_eq!(jdbc_type("timestamp"), 2014);
    }
}
