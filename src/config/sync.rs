//! `[sync]` and `[sync.list]`: what is tracked, when cycles run, how hard the API is
//! pushed, how projects are polled, and who this replica is.
//!
//! Everything about a `[sync]` key is here: what the file may say and its default
//! ([`RawSync`]), its range (`counts`, `DURATION_MAX`), its validation
//! ([`SyncSettings::from_raw`]), its half ([`FixedSync`] or [`LiveSync`], by `split`)
//! and its line in a reload summary (`fixed_changes`, `live_changes`). The engine
//! runs on [`LiveSync`] itself (`sync::EngineOptions::sync`), so a live key it reads
//! needs nothing elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bounds::{Count, DAY, HOUR};
use super::id_file::read_id_file;
use super::reload::{debug, dur, Diff, ProjectsDelta};
use super::replica::default_replica_id;
use super::settings::parse_duration;
use super::{ConfigError, Schedule};
use crate::domain::ProjectId;

/// What the file and the `ICE_SYNC__SYNC__*` variables may say, with the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSync {
    pub(crate) schedule: String,
    pub(crate) projects: Vec<String>,
    pub(crate) projects_file: Option<PathBuf>,
    pub(crate) concurrency: usize,
    pub(crate) max_qps: u32,
    pub(crate) max_retries: u32,
    pub(crate) shutdown_timeout: String,
    pub(crate) cycle_timeout: Option<String>,
    pub(crate) removal_confirmations: u32,
    pub(crate) settled_interval: String,
    pub(crate) intervals: BTreeMap<String, String>,
    pub(crate) error_backoff_max: String,
    pub(crate) lease_ttl: String,
    pub(crate) replica_id: Option<String>,
    pub(crate) mode: String,
    pub(crate) discover: bool,
    pub(crate) full_refresh_interval: String,
    pub(crate) list_sweep_share: f64,
    pub(crate) list: RawListFilter,
}

/// `[sync.list]`: which projects a list sweep asks for.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawListFilter {
    pub(crate) project_type: Option<String>,
    pub(crate) create_source: Option<String>,
    pub(crate) created_within: Option<String>,
}

impl Default for RawSync {
    fn default() -> Self {
        Self {
            schedule: "0 */5 * * * *".into(),
            projects: Vec::new(),
            projects_file: None,
            concurrency: 16,
            max_qps: 20,
            max_retries: 5,
            shutdown_timeout: "20s".into(),
            cycle_timeout: None,
            removal_confirmations: 2,
            settled_interval: "1h".into(),
            intervals: Default::default(),
            error_backoff_max: "1h".into(),
            lease_ttl: "60s".into(),
            replica_id: None,
            mode: "get".into(),
            discover: false,
            full_refresh_interval: "24h".into(),
            list_sweep_share: 0.5,
            list: RawListFilter::default(),
        }
    }
}

/// The largest value of each `[sync]` duration key (`config::bounds`); a key ending in
/// `.` covers every key under it.
pub(super) const DURATION_MAX: &[(&str, u64)] = &[
    ("sync.shutdown_timeout", HOUR),
    ("sync.cycle_timeout", 7 * DAY),
    ("sync.settled_interval", 366 * DAY),
    ("sync.intervals.", 366 * DAY),
    ("sync.error_backoff_max", 30 * DAY),
    ("sync.lease_ttl", DAY),
    ("sync.full_refresh_interval", 366 * DAY),
    ("sync.list.created_within", 10 * 366 * DAY),
];

