//! Prometheus metrics: the recorder, every metric's name, type and help text, and the
//! per-cycle numbers the scheduler reports.
//!
//! Metrics are emitted where things happen, through the `metrics` facade: the ICE client
//! counts requests, retries and rate-limiter waits, the engine counts transitions, the
//! scheduler counts skipped ticks. This module installs the one recorder that collects
//! them (only when `metrics.listen` is set), gives histograms real buckets (without them
//! the exporter writes summaries), describes every name for `# HELP`, and records what
//! only a finished cycle knows. `ops::server` renders the result on `GET /metrics`.
//!
//! Names follow `ice_sync_<what>_<unit>[_total]`; labels have small, fixed value sets.
//! A project ID is never a label.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::sync::engine::{CycleOutcome, CycleReport};

pub(crate) use crate::metric_names::*;

/// From a quick cycle against a handful of projects to one that used its whole
/// (default five-minute) period.
const CYCLE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// One HTTP round trip to ICE: tens of milliseconds in-region, up to `ice.timeout`.
const API_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// From a request noticed at once (PostgreSQL's notification) to one that waited for an
/// in-flight poll or a busy daemon.
const REQUEST_WAIT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The recorder's configuration, shared by [`install`] and the tests (which build a
/// local recorder instead of the process-wide one).
pub(crate) fn builder() -> anyhow::Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CYCLE_DURATION.to_string()), CYCLE_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(API_DURATION.to_string()), API_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(POLL_REQUEST_WAIT.to_string()),
                REQUEST_WAIT_BUCKETS,
            )
        })
        .context("configuring histogram buckets")
}

/// Installs the process-wide recorder (once; later calls return the same handle) and
/// describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    // Two first callers at once (tests on parallel threads) must not both install.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = builder()?
        .install_recorder()
        .context("installing the Prometheus recorder: another metrics recorder is installed")?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// `# HELP` text for every metric, and zeros for the counters that may stay untouched
