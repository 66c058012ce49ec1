//! The batch being collected, bounded in records, in bytes and in time, and
//! the memory budget that bounds everything the consumer holds in flight.
//!
//! Records are copied out of librdkafka into one buffer per batch ([`Records`])
//! rather than kept as one `OwnedMessage` each: an `OwnedMessage` costs three
//! allocations and ~300 bytes for a ~90-byte pageview (its own copy of the
//! topic name, the key, the value, the struct), the buffer ~40 bytes of index
//! per record plus the key and value themselves. A batch's size in bytes is
//! then exactly what it holds, and `--batch-max-bytes` bounds it.
//!
//! # Memory budget
//!
//! With `B` = `--batch-max-bytes`, what the consumer holds at most:
//!
//! - **Batches in flight: 2 B of records + the rows of 2 decoded batches.**
//!   The loop collects batch N+2 (≤ B) while the decode thread decodes N+1
//!   (its records, ≤ B, are dropped as soon as they are decoded) and the
//!   commit thread commits N (its decoded rows and the statement buffers
//!   built from them). The hand-offs are rendezvous channels: no batch waits
//!   in a queue between two stages. Decoded rows are smaller than their
//!   records: a pageview is 80 bytes (its channel is not allocated), ~0.6 of
//!   its ~134 bytes of B; a CDC row drops the Avro envelope and its source
//!   block. So ≤ 2 B more at worst, ~1.2 B for pageviews.
//! - **librdkafka's prefetch queue: B/2.** Fetching stops while the queue
//!   holds B/4 of values (`queued.max.messages.kbytes`) or B/4 worth of
//!   librdkafka's per-record overhead (`queued.min.messages` =
//!   B/4 / [`LIBRDKAFKA_RECORD_BYTES`]: each queued record is a 304-byte
//!   fetch op besides its key and value), whichever comes first; without
//!   the second bound small records would cost ~4x their values.
//! - **One fetch response on top: `fetch.max.bytes` = max(B/16, 1 MiB)**, the
//!   same per partition (`max.partition.fetch.bytes`). The limit counts
//!   compressed bytes: lz4 pageview JSON unpacks ~4x, and each record then
//!   costs its op too, so 1 MiB fetched is up to ~18 MB held until taken.
//!   librdkafka refuses a `fetch.max.bytes` below `message.max.bytes`
//!   (1,000,000), hence the floor; a broker still returns a record batch
//!   larger than the limit whole.
//!
//! Committing also builds statement parameters from the decoded rows (~0.75
//! B for a batch of pageviews, the `pageview_log` arrays mostly).
//!
//! At the default B = 16 MiB, for pageviews at the byte bound: 32 MiB of
//! records + ~19 MiB decoded + ~12 MiB of statements + 8 MiB prefetch + ~18
//! MiB of the fetch in flight, ~90 MiB; CDC rows decode to about half their
//! Avro, so a CDC backlog holds less. Add what the process holds anyway
//! (code, runtime, connections, allocator slack; the cdc service's whole
//! drain peaks at 36-49 MB): under 128 MB. A batch of 100,000 pageviews
//! holds ~13 MiB, so the default keeps the catch-up batches the record bound
//! allows (larger batches amortize the per-batch Postgres round trips and
//! upserts); the 1M-pageview drain's batches of 100,000 hold ~27 + 16 + 10
//! + 8 + 18 = ~80 MiB in flight.

use std::mem::size_of;
use std::time::{Duration, Instant};

use crate::config::Config;

/// Bytes librdkafka holds per queued record besides its key and value: the
/// fetch op (`rd_kafka_op_t` sized for a fetch: 304 bytes in librdkafka
/// 2.12, measured with `sizeof`) and its allocation's header.
pub(crate) const LIBRDKAFKA_RECORD_BYTES: usize = 320;

/// `fetch.max.bytes` may not be below the consumer's `message.max.bytes`
/// (librdkafka's default 1,000,000); a power of two above it.
const MIN_FETCH_BYTES: usize = 1 << 20;

/// librdkafka consumer settings derived from `--batch-max-bytes` (see the
/// module's memory budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchBudget {
    pub queued_max_messages_kbytes: usize,
    pub queued_min_messages: usize,
    pub fetch_max_bytes: usize,
    pub max_partition_fetch_bytes: usize,
}

impl FetchBudget {
    pub(crate) fn for_batch_bytes(batch_max_bytes: usize) -> Self {
        let quarter = batch_max_bytes / 4;
        let fetch = (batch_max_bytes / 16).max(MIN_FETCH_BYTES);
        Self {
            queued_max_messages_kbytes: (quarter / 1024).max(1),
            queued_min_messages: (quarter / LIBRDKAFKA_RECORD_BYTES).max(1),
            fetch_max_bytes: fetch,
            max_partition_fetch_bytes: fetch,
        }
    }

