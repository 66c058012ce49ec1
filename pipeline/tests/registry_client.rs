//! The registry client against fake registries: one that accepts connections
//! and never answers, one that refuses credentials, one that fails then
//! recovers. No stack needed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use pipeline::backoff::Backoff;
use pipeline::registry::{RegistryArgs, RegistryClient, RegistryError, HEALTH_NAME};
use pipeline::telemetry::Health;
use tokio::net::TcpListener;

/// Short waits so the tests finish quickly; nothing asserts on elapsed time.
fn args(url: String, retries: u32) -> RegistryArgs {
    RegistryArgs {
        timeout_ms: 200,
        connect_timeout_ms: 200,
        retries,
        ..RegistryArgs::new(url)
    }
}

fn quick_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(5))
}

/// A registry that accepts every connection and never answers (keeps the
/// sockets open so the client sees silence, not a reset).
async fn hung_registry() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://{addr}"), accepted)
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_hung_registry_times_out_as_transient_and_shows_on_health() {
    let (url, accepted) = hung_registry().await;
    let health = Health::default();
    health.healthy();
    let client = RegistryClient::with_backoff(&args(url.clone(), 2), quick_backoff())
        .unwrap()
        .with_health(health.clone());

    let error = client
        .register("orders-value", r#""string""#)
        .await
        .unwrap_err();

    assert!(
        matches!(error, RegistryError::Timeout { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.is_transient());
    assert_eq!(error.status(), None);
    assert_eq!(client.timeouts(), 3, "every attempt is counted");
    assert!(accepted.load(Ordering::SeqCst) >= 1, "the fake was reached");
    let message = error.to_string();
    assert!(message.contains("did not answer"), "{message}");
    assert!(message.contains(&url), "{message}");
    let problem = health.problem().expect("/healthz must turn red");
    assert!(
        problem.starts_with(&format!("{HEALTH_NAME}: ")),
        "{problem}"
    );
    assert!(problem.contains("did not answer"), "{problem}");

    // Schema fetches by id time out the same way.
    let error = client.schema(7).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
}

#[test]
fn timeouts_are_counted_in_the_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A current-thread runtime runs the client on this thread, where the
    // local recorder is installed.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (url, _) = hung_registry().await;
            let client = RegistryClient::with_backoff(&args(url, 1), quick_backoff()).unwrap();
            client.schema(1).await.unwrap_err();
        })
    });
    let text = handle.render();
    assert!(
        text.contains(r#"schema_registry_errors_total{kind="timeout"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_401_is_definite_with_the_status_and_what_to_fix() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let url = serve(Router::new().route(
        "/subjects/{subject}/versions",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::UNAUTHORIZED,
                    r#"{"error_code":401,"message":"Unauthorized"}"#,
                )
            }
        }),
    ))
    .await;
    let health = Health::default();
    let client = RegistryClient::with_backoff(&args(url, 3), quick_backoff())
        .unwrap()
        .with_health(health.clone());

    let error = client.register("s-value", r#""int""#).await.unwrap_err();

    assert!(!error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(401));
    let message = error.to_string();
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(message.contains("credentials"), "{message}");
    assert!(
        message.contains("--schema-registry-basic-auth-user-info"),
        "{message}"
    );
    assert!(!message.contains("unavailable"), "{message}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a definite error is not retried"
    );
    assert!(health.problem().unwrap().contains("HTTP 401"));
}

