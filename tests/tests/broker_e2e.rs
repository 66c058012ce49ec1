//! The pipeline against the local broker's failures, end to end, as real
//! processes (see `pipeline_e2e.rs` for the harness and the ground truth):
//!
//! - The broker itself restarts under the running pipeline, first cleanly
//!   (SIGTERM) and later by SIGKILL, each time started again with its data.
//!   The stack's memory broker would lose every topic, and the stack's
//!   persistent broker is shared, so this test starts a private broker from
//!   the persistent lane's binary (tansu with libsql storage). analytics must
//!   carry on by itself; cdc exits on a broker error it calls transient (a
//!   supervisor restarts it, as compose does) and must then resume from the
//!   offsets it stored on the broker; nothing may be lost or doubled.
//!   Ignored on tansu 0.6.0, whose libsql storage panics at the first
//!   idempotent produce after a restart (analytics alone is covered by
//!   analytics' `live::a_broker_restart_with_its_data_is_ridden_out`).
//! - analytics SIGKILLed twice within seconds, on the stack's memory broker,
//!   run as `make demo` runs it (its `ANALYTICS_*` settings are read from
//!   scripts/demo.sh): a third instance resumes from the offsets in Postgres.
//!   In a consumer group, tansu's coordinator can stall for good after such
//!   kills, so the demo reads every partition itself.

use std::path::PathBuf;
use std::time::Duration;

use e2e::harness::process::{workspace_root, Process};
use e2e::harness::table::Cell;
use e2e::harness::verify::{assert_outputs_match, assert_source_matches_loadgen, Verified};
use e2e::harness::world::{Traffic, World};
use mysql_async::prelude::Queryable;
use pipeline::testing::outage::{broker_binary_for, free_port, PrivateBroker};
use pipeline::testing::{stack, unique_name, wait_until, Broker, Stack};

const LOADGEN_TIMEOUT: Duration = Duration::from_secs(180);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// From a broker restart to the pipeline moving data again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Few users, so that some reach high_value_users' lifetime value (10000).
fn traffic(seed: u64) -> Traffic {
    Traffic {
        seed,
        items: 200,
        users: 25,
        purchases: 450,
        purchases_per_sec: 50,
        pageviews: 3000,
        pageviews_per_sec: 330,
        mutations: true,
    }
}

/// Largest purchase id in MySQL: how far loadgen has got.
async fn purchases_made(world: &World) -> i64 {
    let mut conn = world.mysql().await;
    let id: Option<i64> = conn
        .query_first("SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM purchases")
        .await
        .expect("read progress");
    conn.disconnect().await.ok();
    id.unwrap_or(0)
}

/// Largest purchase id analytics has mirrored (0 before its schema exists).
async fn purchases_mirrored(pg: &tokio_postgres::Client) -> i64 {
    pg.query_one("SELECT COALESCE(MAX(id), 0)::bigint FROM purchases", &[])
        .await
        .map_or(0, |r| r.get(0))
}

/// Sum of the offsets analytics committed: grows with every batch it commits.
async fn offsets_committed(pg: &tokio_postgres::Client, group: &str) -> i64 {
    pg.query_one(
        "SELECT COALESCE(SUM(next_offset), 0)::bigint FROM consumer_offsets WHERE group_id = $1",
        &[&group],
    )
    .await
    .map_or(0, |r| r.get(0))
}

fn rows<'t>(v: &'t Verified, name: &str) -> &'t [Vec<Cell>] {
    &v.outputs
        .iter()
        .find(|t| t.name.starts_with(name))
        .unwrap_or_else(|| panic!("no output named {name}"))
        .rows
}

/// The outputs compared are not trivially empty.
fn assert_exercised(v: &Verified) {
    for output in [
        "purchase_summary",
        "item_summary",
        "item_pageviews",
        "conversion_funnel",
        "top_sellers",
        "user_activity",
    ] {
        assert!(
            !rows(v, output).is_empty(),
            "{output} is empty: nothing was compared"
        );
    }
}

/// Restarts cdc when it exited, as compose's restart policy does: cdc stops on
/// a broker error it calls transient ("a restart may succeed").
///
/// # Panics
/// When cdc exited for any other reason.
fn supervise(cdc: &mut Process) {
    if let Some(status) = cdc.exited() {
        let log = cdc.current_log();
        assert!(
            log.contains("transient (a restart may succeed)"),
            "cdc exited ({status}) for a reason other than a transient broker error:\n{}",
            cdc.tail(30)
        );
        eprintln!("e2e: cdc exited on a transient broker error ({status}); restarting it");
        cdc.kill_and_restart();
    }
}

