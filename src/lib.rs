//! ice-sync mirrors Alibaba Cloud ICE online editing projects into SQL.
//!
//! Data flows one way, and each step is one module:
//!
//! ```text
//! scheduler ──tick──▶ sync::engine ──claim due──▶ storage (leases on PostgreSQL)
//!                         │
//!                         ├─fetch──▶ ice::client (signed HTTP, retries, rate limit)
//!                         ├─diff───▶ sync::diff + sync::policy (pure: what to write, when next)
//!                         └─write──▶ storage (batched; each project atomic) ──▶ ops::metrics
//! ```
//!
//! * [`config`] turns files and environment into validated [`config::Settings`].
//! * [`credentials`] finds the AccessKey and keeps it secret.
//! * [`ice`] signs and sends API calls and parses the answers.
//! * [`simulator`] is a loopback ICE for tests, benchmarks and `ice-sync demo`.
//! * [`storage`] owns the SQL: one implementation over both backends, plus what differs
//!   per backend (connecting, migrating, claiming, batched touches).
//! * [`sync`] holds the diff, the polling policy and the cycle; [`scheduler`] decides
//!   when cycles run.
//! * [`ops`] fits operators' tools: systemd notify and watchdog, Prometheus metrics,
//!   `/healthz`; [`check`] is `ice-sync check`.
//! * [`cli`] maps the command line onto all of the above; [`app`] wires them together
//!   (the same wiring tests use); [`demo`] is `ice-sync demo`.

pub mod app;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod contract;
pub mod credentials;
pub mod demo;
pub mod domain;
pub mod ice;
pub mod metric_names;
pub mod ops;
pub mod reload;
pub mod scheduler;
pub mod simulator;
pub mod storage;
pub mod sync;
pub mod table;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