    /// The settings as librdkafka's properties.
    pub(crate) fn properties(&self) -> [(&'static str, String); 4] {
        [
            (
                "queued.max.messages.kbytes",
                self.queued_max_messages_kbytes.to_string(),
            ),
            ("queued.min.messages", self.queued_min_messages.to_string()),
            ("fetch.max.bytes", self.fetch_max_bytes.to_string()),
            (
                "max.partition.fetch.bytes",
                self.max_partition_fetch_bytes.to_string(),
            ),
        ]
    }
}

/// Where a record's key and value lie in [`Records::data`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    key_len: usize,
    payload_len: usize,
    offset: i64,
    partition: i32,
    topic: u16,
    has_key: bool,
    has_payload: bool,
}

/// The records of one batch: keys and values back to back in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// The batch's topics (a handful), indexed by [`Entry::topic`], and
    /// how many records each has.
    topics: Vec<(String, usize)>,
    data: Vec<u8>,
    index: Vec<Entry>,
}

/// One record of [`Records`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

impl Records {
    /// Empty, with room for about what `like` held (batches in a row are
    /// alike; growing by doubling would copy and leave holes).
    fn sized_like(like: &Records) -> Self {
        Self {
            topics: Vec::new(),
            data: Vec::with_capacity(like.data.len()),
            index: Vec::with_capacity(like.index.len()),
        }
    }

