//! Our cdc against real Debezium 3.6.3's golden files (tests/golden/, written
//! by `make golden`; see `e2e::harness::golden`).
//!
//! Per configuration: the scenario's first phase on a fresh database on the
//! stack's real MySQL (`ORACLE_MYSQL_*`), our cdc in-process with the same
//! settings as the generator gave Debezium, the second phase once every setup
//! row arrived, and, once the scenario's last row arrived, every topic under
//! the run's prefix read back, decoded with the schemas cdc registered,
//! normalised with the generator's code and compared with the golden files:
//! schema texts identical, records identical except the normalised fields.
//! The registry is private to the test (the fixture's code in this process),
//! so the texts compared are exactly the ones cdc registered. No JVM is
//! involved.
//!
//! Skips (with the reason printed) when the stack or its real MySQL is not
//! configured, unless the stack is required (`SHOP_STACK_REQUIRED=1`, `CI`):
//! `pipeline::testing::stack_for(Flavour::MySql)`.

use std::time::{Duration, Instant};

use e2e::harness::golden::{self, Configuration, Decoded, Normalizer, RawRecord, SchemaSet};
use e2e::harness::topics;
use e2e::registry::SchemaRegistry;
use pipeline::testing::{Flavour, Stack};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_precise_matches_debezium() {
    compare(&golden::CONFIGURATIONS[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_double_matches_debezium() {
    compare(&golden::CONFIGURATIONS[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_string_matches_debezium() {
    compare(&golden::CONFIGURATIONS[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_mappers_matches_debezium() {
    compare(&golden::CONFIGURATIONS[3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_hex_query_matches_debezium() {
    compare(&golden::CONFIGURATIONS[4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwrap_default_matches_debezium() {
    compare(&golden::CONFIGURATIONS[5]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwrap_rewrite_route_matches_debezium() {
    compare(&golden::CONFIGURATIONS[6]).await;
}

#[test]
fn every_configuration_has_a_test_and_golden_files() {
    let names: Vec<_> = golden::CONFIGURATIONS.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "adaptive_precise",
            "connect_double",
            "connect_string",
            "column_mappers",
            "binary_hex_query",
            "unwrap_default",
            "unwrap_rewrite_route"
        ]
    );
    for name in names {
        let g = golden::read_files(&golden::golden_dir().join(name)).unwrap();
        assert!(
            g.topics.values().flatten().any(|r| {
                let row = r.value.get("after").unwrap_or(&r.value);
                row.get("email") == Some(&serde_json::json!(golden::END_MARKER))
            }),
            "{name}: no end marker"
        );
    }
}

async fn compare(config: &Configuration) {
    // The stack with its real MySQL as the source (skips, or fails when the
    // stack is required, without it).
    let Some(stack) = pipeline::testing::stack_for(Flavour::MySql) else {
        return;
    };
    let expected = golden::read_files(&golden::golden_dir().join(config.name)).unwrap();
    let started = Instant::now();

    let registry = SchemaRegistry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry_url = format!("http://{}", listener.local_addr().unwrap());
    let router = e2e::registry::router(registry.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let database = pipeline::testing::unique_name("golden");
    let prefix = pipeline::testing::unique_name("gold");
    golden::recreate_database(&stack, &database).await.unwrap();
    golden::run_phase(&stack, &database, golden::SETUP_SQL)
        .await
        .unwrap();
    let setup_rows = golden::count_rows(&stack, &database, config).await.unwrap();

    let server_id = 5_000_000 + rand::random::<u32>() % 1_000_000_000;
    let mut props = cdc::config::ConnectorConfig::for_database(
        &stack.mysql_host,
        stack.mysql_port,
        &stack.cdc_user,
        &stack.cdc_password,
        &prefix,
    )
    .properties;
    let settings = [
        ("database.include.list", database.clone()),
        ("database.server.id", server_id.to_string()),
        ("offset.flush.interval.ms", "100".to_owned()),
    ];
    for (k, v) in settings {
        props.0.insert(k.to_owned(), v);
    }
    props.0.extend(config.properties_for(&database));
    let cdc_config = cdc::config::Config {
        connector: cdc::config::ConnectorConfig::from_properties(&props).unwrap(),
        kafka: stack.kafka(),
        registry: pipeline::registry::RegistryArgs::new(&registry_url),
    };
    let shutdown = CancellationToken::new();
    let mut task = tokio::spawn(cdc::run(
        cdc_config,
        shutdown.clone(),
        pipeline::telemetry::Health::default(),
    ));

    let reader = Reader {
        stack: &stack,
        prefix: &prefix,
        registry: &registry,
        schemas: Default::default(),
    };
    // When cdc stops on its own (an error), the rest of the scenario is
    // skipped but what it wrote is still compared: the failure then shows
    // the error and every difference up to it.
    let mut stopped: Option<String> = None;
    let snapshot = reader.wait("every setup row through the snapshot", |records| {
        records.iter().filter(|d| d.topic != prefix).count() >= setup_rows
    });
    tokio::select! {
        () = snapshot => {}
        result = &mut task => {
            stopped = Some(format!("cdc stopped before every setup row arrived: {result:?}"));
        }
    }
    if stopped.is_none() {
        golden::run_phase(&stack, &database, golden::STREAM_SQL)
            .await
            .unwrap();
        let end = reader.wait("the scenario's last row", |records| {
            records.iter().any(Decoded::is_end_marker)
        });
        tokio::select! {
            () = end => {}
            result = &mut task => {
                stopped = Some(format!(
                    "cdc stopped before the scenario's last row arrived: {result:?}"
                ));
            }
        }
    }
    if stopped.is_none() {
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("cdc did not stop within 60 s")
            .expect("cdc panicked")
            .unwrap_or_else(|e| panic!("cdc failed: {e}"));
    }
    let records = reader.read_all().await;
    golden::drop_database(&stack, &database).await.unwrap();

    let actual = Normalizer {
        prefix: prefix.clone(),
        database: database.clone(),
    }
    .golden(&records, &reader.schemas.lock().unwrap())
    .unwrap();
    let comparison = golden::compare(&expected, &actual);
    let mut differences = comparison.differences;
    if let Some(stopped) = stopped {
        differences.insert(0, stopped);
    }
    eprintln!(
        "golden {}: {} records compared in {:.1} s, {} differences, {} allowed ({})",
        config.name,
        records.len(),
        started.elapsed().as_secs_f64(),
        differences.len(),
        comparison.allowed.len(),
        golden::ALLOWED_DIFFERENCES.map(|d| d.name).join(", ")
    );
    for allowed in &comparison.allowed {
        eprintln!("  allowed: {allowed}");
    }
    if !differences.is_empty() {
        let file = std::env::temp_dir().join(format!("golden-{}-differences.txt", config.name));
        std::fs::write(&file, differences.join("\n") + "\n").unwrap();
        let summary = golden::summarize(&differences);
        const SHOWN: usize = 60;
        panic!(
            "cdc differs from real Debezium 3.6.3 (tests/golden/{}/) in {} places, {} kinds \
             (all of them in {}); the first {} kinds:\n  {}",
            config.name,
            differences.len(),
            summary.len(),
            file.display(),
            summary.len().min(SHOWN),
            summary[..summary.len().min(SHOWN)].join("\n  ")
        );
    }
}

/// Reads every topic of the run back (`<prefix>` and `<prefix>.*`).
struct Reader<'a> {
    stack: &'a Stack,
    prefix: &'a str,
    registry: &'a SchemaRegistry,
    schemas: std::sync::Mutex<SchemaSet>,
}

impl Reader<'_> {
    fn topics(&self) -> Vec<String> {
        let consumer: BaseConsumer = self
            .stack
            .kafka()
            .client_config()
            .create()
            .expect("a metadata client");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("topic metadata");
        let mut topics: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|t| t == self.prefix || t.starts_with(&format!("{}.", self.prefix)))
            .collect();
        topics.sort();
        topics
    }

    async fn read_all(&self) -> Vec<Decoded> {
        let mut decoded = Vec::new();
        for topic in self.topics() {
            let contents =
                topics::read_to_end(&self.stack.kafka(), &topic, Duration::from_secs(30)).await;
            for (index, r) in contents.records.into_iter().enumerate() {
                let raw = RawRecord {
                    topic: topic.clone(),
                    key: r.key,
                    value: r.payload,
                    headers: r.headers,
                };
                for id in raw.schema_ids() {
                    if !self.schemas.lock().unwrap().contains(id) {
                        let text = self.registry.schema_text(id).await.unwrap_or_else(|| {
                            panic!("{topic} record {index}: schema {id} is not in the registry")
                        });
                        self.schemas.lock().unwrap().insert(id, text).unwrap();
                    }
                }
                let schemas = self.schemas.lock().unwrap();
                decoded.push(golden::decode(&raw, index, &schemas).unwrap());
            }
        }
        decoded
    }

    /// Reads everything until `done` holds (a timed wait, 120 s).
    async fn wait(&self, what: &str, done: impl Fn(&[Decoded]) -> bool) {
        pipeline::testing::wait_until(Duration::from_secs(120), what, || async {
            done(&self.read_all().await).then_some(())
        })
        .await;
    }
}
