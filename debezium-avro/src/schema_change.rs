//! Records of Debezium's schema-change topic (`<topic.prefix>`,
//! `include.schema.changes=true`): key `io.debezium.connector.mysql.SchemaChangeKey`
//! and value `io.debezium.connector.mysql.SchemaChangeValue`, as Debezium 3.6's
//! `SchemaFactory` defines them and Confluent's AvroData writes them.
//!
//! Layout (field order, optionality, `connect.*` properties) from Debezium's
//! `SchemaFactory.schemaHistoryConnector{Key,Value}Schema`,
//! `schemaHistory{Change,Table,Column}Schema` and
//! `ConnectTableChangeSerializer`: a value carries `source`, `ts_ms`,
//! `databaseName`, `schemaName` (always null on MySQL), `ddl` and
//! `tableChanges`, one `Change {type, id, table}` per table the statement
//! creates, alters or drops (`table` is null for a drop).

use crate::encode::{write_long, write_opt_str, write_str};
use crate::json::J;
use crate::source::{opt_field, req_field, source_schema, write_source, SourceInfo};

/// `io.debezium.connector.schema.Column` (fields in Debezium's order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnDef {
    pub name: String,
    /// `java.sql.Types` code Debezium's DDL parser assigns.
    pub jdbc_type: i32,
    pub type_name: String,
    pub type_expression: Option<String>,
    pub charset_name: Option<String>,
    pub length: Option<i32>,
    pub scale: Option<i32>,
    /// 1-based.
    pub position: i32,
    pub optional: bool,
    pub auto_incremented: bool,
    pub generated: bool,
    pub comment: Option<String>,
    pub default_value_expression: Option<String>,
    pub enum_values: Vec<String>,
}

/// `io.debezium.connector.schema.Table`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableDef {
    pub default_charset_name: Option<String>,
    pub primary_key_column_names: Vec<String>,
    pub columns: Vec<ColumnDef>,
    pub comment: Option<String>,
}

/// `TableChanges.TableChangeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Alter,
    Drop,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Alter => "ALTER",
            ChangeType::Drop => "DROP",
        }
    }
}

/// `io.debezium.connector.schema.Change`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChange {
    pub kind: ChangeType,
    pub database: String,
    pub table: String,
    /// `None` for a drop (and when the table is gone by the time it is read).
    pub definition: Option<TableDef>,
}

impl TableChange {
    /// Debezium's `TableId.toDoubleQuotedString()`: `"db"."table"`.
    pub fn id(&self) -> String {
        format!("\"{}\".\"{}\"", self.database, self.table)
    }
}

/// One record of the schema-change topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// Key `databaseName` and value `databaseName` (`""` for server-level
    /// statements such as the snapshot's `SET character_set_server=...`).
    pub database: String,
    pub ddl: String,
    pub changes: Vec<TableChange>,
    /// `source`; its `db` is [`Self::database`] and its `table` the tables
    /// of [`Self::changes`] joined by `,` (null when none).
    pub source: SourceInfo,
    /// Value `ts_ms`: when the connector processed the statement.
    pub ts_ms: i64,
}

/// Schemas and datum writers of the schema-change topic.
#[derive(Debug, Clone)]
pub struct SchemaChangeCodec {
    pub topic: String,
    pub key_schema_json: String,
    pub value_schema_json: String,
    topic_prefix: String,
    connector_version: String,
}

fn record(name: &str, namespace: Option<&str>, fields: Vec<J>, connect_name: &str) -> J {
    let mut r = vec![("type", J::s("record")), ("name", J::s(name))];
    if let Some(ns) = namespace {
        r.push(("namespace", J::s(ns)));
    }
    r.push(("fields", J::Arr(fields)));
    r.push(("connect.version", J::int(1)));
    r.push(("connect.name", J::s(connect_name)));
    J::obj(r)
}

fn array(items: J) -> J {
    J::obj(vec![("type", J::s("array")), ("items", items)])
}

fn column_schema() -> J {
    let opt = |n: &str, t: &str| opt_field(n, J::s(t));
    let req = |n: &str, t: &str| req_field(n, J::s(t));
    record(
        "Column",
        None,
        vec![
            req("name", "string"),
            req("jdbcType", "int"),
            opt("nativeType", "int"),
            req("typeName", "string"),
            opt("typeExpression", "string"),
            opt("charsetName", "string"),
            opt("length", "int"),
            opt("scale", "int"),
            req("position", "int"),
            opt("optional", "boolean"),
            opt("autoIncremented", "boolean"),
            opt("generated", "boolean"),
            opt("comment", "string"),
            opt("defaultValueExpression", "string"),
            opt_field("enumValues", array(J::s("string"))),
        ],
        "io.debezium.connector.schema.Column",
    )
}

