//! End-to-end tests of the whole pipeline, and the local stack's own tooling.
//!
//! - [`registry`]: the Confluent-compatible schema registry **test fixture**
//!   (in-memory; docker-compose uses Redpanda's real registry).
//! - [`migrate`]: applies `migrations/mysql` and `migrations/postgres` with refinery.

pub mod migrate;
pub mod registry;
