//! The cost of `exactly.once.support`: the same synthetic drain through the
//! sink at-least-once and exactly-once, on the same broker.
//!
//!     cargo run --release -p cdc --example sink_eos -- [RECORDS] [TX_ROWS]
//!
//! The broker: librdkafka's in-process mock cluster (it has transactions; the
//! local tansu broker has none), or a real broker with transactions when
//! `EOS_KAFKA_BOOTSTRAP_SERVERS` is set (e.g. the compose demo's Redpanda,
//! `localhost:9092`). Each mode drains RECORDS records (default 1,000,000):
//! one per row, with Debezium's four context headers and the row's position,
//! like a change record, and a commit position every TX_ROWS rows (default
//! 1,000, the bench backlog's transactions). Exactly-once uses
//! `transaction.boundary=poll`. Binlog decoding and Avro encoding are left
//! out (they cost the same in both modes): the figures isolate the sink,
//! librdkafka and, with the mock, the broker, which runs in this process and
//! whose CPU counts in both modes alike. Prints one `key=value` line per mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc::config::{ExactlyOnce, TransactionBoundary};
use cdc::kafka::{ContextHeaders, PreparedHeartbeat, Sink};
use cdc::offsets::{connect_key, OffsetStore, SourceOffset};
use debezium_avro::heartbeat::HeartbeatCodec;
use pipeline::kafka::{KafkaArgs, TopicSpec};
use pipeline::registry::{RegistryArgs, RegistryClient};
use rdkafka::mocking::MockCluster;

/// user+sys CPU seconds of this process (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let tx_rows: u64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let real = std::env::var("EOS_KAFKA_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.is_empty());
    let mock = match real {
        Some(_) => None,
        None => Some(MockCluster::new(1)?),
    };
    let kafka = KafkaArgs::plaintext(
        real.clone()
            .or_else(|| mock.as_ref().map(MockCluster::bootstrap_servers))
            .unwrap_or_default(),
    );
    let broker = if real.is_some() { "real" } else { "mock" };
    for mode in ["at_least_once", "exactly_once"] {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let (data, offsets) = (
            format!("eos_bench_{run}"),
            format!("eos_bench_offsets_{run}"),
        );
        for (name, configs) in [
            (&data, &[][..]),
            (&offsets, &[("cleanup.policy", "compact")][..]),
        ] {
            match &mock {
                Some(mock) => mock.create_topic(name, 1, 1)?,
                None => {
                    pipeline::kafka::ensure_topic(
                        &kafka,
                        &TopicSpec {
                            name,
                            partitions: 1,
                            replication: 1,
                            configs,
                        },
                    )
                    .await?
                }
            }
        }
        let store = Arc::new(OffsetStore::Kafka {
            kafka: kafka.clone(),
            producer: pipeline::kafka::SideProducer::new(&kafka.durable_producer())?,
            topic: offsets.clone(),
            key: connect_key("eos-bench", "mysql"),
        });
        let registry = RegistryClient::new(&RegistryArgs::new("http://127.0.0.1:9"))?;
        let (mut sink, committer) = match mode {
            "exactly_once" => {
                let eos = ExactlyOnce {
                    transactional_id: format!("eos-bench-{run}"),
                    boundary: TransactionBoundary::Poll,
                };
                Sink::start_exactly_once(&kafka, "lz4", registry, &store, &eos, 1, 1).await?
            }
            _ => Sink::start(
                &kafka,
                "lz4",
                registry,
                Arc::clone(&store),
                Duration::from_secs(1),
                1,
                1,
            )?,
        };
        sink.set_context_headers(Some(ContextHeaders::new("mysql")));
        let side = PreparedHeartbeat {
            codec: HeartbeatCodec::new(&data, "mysql"),
            key_id: 1,
            value_id: 2,
        };
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let mut offset = SourceOffset {
            file: "bin.000001".into(),
            pos: 4,
            ..SourceOffset::default()
        };
        for i in 0..records {
            offset.row = i % tx_rows + 1;
            sink.heartbeat(&side, &offset).await?;
            if offset.row == tx_rows {
                offset.pos += 1;
                offset.row = 0;
                sink.mark(offset.clone()).await?;
                sink.commit_read(None);
            }
        }
        sink.finish(committer).await?;
        let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
        let stored = store.load().await?.map(|o| (o.pos, o.row));
        #[allow(clippy::print_stdout)] // the example's output
        {
            println!(
                "mode={mode} broker={broker} records={records} cpu_s={cpu:.2} wall_s={wall:.2} \
                 events_per_cpu_s={:.0} events_per_s={:.0} stored={stored:?}",
                records as f64 / cpu.max(0.01),
                records as f64 / wall.max(0.001),
            );
        }
    }
    Ok(())
}
