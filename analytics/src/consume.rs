//! The consumer loop: Kafka records -> batches -> one Postgres transaction each.
//!
//! Invariants enforced here:
//! - Kafka offsets live in Postgres only (`enable.auto.commit=false`, nothing is
//!   committed to Kafka). On every assignment the consumer reads the stored
//!   offsets and starts each partition exactly there (or at the beginning when
//!   none is stored), from inside the rebalance callback, before any record of
//!   the partition is delivered.
//! - A batch is never applied twice: it is committed with the offsets it covers
//!   (see [`crate::store`]), and a batch whose partitions moved meanwhile is
//!   fenced, discarded, and the partitions are re-read from the stored offsets.
//!   Records below a partition's known position (re-deliveries) are skipped.
//! - Any rebalance first waits for the batches handed to the commit worker,
//!   then discards the batch being collected: with the eager protocol every
//!   partition restarts from its (now final) stored offset.
//! - Outages of Postgres, Kafka or the registry are retried with capped
//!   exponential backoff; the same batch is retried, so it stays exact.
//!   Only transient Postgres errors are: one that a retry cannot fix
//!   (SQLSTATE classes 22, 23, 42..., a column type drift; see
//!   [`store::Recovery`]) is logged as an ERROR naming the batch's
//!   partitions, offset range and SQLSTATE, shown on /healthz, and stops the
//!   loop ([`ConsumeError::Batch`]): the service exits non-zero and a
//!   supervisor restarts it, which retries the batch once per restart,
//!   loudly. Reading the stored offsets (inside a rebalance, where no other
//!   watch runs) shows its retries on /healthz too, and stops the same way
//!   on a definite error. Skipping the batch would lose it; holding only its partitions
//!   while the others go on would need per-partition commit order, which
//!   one commit thread with in-order offsets does not have.
//! - A worker thread that dies (panic) or stops on a definite error stops
//!   the loop at its next turn (each worker sets a flag however it ends,
//!   and a wait for its acknowledgements gives up once it is gone); the
//!   loop joins the workers and returns the panic's message as
//!   [`ConsumeError::WorkerDied`], after putting it on /healthz.
//! - Holding no partition for longer than `--unassigned-sessions` session
//!   timeouts while an input topic exists is reported (WARN, /healthz
//!   unhealthy) until partitions come: a group whose coordinator never
//!   assigns this member anything must not look like an idle pipeline. A
//!   group that assigned this member an empty set (more members than
//!   partitions) is not waiting for anything and is not reported.
//! - A partition starts exactly at its stored offset unless
//!   `--seek-back-records` asks for a margin (see [`fetch_start`]), a
//!   workaround for one local broker, off by default.
//!
//! The loop runs on a dedicated thread with a `BaseConsumer` so that the
//! rebalance callback may block on Postgres (via the runtime handle) without
//! stalling the async runtime. Batches then pass, in order, through a decode
//! thread and a commit thread, so that collecting batch N+2, decoding N+1 and
//! committing N overlap. The hand-offs are rendezvous channels (no batch
//! waits in a queue between two stages), and batches are bounded in records
//! and bytes: what is in flight stays within the memory budget of
//! [`crate::batching`]. Every batch handed on is acknowledged exactly once
//! (by the commit thread, or by the decode thread when it abandons it).
//!
//! The commit thread runs its own single-threaded runtime, which also drives
//! its Postgres connection: a batch is 15-25 statements, each a round trip,
//! and with the connection on the shared runtime's workers every round trip
//! woke two threads (about 1,000 wake-ups/s and most of analytics' CPU at
//! the demo's rate). On one thread, a response is read where it is awaited.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::backoff::Backoff;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::ClientContext;
use tokio::runtime::Handle;

use crate::batching::{self, Collecting, FetchBudget, Limits, Records};
use crate::config::{Assignment, Config};
use crate::decode::{decode_pageview, DecodeError, Record, Registry, Stream, Table};
use crate::dlq::{DeadLetter, DeadLetters, DlqError};
use crate::store::{self, Batch, Commit, PartitionProgress, Store, StoreError};

type Tp = (String, i32);

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// Definite: the Kafka client could not be configured.
    #[error("cannot create the Kafka consumer: {0}")]
    Client(KafkaError),
    /// Definite: a subscription was refused (bad topic names).
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    /// Definite: the OS refused a thread.
    #[error("cannot start the commit worker thread: {0}")]
    Worker(String),
    /// Definite: a worker thread panicked (a bug); the supervisor restarts
    /// the service, which resumes from the stored offsets.
    #[error("the {worker} worker thread died: {cause}")]
    WorkerDied { worker: &'static str, cause: String },
    /// Definite: Postgres refused a batch in a way a retry cannot fix (see
    /// [`store::Recovery`]); the batch (its topic, partitions and offsets)
    /// is named so the offending records can be found.
    #[error("batch {batch} failed definitely (SQLSTATE {sqlstate}): {source}")]
    Batch {
        batch: String,
        sqlstate: String,
        source: StoreError,
    },
    /// Definite: the stored offsets cannot be read (schema drift).
    #[error("cannot read the stored offsets (SQLSTATE {sqlstate}): {source}")]
    Offsets {
        sqlstate: String,
        source: StoreError,
    },
}

/// The first definite failure of a worker (or the rebalance callback), which
/// stops the consumer loop; shared by every thread of the loop.
#[derive(Debug, Clone, Default)]
struct Failure(Arc<Mutex<Option<ConsumeError>>>);

