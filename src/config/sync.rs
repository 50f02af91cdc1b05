//! `[sync]` and `[sync.list]`: what is tracked, when cycles run, how hard the API is
//! pushed, how projects are polled, and who this replica is.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::id_file::read_id_file;
use super::raw::{RawListFilter, RawSync};
use super::replica::default_replica_id;
use super::settings::parse_duration;
use super::{ConfigError, Schedule};
use crate::domain::ProjectId;

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub schedule: Schedule,
    /// `sync.projects` followed by the IDs of `sync.projects_file`. Shared, not copied,
    /// by every clone of the settings: the running daemon and its reload baseline each
    /// hold one, and 100,000 IDs are 7 MB.
    pub projects: Arc<[ProjectId]>,
    pub concurrency: usize,
    /// `None` when `sync.max_qps = 0` (no client-side limit).
    pub max_qps: Option<NonZeroU32>,
    pub max_retries: u32,
    pub shutdown_timeout: Duration,
    /// A cycle running longer stops claiming work and is recorded as `partial`.
    /// Defaults to one schedule period.
    pub cycle_timeout: Option<Duration>,
    /// Consecutive "not found" answers, in separate cycles, before a project is marked
    /// removed. The API's "not found" is a generic InvalidParameter, so one is not proof.
    pub removal_confirmations: u32,
    /// How often settled projects (Produced, LiveFinished, removed, ...) are polled.
    pub settled_interval: Duration,
    /// Per-status overrides of the polling interval, keyed by Status or BusinessStatus.
    pub intervals: HashMap<String, Duration>,
    /// The longest a failing project waits before its next try.
    pub error_backoff_max: Duration,
    /// How long a replica's claim on a project lasts before others may take it over.
    pub lease_ttl: Duration,
    /// Names this daemon in `sync_runs` and in leases; default `HOST:PID:RAND`
    /// (see `config::replica`).
    pub replica_id: String,
    pub mode: SyncMode,
    /// List mode: track projects the list shows that are not tracked yet.
    pub discover: bool,
    /// List mode: every tracked project still gets a GetEditingProject this often.
    pub full_refresh_interval: Duration,
    /// List mode: the share of each cycle's budget the sweep may use before claims run.
    pub list_sweep_share: f64,
    pub list: ListFilter,
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
    pub project_type: Option<String>,
    pub create_source: Option<String>,
    /// Only projects created this recently (the API filters on creation time).
    pub created_within: Option<Duration>,
}

impl SyncSettings {
    pub fn from_raw(raw: RawSync) -> Result<Self, ConfigError> {
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
    pub fn from_raw(raw: RawListFilter) -> Result<Self, ConfigError> {
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
