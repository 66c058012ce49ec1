//! Writing change records to Kafka, and advancing the stored position behind
//! Kafka's acknowledgements.
//!
//! Invariants:
//! - Records are produced with `enable.idempotence=true` and `acks=all`, so
//!   librdkafka's retries neither lose nor reorder nor duplicate records within
//!   a partition; keys are partitioned with murmur2 like Kafka's Java client.
//! - Every produced record gets a sequence number in send order, and every
//!   position (a record's offset or a marker) is queued with the number of
//!   records sent before it. Delivery reports (librdkafka's callback, no future
//!   per record) advance the count of records acknowledged WITHOUT a gap; the
//!   [`Committer`] stores only a position whose count that prefix covers, so
//!   the stored offset is always covered by acknowledged records only
//!   (invariant 1 of [`crate::offsets`]). A failed delivery freezes that prefix
//!   and stops the connector before any later position is stored: on restart
//!   everything after the stored position is read again (at-least-once, never
//!   lost).
//! - Topics are created before their first record (the broker does not
//!   auto-create), once per process; the schema-change topic
//!   (`<topic.prefix>`) too, with one partition.
//! - Headers follow Debezium 3.6: with `extended.headers.enabled` every
//!   record (tombstones and schema changes too) ends with the four
//!   `__debezium.context.*` headers of the run ([`ContextHeaders`], built once
//!   and copied per record); a primary-key change puts `__debezium.newkey` on
//!   the delete and its tombstone and `__debezium.oldkey` on the create,
//!   before them.
//! - With `exactly.once.support` ([`Sink::start_exactly_once`]) the producer
//!   is transactional: every record (side topics too) goes into a Kafka
//!   transaction, and a transaction is committed only at a point where the
//!   newest queued position covers every record sent so far, with that
//!   position written to the offsets topic as the transaction's last record.
//!   So the offsets topic and the data topics agree, for a read_committed
//!   reader, at every commit: a crash before a commit leaves neither the
//!   records nor their offset visible, and the restart resumes from the
//!   offset of the last committed transaction. Records without a position of
//!   their own (the delete before its tombstone, BEGIN, schema changes,
//!   snapshot rows) are never split from the position after them: a snapshot
//!   is therefore one transaction. The stable `transactional.id` makes a
//!   restarted instance fence the previous one (its `init_transactions` runs
//!   before the offsets are read, so a zombie cannot commit after them).
//!   Fatal errors (fenced, unsupported) end the run as definite; abortable
//!   ones abort the transaction and end the run as transient: the supervisor
//!   restarts it from the last committed offset, the one path that already
//!   rewinds the binlog reader, its table maps and the transaction state.
//! - `cdc_read_to_ack_seconds` (and, when the source gives a microsecond commit
//!   time, `cdc_commit_to_ack_seconds`) is observed once per transaction that
//!   produced records, when its last record is acknowledged.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipeline::kafka::{KafkaArgs, TopicSpec};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::Message as _;
use tokio_util::sync::CancellationToken;

use crate::config::{ExactlyOnce, TransactionBoundary, POLL_BATCH_RECORDS};
use crate::offsets::{OffsetError, OffsetStore, SourceOffset};
use crate::routing::{route_all, RegexRouter};
use debezium_avro::heartbeat::HeartbeatCodec;
use debezium_avro::schema_change::{SchemaChange, SchemaChangeCodec};
use debezium_avro::transaction::{TransactionBlock, TransactionCodec};
use debezium_avro::unwrap::{EventMeta, ExtractNewRecordState, Flat, FlatCodec};
use debezium_avro::TableSchema;
use debezium_avro::{Cell, EnvelopeError, Op, SourceInfo, TableCodec};
use pipeline::registry::{start_frame, RegistryClient, RegistryError};

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
    /// Definite (`exactly.once.support`): the transactional producer cannot
    /// go on; fenced means another instance with the same transactional.id
    /// took over, and restarting this one would only fence that one.
    #[error("Kafka transactions (transactional.id {id}): {reason}; this instance stops")]
    TransactionFatal { id: String, reason: String },
    /// Transient (`exactly.once.support`): the open transaction was aborted
    /// (none of its records nor its offset is visible read_committed); a
    /// restart resumes from the last committed offset.
    #[error("Kafka transaction aborted: {0}; a restart resumes from the last committed offset")]
    TransactionAborted(String),
    /// Definite: the committer task panicked (a bug); nothing after the last
    /// stored position is marked done, so a restart repeats, never loses.
    #[error(
        "the offset committer died: {0}; positions after the last stored one are not marked done"
    )]
    CommitterDied(String),
    /// Transient: the task serving delivery reports ended (it panicked);
    /// nothing after the last stored position is marked done.
    #[error("the Kafka delivery-report task ended; restarting from the stored offset")]
    DeliveriesGone,
}

impl SinkError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Encode(_) | Self::CommitterDied(_) | Self::TransactionFatal { .. } => false,
            Self::Registry(e) => e.is_transient(),
            Self::Offsets(OffsetError::Corrupt(_)) => false,
            Self::Topic(pipeline::kafka::TopicError::Refused { .. }) => false,
            _ => true,
        }
    }
}

