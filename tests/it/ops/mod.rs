//! Operations end to end: the systemd unit, notify and watchdog, `/metrics` and
//! `/healthz` of a running daemon, `ice-sync check`, and the log formats. Each test runs
//! the built binary as a subprocess against the simulator and a real database; `redaction`
//! checks that a database password never reaches the terminal, `secrets` that no other
//! planted secret does and that absurd configuration values are refused at load.
//!
//! The tools these tests call (`systemd-analyze`, `promtool`) must be installed: `scripts/test`
//! installs them, and a test fails, never skips, when one is missing.

mod check;
mod cli;
mod credentials;
pub(crate) mod daemon;
mod effective_config;
mod exhaustion;
mod health;
mod logs;
mod memory;
pub(crate) mod metrics;
mod notify;
mod outside_text;
mod process_metrics;
mod progress;
mod redaction;
mod redirects;
mod reload;
mod reload_notify;
mod retention;
mod secrets;
mod small_bounds;
mod startup;
mod systemd_boot;
mod systemd_unit;
