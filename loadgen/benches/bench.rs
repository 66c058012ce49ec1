//! loadgen benchmark against the local stack: prints a figure table, asserts nothing.
//!
//! `cargo run --release -p loadgen --example bench -- [--seconds 60] [--burst-seconds 15]
//!  [--only rates|kafka|mysql] [--mysql-connections 4]`
//!
//! - rates: achieved vs target over `--seconds` at 10/750, 100/7,500 and
//!   1,000/75,000 purchases/pageviews per second (goal: error <= 1%);
//! - kafka: the most pageviews/s loadgen gets acknowledged by Kafka (goal >= 300k/s);
//! - mysql: the most purchases/s MySQL commits (one statement per commit, like
//!   the original), with `--mysql-connections` connections.
//!
//! Each scenario runs in a fresh database and topic, so the figures do not
//! depend on earlier runs.

// This tool's output is its table.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};

use clap::Parser;
use loadgen::config::Config;
use loadgen::stats::Totals;
use mysql_async::prelude::Queryable;
use pipeline::testing::{unique_name, Stack};
use tokio_util::sync::CancellationToken;

const SHOP_TABLES: &str = include_str!("../../migrations/mysql/V2__shop_tables.sql");

#[derive(Parser, Debug)]
struct Args {
    /// Length of each rate-accuracy run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Length of each maximum-throughput run.
    #[arg(long, default_value_t = 15)]
    burst_seconds: u64,
    /// Run one group only: rates, kafka or mysql.
    #[arg(long)]
    only: Option<String>,
    /// Connections for the 1,000/s rate run and the MySQL maximum.
    #[arg(long, default_value_t = 4)]
    mysql_connections: usize,
    /// Print loadgen's own live statistics too.
    #[arg(long)]
    verbose: bool,
}

async fn shop_database(stack: &Stack) -> String {
    let db = stack.fresh_mysql_database().await;
    let mut conn = mysql_async::Conn::from_url(stack.mysql_url(Some(&db)))
        .await
        .expect("connect to the stack's MySQL");
    let ddl = SHOP_TABLES.replace("shop.", &format!("`{db}`."));
    for stmt in ddl.split(';').filter(|s| s.contains("CREATE")) {
        conn.query_drop(stmt).await.expect("create shop tables");
    }
    conn.disconnect().await.ok();
    db
}

async fn drop_database(stack: &Stack, db: &str) {
    if let Ok(mut conn) = mysql_async::Conn::from_url(stack.mysql_url(None)).await {
        let _ = conn.query_drop(format!("DROP DATABASE `{db}`")).await;
        let _ = conn.disconnect().await;
    }
}

async fn scenario(stack: &Stack, extra: &[String], verbose: bool) -> Totals {
    let db = shop_database(stack).await;
    let topic = unique_name("bench_pageviews");
    let url = stack.mysql_url(None);
    let mut args: Vec<String> = [
        "loadgen",
        "--mysql-url",
        &url,
        "--database",
        &db,
        "--kafka-bootstrap-servers",
        &stack.kafka_bootstrap_servers,
        "--pageviews-topic",
        &topic,
        "--seed",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().cloned());
    let config = Config::try_parse_from(&args).expect("bench flags");
    let out: loadgen::stats::Out = if verbose {
        loadgen::stdout()
    } else {
        Arc::new(Mutex::new(std::io::sink()))
    };
    let totals = loadgen::run(config, CancellationToken::new(), out)
        .await
        .unwrap_or_else(|e| panic!("loadgen failed: {e}"));
    drop_database(stack, &db).await;
    totals
}

fn flags(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.clone()])
        .collect()
}

fn error_pct(achieved: f64, target: f64) -> f64 {
    (achieved - target).abs() / target * 100.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let Some(stack) = pipeline::testing::stack() else {
        println!("no local stack: run `make stack-up` first");
        return;
    };
    let wants = |g: &str| args.only.as_deref().is_none_or(|o| o == g);
    let mut rows: Vec<String> = Vec::new();

    if wants("rates") {
        for (p, v, conns) in [
            (10.0, 750.0, 1),
            (100.0, 7_500.0, 1),
            (1_000.0, 75_000.0, args.mysql_connections),
        ] {
            let t = scenario(
                &stack,
                &flags(&[
                    ("--purchases-per-sec", p.to_string()),
                    ("--pageviews-per-sec", v.to_string()),
                    ("--duration", format!("{}s", args.seconds)),
                    ("--mysql-connections", conns.to_string()),
                ]),
                args.verbose,
            )
            .await;
            let (ap, av) = (
                t.purchases as f64 / t.elapsed_secs,
                t.pageviews as f64 / t.elapsed_secs,
            );
            rows.push(format!(
                "rate {p:>6}/{v:>7} over {:>5.1}s | purchases {ap:>9.1}/s err {:>5.2}% | pageviews {av:>10.1}/s err {:>5.2}% | delivered {}/{} | changes {}",
                t.elapsed_secs,
                error_pct(ap, p),
                error_pct(av, v),
                t.pageviews_delivered,
                t.pageviews_sent(),
                t.mutations(),
            ));
            println!("{}", rows.last().map(String::as_str).unwrap_or(""));
        }
    }
    if wants("kafka") {
        let t = scenario(
            &stack,
            &flags(&[
                ("--purchases-per-sec", "0".into()),
                ("--pageviews-per-sec", "max".into()),
                ("--duration", format!("{}s", args.burst_seconds)),
            ]),
            args.verbose,
        )
        .await;
        let wall = t.elapsed_secs + t.flush_secs;
        rows.push(format!(
            "kafka max  | sent {:>10.0}/s over {:.1}s | delivered {:>10.0}/s counting the {:.1}s flush ({} of {}) | queue-full waits {}",
            t.pageviews as f64 / t.elapsed_secs,
            t.elapsed_secs,
            t.pageviews_delivered as f64 / wall,
            t.flush_secs,
            t.pageviews_delivered,
            t.pageviews_sent(),
            t.kafka_queue_full,
        ));
        println!("{}", rows.last().map(String::as_str).unwrap_or(""));
    }
    if wants("mysql") {
        for conns in [1, args.mysql_connections] {
            let mut extra = flags(&[
                ("--purchases-per-sec", "max".into()),
                ("--pageviews-per-sec", "0".into()),
                ("--mysql-connections", conns.to_string()),
                ("--duration", format!("{}s", args.burst_seconds)),
            ]);
            extra.push("--no-mutations".into());
            let t = scenario(&stack, &extra, args.verbose).await;
            rows.push(format!(
                "mysql max  | {conns} connection(s): {:>8.0} purchases/s committed over {:.1}s (each with its pageview)",
                t.purchases as f64 / t.elapsed_secs,
                t.elapsed_secs,
            ));
            println!("{}", rows.last().map(String::as_str).unwrap_or(""));
        }
    }
    println!();
    println!("loadgen benchmark (targets: rate error <= 1%, pageviews >= 300k/s)");
    for r in rows {
        println!("{r}");
    }
}
