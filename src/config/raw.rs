//! The raw layer assembled: [`RawSettings`], one raw table per section, what the file and
//! the `ICE_SYNC__*` variables may say before any meaning is attached.
//!
//! Each section's file owns its raw struct and its built-in defaults (`RawSync` in
//! `config::sync`, `RawIce` in `config::ice`, ...); this file only puts them together.
//! Plain serde structs that reject unknown keys, so a typo is an error rather than a
//! silently ignored setting. They also serialize (secrets as `***`): `ice-sync config`
//! shows `RawSettings::default()` as the built-in defaults, so a default is written once.

use serde::{Deserialize, Serialize};

pub use super::callback::{RawAuthKeys, RawCallback};
pub use super::database::RawDatabase;
pub use super::ice::RawIce;
pub use super::jobs::RawJobs;
pub use super::retention::RawRetention;
pub use super::settings::{RawLog, RawMetrics};
pub use super::sync::{RawListFilter, RawSync};
pub use super::webhook::RawWebhook;

/// Every section, in the order `ice-sync config` lists them.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub database: RawDatabase,
    pub ice: RawIce,
    pub sync: RawSync,
    pub log: RawLog,
    pub metrics: RawMetrics,
    pub callback: RawCallback,
    pub webhook: RawWebhook,
    pub retention: RawRetention,
    pub jobs: RawJobs,
}
