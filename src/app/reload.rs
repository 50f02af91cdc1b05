//! Reloading the configuration of a running daemon: SIGHUP (`systemctl reload`).
//!
//! The file, the environment and the credential sources are read again. An invalid new
//! configuration is refused with one error line and the running one stays. A valid one
//! is compared with the running one (`config::changes`): what can change at run time —
//! tracked IDs in `sync.projects`, the schedule, intervals, `max_qps`, concurrency,
//! retries, the log level, credentials — takes effect at the next tick (a cycle already
//! running finishes as it started); what needs a restart is named in a warning and left
//! as it was. Every reload logs what changed, without secrets.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::{self, ReloadPlan, Settings};
use crate::ice::IceClient;
use crate::scheduler::Current;
use crate::sync::Engine;

/// Holds the running configuration and hands the scheduler what a reload builds.
pub struct Reloader {
    path: Option<PathBuf>,
    settings: Settings,
    updates: watch::Sender<Current<Engine>>,
}

impl Reloader {
    /// `path` is the `--config` the daemon was started with, if any.
    pub fn new(
        path: Option<PathBuf>,
        settings: Settings,
        engine: Arc<Engine>,
    ) -> (Self, watch::Receiver<Current<Engine>>) {
        let schedule = settings.sync.schedule.clone();
        let (updates, receiver) = watch::channel(Current { engine, schedule });
        (
            Reloader {
                path,
                settings,
                updates,
            },
            receiver,
        )
    }

    /// Reloads on every SIGHUP until `shutdown`.
    pub fn spawn_on_sighup(mut self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let mut hup = match signal(SignalKind::hangup()) {
                    Ok(hup) => hup,
                    Err(e) => {
                        tracing::warn!("cannot listen for SIGHUP, reload needs a restart: {e}");
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        got = hup.recv() => {
                            if got.is_none() {
                                return;
                            }
                            tracing::info!("SIGHUP: reloading the configuration");
                            let notifier = crate::ops::notify::Notifier::from_env();
                            notifier.reloading();
                            let outcome = match self.reload().await {
                                Ok(_) => "applied",
                                Err(e) => {
                                    tracing::error!("the configuration was not reloaded, the running one stays: {e:#}");
                                    "refused"
                                }
                            };
                            metrics::counter!(crate::metric_names::RELOADS, "outcome" => outcome)
                                .increment(1);
                            notifier.reloaded(&format!("configuration reload {outcome}"));
                        }
                    }
                }
            }
            #[cfg(not(unix))]
            shutdown.cancelled().await;
        })
    }

    /// One reload: reads everything again and applies what can change now.
    pub async fn reload(&mut self) -> anyhow::Result<ReloadPlan> {
        let (new, plan) = config::reload(&self.settings, self.path.as_deref())?;
        let running = self.updates.borrow().engine.clone();
        // Credentials are re-read whatever the plan says: the files and variables behind
        // them change without any config key changing.
        let credentials = app::resolve_credentials(&new)?;
        let mut client_options = app::client_options(&self.settings);
        client_options.max_qps = new.sync.max_qps;
        client_options.max_retries = new.sync.max_retries;
        client_options.max_response_bytes = new.ice.max_response_bytes;
        let client = IceClient::new(client_options, credentials)?;
        let mut options = app::engine_options(&new);
        // What needs a restart stays as the daemon started.
        let old = running.options();
        options.replica_id = old.replica_id.clone();
        options.lease_ttl = old.lease_ttl;
        options.cycle_timeout = old.cycle_timeout;
        options.list = old.list.clone();
        options.policy.full_refresh = old.policy.full_refresh;
        if plan.projects.is_some() {
            let now = app::now(running.store()).await?;
            let (added, disabled) = running
                .store()
                .tracking()
                .sync_config_projects(&new.sync.projects, now)
                .await?;
            tracing::info!(
                added,
                disabled,
                "tracked projects updated from sync.projects"
            );
        }
        if new.log.level != self.settings.log.level {
            if let Err(why) = crate::telemetry::set_level(&new.log.level) {
                tracing::warn!("log.level not changed: {why}");
            }
        }
        for change in plan.needs_restart() {
            tracing::warn!(key = %change.key, "{}", change.description);
        }
        let engine = Arc::new(running.successor(client, options));
        self.updates.send_replace(Current {
            engine,
            schedule: new.sync.schedule.clone(),
        });
        tracing::info!("configuration reloaded: {}", plan.summary());
        self.settings = new;
        Ok(plan)
    }
}
