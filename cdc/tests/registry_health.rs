//! A schema registry that accepts connections and never answers: the cdc
//! binary must not stall silently. Its requests time out, are counted in
//! `schema_registry_errors_total{kind="timeout"}`, and `/healthz` turns 503
//! naming the registry, while the connector keeps retrying.

mod stack_support;

use std::process::Stdio;
use std::time::Duration;

use stack_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cdc");

/// Accepts every connection and holds it open without a byte of answer.
async fn hung_registry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_registry_shows_on_healthz_and_in_metrics() {
    let Some(stack) = pipeline::testing::stack() else {
        return;
    };
    let db = demo_database(&stack).await;
    let config = config(&stack, &db);
    let registry = hung_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let offsets = dir.path().join("offsets.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut child = cdc_command(BIN, &stack, &config, &offsets, &registry)
        .args(["--schema-registry-timeout-ms", "300"])
        // Keep retrying: the process stays up with the problem visible.
        .args(["--schema-registry-retries", "1000"])
        .args(["--metrics-addr", &metrics_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let health = pipeline::testing::wait_until(
        Duration::from_secs(60),
        "/healthz to report the registry timing out",
        || async {
            let response = reqwest::get(format!("http://{metrics_addr}/healthz"))
                .await
                .ok()?;
            let status = response.status().as_u16();
            let body = response.text().await.ok()?;
            (status == 503 && body.contains("schema-registry")).then_some(body)
        },
    )
    .await;
    assert!(health.contains("did not answer"), "{health}");
    assert!(health.contains(&registry), "{health}");

    let metrics = pipeline::testing::wait_until(
        Duration::from_secs(30),
        "the registry timeouts counted",
        || async {
            let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|l| l.starts_with(r#"schema_registry_errors_total{kind="timeout"}"#))
                .then_some(text)
        },
    )
    .await;
    assert!(
        metrics.contains("schema_registry_errors_total"),
        "{metrics}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "cdc keeps retrying, it does not exit"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
