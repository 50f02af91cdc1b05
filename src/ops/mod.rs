//! Running under an operator's tools: systemd notifications and watchdog, Prometheus
//! metrics, and the health endpoint.
//!
//! [`Ops::start`] is called by `ice-sync run` once the store is connected and migrated:
//! it installs the metrics recorder and binds `metrics.listen` (when set), tells systemd
//! READY, and arranges STOPPING on shutdown. [`OpsHooks`] is what the scheduler reports
//! into: every heartbeat pings the watchdog, every finished cycle updates the metrics,
//! the health state and the `systemctl status` line.
//!
//! * [`notify`] speaks the `sd_notify` protocol;
//! * [`metrics`] owns buckets, the recorder and what a finished cycle records; `metric_help`
//!   is every metric's help text (the names are `metric_names`);
//! * [`health`] decides what `/healthz` says;
//! * [`staleness`] reads how long ago the least recently polled projects were polled;
//! * [`server`] serves `/metrics` (refreshing the staleness gauges first) and `/healthz`;
//! * [`progress`] shows a running cycle: bar, log lines, status text.
//!
//! Nothing here touches the sync itself; the engine and the client emit their own
//! metrics through the `metrics` facade.

pub(crate) mod health;
mod metric_help;
pub mod metrics;
pub(crate) mod notify;
pub mod progress;
pub(crate) mod refusals;
pub(crate) mod serve;
pub(crate) mod server;
pub mod staleness;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::scheduler::SchedulerHooks;
use crate::storage::Store;
use crate::sync::engine::CycleReport;

use self::health::Health;
use self::notify::Notifier;
use self::progress::StatusLine;

/// The scheduler's observers: watchdog, metrics, health.
pub(crate) struct OpsHooks {
    notifier: Notifier,
    status: Arc<StatusLine>,
    health: Arc<Health>,
    store: Store,
}

impl OpsHooks {
    pub(crate) fn new(notifier: Notifier, health: Arc<Health>, store: Store) -> Self {
        Self {
            status: Arc::new(StatusLine::new(notifier.clone())),
            notifier,
            health,
            store,
        }
    }

    /// Counts enabled tracked projects in the background: a database read has no place in
    /// the scheduler's synchronous hook. A `count(*)`: one row comes back, not one per
    /// project.
    fn refresh_tracked_projects(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            match store.tracking().count_tracked().await {
                Ok(n) => metrics::set_tracked_projects(n as usize),
                Err(e) => tracing::debug!("could not count tracked projects for metrics: {e:#}"),
            }
        });
    }
}

impl SchedulerHooks for OpsHooks {
    fn heartbeat(&self) {
        self.notifier.ping();
    }

    fn schedule_changed(&self, schedule: &crate::config::Schedule) {
        self.health.set_schedule(schedule.clone());
    }

    fn cycle_finished(&self, report: &CycleReport) {
        metrics::record_cycle(report, SystemTime::now());
        self.health.record(report);
        self.status.set(&format!(
            "last cycle {} at {}: {} polled, {} changed, {} failed",
            report.outcome.as_str(),
            crate::domain::Timestamp::now(),
            report.polled,
            report.changed,
            report.failures
        ));
        self.refresh_tracked_projects();
    }

    fn refresh_cycle_finished(&self, report: &CycleReport) {
        metrics::record_refresh_cycle(report);
    }
}

/// What `ice-sync run` starts next to the scheduler.
pub(crate) struct Ops {
    hooks: Arc<OpsHooks>,
    server: Option<JoinHandle<()>>,
}

impl Ops {
    /// Installs metrics and binds `metrics.listen` (if set), then tells systemd READY.
    /// Call after the store is connected and migrated: READY means "able to sync".
    /// `extra` routes are served on the same listener (`ice-sync run` adds `POST /refresh`).
    pub(crate) async fn start(
        settings: &Settings,
        store: Store,
        extra: Option<axum::Router>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Ops> {
        let notifier = Notifier::from_env();
        let health = Arc::new(Health::new(store.clone(), settings.sync.schedule.clone()));
        let server = match settings.metrics.listen {
            Some(addr) => {
                let handle = metrics::install()?;
                let listener = server::bind(addr).await?;
                let bound = listener.local_addr().unwrap_or(addr);
                tracing::info!(addr = %bound, "serving /metrics and /healthz");
                metrics::spawn_upkeep(handle.clone(), notify::DEFAULT_HEARTBEAT, shutdown.clone());
                let staleness = staleness::Staleness::new(store.clone(), crate::clock::system());
                let routes = server::Routes {
                    metrics: handle,
                    health: health.clone(),
                    staleness: Some(Arc::new(staleness)),
                    extra,
                };
                Some(server::spawn(listener, routes, shutdown.clone()))
            }
            None => None,
        };
        let hooks = Arc::new(OpsHooks::new(notifier.clone(), health, store));
        hooks.refresh_tracked_projects();

        let stopping = notifier.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stopping.stopping();
        });
        notifier.ready(&format!(
            "syncing on schedule {:?}",
            settings.sync.schedule.expression
        ));
        if let Some(watchdog) = notifier.watchdog() {
            tracing::info!(?watchdog, "systemd watchdog enabled");
        }
        Ok(Ops { hooks, server })
    }

    pub(crate) fn hooks(&self) -> Arc<OpsHooks> {
        self.hooks.clone()
    }

    /// Follows the daemon's cycles in log lines and the systemd status text, until the
    /// returned display is stopped.
    pub(crate) fn show_progress(
        &self,
        progress: &Arc<crate::sync::CycleProgress>,
    ) -> progress::Display {
        progress::start(
            progress.clone(),
            progress::Show::for_daemon(self.hooks.status.clone()),
        )
    }

    /// Waits for the HTTP server to finish (it stops with the shutdown token), but not
    /// long: a scraper holding a request open must not delay the exit.
    pub(crate) async fn stopped(self) {
        if let Some(server) = self.server {
            let abort = server.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
