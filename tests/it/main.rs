//! The integration tests, one binary: the real client over HTTP to the simulator, the real
//! engine, real databases (every storage-facing test on SQLite and on PostgreSQL), and the
//! built binary as a subprocess. `support` is what the areas share.

mod support;

mod analytics;
mod events;
mod jobs;
mod managed;
mod ops;
mod refresh;
mod simulator;
mod sync;
