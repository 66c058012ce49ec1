//! The end-to-end harness: the pipeline's real binaries as child processes on
//! the local stack, and the ground truth their output must equal.
//!
//! - [`process`]: one service as a child process (log file, SIGKILL, restart),
//!   and where the built binaries are.
//! - [`world`]: one test's isolated pipeline: fresh MySQL and Postgres
//!   databases, unique topic prefix, server id, topics and consumer group, and
//!   the commands that start cdc, analytics and loadgen inside it.
//! - [`topics`]: reading a topic back to its end (partition EOF, never
//!   watermarks: the local broker's ListOffsets is wrong).
//! - [`truth`]: every analytics output computed independently from MySQL's
//!   final tables and the pageviews read back, and the same outputs read from
//!   Postgres.
//! - [`table`]: rows as comparable values and a readable diff.
//! - [`golden`]: the golden files made from real Debezium, and the comparison
//!   of our cdc's output with them (`make golden`, tests/tests/golden.rs).
//! - [`verify`]: "quiet and equal": outputs match the ground truth and every
//!   input topic was consumed to its end.
//!
//! Service logs go to a directory per test under the system temp dir; it is
//! printed at the start, kept when the test fails (or with `E2E_KEEP_LOGS=1`)
//! and removed otherwise.
//!
//! Invariants: a test never shares a database, topic, server id or consumer
//! group with another; every process a test starts is killed when its handle
//! drops; a failing test prints the tail of every service's log.

pub mod golden;
pub mod process;
pub mod table;
pub mod topics;
pub mod truth;
pub mod verify;
pub mod world;
