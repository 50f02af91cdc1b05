//! Test support shared by ice-sync's integration tests, benchmarks and examples (a
//! dev-dependency only; it turns on the product's `testkit` feature for them):
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
