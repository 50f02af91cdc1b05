//! Reloading the configuration of a running daemon: SIGHUP (`systemctl reload`).
//!
//! The file, the environment and the credential sources are read again. An invalid new
//! configuration is refused with one error line and the running one stays. A valid one
//! is split into its halves (`config::halves`): the [`Live`] half replaces the running
//! one and takes effect at the next tick (a cycle already running finishes as it
//! started); the [`Fixed`] half is only compared with the one the process started with,
//! and each difference is named in a warning "needs a restart" on this and every later
//! reload, while the started value stays in force. Every reload logs what changed,
//! without secrets, and records its outcome for `ice-sync reload` (`reload_outcome`).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::reload_outcome::{Outcome, OutcomeFile};
use crate::app;
use crate::config::{self, Fixed, Live, ReloadPlan, Settings};
use crate::ice::IceClient;
use crate::scheduler::Current;
use crate::sync::Engine;

/// SIGHUP caught from the moment this is made: made before READY, so a reload sent as
/// soon as systemd (or a test) sees the daemon ready never meets the default action,
/// which ends the process. A SIGHUP that arrives before the reloader runs is kept and
/// served then.
pub(crate) struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    /// Starts catching SIGHUP (must run inside the runtime).
    pub(crate) fn catch() -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(hup) => Hangup(Some(hup)),
                Err(e) => {
                    tracing::warn!("cannot listen for SIGHUP, reload needs a restart: {e}");
                    Hangup(None)
                }
            }
        }
        #[cfg(not(unix))]
        Hangup()
    }
}

/// Holds the halves the daemon runs on and hands the scheduler what a reload builds.
pub(crate) struct Reloader {
    path: Option<PathBuf>,
    /// As the process started, for its whole life.
    fixed: Fixed,
    /// As the latest applied reload left it.
    live: Live,
    updates: watch::Sender<Current<Engine>>,
}

impl Reloader {
    /// `path` is the `--config` the daemon was started with, if any; `settings` what it
    /// started on.
    pub(crate) fn new(
        path: Option<PathBuf>,
        settings: &Settings,
        engine: Arc<Engine>,
    ) -> (Self, watch::Receiver<Current<Engine>>) {
        let (fixed, live) = settings.split();
        let schedule = live.sync.schedule.clone();
        let (updates, receiver) = watch::channel(Current { engine, schedule });
        let reloader = Reloader {
            path,
            fixed,
            live,
            updates,
        };
        (reloader, receiver)
    }

    /// Reloads on every SIGHUP (caught since `hangup` was made) until `shutdown`.
    pub(crate) fn spawn_on_sighup(
        mut self,
        hangup: Hangup,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                let Some(mut hup) = hangup.0 else {
                    return;
                };
                // Only now, with the handler installed, may `ice-sync reload` signal.
                let mut outcomes = OutcomeFile::from_env();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        got = hup.recv() => {
                            if got.is_none() {
                                return;
                            }
                            self.on_sighup(&mut outcomes).await;
                        }
                    }
                }
            }
            #[cfg(not(unix))]
            shutdown.cancelled().await;
        })
    }

    /// One SIGHUP: systemd told, the reload done, its outcome logged, counted and recorded.
    async fn on_sighup(&mut self, outcomes: &mut Option<OutcomeFile>) {
        tracing::info!("SIGHUP: reloading the configuration");
        let notifier = crate::ops::notify::Notifier::from_env();
        notifier.reloading();
        if let Some(file) = outcomes.as_mut() {
            file.started();
        }
        let (outcome, message) = match self.reload().await {
            Ok(plan) => (Outcome::Applied, plan.summary()),
            Err(e) => {
                tracing::error!("the configuration was not reloaded, the running one stays: {e:#}");
                (Outcome::Refused, format!("{e:#}"))
            }
        };
        metrics::counter!(crate::metric_names::RELOADS, "outcome" => outcome.as_str()).increment(1);
        if let Some(file) = outcomes.as_mut() {
            file.finished(outcome, &message);
        }
        notifier.reloaded(&format!("configuration reload {}", outcome.as_str()));
    }

    /// One reload: reads everything again and applies the live half.
    pub(crate) async fn reload(&mut self) -> anyhow::Result<ReloadPlan> {
        let new = config::load(self.path.as_deref())?;
        let (new_fixed, new_live) = new.split();
        let plan = ReloadPlan::between((&self.fixed, &self.live), (&new_fixed, &new_live));
        let running = self.updates.borrow().engine.clone();
        // Credentials are re-read whatever the plan says: the files and variables behind
        // them change without any config key changing.
        let credentials = crate::credentials::default_chain(&new_live.ice.credentials, |k| {
            std::env::var(k).ok()
        })?;
        let client = IceClient::new(app::client_options_of(&self.fixed, &new_live), credentials)?;
        let options = app::engine_options_of(&self.fixed, &new_live);
        if plan.projects.is_some() {
            let now = app::now(running.store()).await?;
            let (added, disabled) = running
                .store()
                .tracking()
                .sync_config_projects(&new_live.sync.projects, now)
                .await?;
            tracing::info!(
                added,
                disabled,
                "tracked projects updated from sync.projects"
            );
        }
        if new_live.log_level != self.live.log_level {
            if let Err(why) = crate::telemetry::set_level(&new_live.log_level) {
                tracing::warn!("log.level not changed: {why}");
            }
        }
        for change in plan.needs_restart() {
            tracing::warn!(key = %change.key, "{}", change.description);
        }
        let engine = Arc::new(running.successor(client, options));
        self.updates.send_replace(Current {
            engine,
            schedule: new_live.sync.schedule.clone(),
        });
        tracing::info!("configuration reloaded: {}", plan.summary());
        self.live = new_live;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use crate::app::{client_options_of, engine_options_of};
    use crate::config::load::load_vars;

    /// A reload builds the client and the engine options from the fixed half the
    /// process started with and the new live half: a restart-only change never leaks in
    /// through a later reload (the endpoint bug), and a live key applies.
    #[test]
    fn what_a_reload_builds_keeps_the_fixed_half_it_started_with() {
        let (fixed, _) = load_vars(&[]).expect("settings").split();
        let reloaded = load_vars(&[
            ("ICE_SYNC__ICE__ENDPOINT", "http://127.0.0.1:9/"),
            ("ICE_SYNC__ICE__TIMEOUT", "3s"),
            ("ICE_SYNC__ICE__REQUEST_SOURCE", "WebSDK"),
            ("ICE_SYNC__SYNC__REPLICA_ID", "other"),
            ("ICE_SYNC__SYNC__LEASE_TTL", "90s"),
            ("ICE_SYNC__SYNC__MAX_RETRIES", "1"),
            ("ICE_SYNC__SYNC__REMOVAL_CONFIRMATIONS", "4"),
            ("ICE_SYNC__LOG__LEVEL", "debug"),
        ])
        .expect("settings");
        let (_, live) = reloaded.split();
        let client = client_options_of(&fixed, &live);
        assert_eq!(
            client.endpoint.as_str(),
            "https://ice.cn-shanghai.aliyuncs.com/"
        );
        assert_eq!(client.timeout, std::time::Duration::from_secs(10));
        assert_eq!(client.request_source, None);
        assert_eq!(client.max_retries, 1);
        let engine = engine_options_of(&fixed, &live);
        assert_eq!(engine.replica_id, fixed.sync.replica_id);
        assert_eq!(engine.lease_ttl, std::time::Duration::from_secs(60));
        assert_eq!(engine.sync.removal_confirmations, 4);
    }
}
