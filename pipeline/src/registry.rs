//! The one client of the Confluent-compatible schema registry.
//!
//! [`RegistryArgs`] are the flags every service shares; [`RegistryClient`] is
//! what cdc (registers its table schemas), analytics (fetches writer schemas,
//! registers its push topics' schemas) and the test fixtures use.
//!
//! Invariants:
//! - No request waits forever: connecting is bounded by
//!   `--schema-registry-connect-timeout-ms` and a whole request by
//!   `--schema-registry-timeout-ms`. A hung registry therefore surfaces as a
//!   [`RegistryError::Timeout`], is counted in
//!   `schema_registry_errors_total{kind="timeout"}`, logged, and shown on
//!   `/healthz` (through [`Health::degraded`]) until a request succeeds.
//! - Transient failures (timeouts, connection errors, 5xx, 408, 429) are
//!   retried `--schema-registry-retries` times with [`Backoff`]; definite ones
//!   (401, 403, 404, 409, 422 and other 4xx) are returned at once with the
//!   HTTP status and what to fix.
//! - Only successes are cached: ids per (subject, schema text), schema texts
//!   per id (ids are immutable, so neither cache needs invalidation), and an
//!   outage never poisons a cache.
//! - Credentials (basic auth, or userinfo in the URL) never appear in an error,
//!   a log line or `Debug` output.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::secret::{Secret, SecretUrl};
use crate::telemetry::Health;

/// The name under which registry trouble shows on `/healthz`.
pub const HEALTH_NAME: &str = "schema-registry";

/// Schema registry location, credentials and patience. Flatten into a
/// service's clap config.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Base URL of the registry (Confluent REST API). Userinfo in the URL
    /// (`http://user:password@host:8081`) is used as basic auth.
    #[arg(
        long = "schema-registry-url",
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081",
        hide_env_values = true
    )]
    pub url: SecretUrl,
    /// Basic auth as `user:password` (Confluent's `basic.auth.user.info`).
    #[arg(
        long = "schema-registry-basic-auth-user-info",
        env = "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        hide_env_values = true
    )]
    pub basic_auth_user_info: Option<Secret>,
    /// Longest wait for one registry request (connect, send, answer).
    #[arg(
        long = "schema-registry-timeout-ms",
        env = "SCHEMA_REGISTRY_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub timeout_ms: u64,
    /// Longest wait for the TCP/TLS connection to the registry.
    #[arg(
        long = "schema-registry-connect-timeout-ms",
        env = "SCHEMA_REGISTRY_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub connect_timeout_ms: u64,
    /// Retries of a request that failed transiently (timeout, connection
    /// error, 5xx) before the caller sees the error.
    #[arg(
        long = "schema-registry-retries",
        env = "SCHEMA_REGISTRY_RETRIES",
        default_value_t = 3
    )]
    pub retries: u32,
}

impl RegistryArgs {
    /// Defaults for a registry at `url` (tests, tools).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretUrl::new(url),
            basic_auth_user_info: None,
            timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            retries: 3,
        }
    }

    /// `(user, password)` when basic auth is configured.
    pub fn basic_auth(&self) -> Option<(String, Option<Secret>)> {
        let info = self
            .basic_auth_user_info
            .as_ref()
            .map(Secret::expose)
            .filter(|i| !i.is_empty())?;
        Some(match info.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(Secret::new(password))),
            None => (info.to_owned(), None),
        })
    }

    /// One line describing where the client connects, with secrets masked.
    pub fn describe(&self) -> String {
        let auth = match self.basic_auth() {
            Some((user, _)) => format!(" user={user} password=***"),
            None => String::new(),
        };
        format!(
            "schema-registry={}{auth} timeout={}ms connect-timeout={}ms retries={}",
            self.url, self.timeout_ms, self.connect_timeout_ms, self.retries
        )
    }
}

