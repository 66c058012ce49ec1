//! Debezium's transaction metadata (`provide.transaction.metadata=true`):
//! the envelope's `transaction` block ([`TransactionBlock`], schema
//! `event.block {id, total_order, data_collection_order}`, written by
//! [`crate::TableCodec::encode_envelope_in`]) and the BEGIN/END records of
//! the `<topic.prefix>.transaction` topic: key
//! `io.debezium.connector.common.TransactionMetadataKey {id}`, value
//! `io.debezium.connector.common.TransactionMetadataValue {status, id,
//! event_count, data_collections, ts_ms}`, as Debezium 3.6's
//! `SchemaFactory.transaction{Key,Value}Schema` and
//! `AbstractTransactionStructMaker` build them and Confluent's AvroData
//! writes them. BEGIN has `event_count` and `data_collections` null; END
//! has both, `data_collections` in the iteration order of Debezium's
//! `HashMap<String, Long>` of per-table counts ([`java_hash_map_order`]).
//!
//! Not covered by the golden comparison with recorded Debezium output
//! (it records no such records): written from Debezium's source.

use crate::encode::{write_long, write_str};
use crate::json::J;
use crate::source::{opt_field, req_field};

/// The envelope's `transaction` block of one change record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionBlock<'a> {
    /// The transaction id (MySQL/MariaDB: its GTID, else `file=<f>,pos=<p>`).
    pub id: &'a str,
    /// 1-based position of the record among the transaction's records.
    pub total_order: i64,
    /// 1-based position among the transaction's records of the same table.
    pub data_collection_order: i64,
}

/// Appends the `transaction` union of an envelope: null or the block.
pub(crate) fn write_block(out: &mut Vec<u8>, block: Option<&TransactionBlock<'_>>) {
    match block {
        None => out.push(0),
        Some(b) => {
            out.push(2);
            write_str(out, b.id);
            write_long(out, b.total_order);
            write_long(out, b.data_collection_order);
        }
    }
}

/// Schemas and datum writers of the transaction topic.
#[derive(Debug, Clone)]
pub struct TransactionCodec {
    pub topic: String,
    pub key_schema_json: String,
    pub value_schema_json: String,
}

fn record(name: &str, namespace: &str, fields: Vec<J>) -> J {
    J::obj(vec![
        ("type", J::s("record")),
        ("name", J::s(name)),
        ("namespace", J::s(namespace)),
        ("fields", J::Arr(fields)),
        ("connect.version", J::int(1)),
        ("connect.name", J::s(format!("{namespace}.{name}"))),
    ])
}

impl TransactionCodec {
    /// `topic`: `<topic.prefix>.<topic.transaction>` (Debezium's default
    /// `<topic.prefix>.transaction`).
    pub fn new(topic: &str) -> Self {
        let common = "io.debezium.connector.common";
        let key = record(
            "TransactionMetadataKey",
            common,
            vec![req_field("id", J::s("string"))],
        );
        // `event.collection` is an optional struct: AvroData makes the
        // array's items a union with null.
        let collection = record(
            "collection",
            "event",
            vec![
                req_field("data_collection", J::s("string")),
                req_field("event_count", J::s("long")),
            ],
        );
        let value = record(
            "TransactionMetadataValue",
            common,
            vec![
                req_field("status", J::s("string")),
                req_field("id", J::s("string")),
                opt_field("event_count", J::s("long")),
                opt_field(
                    "data_collections",
                    J::obj(vec![
                        ("type", J::s("array")),
                        ("items", J::Arr(vec![J::s("null"), collection])),
                    ]),
                ),
                req_field("ts_ms", J::s("long")),
            ],
        );
        Self {
            topic: topic.to_owned(),
            key_schema_json: key.to_json(),
            value_schema_json: value.to_json(),
        }
    }

    /// Appends the key datum (no framing).
    pub fn encode_key(&self, id: &str, out: &mut Vec<u8>) {
        write_str(out, id);
    }

    /// Appends a BEGIN value datum (no framing); `ts_ms`: the BEGIN event's time.
    pub fn encode_begin(&self, id: &str, ts_ms: i64, out: &mut Vec<u8>) {
        write_str(out, "BEGIN");
        write_str(out, id);
        out.push(0); // event_count
        out.push(0); // data_collections
        write_long(out, ts_ms);
    }

