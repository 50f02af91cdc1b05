//! [`Daemon`]: the daemon assembled from [`Settings`] in one call, then run until a
//! shutdown token is cancelled.
//!
//! [`DaemonBuilder::build`] does, in this order, what `ice-sync run` needs before it reports
//! READY: the SQLite writer lock, the store connected and migrated, the region check,
//! what a previous process left behind closed, `sync.projects` tracked, credentials
//! resolved and tried, the engine; then the callback endpoint bound (a port in use
//! stops start-up here) and the webhook deliverer started. [`Daemon::run`] serves the
//! schedule, poll requests, reloads, the callback endpoint and the retention pass until
//! shutdown, then closes the store. [`DaemonBuilder`] holds the overrides `demo`, the
//! tests and the benchmarks need (credentials, engine and client options);
//! [`DaemonBuilder::engine`] stops after the engine (`run --once`, `refresh`, tests and
//! benchmarks driving cycles by hand).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{check_region, client_options, engine_options, open_store, reload, start_feed};
use crate::config::Settings;
use crate::credentials::CredentialProvider;
use crate::ice::{ClientOptions, IceClient};
use crate::scheduler::{self, NoHooks, SchedulerHooks, SchedulerOptions};
use crate::sync::{Engine, EngineOptions};

type Tune<'a, T> = Box<dyn FnOnce(&mut T) + 'a>;

/// How a [`Daemon`] (or only its engine) is assembled; [`Daemon::builder`].
pub struct DaemonBuilder<'a> {
    settings: &'a Settings,
    config_path: Option<PathBuf>,
    credentials: Option<CredentialProvider>,
    tune_engine: Option<Tune<'a, EngineOptions>>,
    tune_client: Option<Tune<'a, ClientOptions>>,
}

/// A daemon ready to run: engine built, callback endpoint bound, deliverer started.
pub struct Daemon {
    settings: Settings,
    config_path: Option<PathBuf>,
    engine: Arc<Engine>,
    hooks: Arc<dyn SchedulerHooks>,
    callbacks: Option<crate::callback::Bound>,
    feed: Option<crate::feed::Running>,
    /// Stops the deliverer; cancelled when `run`'s shutdown is, or when a daemon that
    /// never ran is dropped.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
    /// SIGHUP caught from build on (before READY).
    hangup: reload::Hangup,
}

impl Daemon {
    pub fn builder(settings: &Settings) -> DaemonBuilder<'_> {
        DaemonBuilder {
            settings,
            config_path: None,
            credentials: None,
            tune_engine: None,
            tune_client: None,
        }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Observers of the schedule (systemd watchdog, metrics, health); none by default.
    pub(crate) fn with_hooks(mut self, hooks: Arc<dyn SchedulerHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Cycles on the schedule until `shutdown`, with poll requests, reloads (SIGHUP), the
    /// callback endpoint and the retention pass beside them; everything stops before the
    /// store closes. Returns how many scheduled cycles ran.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> u64 {
        let Daemon {
            settings,
            config_path,
            engine,
            hooks,
            callbacks,
            feed,
            stop,
            _stop_on_drop,
            hangup,
        } = self;
        tracing::info!(
            schedule = %settings.sync.schedule.expression,
            backend = engine.store().backend(),
            "ice-sync started"
        );
        let forward = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stop.cancel();
            })
        };
        let options = SchedulerOptions {
            schedule: settings.sync.schedule.clone(),
            shutdown_timeout: settings.sync.shutdown_timeout,
            // Half the systemd watchdog interval when one is set, so pings are never late.
            heartbeat: crate::ops::notify::heartbeat_interval(
                crate::ops::notify::DEFAULT_HEARTBEAT,
            ),
        };
        let (reloader, updates) = reload::Reloader::new(config_path, &settings, engine.clone());
        let reloads = reloader.spawn_on_sighup(hangup, shutdown.clone());
        let requests = spawn_requests(updates.clone(), hooks.clone(), shutdown.clone());
        let shutdown_timeout = options.shutdown_timeout;
        let callbacks = callbacks.map(|bound| bound.serve(shutdown.clone()));
        let retention = crate::retention::daemon::spawn(
            engine.store().clone(),
            engine.clock().clone(),
            crate::retention::rules(&settings),
            crate::retention::daemon::interval(),
            shutdown.clone(),
        );
        let cycles = scheduler::run_reloadable(updates, options, hooks, shutdown).await;
        // Refresh cycles stop claiming with the shutdown token; their in-flight polls
        // get the same time to commit as the schedule's.
        let abort = requests.abort_handle();
        if tokio::time::timeout(shutdown_timeout, requests)
            .await
            .is_err()
        {
            abort.abort();
        }
        reloads.abort();
        // Stops between two batches once shutdown is cancelled.
        if let Err(e) = retention.await {
            tracing::error!("the retention pass ended abnormally: {e}");
        }
        if let Some(serving) = callbacks {
            serving.stopped().await;
        }
        let _ = forward.await;
        if let Some(feed) = feed {
            feed.stopped().await;
        }
        engine.store().close().await;
        tracing::info!(cycles, "ice-sync stopped");
        cycles
    }
}

