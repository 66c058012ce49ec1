//! Plumbing shared by the shop pipeline's services (`cdc`, `loadgen`, `analytics`).
//!
//! Only what is truly common lives here: how to reach Kafka and the schema registry
//! (the same flags and environment variables in every service, so `make` targets,
//! docker-compose and tests set them once; [`kafka`] holds the producer and
//! consumer settings, [`registry`] the one registry client), the one retry wait
//! ([`backoff`]), the one shutdown signal ([`shutdown`]), credentials that never
//! reach a log ([`secret`]), telemetry (`/metrics`, `/healthz`, logging), and the
//! pageview event that `loadgen` writes and `analytics` reads. With the
//! `postgres` feature, [`postgres`] connects to Postgres under libpq's
//! `sslmode` (analytics, the dashboard).
//! With the `test-support` feature, [`testing`] gives tests a handle on the local stack.

// Production code neither unwraps nor panics: every failure is an error
// that names its cause (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backoff;
pub mod kafka;
pub mod pageview;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod registry;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
// Test scaffolding fails a test loudly where it cannot go on (a stack that
// does not answer, a port that cannot be bound): that is its contract.
#[cfg(feature = "test-support")]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod testing;
