//! What every integration test shares: the two backends and [`on_both_backends!`], the
//! throwaway databases and child-process guard of `ice_testkit`, [`spawn_app`] (the
//! running pieces of one test), and the `ice-sync` binary as a guarded subprocess.
//!
//! Also compiled into `tests/batching.rs` (through `#[path]`), which uses only part of it.

mod app;
mod backends;
mod plans;
mod process;
pub mod tls_server;

pub use app::*;
pub use ice_testkit::{
    pg_admin_url, pg_server_addr, Backend, ChildGuard, SqlSession, TestDatabase,
};
pub use plans::picks_in_index_order;
pub use process::{ice_sync_command, signal, spawn_guarded, spawn_logged};