    /// Appends an END value datum (no framing). `collections`: per table
    /// (`db.table`) its record count, in Debezium's order (see
    /// [`java_hash_map_order`]); `ts_ms`: the commit event's time.
    pub fn encode_end(
        &self,
        id: &str,
        event_count: i64,
        collections: &[(&str, i64)],
        ts_ms: i64,
        out: &mut Vec<u8>,
    ) {
        write_str(out, "END");
        write_str(out, id);
        out.push(2);
        write_long(out, event_count);
        out.push(2);
        if !collections.is_empty() {
            write_long(out, collections.len() as i64);
            for (name, count) in collections {
                out.push(2); // the item union's record branch
                write_str(out, name);
                write_long(out, *count);
            }
        }
        out.push(0);
        write_long(out, ts_ms);
    }
}

/// Java's `String.hashCode()` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The order in which a `java.util.HashMap<String, _>` (default capacity
/// 16, load factor 0.75) filled with `keys` in this order iterates them:
/// by bucket (the spread hash masked to the table size the map has grown
/// to), then by insertion within a bucket. Returns indices into `keys`.
/// (Buckets turn into trees only past 8 colliding keys; not modelled.)
pub fn java_hash_map_order(keys: &[&str]) -> Vec<usize> {
    let mut capacity = 16usize;
    while keys.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mask = (capacity - 1) as u32;
    let bucket = |k: &str| {
        let h = java_string_hash(k) as u32;
        (h ^ (h >> 16)) & mask
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    // Stable: insertion order within a bucket.
    order.sort_by_key(|&i| bucket(keys[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_debeziums() {
        let c = TransactionCodec::new("mysql.transaction");
        assert_eq!(
            c.key_schema_json,
            r#"{"type":"record","name":"TransactionMetadataKey","namespace":"io.debezium.connector.common","fields":[{"name":"id","type":"string"}],"connect.version":1,"connect.name":"io.debezium.connector.common.TransactionMetadataKey"}"#
        );
        assert_eq!(
            c.value_schema_json,
            concat!(
                r#"{"type":"record","name":"TransactionMetadataValue","namespace":"io.debezium.connector.common","fields":["#,
                r#"{"name":"status","type":"string"},{"name":"id","type":"string"},"#,
                r#"{"name":"event_count","type":["null","long"],"default":null},"#,
                r#"{"name":"data_collections","type":["null",{"type":"array","items":["null",{"type":"record","name":"collection","namespace":"event","fields":[{"name":"data_collection","type":"string"},{"name":"event_count","type":"long"}],"connect.version":1,"connect.name":"event.collection"}]}],"default":null},"#,
                r#"{"name":"ts_ms","type":"long"}],"connect.version":1,"connect.name":"io.debezium.connector.common.TransactionMetadataValue"}"#
            )
        );
    }

    #[test]
    fn datums() {
        let c = TransactionCodec::new("mysql.transaction");
        let mut v = Vec::new();
        c.encode_begin("0-1-5", 1, &mut v);
        assert_eq!(v, b"\x0aBEGIN\x0a0-1-5\x00\x00\x02");
        let mut v = Vec::new();
        c.encode_end("0-1-5", 3, &[("a.b", 2), ("a.c", 1)], 1, &mut v);
        assert_eq!(
            v,
            b"\x06END\x0a0-1-5\x02\x06\x02\x04\x02\x06a.b\x04\x02\x06a.c\x02\x00\x02"
        );
        let mut v = Vec::new();
        write_block(
            &mut v,
            Some(&TransactionBlock {
                id: "x",
                total_order: 2,
                data_collection_order: 1,
            }),
        );
        assert_eq!(v, b"\x02\x02x\x04\x02");
    }

    #[test]
    fn java_hashes_and_hash_map_order() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        // "Aa" and "BB" collide in Java: insertion order decides.
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        assert_eq!(java_hash_map_order(&["BB", "Aa"]), vec![0, 1]);
        // 16 buckets: "a" (97) in bucket 1, "b" (98) in bucket 2.
        assert_eq!(java_hash_map_order(&["b", "a"]), vec![1, 0]);
        // "q" (113) shares bucket 1 with "a": insertion order.
        assert_eq!(java_hash_map_order(&["q", "a"]), vec![0, 1]);
        // 13 keys grow the table to 32 buckets: "a" stays in 1, "q" moves to 17.
        let mut keys = vec!["q", "a"];
        let filler: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
        keys.extend(filler.iter().map(String::as_str));
        let order = java_hash_map_order(&keys);
        let pos = |i: usize| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(1) < pos(0));
    }
}
