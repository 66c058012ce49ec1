//! Kafka client settings shared by every service, and idempotent topic creation.
//!
//! Every producer and consumer starts from [`KafkaArgs::client_config`]
//! (connection and security), then takes one of the profiles below instead of
//! copying properties: [`KafkaArgs::durable_producer`] (records that must not
//! be lost or duplicated), [`bulk_batching`] (high-volume event streams),
//! [`KafkaArgs::side_producer`] (dead letters and pushes: fail fast, keep
//! order; sent through a [`SideProducer`]) and [`KafkaArgs::topic_reader`]
//! (read a topic to its end, no group).
//!
//! Topics are created by the services that write them (the demo's original setup
//! failed with `UNKNOWN_TOPIC_OR_PARTITION` until someone created them by hand, and
//! the local broker has no auto-create), so [`ensure_topic`] treats "already exists"
//! as success.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::secret::Secret;

/// How to reach the Kafka cluster. Flatten into a service's clap config.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Comma-separated host:port list of brokers.
    #[arg(
        long = "kafka-bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        default_value = "plaintext"
    )]
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with sasl_* protocols).
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    #[arg(
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<Secret>,
    /// CA bundle for TLS; the system store is used when unset.
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<PathBuf>,
    /// librdkafka debug contexts to log (its `debug` property, e.g.
    /// `cgrp,fetch`), at debug level under target `librdkafka`: set
    /// RUST_LOG=librdkafka=debug as well.
    #[arg(long = "kafka-debug", env = "KAFKA_DEBUG")]
    pub debug: Option<String>,
}

impl KafkaArgs {
    /// Plain-text settings for a given bootstrap list (tests, tools).
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            debug: None,
        }
    }

    /// A client configuration with connection and security settings filled in;
    /// callers add what is specific to a producer or consumer.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", &self.security_protocol);
        // Empty values count as unset: compose and .env files pass `KEY=` for "not used".
        let set = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        if let Some(mechanism) = set(&self.sasl_mechanism) {
            config.set("sasl.mechanism", mechanism);
        }
        if let Some(user) = set(&self.sasl_username) {
            config.set("sasl.username", user);
        }
        if let Some(password) = self.sasl_password.as_ref().filter(|p| !p.is_empty()) {
            config.set("sasl.password", password.expose());
        }
        if let Some(ca) = &self.ssl_ca_location {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(debug) = set(&self.debug) {
            config.set("debug", debug);
        }
        config
    }

    /// A producer whose records are written exactly once per partition, in
    /// order, riding out broker outages shorter than five minutes (librdkafka
    /// retries inside that window; idempotence keeps the retries from writing
    /// a record twice). cdc's change events and offsets, loadgen's pageviews.
    pub fn durable_producer(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "300000");
        config
    }

    /// A producer for side outputs (dead letters, pushes): a failure shows
    /// within 30 s and the caller retries; one request in flight keeps order
    /// per key without idempotence, which not every broker the demo runs
    /// against offers (tansu).
    pub fn side_producer(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("message.timeout.ms", "30000")
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1");
        config
    }

    /// A consumer that reads assigned partitions to their end: no group
    /// commits, and an end-of-partition event so the reader knows it is done.
    pub fn topic_reader(&self, group_id: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        config
    }

    /// One line describing where the client connects, with secrets masked.
    pub fn describe(&self) -> String {
        let auth = match (&self.sasl_mechanism, &self.sasl_username) {
            (Some(m), Some(u)) if !m.is_empty() => format!(" sasl={m} user={u} password=***"),
            _ => String::new(),
        };
        format!(
            "kafka={} security={}{auth}",
            self.bootstrap_servers, self.security_protocol
        )
    }
}

/// Batching for high-volume event streams (loadgen's pageviews, and the
/// analytics benchmark's backlog, which must look like them): wait a few ms to
/// fill large lz4-compressed batches, with deep local queues. This is what
/// makes hundreds of thousands of events per second cheap.
pub fn bulk_batching(config: &mut ClientConfig) -> &mut ClientConfig {
    config
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
}

/// Settings of a topic a service creates for itself.
#[derive(Debug, Clone)]
pub struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level configs, e.g. `("cleanup.policy", "compact")`.
    pub configs: &'a [(&'a str, &'a str)],
}

/// Why a topic could not be created. Every variant is worth retrying except a
/// definite refusal from the broker (bad settings or missing permissions).
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("could not reach Kafka to create topic {topic}: {source}")]
    Unreachable { topic: String, source: KafkaError },
    #[error("Kafka refused to create topic {topic}: {code}; check the partition/replication settings and the principal's CREATE permission")]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates the topic unless it exists. Idempotent: "already exists" is success.
