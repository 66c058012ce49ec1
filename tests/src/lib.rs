//! End-to-end tests of the whole pipeline, and the local stack's own tooling.
//!
//! - [`registry`]: the Confluent-compatible schema registry **test fixture**
//!   (in-memory; docker-compose uses Redpanda's real registry).
//! - [`harness`]: the end-to-end harness (real service processes, ground truth).
//! - [`migrate`]: applies `migrations/mysql` and `migrations/postgres` with refinery.

pub mod harness;
pub mod migrate;
pub mod registry;
