//! Plumbing shared by the shop pipeline's services (`cdc`, `loadgen`, `analytics`).
//!
//! Only what is truly common lives here: how to reach Kafka and the schema registry
//! (the same flags and environment variables in every service, so `make` targets,
//! docker-compose and tests set them once), telemetry (`/metrics`, `/healthz`,
//! logging), and the pageview event that `loadgen` writes and `analytics` reads.
//! With the `test-support` feature, [`testing`] gives tests a handle on the local stack.

pub mod kafka;
pub mod pageview;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
