//! End-to-end tests: the real client over HTTP to the simulator, the real engine, and a
//! real database. Every storage-facing test runs on SQLite and on PostgreSQL.

mod backpressure;
mod batching;
mod binary;
mod clocks;
mod floor;
mod gaps_staleness;
mod lifecycle;
mod listmode;
mod order;
mod polling;
mod process;
mod replicas;
mod resilience;
mod scheduler;
mod storage;