impl Failure {
    fn set(&self, error: ConsumeError) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn take(&self) -> Option<ConsumeError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Set when a worker thread ends, however it ends (its drop runs while a
/// panic unwinds too): the loop stops instead of feeding a dead pipeline,
/// and [`SeekContext::settle`] stops waiting for acknowledgements that will
/// never come.
#[derive(Debug)]
struct Gone(Arc<AtomicBool>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `topic[partition] offsets first..=last` for each partition of a batch.
fn describe_batch(offsets: &BTreeMap<Tp, PartitionProgress>) -> String {
    let parts: Vec<String> = offsets
        .iter()
        .map(|((topic, partition), p)| {
            let first = p.committed.unwrap_or(0);
            format!("{topic}[{partition}] offsets {first}..={}", p.next - 1)
        })
        .collect();
    parts.join(", ")
}

/// A panic payload as text (`panic!` with a message gives a `&str` or a
/// `String`).
fn panic_cause(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Why a batch commit attempt failed; every variant is retried.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dlq(#[from] DlqError),
}

/// Shared between the loop and the rebalance callback (same thread).
#[derive(Debug)]
pub struct SeekContext {
    runtime: Handle,
    postgres_url: String,
    group: String,
    shutdown: Arc<AtomicBool>,
    /// Assigned partitions -> the next offset stored in Postgres (None: none).
    positions: Mutex<HashMap<Tp, Option<i64>>>,
    rebalanced: AtomicBool,
    /// The group's last assignment gave this member no partition at all.
    assigned_nothing: AtomicBool,
    /// Records re-read before a stored offset (`--seek-back-records`).
    seek_back: i64,
    /// Batches handed to the commit worker and not acknowledged yet.
    in_flight: Mutex<InFlight>,
    /// A worker thread ended: nothing more will be acknowledged.
    worker_gone: Arc<AtomicBool>,
    failure: Failure,
    /// Retrying the stored offsets blocks the loop (inside a rebalance, no
    /// other watch runs), so the retry itself shows on /healthz.
    health: pipeline::telemetry::Health,
}

#[derive(Debug)]
struct InFlight {
    count: usize,
    acks: mpsc::Receiver<Outcome>,
}

/// What became of a batch handed to the commit worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Fenced,
    /// Shutdown while the batch kept failing: it will be re-read on restart.
    Abandoned,
}

/// A batch for the decode worker.
struct Job {
    messages: Records,
    offsets: BTreeMap<Tp, PartitionProgress>,
}

impl SeekContext {
    /// Outcomes that arrived, without waiting.
    fn ready_outcomes(&self) -> Vec<Outcome> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        while in_flight.count > 0 {
            match in_flight.acks.try_recv() {
                Ok(outcome) => {
                    in_flight.count -= 1;
                    out.push(outcome);
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Waits until every batch handed to the worker committed or failed, so
    /// stored offsets are final before they are read.
    fn settle(&self) -> Vec<Outcome> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        while in_flight.count > 0 {
            match in_flight.acks.recv_timeout(SETTLE_CHECK) {
                Ok(outcome) => out.push(outcome),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !self.worker_gone.load(Ordering::SeqCst) {
                        continue;
                    }
                    // A worker died: the batches it held never commit.
                    out.push(Outcome::Abandoned);
                }
                // Every worker is gone: nothing more will commit.
                Err(mpsc::RecvTimeoutError::Disconnected) => out.push(Outcome::Abandoned),
            }
            in_flight.count -= 1;
        }
        out
    }

    /// No batch is being decoded or committed (outcomes not yet collected by
    /// [`Self::ready_outcomes`] count as in flight).
    fn idle(&self) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count
            == 0
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, HashMap<Tp, Option<i64>>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stored offsets, retried until Postgres answers (or shutdown).
    fn stored_offsets(&self, partitions: &[Tp]) -> Option<HashMap<Tp, i64>> {
        let mut backoff = Backoff::default();
        let mut shown: Option<String> = None;
        loop {
            let attempt = self.runtime.block_on(async {
                let client = store::connect(&self.postgres_url).await?;
                store::read_offsets(&client, &self.group, partitions).await
            });
            match attempt {
                Ok(offsets) => {
                    if let Some(reason) = shown {
                        // Only clear what this retry said.
                        if self.health.problem().as_deref() == Some(reason.as_str()) {
                            self.health.healthy();
                        }
                    }
                    return Some(offsets);
                }
                Err(error) => {
                    if self.shutdown.load(Ordering::Relaxed) || self.failure.is_set() {
                        return None;
                    }
                    if error.recovery() == store::Recovery::Definite {
                        let sqlstate = error.sqlstate().unwrap_or("none").to_owned();
                        tracing::error!(%error, %sqlstate, "cannot read the stored offsets, and retrying cannot help; stopping");
                        self.failure.set(ConsumeError::Offsets {
                            sqlstate,
                            source: error,
                        });
                        return None;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, ?delay, "cannot read stored offsets; retrying");
                    let reason = format!("cannot read the stored offsets (retrying): {error}");
                    self.health.unhealthy(reason.clone());
                    shown = Some(reason);
                    std::thread::sleep(delay);
                }
            }
        }
    }

    /// Sets each partition of `tpl` to its stored offset and records positions.
    fn position_from_store(&self, tpl: &mut TopicPartitionList) -> bool {
        let partitions: Vec<Tp> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let Some(stored) = self.stored_offsets(&partitions) else {
            return false;
        };
        let mut positions = self.positions();
        positions.clear();
        for tp in partitions {
            let offset = stored.get(&tp).copied();
            let start = fetch_start(offset, self.seek_back);
            if let Err(error) = tpl.set_partition_offset(&tp.0, tp.1, start) {
                tracing::error!(%error, topic = %tp.0, partition = tp.1, "cannot set start offset");
            }
            tracing::info!(topic = %tp.0, partition = tp.1, ?offset, "assigned; starting at the stored offset");
            positions.insert(tp, offset);
        }
        true
    }
}

impl ClientContext for SeekContext {}

impl ConsumerContext for SeekContext {
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.rebalanced.store(true, Ordering::SeqCst);
        // Batches of the old assignment finish first: the offsets read below
        // (or by the next owner) must include them.
        self.settle();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assigned_nothing
                    .store(tpl.count() == 0, Ordering::SeqCst);
                if self.position_from_store(tpl) {
                    if let Err(error) = base_consumer.assign(tpl) {
                        tracing::error!(%error, "assign failed");
                    }
                }
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(code = ?other, "rebalance error; dropping the assignment");
                }
                self.positions().clear();
                self.assigned_nothing.store(false, Ordering::SeqCst);
                if let Err(error) = base_consumer.unassign() {
                    tracing::error!(%error, "unassign failed");
                }
            }
        }
    }
}

