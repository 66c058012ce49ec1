//! Nothing stops silently: the real binary, on the stack, with a worker that
//! dies (a test-only fault hook, compiled in by the `fault-injection`
//! feature the crate's tests enable), a batch Postgres refuses definitely (a
//! CHECK constraint every purchase violates, SQLSTATE 23514), and a startup
//! step that hangs (the dead-letter topic's creation on a frozen private
//! broker). The transient side (connections terminated under a running
//! instance, ridden out exactly) is `postgres_connection_loss_is_retried_exactly`
//! in live.rs.

mod harness;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use analytics::decode::{ItemRow, PurchaseRow, UserRow};
use chrono::{DateTime, Utc};
use harness::{create_topics, setup, Env};
use pipeline::testing::{stack, unique_name, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_analytics");
const EXIT_WITHIN: Duration = Duration::from_secs(90);

/// The binary, with its output in a log file the test reads.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("analytics-failures")));
        let file = std::fs::File::create(&log).unwrap();
        let args = env.config_args(extra);
        let child = Command::new(BIN)
            .args(&args[1..])
            .envs(vars.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most `timeout`) for the process to end.
    async fn exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "analytics still runs after {timeout:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn now_s() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

/// A user, an item and a purchase of it.
async fn feed_a_purchase(env: &mut Env) {
    let now = now_s();
    env.upsert_user(
        UserRow {
            id: 1,
            email: Some("ada@example.com".into()),
            is_vip: Some(false),
            created_at: Some(now),
            updated_at: Some(now),
        },
        now,
    )
    .await;
    env.upsert_item(
        ItemRow {
            id: 1,
            name: Some("thing".into()),
            category: Some("things".into()),
            price: Some(500),
            inventory: Some(100),
            inventory_updated_at: Some(now),
            created_at: Some(now),
            updated_at: Some(now),
        },
        now,
    )
    .await;
    env.upsert_purchase(
        PurchaseRow {
            id: 1,
            user_id: Some(1),
            item_id: Some(1),
            status: Some(1),
            quantity: Some(2),
            purchase_price: Some(1000),
            deleted: Some(false),
            created_at: Some(now),
            updated_at: Some(now),
        },
        now,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_panic_ends_the_process_non_zero_with_the_cause_logged() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    feed_a_purchase(&mut env).await;
    let mut analytics = Running::start(
        &env,
        &["--assignment", "all"],
        &[("ANALYTICS_FAULT_COMMIT_PANIC", "1")],
    );
    let status = analytics.exit(EXIT_WITHIN).await;
    let log = analytics.log();
    assert!(!status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        log.contains("the commit worker thread died: injected fault"),
        "the cause is not logged:\n{log}"
    );
    // Nothing was committed under a dead worker.
    let client = env.postgres().await;
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM consumer_offsets WHERE next_offset > 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_postgres_error_stops_the_process_naming_the_batch_and_sqlstate() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    analytics::store::migrate(&env.postgres_url, analytics::store::MIGRATION_LOCK_TIMEOUT)
        .await
        .unwrap();
    let client = env.postgres().await;
    // Every new purchase row violates it: retrying can never help.
    client
        .batch_execute(
            "ALTER TABLE purchases ADD CONSTRAINT test_rejects_every_purchase CHECK (false) NOT VALID",
        )
        .await
        .unwrap();
    feed_a_purchase(&mut env).await;
    let mut analytics = Running::start(&env, &["--assignment", "all"], &[]);
    let status = analytics.exit(EXIT_WITHIN).await;
    let log = analytics.log();
    assert!(!status.success(), "exit {status:?}; log:\n{log}");
    assert!(log.contains("23514"), "no SQLSTATE in the log:\n{log}");
    let named = format!("{}[", env.topics.purchases);
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&named) && l.contains("offsets 0..=0")),
        "no ERROR names the batch's purchases partition and offsets:\n{log}"
    );
    assert!(
        !log.contains("batch failed; retrying it"),
        "a definite error was retried:\n{log}"
    );
    // The batch was not applied, nor its offsets moved (an earlier batch of
    // users and items may have committed).
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM consumer_offsets WHERE topic = $1 AND next_offset > 0",
            &[&env.topics.purchases],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    let mirrored: i64 = client
        .query_one("SELECT count(*) FROM purchases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirrored, 0);
}

