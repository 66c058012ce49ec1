//! Where the connector resumes: Debezium-style source offsets and their store.
//!
//! Invariants:
//! 1. A position is stored only after Kafka acknowledged every record before it
//!    (the committer in [`crate::kafka`] awaits deliveries in send order and
//!    hands this module only the highest contiguous acknowledged offset).
//! 2. A stored position is a transaction boundary plus skip counts: `file`/`pos`
//!    is the first event of a transaction (its GTID or BEGIN event) or the end of
//!    a committed one; `event` counts the rows events of that transaction already
//!    fully delivered and `row` the rows delivered from the next one. Restarting
//!    re-reads the transaction from its start (so every table map is seen again)
//!    and skips exactly what was delivered: nothing is lost, nothing doubled.
//!    `gtids` holds the committed transactions only (never the one in flight),
//!    so resuming by GTID set (see [`crate::start`]) re-reads the in-flight
//!    transaction too, on any server that has it; `in_flight_gtid` names it.
//! 3. `snapshot: true` is stored when a snapshot starts, before its first
//!    record, with the position streaming will start from. Found at start, it
//!    means that snapshot was interrupted: the connector snapshots again and
//!    then streams from that earlier position, so a row the interrupted snapshot
//!    emitted and that was deleted since gets its delete (Debezium would leave
//!    it in the topic).
//!
//! Two stores: a compacted single-partition Kafka topic keyed like Kafka
//! Connect's offsets (`["<name>",{"server":"<prefix>"}]`), read back to its end
//! with partition-EOF events (never watermarks: tansu's ListOffsets is wrong),
//! or a JSON file replaced atomically.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pipeline::kafka::{KafkaArgs, TopicSpec};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// A resume point, with Debezium's offset keys.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceOffset {
    pub file: String,
    pub pos: u64,
    /// GTIDs of fully committed transactions (informational; resume is by file/pos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtids: Option<String>,
    /// Rows events of the transaction at `pos` already delivered.
    #[serde(default)]
    pub event: u64,
    /// Rows of the next rows event already delivered.
    #[serde(default)]
    pub row: u64,
    /// GTID of the transaction that `event` / `row` count into, when it has
    /// one (not a Debezium key; Debezium ignores unknown keys). Resuming by
    /// GTID, the server streams every transaction the stored set lacks, and
    /// a promoted replica may have its own ones before this one: the skip
    /// applies to this transaction, not to whichever comes first. Absent (a
    /// Debezium offset), the skip applies to the first one, as in Debezium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_gtid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<bool>,
    #[serde(default)]
    pub server_id: u32,
    #[serde(default)]
    pub ts_sec: u64,
    /// The incremental snapshot in progress, if any (see [`IncrementalOffset`]).
    #[serde(flatten)]
    pub incremental: IncrementalOffset,
}

/// `clone_from` reuses the target's buffers: the sink copies the newest
/// position once per record (the emitted one and the pending one), and
/// `derive(Clone)`'s `clone_from` would allocate the file name and the GTID
/// set anew each time (2-3% of the CPU of a backlog drain).
impl Clone for SourceOffset {
    fn clone(&self) -> Self {
        let mut to = Self::default();
        to.clone_from(self);
        to
    }

    fn clone_from(&mut self, source: &Self) {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            file,
            pos,
            gtids,
            event,
            row,
            in_flight_gtid,
            snapshot,
            server_id,
            ts_sec,
            incremental,
        } = source;
        self.file.clone_from(file);
        self.pos = *pos;
        self.gtids.clone_from(gtids);
        self.event = *event;
        self.row = *row;
        self.in_flight_gtid.clone_from(in_flight_gtid);
        self.snapshot = *snapshot;
        self.server_id = *server_id;
        self.ts_sec = *ts_sec;
        self.incremental.clone_from(incremental);
    }
}