/// Decodes, dead-letters and commits batches: a [`Decoder`] and a
/// [`Committer`], which run on two threads so that decoding the next batch
/// overlaps the Postgres transaction of the previous one.
#[derive(Debug)]
pub struct Processor {
    decoder: Decoder,
    committer: Committer,
}

/// Turns records into a [`Batch`] (plus dead letters for rejected records).
#[derive(Debug)]
struct Decoder {
    streams: HashMap<String, Stream>,
    registry: Registry,
}

/// Sends a decoded batch's dead letters, then commits it with its offsets.
#[derive(Debug)]
struct Committer {
    dead_letters: DeadLetters,
    store: Store,
}

/// A batch for the commit worker: decoded, with the offsets it covers.
struct Decoded {
    batch: Batch,
    letters: Vec<DeadLetter>,
    records: usize,
    decode: Duration,
}

impl Processor {
    pub fn new(config: &Config, dead_letters: DeadLetters, registry: Registry) -> Self {
        let streams = HashMap::from([
            (config.users_topic.clone(), Stream::Cdc(Table::Users)),
            (config.items_topic.clone(), Stream::Cdc(Table::Items)),
            (
                config.purchases_topic.clone(),
                Stream::Cdc(Table::Purchases),
            ),
            (config.pageviews_topic.clone(), Stream::Pageviews),
        ]);
        Self {
            decoder: Decoder { streams, registry },
            committer: Committer {
                dead_letters,
                store: Store::new(
                    config.postgres_url.expose(),
                    &config.group_id,
                    config.low_stock_threshold,
                ),
            },
        }
    }

    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.decoder.streams.keys().cloned().collect();
        t.sort();
        t
    }
}

impl Decoder {
    /// Decodes every record; rejected ones become dead letters. Errors are
    /// transient (registry outages): the same records are decoded again.
    async fn decode(
        &self,
        messages: &Records,
        offsets: BTreeMap<Tp, PartitionProgress>,
    ) -> Result<Decoded, DecodeError> {
        let started = Instant::now();
        let mut batch = Batch {
            offsets,
            ..Batch::default()
        };
        // Sized up front: growing by doubling would copy and leave up to
        // half of each vector unused (a decoded batch is in the budget).
        for (topic, stream) in &self.streams {
            let n = messages.count_of(topic);
            match stream {
                Stream::Cdc(Table::Users) => batch.users.reserve_exact(n),
                Stream::Cdc(Table::Items) => batch.items.reserve_exact(n),
                Stream::Cdc(Table::Purchases) => batch.purchases.reserve_exact(n),
                Stream::Pageviews => batch.pageviews.reserve_exact(n),
            }
        }
        let mut letters = Vec::new();
        for m in messages.iter() {
            let Some(stream) = self.streams.get(m.topic).copied() else {
                continue;
            };
            let decoded = match stream {
                Stream::Cdc(table) => self.registry.decode_cdc(table, m.key, m.payload).await,
                Stream::Pageviews => decode_pageview(m.payload).map_err(DecodeError::from),
            };
            let record = match decoded {
                Ok(record) => record,
                Err(DecodeError::Rejected(reason)) => {
                    tracing::warn!(topic = m.topic, partition = m.partition, offset = m.offset,
                        %reason, "record rejected; sending it to the dead-letter topic");
                    letters.push(DeadLetter {
                        topic: m.topic.to_owned(),
                        partition: m.partition,
                        offset: m.offset,
                        key: m.key.map(<[u8]>::to_vec),
                        payload: m.payload.map(<[u8]>::to_vec),
                        reason,
                    });
                    continue;
                }
                Err(transient) => return Err(transient),
            };
            let time = record.event_time();
            match record {
                Record::User(change, _) => batch.users.push(change),
                Record::Item(change, _) => batch.items.push(change),
                Record::Purchase(change, _) => batch.purchases.push(change),
                Record::Pageview(pv) => batch.pageviews.push(pv),
            }
            if stream == Stream::Pageviews {
                batch.pageview_records += 1;
                batch.newest_pageview = batch.newest_pageview.max(time);
            } else {
                batch.cdc_records += 1;
                batch.newest_cdc = batch.newest_cdc.max(time);
            }
        }
        Ok(Decoded {
            batch,
            letters,
            records: messages.len(),
            decode: started.elapsed(),
        })
    }
}

impl Committer {
    /// Dead letters first (so nothing rejected is lost once the offsets move
    /// past it), then the batch and its offsets in one transaction.
    async fn commit(&mut self, decoded: &Decoded) -> Result<Commit, BatchError> {
        let started = Instant::now();
        if !decoded.letters.is_empty() {
            self.dead_letters.send_all(&decoded.letters).await?;
        }
        let outcome = self.store.commit(&decoded.batch).await?;
        tracing::debug!(
            records = decoded.records,
            dead_letters = decoded.letters.len(),
            decode_ms = decoded.decode.as_millis() as u64,
            commit_ms = started.elapsed().as_millis() as u64,
            ?outcome,
            "batch"
        );
        if outcome == Commit::Committed {
            record_metrics(&decoded.batch, &decoded.letters, started.elapsed());
        }
        Ok(outcome)
    }
}

