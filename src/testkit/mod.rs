//! Test support shared by the integration tests, the benchmarks and the examples (behind the
//! `testkit` feature, which only this crate's own test, bench and example targets enable):
//! throwaway databases on either backend that are removed when dropped, and a guard that
//! kills the child processes a test starts, also when the test panics.
//!
//! PostgreSQL comes from `ICE_SYNC_TEST_PG_URL` (default [`DEFAULT_PG_URL`]); nothing else
//! in the repository names a PostgreSQL address. An unreachable server is a loud failure,
//! never a skipped test.

mod child;
mod database;

pub use child::ChildGuard;
pub use database::{
    pg_admin_url, pg_server_addr, Backend, Collation, TestDatabase, DEFAULT_PG_URL,
};
