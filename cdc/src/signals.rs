//! Debezium signals: what a signal says, read from either channel.
//!
//! A signal is `(id, type, data)`. The `source` channel is the signal table
//! (`signal.data.collection`): an INSERT into it, read from the binlog like
//! any captured row, is a signal (Debezium reads the first three columns by
//! position and only inserts). The `kafka` channel is a topic
//! (`signal.kafka.topic`) whose records are keyed by `topic.prefix` and
//! carry `{"type": .., "data": {..}}`; their id is the record's offset.
//!
//! Supported types, as Debezium spells them: `execute-snapshot` (type
//! `incremental`; `data-collections`, `additional-conditions` or the older
//! `additional-condition`, `surrogate-key`), `stop-snapshot`,
//! `pause-snapshot`, `resume-snapshot`, `log`, and the watermarks an
//! incremental snapshot writes itself (`snapshot-window-open`,
//! `snapshot-window-close`). Anything else is logged and ignored, as
//! Debezium does with a signal it has no action for; a malformed signal is
//! an error the caller logs: a bad signal never stops the connector.
//!
//! Parsing is pure; [`kafka_channel`] is the one piece of I/O: a consumer
//! task that hands the kafka channel's signals to the streamer, whose loop
//! acts on them between binlog events (signal-table rows arrive as rows),
//! through [`crate::incremental`].
//!
//! The kafka channel commits a record's offset to its consumer group
//! (`signal.kafka.groupId`) once the streamer took the signal, and starts
//! from the group's committed offset (the topic's beginning the first
//! time, as Debezium): a signal taken in the moment before a crash, and not
//! yet reflected in a stored position, is lost; send it again.

use debezium_avro::Cell;
use serde_json::Value;

/// `snapshot-window-open`: an incremental snapshot's open watermark.
pub const WINDOW_OPEN: &str = "snapshot-window-open";
/// `snapshot-window-close`: an incremental snapshot's close watermark.
pub const WINDOW_CLOSE: &str = "snapshot-window-close";

/// One signal, whichever channel it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub id: String,
    pub kind: String,
    pub data: Option<String>,
}

/// `additional-conditions` entry: rows of the tables `data_collection`
/// (a regex over `<db>.<table>`) matches are read with `filter` added to
/// the chunk query's WHERE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdditionalCondition {
    pub data_collection: String,
    pub filter: String,
}

/// `execute-snapshot` of type `incremental`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteSnapshot {
    /// Regexes over `<db>.<table>` (Debezium expands them against the
    /// captured tables; a plain name matches itself).
    pub data_collections: Vec<String>,
    pub additional_conditions: Vec<AdditionalCondition>,
    pub surrogate_key: Option<String>,
}

/// What a signal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    ExecuteSnapshot(ExecuteSnapshot),
    /// `stop-snapshot`: these collections (all when empty) leave the snapshot.
    StopSnapshot {
        data_collections: Vec<String>,
    },
    PauseSnapshot,
    ResumeSnapshot,
    /// A watermark; the id is `<chunk id>-open` / `<chunk id>-close`.
    WindowOpen(String),
    WindowClose(String),
    /// `log`: write the message to the connector's log.
    Log(String),
}

/// Why a signal cannot be acted on. Both are definite for that signal: it
/// is logged and skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    #[error("signal {id} ({kind}) is malformed: {reason}")]
    Malformed {
        id: String,
        kind: String,
        reason: String,
    },
    #[error("signal {id} ({kind}) asks for something not supported: {reason}")]
    Unsupported {
        id: String,
        kind: String,
        reason: String,
    },
}

fn text(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Cell::Int(n) => Some(n.to_string()),
        Cell::UInt(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The signal in a signal-table row (its first three columns: id, type,
/// data), or `None` when the row does not have that shape.
pub fn from_row(after: &[Cell]) -> Option<Signal> {
    let id = text(after.first()?)?;
    let kind = text(after.get(1)?)?;
    let data = after.get(2).and_then(text);
    Some(Signal { id, kind, data })
}

/// The signal in a kafka channel record: `None` when it is not for this
/// connector (its key is not `topic_prefix`), as Debezium ignores those.
pub fn from_kafka(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    offset: i64,
    topic_prefix: &str,
) -> Option<Result<Signal, SignalError>> {
    if key != Some(topic_prefix.as_bytes()) {
        return None;
    }
    let id = format!("kafka-{offset}");
    let malformed = |reason: String| SignalError::Malformed {
        id: id.clone(),
        kind: String::new(),
        reason,
    };
    let value = match value.map(serde_json::from_slice::<Value>) {
        None => return Some(Err(malformed("no value".into()))),
        Some(Err(e)) => return Some(Err(malformed(format!("not JSON: {e}")))),
        Some(Ok(v)) => v,
    };
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Some(Err(malformed("no \"type\"".into())));
    };
    let data = value.get("data").map(|d| d.to_string());
    Some(Ok(Signal {
        id: id.clone(),
        kind: kind.to_owned(),
        data,
    }))
}

fn strings(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| format!("not a string: {i}"))
            })
            .collect(),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()),
        Some(other) => Err(format!("expected a list of table names, got {other}")),
    }
}

