//! Records of Debezium's heartbeat topic (`heartbeat.interval.ms` > 0,
//! topic `<topic.heartbeat.prefix>.<topic.prefix>`, default
//! `__debezium-heartbeat.<topic.prefix>`): key
//! `io.debezium.connector.common.ServerNameKey {serverName}` and value
//! `io.debezium.connector.common.Heartbeat {ts_ms}`, as Debezium 3.6's
//! `SchemaFactory.heartbeat{Key,Value}Schema` define them (version 1) and
//! Confluent's AvroData writes them. `serverName` is the connector's logical
//! name (`topic.prefix`); `ts_ms` is when the heartbeat was made.
//!
//! Not covered by the golden comparison with recorded Debezium output
//! (it records no such records): written from Debezium's source.

use crate::encode::{write_long, write_str};
use crate::json::J;
use crate::source::req_field;

/// Schemas and datum writers of the heartbeat topic.
#[derive(Debug, Clone)]
pub struct HeartbeatCodec {
    pub topic: String,
    pub key_schema_json: String,
    pub value_schema_json: String,
    server_name: String,
}

fn record(name: &str, field: J) -> J {
    J::obj(vec![
        ("type", J::s("record")),
        ("name", J::s(name)),
        ("namespace", J::s("io.debezium.connector.common")),
        ("fields", J::Arr(vec![field])),
        ("connect.version", J::int(1)),
        (
            "connect.name",
            J::s(format!("io.debezium.connector.common.{name}")),
        ),
    ])
}

impl HeartbeatCodec {
    /// `topic`: the heartbeat topic; `topic_prefix`: the key's `serverName`.
    pub fn new(topic: &str, topic_prefix: &str) -> Self {
        let key = record("ServerNameKey", req_field("serverName", J::s("string")));
        let value = record("Heartbeat", req_field("ts_ms", J::s("long")));
        Self {
            topic: topic.to_owned(),
            key_schema_json: key.to_json(),
            value_schema_json: value.to_json(),
            server_name: topic_prefix.to_owned(),
        }
    }

    /// Appends the key datum (no framing).
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        write_str(out, &self.server_name);
    }

    /// Appends the value datum (no framing): `ts_ms` in ms since the epoch.
    pub fn encode_value(&self, ts_ms: i64, out: &mut Vec<u8>) {
        write_long(out, ts_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_debeziums() {
        let c = HeartbeatCodec::new("__debezium-heartbeat.mysql", "mysql");
        assert_eq!(
            c.key_schema_json,
            r#"{"type":"record","name":"ServerNameKey","namespace":"io.debezium.connector.common","fields":[{"name":"serverName","type":"string"}],"connect.version":1,"connect.name":"io.debezium.connector.common.ServerNameKey"}"#
        );
        assert_eq!(
            c.value_schema_json,
            r#"{"type":"record","name":"Heartbeat","namespace":"io.debezium.connector.common","fields":[{"name":"ts_ms","type":"long"}],"connect.version":1,"connect.name":"io.debezium.connector.common.Heartbeat"}"#
        );
    }

    #[test]
    fn datums() {
        let c = HeartbeatCodec::new("__debezium-heartbeat.mysql", "mysql");
        let mut key = Vec::new();
        c.encode_key(&mut key);
        assert_eq!(key, b"\x0amysql");
        let mut value = Vec::new();
        c.encode_value(1, &mut value);
        assert_eq!(value, [2]);
    }
}