fn record_metrics(batch: &Batch, letters: &[DeadLetter], took: Duration) {
    metrics::counter!("analytics_batches_total").increment(1);
    metrics::histogram!("analytics_batch_commit_seconds").record(took.as_secs_f64());
    metrics::counter!("analytics_records_total", "stream" => "cdc")
        .increment(batch.cdc_records as u64);
    metrics::counter!("analytics_records_total", "stream" => "pageviews")
        .increment(batch.pageview_records as u64);
    for letter in letters {
        metrics::counter!("analytics_dead_letters_total", "topic" => letter.topic.clone(), "kind" => letter.reason.kind)
            .increment(1);
    }
    let now = chrono::Utc::now();
    for (stream, newest) in [
        ("cdc", batch.newest_cdc),
        ("pageviews", batch.newest_pageview),
    ] {
        if let Some(newest) = newest {
            let age = (now - newest).num_milliseconds() as f64 / 1000.0;
            metrics::gauge!("analytics_freshness_seconds", "stream" => stream).set(age);
        }
    }
}

/// The consumer loop. Returns when `shutdown` is set (after the batches in
/// flight commit) or on a definite error.
///
/// Collecting the next batch overlaps with committing the previous one: a
/// worker thread commits batches in order while this thread polls. Each batch
/// expects the offsets its predecessor stores; a fenced batch makes every
/// partition restart from what is stored, after the worker is idle.
pub fn run_loop(
    config: &Config,
    processor: Processor,
    runtime: Handle,
    shutdown: Arc<AtomicBool>,
    health: pipeline::telemetry::Health,
) -> Result<(), ConsumeError> {
    let topics = processor.topics();
    let Processor { decoder, committer } = processor;
    // Rendezvous hand-offs: a stage takes the next batch only when it is
    // free, so at most one batch per stage is in flight (the memory budget
    // counts on it); the bottleneck stage still finds its next batch ready.
    let (jobs, job_queue) = mpsc::sync_channel::<Job>(0);
    let (to_commit, commit_queue) = mpsc::sync_channel::<Decoded>(0);
    let (ack, acks) = mpsc::channel::<Outcome>();
    let worker_gone = Arc::new(AtomicBool::new(false));
    let failure = Failure::default();
    let decode_worker = {
        let (runtime, shutdown, health, ack) = (
            runtime.clone(),
            shutdown.clone(),
            health.clone(),
            ack.clone(),
        );
        let gone = Gone(worker_gone.clone());
        std::thread::Builder::new()
            .name("analytics-decode".into())
            .spawn(move || {
                let _gone = gone;
                decode_worker(
                    &decoder, &runtime, &shutdown, &health, &job_queue, &to_commit, &ack,
                );
            })
            .map_err(|e| ConsumeError::Worker(e.to_string()))?
    };
    let mut unassigned = Unassigned::new(config.unassigned_limit(), health.clone());
    let commit_worker = {
        let (shutdown, health, failure) = (shutdown.clone(), health.clone(), failure.clone());
        let gone = Gone(worker_gone.clone());
        // Its own runtime (see the module doc); only `Runtime::block_on`
        // drives a current-thread runtime's I/O, so the thread owns it.
        let local = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConsumeError::Worker(e.to_string()))?;
        std::thread::Builder::new()
            .name("analytics-commit".into())
            .spawn(move || {
                let _gone = gone;
                commit_worker(
                    committer,
                    &local,
                    &shutdown,
                    &health,
                    &failure,
                    &commit_queue,
                    &ack,
                );
            })
            .map_err(|e| ConsumeError::Worker(e.to_string()))?
    };
    let context = SeekContext {
        runtime,
        postgres_url: config.postgres_url.expose().to_owned(),
        group: config.group_id.clone(),
        shutdown: shutdown.clone(),
        positions: Mutex::default(),
        rebalanced: AtomicBool::new(false),
        assigned_nothing: AtomicBool::new(false),
        seek_back: i64::from(config.seek_back_records),
        in_flight: Mutex::new(InFlight { count: 0, acks }),
        worker_gone: worker_gone.clone(),
        failure: failure.clone(),
        health: health.clone(),
    };
    let refresh = Duration::from_millis(config.topic_refresh_ms);
    let limits = Limits::from(config);
    let mut client_config = config.kafka.client_config();
    // The prefetch queue and fetch sizes follow --batch-max-bytes (the
    // budget's arithmetic is in `crate::batching`). A backlog still drains
    // in fetches of 1 MiB or more, each holding thousands of records.
    for (key, value) in FetchBudget::for_batch_bytes(config.batch_max_bytes).properties() {
        client_config.set(key, value);
    }
    let consumer: BaseConsumer<SeekContext> = client_config
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 4).max(500).to_string(),
        )
        .set(
            "topic.metadata.refresh.interval.ms",
            config.topic_refresh_ms.to_string(),
        )
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
        // While the loop waits for the workers, the prefetch queue fills and
        // librdkafka postpones the partition's next fetch by this much
        // (default 1 s): a drain stalled ~0.5-0.7 s every few batches. A short
        // backoff resumes fetching as soon as the loop takes records again.
        .set("fetch.queue.backoff.ms", "10")
        .create_with_context(context)
        .map_err(ConsumeError::Client)?;
    if config.assignment == Assignment::Group {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|source| ConsumeError::Subscribe {
                topics: topics.clone(),
                source,
            })?;
    }
    let context = consumer.context().clone();
    let mut pending = Collecting::new(Instant::now());
    let mut batch_next: BTreeMap<Tp, i64> = BTreeMap::new();
    let mut next_refresh = Instant::now();
    let mut quiet_errors: HashMap<String, Instant> = HashMap::new();
    while !shutdown.load(Ordering::Relaxed) {
        // A dead worker or a definite failure stops the loop: feeding a
        // pipeline that no longer commits would only look alive.
        if worker_gone.load(Ordering::SeqCst) || failure.is_set() {
            break;
        }
        let held = context.positions().len();
        if let Some(since) = unassigned.observe(held, held == 0, Instant::now()) {
            let existing = existing_topics(&consumer, &topics);
            // An empty assignment is idle by design only when the group has
            // more members than partitions. A coordinator that stalled after
            // members died also hands out empty assignments (seen: tansu
            // 0.6.0 gave a lone survivor nothing, for good), so it is counted
            // as waiting unless the group's size explains it.
            let by_design = context.assigned_nothing.load(Ordering::SeqCst)
                && more_members_than_partitions(&consumer, &config.group_id, &existing);
            if !by_design {
                unassigned.report(since, &existing, config, Instant::now());
            }
        }
        if context.ready_outcomes().contains(&Outcome::Fenced) {
            context.settle();
            pending.discard();
            batch_next.clear();
            let assigned: Vec<Tp> = context.positions().keys().cloned().collect();
            reseek(&consumer, assigned);
        }
        if config.assignment == Assignment::All
            && pending.is_empty()
            && Instant::now() >= next_refresh
        {
            assign_all(&consumer, &topics);
            next_refresh = Instant::now() + refresh;
        }
        // Natural batching: while a batch is being decoded or committed the
        // next one accumulates (up to the linger); when nothing is in flight
        // what has been fetched goes at once. Latency is then about one
        // commit at any rate, and batches grow by themselves with the load.
        // Polling in short steps notices the workers going idle.
        let timeout = if pending.is_empty() {
            Duration::from_millis(200)
        } else if context.idle() {
            Duration::ZERO
        } else {
            pending.linger_left(&limits, Instant::now()).min(IDLE_CHECK)
        };
        let polled = consumer.poll(timeout);
        let now = Instant::now();
        if context.rebalanced.swap(false, Ordering::SeqCst) {
            pending.discard();
            batch_next.clear();
        }
        // `None`: the records already fetched are all taken.
        let drained = polled.is_none();
        match polled {
            None => {}
            Some(Err(error)) => log_consumer_error(&error, &mut quiet_errors),
            Some(Ok(message)) => {
                let tp = (message.topic().to_owned(), message.partition());
                let floor = match batch_next.get(&tp) {
                    Some(next) => Some(*next),
                    None => match context.positions().get(&tp) {
                        Some(stored) => stored.or(Some(0)),
                        // Not (or no longer) assigned: ignore.
                        None => None,
                    },
                };
                if floor.is_some_and(|floor| message.offset() >= floor) {
                    // Copied into the batch's buffer: librdkafka's copy
                    // (and its fetch op) goes with `message`.
                    pending.push(
                        batching::Record {
                            topic: message.topic(),
                            partition: message.partition(),
                            offset: message.offset(),
                            key: message.key(),
                            payload: message.payload(),
                        },
                        now,
                    );
                    batch_next.insert(tp, message.offset() + 1);
                }
            }
        }
        if !pending.is_empty() && pending.due(&limits, drained && context.idle(), now) {
            let Some(offsets) = expect_and_advance(&context, &batch_next) else {
                // A partition left the assignment under this batch (cannot
                // happen without a rebalance, which clears the batch): never
                // apply records whose offsets would not be stored with them.
                tracing::warn!("partition lost while collecting; discarding the batch");
                pending.discard();
                batch_next.clear();
                continue;
            };
            context
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .count += 1;
            let job = Job {
                messages: pending.take(),
                offsets,
            };
            batch_next.clear();
            if jobs.send(job).is_err() {
                tracing::error!("the decode worker stopped; stopping the consumer");
                break;
            }
        }
    }
    drop(jobs);
    context.settle();
    // A panicked worker first (the cause of everything after it), then a
    // definite failure a worker reported.
    let mut died = None;
    for (worker, handle) in [("decode", decode_worker), ("commit", commit_worker)] {
        if let Err(payload) = handle.join() {
            let cause = panic_cause(payload.as_ref());
            tracing::error!(worker, %cause, "a consumer worker thread panicked; stopping");
            died.get_or_insert(ConsumeError::WorkerDied { worker, cause });
        }
    }
    let stopped = died.or_else(|| failure.take()).or_else(|| {
        // A worker that ended without panicking or reporting, while no
        // shutdown asked it to, is a bug too.
        (!shutdown.load(Ordering::SeqCst)).then(|| ConsumeError::WorkerDied {
            worker: "decode or commit",
            cause: "ended without a reported cause".to_owned(),
        })
    });
    match stopped {
        Some(error) => {
            health.unhealthy(format!("consumer stopped: {error}"));
            tracing::error!(%error, "consumer stopped on a definite error");
            Err(error)
        }
        None => {
            tracing::info!("consumer stopped");
            Ok(())
        }
    }
}