/// Debezium's `__debezium.context.*` headers (`extended.headers.enabled`),
/// fixed for one run: built once, copied onto each record.
#[derive(Debug, Clone)]
pub struct ContextHeaders {
    pairs: [(&'static str, String); 4],
    headers: OwnedHeaders,
}

impl ContextHeaders {
    /// The headers of a run of the connector with `topic_prefix`: logical
    /// name, task `0`, connector `mysql`, and a new random run id.
    pub fn new(topic_prefix: &str) -> Self {
        let pairs = [
            (
                "__debezium.context.connectorLogicalName",
                topic_prefix.to_owned(),
            ),
            ("__debezium.context.taskId", "0".to_owned()),
            ("__debezium.context.connectorName", "mysql".to_owned()),
            (
                "__debezium.context.runId",
                uuid::Uuid::new_v4().hyphenated().to_string(),
            ),
        ];
        let headers = append_headers(OwnedHeaders::new_with_capacity(5), &pairs);
        Self { pairs, headers }
    }

    /// This run's `__debezium.context.runId`.
    pub fn run_id(&self) -> &str {
        &self.pairs[3].1
    }
}

fn append_headers(mut headers: OwnedHeaders, pairs: &[(&'static str, String)]) -> OwnedHeaders {
    for (key, value) in pairs {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    headers
}

/// A side topic (schema changes, heartbeats, transaction metadata),
/// registered and created (see [`Sink::prepare_side_topic`]).
#[derive(Debug)]
pub struct PreparedSide<C> {
    pub codec: C,
    pub key_id: u32,
    pub value_id: u32,
}

/// The schema-change topic, registered and created.
pub type PreparedSchemaChanges = PreparedSide<SchemaChangeCodec>;
/// The heartbeat topic, registered and created.
pub type PreparedHeartbeat = PreparedSide<HeartbeatCodec>;
/// The transaction metadata topic, registered and created.
pub type PreparedTransactions = PreparedSide<TransactionCodec>;

/// What [`Sink::prepare_side_topic`] needs of a side topic's codec.
pub trait SideCodec {
    fn topic(&self) -> &str;
    /// The topic records go to instead (`RegexRouter`).
    fn set_topic(&mut self, topic: String);
    fn key_schema_json(&self) -> &str;
    fn value_schema_json(&self) -> &str;
    /// `true`: the topic has one partition (Debezium writes every record of
    /// it to partition 0, so they stay in order); `false`: the connector's
    /// `topic.creation.default.partitions`.
    fn single_partition(&self) -> bool;
}

macro_rules! side_codec {
    ($codec:ty, $single:expr) => {
        impl SideCodec for $codec {
            fn topic(&self) -> &str {
                &self.topic
            }
            fn set_topic(&mut self, topic: String) {
                self.topic = topic;
            }
            fn key_schema_json(&self) -> &str {
                &self.key_schema_json
            }
            fn value_schema_json(&self) -> &str {
                &self.value_schema_json
            }
            fn single_partition(&self) -> bool {
                $single
            }
        }
    };
}

// Schema changes and heartbeats: one partition, as in Debezium.
side_codec!(SchemaChangeCodec, true);
side_codec!(HeartbeatCodec, true);
// Transaction metadata: keyed by transaction id, default partitions.
side_codec!(TransactionCodec, false);

/// One record of the transaction topic.
#[derive(Debug, Clone, Copy)]
pub enum TransactionEvent<'a> {
    Begin {
        ts_ms: i64,
    },
    /// `collections`: per `db.table`, its records, in Debezium's order.
    End {
        event_count: i64,
        collections: &'a [(&'a str, i64)],
        ts_ms: i64,
    },
}

/// What a record carries besides its topic, key and value.
struct RecordMeta {
    headers: Option<OwnedHeaders>,
    /// Milliseconds since the epoch; `None`: librdkafka's clock at send.
    timestamp_ms: Option<i64>,
}

/// Debezium's key-change header: `("__debezium.newkey", text)` on the delete
/// and its tombstone, `("__debezium.oldkey", text)` on the create.
pub type KeyHeader<'a> = (&'static str, &'a str);

/// A table ready to be written: its codec and registered schema ids.
#[derive(Debug)]
pub struct PreparedTable {
    pub schema: TableSchema,
    pub codec: TableCodec,
    pub key_id: Option<u32>,
    pub value_id: u32,
    /// `cdc_events_total{table,op}` handles, resolved once (not per record).
    pub events: crate::metrics::EventCounters,
    /// With `ExtractNewRecordState`: the flat value schema (registered as
    /// `value_id`) and its writer.
    pub flat: Option<FlatCodec>,
}

/// At least one stored-position candidate per this many records, so a long
/// transaction still advances the stored position while it streams.
const POSITION_BLOCK: u64 = 1024;

/// Acknowledgement state shared by the delivery callback, the sink and the
/// committer.
#[derive(Default)]
struct Acks {
    /// Records `0..acked` are all acknowledged.
    acked: u64,
    /// Acknowledged sequence numbers above a gap (partitions ack independently).
    early: BTreeSet<u64>,
    /// The first failed delivery: nothing at or after it is ever covered.
    failed: Option<String>,
    /// Positions in send order: storable once `acked >= .0`.
    marks: VecDeque<(u64, SourceOffset)>,
    /// Transactions read, in order: (records sent up to their commit, when
    /// the commit was read, source commit time in µs since the epoch).
    commits: VecDeque<(u64, Instant, Option<u64>)>,
}

impl Acks {
    fn delivered(&mut self, seq: u64) {
        if seq == self.acked {
            self.acked += 1;
            while self.early.remove(&self.acked) {
                self.acked += 1;
            }
        } else if seq > self.acked {
            self.early.insert(seq);
        }
        while let Some(&(upto, read, commit_us)) = self.commits.front() {
            if upto > self.acked {
                break;
            }
            self.commits.pop_front();
            crate::metrics::transaction_acked(read, commit_us);
        }
    }

    /// Queues a record's position: storable once `upto` records are acked.
    /// Row positions within one block of [`POSITION_BLOCK`] records collapse
    /// into one entry (the newest, reusing its buffers): moving a pending
    /// entry later only delays when it becomes storable, never makes it
    /// unsafe, and the committer stores only the newest covered one anyway.
    fn queue(&mut self, upto: u64, offset: &SourceOffset) {
        let acked = self.acked;
        match self.marks.back_mut() {
            Some((last_upto, last))
                if *last_upto > acked && *last_upto / POSITION_BLOCK == upto / POSITION_BLOCK =>
            {
                *last_upto = upto;
                last.clone_from(offset);
            }
            _ => self.marks.push_back((upto, offset.clone())),
        }
    }

    /// The newest position covered by acknowledged records (consumed).
    fn take_covered(&mut self) -> Option<SourceOffset> {
        let mut latest = None;
        while self
            .marks
            .front()
            .is_some_and(|(upto, _)| *upto <= self.acked)
        {
            latest = self.marks.pop_front().map(|(_, o)| o);
        }
        latest
    }
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Acks>,
    /// The committer returned (after an error, or at finish).
    gone: AtomicBool,
    /// A delivery failed: sending more is pointless, the connector stops.
    failed: AtomicBool,
    /// Cancelled with `gone`: wakes a caller that is not sending (a quiet
    /// binlog) so a dead committer is noticed without a record to send.
    gone_signal: CancellationToken,
}

/// Sets [`Shared::gone`] when dropped (on return or while unwinding).
struct MarkGone<'a>(&'a Shared);

impl Drop for MarkGone<'_> {
    fn drop(&mut self) {
        self.0.gone.store(true, Ordering::Release);
        self.0.gone_signal.cancel();
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        self.gone.load(Ordering::Acquire) || self.failed.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Acks> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// librdkafka calls [`ProducerContext::delivery`] on the producer's polling
/// thread once per record: a counter update instead of a future per record.
struct DeliveryContext {
    shared: Arc<Shared>,
    /// Wakes the delivery task ([`pipeline::kafka::spawn_delivery_task`]).
    wake: pipeline::kafka::DeliveryWaker,
}

impl pipeline::kafka::DeliveryWake for DeliveryContext {
    fn delivery_wake(&self) -> &pipeline::kafka::DeliveryWaker {
        &self.wake
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let mut acks = self.shared.lock();
        match result {
            // The offset record of a transaction: not one of the records
            // counted in send order (its failure fails the commit too).
            Ok(_) if seq == OFFSET_RECORD => {}
            Ok(_) => acks.delivered(seq as u64),
            Err((e, message)) => {
                if acks.failed.is_none() {
                    crate::metrics::error("delivery");
                    acks.failed = Some(format!("{e} (topic {})", message.topic()));
                    self.shared.failed.store(true, Ordering::Release);
                }
            }
        }
    }
}

type KafkaProducer = BaseProducer<DeliveryContext>;

/// The producing side: shared by snapshot and streaming.
pub struct Sink {
    producer: Arc<KafkaProducer>,
    /// Serves the producer's delivery reports on this runtime.
    deliveries: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
    kafka: KafkaArgs,
    registry: RegistryClient,
    closing: Arc<tokio::sync::Notify>,
    topics: Mutex<HashSet<String>>,
    partitions: i32,
    replication: i32,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    /// Records handed to the producer (the next record's sequence number).
    sent: u64,
    /// `sent` at the last transaction commit read.
    sent_at_commit: u64,
    /// The last offset handed to the queue: where a reconnect resumes.
    pub emitted: Option<SourceOffset>,
    /// Copied onto every record when `extended.headers.enabled`.
    context: Option<ContextHeaders>,
    /// `transforms` naming `ExtractNewRecordState`: flat rows, not envelopes.
    unwrap: Option<ExtractNewRecordState>,
    /// The headers the transform added to the last delete, which the
    /// tombstone after it carries too (`rewrite-with-tombstone`).
    delete_headers: Vec<(String, Option<String>)>,
    /// `transforms` naming `RegexRouter`s: topic names, in order.
    routes: Vec<RegexRouter>,
    /// `exactly.once.support`: the transaction every record goes into.
    eos: Option<Arc<Transactions>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("registry", &self.registry)
            .field("sent", &self.sent)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

/// Producer tuning for throughput with strict per-partition order.
pub fn producer_config(kafka: &KafkaArgs, compression: &str) -> rdkafka::ClientConfig {
    let mut c = kafka.durable_producer();
    c.set("partitioner", "murmur2_random")
        .set("compression.type", compression)
        // Measured at 100 transactions/s: linger 5 ms made librdkafka's broker
        // thread spin (3.5 CPU s per 10 s, read-to-ack p50 144 ms); 20 ms costs
        // 0.2 CPU s with p50 15 ms / p99 30 ms, and 50 ms is no cheaper.
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000");
    c
}

impl Sink {
    /// Creates the producer and starts the committer task.
    pub fn start(
        kafka: &KafkaArgs,
        compression: &str,
        registry: RegistryClient,
        store: Arc<OffsetStore>,
        flush_interval: Duration,
        partitions: i32,
        replication: i32,
    ) -> Result<(Self, Committer), SinkError> {
        let shared = Arc::new(Shared::default());
        let producer: Arc<KafkaProducer> = Arc::new(
            producer_config(kafka, compression).create_with_context(DeliveryContext {
                shared: Arc::clone(&shared),
                wake: Default::default(),
            })?,
        );
        let deliveries = pipeline::kafka::spawn_delivery_task(&producer);
        let closing = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            let closing = Arc::clone(&closing);
            async move {
                // Marks the committer gone however it ends, a panic included:
                // a sink that went on sending after its committer died would
                // stream on with no position ever stored again.
                let _gone = MarkGone(&shared);
                commit_loop(&shared, &closing, store, flush_interval).await
            }
        });
        Ok(Self::assemble(
            kafka,
            registry,
            producer,
            shared,
            closing,
            task,
            deliveries,
            partitions,
            replication,
            None,
        ))
    }

    /// [`Self::start`] with `exactly.once.support`: a transactional producer
    /// (see the module docs) that writes `store`'s offsets itself, inside
    /// each transaction. Its `init_transactions` fences any older instance
    /// with the same transactional.id and aborts what it left open: call
    /// this before reading the stored offset.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_exactly_once(
        kafka: &KafkaArgs,
        compression: &str,
        registry: RegistryClient,
        store: &OffsetStore,
        eos: &ExactlyOnce,
        partitions: i32,
        replication: i32,
    ) -> Result<(Self, Committer), SinkError> {
        let id = eos.transactional_id.clone();
        let fatal = |reason: String| SinkError::TransactionFatal {
            id: id.clone(),
            reason,
        };
        let Some((topic, key)) = store.kafka_topic_and_key() else {
            return Err(fatal(
                "exactly.once.support needs offset.storage=kafka".to_owned(),
            ));
        };
        let shared = Arc::new(Shared::default());
        let mut config = producer_config(kafka, compression);
        config
            .set("transactional.id", &id)
            // Not above message.timeout.ms (librdkafka refuses that), and
            // long enough for a snapshot, which is one transaction.
            .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS);
        let producer: Arc<KafkaProducer> =
            Arc::new(config.create_with_context(DeliveryContext {
                shared: Arc::clone(&shared),
                wake: Default::default(),
            })?);
        let deliveries = pipeline::kafka::spawn_delivery_task(&producer);
        let init = Arc::clone(&producer);
        tokio::task::spawn_blocking(move || init.init_transactions(TRANSACTION_CALL_TIMEOUT))
            .await
            .map_err(|e| fatal(format!("init_transactions: {}", panic_text(e))))?
            .map_err(|e| fatal(format!("init_transactions: {e}")))?;
        tracing::info!(transactional_id = %id, boundary = ?eos.boundary, "exactly.once.support: transactional producer ready (older instances fenced)");
        let transactions = Arc::new(Transactions {
            producer: Arc::clone(&producer),
            id,
            boundary: eos.boundary,
            offsets_topic: topic.to_owned(),
            offsets_key: key.to_owned(),
            state: tokio::sync::Mutex::new(TxnState::default()),
        });
        let closing = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            let closing = Arc::clone(&closing);
            let transactions = Arc::clone(&transactions);
            async move {
                let _gone = MarkGone(&shared);
                transaction_loop(&shared, &closing, &transactions).await
            }
        });
        Ok(Self::assemble(
            kafka,
            registry,
            producer,
            shared,
            closing,
            task,
            deliveries,
            partitions,
            replication,
            Some(transactions),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        kafka: &KafkaArgs,
        registry: RegistryClient,
        producer: Arc<KafkaProducer>,
        shared: Arc<Shared>,
        closing: Arc<tokio::sync::Notify>,
        task: tokio::task::JoinHandle<Result<(), SinkError>>,
        deliveries: tokio::task::JoinHandle<()>,
        partitions: i32,
        replication: i32,
        eos: Option<Arc<Transactions>>,
    ) -> (Self, Committer) {
        (
            Self {
                producer,
                deliveries,
                shared,
                kafka: kafka.clone(),
                registry,
                closing,
                topics: Mutex::new(HashSet::new()),
                partitions,
                replication,
                key_buf: Vec::with_capacity(256),
                value_buf: Vec::with_capacity(4096),
                sent: 0,
                sent_at_commit: 0,
                emitted: None,
                context: None,
                unwrap: None,
                delete_headers: Vec::new(),
                routes: Vec::new(),
                eos,
            },
            Committer { task },
        )
    }

    /// Headers to put on every record from now on (`None`: none), as with
    /// Debezium's `extended.headers.enabled`.
    pub fn set_context_headers(&mut self, context: Option<ContextHeaders>) {
        self.context = context;
    }

    /// Change events from now on go through Debezium's
    /// `ExtractNewRecordState` (`None`: envelopes). Set before the first
    /// [`Self::prepare`]: the registered value schemas follow it.
    pub fn set_unwrap(&mut self, unwrap: Option<ExtractNewRecordState>) {
        self.unwrap = unwrap;
    }

    /// Topics from now on go through these `RegexRouter`s, in order. Set
    /// before the first prepare: a prepared codec keeps its routed topic,
    /// under which its schemas are registered.
    pub fn set_routes(&mut self, routes: Vec<RegexRouter>) {
        self.routes = routes;
    }

    /// The headers of one record (the key-change header first, then the
    /// context headers, in Debezium's order, then what a transform adds)
    /// and its timestamp.
    fn record_meta(
        &self,
        key_header: Option<KeyHeader<'_>>,
        added: &[(String, Option<String>)],
        timestamp_ms: Option<i64>,
    ) -> RecordMeta {
        let mut headers = match (key_header, &self.context) {
            (None, None) => None,
            (None, Some(context)) => Some(context.headers.clone()),
            (Some((key, text)), context) => {
                let headers = OwnedHeaders::new_with_capacity(5).insert(Header {
                    key,
                    value: Some(text.as_bytes()),
                });
                Some(match context {
                    Some(c) => append_headers(headers, &c.pairs),
                    None => headers,
                })
            }
        };
        for (key, value) in added {
            let h = headers.unwrap_or_else(|| OwnedHeaders::new_with_capacity(added.len()));
            headers = Some(h.insert(Header {
                key: key.as_str(),
                value: value.as_deref().map(str::as_bytes),
            }));
        }
        RecordMeta {
            headers,
            timestamp_ms,
        }
    }

    /// Builds the codec, registers its schemas and creates the topic.
    pub async fn prepare(
        &self,
        schema: TableSchema,
        converter: &debezium_avro::ConverterConfig,
    ) -> Result<Arc<PreparedTable>, SinkError> {
        let mut codec = TableCodec::new(&schema, converter)?;
        // Metrics keep the table's own topic name: routing must not change
        // a dashboard's series.
        let events = crate::metrics::EventCounters::new(&codec.topic);
        codec.topic = route_all(&self.routes, &codec.topic).into_owned();
        let excluded: Vec<&str> = codec.excluded_columns().collect();
        if !excluded.is_empty() {
            // Said once per schema: these values are dropped on purpose.
            tracing::info!(
                table = %schema.qualified_name(),
                columns = ?excluded,
                "column.exclude.list / column.include.list: columns left out of change-event values"
            );
        }
        let key_id = match &codec.key_schema_json {
            Some(json) => Some(
                self.registry
                    .register(&format!("{}-key", codec.topic), json)
                    .await?,
            ),
            None => None,
        };
        let flat = self.unwrap.as_ref().map(|smt| FlatCodec::new(&codec, smt));
        let value_schema = match &flat {
            Some(flat) => &flat.value_schema_json,
            None => &codec.value_schema_json,
        };
        let value_id = self
            .registry
            .register(&format!("{}-value", codec.topic), value_schema)
            .await?;
        self.ensure_topic(&codec.topic).await?;
        Ok(Arc::new(PreparedTable {
            schema,
            codec,
            key_id,
            value_id,
            events,
            flat,
        }))
    }

    /// Registers a side topic's key and value schemas (`<topic>-key`,
    /// `<topic>-value`) and creates the topic (see
    /// [`SideCodec::single_partition`]).
    pub async fn prepare_side_topic<C: SideCodec>(
        &self,
        mut codec: C,
    ) -> Result<PreparedSide<C>, SinkError> {
        let routed = route_all(&self.routes, codec.topic()).into_owned();
        codec.set_topic(routed);
        let topic = codec.topic();
        let key_id = self
            .registry
            .register(&format!("{topic}-key"), codec.key_schema_json())
            .await?;
        let value_id = self
            .registry
            .register(&format!("{topic}-value"), codec.value_schema_json())
            .await?;
        let partitions = match codec.single_partition() {
            true => 1,
            false => self.partitions,
        };
        self.ensure_topic_with(topic, partitions).await?;
        Ok(PreparedSide {
            codec,
            key_id,
            value_id,
        })
    }

    /// Sends one schema-change record (with the context headers).
    pub async fn schema_change(
        &mut self,
        prepared: &PreparedSchemaChanges,
        change: &SchemaChange,
    ) -> Result<(), SinkError> {
        let mut key = Vec::with_capacity(32);
        start_frame(prepared.key_id, &mut key);
        prepared.codec.encode_key(change, &mut key);
        let mut value = Vec::with_capacity(1024);
        start_frame(prepared.value_id, &mut value);
        prepared.codec.encode_value(change, &mut value);
        let meta = self.record_meta(None, &[], None);
        self.send(&prepared.codec.topic, Some(&key), Some(&value), None, meta)
            .await
    }

    /// Sends one heartbeat record carrying `offset`: once it and every
    /// record before it are acknowledged, `offset` is storable, exactly as
    /// for a change record (Debezium's heartbeat carries the connector's
    /// current offset the same way).
    pub async fn heartbeat(
        &mut self,
        prepared: &PreparedHeartbeat,
        offset: &SourceOffset,
    ) -> Result<(), SinkError> {
        let mut key = Vec::with_capacity(16 + prepared.codec.topic.len());
        start_frame(prepared.key_id, &mut key);
        prepared.codec.encode_key(&mut key);
        let mut value = Vec::with_capacity(16);
        start_frame(prepared.value_id, &mut value);
        prepared
            .codec
            .encode_value(crate::clock::now_ms(), &mut value);
        let meta = self.record_meta(None, &[], None);
        self.send(
            &prepared.codec.topic,
            Some(&key),
            Some(&value),
            Some(offset),
            meta,
        )
        .await
    }

    /// Sends a BEGIN or END record of transaction `id` (no position of its
    /// own: the commit's position is queued after the END record, so it is
    /// stored only once END is acknowledged).
    pub async fn transaction(
        &mut self,
        prepared: &PreparedTransactions,
        id: &str,
        event: TransactionEvent<'_>,
    ) -> Result<(), SinkError> {
        let mut key = Vec::with_capacity(8 + id.len());
        start_frame(prepared.key_id, &mut key);
        prepared.codec.encode_key(id, &mut key);
        let mut value = Vec::with_capacity(64);
        start_frame(prepared.value_id, &mut value);
        match event {
            TransactionEvent::Begin { ts_ms } => {
                prepared.codec.encode_begin(id, ts_ms, &mut value);
            }
            TransactionEvent::End {
                event_count,
                collections,
                ts_ms,
            } => prepared
                .codec
                .encode_end(id, event_count, collections, ts_ms, &mut value),
        }
        let meta = self.record_meta(None, &[], None);
        self.send(&prepared.codec.topic, Some(&key), Some(&value), None, meta)
            .await
    }

    async fn ensure_topic(&self, topic: &str) -> Result<(), SinkError> {
        self.ensure_topic_with(topic, self.partitions).await
    }

    async fn ensure_topic_with(&self, topic: &str, partitions: i32) -> Result<(), SinkError> {
        if self.lock_topics().contains(topic) {
            return Ok(());
        }
        pipeline::kafka::ensure_topic(
            &self.kafka,
            &TopicSpec {
                name: topic,
                partitions,
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

    /// Writes the framed key bytes of `row` into `out`; `false` (and `out`
    /// empty) for a table without primary key.
    pub fn key_into(
        table: &PreparedTable,
        row: &[Cell],
        out: &mut Vec<u8>,
    ) -> Result<bool, SinkError> {
        out.clear();
        let Some(id) = table.key_id else {
            return Ok(false);
        };
        start_frame(id, out);
        let encoded = table.codec.encode_key(row, out)?;
        encoded
            .replaced
            .iter()
            .for_each(crate::metrics::value_replaced);
        Ok(true)
    }

    /// Framed key bytes of `row`, or `None` for a table without primary key.
    pub fn key_of(
        &mut self,
        table: &PreparedTable,
        row: &[Cell],
    ) -> Result<Option<Vec<u8>>, SinkError> {
        let has_key = Self::key_into(table, row, &mut self.key_buf)?;
        Ok(has_key.then(|| self.key_buf.clone()))
    }

    /// Sends one change event; `offset` (if any) becomes storable once this
    /// record and all before it are acknowledged. `key_header`: the
    /// primary-key-change header of this record, if it has one.
    #[allow(clippy::too_many_arguments)]
    pub async fn change(
        &mut self,
        table: &PreparedTable,
        key: Option<&[u8]>,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        source: &SourceInfo,
        op: Op,
        offset: Option<&SourceOffset>,
        key_header: Option<KeyHeader<'_>>,
    ) -> Result<(), SinkError> {
        self.change_in(
            table, key, before, after, source, op, None, offset, key_header,
        )
        .await
    }

    /// [`Self::change`] with the envelope's `transaction` block.
    #[allow(clippy::too_many_arguments)]
    pub async fn change_in(
        &mut self,
        table: &PreparedTable,
        key: Option<&[u8]>,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        source: &SourceInfo,
        op: Op,
        transaction: Option<&TransactionBlock<'_>>,
        offset: Option<&SourceOffset>,
        key_header: Option<KeyHeader<'_>>,
    ) -> Result<(), SinkError> {
        let mut value = std::mem::take(&mut self.value_buf);
        start_frame(table.value_id, &mut value);
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default();
        if let Some(flat) = &table.flat {
            let meta = EventMeta {
                source,
                op,
                transaction,
                ts_ns: now_ns,
            };
            let result = self
                .flat_change(
                    table, flat, key, before, after, &meta, offset, key_header, &mut value,
                )
                .await;
            self.value_buf = value;
            return result;
        }
        let encoded = table.codec.encode_envelope_in(
            before,
            after,
            source,
            op,
            transaction,
            now_ns,
            &mut value,
        );
        let result = match encoded {
            Ok(encoded) => {
                encoded
                    .replaced
                    .iter()
                    .for_each(crate::metrics::value_replaced);
                // The record's timestamp is the envelope's `ts_ms` (Debezium's
                // records get the producer's clock at send, a few µs later):
                // librdkafka would read the wall clock once more per record.
                let meta = self.record_meta(key_header, &[], Some(now_ns / 1_000_000));
                self.send(&table.codec.topic, key, Some(&value), offset, meta)
                    .await
            }
            Err(e) => Err(e.into()),
        };
        self.value_buf = value;
        result
    }

    /// [`Self::change_in`] through `ExtractNewRecordState`: the flat row,
    /// a tombstone or nothing (the position still moves on).
    #[allow(clippy::too_many_arguments)]
    async fn flat_change(
        &mut self,
        table: &PreparedTable,
        flat: &FlatCodec,
        key: Option<&[u8]>,
        before: Option<&[Cell]>,
        after: Option<&[Cell]>,
        meta: &EventMeta<'_>,
        offset: Option<&SourceOffset>,
        key_header: Option<KeyHeader<'_>>,
        value: &mut Vec<u8>,
    ) -> Result<(), SinkError> {
        let added = flat.headers(&table.codec, meta);
        if meta.op == Op::Delete && flat.settings().keeps_tombstones() {
            self.delete_headers.clone_from(&added);
        }
        let timestamp = Some(meta.ts_ns / 1_000_000);
        match flat.encode(&table.codec, before, after, meta, value)? {
            Flat::Value(encoded) => {
                encoded
                    .replaced
                    .iter()
                    .for_each(crate::metrics::value_replaced);
                let meta = self.record_meta(key_header, &added, timestamp);
                self.send(&table.codec.topic, key, Some(value), offset, meta)
                    .await
            }
            Flat::Tombstone => {
                let meta = self.record_meta(key_header, &added, timestamp);
                self.send(&table.codec.topic, key, None, offset, meta).await
            }
            Flat::Dropped => self.skip(offset).await,
        }
    }

    /// A record the transform dropped: its position, if it carries one,
    /// moves on behind the records sent before it.
    async fn skip(&mut self, offset: Option<&SourceOffset>) -> Result<(), SinkError> {
        crate::metrics::skipped("transform");
        match offset {
            Some(offset) => self.mark(offset.clone()).await,
            None => Ok(()),
        }
    }

    /// Sends a tombstone (null value) for `key`, with the headers of the
    /// delete before it (Debezium copies them). `ExtractNewRecordState`
    /// drops it unless it keeps tombstones (`rewrite-with-tombstone`).
    pub async fn tombstone(
        &mut self,
        table: &PreparedTable,
        key: &[u8],
        offset: Option<&SourceOffset>,
        key_header: Option<KeyHeader<'_>>,
    ) -> Result<(), SinkError> {
        let added = match &self.unwrap {
            None => Vec::new(),
            Some(smt) if smt.keeps_tombstones() => {
                smt.tombstone_headers(std::mem::take(&mut self.delete_headers))
            }
            Some(_) => return self.skip(offset).await,
        };
        let meta = self.record_meta(key_header, &added, None);
        self.send(&table.codec.topic, Some(key), None, offset, meta)
            .await
    }

    async fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: Option<&SourceOffset>,
        meta: RecordMeta,
    ) -> Result<(), SinkError> {
        if let Some(eos) = &self.eos {
            let eos = Arc::clone(eos);
            return self
                .send_in_transaction(&eos, topic, key, value, offset, meta)
                .await;
        }
        self.produce(topic, key, value, meta).await?;
        self.sent += 1;
        if let Some(offset) = offset {
            self.queue_position(offset);
        }
        Ok(())
    }

    /// [`Self::send`] with `exactly.once.support`: into the open transaction
    /// (begun if none is), committed here when its boundary is due and the
    /// record's position covers everything sent.
    async fn send_in_transaction(
        &mut self,
        eos: &Transactions,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: Option<&SourceOffset>,
        meta: RecordMeta,
    ) -> Result<(), SinkError> {
        let mut state = eos.state.lock().await;
        eos.ensure_open(&mut state)?;
        if let Err(e) = self.produce(topic, key, value, meta).await {
            return Err(eos.failed(&mut state, e).await);
        }
        self.sent += 1;
        state.records += 1;
        state.sent_since_tick = true;
        match offset {
            Some(offset) => {
                self.set_emitted(offset);
                state.reached(offset);
            }
            None => state.covered = false,
        }
        if state.covered && eos.due(&state, false) {
            eos.commit(&mut state).await?;
        }
        Ok(())
    }

    /// Hands one record to librdkafka, waiting while its queue is full.
    async fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        meta: RecordMeta,
    ) -> Result<(), SinkError> {
        if self.shared.stopped() {
            return Err(SinkError::CommitterGone);
        }
        if self.deliveries.is_finished() {
            return Err(SinkError::DeliveriesGone);
        }
        let seq = self.sent;
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, seq as usize);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(headers) = meta.headers {
            record = record.headers(headers);
        }
        if let Some(timestamp_ms) = meta.timestamp_ms {
            record = record.timestamp(timestamp_ms);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Backpressure: librdkafka's queue drains as the broker acks.
                    record = back;
                    if self.shared.stopped() {
                        return Err(SinkError::CommitterGone);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Queues `offset` behind every record sent so far.
    fn queue_position(&mut self, offset: &SourceOffset) {
        self.set_emitted(offset);
        self.shared.lock().queue(self.sent, offset);
    }

    fn set_emitted(&mut self, offset: &SourceOffset) {
        match &mut self.emitted {
            Some(e) => e.clone_from(offset),
            None => self.emitted = Some(offset.clone()),
        }
    }

    /// A position reached without a record (commit of a transaction whose rows
    /// were filtered out, end of snapshot, rotation).
    pub async fn mark(&mut self, offset: SourceOffset) -> Result<(), SinkError> {
        if self.shared.stopped() {
            return Err(SinkError::CommitterGone);
        }
        if let Some(eos) = &self.eos {
            let eos = Arc::clone(eos);
            let mut state = eos.state.lock().await;
            if state.broken {
                return Err(SinkError::CommitterGone);
            }
            state.reached(&offset);
            if eos.due(&state, false) {
                eos.commit(&mut state).await?;
            }
            self.emitted = Some(offset);
            return Ok(());
        }
        self.emitted = Some(offset.clone());
        self.shared.lock().marks.push_back((self.sent, offset));
        Ok(())
    }

    /// The commit of a transaction was read (`commit_us`: its source commit
    /// time in µs since the epoch, when the binlog carries one). Starts the
    /// commit-to-ack clock if the transaction produced records.
    pub fn commit_read(&mut self, commit_us: Option<u64>) {
        if self.sent == self.sent_at_commit {
            return;
        }
        self.sent_at_commit = self.sent;
        let read = Instant::now();
        let mut acks = self.shared.lock();
        if acks.acked >= self.sent && acks.commits.is_empty() {
            drop(acks);
            crate::metrics::transaction_acked(read, commit_us);
        } else {
            acks.commits.push_back((self.sent, read, commit_us));
        }
    }

    /// Cancelled once the committer has stopped, however it stopped.
    pub fn committer_stopped(&self) -> CancellationToken {
        self.shared.gone_signal.clone()
    }

    /// Waits for every queued record, stores the final position and stops.
    pub async fn finish(self, committer: Committer) -> Result<(), SinkError> {
        let Self {
            producer,
            shared,
            closing,
            ..
        } = self;
        // librdkafka fails a record after message.timeout.ms at the latest,
        // so this ends; a failed delivery ends it early (nothing after it
        // would be stored anyway).
        let flushing = tokio::task::spawn_blocking(move || loop {
            let flushed = producer.flush(Duration::from_millis(100)).is_ok();
            if flushed || shared.stopped() {
                break;
            }
        });
        let _ = flushing.await;
        closing.notify_one();
        committer.wait().await
    }
}

/// What a failed task said: its panic message when it panicked.
fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "panicked".to_owned(), |m| format!("panicked: {m}")),
        Err(e) => e.to_string(),
    }
}

