//! Analytics: the BI views of migrations 0002, the documented queries (docs/queries.sql), the
//! Grafana dashboard's panel queries (dashboards/grafana/ice-sync.json) and the indexes that
//! keep them fast, against one hand-written history (`fixture`) loaded into a real SQLite
//! file and a real PostgreSQL database. The same expected rows on both backends.
//!
//! The 1,000,000-row benchmark is not a test: `cargo run --release --example history_bench`.

// The shared harness: `Backend`, `on_both_backends!`, the PostgreSQL URL and temp SQLite files.
#[allow(dead_code)]
#[path = "../sync/helpers.rs"]
mod helpers;

mod fixture;
mod grafana;
mod plans;
mod queries;
mod views;
