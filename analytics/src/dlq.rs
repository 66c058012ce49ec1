//! The dead-letter topic: where records that cannot be folded go.
//!
//! Invariant: a rejected record is acknowledged by Kafka on the dead-letter
//! topic BEFORE the batch that skips it commits its offsets, so nothing is
//! dropped silently. (A batch retried after a failure may write a dead letter
//! twice: dead letters are at-least-once, the summary tables exactly once.)
//! Each dead letter keeps the original key and value and carries headers
//! `error` (one actionable line), `error.kind`, `source.topic`,
//! `source.partition` and `source.offset`.

use std::time::Duration;

use pipeline::kafka::{ensure_topic, KafkaArgs, SideProducer, TopicError, TopicSpec};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::decode::Rejected;

/// A record refused by decoding, with where it came from.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub reason: Rejected,
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Transient: retry the batch.
    #[error("cannot write dead letter for {record} to {dlq}: {source}")]
    Produce {
        dlq: String,
        /// `topic/partition@offset` of the rejected record.
        record: String,
        source: Box<KafkaError>,
    },
    /// The producer could not be created: bad Kafka settings.
    #[error("cannot create the dead-letter producer: {0}")]
    Client(Box<KafkaError>),
    #[error(transparent)]
    Topic(#[from] Box<TopicError>),
}

pub struct DeadLetters {
    producer: SideProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub fn new(kafka: &KafkaArgs, topic: impl Into<String>) -> Result<Self, DlqError> {
        let producer =
            SideProducer::new(&kafka.side_producer()).map_err(|e| DlqError::Client(Box::new(e)))?;
        Ok(Self {
            producer,
            topic: topic.into(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Creates the dead-letter topic unless it exists.
    pub async fn ensure_topic(&self, kafka: &KafkaArgs, replication: i32) -> Result<(), DlqError> {
        ensure_topic(
            kafka,
            &TopicSpec {
                name: &self.topic,
                partitions: 1,
                replication,
                configs: &[],
            },
        )
        .await
        .map_err(Box::new)?;
        Ok(())
    }

    /// Sends every letter and waits until Kafka acknowledged all of them.
    pub async fn send_all(&self, letters: &[DeadLetter]) -> Result<(), DlqError> {
        let sends = letters.iter().map(|letter| {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let error = letter.reason.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "error",
                    value: Some(&error),
                })
                .insert(Header {
                    key: "error.kind",
                    value: Some(letter.reason.kind),
                })
                .insert(Header {
                    key: "source.topic",
                    value: Some(&letter.topic),
                })
                .insert(Header {
                    key: "source.partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "source.offset",
                    value: Some(&offset),
                });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            if let Some(payload) = &letter.payload {
                record = record.payload(payload.as_slice());
            }
            let producer = &self.producer;
            async move {
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|source| DlqError::Produce {
                        dlq: self.topic.clone(),
                        record: format!("{}/{}@{}", letter.topic, letter.partition, letter.offset),
                        source: Box::new(source),
                    })
            }
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(())
    }
}
