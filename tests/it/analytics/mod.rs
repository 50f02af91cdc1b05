//! Analytics: the BI views of migrations 0002, the documented queries (docs/queries.sql), the
//! Grafana dashboard's panel queries (dashboards/grafana/ice-sync.json) and the indexes that
//! keep them fast, against one hand-written history (`fixture`) loaded into a real SQLite
//! file and a real PostgreSQL database. The same expected rows on both backends.
//!
//! The 1,000,000-row benchmark is not a test: `cargo run --release --example history_bench`;
//! nor is the ten-million-row one, `scripts/analytics-bench` (docs/performance.md).

pub mod facts;
mod fixture;
mod grafana;
mod grafana_schema;
mod plans;
mod queries;
mod views;
