//! Wiring: turns [`Settings`] into a connected store, an ICE client and an engine, and
//! runs the daemon. Commands in `cli` call these; tests call them too, so the daemon
//! under test is assembled exactly as in production.

mod region;
pub mod reload;
mod webhook;

pub use region::check_region;
pub use webhook::start_feed;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, SyncMode};
use crate::credentials::{self, CredentialProvider};
use crate::domain::Timestamp;
use crate::ice::{ClientOptions, IceClient};
use crate::scheduler::{self, SchedulerHooks, SchedulerOptions};
use crate::storage::{StorageError, Store};
use crate::sync::policy::PollPolicy;
use crate::sync::{CycleOutcome, Engine, EngineOptions, ListMode};

/// Connects and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    // A schema from a newer binary (or a half-applied migration) is not something to
    // migrate over: one message naming both versions, exit 2 (a restart cannot fix it).
    let state = store.migration_state().await?;
    if state.dirty.is_some() || !state.unknown.is_empty() || !state.changed.is_empty() {
        let why = crate::storage::read_only::schema_mismatch(&state).unwrap_or_default();
        store.close().await;
        return Err(crate::cli::Exit {
            code: 2,
            message: why,
        }
        .into());
    }
    let applied = store.migrate().await?;
    if applied > 0 {
        tracing::info!(
            applied,
            backend = store.backend(),
            "applied database migrations"
        );
    }
    Ok(store)
}

/// "Now" for a command's writes: the database server's clock where it decides order
/// and time (PostgreSQL), else this machine's.
pub async fn now(store: &Store) -> Result<Timestamp, StorageError> {
    Ok(store.database_now().await?.unwrap_or_else(Timestamp::now))
}

/// The credential chain over the process environment. Nothing is fetched yet: the
/// first request (or [`prepare_engine`]'s start-up check) walks the chain.
pub fn resolve_credentials(settings: &Settings) -> anyhow::Result<CredentialProvider> {
    credentials::default_chain(&settings.ice.credentials, |k| std::env::var(k).ok())
}

pub fn client_options(settings: &Settings) -> ClientOptions {
    ClientOptions {
        endpoint: settings.ice.endpoint.clone(),
        request_source: settings.ice.request_source.clone(),
        timeout: settings.ice.timeout,
        max_qps: settings.sync.max_qps,
        max_retries: settings.sync.max_retries,
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(20),
        max_response_bytes: settings.ice.max_response_bytes,
    }
}

pub fn build_client(
    settings: &Settings,
    credentials: impl Into<CredentialProvider>,
) -> anyhow::Result<IceClient> {
    IceClient::new(client_options(settings), credentials).context("building the HTTP client")
}

pub fn engine_options(settings: &Settings) -> EngineOptions {
    let sync = &settings.sync;
    EngineOptions {
        concurrency: sync.concurrency,
        removal_confirmations: sync.removal_confirmations,
        // Scheduled cycles stop claiming a margin before the next tick on their own.
        cycle_timeout: sync.cycle_timeout,
        replica_id: sync.replica_id.clone(),
        policy: PollPolicy {
            schedule: Some(sync.schedule.cron.clone()),
            settled_interval: sync.settled_interval,
            intervals: sync.intervals.clone(),
            error_backoff_max: sync.error_backoff_max,
            full_refresh: (sync.mode == SyncMode::List).then_some(sync.full_refresh_interval),
        },
        list: (sync.mode == SyncMode::List).then(|| ListMode {
            filter: sync.list.clone(),
            discover: sync.discover,
            sweep_share: sync.list_sweep_share,
            ..ListMode::default()
        }),
        lease_ttl: sync.lease_ttl,
        max_qps: sync.max_qps.map(|q| q.get()),
        jobs: settings.jobs.enabled,
        ..EngineOptions::default()
    }
}

/// The `sync_runs.replica_id` pattern of this host's earlier processes: `HOST:%` for the
/// default `HOST:PID:RAND` ids, else the configured id itself.
fn own_runs_pattern(replica_id: &str) -> String {
    crate::config::replica::own_runs_pattern(replica_id)
}

/// A daemon on this host that died (SIGKILL, OOM, power) left leases that would keep
/// its projects from being polled until they expire. Its `HOST:PID:RAND` id says whether
/// that process is gone; if so its claims are released now instead of after `sync.lease_ttl`.
async fn release_dead_local_leases(
    store: &Store,
    own_pattern: &str,
    own_id: &str,
) -> anyhow::Result<()> {
    if !own_pattern.ends_with(":%") {
        return Ok(());
    }
    for owner in store.lease_owners(own_pattern).await? {
        if crate::config::replica::local_owner_is_gone(&owner, own_id) {
            let released = store.release_leases(&owner).await?;
            tracing::info!(
                owner,
                released,
                "released the claims of a daemon that is no longer running"
            );
        }
    }
    Ok(())
}

/// Closes the runs a previous process of this replica left `running`: those under
/// exactly `own_id` (a named replica restarted), and those of a default-shaped id of this
/// host whose process is gone. Ids are compared whole, never as a pattern, so a live
/// sibling daemon's cycle, or another named replica whose id an `_` or `%` would match,
/// is never touched.
pub async fn abandon_previous_runs(store: &Store, own_id: &str) -> anyhow::Result<u64> {
    let mut abandoned = 0;
    for replica in store.running_replicas().await? {
        if replica == own_id || crate::config::replica::local_owner_is_gone(&replica, own_id) {
            abandoned += store.abandon_runs(&replica).await?;
        }
    }
    Ok(abandoned)
}

