//! Reading a topic back to its end.
//!
//! Invariant: "the end" is where the broker says each partition ends while we
//! fetch (partition-EOF events), never a watermark from ListOffsets, which the
//! local broker (tansu) answers wrongly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pipeline::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// One record as stored.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Headers in order; a `None` value is a header without a value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Everything in a topic when it was read.
#[derive(Debug, Clone)]
pub struct TopicContents {
    pub topic: String,
    pub records: Vec<Record>,
    /// Per partition: the offset after the last record (0 when empty), what a
    /// consumer that read everything stores as its next offset.
    pub next_offsets: BTreeMap<i32, i64>,
}

/// Reads every partition of `topic` from the beginning to its end.
///
/// # Panics
/// When the topic does not exist or its end is not reached within `timeout`.
pub async fn read_to_end(kafka: &KafkaArgs, topic: &str, timeout: Duration) -> TopicContents {
    let kafka = kafka.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&kafka, &topic, timeout))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn read_blocking(kafka: &KafkaArgs, topic: &str, timeout: Duration) -> TopicContents {
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", pipeline::testing::unique_name("e2e-readback"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create a read-back consumer");
    let partitions = loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            })
            .filter(|p| !p.is_empty());
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} does not exist (no partitions in its metadata after {timeout:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign partitions");

    let mut records = Vec::new();
    let mut next_offsets: BTreeMap<i32, i64> = partitions.iter().map(|p| (*p, 0)).collect();
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    while at_end.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "reading {topic}: only partitions {at_end:?} of {partitions:?} reached their end within {timeout:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => eprintln!("e2e: reading {topic}: {e} (retrying)"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                next_offsets.insert(m.partition(), m.offset() + 1);
                records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
    }
    TopicContents {
        topic: topic.to_owned(),
        records,
        next_offsets,
    }
}