    pub(crate) fn push(&mut self, record: Record<'_>) {
        let topic = match self.topics.iter().position(|(t, _)| t == record.topic) {
            Some(i) => i,
            None => {
                self.topics.push((record.topic.to_owned(), 0));
                self.topics.len() - 1
            }
        };
        self.topics[topic].1 += 1;
        let start = self.data.len();
        let key = record.key.unwrap_or_default();
        let payload = record.payload.unwrap_or_default();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(payload);
        self.index.push(Entry {
            start,
            key_len: key.len(),
            payload_len: payload.len(),
            offset: record.offset,
            partition: record.partition,
            // Topics per batch: the four inputs.
            topic: u16::try_from(topic).unwrap_or(u16::MAX),
            has_key: record.key.is_some(),
            has_payload: record.payload.is_some(),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// What the records hold: keys, values, their index and topic names.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len()
            + self.index.len() * size_of::<Entry>()
            + self.topics.iter().map(|(t, _)| t.len()).sum::<usize>()
    }

    /// How many records of `topic` the batch holds (to size what they
    /// decode into up front).
    pub(crate) fn count_of(&self, topic: &str) -> usize {
        self.topics
            .iter()
            .find(|(t, _)| t == topic)
            .map_or(0, |(_, n)| *n)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        self.index.iter().map(|e| {
            let key_end = e.start + e.key_len;
            Record {
                topic: self
                    .topics
                    .get(usize::from(e.topic))
                    .map_or("", |(t, _)| t.as_str()),
                partition: e.partition,
                offset: e.offset,
                key: e.has_key.then(|| &self.data[e.start..key_end]),
                payload: e
                    .has_payload
                    .then(|| &self.data[key_end..key_end + e.payload_len]),
            }
        })
    }
}

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Self {
        Self {
            max_records: config.batch_max_records,
            max_bytes: config.batch_max_bytes,
            linger: config.linger(),
        }
    }
}

/// The batch being collected.
#[derive(Debug)]
pub(crate) struct Collecting {
    records: Records,
    /// When its first record came.
    first_at: Instant,
}

impl Collecting {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            records: Records::default(),
            first_at: now,
        }
    }

    pub(crate) fn push(&mut self, record: Record<'_>, now: Instant) {
        if self.records.is_empty() {
            self.first_at = now;
        }
        self.records.push(record);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the batch goes now: it is full (records or bytes), or it
    /// waited the linger, or `drained_and_idle` (every fetched record is
    /// taken and no earlier batch is being decoded or committed).
    pub(crate) fn due(&self, limits: &Limits, drained_and_idle: bool, now: Instant) -> bool {
        !self.records.is_empty()
            && (self.records.len() >= limits.max_records
                || self.records.bytes() >= limits.max_bytes
                || drained_and_idle
                || now.duration_since(self.first_at) >= limits.linger)
    }

    /// How much longer the batch may wait for records.
    pub(crate) fn linger_left(&self, limits: &Limits, now: Instant) -> Duration {
        limits
            .linger
            .saturating_sub(now.duration_since(self.first_at))
    }

    /// The batch, leaving an empty one sized like it.
    pub(crate) fn take(&mut self) -> Records {
        let next = Records::sized_like(&self.records);
        std::mem::replace(&mut self.records, next)
    }

    /// Drops the batch (and its buffers).
    pub(crate) fn discard(&mut self) {
        self.records = Records::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pageview(offset: i64, payload: &[u8]) -> Record<'_> {
        Record {
            topic: "pageviews",
            partition: (offset % 3) as i32,
            offset,
            key: Some(b"42"),
            payload: Some(payload),
        }
    }

    fn limits(max_records: usize, max_bytes: usize, linger_ms: u64) -> Limits {
        Limits {
            max_records,
            max_bytes,
            linger: Duration::from_millis(linger_ms),
        }
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        let mut records = Records::default();
        records.push(pageview(7, b"{\"a\":1}"));
        records.push(Record {
            topic: "users",
            partition: 2,
            offset: 9,
            key: None,
            payload: None,
        });
        records.push(Record {
            topic: "pageviews",
            partition: 1,
            offset: 8,
            key: Some(b""),
            payload: Some(b""),
        });
        let back: Vec<Record<'_>> = records.iter().collect();
        assert_eq!(
            back,
            vec![
                pageview(7, b"{\"a\":1}"),
                Record {
                    topic: "users",
                    partition: 2,
                    offset: 9,
                    key: None,
                    payload: None
                },
                Record {
                    topic: "pageviews",
                    partition: 1,
                    offset: 8,
                    key: Some(b""),
                    payload: Some(b"")
                },
            ]
        );
        assert_eq!(
            records.bytes(),
            2 + 7 + 3 * size_of::<Entry>() + "pageviews".len() + "users".len()
        );
        assert_eq!(records.count_of("pageviews"), 2);
        assert_eq!(records.count_of("users"), 1);
        assert_eq!(records.count_of("items"), 0);
    }

    #[test]
    fn a_batch_closes_at_the_byte_bound() {
        let payload = [b'x'; 100];
        // A record: its key ("42"), its value and its index entry; the
        // topic name is held once per batch.
        let record_bytes = 2 + payload.len() + size_of::<Entry>();
        let bound = 10 * record_bytes + "pageviews".len();
        let limits = limits(1_000_000, bound, 60_000);
        let t0 = Instant::now();
        let mut batch = Collecting::new(t0);
        for offset in 0..9 {
            batch.push(pageview(offset, &payload), t0);
            assert!(!batch.due(&limits, false, t0), "due at {offset}");
        }
        batch.push(pageview(9, &payload), t0);
        assert!(batch.due(&limits, false, t0));
        let records = batch.take();
        assert_eq!(records.len(), 10);
        assert!(records.bytes() >= bound);
        assert!(batch.is_empty());
        assert!(!batch.due(&limits, false, t0));
    }

    #[test]
    fn a_batch_still_closes_at_the_record_bound_and_the_linger() {
        let limits = limits(3, usize::MAX, 50);
        let t0 = Instant::now();
        let mut batch = Collecting::new(t0);
        assert!(!batch.due(&limits, true, t0 + Duration::from_secs(1)));
        batch.push(pageview(0, b"{}"), t0);
        batch.push(pageview(1, b"{}"), t0);
        assert!(!batch.due(&limits, false, t0 + Duration::from_millis(49)));
        assert_eq!(
            batch.linger_left(&limits, t0 + Duration::from_millis(20)),
            Duration::from_millis(30)
        );
        // The linger runs from the first record.
        assert!(batch.due(&limits, false, t0 + Duration::from_millis(50)));
        // Taken and idle: goes at once.
        assert!(batch.due(&limits, true, t0));
        batch.push(pageview(2, b"{}"), t0);
        assert!(batch.due(&limits, false, t0));
        assert_eq!(batch.take().len(), 3);
        // The next batch's linger starts at its own first record.
        let t1 = t0 + Duration::from_secs(5);
        batch.push(pageview(3, b"{}"), t1);
        assert!(!batch.due(&limits, false, t1 + Duration::from_millis(10)));
        batch.discard();
        assert!(batch.is_empty());
    }

    #[test]
    fn the_fetch_settings_follow_the_batch_bound() {
        let budget = FetchBudget::for_batch_bytes(16 << 20);
        assert_eq!(
            budget,
            FetchBudget {
                queued_max_messages_kbytes: 4096,
                queued_min_messages: (4 << 20) / LIBRDKAFKA_RECORD_BYTES,
                fetch_max_bytes: 1 << 20,
                max_partition_fetch_bytes: 1 << 20,
            }
        );
        // The floor librdkafka requires (fetch.max.bytes >= message.max.bytes).
        let small = FetchBudget::for_batch_bytes(1 << 20);
        assert_eq!(small.fetch_max_bytes, 1 << 20);
        assert_eq!(small.queued_max_messages_kbytes, 256);
        let large = FetchBudget::for_batch_bytes(256 << 20);
        assert_eq!(large.fetch_max_bytes, 16 << 20);
        assert_eq!(large.queued_max_messages_kbytes, 64 << 10);
        let properties = budget.properties();
        assert!(properties.contains(&("fetch.max.bytes", "1048576".to_owned())));
    }
}
