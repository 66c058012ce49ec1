//! A worker that dies is never silent: when the offset committer panics (a
//! bug, injected here by the `fault-injection` hook), the `cdc` process ends
//! non-zero with the cause instead of streaming on with no position ever
//! stored again: while it has records to send (the snapshot) and while the
//! binlog is quiet (nothing to send whose failure would tell).

mod stack_support;

use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use stack_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cdc");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_panicking_during_the_snapshot_ends_the_process_non_zero() {
    committer_dies(true, "0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_panicking_while_the_binlog_is_quiet_ends_the_process_non_zero() {
    committer_dies(false, "8000").await;
}

/// Runs cdc with its committer panicking `after_ms` after it starts, on a
/// demo database with two users (`rows`) or none, and checks how it ends.
async fn committer_dies(rows: bool, after_ms: &str) {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = demo_database(&stack).await;
    let mut conn = admin(&stack, Some(&db)).await;
    if rows {
        conn.query_drop("INSERT INTO users (id, email) VALUES (1, 'a@x'), (2, 'b@x')")
            .await
            .unwrap();
    }
    let config = config(&stack, &db);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cdc.log");
    let offsets = dir.path().join("offsets.json");
    let mut child = cdc_command(BIN, &stack, &config, &offsets, &stack.schema_registry_url)
        .env("CDC_FAULT_COMMITTER_PANIC", after_ms)
        .env("RUST_LOG", "info")
        .args(["--metrics-addr", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .unwrap();
    let status = pipeline::testing::wait_until(
        Duration::from_secs(60),
        "cdc to exit after its committer died",
        || {
            let exited = child.try_wait().unwrap();
            async move { exited }
        },
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "exit status {status}:\n{text}");
    if !rows {
        assert!(
            text.contains("streaming from the binlog"),
            "the committer died while streaming:\n{text}"
        );
    }
    assert!(
        text.contains("the offset committer died")
            && text.contains("injected fault: CDC_FAULT_COMMITTER_PANIC"),
        "the cause is named:\n{text}"
    );
}