/// The task that stores acknowledged positions.
#[derive(Debug)]
pub struct Committer {
    task: tokio::task::JoinHandle<Result<(), SinkError>>,
}

impl Committer {
    /// Returns the committer's result once the sink finished and every
    /// acknowledged position is stored.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(SinkError::CommitterDied(panic_text(e))),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

async fn commit_loop(
    shared: &Shared,
    closing: &tokio::sync::Notify,
    store: Arc<OffsetStore>,
    interval: Duration,
) -> Result<(), SinkError> {
    let mut stored: Option<SourceOffset> = None;
    fault::committer_panic().await;
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = closing.notified() => true,
        };
        let (covered, failed) = {
            let mut acks = shared.lock();
            (acks.take_covered(), acks.failed.clone())
        };
        // Positions covered before the failure are still safe to store.
        if let Some(offset) = covered {
            if stored.as_ref() != Some(&offset) {
                store.save(&offset).await?;
                crate::metrics::position(&offset);
                if last {
                    tracing::info!(%offset, "stored final position");
                } else {
                    tracing::debug!(%offset, "stored position");
                }
                stored = Some(offset);
            }
        }
        if let Some(reason) = failed {
            return Err(SinkError::Delivery(reason));
        }
        if last {
            return Ok(());
        }
    }
}