/// Why a registry request failed, by how to recover: the first three are
/// transient (retry later), the rest definite (fix the cause).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Transient: no answer within the request timeout.
    #[error("schema registry {url} did not answer {what} within {timeout:?} ({attempts} attempts); check that it is up, or raise --schema-registry-timeout-ms")]
    Timeout {
        url: String,
        what: String,
        timeout: Duration,
        attempts: u32,
    },
    /// Transient: connection refused or reset, DNS, TLS handshake.
    #[error("schema registry {url} unreachable for {what} ({attempts} attempts): {reason}")]
    Unreachable {
        url: String,
        what: String,
        reason: String,
        attempts: u32,
    },
    /// Transient: a 5xx, 408 or 429, or an answer that is not the API's.
    #[error(
        "schema registry {url} failing for {what} ({attempts} attempts): HTTP {status}: {body}"
    )]
    Failing {
        url: String,
        what: String,
        status: u16,
        body: String,
        attempts: u32,
    },
    /// Transient: a 2xx whose body is not what the API promises (a proxy's
    /// error page, a registry mid-restart).
    #[error("schema registry {url} answered {what} with {body:?}: {reason}")]
    BadAnswer {
        url: String,
        what: String,
        body: String,
        reason: String,
    },
    /// Definite: the registry refused the request; retrying cannot help.
    #[error("schema registry {url} refused {what}: HTTP {status}: {body}; {hint}")]
    Refused {
        url: String,
        what: String,
        status: u16,
        body: String,
        hint: &'static str,
    },
    /// Definite: the HTTP client could not be built (TLS backend).
    #[error("cannot create the schema registry HTTP client: {0}")]
    Client(String),
}

impl RegistryError {
    /// Whether a later attempt may succeed without an operator.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::Failing { .. }
                | Self::BadAnswer { .. }
        )
    }

    /// The HTTP status the registry answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Failing { status, .. } | Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Short class, the `kind` label of `schema_registry_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::Failing { .. } => "server",
            Self::BadAnswer { .. } => "bad-answer",
            Self::Refused { .. } => "refused",
            Self::Client(_) => "client",
        }
    }
}

/// What to fix for a definite refusal.
fn hint(status: u16) -> &'static str {
    match status {
        401 => "the registry rejected the credentials: check --schema-registry-basic-auth-user-info (SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO) or the userinfo of --schema-registry-url",
        403 => "the credentials lack permission: grant the principal read and write on the subject",
        404 => "not found: check --schema-registry-url (a missing path prefix?) and that the subject or schema id exists",
        409 => "the schema is incompatible with the subject's earlier versions: check the subject's compatibility level",
        422 => "the registry considers the schema invalid: check the schema and the subject's compatibility level",
        _ => "the registry refused the request: check --schema-registry-url and the credentials",
    }
}

/// Whether an HTTP status is worth retrying.
fn transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// What a request asks for: a 404 means something else for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Register,
    ById,
}

/// One attempt's failure, before attempts are counted.
enum Failure {
    Timeout,
    Unreachable(String),
    Failing(u16, String),
    Refused(u16, String),
}

impl Failure {
    fn transient(&self) -> bool {
        !matches!(self, Self::Refused(..))
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable(_) => "unreachable",
            Self::Failing(..) => "server",
            Self::Refused(..) => "refused",
        }
    }
}

/// The one schema-registry client. Cheap to clone (clones share caches,
/// counters and health).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretUrl,
    base: String,
    auth: Option<(String, Option<Secret>)>,
    http: reqwest::Client,
    timeout: Duration,
    retries: u32,
    backoff: Backoff,
    health: Option<Health>,
    ids: Mutex<HashMap<(String, String), u32>>,
    schemas: Mutex<HashMap<u32, Arc<str>>>,
    timeouts: AtomicU64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.inner.url)
            .field("timeout", &self.inner.timeout)
            .field("retries", &self.inner.retries)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct IdAnswer {
    id: u32,
}