/// The batch's offsets: each partition starts where the previous batch (or
/// the store) left it; the position then moves on optimistically to the
/// batch's end, which the next batch will expect to be stored. `None` (and
/// nothing advanced) when a partition of the batch is no longer assigned.
fn expect_and_advance(
    context: &SeekContext,
    batch_next: &BTreeMap<Tp, i64>,
) -> Option<BTreeMap<Tp, PartitionProgress>> {
    let mut positions = context.positions();
    if !batch_next.keys().all(|tp| positions.contains_key(tp)) {
        return None;
    }
    Some(
        batch_next
            .iter()
            .filter_map(|(tp, next)| {
                let slot = positions.get_mut(tp)?;
                let progress = PartitionProgress {
                    committed: *slot,
                    next: *next,
                };
                *slot = Some(*next);
                Some((tp.clone(), progress))
            })
            .collect(),
    )
}

/// Decodes batches in order, retrying each until it decodes or shutdown
/// abandons it, and hands them to the commit worker.
fn decode_worker(
    decoder: &Decoder,
    runtime: &Handle,
    shutdown: &AtomicBool,
    health: &pipeline::telemetry::Health,
    jobs: &mpsc::Receiver<Job>,
    decoded: &mpsc::SyncSender<Decoded>,
    acks: &mpsc::Sender<Outcome>,
) {
    while let Ok(job) = jobs.recv() {
        let mut backoff = Backoff::default();
        let outcome = loop {
            match runtime.block_on(decoder.decode(&job.messages, job.offsets.clone())) {
                Ok(batch) => break Some(batch),
                Err(error) => {
                    metrics::counter!("analytics_batch_retries_total").increment(1);
                    health.unhealthy(format!("batch failing: {error}"));
                    if shutdown.load(Ordering::Relaxed) {
                        tracing::warn!(%error, "batch failed during shutdown; it will be re-read on restart");
                        break None;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, ?delay, records = job.messages.len(), "batch failed to decode; retrying it");
                    std::thread::sleep(delay);
                }
            }
        };
        // The records are decoded (or abandoned): their memory goes before
        // the wait for the commit worker.
        drop(job);
        // Every job is acknowledged exactly once: by the commit worker, or
        // here when it never reaches it.
        let handed = match outcome {
            Some(batch) => decoded.send(batch).is_ok(),
            None => false,
        };
        if !handed && acks.send(Outcome::Abandoned).is_err() {
            return;
        }
    }
}

