//! `exactly.once.support`: the transactional sink against librdkafka's mock
//! cluster (in-process, has transactions; the local tansu broker has none).
//!
//! What the mock proves: records and the offset covering them are committed
//! together (the offset record is written only as a transaction's last
//! record, so a crash before the commit stores no offset); a restart with the
//! same transactional.id resumes from the last committed offset; an instance
//! told it is fenced ends with a definite error. The mock does not fence by
//! transactional.id itself (each InitProducerId gets a new producer id), so
//! there the broker's PRODUCER_FENCED answer is injected.
//!
//! What the mock cannot prove: read_committed isolation. Its Fetch answers
//! LastStableOffset = high watermark and no aborted transactions, and its
//! EndTxn writes no markers, so a read_committed consumer sees the records of
//! an aborted (or never committed) transaction too. The checks that need
//! isolation therefore run only against a real broker: set
//! `EOS_KAFKA_BOOTSTRAP_SERVERS` (e.g. the compose demo's Redpanda,
//! `127.0.0.1:19092`) and these tests use it instead of the mock, and assert
//! exactly once on the read_committed topic.

use std::collections::BTreeMap;
use std::time::Duration;

use cdc::config::{ExactlyOnce, TransactionBoundary};
use cdc::kafka::{Committer, PreparedTransactions, Sink, SinkError, TransactionEvent};
use cdc::offsets::{connect_key, OffsetStore, SourceOffset};
use debezium_avro::transaction::TransactionCodec;
use futures::StreamExt;
use pipeline::kafka::{KafkaArgs, TopicSpec};
use pipeline::registry::{RegistryArgs, RegistryClient};
use pipeline::testing::{unique_name, wait_until};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);

/// The broker the tests write to: the mock, or a real one with transactions.
struct Broker {
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    kafka: KafkaArgs,
    data: String,
    offsets: String,
    id: String,
}

impl Broker {
    async fn new() -> Self {
        let data = unique_name("eos_data");
        let offsets = unique_name("eos_offsets");
        let id = unique_name("eos_txn");
        match std::env::var("EOS_KAFKA_BOOTSTRAP_SERVERS") {
            Ok(servers) if !servers.is_empty() => {
                let kafka = KafkaArgs::plaintext(servers);
                for (name, configs) in [
                    (&data, &[][..]),
                    (&offsets, &[("cleanup.policy", "compact")][..]),
                ] {
                    pipeline::kafka::ensure_topic(
                        &kafka,
                        &TopicSpec {
                            name,
                            partitions: 1,
                            replication: 1,
                            configs,
                        },
                    )
                    .await
                    .unwrap();
                }
                Self {
                    mock: None,
                    kafka,
                    data,
                    offsets,
                    id,
                }
            }
            _ => {
                let mock = MockCluster::new(1).unwrap();
                mock.create_topic(&data, 1, 1).unwrap();
                mock.create_topic(&offsets, 1, 1).unwrap();
                let kafka = KafkaArgs::plaintext(mock.bootstrap_servers());
                Self {
                    mock: Some(mock),
                    kafka,
                    data,
                    offsets,
                    id,
                }
            }
        }
    }

    /// Whether a read_committed consumer skips aborted records here.
    fn isolates(&self) -> bool {
        self.mock.is_none()
    }

    fn store(&self) -> OffsetStore {
        OffsetStore::Kafka {
            kafka: self.kafka.clone(),
            producer: pipeline::kafka::SideProducer::new(&self.kafka.durable_producer()).unwrap(),
            topic: self.offsets.clone(),
            key: connect_key("eos-test", "mysql"),
        }
    }

    async fn sink(&self, boundary: TransactionBoundary) -> Result<(Sink, Committer), SinkError> {
        let registry = RegistryClient::new(&RegistryArgs::new("http://127.0.0.1:9")).unwrap();
        let eos = ExactlyOnce {
            transactional_id: self.id.clone(),
            boundary,
        };
        Sink::start_exactly_once(&self.kafka, "lz4", registry, &self.store(), &eos, 1, 1).await
    }

    fn side(&self) -> PreparedTransactions {
        PreparedTransactions {
            codec: TransactionCodec::new(&self.data),
            key_id: 1,
            value_id: 2,
        }
    }