/// The state of an incremental snapshot, stored with every position while
/// one runs, under Debezium's offset keys
/// (`AbstractIncrementalSnapshotContext.store`). All absent: none runs.
///
/// `incremental_snapshot_collections` is Debezium's JSON text (a list of
/// `{"incremental_snapshot_collections_id": "<db>.<table>",
/// "incremental_snapshot_collections_additional_condition": ..,
/// "incremental_snapshot_collections_surrogate_key": ..}`), first = the table
/// being read. The two keys are JSON arrays of tagged values (see
/// [`crate::incremental`]); Debezium writes hex-encoded Java serialization
/// there, so an offset is not interchangeable with Debezium's while an
/// incremental snapshot runs (and only then).
///
/// Invariant: `incremental_snapshot_primary_key` is the key of the last row
/// whose record goes out before this position is stored (or the end of the
/// last chunk whose window closed before it); a restart reads on from the
/// next key, so nothing in between is skipped.
///
/// The texts are shared (`Arc<str>`): every position of the stream carries
/// them and is cloned into the delivery queue, while they change once per
/// chunk (the primary key once per window record); a clone is a count bump.
/// They serialize as plain JSON strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IncrementalOffset {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_text")]
    pub incremental_snapshot_collections: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_text")]
    pub incremental_snapshot_primary_key: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_text")]
    pub incremental_snapshot_maximum_key: Option<Arc<str>>,
}

/// `Option<Arc<str>>` as an optional JSON string (serde's own impls for
/// `Arc` need its `rc` feature, which would rebuild serde for the workspace).
mod shared_text {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        match text {
            Some(t) => s.serialize_some(&**t),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Arc::from))
    }
}

impl IncrementalOffset {
    /// Whether an incremental snapshot is in progress at this position.
    pub fn is_running(&self) -> bool {
        self.incremental_snapshot_collections.is_some()
    }
}

impl std::fmt::Display for SourceOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if self.event > 0 || self.row > 0 {
            write!(f, " (skip {} events, {} rows)", self.event, self.row)?;
        }
        Ok(())
    }
}

/// Why offsets could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    /// Transient: Kafka or the disk failed; retry.
    #[error("offset store unavailable: {0}")]
    Unavailable(String),
    /// Definite: the stored data is unreadable; fix or delete it.
    #[error("stored offset is unreadable ({0}); delete it to start over with a snapshot")]
    Corrupt(String),
}

/// A place for offsets.
pub enum OffsetStore {
    Kafka {
        kafka: KafkaArgs,
        /// Not rdkafka's `FutureProducer`: its polling thread cost an idle
        /// connector 0.18 CPU-s per 20 s (measured), nine times the rest.
        producer: pipeline::kafka::SideProducer,
        topic: String,
        key: String,
    },
    File {
        path: PathBuf,
    },
}

impl std::fmt::Debug for OffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kafka { topic, key, .. } => write!(f, "OffsetStore::Kafka({topic}, {key})"),
            Self::File { path } => write!(f, "OffsetStore::File({})", path.display()),
        }
    }
}

/// Kafka Connect's offset key for a connector (JSON array).
pub fn connect_key(name: &str, topic_prefix: &str) -> String {
    serde_json::json!([name, { "server": topic_prefix }]).to_string()
}

impl OffsetStore {
    /// A Kafka store; creates the compacted topic when missing.
    pub async fn kafka(
        kafka: &KafkaArgs,
        topic: &str,
        name: &str,
        topic_prefix: &str,
        replication: i32,
    ) -> Result<Self, OffsetError> {
        pipeline::kafka::ensure_topic(
            kafka,
            &TopicSpec {
                name: topic,
                partitions: 1,
                replication,
                configs: &[("cleanup.policy", "compact")],
            },
        )
        .await
        .map_err(|e| OffsetError::Unavailable(e.to_string()))?;
        let producer = pipeline::kafka::SideProducer::new(&kafka.durable_producer())
            .map_err(|e| OffsetError::Unavailable(e.to_string()))?;
        Ok(Self::Kafka {
            kafka: kafka.clone(),
            producer,
            topic: topic.to_owned(),
            key: connect_key(name, topic_prefix),
        })
    }

