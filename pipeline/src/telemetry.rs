//! Logging, Prometheus metrics and health for every service.
//!
//! Each service calls [`init_tracing`] first, then [`serve`] with its
//! [`TelemetryArgs`]: that installs the global `metrics` recorder and serves
//! `GET /metrics` (Prometheus text) and `GET /healthz` on one port. `/healthz`
//! answers 200 while the service reports itself healthy through [`Health`], 503
//! with the reason otherwise, so orchestrators restart a service that is stuck.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

#[derive(clap::Args, Debug, Clone)]
pub struct TelemetryArgs {
    /// Address of the /metrics and /healthz endpoint; empty to disable it.
    #[arg(
        long = "metrics-addr",
        env = "METRICS_ADDR",
        default_value = "127.0.0.1:9100"
    )]
    pub metrics_addr: String,
    /// Log format: text or json.
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Logs go to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing(args: &TelemetryArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: tests may initialise more than once in one process.
    let _ = if args.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The service's own view of whether it works. Cheap to clone.
///
/// Two layers: the service's main loop reports itself with [`Health::healthy`]
/// and [`Health::unhealthy`]; a shared client (the schema registry) reports
/// its own dependency with [`Health::degraded`] and [`Health::recovered`], so a
/// main loop that calls itself healthy cannot hide a dependency that stopped
/// answering. `/healthz` is 200 only when neither layer has a problem.
#[derive(Debug, Clone, Default)]
pub struct Health {
    problem: Arc<RwLock<Option<String>>>,
    dependencies: Arc<RwLock<BTreeMap<&'static str, String>>>,
}

impl Health {
    pub fn healthy(&self) {
        *self.problem.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn unhealthy(&self, reason: impl Into<String>) {
        *self.problem.write().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    /// A dependency (e.g. `schema-registry`) is failing; shown until
    /// [`Health::recovered`] for the same name.
    pub fn degraded(&self, dependency: &'static str, reason: impl Into<String>) {
        self.dependencies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dependency, reason.into());
    }

    /// The dependency answered again.
    pub fn recovered(&self, dependency: &'static str) {
        self.dependencies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(dependency);
    }

    /// Every current problem, `; `-separated (None: healthy).
    pub fn problem(&self) -> Option<String> {
        let own = self
            .problem
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let dependencies = self.dependencies.read().unwrap_or_else(|e| e.into_inner());
        let mut problems: Vec<String> = own.into_iter().collect();
        problems.extend(
            dependencies
                .iter()
                .map(|(name, reason)| format!("{name}: {reason}")),
        );
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid --metrics-addr {addr:?}: {source}")]
    BadAddress {
        addr: String,
        source: std::net::AddrParseError,
    },
    #[error(
        "cannot listen on {addr} for /metrics: {source}; pick a free port with --metrics-addr"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("a metrics recorder is already installed in this process")]
    Recorder,
}

/// The running endpoint: the bound address (useful with port 0) and the task.
#[derive(Debug)]
pub struct TelemetryServer {
    pub addr: Option<SocketAddr>,
    pub handle: PrometheusHandle,
}

/// Installs the Prometheus recorder and serves `/metrics` and `/healthz`.
pub async fn serve(
    args: &TelemetryArgs,
    health: Health,
) -> Result<TelemetryServer, TelemetryError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|_| TelemetryError::Recorder)?;
    if args.metrics_addr.is_empty() {
        return Ok(TelemetryServer { addr: None, handle });
    }
    let addr: SocketAddr =
        args.metrics_addr
            .parse()
            .map_err(|source| TelemetryError::BadAddress {
                addr: args.metrics_addr.clone(),
                source,
            })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let bound = listener.local_addr().ok();
    let app = router(handle.clone(), health);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    tracing::info!(addr = ?bound, "serving /metrics and /healthz");
    Ok(TelemetryServer {
        addr: bound,
        handle,
    })
}

fn router(handle: PrometheusHandle, health: Health) -> Router {
    let upkeep = handle.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = upkeep.clone();
                async move {
                    handle.run_upkeep();
                    handle.render()
                }
            }),
        )
        .route("/healthz", get(healthz))
        .with_state(health)
}

async fn healthz(State(health): State<Health>) -> (StatusCode, String) {
    match health.problem() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_degraded_dependency_shows_even_when_the_service_says_healthy() {
        let health = Health::default();
        assert_eq!(health.problem(), None);
        health.degraded("schema-registry", "timed out");
        health.healthy();
        assert_eq!(
            health.problem().as_deref(),
            Some("schema-registry: timed out")
        );
        health.unhealthy("starting");
        assert_eq!(
            health.problem().as_deref(),
            Some("starting; schema-registry: timed out")
        );
        health.recovered("schema-registry");
        health.healthy();
        assert_eq!(health.problem(), None);
    }
}