    /// Every record of `topic`, read read_committed to its end: (key, value).
    async fn read(&self, topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let consumer: StreamConsumer = self
            .kafka
            .topic_reader(&unique_name("eos_reader"))
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut stream = consumer.stream();
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, stream.next()).await.unwrap() {
                None | Some(Err(KafkaError::PartitionEOF(_))) => return out,
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                Some(Ok(m)) => out.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().map(<[u8]>::to_vec),
                )),
            }
        }
    }

    /// The transaction ids of the data topic's records, read read_committed.
    async fn ids(&self) -> Vec<String> {
        self.read(&self.data)
            .await
            .into_iter()
            .map(|(key, _)| {
                // Framing (5 bytes), then an Avro string: zigzag length, bytes.
                String::from_utf8(key[6..].to_vec()).unwrap()
            })
            .collect()
    }

    /// The stored positions in the offsets topic, in order.
    async fn stored(&self) -> Vec<u64> {
        self.read(&self.offsets)
            .await
            .into_iter()
            .filter_map(|(_, v)| v)
            .map(|v| serde_json::from_slice::<SourceOffset>(&v).unwrap().pos)
            .collect()
    }
}

fn at(pos: u64) -> SourceOffset {
    SourceOffset {
        file: "bin.000001".into(),
        pos,
        ..SourceOffset::default()
    }
}

fn id(i: u64) -> String {
    format!("tx-{i:04}")
}

/// Sends record `tx-i` (no position of its own, like a BEGIN) and then
/// reaches position `i` (like a commit).
async fn write(sink: &mut Sink, side: &PreparedTransactions, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        sink.transaction(side, &id(i), TransactionEvent::Begin { ts_ms: 1 })
            .await
            .unwrap();
        sink.mark(at(i)).await.unwrap();
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(id).collect()
}

