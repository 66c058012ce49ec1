//! Writing change records to Kafka, and advancing the stored position behind
//! Kafka's acknowledgements.
//!
//! Invariants:
//! - Records are produced with `enable.idempotence=true` and `acks=all`, so
//!   librdkafka's retries neither lose nor reorder nor duplicate records within
//!   a partition; keys are partitioned with murmur2 like Kafka's Java client.
//! - Every produced record and every position marker enters ONE ordered queue.
//!   The [`Committer`] awaits deliveries strictly in that order, so the offset it
//!   stores is always covered by acknowledged records only (invariant 1 of
//!   [`crate::offsets`]). A failed delivery stops the connector before any later
//!   position is stored: on restart everything after the stored position is
//!   read again (at-least-once, never lost).
//! - Topics are created before their first record (the broker does not
//!   auto-create), once per process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::kafka::{KafkaArgs, TopicSpec};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use tokio::sync::mpsc;

use crate::decode::Cell;
use crate::envelope::{EnvelopeError, Op, SourceInfo, TableCodec};
use crate::offsets::{OffsetError, OffsetStore, SourceOffset};
use crate::registry::{start_frame, Registry, RegistryError};
use crate::schema::TableSchema;

/// Why records could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Transient: the broker refused or timed out; restart from the stored offset.
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot create topic: {0}")]
    Topic(#[from] pipeline::kafka::TopicError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Definite: a row cannot be represented with its table's schema.
    #[error(transparent)]
    Encode(#[from] EnvelopeError),
    #[error(
        "a record was not delivered: {0}; the connector stops so nothing after it is marked done"
    )]
    Delivery(String),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    /// The committer stopped (after an error it reports itself).
    #[error("the offset committer stopped")]
    CommitterGone,
}

impl SinkError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Encode(_) => false,
            Self::Registry(e) => e.is_transient(),
            Self::Offsets(OffsetError::Corrupt(_)) => false,
            Self::Topic(pipeline::kafka::TopicError::Refused { .. }) => false,
            _ => true,
        }
    }
}

/// A table ready to be written: its codec and registered schema ids.
#[derive(Debug)]
pub struct PreparedTable {
    pub schema: TableSchema,
    pub codec: TableCodec,
    pub key_id: Option<u32>,
    pub value_id: u32,
}

/// What the committer awaits, in send order.
enum Pending {
    Record(DeliveryFuture, Option<SourceOffset>),
    Mark(SourceOffset),
}

/// The producing side: shared by snapshot and streaming.
pub struct Sink {
    producer: FutureProducer,
    kafka: KafkaArgs,
    registry: Registry,
    pending: mpsc::Sender<Pending>,
    topics: Mutex<HashSet<String>>,
    partitions: i32,
    replication: i32,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    /// The last offset handed to the queue: where a reconnect resumes.
    pub emitted: Option<SourceOffset>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("registry", &self.registry)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

/// Producer tuning for throughput with strict per-partition order.
pub fn producer_config(kafka: &KafkaArgs, compression: &str) -> rdkafka::ClientConfig {
    let mut c = kafka.client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("compression.type", compression)
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "300000");
    c
}

impl Sink {
    /// Creates the producer and starts the committer task.
    pub fn start(
        kafka: &KafkaArgs,
        compression: &str,
        registry: Registry,
        store: Arc<OffsetStore>,
        flush_interval: Duration,
        partitions: i32,
        replication: i32,
    ) -> Result<(Self, Committer), SinkError> {
        let producer: FutureProducer = producer_config(kafka, compression).create()?;
        // Bounded: a slow broker slows reading instead of growing memory.
        let (tx, rx) = mpsc::channel(100_000);
        let task = tokio::spawn(commit_loop(rx, store, flush_interval));
        Ok((
            Self {
                producer,
                kafka: kafka.clone(),
                registry,
                pending: tx,
                topics: Mutex::new(HashSet::new()),
                partitions,
                replication,
                key_buf: Vec::with_capacity(256),
                value_buf: Vec::with_capacity(4096),
                emitted: None,
            },
            Committer { task },
        ))
    }

    /// Builds the codec, registers its schemas and creates the topic.
    pub async fn prepare(
        &self,
        schema: TableSchema,
        converter: &crate::envelope::ConverterConfig,
    ) -> Result<Arc<PreparedTable>, SinkError> {
        let codec = TableCodec::new(&schema, converter)?;
        let key_id = match &codec.key_schema_json {
            Some(json) => Some(
                self.registry
                    .register(&format!("{}-key", codec.topic), json)
                    .await?,
            ),
            None => None,
        };
        let value_id = self
            .registry
            .register(&format!("{}-value", codec.topic), &codec.value_schema_json)
            .await?;
        self.ensure_topic(&codec.topic).await?;
        Ok(Arc::new(PreparedTable {
            schema,
            codec,
            key_id,
            value_id,
        }))
    }