/// Commits batches in order, retrying each until it commits, is fenced, or
/// shutdown abandons it.
fn commit_worker(
    mut committer: Committer,
    runtime: &tokio::runtime::Runtime,
    shutdown: &AtomicBool,
    health: &pipeline::telemetry::Health,
    failure: &Failure,
    jobs: &mpsc::Receiver<Decoded>,
    acks: &mpsc::Sender<Outcome>,
) {
    // Every batch is checked by the offset fence in its own transaction, so a
    // batch queued behind a fenced one cannot apply out of order either.
    while let Ok(job) = jobs.recv() {
        fault::commit_worker_panic();
        let outcome = match commit_with_retry(&mut committer, runtime, shutdown, health, &job) {
            Ok(outcome) => outcome,
            Err(error) => {
                // Nothing after this batch may commit (offsets move in
                // order): stop; the loop sees the failure and exits.
                failure.set(error);
                let _ = acks.send(Outcome::Abandoned);
                return;
            }
        };
        if acks.send(outcome).is_err() {
            return;
        }
    }
}

fn commit_with_retry(
    committer: &mut Committer,
    runtime: &tokio::runtime::Runtime,
    shutdown: &AtomicBool,
    health: &pipeline::telemetry::Health,
    job: &Decoded,
) -> Result<Outcome, ConsumeError> {
    let mut backoff = Backoff::default();
    loop {
        match runtime.block_on(committer.commit(job)) {
            Ok(Commit::Committed) => {
                health.healthy();
                return Ok(Outcome::Committed);
            }
            Ok(Commit::Fenced) => {
                metrics::counter!("analytics_fenced_batches_total").increment(1);
                return Ok(Outcome::Fenced);
            }
            Err(BatchError::Store(error)) if error.recovery() == store::Recovery::Definite => {
                metrics::counter!("analytics_batch_failures_total").increment(1);
                let batch = describe_batch(&job.batch.offsets);
                let sqlstate = error.sqlstate().unwrap_or("none").to_owned();
                tracing::error!(%batch, %sqlstate, %error, records = job.records,
                    "batch failed and retrying cannot help; stopping (fix the database or the data, then restart)");
                health.unhealthy(format!(
                    "batch {batch} failed definitely (SQLSTATE {sqlstate}): {error}"
                ));
                return Err(ConsumeError::Batch {
                    batch,
                    sqlstate,
                    source: error,
                });
            }
            Err(error) => {
                metrics::counter!("analytics_batch_retries_total").increment(1);
                health.unhealthy(format!("batch failing: {error}"));
                if shutdown.load(Ordering::Relaxed) {
                    tracing::warn!(%error, "batch failed during shutdown; it will be re-read on restart");
                    return Ok(Outcome::Abandoned);
                }
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, records = job.records, "batch failed; retrying it");
                std::thread::sleep(delay);
            }
        }
    }
}

/// How often a loop holding records checks whether the workers went idle.
const IDLE_CHECK: Duration = Duration::from_millis(2);

/// How often a wait for acknowledgements checks whether a worker died.
const SETTLE_CHECK: Duration = Duration::from_millis(100);

/// Faults the integration tests inject into the real binary, compiled only
/// with the `fault-injection` feature (which the crate's own dev-dependency
/// enables for its tests): a production build has no such hook.
mod fault {
    /// Panics the commit worker before its first batch when
    /// `ANALYTICS_FAULT_COMMIT_PANIC` is set, as a bug would.
    #[cfg(feature = "fault-injection")]
    #[allow(clippy::panic)] // the point: a test-only panic
    pub fn commit_worker_panic() {
        if std::env::var_os("ANALYTICS_FAULT_COMMIT_PANIC").is_some() {
            panic!("injected fault: ANALYTICS_FAULT_COMMIT_PANIC");
        }
    }

    #[cfg(not(feature = "fault-injection"))]
    pub fn commit_worker_panic() {}
}

/// Where to start fetching a partition whose next offset to apply is `stored`,
/// `seek_back` records early.
///
/// A broker must answer a fetch from the middle of a record batch with that
/// batch, and the client drops the records before the offset: Kafka and
/// Redpanda do, so by default (`seek_back` 0) a partition starts exactly at
/// its stored offset. The local stack's broker (tansu 0.6 with memory storage)
/// answers with the NEXT batch instead, silently skipping the rest of the
/// batch holding the stored offset (seen: a resume at 885 got 890 first,
/// losing five purchases; a fetch from 150 inside batch 100..199 starts at
/// 200). Starting up to a batch earlier puts the stored offset behind a batch
/// boundary, where fetches are exact; the records before it are dropped by the
/// consumer loop's floor (records below a partition's known position are
/// skipped). The local stack asks for 10,000, our producers' largest batch.
fn fetch_start(stored: Option<i64>, seek_back: i64) -> Offset {
    match stored {
        Some(next) if next > seek_back => Offset::Offset(next - seek_back),
        _ => Offset::Beginning,
    }
}

