//! dashboard: a live web page over the analytics tables.
//!
//! # Why its own binary
//!
//! analytics' HTTP port is the shared telemetry endpoint (`/metrics`,
//! `/healthz`), and its process is the exactly-once folding pipeline: serving
//! browsers from it would put page traffic and read queries next to the batch
//! commits, and tie the dashboard's lifetime (and its port) to one analytics
//! instance when several share the partitions. A separate small process reads
//! the same Postgres tables, can be restarted or scaled freely, and needs
//! nothing but the database URL.
//!
//! # What it serves
//!
//! - `GET /`: one HTML page with its own CSS and JS (compiled into the binary;
//!   no CDN, no chart library: the chart is SVG drawn by `assets/dashboard.js`),
//!   which polls `/api/dashboard` every second and redraws without reloading.
//! - `GET /api/dashboard`: every panel in one JSON object (one round trip per
//!   refresh); `GET /api/<panel>`: one panel ([`PANELS`]).
//!
//! # Cost
//!
//! Each panel is one small query that reads what the page shows, with a LIMIT,
//! from maintained tables, or from the purchases mirror only through an index
//! that yields the page's rows first (incomplete purchases, abandoned carts):
//! never a whole mirror. See [`PANELS`] for each query and the README for
//! measured costs. Answers are
//! cached for [`CACHE_FOR`], so any number of open pages cost at most one
//! evaluation of each panel per cache period.

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

/// How long an answer is reused: page refreshes every second, so two open pages
/// (or a page and a test) share one evaluation.
pub const CACHE_FOR: Duration = Duration::from_millis(500);

/// A panel: its name (the JSON key and `/api/<name>`) and its queries. A
/// panel's `rows` query returns the rows it lists; `summary` (optional) one row
/// of totals.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    pub name: &'static str,
    pub rows: &'static str,
    pub summary: Option<&'static str>,
}