/// for a long time, so a dashboard sees `0` rather than no series at all.
pub(crate) fn describe() {
    process_collector().describe();
    describe_counter!(
        CYCLES,
        "Sync cycles finished, by outcome (success, partial, failed)."
    );
    describe_histogram!(
        CYCLE_DURATION,
        Unit::Seconds,
        "Wall-clock duration of sync cycles."
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time at which the last cycle with outcome success finished."
    );
    describe_gauge!(
        LAST_CYCLE,
        Unit::Seconds,
        "Unix time at which the last cycle finished, whatever its outcome."
    );
    describe_gauge!(
        TRACKED,
        "Enabled tracked projects, counted after each cycle."
    );
    describe_counter!(PROJECTS_POLLED, "Projects polled by sync cycles.");
    describe_counter!(
        PROJECT_FAILURES,
        "Projects whose poll failed (API error after retries, or the database write failed)."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running build."
    );
    describe_counter!(
        API_REQUESTS,
        "ICE API requests sent (each retry counts), by action, outcome (ok, retryable, not_found, auth, error) and ICE error code."
    );
    describe_histogram!(
        API_DURATION,
        Unit::Seconds,
        "ICE API request latency, by action."
    );
    describe_counter!(
        API_RETRIES,
        "ICE API requests retried after a transient failure."
    );
    describe_counter!(
        RATE_LIMITER_WAITS,
        "Requests that waited for the client-side rate limiter (sync.max_qps)."
    );
    describe_counter!(
        TRANSITIONS,
        "History rows written, by the status entered (removed for removals)."
    );
    describe_counter!(
        GAP_TRANSITIONS,
        "History rows whose change skipped states of the known lifecycle (polled too rarely to see them), by the states skipped."
    );
    describe_gauge!(
        OLDEST_OBSERVATION_AGE,
        Unit::Seconds,
        "Age of the oldest poll among enabled projects: projects=unsettled (due at every tick) or all; never-polled projects count from when they were tracked."
    );
    describe_counter!(
        TICKS_SKIPPED,
        "Schedule ticks lost because the previous cycle ran past a whole tick."
    );
    describe_counter!(
        CLOCK_STEPS,
        "Steps of the system clock noticed between cycles (NTP corrections, VM restores)."
    );
    describe_gauge!(
        CLOCK_SKEW,
        Unit::Seconds,
        "This machine's clock minus the database server's (PostgreSQL), at the last cycle."
    );
    describe_counter!(
        CYCLE_OVERRUNS,
        "Cycles that stopped claiming before the next tick with projects still due."
    );
    describe_counter!(
        WRITES_FENCED,
        "Answers dropped because another replica had taken the project over (claim token)."
    );
    describe_counter!(
        STORAGE_ERRORS,
        "Storage errors during cycles, by kind (unavailable, contention, refused)."
    );
    describe_counter!(
        REMOVALS_SUPPRESSED,
        "Not-found answers not counted toward removal because most of their cycle said the same."
    );
    describe_counter!(
        POLL_REQUESTS,
        "Projects asked to be polled now, by source (cli: ice-sync refresh, http: POST /refresh, callback: ICE events)."
    );
    describe_histogram!(
        POLL_REQUEST_WAIT,
        Unit::Seconds,
        "How long the oldest poll request had waited when a refresh cycle started to claim."
    );
    describe_counter!(
        CALLBACKS,
        "ICE event callbacks received, by outcome: accepted and tracked queued a poll, duplicate was a repeat (answered 200, nothing queued), the others were refused."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook POSTs of transitions, by outcome (delivered: 2xx; failed: anything else or a timeout, retried)."
    );
    describe_gauge!(
        WEBHOOK_PENDING,
        "Transitions in webhook_outbox not yet acknowledged by webhook.url."
    );
    describe_gauge!(
        WEBHOOK_OLDEST_PENDING,
        Unit::Seconds,
        "Age of the oldest transition not yet acknowledged by webhook.url (0 when none)."
    );
    describe_counter!(
        WEBHOOK_DROPPED,
        "Transitions dropped from webhook_outbox undelivered after webhook.max_pending_age (their history rows stay)."
    );
    describe_counter!(
        PRUNED_ROWS,
        "Bookkeeping rows deleted by the retention prune, by table (sync_runs, list_sweeps, callback_events, webhook_outbox)."
    );
    describe_counter!(
        RELOADS,
        "Configuration reloads (SIGHUP), by outcome (applied, refused: the running configuration stays)."
    );
    describe_counter!(
        HTTP_REFUSED,
        "Connections and requests an HTTP listener turned away, by listener (metrics, callback) and reason."
    );
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Connections an HTTP listener holds open now, by listener."
    );
    describe_histogram!(
        RESPONSE_BUDGET_WAIT,
        Unit::Seconds,
        "How long a fetch waited for its share of the in-flight ICE response budget."
    );
    describe_gauge!(
        RESPONSE_BUDGET_HELD,
        Unit::Bytes,
        "Bytes of the 32 MiB in-flight budget held now: ICE answers being read or parsed, and projects waiting for or in the writer's batch until their write commits."
    );
    describe_counter!(
        CREDENTIAL_REFRESHES,
        "Fetches of temporary credentials (STS, ECS metadata), by source kind and outcome."
    );

    describe_counter!(
        LIST_PAGES,
        "List mode: ListEditingProjects pages fetched and processed by this replica's sweeps."
    );
    describe_gauge!(
        LIST_CYCLE_PAGES,
        "List mode: pages this replica's last cycle swept (0 when another replica held the sweep)."
    );
    describe_counter!(
        LIST_SWEEPS,
        "List mode: sweeps this replica ended, by outcome (completed, restarted: ICE refused the token, abandoned: the filter changed)."
    );
    describe_gauge!(
        LIST_SWEEP_DURATION,
        Unit::Seconds,
        "List mode: how long the last sweep this replica completed took, from page one to the last page."
    );
    describe_gauge!(
        LIST_SWEEP_AGE,
        Unit::Seconds,
        "List mode: age of the sweep in progress (since its page one) at the end of the last cycle; 0 when none."
    );

    for outcome in ["success", "partial", "failed"] {
        metrics::counter!(CYCLES, "outcome" => outcome).increment(0);
    }
    for name in [
        PROJECTS_POLLED,
        PROJECT_FAILURES,
        API_RETRIES,
        RATE_LIMITER_WAITS,
        TICKS_SKIPPED,
        CLOCK_STEPS,
        CYCLE_OVERRUNS,
        WRITES_FENCED,
        REMOVALS_SUPPRESSED,
        WEBHOOK_DROPPED,
    ] {
        metrics::counter!(name).increment(0);
    }
    for table in crate::storage::PruneTarget::ALL {
        metrics::counter!(PRUNED_ROWS, "table" => table.table()).increment(0);
    }
    for source in ["cli", "http", "callback"] {
        metrics::counter!(POLL_REQUESTS, "source" => source).increment(0);
    }
    for outcome in ["delivered", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for kind in ["unavailable", "contention", "refused"] {
        metrics::counter!(STORAGE_ERRORS, "kind" => kind).increment(0);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // The gaps the lifecycle knows best, so `rate()` has a series before the first one.
    for skipped in ["Producing", "BroadCasting"] {
        metrics::counter!(GAP_TRANSITIONS, "skipped" => skipped).increment(0);
    }
}

/// What a finished cycle adds to the metrics.
pub(crate) fn record_cycle(report: &CycleReport, finished: SystemTime) {
    let outcome = report.outcome.as_str();
    metrics::counter!(CYCLES, "outcome" => outcome).increment(1);
    metrics::histogram!(CYCLE_DURATION).record(report.duration.as_secs_f64());
    metrics::counter!(PROJECTS_POLLED).increment(report.polled as u64);
    metrics::counter!(PROJECT_FAILURES).increment(report.failures as u64);
    let at = unix_seconds(finished);
    metrics::gauge!(LAST_CYCLE).set(at);
    if report.outcome == CycleOutcome::Success {
        metrics::gauge!(LAST_SUCCESS).set(at);
    }
}

/// A refresh cycle's polls count like any others; the cycle totals, durations and
/// last-success times stay the schedule's.
pub(crate) fn record_refresh_cycle(report: &CycleReport) {
    metrics::counter!(PROJECTS_POLLED).increment(report.polled as u64);
    metrics::counter!(PROJECT_FAILURES).increment(report.failures as u64);
}

pub(crate) fn set_tracked_projects(count: usize) {
    metrics::gauge!(TRACKED).set(count as f64);
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// The `process_*` families of the Prometheus client conventions (CPU seconds, resident
/// and virtual memory, open and maximum file descriptors, start time, threads), read
/// from `/proc/self` by `metrics-process`.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Refreshes the `process_*` values: called before each `/metrics` render, so a
/// scrape sees this moment's figures.
pub(crate) fn collect_process() {
    process_collector().collect();
}

/// Keeps the recorder's histogram storage bounded between scrapes (rendering drains it
/// too, but nobody may be scraping).
pub(crate) fn spawn_upkeep(
    handle: PrometheusHandle,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => handle.run_upkeep(),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: CycleOutcome) -> CycleReport {
        CycleReport {
            run_id: Some(1),
            outcome,
            due: 3,
            polled: 3,
            changed: 1,
            transitions: 1,
            failures: usize::from(outcome != CycleOutcome::Success),
            fenced: 0,
            removed: 0,
            duration: Duration::from_millis(700),
            ..Default::default()
        }
    }

    #[test]
    fn renders_histograms_help_and_cycle_numbers() {
        let recorder = builder().expect("builder").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            record_cycle(
                &report(CycleOutcome::Success),
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            );
            record_cycle(
                &report(CycleOutcome::Failed),
                UNIX_EPOCH + Duration::from_secs(1_700_000_060),
            );
            set_tracked_projects(3);
        });
        let text = handle.render();
        for expected in [
            "# TYPE ice_sync_cycle_duration_seconds histogram",
            "ice_sync_cycle_duration_seconds_bucket{le=\"1\"} 2",
            "ice_sync_cycles_total{outcome=\"success\"} 1",
            "ice_sync_cycles_total{outcome=\"failed\"} 1",
            "ice_sync_cycles_total{outcome=\"partial\"} 0",
            "ice_sync_last_success_timestamp_seconds 1700000000",
            "ice_sync_last_cycle_timestamp_seconds 1700000060",
            "ice_sync_tracked_projects 3",
            "ice_sync_project_failures_total 1",
            "# HELP ice_sync_api_retries_total",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}