/// Watches for an instance that holds no partition although it should: the
/// group never assigns it any (a stalled coordinator), or its partitions were
/// revoked and never came back.
#[derive(Debug)]
struct Unassigned {
    limit: Duration,
    health: pipeline::telemetry::Health,
    /// Since when nothing is held (None: something is held).
    since: Option<Instant>,
    next_check: Instant,
    /// The reason currently shown on /healthz, when this watch set it.
    reported: Option<String>,
    last_warn: Option<Instant>,
    held: usize,
}

/// How often a waiting instance looks for its topics and repeats its WARN.
const UNASSIGNED_CHECK: Duration = Duration::from_secs(5);
const UNASSIGNED_WARN_EVERY: Duration = Duration::from_secs(60);

impl Unassigned {
    fn new(limit: Duration, health: pipeline::telemetry::Health) -> Self {
        let now = Instant::now();
        Self {
            limit,
            health,
            since: None,
            next_check: now,
            reported: None,
            last_warn: None,
            held: usize::MAX,
        }
    }

    /// Called every loop turn with the partitions held and whether this
    /// instance waits for partitions. `Some(since)` when it waited past the
    /// limit and is due for a look at its topics ([`Self::report`]).
    fn observe(&mut self, held: usize, waiting: bool, now: Instant) -> Option<Instant> {
        if held != self.held {
            self.held = held;
            metrics::gauge!("analytics_assigned_partitions").set(held as f64);
        }
        if !waiting {
            self.since = None;
            if let Some(reason) = self.reported.take() {
                tracing::info!(
                    partitions = held,
                    "partitions assigned again; no longer waiting"
                );
                // Only clear what this watch said: a failing batch's reason stays.
                if self.health.problem().as_deref() == Some(reason.as_str()) {
                    self.health.healthy();
                }
            }
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) < self.limit || now < self.next_check {
            return None;
        }
        self.next_check = now + UNASSIGNED_CHECK;
        Some(since)
    }

    /// Reports the wait when some input topic exists (before that, holding
    /// nothing is expected: cdc or loadgen have not created the topics yet).
    fn report(&mut self, since: Instant, existing: &[String], config: &Config, now: Instant) {
        if existing.is_empty() {
            return;
        }
        let waited = now.duration_since(since).as_secs();
        let reason = match config.assignment {
            Assignment::Group => format!(
                "no partition assigned for {waited}s (limit {}s, {} session timeouts) although topics {} exist: \
                 waiting for consumer group {:?}'s coordinator to assign partitions (a broker whose coordinator \
                 stalled after a member died never does; restart the broker, or run with --assignment all)",
                self.limit.as_secs(),
                config.unassigned_sessions,
                existing.join(", "),
                config.group_id,
            ),
            Assignment::All => format!(
                "no partition assigned for {waited}s (limit {}s) although topics {} exist: \
                 waiting for their partitions' metadata",
                self.limit.as_secs(),
                existing.join(", "),
            ),
        };
        if self
            .last_warn
            .is_none_or(|at| now.duration_since(at) >= UNASSIGNED_WARN_EVERY)
        {
            tracing::warn!(waited_s = waited, group = %config.group_id, topics = ?existing, "{reason}");
            self.last_warn = Some(now);
        }
        self.health.unhealthy(reason.clone());
        self.reported = Some(reason);
    }
}

/// The input topics the broker knows (with partitions), in `topics` order.
fn existing_topics(consumer: &BaseConsumer<SeekContext>, topics: &[String]) -> Vec<String> {
    topics
        .iter()
        .filter(|topic| {
            consumer
                .fetch_metadata(Some(topic), Duration::from_secs(2))
                .is_ok_and(|m| {
                    m.topics()
                        .iter()
                        .any(|t| t.error().is_none() && !t.partitions().is_empty())
                })
        })
        .cloned()
        .collect()
}

/// Whether `group` has more members than `topics` have partitions (an empty
/// assignment is then expected). False when the broker does not answer.
fn more_members_than_partitions(
    consumer: &BaseConsumer<SeekContext>,
    group: &str,
    topics: &[String],
) -> bool {
    let timeout = Duration::from_secs(2);
    let Ok(groups) = consumer.fetch_group_list(Some(group), timeout) else {
        return false;
    };
    let members = groups.groups().first().map_or(0, |g| g.members().len());
    let partitions: usize = topics
        .iter()
        .filter_map(|topic| consumer.fetch_metadata(Some(topic), timeout).ok())
        .map(|m| {
            m.topics()
                .iter()
                .map(|t| t.partitions().len())
                .sum::<usize>()
        })
        .sum();
    members > partitions
}

/// After a fenced batch: start the batch's partitions again from what is stored.
fn reseek(consumer: &BaseConsumer<SeekContext>, partitions: Vec<Tp>) {
    let context = consumer.context();
    let Some(stored) = context.stored_offsets(&partitions) else {
        return;
    };
    let mut positions = context.positions();
    for tp in partitions {
        if !positions.contains_key(&tp) {
            continue;
        }
        let offset = stored.get(&tp).copied();
        let start = fetch_start(offset, context.seek_back);
        match consumer.seek(&tp.0, tp.1, start, Duration::from_secs(10)) {
            Ok(()) => {
                positions.insert(tp, offset);
            }
            Err(error) => {
                tracing::warn!(%error, topic = %tp.0, partition = tp.1, "seek failed; dropping the partition until the next assignment");
                positions.remove(&tp);
            }
        }
    }
}

/// Manual assignment of every partition of the topics that exist (topics that
/// do not exist yet are picked up on a later refresh). Only called between
/// batches.
fn assign_all(consumer: &BaseConsumer<SeekContext>, topics: &[String]) {
    let mut wanted: Vec<Tp> = Vec::new();
    for topic in topics {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                for t in metadata.topics() {
                    if t.error().is_some() {
                        continue;
                    }
                    wanted.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
                }
            }
            Err(error) => tracing::debug!(%error, topic, "metadata not available yet"),
        }
    }
    wanted.sort();
    let context = consumer.context();
    let known: Vec<Tp> = {
        let mut k: Vec<Tp> = context.positions().keys().cloned().collect();
        k.sort();
        k
    };
    if wanted.is_empty() || wanted == known {
        return;
    }
    // Batches in flight finish first, so the stored offsets read are final.
    context.settle();
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &wanted {
        tpl.add_partition(t, *p);
    }
    // Existing partitions restart from their stored offsets too: nothing is
    // pending between batches, so that is exactly where they are.
    if context.position_from_store(&mut tpl) {
        if let Err(error) = consumer.assign(&tpl) {
            tracing::error!(%error, "assign failed");
            context.positions().clear();
        }
    }
}