/// Every panel, in page order.
pub const PANELS: &[Panel] = &[
    // The newest 30 minutes with orders: backward scan of the primary key.
    Panel {
        name: "orders_per_minute",
        rows: "SELECT minute, orders, revenue::float8 AS revenue, items_sold
               FROM (SELECT * FROM agg_orders_per_minute WHERE orders > 0
                     ORDER BY minute DESC LIMIT 30) m
               ORDER BY minute",
        // Totals over the per-item aggregate (one row per item, ~1,000).
        summary: Some(
            "SELECT COALESCE(sum(orders), 0)::bigint AS orders,
                    COALESCE(sum(revenue), 0)::float8 AS revenue,
                    COALESCE(sum(items_sold), 0)::bigint AS items_sold,
                    (SELECT COALESCE(sum(pageviews), 0)::bigint FROM agg_channel_funnel) AS pageviews,
                    now() AS server_time
             FROM agg_item_purchases",
        ),
    },
    // Top 10 items by revenue: a top-N sort over the per-item aggregate.
    Panel {
        name: "top_items",
        rows: "SELECT p.item_id, i.name AS item_name, i.category AS item_category,
                      p.items_sold, p.orders, p.revenue::float8 AS revenue,
                      COALESCE(v.pageviews, 0) AS pageviews,
                      i.inventory - COALESCE(s.sold_since_restock, 0) AS remaining_stock
               FROM agg_item_purchases p
               LEFT JOIN items i ON i.id = p.item_id
               LEFT JOIN agg_item_views v ON v.item_id = p.item_id
               LEFT JOIN agg_item_stock s ON s.item_id = p.item_id
               WHERE p.orders > 0
               ORDER BY p.revenue DESC, p.item_id
               LIMIT 10",
        summary: None,
    },
    // One maintained row per channel.
    Panel {
        name: "funnel",
        rows: "SELECT channel, visitors, product_viewers, buyers, pageviews,
                      conversion_rate
               FROM conversion_funnel
               ORDER BY visitors DESC, channel",
        summary: None,
    },
    // The alert table holds only the items currently low.
    Panel {
        name: "low_stock",
        rows: "SELECT item_id, item_name, remaining_stock, threshold, fired_at
               FROM low_stock_alerts
               ORDER BY fired_at DESC, item_id
               LIMIT 10",
        summary: Some("SELECT count(*) AS alerts FROM low_stock_alert_state"),
    },
    // The abandoned_cart output as it stands now (not the notification
    // history: a cart completed since is no longer abandoned): the newest 10
    // through abandoned_cart_page (the 10 most recently inactive users with
    // an incomplete purchase, then their carts by index), totals from the
    // per-user incomplete counts of the inactive users (migration V8). Never
    // the abandoned_cart view (every incomplete purchase of every inactive
    // user).
    Panel {
        name: "abandoned_carts",
        rows: "SELECT c.purchase_id, c.user_id, c.email, c.item_id, i.name AS item_name,
                      c.purchase_price::float8 AS purchase_price, c.abandoned_at
               FROM abandoned_cart_page(10) c
               LEFT JOIN items i ON i.id = c.item_id
               ORDER BY c.abandoned_at DESC, c.user_id DESC, c.created_at DESC NULLS LAST,
                        c.purchase_id DESC",
        summary: Some(
            "SELECT carts, users, value::float8 AS value FROM abandoned_cart_totals",
        ),
    },
    // The newest 10 incomplete purchases (a partial index walked backwards)
    // and the totals from the per-user incomplete counts (migration V8);
    // never the incomplete_purchases view (every status-0 purchase).
    Panel {
        name: "incomplete_purchases",
        rows: "SELECT c.purchase_id, c.user_id, c.email, c.item_id, i.name AS item_name,
                      c.quantity, c.purchase_price::float8 AS purchase_price, c.created_at
               FROM incomplete_purchases_page(10) c
               LEFT JOIN items i ON i.id = c.item_id
               ORDER BY c.created_at DESC NULLS LAST, c.purchase_id DESC",
        summary: Some(
            "SELECT purchases, users, value::float8 AS value FROM incomplete_purchases_totals",
        ),
    },
    // The view filters the per-user aggregate (one row per user).
    Panel {
        name: "high_value_users",
        rows: "SELECT id, email, lifetime_value::float8 AS lifetime_value, purchases
               FROM high_value_users
               ORDER BY lifetime_value DESC, id
               LIMIT 10",
        summary: Some("SELECT count(*) AS users FROM high_value_users"),
    },
    // One row per input stream.
    Panel {
        name: "freshness",
        rows: "SELECT stream, age_ms, batch_records, committed_at,
                      (extract(epoch FROM now() - committed_at) * 1000)::bigint AS since_commit_ms
               FROM freshness
               ORDER BY stream",
        summary: None,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The URL's TLS settings, or a server certificate they refuse.
    #[error(transparent)]
    Connect(pipeline::postgres::ConnectError),
    #[error("unknown panel {0:?}")]
    UnknownPanel(String),
}

/// The server's state: one Postgres connection (reconnected on failure) and
/// the cached answer.
#[derive(Debug)]
pub struct Dashboard {
    postgres_url: pipeline::secret::SecretUrl,
    health: pipeline::telemetry::Health,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    client: Option<Client>,
    cached: Option<(Instant, Value)>,
}

impl Dashboard {
    pub fn new(postgres_url: impl Into<String>, health: pipeline::telemetry::Health) -> Arc<Self> {
        Arc::new(Self {
            postgres_url: pipeline::secret::SecretUrl::new(postgres_url),
            health,
            inner: Mutex::default(),
        })
    }

    /// Every panel, from the cache when it is younger than [`CACHE_FOR`].
    pub async fn snapshot(&self) -> Result<Value, DashboardError> {
        let mut inner = self.inner.lock().await;
        if let Some((at, value)) = &inner.cached {
            if at.elapsed() < CACHE_FOR {
                return Ok(value.clone());
            }
        }
        let started = Instant::now();
        let result = self.query_all(&mut inner).await;
        metrics::histogram!("dashboard_refresh_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(value) => {
                self.health.healthy();
                inner.cached = Some((Instant::now(), value.clone()));
                Ok(value)
            }
            Err(error) => {
                metrics::counter!("dashboard_query_failures_total").increment(1);
                self.health
                    .unhealthy(format!("dashboard queries failing: {error}"));
                // A broken connection is replaced on the next request.
                inner.client = None;
                Err(error)
            }
        }
    }

    async fn query_all(&self, inner: &mut Inner) -> Result<Value, DashboardError> {
        let client = match inner.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => connect(self.postgres_url.expose()).await?,
        };
        let mut panels = Map::new();
        for panel in PANELS {
            let started = Instant::now();
            let value = query_panel(&client, panel).await?;
            metrics::histogram!("dashboard_panel_query_seconds", "panel" => panel.name)
                .record(started.elapsed().as_secs_f64());
            panels.insert(panel.name.into(), value);
        }
        inner.client = Some(client);
        Ok(Value::Object(panels))
    }
}

