//! Every metric's name, in one place. A leaf: the modules that emit metrics (the ICE
//! client, the engine, the scheduler) and `ops::metrics`, which describes them for
//! `# HELP` and renders them, all name them from here.
//!
//! Names follow `ice_sync_<what>_<unit>[_total]`; labels have small, fixed value sets.
//! A project ID is never a label.

pub(crate) const CYCLES: &str = "ice_sync_cycles_total";
pub(crate) const CYCLE_DURATION: &str = "ice_sync_cycle_duration_seconds";
pub(crate) const LAST_SUCCESS: &str = "ice_sync_last_success_timestamp_seconds";
pub(crate) const LAST_CYCLE: &str = "ice_sync_last_cycle_timestamp_seconds";
pub(crate) const TRACKED: &str = "ice_sync_tracked_projects";
pub const PROJECTS_POLLED: &str = "ice_sync_projects_polled_total";
pub(crate) const PROJECT_FAILURES: &str = "ice_sync_project_failures_total";
pub(crate) const BUILD_INFO: &str = "ice_sync_build_info";
pub(crate) const API_REQUESTS: &str = "ice_sync_api_requests_total";
pub(crate) const API_DURATION: &str = "ice_sync_api_request_duration_seconds";
pub(crate) const API_RETRIES: &str = "ice_sync_api_retries_total";
pub(crate) const RATE_LIMITER_WAITS: &str = "ice_sync_rate_limiter_waits_total";
pub(crate) const TRANSITIONS: &str = "ice_sync_transitions_total";
pub(crate) const TICKS_SKIPPED: &str = "ice_sync_ticks_skipped_total";
pub(crate) const CREDENTIAL_REFRESHES: &str = "ice_sync_credential_refreshes_total";
pub(crate) const CLOCK_STEPS: &str = "ice_sync_clock_steps_total";
pub(crate) const CLOCK_SKEW: &str = "ice_sync_clock_skew_seconds";
pub(crate) const CYCLE_OVERRUNS: &str = "ice_sync_cycle_overruns_total";
pub(crate) const WRITES_FENCED: &str = "ice_sync_writes_fenced_total";
pub(crate) const STORAGE_ERRORS: &str = "ice_sync_storage_errors_total";
pub(crate) const REMOVALS_SUPPRESSED: &str = "ice_sync_removals_suppressed_total";
pub(crate) const GAP_TRANSITIONS: &str = "ice_sync_gap_transitions_total";
pub(crate) const OLDEST_OBSERVATION_AGE: &str = "ice_sync_oldest_observation_age_seconds";
pub(crate) const POLL_REQUESTS: &str = "ice_sync_poll_requests_total";
pub(crate) const POLL_REQUEST_WAIT: &str = "ice_sync_poll_request_wait_seconds";
pub(crate) const CALLBACKS: &str = "ice_sync_callbacks_total";
/// Every `outcome` of [`CALLBACKS`] (see `callback::Outcome`).
pub(crate) const CALLBACK_OUTCOMES: &[&str] = &[
    "accepted",
    "tracked",
    "duplicate",
    "unsigned",
    "bad_signature",
    "stale",
    "too_large",
    "bad_request",
    "unknown_project",
    "unavailable",
    "not_found",
    "method_not_allowed",
    "replayed",
    "track_budget_spent",
];
pub(crate) const WEBHOOK_DELIVERIES: &str = "ice_sync_webhook_deliveries_total";
pub(crate) const WEBHOOK_PENDING: &str = "ice_sync_webhook_pending";
pub(crate) const WEBHOOK_OLDEST_PENDING: &str = "ice_sync_webhook_oldest_pending_seconds";
pub(crate) const WEBHOOK_DROPPED: &str = "ice_sync_webhook_dropped_total";
pub(crate) const PRUNED_ROWS: &str = "ice_sync_pruned_rows_total";
pub(crate) const LIST_PAGES: &str = "ice_sync_list_pages_total";
pub(crate) const LIST_CYCLE_PAGES: &str = "ice_sync_list_cycle_pages";
pub(crate) const LIST_SWEEPS: &str = "ice_sync_list_sweeps_total";
pub(crate) const LIST_SWEEP_DURATION: &str = "ice_sync_list_sweep_duration_seconds";
pub(crate) const LIST_SWEEP_AGE: &str = "ice_sync_list_sweep_age_seconds";
/// Connections and requests an HTTP listener turned away, by `listener` (`metrics`,
/// `callback`) and `reason` (see `ops::serve` and `ops::refusals`).
pub(crate) const HTTP_REFUSED: &str = "ice_sync_http_refused_total";
/// Connections an HTTP listener holds open now, by `listener`.
pub(crate) const HTTP_CONNECTIONS: &str = "ice_sync_http_connections";
/// How long a fetch waited for its share of the in-flight response budget (`ice::budget`).
pub(crate) const RESPONSE_BUDGET_WAIT: &str = "ice_sync_response_budget_wait_seconds";
/// Bytes of the in-flight budget held now: answers being read, parsed projects, and
/// projects queued for or batched by the writer, until their write commits.
pub(crate) const RESPONSE_BUDGET_HELD: &str = "ice_sync_response_budget_held_bytes";

/// `ice_sync_reloads_total{outcome}`: configuration reloads (SIGHUP), `applied` or
/// `refused` (the running configuration stays).
pub(crate) const RELOADS: &str = "ice_sync_reloads_total";