/// Unknown-topic errors are expected until cdc/loadgen create the topics: log
/// them at most once a minute per message.
fn log_consumer_error(error: &KafkaError, quiet: &mut HashMap<String, Instant>) {
    let text = error.to_string();
    let expected = matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    ) || text.contains("not available");
    if expected {
        let now = Instant::now();
        let last = quiet.get(&text).copied();
        if last.is_none_or(|t| now.duration_since(t) > Duration::from_secs(60)) {
            tracing::info!(error = %text, "waiting for input topics to be created");
            quiet.insert(text, now);
        }
    } else {
        tracing::warn!(error = %text, "kafka consumer error (retrying)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetching_starts_exactly_at_the_stored_offset_by_default() {
        assert_eq!(fetch_start(None, 0), Offset::Beginning);
        assert_eq!(fetch_start(Some(0), 0), Offset::Beginning);
        assert_eq!(fetch_start(Some(885), 0), Offset::Offset(885));
    }

    #[test]
    fn a_seek_back_restarts_up_to_that_many_records_early() {
        let back = 10_000;
        assert_eq!(fetch_start(None, back), Offset::Beginning);
        assert_eq!(fetch_start(Some(885), back), Offset::Beginning);
        assert_eq!(fetch_start(Some(back), back), Offset::Beginning);
        assert_eq!(fetch_start(Some(back + 885), back), Offset::Offset(885));
    }

    fn config(args: &[&str]) -> Config {
        use clap::Parser;
        let mut all = vec!["analytics"];
        all.extend_from_slice(args);
        crate::config::Cli::parse_from(all).config
    }

    #[test]
    fn holding_no_partition_past_the_limit_is_reported_and_cleared() {
        let config = config(&["--session-timeout-ms", "1000", "--group-id", "g"]);
        let health = pipeline::telemetry::Health::default();
        let mut watch = Unassigned::new(config.unassigned_limit(), health.clone());
        let t0 = Instant::now();
        assert_eq!(watch.observe(0, true, t0), None);
        assert_eq!(watch.observe(0, true, t0 + Duration::from_secs(2)), None);
        let since = watch
            .observe(0, true, t0 + Duration::from_secs(3))
            .expect("due after 3 session timeouts");
        // No topic yet: nothing to wait for.
        watch.report(since, &[], &config, t0 + Duration::from_secs(3));
        assert_eq!(health.problem(), None);
        // Checked again only after a pause.
        assert_eq!(watch.observe(0, true, t0 + Duration::from_secs(4)), None);
        let since = watch
            .observe(0, true, t0 + Duration::from_secs(9))
            .expect("due again");
        watch.report(
            since,
            &["users".into()],
            &config,
            t0 + Duration::from_secs(9),
        );
        let problem = health.problem().expect("unhealthy");
        assert!(
            problem.contains("no partition assigned for 9s"),
            "{problem}"
        );
        assert!(problem.contains("users"), "{problem}");
        assert!(problem.contains("\"g\""), "{problem}");
        // Partitions came: healthy again, and the clock restarts.
        assert_eq!(watch.observe(3, false, t0 + Duration::from_secs(10)), None);
        assert_eq!(health.problem(), None);
        assert_eq!(watch.observe(0, true, t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn another_problem_is_not_cleared_by_the_watch() {
        let config = config(&["--session-timeout-ms", "1000"]);
        let health = pipeline::telemetry::Health::default();
        let mut watch = Unassigned::new(config.unassigned_limit(), health.clone());
        let t0 = Instant::now();
        watch.observe(0, true, t0);
        let since = watch.observe(0, true, t0 + Duration::from_secs(5)).unwrap();
        watch.report(
            since,
            &["users".into()],
            &config,
            t0 + Duration::from_secs(5),
        );
        health.unhealthy("batch failing: postgres down");
        watch.observe(1, false, t0 + Duration::from_secs(6));
        assert_eq!(
            health.problem().as_deref(),
            Some("batch failing: postgres down")
        );
    }

    #[test]
    fn a_batch_is_described_by_partition_and_offset_range() {
        let offsets = BTreeMap::from([
            (
                ("purchases".to_owned(), 0),
                PartitionProgress {
                    committed: None,
                    next: 3,
                },
            ),
            (
                ("users".to_owned(), 2),
                PartitionProgress {
                    committed: Some(10),
                    next: 15,
                },
            ),
        ]);
        assert_eq!(
            describe_batch(&offsets),
            "purchases[0] offsets 0..=2, users[2] offsets 10..=14"
        );
    }

    #[test]
    fn a_panic_payload_is_read_as_text() {
        let payload = std::panic::catch_unwind(|| std::panic::panic_any("boom")).unwrap_err();
        assert_eq!(panic_cause(payload.as_ref()), "boom");
        let payload =
            std::panic::catch_unwind(|| std::panic::panic_any(format!("n={}", 3))).unwrap_err();
        assert_eq!(panic_cause(payload.as_ref()), "n=3");
    }

    #[test]
    fn an_empty_assignment_is_not_waiting() {
        let config = config(&["--session-timeout-ms", "1000"]);
        let mut watch = Unassigned::new(config.unassigned_limit(), Default::default());
        let t0 = Instant::now();
        for s in 0..10 {
            assert_eq!(watch.observe(0, false, t0 + Duration::from_secs(s)), None);
        }
    }
}
