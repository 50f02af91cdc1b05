//! The settings in two halves, assembled: [`Fixed`], what is set once for the life of
//! the process, and [`Live`], what a reload (SIGHUP, `systemctl reload`) may change.
//!
//! Each section decides its own split in its own file, next to its keys: `[sync]` in
//! `config::sync` ([`FixedSync`], [`LiveSync`]), `[ice]` in `config::ice` ([`FixedIce`],
//! [`LiveIce`]); a section wholly in one half is placed here. Every split destructures
//! its section without `..`: a new field does not compile until it is placed in one half,
//! and the reload diff (`config::reload`, whose per-section parts live in the section
//! files too) destructures each half the same way, so it does not compile until the key
//! is described. The daemon keeps the `Fixed` half it started with for good and swaps
//! only the `Live` half on a reload; whatever it builds from settings (the ICE client's
//! options, the engine's options, the schedule) takes the half it needs, so a
//! restart-only key cannot leak in through a later reload.
//!
//! Which half a key belongs to is documented in docs/operations.md ("Reloading the
//! configuration"); a key is `Live` only if every consumer picks the new value up at the
//! next cycle or request.

use super::{
    CallbackSettings, DatabaseSettings, JobsSettings, LogFormat, LogSettings, MetricsSettings,
    RetentionSettings, Settings, WebhookSettings,
};

pub(crate) use super::ice::{FixedIce, LiveIce};
pub(crate) use super::sync::{FixedSync, LiveSync};

/// Fixed for the life of the process: read at start-up; a reload that changes one of
/// these reports "needs a restart" and the process goes on with the value it started with.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    /// The pool is built once.
    pub(crate) database: DatabaseSettings,
    pub(crate) ice: FixedIce,
    pub(crate) sync: FixedSync,
    /// The log layer is installed once.
    pub(crate) log_format: Option<LogFormat>,
    /// The listener is bound once.
    pub(crate) metrics: MetricsSettings,
    /// The listener and its keys are set up once.
    pub(crate) callback: CallbackSettings,
    /// The deliverer is wired once.
    pub(crate) webhook: WebhookSettings,
    /// The daemon's prune reads the rules it started with.
    pub(crate) retention: RetentionSettings,
}

/// What a reload may change: the next cycle (or request) uses the new value.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) ice: LiveIce,
    pub(crate) sync: LiveSync,
    /// The log filter has a reload handle (`telemetry::set_level`).
    pub(crate) log_level: String,
    pub(crate) jobs: JobsSettings,
}

impl Settings {
    /// The two halves of these settings (a clone: the ID list is shared, not copied).
    pub(crate) fn split(&self) -> (Fixed, Live) {
        let Settings {
            database,
            ice,
            sync,
            log,
            metrics,
            callback,
            webhook,
            retention,
            jobs,
        } = self.clone();
        let (fixed_ice, live_ice) = super::ice::split(ice);
        let (fixed_sync, live_sync) = super::sync::split(sync);
        let LogSettings { format, level } = log;
        let fixed = Fixed {
            database,
            ice: fixed_ice,
            sync: fixed_sync,
            log_format: format,
            metrics,
            callback,
            webhook,
            retention,
        };
        let live = Live {
            ice: live_ice,
            sync: live_sync,
            log_level: level,
            jobs,
        };
        (fixed, live)
    }
}