/// Everything `run` needs, assembled: store migrated, config projects tracked,
/// cycles orphaned by a previous process closed.
pub async fn prepare_engine(settings: &Settings) -> anyhow::Result<Arc<Engine>> {
    prepare_engine_with(settings, |_| {}).await
}

/// [`prepare_engine`], with a last word on the engine options (tests that drive cycles
/// by hand drop the schedule so every project is due at every cycle).
pub async fn prepare_engine_with(
    settings: &Settings,
    customize: impl FnOnce(&mut EngineOptions),
) -> anyhow::Result<Arc<Engine>> {
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
    let mut options = engine_options(settings);
    customize(&mut options);
    let own = own_runs_pattern(&options.replica_id);
    let abandoned = abandon_previous_runs(&store, &options.replica_id).await?;
    release_dead_local_leases(&store, &own, &options.replica_id).await?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "closed sync runs left running by a previous process"
        );
    }
    let (added, disabled) = store
        .sync_config_projects(&settings.sync.projects, now(&store).await?)
        .await?;
    if added > 0 || disabled > 0 {
        tracing::info!(
            added,
            disabled,
            "tracked projects updated from sync.projects"
        );
    }
    let credentials = resolve_credentials(settings)?;
    // Fail at start-up, not at the first cycle, when no source yields credentials.
    credentials.credentials().await?;
    tracing::info!(source = %credentials.source(), provider = %credentials.kind(), endpoint = %settings.ice.endpoint, "credentials resolved");
    let client = build_client(settings, credentials)?;
    Ok(Arc::new(Engine::new(store, client, options).holding(lock)))
}

/// The ICE callback endpoint of `callback.listen` (if set), bound and with its keys read,
/// not serving yet: called before READY, so a port in use or a missing AuthKey stops
/// start-up. [`run_daemon`] serves it.
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

/// `ice-sync run`: cycles on the schedule until `shutdown`, and the callback endpoint
/// (from [`bind_callbacks`]) beside them; `feed` (see [`start_feed`]) stops with them,
/// before the store closes.
pub async fn run_daemon(
    settings: &Settings,
    config_path: Option<std::path::PathBuf>,
    engine: Arc<Engine>,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
    callbacks: Option<crate::callback::Bound>,
    feed: Option<crate::feed::Running>,
) -> u64 {
    tracing::info!(
        schedule = %settings.sync.schedule.expression,
        backend = engine.store().backend(),
        "ice-sync started"
    );
    let options = SchedulerOptions {
        schedule: settings.sync.schedule.clone(),
        shutdown_timeout: settings.sync.shutdown_timeout,
        // Half the systemd watchdog interval when one is set, so pings are never late.
        heartbeat: crate::ops::notify::heartbeat_interval(crate::ops::notify::DEFAULT_HEARTBEAT),
    };
    let (reloader, updates) = reload::Reloader::new(config_path, settings.clone(), engine.clone());
    let reloads = reloader.spawn_on_sighup(shutdown.clone());
    let requests = spawn_requests(updates.clone(), hooks.clone(), shutdown.clone());
    let shutdown_timeout = options.shutdown_timeout;
    let callbacks = callbacks.map(|bound| bound.serve(shutdown.clone()));
    let retention = crate::retention::daemon::spawn(
        engine.store().clone(),
        engine.clock().clone(),
        crate::retention::rules(settings),
        crate::retention::daemon::interval(),
        shutdown.clone(),
    );
    let cycles = scheduler::run_reloadable(updates, options, hooks, shutdown).await;
    // Requested cycles stop claiming with the shutdown token; their in-flight polls
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
    if let Some(feed) = feed {
        feed.stopped().await;
    }
    engine.store().close().await;
    tracing::info!(cycles, "ice-sync stopped");
    cycles
}

/// Serves poll requests beside the schedule, on the engine the latest reload built.
fn spawn_requests(
    updates: tokio::sync::watch::Receiver<scheduler::Current<Engine>>,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        crate::sync::requests::serve_requests(
            move || updates.borrow().engine.clone(),
            move |report| {
                scheduler::log_report(report);
                hooks.requested_cycle_finished(report);
            },
            shutdown,
        )
        .await
    })
}

/// Exit code of `run --once`: 0 only when every due project was polled without error.
pub fn exit_code(outcome: CycleOutcome) -> u8 {
    match outcome {
        CycleOutcome::Success => 0,
        CycleOutcome::Failed => 1,
        CycleOutcome::Partial => 3,
    }
}

/// Cancels the token on SIGTERM or SIGINT; a second signal exits at once. The handlers
/// are installed before this returns, not when the task first runs: a signal that came
/// in between (a busy start-up) would otherwise kill the process with the default action.
pub fn cancel_on_signals(token: CancellationToken) {
    let mut signals = Signals::install();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutdown requested: finishing in-flight projects");
        token.cancel();
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// SIGTERM and SIGINT, each registered with tokio at [`Signals::install`].
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.term) => {}
                _ = recv(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