fn table_schema() -> J {
    record(
        "Table",
        None,
        vec![
            opt_field("defaultCharsetName", J::s("string")),
            opt_field("primaryKeyColumnNames", array(J::s("string"))),
            req_field("columns", array(column_schema())),
            opt_field("comment", J::s("string")),
        ],
        "io.debezium.connector.schema.Table",
    )
}

fn change_schema() -> J {
    record(
        "Change",
        Some("io.debezium.connector.schema"),
        vec![
            req_field("type", J::s("string")),
            req_field("id", J::s("string")),
            opt_field("table", table_schema()),
        ],
        "io.debezium.connector.schema.Change",
    )
}

fn write_opt_int(out: &mut Vec<u8>, v: Option<i32>) {
    match v {
        None => out.push(0),
        Some(i) => {
            out.push(2);
            write_long(out, i64::from(i));
        }
    }
}

fn write_opt_bool(out: &mut Vec<u8>, v: bool) {
    out.push(2);
    out.push(u8::from(v));
}

/// An Avro array of strings (one block, then the end marker).
fn write_strings(out: &mut Vec<u8>, items: &[String]) {
    if !items.is_empty() {
        write_long(out, items.len() as i64);
        for s in items {
            write_str(out, s);
        }
    }
    out.push(0);
}

fn write_table(out: &mut Vec<u8>, t: &TableDef) {
    write_opt_str(out, t.default_charset_name.as_deref());
    // Debezium always sets the list (possibly empty).
    out.push(2);
    write_strings(out, &t.primary_key_column_names);
    if !t.columns.is_empty() {
        write_long(out, t.columns.len() as i64);
        for c in &t.columns {
            write_str(out, &c.name);
            write_long(out, i64::from(c.jdbc_type));
            out.push(0); // nativeType: unset for MySQL
            write_str(out, &c.type_name);
            write_opt_str(out, c.type_expression.as_deref());
            write_opt_str(out, c.charset_name.as_deref());
            write_opt_int(out, c.length);
            write_opt_int(out, c.scale);
            write_long(out, i64::from(c.position));
            write_opt_bool(out, c.optional);
            write_opt_bool(out, c.auto_incremented);
            write_opt_bool(out, c.generated);
            write_opt_str(out, c.comment.as_deref());
            write_opt_str(out, c.default_value_expression.as_deref());
            if c.enum_values.is_empty() {
                out.push(0);
            } else {
                out.push(2);
                write_strings(out, &c.enum_values);
            }
        }
    }
    out.push(0);
    write_opt_str(out, t.comment.as_deref());
}

impl SchemaChangeCodec {
    pub fn new(topic_prefix: &str, connector_version: &str) -> Self {
        let key = record(
            "SchemaChangeKey",
            Some("io.debezium.connector.mysql"),
            vec![req_field("databaseName", J::s("string"))],
            "io.debezium.connector.mysql.SchemaChangeKey",
        );
        let value = record(
            "SchemaChangeValue",
            Some("io.debezium.connector.mysql"),
            vec![
                req_field("source", source_schema(false)),
                req_field("ts_ms", J::s("long")),
                opt_field("databaseName", J::s("string")),
                opt_field("schemaName", J::s("string")),
                opt_field("ddl", J::s("string")),
                req_field("tableChanges", array(change_schema())),
            ],
            "io.debezium.connector.mysql.SchemaChangeValue",
        );
        Self {
            topic: topic_prefix.to_owned(),
            key_schema_json: key.to_json(),
            value_schema_json: value.to_json(),
            topic_prefix: topic_prefix.to_owned(),
            connector_version: connector_version.to_owned(),
        }
    }

    /// Appends the key datum (no framing).
    pub fn encode_key(&self, change: &SchemaChange, out: &mut Vec<u8>) {
        write_str(out, &change.database);
    }

    /// Appends the value datum (no framing).
    pub fn encode_value(&self, change: &SchemaChange, out: &mut Vec<u8>) {
        let tables = change
            .changes
            .iter()
            .map(|c| c.table.as_str())
            .collect::<Vec<_>>()
            .join(",");
        write_source(
            out,
            &self.connector_version,
            &self.topic_prefix,
            &change.database,
            (!tables.is_empty()).then_some(tables.as_str()),
            &change.source,
        );
        write_long(out, change.ts_ms);
        write_opt_str(out, Some(&change.database));
        out.push(0); // schemaName
        write_opt_str(out, Some(&change.ddl));
        if !change.changes.is_empty() {
            write_long(out, change.changes.len() as i64);
            for c in &change.changes {
                write_str(out, c.kind.as_str());
                write_str(out, &c.id());
                match &c.definition {
                    None => out.push(0),
                    Some(t) => {
                        out.push(2);
                        write_table(out, t);
                    }
                }
            }
        }
        out.push(0);
    }
}
