//! The raw layer assembled: [`RawSettings`], one raw table per section, what the file and
//! the `ICE_SYNC__*` variables may say before any meaning is attached.
//!
//! Each section's file owns its raw struct and its built-in defaults (`RawSync` in
//! `config::sync`, `RawIce` in `config::ice`, ...); this file only puts them together.
//! Plain serde structs that reject unknown keys, so a typo is an error rather than a
//! silently ignored setting. They also serialize (secrets as `***`): `ice-sync config`
//! shows `RawSettings::default()` as the built-in defaults, so a default is written once.

use serde::{Deserialize, Serialize};

pub(crate) use super::callback::RawCallback;
pub(crate) use super::database::RawDatabase;
pub(crate) use super::ice::RawIce;
pub(crate) use super::jobs::RawJobs;
pub(crate) use super::retention::RawRetention;
pub(crate) use super::settings::{RawLog, RawMetrics};
pub(crate) use super::sync::RawSync;
pub(crate) use super::webhook::RawWebhook;

/// Every section, in the order `ice-sync config` lists them.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSettings {
    pub(crate) database: RawDatabase,
    pub(crate) ice: RawIce,
    pub(crate) sync: RawSync,
    pub(crate) log: RawLog,
    pub(crate) metrics: RawMetrics,
    pub(crate) callback: RawCallback,
    pub(crate) webhook: RawWebhook,
    pub(crate) retention: RawRetention,
    pub(crate) jobs: RawJobs,
}