/// Opaque of a transaction's offset record (records count from 0 upwards).
const OFFSET_RECORD: usize = usize::MAX;
/// `transaction.timeout.ms`: equal to the durable producer's
/// `message.timeout.ms` (librdkafka refuses a larger one there). The longest
/// a transaction may stay open, a snapshot included; an instance that dies
/// with one open has it aborted by its restart's `init_transactions`, so
/// this matters only when nothing restarts it.
const TRANSACTION_TIMEOUT_MS: &str = "300000";
/// Longest wait of one blocking transaction call (init, commit, abort).
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the transaction task looks for a due commit while the sink is
/// quiet; a `poll` batch also ends when a whole tick passed without a record.
const TRANSACTION_TICK: Duration = Duration::from_millis(10);
/// A `poll` batch is committed after this long even if records keep coming
/// (Debezium's `poll.interval.ms` default).
const POLL_BATCH_MAX_AGE: Duration = Duration::from_millis(500);
/// How often a retriable commit failure is retried before aborting.
const COMMIT_RETRIES: u32 = 3;

/// The exactly-once half of a [`Sink`]: the transactional producer's
/// transaction, shared by the sink (which sends and commits when a boundary
/// falls on a record) and the transaction task (which commits while the
/// sink is quiet, and at the end). Both hold `state` while they use the
/// producer, so no record is sent while a commit is in progress.
struct Transactions {
    producer: Arc<KafkaProducer>,
    id: String,
    boundary: TransactionBoundary,
    offsets_topic: String,
    offsets_key: String,
    state: tokio::sync::Mutex<TxnState>,
}

