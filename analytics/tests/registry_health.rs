//! A schema registry that accepts connections and never answers: analytics
//! must not stall silently. Fetching the writer schema of a new record times
//! out, the batch is retried (never dead-lettered), and the service's health
//! (what `/healthz` serves) names the registry.

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use analytics::decode::UserRow;
use harness::{create_topics, setup};
use pipeline::telemetry::Health;
use pipeline::testing::{stack, wait_until};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_registry_shows_on_health_while_the_batch_is_retried() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    let registry = hung_registry().await;
    let config = env.config(&[
        "--schema-registry-url",
        &registry,
        "--schema-registry-timeout-ms",
        "300",
        "--schema-registry-retries",
        "1",
    ]);
    let health = Health::default();
    let shutdown = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(analytics::run(config, health.clone(), shutdown.clone()));

    // A CDC record: its writer schema is only in the (hung) registry.
    let now = chrono::Utc::now();
    env.upsert_user(
        UserRow {
            id: 1,
            email: Some("a@example.com".into()),
            is_vip: Some(false),
            created_at: Some(now),
            updated_at: Some(now),
        },
        now,
    )
    .await;

    let problem = wait_until(
        Duration::from_secs(120),
        "health to report the registry timing out",
        || {
            let health = health.clone();
            async move { health.problem().filter(|p| p.contains("schema-registry: ")) }
        },
    )
    .await;
    assert!(problem.contains("did not answer"), "{problem}");
    assert!(problem.contains(&registry), "{problem}");

    shutdown.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("analytics stops after shutdown")
        .expect("no panic")
        .expect("a clean stop");
    let client = env.postgres().await;
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "nothing applied without the writer schema");
}