pub async fn ensure_topic(kafka: &KafkaArgs, spec: &TopicSpec<'_>) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        kafka
            .client_config()
            .create()
            .map_err(|source| TopicError::Unreachable {
                topic: spec.name.to_owned(),
                source,
            })?;
    let mut topic = NewTopic::new(
        spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    );
    for (k, v) in spec.configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|source| TopicError::Unreachable {
            topic: spec.name.to_owned(),
            source,
        })?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Refused { topic, code }),
        }
    }
    Ok(())
}

/// How long a delivery server ([`spawn_delivery_thread`],
/// [`spawn_delivery_task`]) sleeps when no report wakes it: the bound on
/// noticing that its producer is gone. Reports wake it at once.
///
/// Why not `producer.poll(timeout)`: rdkafka 0.39 polls until the deadline
/// even after an event, converting the time left into whole milliseconds,
/// so every poll spins through its last millisecond with a zero timeout
/// (rdkafka's own `ThreadedProducer` and `FutureProducer` poll 100 ms at a
/// time: ~1% of a core each, idle or not; a 1 s poll still cost ~1 ms/s).
/// The servers here sleep instead and poll only what is queued.
pub const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// What wakes a producer's delivery server when librdkafka queues a report:
/// owned by the producer's context (see [`DeliveryWake`]).
#[derive(Debug, Default)]
pub struct DeliveryWaker {
    /// Wakes a [`spawn_delivery_task`].
    notify: tokio::sync::Notify,
    /// Unparks a [`spawn_delivery_thread`] (set by the thread itself).
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl DeliveryWaker {
    /// Called on a librdkafka thread with a queue lock held: only signals.
    fn wake(&self) {
        self.notify.notify_one();
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// A producer context that owns the wake-up of its delivery server
/// ([`spawn_delivery_thread`] or [`spawn_delivery_task`]).
pub trait DeliveryWake: rdkafka::producer::ProducerContext {
    /// Signalled (from librdkafka's threads) when a report arrives on an
    /// empty queue.
    fn delivery_wake(&self) -> &DeliveryWaker;
}

/// Serves `producer`'s delivery reports (its context's `delivery` callback)
/// on a thread of its own until the last other handle to it is dropped.
///
/// The thread sleeps (parked) until librdkafka signals a report on the
/// producer's empty queue (as for [`spawn_delivery_task`]), then polls until
/// the queue is empty again: no wake-up without a report, and none per
/// report in a burst. It holds the producer only while serving (a weak
/// handle otherwise) and looks every [`DELIVERY_POLL`] whether it is gone;
/// the producer is then destroyed on that thread.
pub fn spawn_delivery_thread<C>(
    producer: &std::sync::Arc<rdkafka::producer::BaseProducer<C>>,
    name: &str,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    C: DeliveryWake + 'static,
{
    use rdkafka::producer::Producer as _;
    queue::enable_wake::<C>(producer.client());
    let weak = std::sync::Arc::downgrade(producer);
    let context = std::sync::Arc::clone(producer.context());
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // A report signalled before this is still served: the first
            // round below drains whatever is queued.
            let _ = context.delivery_wake().thread.set(std::thread::current());
            loop {
                {
                    let Some(producer) = weak.upgrade() else {
                        return;
                    };
                    serve_queued(&producer);
                }
                // An unpark since the last park (a report after the drain
                // above) makes this return at once: none is missed.
                std::thread::park_timeout(DELIVERY_POLL);
            }
        })
}

/// Polls `producer` until its main queue is empty (each poll serves one
/// event: a batch of reports).
fn serve_queued<C: rdkafka::producer::ProducerContext + 'static>(
    producer: &rdkafka::producer::BaseProducer<C>,
) {
    use rdkafka::producer::Producer as _;
    while queue::main_len(producer.client()) > 0 {
        producer.poll(Duration::ZERO);
    }
}

/// Serves `producer`'s delivery reports on the calling tokio runtime, as a
/// task, until the last other handle to it is dropped: no thread of its own.
///
/// Why: on a current-thread runtime the reports are then served by the
/// thread that produced the records, so librdkafka frees each record (and its
/// headers) where it was allocated, and no thread wakes per report. Measured
/// on the cdc's 1M-row drain with Debezium's four context headers per
/// record: 9-12% more events per CPU-second than with a delivery thread
/// (medians of 8 and 5 alternating runs).
///
/// How: librdkafka calls a callback (on its own thread) when a report lands
/// on the producer's empty main queue; the callback notifies the task, which
/// polls until the queue is empty again. Like [`spawn_delivery_thread`], the
/// task holds the producer only while serving (a weak handle otherwise) and
/// looks every [`DELIVERY_POLL`] whether it is gone.
pub fn spawn_delivery_task<C>(
    producer: &std::sync::Arc<rdkafka::producer::BaseProducer<C>>,
) -> tokio::task::JoinHandle<()>
where
    C: DeliveryWake + 'static,
{
    use rdkafka::producer::Producer as _;
    queue::enable_wake::<C>(producer.client());
    let weak = std::sync::Arc::downgrade(producer);
    let context = std::sync::Arc::clone(producer.context());
    tokio::spawn(async move {
        loop {
            // Registered before serving: a report after the last poll
            // below leaves a permit, so it is never missed.
            let woken = context.delivery_wake().notify.notified();
            {
                let Some(producer) = weak.upgrade() else {
                    return;
                };
                serve_queued(&producer);
            }
            let _ = tokio::time::timeout(DELIVERY_POLL, woken).await;
        }
    })
}

/// The two calls into librdkafka's C API that rust-rdkafka does not wrap.
#[allow(unsafe_code)]
mod queue {
    use rdkafka::bindings as rdsys;
    use rdkafka::client::Client;