/// The range of each `[sync]` count key (`config::bounds`).
pub(super) fn counts(raw: &RawSync) -> Vec<Count> {
    vec![
        Count::new(
            "sync.concurrency",
            u64::try_from(raw.concurrency).unwrap_or(u64::MAX),
            1,
            1_024,
        ),
        Count::new("sync.max_qps", raw.max_qps.into(), 0, 10_000),
        Count::new("sync.max_retries", raw.max_retries.into(), 0, 100),
        Count::new(
            "sync.removal_confirmations",
            raw.removal_confirmations.into(),
            1,
            1_000,
        ),
    ]
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub(crate) schedule: Schedule,
    /// `sync.projects` followed by the IDs of `sync.projects_file`. Shared, not copied,
    /// by every clone of the settings: the running daemon and its reload baseline each
    /// hold one, and 100,000 IDs are 7 MB.
    pub(crate) projects: Arc<[ProjectId]>,
    pub(crate) concurrency: usize,
    /// `None` when `sync.max_qps = 0` (no client-side limit).
    pub(crate) max_qps: Option<NonZeroU32>,
    pub(crate) max_retries: u32,
    pub(crate) shutdown_timeout: Duration,
    /// A cycle running longer stops claiming work and is recorded as `partial`.
    /// Defaults to one schedule period.
    pub(crate) cycle_timeout: Option<Duration>,
    /// Consecutive "not found" answers, in separate cycles, before a project is marked
    /// removed. The API's "not found" is a generic InvalidParameter, so one is not proof.
    pub(crate) removal_confirmations: u32,
    /// How often settled projects (Produced, LiveFinished, removed, ...) are polled.
    pub(crate) settled_interval: Duration,
    /// Per-status overrides of the polling interval, keyed by Status or BusinessStatus.
    pub(crate) intervals: HashMap<String, Duration>,
    /// The longest a failing project waits before its next try.
    pub(crate) error_backoff_max: Duration,
    /// How long a replica's claim on a project lasts before others may take it over.
    pub(crate) lease_ttl: Duration,
    /// Names this daemon in `sync_runs` and in leases; default `HOST:PID:RAND`
    /// (see `config::replica`).
    pub(crate) replica_id: String,
    pub(crate) mode: SyncMode,
    /// List mode: track projects the list shows that are not tracked yet.
    pub(crate) discover: bool,
    /// List mode: every tracked project still gets a GetEditingProject this often.
    pub(crate) full_refresh_interval: Duration,
    /// List mode: the share of each cycle's budget the sweep may use before claims run.
    pub(crate) list_sweep_share: f64,
    pub(crate) list: ListFilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `GetEditingProject` for every due project.
    Get,
    /// Page through `ListEditingProjects`, fetch only what changed, refresh the rest slowly.
    List,
}

/// Filters of a list sweep, as `ListEditingProjects` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub(crate) project_type: Option<String>,
    pub(crate) create_source: Option<String>,
    /// Only projects created this recently (the API filters on creation time).
    pub(crate) created_within: Option<Duration>,
}