/// What `signal` asks for; `Ok(None)` for types without an action here.
pub fn parse(signal: &Signal) -> Result<Option<Action>, SignalError> {
    let malformed = |reason: String| SignalError::Malformed {
        id: signal.id.clone(),
        kind: signal.kind.clone(),
        reason,
    };
    let unsupported = |reason: String| SignalError::Unsupported {
        id: signal.id.clone(),
        kind: signal.kind.clone(),
        reason,
    };
    let data = || -> Result<Value, SignalError> {
        match signal.data.as_deref().map(str::trim) {
            None | Some("") => Ok(Value::Object(Default::default())),
            Some(text) => {
                serde_json::from_str(text).map_err(|e| malformed(format!("data is not JSON: {e}")))
            }
        }
    };
    let snapshot_type = |data: &Value| -> Result<(), SignalError> {
        match data.get("type").and_then(Value::as_str) {
            None => Ok(()),
            Some(t) if t.eq_ignore_ascii_case("incremental") => Ok(()),
            Some(t) => Err(unsupported(format!(
                "snapshot type {t:?}: only incremental snapshots are supported (not blocking)"
            ))),
        }
    };
    Ok(Some(match signal.kind.as_str() {
        "execute-snapshot" => {
            let data = data()?;
            snapshot_type(&data)?;
            let data_collections = strings(data.get("data-collections")).map_err(malformed)?;
            if data_collections.is_empty() {
                return Err(malformed("no data-collections".into()));
            }
            let mut additional_conditions = Vec::new();
            match data.get("additional-conditions") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        let dc = item.get("data-collection").and_then(Value::as_str);
                        let filter = item.get("filter").and_then(Value::as_str);
                        match (dc, filter) {
                            (Some(dc), Some(filter)) => {
                                additional_conditions.push(AdditionalCondition {
                                    data_collection: dc.trim().to_owned(),
                                    filter: filter.to_owned(),
                                })
                            }
                            _ => {
                                return Err(malformed(format!(
                                    "additional-conditions entry {item} needs data-collection and filter"
                                )))
                            }
                        }
                    }
                }
                Some(other) => {
                    return Err(malformed(format!(
                        "additional-conditions must be a list, got {other}"
                    )))
                }
            }
            // Debezium 1.x/2.0: one condition for every listed collection.
            if let Some(filter) = data.get("additional-condition").and_then(Value::as_str) {
                if !filter.trim().is_empty() {
                    additional_conditions.extend(data_collections.iter().map(|dc| {
                        AdditionalCondition {
                            data_collection: dc.clone(),
                            filter: filter.to_owned(),
                        }
                    }));
                }
            }
            let surrogate_key = data
                .get("surrogate-key")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned);
            if surrogate_key.is_some() {
                return Err(unsupported(
                    "surrogate-key: chunks are read by primary key only".into(),
                ));
            }
            Action::ExecuteSnapshot(ExecuteSnapshot {
                data_collections,
                additional_conditions,
                surrogate_key,
            })
        }
        "stop-snapshot" => {
            let data = data()?;
            snapshot_type(&data)?;
            Action::StopSnapshot {
                data_collections: strings(data.get("data-collections")).map_err(malformed)?,
            }
        }
        "pause-snapshot" => Action::PauseSnapshot,
        "resume-snapshot" => Action::ResumeSnapshot,
        WINDOW_OPEN => Action::WindowOpen(signal.id.clone()),
        WINDOW_CLOSE => Action::WindowClose(signal.id.clone()),
        "log" => {
            let data = data()?;
            let message = data
                .get("message")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("no message".into()))?;
            Action::Log(message.to_owned())
        }
        _ => return Ok(None),
    }))
}