    use super::DeliveryWake;

    /// Reports waiting on the client's main queue.
    pub(super) fn main_len<C: rdkafka::ClientContext>(client: &Client<C>) -> usize {
        // SAFETY: `native_ptr` is the live client `client` borrows; the
        // queue handle rd_kafka_queue_get_main returns is a reference of
        // our own, released right after reading its length.
        unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(client.native_ptr());
            let len = rdsys::rd_kafka_queue_length(queue);
            rdsys::rd_kafka_queue_destroy(queue);
            len
        }
    }

    /// Makes librdkafka call [`wake::<C>`] whenever a report lands on the
    /// client's empty main queue.
    pub(super) fn enable_wake<C: DeliveryWake>(client: &Client<C>) {
        // SAFETY: as in `main_len`; the callback setting lives on the queue
        // itself (librdkafka's rd_kafka_q_cb_event_enable), not on the
        // handle released here.
        unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(client.native_ptr());
            rdsys::rd_kafka_queue_cb_event_enable(queue, Some(wake::<C>), std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(queue);
        }
    }

    /// Runs on a librdkafka thread, with the queue's lock held: it only
    /// notifies (never calls back into librdkafka).
    unsafe extern "C" fn wake<C: DeliveryWake>(
        rk: *mut rdsys::rd_kafka_t,
        _: *mut std::ffi::c_void,
    ) {
        // SAFETY: rust-rdkafka sets every client's opaque to its `Arc<C>`
        // context (`Client::new`), and `Client` destroys the native client
        // before it drops that context: the context outlives every call
        // librdkafka makes for this client, this one included.
        let context = unsafe { &*rdsys::rd_kafka_opaque(rk).cast::<C>() };
        context.delivery_wake().wake();
    }
}

/// A producer whose sends are futures that resolve when the broker
/// acknowledges the record (or librdkafka gives up on it), like rdkafka's
/// `FutureProducer`, for the side streams (dead letters, pushes) and the
/// cdc's offset store.
///
/// Why not `FutureProducer`: see [`DELIVERY_POLL`] (measured: analytics' two
/// side producers were a fifth of its CPU at the demo's rate). Here a
/// [`spawn_delivery_thread`] serves the reports, woken only by them.
///
/// Dropping it ends that thread within [`DELIVERY_POLL`] without waiting for
/// it; records not yet acknowledged then fail their futures (Canceled).
pub struct SideProducer {
    producer: std::sync::Arc<rdkafka::producer::BaseProducer<DeliveryWaiters>>,
}

impl std::fmt::Debug for SideProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideProducer").finish_non_exhaustive()
    }
}

/// Completes each record's future from its delivery report.
#[derive(Debug, Default)]
pub struct DeliveryWaiters {
    wake: DeliveryWaker,
}

impl DeliveryWake for DeliveryWaiters {
    fn delivery_wake(&self) -> &DeliveryWaker {
        &self.wake
    }
}

impl rdkafka::ClientContext for DeliveryWaiters {}

impl rdkafka::producer::ProducerContext for DeliveryWaiters {
    type DeliveryOpaque = Box<tokio::sync::oneshot::Sender<Result<(), KafkaError>>>;

    fn delivery(
        &self,
        result: &rdkafka::message::DeliveryResult<'_>,
        waiter: Self::DeliveryOpaque,
    ) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender may have stopped waiting (dropped its future): fine.
        let _ = waiter.send(outcome);
    }
}

impl SideProducer {
    /// A producer with `config` (e.g. [`KafkaArgs::side_producer`]) and its
    /// delivery thread.
    pub fn new(config: &ClientConfig) -> Result<Self, KafkaError> {
        let producer = std::sync::Arc::new(config.create_with_context(DeliveryWaiters::default())?);
        spawn_delivery_thread(&producer, "kafka-delivery")
            .map_err(|e| KafkaError::ClientCreation(format!("delivery thread: {e}")))?;
        Ok(Self { producer })
    }

