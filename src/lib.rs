//! ice-sync mirrors Alibaba Cloud ICE online editing projects into SQL.
//!
//! Data flows one way; each step is a module, and a module only uses those above it:
//!
//! ```text
//! leaves:    domain, clock, contract, metric_names, metric_labels, text  (types, time, names,
//!            outside text into tables, terminals and logs)
//! inputs:    config, credentials   (files, environment, secrets; credentials' settings
//!                                   are a config section)
//! fetch:     ice (signed HTTP, retries, rate limit)       storage (SQL, both backends)
//! hints:     callback (ICE event callbacks queue a poll through storage)
//! sync:      claim due -> fetch -> diff (pure) -> write (one transaction per project)
//! feed:      committed transitions to webhook.url (the write queues them; NOTIFY too)
//! upkeep:    retention (old bookkeeping rows pruned in small batches, beside the cycles)
//! schedule:  scheduler (ticks)
//! report:    ops (metrics, health, systemd, progress)
//! commands:  app (wiring, and app::reload for SIGHUP), cli, check, demo, refresh, table,
//!            telemetry
//!
//! beside, in the workspace (crates/):
//!            ice_wire (wire shapes, signing; `ice` and the simulator use it)
//!            ice_sim (the simulator: dev-dependency, and `demo` behind the feature `demo`)
//!            ice_testkit (test support, dev-only)
//! ```
//!
//! * [`contract`] is what `sync` hands `storage` and gets back ([`contract::Plan`],
//!   [`contract::Stored`], the jobs): `sync` calls `storage`, and `storage` never
//!   depends on `sync`.
//! * [`clock`] is the injected wall clock; elapsed time is tokio's monotonic clock.
//! * [`config`] turns files and environment into validated [`config::Settings`];
//!   [`credentials`] is the official SDKs' credential chain, refreshed before expiry.
//! * [`ice`] signs and sends API calls and parses the answers (the wire shapes and the
//!   signing are the workspace crate `ice_wire`); the loopback ICE (with STS and ECS
//!   metadata) for tests, benchmarks and `ice-sync demo` is the crate `ice_sim`, compiled
//!   in only by the default feature `demo`.
//! * [`storage`] owns the SQL behind one sealed [`storage::Store`]; errors are typed.
//! * [`callback`] serves `callback.listen`: a signed ICE event queues a poll of its
//!   project (a hint only: the poll writes the history).
//! * [`sync`] holds the cycle: claim, fetch, diff, policy, writer, list sweep, report.
//! * [`feed`] delivers the change feed's webhook from the outbox the writes fill.
//! * [`retention`] prunes bookkeeping (`sync_runs`, `list_sweeps`, `callback_events`, the
//!   webhook outbox's overdue rows) by age: hourly in the daemon, and `ice-sync prune`.
//! * [`scheduler`] decides when cycles run; `app::reload` applies a reloaded configuration.
//! * [`ops`] fits operators' tools: systemd notify and watchdog, Prometheus metrics,
//!   `/healthz`, progress; [`check`] is `ice-sync check`.
//! * [`cli`] maps the command line onto all of the above; [`app`] wires them together
//!   (the same wiring tests use); [`demo`] is `ice-sync demo`; [`refresh`] is "poll this
//!   now" in one folder: `ice-sync refresh`, `POST /refresh` (a route `ops` is handed)
//!   and the daemon's refresh cycles; [`jobs_cmd`] is `ice-sync jobs`. Shared test support is the
//!   dev-only crate `ice_testkit`.

pub mod app;
pub mod callback;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod contract;
pub mod credentials;
pub(crate) mod demo;
pub mod domain;
pub mod feed;
pub mod ice;
pub(crate) mod jobs_cmd;
pub(crate) mod metric_labels;
pub mod metric_names;
pub mod ops;
pub(crate) mod preflight;
#[cfg(test)]
mod proptests;
pub mod refresh;
pub mod retention;
pub mod scheduler;
pub mod storage;
pub mod sync;
pub(crate) mod table;
pub mod telemetry;
pub mod text;