const NEVER: TransactionBoundary = TransactionBoundary::Interval(Duration::from_secs(3600));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_their_offset_are_committed_together_and_read_once() {
    let broker = Broker::new().await;
    let side = broker.side();
    let (mut sink, committer) = broker.sink(NEVER).await.unwrap();
    write(&mut sink, &side, 1..=50).await;
    sink.finish(committer).await.unwrap();

    assert_eq!(broker.ids().await, ids(1..=50));
    // One transaction, one offset record: the position covering all 50.
    assert_eq!(broker.stored().await, vec![50]);
    assert_eq!(broker.store().load().await.unwrap(), Some(at(50)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_boundary_commits_when_the_source_pauses() {
    let broker = Broker::new().await;
    let side = broker.side();
    let (mut sink, committer) = broker.sink(TransactionBoundary::Poll).await.unwrap();
    write(&mut sink, &side, 1..=3).await;
    // No finish: the pause after record 3 ends the batch.
    let store = broker.store();
    wait_until(WAIT, "the paused batch's commit", || async {
        (store.load().await.unwrap() == Some(at(3))).then_some(())
    })
    .await;
    assert_eq!(broker.ids().await, ids(1..=3));
    write(&mut sink, &side, 4..=5).await;
    sink.finish(committer).await.unwrap();
    assert_eq!(broker.ids().await, ids(1..=5));
    assert_eq!(broker.stored().await.last(), Some(&5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_boundary_commits_inside_a_long_stream() {
    let broker = Broker::new().await;
    let side = broker.side();
    let (mut sink, committer) = broker
        .sink(TransactionBoundary::Interval(Duration::from_millis(20)))
        .await
        .unwrap();
    let store = broker.store();
    // Records keep coming; commits still happen, each at a covered point.
    let deadline = std::time::Instant::now() + WAIT;
    let mut i = 0;
    loop {
        i += 1;
        write(&mut sink, &side, i..=i).await;
        if i % 10 == 0 && store.load().await.unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no commit while records kept coming"
        );
    }
    sink.finish(committer).await.unwrap();
    let stored = broker.stored().await;
    assert_eq!(stored.last(), Some(&i));
    assert_eq!(broker.ids().await, ids(1..=i));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_commit_stores_nothing_and_the_restart_resumes_from_the_last_commit() {
    let broker = Broker::new().await;
    let side = broker.side();
    let (mut sink, committer) = broker.sink(NEVER).await.unwrap();
    write(&mut sink, &side, 1..=10).await;
    sink.finish(committer).await.unwrap();

    // The second run sends 11..=20 and dies before its commit: its records
    // reach the broker (flushed below) inside the open transaction, its
    // offset record is never written. Its committer task stays alive: a
    // zombie, fenced by the restart.
    let (mut crashed, zombie) = broker.sink(NEVER).await.unwrap();
    write(&mut crashed, &side, 11..=20).await;
    drop(crashed);
    assert_eq!(broker.store().load().await.unwrap(), Some(at(10)));
    assert_eq!(broker.stored().await, vec![10]);

    // The restart resumes from 10: 11..=20 again, in a new transaction.
    let (mut sink, committer) = broker.sink(NEVER).await.unwrap();
    let resume = broker.store().load().await.unwrap().unwrap();
    assert_eq!(resume, at(10));
    write(&mut sink, &side, resume.pos + 1..=20).await;
    sink.finish(committer).await.unwrap();
    assert_eq!(broker.stored().await, vec![10, 20]);
    let read = broker.ids().await;
    if broker.isolates() {
        // read_committed: the aborted run's records are not there.
        assert_eq!(read, ids(1..=20));
    } else {
        // The mock has no read_committed (see the module docs): every
        // committed record is there, in order, after what the zombie left.
        let mut once: BTreeMap<String, usize> = BTreeMap::new();
        read.iter()
            .for_each(|i| *once.entry(i.clone()).or_default() += 1);
        assert_eq!(read[..10], ids(1..=10)[..]);
        assert_eq!(read[read.len() - 10..], ids(11..=20)[..]);
        assert!(once.values().all(|&n| n <= 2), "{once:?}");
    }
    // The zombie ends without committing anything.
    drop(zombie);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncovered_tail_is_aborted_not_committed() {
    let broker = Broker::new().await;
    let side = broker.side();
    let (mut sink, committer) = broker.sink(NEVER).await.unwrap();
    write(&mut sink, &side, 1..=5).await;
    // A record with no position after it (a delete without its tombstone):
    // committing it would make the restart write it again.
    sink.transaction(&side, &id(6), TransactionEvent::Begin { ts_ms: 1 })
        .await
        .unwrap();
    sink.finish(committer).await.unwrap();
    assert_eq!(broker.store().load().await.unwrap(), None);
    assert_eq!(broker.stored().await, Vec::<u64>::new());
    if broker.isolates() {
        assert_eq!(broker.ids().await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_fences_the_first() {
    let broker = Broker::new().await;
    let side = broker.side();
    let (mut first, first_committer) = broker.sink(NEVER).await.unwrap();
    write(&mut first, &side, 1..=3).await;

    // Same transactional.id: the new instance takes over. A real broker
    // bumps the id's epoch and answers the first one PRODUCER_FENCED; the
    // mock gives each InitProducerId a new producer id instead (no fencing),
    // so there its answer to the first one's commit is injected.
    let (mut second, second_committer) = broker.sink(NEVER).await.unwrap();
    if let Some(mock) = &broker.mock {
        mock.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
    }

    // The first cannot commit: it ends with a definite error.
    let sent = async {
        first
            .transaction(&side, &id(4), TransactionEvent::Begin { ts_ms: 1 })
            .await?;
        first.mark(at(4)).await
    }
    .await;
    let finished = first.finish(first_committer).await;
    let error = match (sent, finished) {
        (Err(e), _) | (Ok(()), Err(e)) => e,
        (Ok(()), Ok(())) => panic!("the fenced instance committed"),
    };
    assert!(
        matches!(error, SinkError::TransactionFatal { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains(&broker.id), "{error}");

    write(&mut second, &side, 1..=3).await;
    second.finish(second_committer).await.unwrap();
    assert_eq!(broker.store().load().await.unwrap(), Some(at(3)));
    if broker.isolates() {
        assert_eq!(broker.stored().await, vec![3]);
        assert_eq!(broker.ids().await, ids(1..=3));
    } else {
        // Without isolation the fenced one's offset record (its commit
        // failed) is visible too, before the second one's.
        assert_eq!(broker.stored().await, vec![4, 3]);
    }
}