    /// Queues `record` (waiting up to `queue_timeout` while librdkafka's
    /// queue is full) and resolves once it is acknowledged or has failed.
    pub async fn send<K, P>(
        &self,
        record: rdkafka::producer::FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> Result<(), KafkaError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let deadline = std::time::Instant::now() + queue_timeout;
        let (waiter, delivered) = tokio::sync::oneshot::channel();
        let mut base =
            rdkafka::producer::BaseRecord::with_opaque_to(record.topic, Box::new(waiter));
        base.partition = record.partition;
        base.payload = record.payload;
        base.key = record.key;
        base.timestamp = record.timestamp;
        base.headers = record.headers;
        loop {
            match self.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if std::time::Instant::now() < deadline =>
                {
                    // Backpressure: the queue drains as the broker acknowledges.
                    base = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
        delivered.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

#[cfg(test)]
mod side_producer_tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::FutureRecord;

    #[tokio::test]
    async fn a_send_resolves_when_the_broker_acknowledges_and_fails_when_it_cannot() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("letters", 1, 1).expect("topic");
        let mut config = KafkaArgs::plaintext(cluster.bootstrap_servers()).side_producer();
        config.set("message.timeout.ms", "2000");
        let producer = SideProducer::new(&config).expect("producer");
        let record = FutureRecord::<[u8], [u8]>::to("letters")
            .key(b"k".as_slice())
            .payload(b"v".as_slice());
        producer
            .send(record, Duration::from_secs(5))
            .await
            .expect("acknowledged");
        // A partition that does not exist: the future resolves with the
        // error instead of waiting forever (nor for the 1 s poll: a report
        // wakes the delivery thread).
        let record = FutureRecord::<[u8], [u8]>::to("letters")
            .partition(7)
            .payload(b"v".as_slice());
        let failed = tokio::time::timeout(
            Duration::from_secs(10),
            producer.send(record, Duration::from_secs(5)),
        )
        .await
        .expect("resolved");
        assert!(failed.is_err(), "{failed:?}");
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{
        BaseProducer, BaseRecord, DefaultProducerContext, Producer as _, ProducerContext,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Counting {
        delivered: AtomicUsize,
        wake: DeliveryWaker,
    }

    impl rdkafka::ClientContext for Counting {}

    impl ProducerContext for Counting {
        type DeliveryOpaque = ();

        fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
            assert!(result.is_ok(), "{result:?}");
            self.delivered.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl DeliveryWake for Counting {
        fn delivery_wake(&self) -> &DeliveryWaker {
            &self.wake
        }
    }

    fn counting_producer(
        topic: &str,
    ) -> (
        MockCluster<'static, DefaultProducerContext>,
        Arc<BaseProducer<Counting>>,
    ) {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic(topic, 1, 1).expect("topic");
        let config = KafkaArgs::plaintext(cluster.bootstrap_servers()).side_producer();
        let producer = Arc::new(
            config
                .create_with_context(Counting::default())
                .expect("producer"),
        );
        (cluster, producer)
    }

    /// Two rounds of ten records with a quiet gap between: the second
    /// round's reports land on an empty queue again and must wake the
    /// server again, well before its DELIVERY_POLL fallback (the first round
    /// also connects).
    async fn two_rounds_are_served(producer: &BaseProducer<Counting>, topic: &str) {
        for (round, bound) in [(1, Duration::from_secs(10)), (2, DELIVERY_POLL / 2)] {
            for _ in 0..10 {
                producer
                    .send(BaseRecord::<[u8], [u8]>::to(topic).payload(b"v".as_slice()))
                    .expect("queued");
            }
            let served = tokio::time::timeout(bound, async {
                while producer.context().delivered.load(Ordering::SeqCst) < 10 * round {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(served.is_ok(), "round {round}: reports not served");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // One thread: the reports can only be served by the task, between the
    // test's own awaits.
    #[tokio::test(flavor = "current_thread")]
    async fn reports_are_served_on_the_runtime_and_the_task_ends_with_the_producer() {
        let (_cluster, producer) = counting_producer("served");
        let task = spawn_delivery_task(&producer);
        two_rounds_are_served(&producer, "served").await;
        drop(producer);
        tokio::time::timeout(DELIVERY_POLL * 3, task)
            .await
            .expect("the task ends once the producer is gone")
            .expect("no panic");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_delivery_thread_sleeps_until_a_report_and_ends_with_the_producer() {
        let (_cluster, producer) = counting_producer("threaded");
        let thread = spawn_delivery_thread(&producer, "test-delivery").expect("thread");
        two_rounds_are_served(&producer, "threaded").await;
        drop(producer);
        let deadline = std::time::Instant::now() + DELIVERY_POLL * 3;
        while !thread.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread ends once the producer is gone"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        thread.join().expect("no panic");
    }
}