impl SyncSettings {
    pub(crate) fn from_raw(raw: RawSync) -> Result<Self, ConfigError> {
        let schedule = Schedule::parse(&raw.schedule)?;
        let projects = projects(&raw)?;
        if raw.concurrency == 0 {
            return Err(ConfigError::new("sync.concurrency = 0: must be at least 1"));
        }
        if raw.removal_confirmations == 0 {
            return Err(ConfigError::new(
                "sync.removal_confirmations = 0: must be at least 1",
            ));
        }
        let cycle_timeout = raw
            .cycle_timeout
            .as_deref()
            .map(|v| parse_duration("sync.cycle_timeout", v))
            .transpose()?;
        let intervals = raw
            .intervals
            .iter()
            .map(|(status, v)| {
                Ok((
                    status_spelling(status),
                    parse_duration(&format!("sync.intervals.{status}"), v)?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        let mode = mode(&raw)?;
        Ok(Self {
            schedule,
            projects,
            concurrency: raw.concurrency,
            max_qps: NonZeroU32::new(raw.max_qps),
            max_retries: raw.max_retries,
            shutdown_timeout: parse_duration("sync.shutdown_timeout", &raw.shutdown_timeout)?,
            cycle_timeout,
            removal_confirmations: raw.removal_confirmations,
            settled_interval: parse_duration("sync.settled_interval", &raw.settled_interval)?,
            intervals,
            error_backoff_max: parse_duration("sync.error_backoff_max", &raw.error_backoff_max)?,
            lease_ttl: parse_duration("sync.lease_ttl", &raw.lease_ttl)?,
            replica_id: replica_id(raw.replica_id.as_deref())?,
            mode,
            discover: raw.discover,
            full_refresh_interval: parse_duration(
                "sync.full_refresh_interval",
                &raw.full_refresh_interval,
            )?,
            list_sweep_share: list_sweep_share(raw.list_sweep_share)?,
            list: ListFilter::from_raw(raw.list)?,
        })
    }
}

/// `sync.projects` followed by the IDs of `sync.projects_file`.
fn projects(raw: &RawSync) -> Result<Arc<[ProjectId]>, ConfigError> {
    let mut projects = raw
        .projects
        .iter()
        .map(|p| ProjectId::parse(p).map_err(|e| ConfigError::new(format!("sync.projects: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &raw.projects_file {
        let listed =
            read_id_file(path).map_err(|e| ConfigError::new(format!("sync.projects_file: {e}")))?;
        if projects.is_empty() {
            projects = listed;
        } else {
            projects.extend(listed);
        }
    }
    Ok(projects.into())
}

/// `sync.mode`, and `sync.discover` only where it means something.
fn mode(raw: &RawSync) -> Result<SyncMode, ConfigError> {
    let mode = match raw.mode.as_str() {
        "get" => SyncMode::Get,
        "list" => SyncMode::List,
        other => {
            return Err(ConfigError::new(format!(
                "sync.mode = {other:?}: must be \"get\" or \"list\""
            )))
        }
    };
    if raw.discover && mode != SyncMode::List {
        return Err(ConfigError::new(
            "sync.discover = true needs sync.mode = \"list\": discovery reads the project list",
        ));
    }
    Ok(mode)
}

fn list_sweep_share(share: f64) -> Result<f64, ConfigError> {
    if !(0.0..1.0).contains(&share) {
        return Err(ConfigError::new(format!(
            "sync.list_sweep_share = {share}: must be at least 0 and less than 1 \
             (the rest of each cycle is kept for claims), e.g. 0.5"
        )));
    }
    Ok(share)
}

fn replica_id(configured: Option<&str>) -> Result<String, ConfigError> {
    match configured.map(str::trim) {
        Some("") => Err(ConfigError::new(
            "sync.replica_id is empty: remove it to use HOST:PID:RAND, or name this replica",
        )),
        Some(id) => Ok(id.to_string()),
        None => Ok(default_replica_id()),
    }
}

/// The `Status` and `BusinessStatus` values ICE documents (`shared/reference/ice-api.md`).
pub(crate) const KNOWN_STATUSES: &[&str] = &[
    "Draft",
    "Editing",
    "Producing",
    "Produced",
    "ProduceFailed",
    "Deleted",
    "Normal",
    "Reserving",
    "ReservationCanceled",
    "BroadCasting",
    "LoadingFailed",
    "LiveFinished",
];

/// A `sync.intervals` key in ICE's spelling: the environment layer lowercases keys
/// (`ICE_SYNC__SYNC__INTERVALS__Producing` arrives as `producing`) and the policy
/// matches statuses exactly. Unknown statuses are kept as written.
fn status_spelling(key: &str) -> String {
    KNOWN_STATUSES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(key))
        .map_or_else(|| key.to_string(), |s| s.to_string())
}

impl ListFilter {
    pub(crate) fn from_raw(raw: RawListFilter) -> Result<Self, ConfigError> {
        Ok(Self {
            project_type: raw.project_type,
            create_source: raw.create_source,
            created_within: raw
                .created_within
                .as_deref()
                .map(|v| parse_duration("sync.list.created_within", v))
                .transpose()?,
        })
    }
}

/// `[sync]` keys that stay as the process started (a reload that changes one reports
/// "needs a restart"). A key goes here unless every consumer picks a new value up at the
/// next cycle or request.
#[derive(Debug, Clone)]
pub(crate) struct FixedSync {
    /// The scheduler's drain budget, set when the loop starts.
    pub(crate) shutdown_timeout: Duration,
    pub(crate) cycle_timeout: Option<Duration>,
    /// Leases held under the old TTL would outlive a shorter one.
    pub(crate) lease_ttl: Duration,
    /// Names this process's leases and runs.
    pub(crate) replica_id: String,
    pub(crate) mode: SyncMode,
    pub(crate) discover: bool,
    pub(crate) full_refresh_interval: Duration,
    pub(crate) list_sweep_share: f64,
    pub(crate) list: ListFilter,
}

/// `[sync]` keys a reload applies: the daemon builds a new engine with them
/// (`EngineOptions::sync`) and the next cycle runs on it.
#[derive(Debug, Clone)]
pub struct LiveSync {
    pub(crate) schedule: Schedule,
    pub(crate) projects: Arc<[ProjectId]>,
    pub concurrency: usize,
    pub(crate) max_qps: Option<NonZeroU32>,
    pub(crate) max_retries: u32,
    /// Read per poll by the next-poll plan.
    pub(crate) removal_confirmations: u32,
    pub(crate) settled_interval: Duration,
    pub(crate) intervals: HashMap<String, Duration>,
    pub(crate) error_backoff_max: Duration,
}

/// The two halves of `[sync]`, every field named (no `..`): a new key does not compile
/// until it is placed in one.
pub(super) fn split(sync: SyncSettings) -> (FixedSync, LiveSync) {
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

/// The fixed `[sync]` keys in a reload summary, every field named (no `..`).
pub(super) fn fixed_changes(d: &mut Diff, a: &FixedSync, b: &FixedSync) {
    let FixedSync {
        shutdown_timeout,
        cycle_timeout,
        lease_ttl,
        replica_id,
        mode,
        discover,
        full_refresh_interval,
        list_sweep_share,
        list,
    } = a;
    let show_dur = |t: &Duration| dur(*t);
    d.value(
        "sync.shutdown_timeout",
        shutdown_timeout,
        &b.shutdown_timeout,
        show_dur,
    );
    d.value("sync.lease_ttl", lease_ttl, &b.lease_ttl, show_dur);
    d.value(
        "sync.full_refresh_interval",
        full_refresh_interval,
        &b.full_refresh_interval,
        show_dur,
    );
    d.value("sync.cycle_timeout", cycle_timeout, &b.cycle_timeout, |t| {
        t.map_or("(one schedule period)".to_string(), dur)
    });
    d.value("sync.replica_id", replica_id, &b.replica_id, String::clone);
    d.value("sync.mode", mode, &b.mode, |m| {
        format!("{m:?}").to_lowercase()
    });
    d.value("sync.discover", discover, &b.discover, bool::to_string);
    d.value(
        "sync.list_sweep_share",
        list_sweep_share,
        &b.list_sweep_share,
        f64::to_string,
    );
    d.value("sync.list", list, &b.list, debug);
}

/// The live `[sync]` keys in a reload summary, every field named (no `..`).
pub(super) fn live_changes(d: &mut Diff, a: &LiveSync, b: &LiveSync) {
    let LiveSync {
        schedule,
        projects,
        concurrency,
        max_qps,
        max_retries,
        removal_confirmations,
        settled_interval,
        intervals,
        error_backoff_max,
    } = a;
    if *schedule != b.schedule {
        let (was, now) = (&schedule.expression, &b.schedule.expression);
        d.push(
            "sync.schedule",
            format!("sync.schedule: {was:?} -> {now:?} (UTC)"),
        );
    }
    projects_change(d, projects, &b.projects);
    d.value(
        "sync.concurrency",
        concurrency,
        &b.concurrency,
        usize::to_string,
    );
    d.value("sync.max_qps", max_qps, &b.max_qps, |q| {
        q.map_or("0 (unlimited)".to_string(), |q| q.to_string())
    });
    d.value(
        "sync.max_retries",
        max_retries,
        &b.max_retries,
        u32::to_string,
    );
    d.value(
        "sync.removal_confirmations",
        removal_confirmations,
        &b.removal_confirmations,
        u32::to_string,
    );
    let show_dur = |t: &Duration| dur(*t);
    d.value(
        "sync.settled_interval",
        settled_interval,
        &b.settled_interval,
        show_dur,
    );
    d.value(
        "sync.error_backoff_max",
        error_backoff_max,
        &b.error_backoff_max,
        show_dur,
    );
    for (key, was, now) in interval_changes(intervals, &b.intervals) {
        d.push(&key, format!("{key}: {was} -> {now}"));
    }
}

/// `sync.projects`: the IDs added and removed, also kept as `ReloadPlan::projects`.
fn projects_change(d: &mut Diff, a: &[ProjectId], b: &[ProjectId]) {
    let before: BTreeSet<&ProjectId> = a.iter().collect();
    let after: BTreeSet<&ProjectId> = b.iter().collect();
    if before == after {
        return;
    }
    let delta = ProjectsDelta {
        added: after.difference(&before).map(|p| (*p).clone()).collect(),
        removed: before.difference(&after).map(|p| (*p).clone()).collect(),
    };
    let mut parts = Vec::new();
    if !delta.added.is_empty() {
        parts.push(format!(
            "{} added ({})",
            delta.added.len(),
            ids(&delta.added)
        ));
    }
    if !delta.removed.is_empty() {
        parts.push(format!(
            "{} removed ({})",
            delta.removed.len(),
            ids(&delta.removed)
        ));
    }
    d.push(
        "sync.projects",
        format!("sync.projects: {}", parts.join(", ")),
    );
    d.plan.projects = Some(delta);
}

/// `sync.intervals.STATUS` keys whose value changed, was added or was removed.
fn interval_changes(
    a: &HashMap<String, Duration>,
    b: &HashMap<String, Duration>,
) -> Vec<(String, String, String)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |d: Option<&Duration>| d.map_or("(unset)".to_string(), |d| dur(*d));
    let sorted: BTreeMap<&String, (Option<&Duration>, Option<&Duration>)> = keys
        .into_iter()
        .map(|k| (k, (a.get(k), b.get(k))))
        .collect();
    sorted
        .into_iter()
        .filter(|(_, (x, y))| x != y)
        .map(|(k, (x, y))| (format!("sync.intervals.{k}"), show(x), show(y)))
        .collect()
}

/// At most five IDs, then a count: a reload that tracks thousands stays one line.
fn ids(list: &[ProjectId]) -> String {
    const SHOWN: usize = 5;
    let mut out = list
        .iter()
        .take(SHOWN)
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        out.push_str(&format!(" and {} more", list.len() - SHOWN));
    }
    out
}