    async fn ensure_topic(&self, topic: &str) -> Result<(), SinkError> {
        if self.lock_topics().contains(topic) {
            return Ok(());
        }
        pipeline::kafka::ensure_topic(
            &self.kafka,
            &TopicSpec {
                name: topic,
                partitions: self.partitions,
                replication: self.replication,
                configs: &[],
            },
        )
        .await?;
        self.lock_topics().insert(topic.to_owned());
        Ok(())
    }

    fn lock_topics(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Framed key bytes of `row`, or `None` for a table without primary key.
    pub fn key_of(
        &mut self,
        table: &PreparedTable,
        row: &[Cell],
    ) -> Result<Option<Vec<u8>>, SinkError> {
        let Some(id) = table.key_id else {
            return Ok(None);
        };
        start_frame(id, &mut self.key_buf);
        table.codec.encode_key(row, &mut self.key_buf)?;
        Ok(Some(self.key_buf.clone()))
    }

    /// Sends one change event; `offset` (if any) becomes storable once this
    /// record and all before it are acknowledged.
    #[allow(clippy::too_many_arguments)]
    pub async fn change(
        &mut self,
        table: &PreparedTable,
        key: Option<&[u8]>,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        source: &SourceInfo,
        op: Op,
        offset: Option<SourceOffset>,
    ) -> Result<(), SinkError> {
        let mut value = std::mem::take(&mut self.value_buf);
        start_frame(table.value_id, &mut value);
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default();
        let encoded = table
            .codec
            .encode_envelope(before, after, source, op, now_ns, &mut value);
        let result = match encoded {
            Ok(()) => {
                self.send(&table.codec.topic, key, Some(&value), offset)
                    .await
            }
            Err(e) => Err(e.into()),
        };
        self.value_buf = value;
        result
    }

    /// Sends a tombstone (null value) for `key`.
    pub async fn tombstone(
        &mut self,
        table: &PreparedTable,
        key: &[u8],
        offset: Option<SourceOffset>,
    ) -> Result<(), SinkError> {
        self.send(&table.codec.topic, Some(key), None, offset).await
    }

    async fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: Option<SourceOffset>,
    ) -> Result<(), SinkError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        let delivery = loop {
            match self.producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Backpressure: librdkafka's queue drains as the broker acks.
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        };
        if let Some(o) = &offset {
            self.emitted = Some(o.clone());
        }
        self.pending
            .send(Pending::Record(delivery, offset))
            .await
            .map_err(|_| SinkError::CommitterGone)
    }

    /// A position reached without a record (commit of a transaction whose rows
    /// were filtered out, end of snapshot, rotation).
    pub async fn mark(&mut self, offset: SourceOffset) -> Result<(), SinkError> {
        self.emitted = Some(offset.clone());
        self.pending
            .send(Pending::Mark(offset))
            .await
            .map_err(|_| SinkError::CommitterGone)
    }

    /// Waits for every queued record, stores the final position and stops.
    pub async fn finish(self, committer: Committer) -> Result<(), SinkError> {
        let Self {
            producer, pending, ..
        } = self;
        drop(pending);
        let result = committer.wait().await;
        // Deliveries are all resolved once the committer returned.
        let _ = producer.flush(Duration::from_secs(10));
        result
    }
}

/// The task that stores acknowledged positions.
#[derive(Debug)]
pub struct Committer {
    task: tokio::task::JoinHandle<Result<(), SinkError>>,
}

impl Committer {
    /// Returns the committer's result once the queue is closed and drained.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(SinkError::Delivery(format!("committer task failed: {e}"))),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

async fn commit_loop(
    mut rx: mpsc::Receiver<Pending>,
    store: Arc<OffsetStore>,
    interval: Duration,
) -> Result<(), SinkError> {
    let mut acked: Option<SourceOffset> = None;
    let mut stored: Option<SourceOffset> = None;
    let mut last_store = Instant::now();
    loop {
        let wait = interval.saturating_sub(last_store.elapsed());
        let item = match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(item)) => Some(item),
            Ok(None) => break,
            Err(_) => None,
        };
        match item {
            Some(Pending::Record(delivery, offset)) => {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        crate::metrics::error("delivery");
                        return Err(SinkError::Delivery(e.to_string()));
                    }
                    Err(_) => return Err(SinkError::Delivery("producer dropped".into())),
                }
                if let Some(offset) = offset {
                    acked = Some(offset);
                }
            }
            Some(Pending::Mark(offset)) => acked = Some(offset),
            None => {}
        }
        if last_store.elapsed() >= interval {
            if acked != stored {
                if let Some(offset) = &acked {
                    store.save(offset).await?;
                    crate::metrics::position(offset);
                    tracing::debug!(%offset, "stored position");
                }
                stored.clone_from(&acked);
            }
            last_store = Instant::now();
        }
    }
    if acked != stored {
        if let Some(offset) = &acked {
            store.save(offset).await?;
            crate::metrics::position(offset);
            tracing::info!(%offset, "stored final position");
        }
    }
    Ok(())
}