#[derive(serde::Deserialize)]
struct SchemaAnswer {
    schema: String,
}

impl RegistryClient {
    /// A client for `args`, with the default retry waits (100 ms doubling to
    /// 2 s between attempts).
    pub fn new(args: &RegistryArgs) -> Result<Self, RegistryError> {
        Self::with_backoff(
            args,
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
        )
    }

    /// A client with its own retry waits (tests use short ones).
    pub fn with_backoff(args: &RegistryArgs, backoff: Backoff) -> Result<Self, RegistryError> {
        let timeout = Duration::from_millis(args.timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(args.connect_timeout_ms.max(1)))
            .timeout(timeout)
            .build()
            .map_err(|e| RegistryError::Client(error_chain(&e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: args.url.clone(),
                base: args.url.expose().trim_end_matches('/').to_owned(),
                auth: args.basic_auth(),
                http,
                timeout,
                retries: args.retries,
                backoff,
                health: None,
                ids: Mutex::default(),
                schemas: Mutex::default(),
                timeouts: AtomicU64::new(0),
            }),
        })
    }

    /// Reports registry trouble on `health` (as [`HEALTH_NAME`]) until the
    /// next success.
    pub fn with_health(mut self, health: Health) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.health = Some(health),
            // Already shared: clone the settings, keep nothing cached.
            None => {
                let i = &self.inner;
                self.inner = Arc::new(Inner {
                    url: i.url.clone(),
                    base: i.base.clone(),
                    auth: i.auth.clone(),
                    http: i.http.clone(),
                    timeout: i.timeout,
                    retries: i.retries,
                    backoff: i.backoff.clone(),
                    health: Some(health),
                    ids: Mutex::default(),
                    schemas: Mutex::default(),
                    timeouts: AtomicU64::new(0),
                });
            }
        }
        self
    }

    /// Requests that timed out since the client was created (also counted in
    /// `schema_registry_errors_total{kind="timeout"}`).
    pub fn timeouts(&self) -> u64 {
        self.inner.timeouts.load(Ordering::Relaxed)
    }

    /// Registers (or finds) `schema` under `subject` (Kafka's TopicNameStrategy:
    /// `<topic>-key`, `<topic>-value`) and returns its global id. Cached per
    /// (subject, schema text): a schema is registered once per process.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = lock(&self.inner.ids).get(&key) {
            return Ok(*id);
        }
        let what = format!("registering subject {subject}");
        let url = format!("{}/subjects/{subject}/versions", self.inner.base);
        let body = serde_json::json!({ "schema": schema });
        let answer = self
            .call(&what, Lookup::Register, || {
                self.inner
                    .http
                    .post(&url)
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .json(&body)
            })
            .await?;
        let id = self.parse::<IdAnswer>(&what, &answer)?.id;
        lock(&self.inner.ids).insert(key, id);
        Ok(id)
    }

    /// The schema text registered under global `id`. Cached per id.
    /// A 404 is a definite [`RegistryError::Refused`] with status 404.
    pub async fn schema(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(found) = lock(&self.inner.schemas).get(&id) {
            return Ok(found.clone());
        }
        let what = format!("schema id {id}");
        let url = format!("{}/schemas/ids/{id}", self.inner.base);
        let answer = self
            .call(&what, Lookup::ById, || self.inner.http.get(&url))
            .await?;
        let schema: Arc<str> = self.parse::<SchemaAnswer>(&what, &answer)?.schema.into();
        lock(&self.inner.schemas).insert(id, schema.clone());
        Ok(schema)
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        body: &str,
    ) -> Result<T, RegistryError> {
        serde_json::from_str(body).map_err(|e| {
            let error = RegistryError::BadAnswer {
                url: self.inner.url.to_string(),
                what: what.to_owned(),
                body: self.scrub(body.chars().take(200).collect()),
                reason: e.to_string(),
            };
            metrics::counter!("schema_registry_errors_total", "kind" => error.kind()).increment(1);
            self.record(&error, Lookup::Register);
            error
        })
    }

    /// Sends the request built by `build`, retrying transient failures.
    /// Returns the body of a 2xx answer.
    async fn call(
        &self,
        what: &str,
        lookup: Lookup,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<String, RegistryError> {
        let mut attempt = 0;
        loop {
            let mut request = build();
            if let Some((user, password)) = &self.inner.auth {
                request = request.basic_auth(user, password.as_ref().map(Secret::expose));
            }
            let failure = match self.attempt(request).await {
                Ok(body) => {
                    if let Some(health) = &self.inner.health {
                        health.recovered(HEALTH_NAME);
                    }
                    return Ok(body);
                }
                Err(failure) => failure,
            };
            attempt += 1;
            metrics::counter!("schema_registry_errors_total", "kind" => failure.kind())
                .increment(1);
            if matches!(failure, Failure::Timeout) {
                self.inner.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            let retry = failure.transient() && attempt <= self.inner.retries;
            let error = self.error(what, failure, attempt);
            self.record(&error, lookup);
            if !retry {
                return Err(error);
            }
            let delay = self.inner.backoff.delay(attempt - 1);
            tracing::warn!(%error, ?delay, "schema registry request failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One request: a body, or why not.
    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<String, Failure> {
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                Failure::Timeout
            } else {
                Failure::Unreachable(self.scrub(error_chain(&e)))
            }
        };
        let response = request.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(classify)?;
        match status {
            200..=299 => Ok(body),
            s if transient_status(s) => Err(Failure::Failing(s, body)),
            s => Err(Failure::Refused(s, body)),
        }
    }

    /// `text` with the configured passwords masked (defence in depth: an
    /// error from the HTTP stack may quote the URL it was given).
    fn scrub(&self, mut text: String) -> String {
        let url_password = crate::secret::url_password(self.inner.url.expose());
        let auth_password = self.inner.auth.as_ref().and_then(|(_, p)| p.as_ref());
        for secret in [url_password, auth_password.map(Secret::expose)]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
        {
            text = text.replace(secret, crate::secret::MASK);
        }
        text
    }

    fn error(&self, what: &str, failure: Failure, attempts: u32) -> RegistryError {
        let url = self.inner.url.to_string();
        let what = what.to_owned();
        let short = |body: String| -> String { body.chars().take(500).collect() };
        match failure {
            Failure::Timeout => RegistryError::Timeout {
                url,
                what,
                timeout: self.inner.timeout,
                attempts,
            },
            Failure::Unreachable(reason) => RegistryError::Unreachable {
                url,
                what,
                reason,
                attempts,
            },
            Failure::Failing(status, body) => RegistryError::Failing {
                url,
                what,
                status,
                body: self.scrub(short(body)),
                attempts,
            },
            Failure::Refused(status, body) => RegistryError::Refused {
                url,
                what,
                status,
                body: self.scrub(short(body)),
                hint: hint(status),
            },
        }
    }

    /// Shows a failure on `/healthz`. A 404 for a schema id is about that
    /// id (a bad record), not about the registry, so it leaves health alone.
    fn record(&self, error: &RegistryError, lookup: Lookup) {
        if lookup == Lookup::ById && error.status() == Some(404) {
            return;
        }
        if let Some(health) = &self.inner.health {
            health.degraded(HEALTH_NAME, error.to_string());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An error and its causes. reqwest moves URL userinfo into the
/// Authorization header before sending, so the URL it names holds no password.
fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Starts a Confluent-framed payload: magic byte 0, then the id big-endian.
/// The caller appends the Avro datum to the same buffer (no copy).
pub fn start_frame(schema_id: u32, out: &mut Vec<u8>) {
    out.clear();
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// The schema id of a framed payload, if it is one.
pub fn frame_schema_id(payload: &[u8]) -> Option<u32> {
    match payload {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