#[tokio::test]
async fn definite_and_transient_statuses() {
    for (status, transient) in [
        (403, false),
        (404, false),
        (409, false),
        (422, false),
        (500, true),
        (503, true),
        (429, true),
    ] {
        let url = serve(Router::new().route(
            "/subjects/{subject}/versions",
            post(move || async move { (StatusCode::from_u16(status).unwrap(), "no") }),
        ))
        .await;
        let client = RegistryClient::with_backoff(&args(url, 1), quick_backoff()).unwrap();
        let error = client.register("s-value", r#""int""#).await.unwrap_err();
        assert_eq!(error.is_transient(), transient, "{status}: {error}");
        assert_eq!(error.status(), Some(status));
        assert!(error.to_string().contains(&format!("HTTP {status}")));
    }
}

#[tokio::test]
async fn transient_failures_are_retried_then_health_recovers_and_ids_are_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let url = serve(Router::new().route(
        "/subjects/{subject}/versions",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting".to_owned())
                } else {
                    (StatusCode::OK, r#"{"id": 42}"#.to_owned())
                }
            }
        }),
    ))
    .await;
    let health = Health::default();
    let client = RegistryClient::with_backoff(&args(url, 2), quick_backoff())
        .unwrap()
        .with_health(health.clone());

    assert_eq!(client.register("s-value", r#""int""#).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        health.problem(),
        None,
        "a success clears the registry problem"
    );
    assert_eq!(client.register("s-value", r#""int""#).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the id is cached");
}

#[tokio::test]
async fn schemas_by_id_are_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let url = serve(Router::new().route(
        "/schemas/ids/{id}",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { r#"{"schema": "\"string\""}"# }
        }),
    ))
    .await;
    let client = RegistryClient::new(&args(url, 0)).unwrap();
    assert_eq!(&*client.schema(5).await.unwrap(), r#""string""#);
    assert_eq!(&*client.schema(5).await.unwrap(), r#""string""#);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// `Authorization` of each request, for the basic-auth test.
async fn auth_echo() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let url = serve(Router::new().route(
        "/schemas/ids/{id}",
        get(move |headers: HeaderMap| {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            log.lock().unwrap().push(auth);
            async { r#"{"schema": "\"int\""}"# }
        }),
    ))
    .await;
    (url, seen)
}

#[tokio::test]
async fn basic_auth_from_the_flag_or_the_url_userinfo() {
    let (url, seen) = auth_echo().await;
    let mut with_flag = args(url.clone(), 0);
    with_flag.basic_auth_user_info = Some("u:p".into());
    RegistryClient::new(&with_flag)
        .unwrap()
        .schema(1)
        .await
        .unwrap();
    let userinfo = url.replace("http://", "http://u:p@");
    let in_url = args(userinfo, 0);
    RegistryClient::new(&in_url)
        .unwrap()
        .schema(1)
        .await
        .unwrap();
    // base64("u:p") = "dTpw"
    assert_eq!(*seen.lock().unwrap(), vec!["Basic dTpw", "Basic dTpw"]);
    let shown = format!("{with_flag:?} {in_url:?} {}", in_url.describe());
    assert!(!shown.contains("u:p"), "{shown}");
}

#[tokio::test]
async fn errors_never_carry_the_credentials() {
    let (url, _) = hung_registry().await;
    let mut a = args(url.replace("http://", "http://user:url-pw-123@"), 0);
    a.basic_auth_user_info = Some("user:auth-pw-456".into());
    let client = RegistryClient::new(&a).unwrap();
    let error = client.register("s-value", r#""int""#).await.unwrap_err();
    let shown = format!("{error} {error:?} {client:?}");
    assert!(!shown.contains("url-pw-123"), "{shown}");
    assert!(!shown.contains("auth-pw-456"), "{shown}");

    // A refused connection (nothing listens on port 1) names no password either.
    let refused = args("http://user:url-pw-123@127.0.0.1:1".into(), 0);
    let error = RegistryClient::new(&refused)
        .unwrap()
        .schema(1)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("url-pw-123"), "{shown}");
}

/// What a service serves: `/healthz` 503 naming the registry, and the
/// timeouts in `/metrics` (the only test here that installs the global
/// recorder, as a service does once).
#[tokio::test]
async fn a_hung_registry_turns_healthz_503_and_shows_in_metrics() {
    let health = Health::default();
    let telemetry = pipeline::telemetry::serve(
        &pipeline::telemetry::TelemetryArgs {
            metrics_addr: "127.0.0.1:0".into(),
            log_format: "text".into(),
        },
        health.clone(),
    )
    .await
    .unwrap();
    let endpoint = telemetry.addr.unwrap();
    let healthz = || async {
        let response = reqwest::get(format!("http://{endpoint}/healthz"))
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(healthz().await.0, 200);

    let (url, _) = hung_registry().await;
    let client = RegistryClient::with_backoff(&args(url, 0), quick_backoff())
        .unwrap()
        .with_health(health.clone());
    client.schema(3).await.unwrap_err();

    let (status, body) = healthz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("schema-registry: "), "{body}");
    assert!(body.contains("did not answer"), "{body}");
    let metrics = reqwest::get(format!("http://{endpoint}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Other tests of this binary count into the same recorder: at least ours.
    let timeouts: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"schema_registry_errors_total{kind="timeout"} "#))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no timeout counter in {metrics}"));
    assert!(timeouts >= 1.0, "{metrics}");
}