/// The open transaction.
#[derive(Default)]
struct TxnState {
    /// `begin_transaction` was called and the transaction not yet ended.
    open: bool,
    /// When the first record or position of this transaction came.
    started: Option<Instant>,
    /// Records sent in it.
    records: u64,
    /// A record was sent since the transaction task's last tick.
    sent_since_tick: bool,
    /// The newest position reached in it: what its commit stores.
    pending: Option<SourceOffset>,
    /// `pending` covers every record sent so far (none was sent after it):
    /// only then may the transaction be committed.
    covered: bool,
    /// The producer failed (reported once, by whoever met it); nothing more
    /// is sent or committed.
    broken: bool,
}

impl TxnState {
    /// A position reached after every record sent so far.
    fn reached(&mut self, offset: &SourceOffset) {
        match &mut self.pending {
            Some(p) => p.clone_from(offset),
            None => self.pending = Some(offset.clone()),
        }
        self.covered = true;
        self.started.get_or_insert_with(Instant::now);
    }
}

impl Transactions {
    fn fatal(&self, reason: String) -> SinkError {
        SinkError::TransactionFatal {
            id: self.id.clone(),
            reason,
        }
    }

    fn ensure_open(&self, state: &mut TxnState) -> Result<(), SinkError> {
        if state.broken {
            return Err(SinkError::CommitterGone);
        }
        if !state.open {
            self.producer
                .begin_transaction()
                .map_err(|e| self.fatal(format!("begin_transaction: {e}")))?;
            state.open = true;
            state.started.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Whether the boundary falls here (`idle`: a whole tick passed without
    /// a record). The caller checks that the state is covered.
    fn due(&self, state: &TxnState, idle: bool) -> bool {
        let Some(started) = state.started else {
            return false;
        };
        if state.pending.is_none() {
            return false;
        }
        match self.boundary {
            TransactionBoundary::Poll => {
                idle || state.records >= POLL_BATCH_RECORDS
                    || started.elapsed() >= POLL_BATCH_MAX_AGE
            }
            TransactionBoundary::Interval(every) => started.elapsed() >= every,
        }
    }

    /// Writes the pending position to the offsets topic and commits the
    /// transaction (the caller checked `covered`).
    async fn commit(&self, state: &mut TxnState) -> Result<(), SinkError> {
        let Some(offset) = state.pending.take() else {
            return Ok(());
        };
        self.ensure_open(state)?;
        let json = serde_json::to_vec(&offset)
            .map_err(|e| SinkError::Offsets(OffsetError::Corrupt(e.to_string())))?;
        let producer = Arc::clone(&self.producer);
        let topic = self.offsets_topic.clone();
        let key = self.offsets_key.clone();
        let committed = tokio::task::spawn_blocking(move || {
            let mut record: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&topic, OFFSET_RECORD)
                    .key(key.as_bytes())
                    .payload(&json);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue drains as the broker acks (a
                        // blocking thread: waiting here holds nothing async).
                        record = back;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
            let mut tries = 0;
            loop {
                match producer.commit_transaction(TRANSACTION_CALL_TIMEOUT) {
                    Err(KafkaError::Transaction(e))
                        if e.is_retriable() && tries < COMMIT_RETRIES =>
                    {
                        tries += 1;
                        tracing::warn!(error = %e, "commit_transaction: retrying");
                    }
                    other => return other,
                }
            }
        })
        .await;
        let committed = match committed {
            Ok(committed) => committed,
            Err(e) => {
                state.broken = true;
                return Err(SinkError::CommitterDied(panic_text(e)));
            }
        };
        match committed {
            Ok(()) => {
                state.open = false;
                state.started = None;
                state.records = 0;
                crate::metrics::position(&offset);
                tracing::debug!(%offset, "committed transaction with its position");
                Ok(())
            }
            Err(e) => Err(self.failed(state, SinkError::Kafka(e)).await),
        }
    }

    /// Handles a failure of the transactional producer: a fatal one ends the
    /// run as definite; anything else aborts the open transaction and ends it
    /// as transient. Either way the producer is not used again.
    async fn failed(&self, state: &mut TxnState, error: SinkError) -> SinkError {
        state.broken = true;
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return self.fatal(format!("{code}: {reason}"));
        }
        if let SinkError::Kafka(KafkaError::Transaction(e)) = &error {
            if e.is_fatal() {
                return self.fatal(e.to_string());
            }
        }
        if state.open {
            self.abort(state).await;
        }
        match error {
            SinkError::Kafka(e) => SinkError::TransactionAborted(e.to_string()),
            other => other,
        }
    }

    /// Aborts the open transaction (its records and position never become
    /// visible read_committed); logs when even that fails: the broker then
    /// aborts it after `transaction.timeout.ms`, or the restart does.
    async fn abort(&self, state: &mut TxnState) {
        state.open = false;
        state.pending = None;
        let producer = Arc::clone(&self.producer);
        match tokio::task::spawn_blocking(move || {
            producer.abort_transaction(TRANSACTION_CALL_TIMEOUT)
        })
        .await
        {
            Ok(Ok(())) => tracing::warn!("aborted the open Kafka transaction"),
            Ok(Err(e)) => tracing::error!(error = %e, "abort_transaction failed"),
            Err(e) => tracing::error!(error = %panic_text(e), "abort_transaction failed"),
        }
    }
}

/// The committer of an exactly-once sink: commits a covered transaction
/// whose boundary fell while the sink was quiet; at the end, commits the
/// last one if covered and aborts it otherwise.
async fn transaction_loop(
    shared: &Shared,
    closing: &tokio::sync::Notify,
    eos: &Transactions,
) -> Result<(), SinkError> {
    let mut ticker = tokio::time::interval(TRANSACTION_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = closing.notified() => true,
        };
        let failed = shared.lock().failed.clone();
        let mut state = eos.state.lock().await;
        if state.broken {
            // Whoever broke it reported why.
            return Ok(());
        }
        if let Some(reason) = failed {
            let error =
                SinkError::TransactionAborted(format!("a record was not delivered: {reason}"));
            return Err(eos.failed(&mut state, error).await);
        }
        let idle = !std::mem::take(&mut state.sent_since_tick);
        if last {
            if state.covered && state.pending.is_some() {
                eos.commit(&mut state).await?;
                tracing::info!("committed the final transaction");
            } else if state.open {
                // Records after the last position: committing them would
                // make the restart (which resumes at that position) write
                // them again.
                eos.abort(&mut state).await;
            }
            return Ok(());
        }
        if state.covered && eos.due(&state, idle) {
            eos.commit(&mut state).await?;
        }
    }
}

/// Test-only fault hooks (feature `fault-injection`, enabled by this crate's
/// own tests, never in a release build).
mod fault {
    /// Panics the committer `CDC_FAULT_COMMITTER_PANIC` milliseconds after
    /// it starts when that is set, as a bug would.
    #[cfg(feature = "fault-injection")]
    #[allow(clippy::panic)] // the point: a test-only panic
    pub async fn committer_panic() {
        if let Ok(after) = std::env::var("CDC_FAULT_COMMITTER_PANIC") {
            let ms = after.parse().unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            panic!("injected fault: CDC_FAULT_COMMITTER_PANIC");
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    pub async fn committer_panic() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pos: u64) -> SourceOffset {
        SourceOffset {
            file: "bin.000001".into(),
            pos,
            ..SourceOffset::default()
        }
    }

    #[test]
    fn positions_wait_for_every_earlier_record() {
        let mut acks = Acks::default();
        acks.marks.push_back((2, at(10)));
        acks.marks.push_back((3, at(20)));
        acks.marks.push_back((3, at(30)));
        // Record 1 acknowledged before record 0 (another partition).
        acks.delivered(1);
        assert_eq!(acks.take_covered(), None);
        acks.delivered(0);
        assert_eq!(acks.acked, 2);
        assert_eq!(acks.take_covered(), Some(at(10)));
        acks.delivered(2);
        assert_eq!(acks.take_covered(), Some(at(30)));
        assert!(acks.marks.is_empty() && acks.early.is_empty());
    }

    #[test]
    fn row_positions_collapse_within_a_block_only() {
        let mut acks = Acks::default();
        for upto in 1..=3000 {
            acks.queue(upto, &at(upto));
        }
        // One entry per block of records, each the block's newest position.
        let entries: Vec<u64> = acks.marks.iter().map(|(upto, _)| *upto).collect();
        assert_eq!(entries, vec![1023, 2047, 3000]);
        assert!(acks.marks.iter().all(|(upto, o)| o.pos == *upto));
        // Inside a long stream, a position is storable before its end.
        for seq in 0..1500 {
            acks.delivered(seq);
        }
        assert_eq!(acks.take_covered(), Some(at(1023)));
        // A covered entry is never moved later.
        acks.queue(3001, &at(3001));
        for seq in 1500..3001 {
            acks.delivered(seq);
        }
        assert_eq!(acks.take_covered(), Some(at(3001)));
    }

    #[test]
    fn a_gap_freezes_the_covered_prefix() {
        let mut acks = Acks::default();
        acks.marks.push_back((1, at(10)));
        acks.marks.push_back((3, at(20)));
        acks.delivered(0);
        acks.delivered(2); // record 1 never acknowledged (failed)
        assert_eq!(acks.take_covered(), Some(at(10)));
        assert_eq!(acks.take_covered(), None);
        assert_eq!(acks.acked, 1);
    }
}