impl<'a> DaemonBuilder<'a> {
    /// The `--config` file a reload reads again.
    pub fn config_path(mut self, path: Option<PathBuf>) -> Self {
        self.config_path = path;
        self
    }

    /// These credentials instead of the chain `ice.*` and the environment resolve to.
    pub(crate) fn credentials(mut self, credentials: impl Into<CredentialProvider>) -> Self {
        self.credentials = Some(credentials.into());
        self
    }

    /// A last word on the engine options (batch sizes, or no schedule so that every
    /// project is due at every cycle driven by hand).
    pub fn tune(mut self, tune: impl FnOnce(&mut EngineOptions) + 'a) -> Self {
        self.tune_engine = Some(Box::new(tune));
        self
    }

    /// A last word on the ICE client's options (shorter backoff for the demo).
    pub(crate) fn tune_client(mut self, tune: impl FnOnce(&mut ClientOptions) + 'a) -> Self {
        self.tune_client = Some(Box::new(tune));
        self
    }

    /// Everything [`Daemon::run`] needs: the engine, the callback endpoint bound (not
    /// serving yet) and the webhook deliverer started.
    pub(crate) async fn build(self) -> anyhow::Result<Daemon> {
        let settings = self.settings.clone();
        let config_path = self.config_path.clone();
        let hangup = reload::Hangup::catch();
        let engine = self.engine().await?;
        let callbacks = bind_callbacks(&settings, &engine).await?;
        let stop = CancellationToken::new();
        let feed = start_feed(&settings, &engine, stop.clone()).await?;
        Ok(Daemon {
            settings,
            config_path,
            engine,
            hooks: Arc::new(NoHooks),
            callbacks,
            feed,
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            hangup,
        })
    }

    /// The engine alone: store migrated, config projects tracked, what a previous
    /// process left behind closed, credentials tried. The overrides are applied before
    /// anything is awaited, so they need not be `Send`.
    pub fn engine(self) -> impl Future<Output = anyhow::Result<Arc<Engine>>> + 'a {
        let mut options = engine_options(self.settings);
        if let Some(tune) = self.tune_engine {
            tune(&mut options);
        }
        let mut client = client_options(self.settings);
        if let Some(tune) = self.tune_client {
            tune(&mut client);
        }
        let parts = EngineParts {
            settings: self.settings,
            options,
            client,
            credentials: self.credentials,
        };
        parts.assemble()
    }
}

/// What [`DaemonBuilder::engine`] assembles, overrides applied.
struct EngineParts<'a> {
    settings: &'a Settings,
    options: EngineOptions,
    client: ClientOptions,
    credentials: Option<CredentialProvider>,
}

impl EngineParts<'_> {
    async fn assemble(self) -> anyhow::Result<Arc<Engine>> {
        let settings = self.settings;
        // One daemon per SQLite file: a second one would poll everything twice.
        let lock = crate::storage::lock_writer(&settings.database)?;
        let mut store = open_store(settings).await?;
        // Before anything is polled: a database that mirrors another region is refused.
        check_region(settings, &store).await?;
        if settings.webhook.enabled() {
            // Fail at start-up on an unsigned webhook. Every write queues its transitions
            // (`run --once` too); a daemon delivers them.
            crate::feed::Webhook::resolve(&settings.webhook, |k| std::env::var(k).ok())?;
            store = store.with_feed(Arc::new(tokio::sync::Notify::new()));
        }
        super::take_over(&store, settings, &self.options.replica_id).await?;
        let credentials = match self.credentials {
            Some(given) => given,
            None => super::resolve_credentials(settings)?,
        };
        // Fail at start-up, not at the first cycle, when no source yields credentials.
        credentials.credentials().await?;
        tracing::info!(source = %credentials.source(), provider = %credentials.kind(), endpoint = %self.client.endpoint, "credentials resolved");
        let client =
            IceClient::new(self.client, credentials).context("building the HTTP client")?;
        Ok(Arc::new(
            Engine::new(store, client, self.options).holding(lock),
        ))
    }
}

/// The ICE callback endpoint of `callback.listen` (if set), bound and with its keys read,
/// not serving yet: part of [`DaemonBuilder::build`], before READY, so a port in use or a
/// missing AuthKey stops start-up. [`Daemon::run`] serves it.
pub async fn bind_callbacks(
    settings: &Settings,
    engine: &Engine,
) -> anyhow::Result<Option<crate::callback::Bound>> {
    crate::callback::Bound::bind(
        settings,
        engine.store().clone(),
        engine.clock().clone(),
        |k| std::env::var(k).ok(),
    )
    .await
}

/// Serves poll requests beside the schedule, on the engine the latest reload built.
fn spawn_requests(
    updates: tokio::sync::watch::Receiver<scheduler::Current<Engine>>,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        crate::refresh::daemon::serve_refreshes(
            move || updates.borrow().engine.clone(),
            move |report| {
                scheduler::log_report(report);
                hooks.refresh_cycle_finished(report);
            },
            shutdown,
        )
        .await
    })
}