/// [`wait_until`] that restarts cdc whenever it exited meanwhile.
async fn wait_supervised<F, Fut>(cdc: &mut Process, timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        supervise(cdc);
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// cdc and analytics on a broker that is SIGKILLed twice, each time started
/// again with its data: analytics carries on by itself, cdc (restarted when
/// it stops on the broker error) resumes from the offsets it stored on the
/// broker instead of snapshotting again, every output equals the ground truth
/// and loadgen's pageviews arrive exactly once.
///
/// analytics reads every partition itself here, as `make demo` runs it:
/// tansu 0.6.0 with libsql storage panics in its storage task on a consumer
/// group update conflict (`service.rs:337`, `unreachable!()` converting an
/// `UpdateGroupDetail` error), after which it answers every request with an
/// error until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_equal_ground_truth_when_the_broker_is_killed_and_restarted_with_its_data() {
    broker_restarts_with_its_data(&[Restart::Kill, Restart::Kill]).await;
}

/// The same with a SIGTERM first, as the issue asks; ignored (run it with
/// `--ignored`): tansu 0.6.0 (libsql) cannot pass it. Reproduced with one
/// idempotent librdkafka producer and nothing else: during tansu's own
/// SIGTERM shutdown its listener still answers produce requests while its
/// storage task is gone (`UnableToSend`, an unknown server error to the
/// client); librdkafka's idempotent producer answers that by resetting its
/// producer id, over and over (epoch 0 to 1,549 within 10 s), with epochs
/// the stopping broker never stored. After the restart the producer's first
/// produce carries such an epoch and tansu's storage task panics
/// (`lite.rs:503` "more or less than one row" in `idempotent_message_check`),
/// answering every request with an error from then on. A SIGKILL leaves no
/// such window: the same producer goes on at epoch 0 after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tansu 0.6.0 (libsql) panics on an idempotent produce after its own SIGTERM shutdown; see the doc comment"]
async fn outputs_equal_ground_truth_when_the_broker_restarts_with_its_data() {
    broker_restarts_with_its_data(&[Restart::Term, Restart::Kill]).await;
}

#[derive(Clone, Copy, PartialEq)]
enum Restart {
    Term,
    Kill,
}

async fn broker_restarts_with_its_data(restarts: &[Restart]) {
    let Some(stack) = stack() else { return };
    let Some(binary) = broker_binary_for(Broker::Persistent) else {
        return;
    };
    let dir = std::env::temp_dir().join(unique_name("e2e-broker"));
    let mut broker = PrivateBroker::start_persistent(&binary, free_port(), &dir).await;
    let private = Stack {
        kafka_bootstrap_servers: broker.bootstrap_servers(),
        broker: Broker::Persistent,
        ..stack
    };
    let world = World::new(private, false).await;
    eprintln!(
        "e2e: private broker (libsql) on {}, data in {}",
        broker.bootstrap_servers(),
        dir.display()
    );
    let traffic = traffic(41);

    let mut cdc = world.start_cdc();
    let mut analytics = start_demo_analytics(&world);
    let mut loadgen = world.start_loadgen(&traffic);
    let pg = world.postgres().await;
    for (&restart, at) in restarts.iter().zip([120, 300]) {
        let crash = restart == Restart::Kill;
        wait_supervised(
            &mut cdc,
            LOADGEN_TIMEOUT,
            &format!("purchase {at}"),
            || async { purchases_made(&world).await >= at },
        )
        .await;
        // Both are past their start: cdc streams, analytics commits.
        wait_supervised(
            &mut cdc,
            RECOVERY_TIMEOUT,
            "cdc and analytics to move purchases",
            || async { purchases_mirrored(&pg).await > 0 },
        )
        .await;
        let made = purchases_made(&world).await;
        let committed = offsets_committed(&pg, &world.group_id).await;
        if crash {
            broker.kill();
        } else {
            broker.stop().await;
        }
        eprintln!(
            "e2e: broker {} at purchase {made} (analytics' offsets sum {committed}); starting it again",
            if crash { "SIGKILLed" } else { "stopped with SIGTERM" }
        );
        broker.start_again().await;
        wait_supervised(
            &mut cdc,
            RECOVERY_TIMEOUT,
            "a purchase made after the broker restart to reach analytics",
            || async { purchases_mirrored(&pg).await > made },
        )
        .await;
        analytics.assert_running();
    }
    wait_supervised(&mut cdc, LOADGEN_TIMEOUT, "loadgen to finish", || {
        let done = loadgen.exited().is_some();
        async move { done }
    })
    .await;
    loadgen.wait_success(LOADGEN_TIMEOUT).await;
    supervise(&mut cdc);

    let verified =
        assert_outputs_match(&world, &mut [&mut cdc, &mut analytics], CONVERGE_TIMEOUT).await;
    assert_source_matches_loadgen(&verified.source, &loadgen.log_text());
    assert_exercised(&verified);
    assert_eq!(
        analytics.starts(),
        1,
        "analytics rode out the restarts by itself"
    );
    assert_eq!(
        broker.starts(),
        restarts.len() as u32 + 1,
        "first start and the restarts"
    );
    // Every later cdc found the offsets it stored on the broker.
    let log = cdc.log_text();
    let starts: Vec<&str> = log.split("===== e2e: start #").skip(2).collect();
    eprintln!("e2e: cdc was restarted {} time(s)", starts.len());
    for start in starts {
        assert!(
            start.contains("resuming from the stored position") && !start.contains("snapshot: locking"),
            "a restarted cdc did not resume from its stored offsets (they were lost with the broker restart):\n{}",
            e2e::harness::process::tail(start, 30)
        );
    }
    drop(broker);
    std::fs::remove_dir_all(&dir).ok();
}