/// Starts the kafka signal channel: signals for `topic_prefix` from
/// `topic`, until `stop`. The topic is created when missing (one partition).
pub async fn kafka_channel(
    kafka: &pipeline::kafka::KafkaArgs,
    topic: &str,
    group: &str,
    topic_prefix: &str,
    replication: i32,
    stop: tokio_util::sync::CancellationToken,
) -> Result<tokio::sync::mpsc::Receiver<Signal>, String> {
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::Message;
    pipeline::kafka::ensure_topic(
        kafka,
        &pipeline::kafka::TopicSpec {
            name: topic,
            partitions: 1,
            replication,
            configs: &[],
        },
    )
    .await
    .map_err(|e| format!("signal.kafka.topic {topic}: {e}"))?;
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| format!("signal.kafka.topic {topic}: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("signal.kafka.topic {topic}: {e}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let prefix = topic_prefix.to_owned();
    let topic = topic.to_owned();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = consumer.recv() => m,
            };
            match message {
                Err(e) => {
                    tracing::warn!(topic = %topic, error = %e, "kafka signal channel: read failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
                Ok(m) => {
                    match from_kafka(m.key(), m.payload(), m.offset(), &prefix) {
                        None => {}
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "kafka signal ignored");
                            crate::metrics::error("signal");
                        }
                        Some(Ok(signal)) => {
                            let taken = tx.send(signal).await;
                            if taken.is_err() {
                                return;
                            }
                        }
                    }
                    if let Err(e) = consumer.commit_message(&m, CommitMode::Async) {
                        tracing::warn!(topic = %topic, error = %e, "kafka signal channel: commit failed");
                    }
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(kind: &str, data: &str) -> Signal {
        Signal {
            id: "s1".into(),
            kind: kind.into(),
            data: Some(data.into()),
        }
    }

    #[test]
    fn execute_snapshot_as_debezium_documents_it() {
        let s = signal(
            "execute-snapshot",
            r#"{"data-collections": ["shop.purchases", "shop.users"], "type": "incremental",
                "additional-conditions": [{"data-collection": "shop.purchases", "filter": "status = 2"}]}"#,
        );
        let Some(Action::ExecuteSnapshot(e)) = parse(&s).unwrap() else {
            panic!("expected execute-snapshot");
        };
        assert_eq!(e.data_collections, ["shop.purchases", "shop.users"]);
        assert_eq!(
            e.additional_conditions,
            [AdditionalCondition {
                data_collection: "shop.purchases".into(),
                filter: "status = 2".into()
            }]
        );
        // Type defaults to incremental; the older single condition applies to all.
        let old = signal(
            "execute-snapshot",
            r#"{"data-collections": ["a.b"], "additional-condition": "x > 1"}"#,
        );
        let Some(Action::ExecuteSnapshot(e)) = parse(&old).unwrap() else {
            panic!("expected execute-snapshot");
        };
        assert_eq!(e.additional_conditions[0].filter, "x > 1");
    }

    #[test]
    fn unsupported_and_malformed_signals_are_errors_not_panics() {
        let blocking = signal(
            "execute-snapshot",
            r#"{"data-collections": ["a.b"], "type": "blocking"}"#,
        );
        assert!(matches!(
            parse(&blocking),
            Err(SignalError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(&signal("execute-snapshot", "{not json")),
            Err(SignalError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&signal("execute-snapshot", r#"{"type": "incremental"}"#)),
            Err(SignalError::Malformed { .. })
        ));
        assert_eq!(parse(&signal("something-else", "{}")), Ok(None));
    }

    #[test]
    fn control_signals_and_watermarks() {
        assert_eq!(
            parse(&signal(
                "stop-snapshot",
                r#"{"data-collections": ["a.b"], "type": "INCREMENTAL"}"#
            )),
            Ok(Some(Action::StopSnapshot {
                data_collections: vec!["a.b".into()]
            }))
        );
        assert_eq!(
            parse(&signal("stop-snapshot", r#"{"type": "incremental"}"#)),
            Ok(Some(Action::StopSnapshot {
                data_collections: vec![]
            }))
        );
        assert_eq!(
            parse(&Signal {
                id: "p".into(),
                kind: "pause-snapshot".into(),
                data: None
            }),
            Ok(Some(Action::PauseSnapshot))
        );
        assert_eq!(
            parse(&signal("resume-snapshot", "")),
            Ok(Some(Action::ResumeSnapshot))
        );
        let open = Signal {
            id: "abc-open".into(),
            kind: WINDOW_OPEN.into(),
            data: Some(r#"{"openWindowTimestamp": "x"}"#.into()),
        };
        assert_eq!(
            parse(&open),
            Ok(Some(Action::WindowOpen("abc-open".into())))
        );
        assert_eq!(
            parse(&signal("log", r#"{"message": "hello"}"#)),
            Ok(Some(Action::Log("hello".into())))
        );
    }

    #[test]
    fn rows_and_kafka_records() {
        let row = [
            Cell::Bytes(b"id-1".to_vec()),
            Cell::Bytes(b"execute-snapshot".to_vec()),
            Cell::Null,
        ];
        assert_eq!(
            from_row(&row),
            Some(Signal {
                id: "id-1".into(),
                kind: "execute-snapshot".into(),
                data: None
            })
        );
        assert_eq!(from_row(&row[..1]), None);

        let value = br#"{"type": "execute-snapshot", "data": {"data-collections": ["a.b"]}}"#;
        assert_eq!(from_kafka(Some(b"other"), Some(value), 3, "mysql"), None);
        let s = from_kafka(Some(b"mysql"), Some(value), 3, "mysql")
            .unwrap()
            .unwrap();
        assert_eq!(s.id, "kafka-3");
        assert!(matches!(parse(&s), Ok(Some(Action::ExecuteSnapshot(_)))));
        assert!(from_kafka(Some(b"mysql"), Some(b"nope"), 4, "mysql")
            .unwrap()
            .is_err());
    }
}
