//! Test support shared by ice-sync's integration tests, benchmarks and examples (a
//! dev-dependency only):
//! throwaway databases on either backend that are removed when dropped, the test-only SQL
//! run on them through a connection of the tests' own (fixture scripts, query plans, timed
//! counts), and a guard that kills the child processes a test starts, also when the test
//! panics.
//!
//! PostgreSQL comes from `ICE_SYNC_TEST_PG_URL` (default [`DEFAULT_PG_URL`]); nothing else
//! in the repository names a PostgreSQL address. An unreachable server is a loud failure,
//! never a skipped test.

mod child;
mod database;
pub mod fixed_keys;
mod sql;

pub use child::ChildGuard;
pub use database::{
    pg_admin_url, pg_server_addr, Backend, Collation, TestDatabase, DEFAULT_PG_URL,
};
pub use sql::SqlSession;
