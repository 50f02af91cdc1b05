//! Prometheus metrics: the recorder and the per-cycle numbers the scheduler reports
//! (every metric's help text is `ops::metric_help`).
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
    super::metric_help::describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
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
pub(super) fn process_collector() -> &'static metrics_process::Collector {
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
            super::super::metric_help::describe();
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