/// The `ANALYTICS_*` settings `make demo` starts analytics with (the words
/// `ANALYTICS_X=value` of scripts/demo.sh's `start analytics` command).
fn demo_analytics_env() -> Vec<(String, String)> {
    let script: PathBuf = workspace_root().join("scripts/demo.sh");
    let text = std::fs::read_to_string(&script)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
    let mut command = String::new();
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("start analytics"));
    for line in lines.by_ref() {
        command.push_str(line.trim_end_matches('\\'));
        command.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    let env: Vec<(String, String)> = command
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.starts_with("ANALYTICS_"))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    assert!(
        !env.is_empty(),
        "no `start analytics ANALYTICS_...=...` command found in {}",
        script.display()
    );
    env
}

/// analytics as `make demo` runs it, on this world.
fn start_demo_analytics(world: &World) -> Process {
    let mut spec = world.analytics_spec();
    // Later entries win (Command::envs).
    spec.env.extend(demo_analytics_env());
    world.start(spec)
}

/// Loadgen's traffic while analytics is killed twice.
fn kill_traffic() -> Traffic {
    Traffic {
        purchases: 400,
        purchases_per_sec: 40,
        pageviews: 4000,
        pageviews_per_sec: 400,
        ..traffic(53)
    }
}

/// When the second instance is killed.
#[derive(Debug, Clone, Copy)]
enum SecondKill {
    /// Once it took partitions.
    Assigned,
    /// This long after it started, whether or not it has partitions (in a
    /// group: while the group is still re-forming).
    After(Duration),
}

/// SIGKILLs analytics once it committed a batch, and its successor a few
/// seconds after it started: the third instance is left to run.
async fn kill_twice_within_seconds(
    world: &World,
    pg: &tokio_postgres::Client,
    analytics: &mut Process,
    second: SecondKill,
) {
    wait_until(
        RECOVERY_TIMEOUT,
        "the first analytics to commit a batch",
        || async { (offsets_committed(pg, &world.group_id).await > 0).then_some(()) },
    )
    .await;
    analytics.assert_running();
    analytics.kill_and_restart();
    let started = std::time::Instant::now();
    wait_until(
        Duration::from_secs(60),
        "the moment to kill the second analytics",
        || {
            let log = analytics.current_log();
            async move {
                let due = match second {
                    SecondKill::Assigned => log.contains("assigned; starting at the stored offset"),
                    SecondKill::After(after) => {
                        log.contains("analytics starting") && started.elapsed() >= after
                    }
                };
                due.then_some(())
            }
        },
    )
    .await;
    analytics.assert_running();
    analytics.kill_and_restart();
    eprintln!(
        "e2e: analytics SIGKILLed twice, the second {:.1}s after it started",
        started.elapsed().as_secs_f64()
    );
}

/// `make demo`'s analytics (self-assigned partitions: no group to stall on
/// the local broker) SIGKILLed twice within seconds: the third instance
/// resumes from the offsets in Postgres and every output equals the ground
/// truth.
///
/// `make test` runs it on its own, last (`--ignored`): run before
/// `pipeline_e2e` in the same `cargo test`, that binary's kill test saw its
/// third analytics never assigned by the shared broker's group coordinator
/// (2 of 2 runs; not once with this test deferred).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run last and on its own by make test; see the doc comment"]
async fn a_third_analytics_resumes_after_two_quick_kills_as_make_demo_runs_it() {
    let Some(stack) = stack() else { return };
    let world = World::new(stack, false).await;
    let env = demo_analytics_env();
    assert!(
        env.iter()
            .any(|(k, v)| k == "ANALYTICS_ASSIGNMENT" && v == "all"),
        "make demo must not run analytics in a consumer group on the local broker: {env:?}"
    );
    let traffic = kill_traffic();
    let mut cdc = world.start_cdc();
    let mut analytics = start_demo_analytics(&world);
    let mut loadgen = world.start_loadgen(&traffic);
    let pg = world.postgres().await;
    kill_twice_within_seconds(&world, &pg, &mut analytics, SecondKill::Assigned).await;
    loadgen.wait_success(LOADGEN_TIMEOUT).await;

    let verified =
        assert_outputs_match(&world, &mut [&mut cdc, &mut analytics], CONVERGE_TIMEOUT).await;
    assert_source_matches_loadgen(&verified.source, &loadgen.log_text());
    assert_exercised(&verified);
    assert_eq!(analytics.starts(), 3, "first start and two kills");
}

