//! Throughput figures (a benchmark, not a check): snapshot and streaming of
//! N rows of the demo's `purchases` table end to end (MySQL -> Kafka acked).
//! Run: `cargo test -p cdc --release --test throughput -- --ignored --nocapture`
//! (CDC_BENCH_ROWS, default 50000).

mod stack_support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use stack_support::*;

async fn insert_purchases(conn: &mut mysql_async::Conn, first: usize, n: usize) {
    for chunk_start in (first..first + n).step_by(5000) {
        let end = (chunk_start + 5000).min(first + n);
        let values: Vec<String> = (chunk_start..end)
            .map(|i| format!("({i}, {}, {}, 2, 19.99)", i % 1000, i % 100))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO purchases (id, user_id, item_id, quantity, purchase_price) VALUES {}",
            values.join(",")
        ))
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn snapshot_and_streaming_rows_per_second() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let n: usize = std::env::var("CDC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    insert_purchases(&mut conn, 1, n).await;
    let config = config(&stack, &db);
    let topic = format!("{}.{db}.purchases", config.connector.topic_prefix);

    let started = Instant::now();
    let running = start(config);
    pipeline::testing::wait_until(Duration::from_secs(600), "the snapshot", || async {
        (count(&stack, &topic).await >= n).then_some(())
    })
    .await;
    let snapshot = started.elapsed();

    let started = Instant::now();
    insert_purchases(&mut conn, n + 1, n).await;
    pipeline::testing::wait_until(Duration::from_secs(600), "the streamed rows", || async {
        (count(&stack, &topic).await >= 2 * n).then_some(())
    })
    .await;
    let streaming = started.elapsed();
    running.stop().await;
    eprintln!(
        "snapshot: {n} rows in {snapshot:?} = {:.0} rows/s; streaming (incl. inserting): {n} rows in {streaming:?} = {:.0} rows/s",
        n as f64 / snapshot.as_secs_f64(),
        n as f64 / streaming.as_secs_f64()
    );
}
