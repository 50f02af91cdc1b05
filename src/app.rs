//! Wiring: turns [`Settings`] into a connected store, an ICE client and an engine, and
//! runs the daemon. Commands in `cli` call these; tests call them too, so the daemon
//! under test is assembled exactly as in production.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::credentials::{self, Credentials};
use crate::ice::{ClientOptions, IceClient};
use crate::scheduler::{self, SchedulerHooks, SchedulerOptions};
use crate::storage::Store;
use crate::sync::engine::{CycleOutcome, CycleReport, Engine, EngineOptions};

/// Connects and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
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

pub fn resolve_credentials(settings: &Settings) -> anyhow::Result<Credentials> {
    credentials::resolve(&settings.ice.credentials, |k| std::env::var(k).ok())
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
    }
}

pub fn build_client(settings: &Settings, credentials: Credentials) -> anyhow::Result<IceClient> {
    IceClient::new(client_options(settings), credentials).context("building the HTTP client")
}

/// `sync.replica_id` is not configurable yet: the host name names this daemon in
/// `sync_runs`.
pub fn replica_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

pub fn engine_options(settings: &Settings) -> EngineOptions {
    EngineOptions {
        concurrency: settings.sync.concurrency,
        removal_confirmations: settings.sync.removal_confirmations,
        cycle_timeout: Some(
            settings
                .sync
                .cycle_timeout
                .unwrap_or_else(|| settings.sync.schedule.period()),
        ),
        replica_id: replica_id(),
    }
}

/// Everything `run` needs, assembled: store migrated, config projects tracked,
/// cycles orphaned by a previous process closed.
pub async fn prepare_engine(settings: &Settings) -> anyhow::Result<Arc<Engine>> {
    let store = open_store(settings).await?;
    let options = engine_options(settings);
    let abandoned = store.abandon_runs(&options.replica_id).await?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "closed sync runs left running by a previous process"
        );
    }
    let config_ids: Vec<String> = settings
        .sync
        .projects
        .iter()
        .map(|p| p.to_string())
        .collect();
    let (added, disabled) = store.sync_config_projects(&config_ids).await?;
    if added > 0 || disabled > 0 {
        tracing::info!(
            added,
            disabled,
            "tracked projects updated from sync.projects"
        );
    }
    let credentials = resolve_credentials(settings)?;
    tracing::info!(source = %credentials.source, endpoint = %settings.ice.endpoint, "credentials resolved");
    let client = build_client(settings, credentials)?;
    Ok(Arc::new(Engine::new(store, client, options)))
}

/// `ice-sync run --once`: one cycle, reported.
pub async fn run_once(engine: &Engine, shutdown: &CancellationToken) -> CycleReport {
    let report = engine.run_cycle(shutdown).await;
    scheduler::log_report(&report);
    report
}

/// `ice-sync run`: cycles on the schedule until `shutdown`.
pub async fn run_daemon(
    settings: &Settings,
    engine: Arc<Engine>,
    hooks: Arc<dyn SchedulerHooks>,
    shutdown: CancellationToken,
) -> u64 {
    tracing::info!(
        schedule = %settings.sync.schedule.expression,
        backend = engine.store().backend(),
        "ice-sync started"
    );
    let options = SchedulerOptions {
        schedule: settings.sync.schedule.clone(),
        shutdown_timeout: settings.sync.shutdown_timeout,
        heartbeat: Duration::from_secs(5),
    };
    let cycles = scheduler::run(engine.clone(), options, hooks, shutdown).await;
    engine.store().close().await;
    tracing::info!(cycles, "ice-sync stopped");
    cycles
}

/// Exit code of `run --once`: 0 only when every due project was polled without error.
pub fn exit_code(outcome: CycleOutcome) -> u8 {
    match outcome {
        CycleOutcome::Success => 0,
        CycleOutcome::Failed => 1,
        CycleOutcome::Partial => 3,
    }
}

/// Cancels the token on SIGTERM or SIGINT; a second signal exits at once.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: finishing in-flight projects");
        token.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