/// The `/healthz` address an instance logged at its latest start.
fn healthz_url(service: &Process) -> Option<String> {
    let log = service.current_log();
    let line = log
        .lines()
        .find(|l| l.contains("serving /metrics and /healthz"))?;
    let start = line.find("addr=Some(")? + "addr=Some(".len();
    let end = start + line[start..].find(')')?;
    Some(format!("http://{}/healthz", &line[start..end]))
}

/// The kills that stall tansu's group coordinator (A killed, B killed 4 s
/// after it started, then C), in a consumer group on the memory
/// broker. Whatever the broker does, C's /healthz tells the truth: when C
/// gets partitions it is healthy; when it is left holding none past its
/// limit (3 session timeouts of 6 s here) while the topics exist, it logs the
/// WARN naming its group and /healthz answers 503 with the reason; when it
/// hangs in a startup step before its consumer loop, the startup watch logs
/// the WARN naming the step and /healthz answers 503 with that reason.
/// Measured (3 of 3 runs): tansu's coordinator gives C an EMPTY assignment
/// for good; that used to pass for "more members than partitions" and C sat
/// silent with /healthz green (gdb: in its consumer loop, nothing logged).
/// Now an empty assignment counts as waiting unless the group's size
/// explains it.
///
/// `make test` runs it on its own after the other kill tests (`--ignored`):
/// a stalled coordinator may stay stalled for other groups on the shared
/// broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run last and on its own by make test; see the doc comment"]
async fn a_stalled_group_is_loud() {
    let Some(stack) = stack() else { return };
    let world = World::new(stack, false).await;
    let traffic = kill_traffic();
    let mut cdc = world.start_cdc();
    let mut analytics = world.start_analytics();
    let mut loadgen = world.start_loadgen(&traffic);
    let pg = world.postgres().await;
    // B dies 4 s after it started, before A's 6 s session ran out: the group
    // is still re-forming (the measured stall's sequence).
    kill_twice_within_seconds(
        &world,
        &pg,
        &mut analytics,
        SecondKill::After(Duration::from_secs(4)),
    )
    .await;
    /// What the third instance did.
    enum Outcome {
        Assigned,
        GroupStalled,
        StartupStalled,
    }
    let outcome = wait_until(
        Duration::from_secs(90),
        "the third analytics to get partitions or report that it waits",
        || {
            let log = analytics.current_log();
            async move {
                if log.contains("assigned; starting at the stored offset") {
                    Some(Outcome::Assigned)
                } else if log.contains("no partition assigned for") {
                    Some(Outcome::GroupStalled)
                } else if log.contains("startup step") {
                    Some(Outcome::StartupStalled)
                } else {
                    None
                }
            }
        },
    )
    .await;
    let url = healthz_url(&analytics).expect("analytics logged its /healthz address");
    let unhealthy_because = |why: &'static str| {
        let url = url.clone();
        async move {
            wait_until(Duration::from_secs(10), "/healthz to answer 503", || {
                let url = url.clone();
                async move {
                    let r = reqwest::get(&url).await.ok()?;
                    if r.status() != 503 {
                        return None;
                    }
                    r.text().await.ok()
                }
            })
            .await
            .contains(why)
        }
    };
    if let Outcome::StartupStalled = outcome {
        eprintln!("e2e: the third analytics hangs in a startup step");
        assert!(
            analytics.current_log().contains("WARN"),
            "the WARN names the step:\n{}",
            analytics.tail(10)
        );
        assert!(
            unhealthy_because("startup step").await,
            "/healthz names the step"
        );
    } else if let Outcome::Assigned = outcome {
        eprintln!("e2e: the group re-formed: the third analytics got partitions");
        wait_until(Duration::from_secs(60), "/healthz to answer 200", || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                (r.status() == 200).then_some(())
            }
        })
        .await;
    } else {
        eprintln!("e2e: the group stalled: the third analytics holds no partition");
        let log = analytics.current_log();
        assert!(
            log.contains(&world.group_id) && log.contains("WARN"),
            "the WARN names the group it waits for:\n{}",
            analytics.tail(10)
        );
        // The WARN is logged just before /healthz turns.
        assert!(
            unhealthy_because("waiting for consumer group").await,
            "/healthz says why"
        );
    }
    analytics.assert_running();
    cdc.assert_running();
    loadgen.terminate();
}