async fn connect(url: &str) -> Result<Client, DashboardError> {
    let client = pipeline::postgres::connect(url)
        .await
        .map_err(|e| match e {
            pipeline::postgres::ConnectError::Postgres(e) => DashboardError::Postgres(e),
            other => DashboardError::Connect(other),
        })?;
    // Read-only by construction; a short timeout keeps a slow panel from
    // stalling every page.
    client
        .batch_execute(
            "SET default_transaction_read_only = on; SET statement_timeout = '2s';
             SET application_name = 'dashboard'",
        )
        .await?;
    Ok(client)
}

async fn query_panel(client: &Client, panel: &Panel) -> Result<Value, DashboardError> {
    let rows = client.query(panel.rows, &[]).await?;
    let mut out = json!({ "rows": rows.iter().map(row_json).collect::<Vec<_>>() });
    if let Some(summary) = panel.summary {
        out["summary"] = row_json(&client.query_one(summary, &[]).await?);
    }
    Ok(out)
}

/// A row as a JSON object, by column name. Timestamps are RFC 3339.
fn row_json(row: &Row) -> Value {
    let mut map = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => json!(row.get::<_, Option<i64>>(i)),
            Type::INT4 => json!(row.get::<_, Option<i32>>(i)),
            Type::FLOAT8 => json!(row.get::<_, Option<f64>>(i).filter(|f| f.is_finite())),
            Type::BOOL => json!(row.get::<_, Option<bool>>(i)),
            Type::TIMESTAMPTZ => json!(row
                .get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
            // Text; a type the panels do not use reads as null, not a panic.
            _ => json!(row.try_get::<_, Option<String>>(i).ok().flatten()),
        };
        map.insert(column.name().to_owned(), value);
    }
    Value::Object(map)
}

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

/// The page, its assets and the JSON endpoints.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/dashboard", get(all_panels))
        .route("/api/{panel}", get(one_panel))
        .with_state(dashboard)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn all_panels(State(dashboard): State<Arc<Dashboard>>) -> Response {
    match dashboard.snapshot().await {
        Ok(value) => Json(value).into_response(),
        Err(error) => unavailable(&error),
    }
}

async fn one_panel(State(dashboard): State<Arc<Dashboard>>, Path(panel): Path<String>) -> Response {
    if !PANELS.iter().any(|p| p.name == panel) {
        return (
            StatusCode::NOT_FOUND,
            DashboardError::UnknownPanel(panel).to_string(),
        )
            .into_response();
    }
    match dashboard.snapshot().await {
        Ok(mut value) => Json(value[&panel].take()).into_response(),
        Err(error) => unavailable(&error),
    }
}

fn unavailable(error: &DashboardError) -> Response {
    tracing::warn!(%error, "dashboard query failed");
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response()
}