    /// The offsets topic and this connector's key in it (`None`: file store).
    /// An exactly-once sink writes them inside its transactions.
    pub fn kafka_topic_and_key(&self) -> Option<(&str, &str)> {
        match self {
            Self::Kafka { topic, key, .. } => Some((topic, key)),
            Self::File { .. } => None,
        }
    }

    /// The last stored offset, if any.
    pub async fn load(&self) -> Result<Option<SourceOffset>, OffsetError> {
        match self {
            Self::File { path } => match tokio::fs::read_to_string(path).await {
                Ok(text) => serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| OffsetError::Corrupt(format!("{}: {e}", path.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(OffsetError::Unavailable(format!("{}: {e}", path.display()))),
            },
            Self::Kafka {
                kafka, topic, key, ..
            } => read_topic_to_end(kafka, topic, key).await,
        }
    }

    /// Stores `offset`; returns once it is durable (acknowledged or renamed).
    pub async fn save(&self, offset: &SourceOffset) -> Result<(), OffsetError> {
        let json =
            serde_json::to_string(offset).map_err(|e| OffsetError::Corrupt(e.to_string()))?;
        match self {
            Self::File { path } => {
                let tmp = path.with_extension("tmp");
                tokio::fs::write(&tmp, json.as_bytes())
                    .await
                    .map_err(|e| OffsetError::Unavailable(format!("{}: {e}", tmp.display())))?;
                tokio::fs::rename(&tmp, path)
                    .await
                    .map_err(|e| OffsetError::Unavailable(format!("{}: {e}", path.display())))
            }
            Self::Kafka {
                producer,
                topic,
                key,
                ..
            } => producer
                .send(
                    FutureRecord::to(topic).key(key).payload(&json),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| OffsetError::Unavailable(e.to_string())),
        }
    }
}

/// The offsets reader asks for end-of-partition events (that is how it knows it
/// has read everything); librdkafka also reports them as client errors, which the
/// default context would log at ERROR level.
struct EofIsExpected;

impl rdkafka::ClientContext for EofIsExpected {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::error!(%error, reason, "kafka client error while reading offsets");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofIsExpected {}

async fn read_topic_to_end(
    kafka: &KafkaArgs,
    topic: &str,
    key: &str,
) -> Result<Option<SourceOffset>, OffsetError> {
    let unavailable = |e: KafkaError| OffsetError::Unavailable(format!("{topic}: {e}"));
    let consumer: StreamConsumer<EofIsExpected> = kafka
        .topic_reader(&format!("{topic}-reader"))
        // Offsets written in Kafka transactions (exactly.once.support) count
        // once committed, never while open or after an abort.
        .set("isolation.level", "read_committed")
        .create_with_context(EofIsExpected)
        .map_err(unavailable)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(unavailable)?;
    consumer.assign(&tpl).map_err(unavailable)?;
    let mut last: Option<SourceOffset> = None;
    let mut stream = consumer.stream();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .map_err(|_| {
                OffsetError::Unavailable(format!(
                    "{topic}: no end-of-partition within 60 s while reading offsets"
                ))
            })?;
        match next {
            None => return Ok(last),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(last),
            Some(Err(e)) => return Err(unavailable(e)),
            Some(Ok(message)) => {
                if message.key() != Some(key.as_bytes()) {
                    continue;
                }
                last = match message.payload() {
                    None => None,
                    Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| {
                        OffsetError::Corrupt(format!("{topic} offset {}: {e}", message.offset()))
                    })?),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debezium_keys_round_trip() {
        let o = SourceOffset {
            file: "mysql-bin.000003".into(),
            pos: 154,
            gtids: Some("0-1-42".into()),
            event: 2,
            row: 1,
            in_flight_gtid: None,
            snapshot: None,
            server_id: 1,
            ts_sec: 1_700_000_000,
            incremental: IncrementalOffset::default(),
        };
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["file"], "mysql-bin.000003");
        assert_eq!(json["event"], 2);
        assert!(json.get("snapshot").is_none());
        let back: SourceOffset = serde_json::from_value(json).unwrap();
        assert_eq!(back, o);
        assert_eq!(connect_key("c", "mysql"), r#"["c",{"server":"mysql"}]"#);
    }

    #[test]
    fn clone_and_clone_from_copy_every_field() {
        let full = SourceOffset {
            file: "mysql-bin.000009".into(),
            pos: 9,
            gtids: Some("0-1-9".into()),
            event: 3,
            row: 7,
            in_flight_gtid: Some("0-1-10".into()),
            snapshot: Some(true),
            server_id: 2,
            ts_sec: 1_700_000_009,
            incremental: IncrementalOffset {
                incremental_snapshot_collections: Some("[]".into()),
                incremental_snapshot_primary_key: None,
                incremental_snapshot_maximum_key: Some("[9]".into()),
            },
        };
        assert_eq!(full.clone(), full);
        // Onto an offset with other values (and buffers to reuse), and back.
        let mut other = SourceOffset {
            file: "mysql-bin.000001".into(),
            gtids: Some("0-1-1,1-1-1".into()),
            ..Default::default()
        };
        other.clone_from(&full);
        assert_eq!(other, full);
        let empty = SourceOffset::default();
        other.clone_from(&empty);
        assert_eq!(other, empty);
    }

    #[test]
    fn incremental_keys_are_flat_and_optional() {
        let mut o = SourceOffset {
            file: "b.000001".into(),
            pos: 4,
            ..Default::default()
        };
        let json = serde_json::to_value(&o).unwrap();
        assert!(json.get("incremental_snapshot_collections").is_none());
        o.incremental = IncrementalOffset {
            incremental_snapshot_collections: Some("[]".into()),
            incremental_snapshot_primary_key: Some("[{\"u\":7}]".into()),
            incremental_snapshot_maximum_key: Some("[{\"u\":9}]".into()),
        };
        let json = serde_json::to_value(&o).unwrap();
        // Debezium's keys, at the top level of the offset map.
        assert_eq!(json["incremental_snapshot_collections"], "[]");
        assert_eq!(json["incremental_snapshot_primary_key"], "[{\"u\":7}]");
        let back: SourceOffset = serde_json::from_value(json).unwrap();
        assert_eq!(back, o);
        assert!(back.incremental.is_running());
    }

    /// The texts are shared in memory, but the stored form is the same
    /// plain JSON strings as before (and as Debezium's keys).
    #[test]
    fn incremental_keys_serialize_as_plain_strings() {
        let o = SourceOffset {
            file: "b.000001".into(),
            pos: 4,
            incremental: IncrementalOffset {
                incremental_snapshot_collections: Some(
                    r#"[{"incremental_snapshot_collections_id":"shop.users"}]"#.into(),
                ),
                incremental_snapshot_primary_key: Some(r#"[{"u":7}]"#.into()),
                incremental_snapshot_maximum_key: None,
            },
            ..Default::default()
        };
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(
            text,
            r#"{"file":"b.000001","pos":4,"event":0,"row":0,"server_id":0,"ts_sec":0,"#.to_owned()
                + r#""incremental_snapshot_collections":"[{\"incremental_snapshot_collections_id\":\"shop.users\"}]","#
                + r#""incremental_snapshot_primary_key":"[{\"u\":7}]"}"#
        );
        let back: SourceOffset = serde_json::from_str(&text).unwrap();
        assert_eq!(back, o);
        // Explicit nulls (another writer's) read as absent.
        let nulls = r#"{"file":"b.000001","pos":4,"incremental_snapshot_primary_key":null}"#;
        let back: SourceOffset = serde_json::from_str(nulls).unwrap();
        assert_eq!(back.incremental, IncrementalOffset::default());
    }

    #[tokio::test]
    async fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::File {
            path: dir.path().join("offsets.json"),
        };
        assert_eq!(store.load().await.unwrap(), None);
        let o = SourceOffset {
            file: "f.000001".into(),
            pos: 4,
            ..Default::default()
        };
        store.save(&o).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(o));
    }
}