/// `GET /healthz`: (status code, body).
fn healthz(addr: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    Some((code, body.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_startup_step_is_warned_by_name_and_turns_healthz_503() {
    use pipeline::testing::outage::{broker_binary_for, free_port, PrivateBroker};

    let Some(mut stack) = stack() else { return };
    let Some(binary) = broker_binary_for(stack.broker) else {
        return;
    };
    let port = free_port();
    stack.kafka_bootstrap_servers = format!("127.0.0.1:{port}");
    let env = setup(stack).await;
    let mut broker = PrivateBroker::start_like(env.stack.broker, &binary, port).await;
    // Frozen: connections open, nothing answered, so creating the
    // dead-letter topic hangs (after migrations and settings went through).
    broker.pause();
    let metrics = format!("127.0.0.1:{}", free_port());
    let analytics = Running::start(
        &env,
        &[
            "--metrics-addr",
            &metrics,
            "--session-timeout-ms",
            "1000",
            "--unassigned-sessions",
            "3",
        ],
        &[],
    );
    let reason = wait_until(
        Duration::from_secs(60),
        "/healthz to report the hung startup step",
        || {
            let metrics = metrics.clone();
            async move {
                match healthz(&metrics) {
                    Some((503, body)) if body.contains("dead-letter topic") => Some(body),
                    _ => None,
                }
            }
        },
    )
    .await;
    assert!(reason.contains("has not finished"), "{reason}");
    let log = analytics.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("startup step \"dead-letter topic\"")),
        "no WARN names the step:\n{log}"
    );
    // The broker answers again: the step ends and /healthz turns green.
    broker.resume();
    wait_until(
        Duration::from_secs(90),
        "/healthz to turn healthy after the broker came back",
        || {
            let metrics = metrics.clone();
            async move { matches!(healthz(&metrics), Some((200, _))).then_some(()) }
        },
    )
    .await;
    // Dropping the private broker kills it.
    drop(broker);
}

/// A column whose type drifted from what this build reads (here the stored
/// offsets' `next_offset`, bigint -> numeric) is a definite error read with
/// `try_get`, not a `Row::get` panic: the process exits non-zero naming the
/// column, without retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_type_drift_stops_the_process_with_a_definite_error() {
    let Some(stack) = stack() else { return };
    let env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    analytics::store::migrate(&env.postgres_url, analytics::store::MIGRATION_LOCK_TIMEOUT)
        .await
        .unwrap();
    let client = env.postgres().await;
    client
        .batch_execute("ALTER TABLE consumer_offsets ALTER COLUMN next_offset TYPE numeric")
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, 0, 0)",
            &[&env.group, &env.topics.users],
        )
        .await
        .unwrap();
    let mut analytics = Running::start(&env, &["--assignment", "all"], &[]);
    let status = analytics.exit(EXIT_WITHIN).await;
    let log = analytics.log();
    assert!(!status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("cannot read the stored offsets")
            && l.contains("column 2 cannot be read")),
        "no ERROR names the unreadable column:\n{log}"
    );
    assert!(!log.contains("panicked"), "a panic:\n{log}");
    assert!(
        !log.contains("cannot read stored offsets; retrying"),
        "a definite error was retried:\n{log}"
    );
}

/// Sets the flag when dropped: an in-process instance stops even when an
/// assertion fails (the runtime's drop waits for its consumer thread).
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A push sweep that keeps failing (its outbox table is gone) is not silent:
/// health names the pushes, while batches go on committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_push_sweep_shows_on_health() {
    let Some(stack) = stack() else { return };
    let mut env = setup(stack).await;
    create_topics(&env.stack, &env.topics).await;
    analytics::store::migrate(&env.postgres_url, analytics::store::MIGRATION_LOCK_TIMEOUT)
        .await
        .unwrap();
    let client = env.postgres().await;
    client
        .batch_execute("DROP TABLE push_outbox")
        .await
        .unwrap();
    feed_a_purchase(&mut env).await;
    let config = env.config(&["--assignment", "all", "--push-interval-ms", "100"]);
    let health = pipeline::telemetry::Health::default();
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = StopOnDrop(shutdown.clone());
    let task = tokio::spawn(analytics::run(config, health.clone(), shutdown.clone()));
    let problem = wait_until(Duration::from_secs(60), "health to name the pushes", || {
        let health = health.clone();
        async move { health.problem().filter(|p| p.contains("pushes:")) }
    })
    .await;
    assert!(problem.contains("push sweep/publish failing"), "{problem}");
    // The batches are not held up by it.
    env.wait_caught_up(Duration::from_secs(60)).await;
    drop(stop);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("analytics stops on shutdown")
        .unwrap()
        .unwrap();
}
