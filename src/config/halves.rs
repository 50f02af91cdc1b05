//! The settings in two halves: [`Fixed`], what is set once for the life of the process,
//! and [`Live`], what a reload (SIGHUP, `systemctl reload`) may change.
//!
//! [`Settings::split`] destructures every section without `..`: a new field in a section
//! does not compile until it is placed in one half, and the reload diff
//! (`config::reload`) destructures each half the same way, so it does not compile until
//! the key is described. The daemon keeps the `Fixed` half it started with for good and
//! swaps only the `Live` half on a reload; whatever it builds from settings (the ICE
//! client's options, the engine's options, the schedule) takes the half it needs, so a
//! restart-only key cannot leak in through a later reload.
//!
//! Which half a key belongs to is documented in docs/operations.md ("Reloading the
//! configuration"); a key is `Live` only if every consumer picks the new value up at the
//! next cycle or request.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::{
    CallbackSettings, DatabaseSettings, IceSettings, JobsSettings, ListFilter, LogFormat,
    LogSettings, MetricsSettings, RetentionSettings, Schedule, Settings, SyncMode, SyncSettings,
    WebhookSettings,
};
use crate::credentials::CredentialConfig;
use crate::domain::ProjectId;

/// Fixed for the life of the process: read at start-up; a reload that changes one of
/// these reports "needs a restart" and the process goes on with the value it started with.
#[derive(Debug, Clone)]
pub struct Fixed {
    /// The pool is built once.
    pub database: DatabaseSettings,
    pub ice: FixedIce,
    pub sync: FixedSync,
    /// The log layer is installed once.
    pub log_format: Option<LogFormat>,
    /// The listener is bound once.
    pub metrics: MetricsSettings,
    /// The listener and its keys are set up once.
    pub callback: CallbackSettings,
    /// The deliverer is wired once.
    pub webhook: WebhookSettings,
    /// The daemon's prune reads the rules it started with.
    pub retention: RetentionSettings,
}

/// `[ice]` keys that stay as the process started.
#[derive(Debug, Clone)]
pub struct FixedIce {
    /// The database records the region it mirrors (`app::region`), checked at start-up.
    pub region: String,
    /// Checked together with the region at start-up.
    pub endpoint: reqwest::Url,
    pub request_source: Option<String>,
    pub timeout: Duration,
    pub rewrite_database_region: bool,
}

/// `[sync]` keys that stay as the process started.
#[derive(Debug, Clone)]
pub struct FixedSync {
    /// The scheduler's drain budget, set when the loop starts.
    pub shutdown_timeout: Duration,
    pub cycle_timeout: Option<Duration>,
    /// Leases held under the old TTL would outlive a shorter one.
    pub lease_ttl: Duration,
    /// Names this process's leases and runs.
    pub replica_id: String,
    pub mode: SyncMode,
    pub discover: bool,
    pub full_refresh_interval: Duration,
    pub list_sweep_share: f64,
    pub list: ListFilter,
}

/// What a reload may change: the next cycle (or request) uses the new value.
#[derive(Debug, Clone)]
pub struct Live {
    pub ice: LiveIce,
    pub sync: LiveSync,
    /// The log filter has a reload handle (`telemetry::set_level`).
    pub log_level: String,
    pub jobs: JobsSettings,
}

/// `[ice]` keys a reload applies: a new client is built on every reload.
#[derive(Debug, Clone)]
pub struct LiveIce {
    pub max_response_bytes: usize,
    /// Resolved again on every reload (the files behind them change without any key).
    pub credentials: CredentialConfig,
}

/// `[sync]` keys a reload applies.
#[derive(Debug, Clone)]
pub struct LiveSync {
    pub schedule: Schedule,
    pub projects: Arc<[ProjectId]>,
    pub concurrency: usize,
    pub max_qps: Option<NonZeroU32>,
    pub max_retries: u32,
    /// Read per poll by the next-poll plan.
    pub removal_confirmations: u32,
    pub settled_interval: Duration,
    pub intervals: HashMap<String, Duration>,
    pub error_backoff_max: Duration,
}

impl Settings {
    /// The two halves of these settings (a clone: the ID list is shared, not copied).
    pub fn split(&self) -> (Fixed, Live) {
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
        let (fixed_ice, live_ice) = split_ice(ice);
        let (fixed_sync, live_sync) = split_sync(sync);
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

fn split_ice(ice: IceSettings) -> (FixedIce, LiveIce) {
    let IceSettings {
        region,
        endpoint,
        request_source,
        timeout,
        max_response_bytes,
        credentials,
        rewrite_database_region,
    } = ice;
    let fixed = FixedIce {
        region,
        endpoint,
        request_source,
        timeout,
        rewrite_database_region,
    };
    let live = LiveIce {
        max_response_bytes,
        credentials,
    };
    (fixed, live)
}

fn split_sync(sync: SyncSettings) -> (FixedSync, LiveSync) {
    let SyncSettings {
        schedule,
        projects,
        concurrency,
        max_qps,
        max_retries,
        shutdown_timeout,
        cycle_timeout,
        removal_confirmations,
        settled_interval,
        intervals,
        error_backoff_max,
        lease_ttl,
        replica_id,
        mode,
        discover,
        full_refresh_interval,
        list_sweep_share,
        list,
    } = sync;
    let fixed = FixedSync {
        shutdown_timeout,
        cycle_timeout,
        lease_ttl,
        replica_id,
        mode,
        discover,
        full_refresh_interval,
        list_sweep_share,
        list,
    };
    let live = LiveSync {
        schedule,
        projects,
        concurrency,
        max_qps,
        max_retries,
        removal_confirmations,
        settled_interval,
        intervals,
        error_backoff_max,
    };
    (fixed, live)
}
