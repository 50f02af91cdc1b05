//! Wiring: turns [`Settings`] into a connected store, an ICE client and an engine, and
//! runs the daemon ([`Daemon`]). Commands in `cli` call these; `demo`, `check` and the
//! tests do too, so the daemon under test is assembled exactly as in production.
//!
//! The ICE client's options and the engine's options are built here and nowhere else
//! ([`client_options_of`], [`engine_options_of`]), each from the settings half
//! (`config::halves`) a value belongs to.

mod daemon;
mod region;
pub(crate) mod reload;
pub(crate) mod reload_outcome;
mod webhook;

pub use daemon::{bind_callbacks, Daemon, DaemonBuilder};
pub use region::check_region;
pub use webhook::start_feed;

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Fixed, Live, Settings, SyncMode};
use crate::credentials::{self, CredentialProvider};
use crate::domain::Timestamp;
use crate::ice::{ClientOptions, IceClient};
use crate::storage::{StorageError, Store};
use crate::sync::policy::PollPolicy;
use crate::sync::{CycleOutcome, EngineOptions, ListMode};

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
/// first request (or the start-up check in [`DaemonBuilder::engine`]) walks the chain.
pub fn resolve_credentials(settings: &Settings) -> anyhow::Result<CredentialProvider> {
    credentials::default_chain(&settings.ice.credentials, |k| std::env::var(k).ok())
}

/// The ICE client's options, for a process that keeps `fixed` and runs on `live`. Where
/// the API is and how long a call may take never change under a running daemon; the
/// rate, retries and answer cap follow a reload.
pub(crate) fn client_options_of(fixed: &Fixed, live: &Live) -> ClientOptions {
    ClientOptions {
        endpoint: fixed.ice.endpoint.clone(),
        request_source: fixed.ice.request_source.clone(),
        timeout: fixed.ice.timeout,
        max_qps: live.sync.max_qps,
        max_retries: live.sync.max_retries,
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(20),
        max_response_bytes: live.ice.max_response_bytes,
    }
}

/// [`client_options_of`] the halves of `settings`.
pub fn client_options(settings: &Settings) -> ClientOptions {
    let (fixed, live) = settings.split();
    client_options_of(&fixed, &live)
}

pub fn build_client(
    settings: &Settings,
    credentials: impl Into<CredentialProvider>,
) -> anyhow::Result<IceClient> {
    IceClient::new(client_options(settings), credentials).context("building the HTTP client")
}

/// The engine's options, for a process that keeps `fixed` and runs on `live`. Every
/// field is named (no `..`): a new option does not compile until it is mapped. The live
/// `[sync]` half goes in whole, so a live key the engine reads needs no mapping here.
pub(crate) fn engine_options_of(fixed: &Fixed, live: &Live) -> EngineOptions {
    let list_mode = fixed.sync.mode == SyncMode::List;
    EngineOptions {
        sync: live.sync.clone(),
        // Scheduled cycles stop claiming a margin before the next tick on their own.
        cycle_timeout: fixed.sync.cycle_timeout,
        replica_id: fixed.sync.replica_id.clone(),
        policy: PollPolicy {
            schedule: Some(live.sync.schedule.cron.clone()),
            settled_interval: live.sync.settled_interval,
            intervals: live.sync.intervals.clone(),
            error_backoff_max: live.sync.error_backoff_max,
            full_refresh: list_mode.then_some(fixed.sync.full_refresh_interval),
        },
        lease_ttl: fixed.sync.lease_ttl,
        claim_batch: 0,
        touch_batch: EngineOptions::TOUCH_BATCH,
        write_batch: EngineOptions::WRITE_BATCH,
        write_batch_bytes: EngineOptions::WRITE_BATCH_BYTES,
        list: list_mode.then(|| ListMode {
            filter: fixed.sync.list.clone(),
            discover: fixed.sync.discover,
            sweep_share: fixed.sync.list_sweep_share,
            ..ListMode::default()
        }),
        jobs: live.jobs.enabled,
    }
}

/// [`engine_options_of`] the halves of `settings`.
pub fn engine_options(settings: &Settings) -> EngineOptions {
    let (fixed, live) = settings.split();
    engine_options_of(&fixed, &live)
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
    for owner in store.claims().lease_owners(own_pattern).await? {
        if crate::config::replica::local_owner_is_gone(&owner, own_id) {
            let released = store.claims().release_leases(&owner).await?;
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
    for replica in store.runs().running_replicas().await? {
        if replica == own_id || crate::config::replica::local_owner_is_gone(&replica, own_id) {
            abandoned += store.runs().abandon_runs(&replica).await?;
        }
    }
    Ok(abandoned)
}

/// Closes what a previous process left behind (runs, claims) and tracks `sync.projects`.
async fn take_over(store: &Store, settings: &Settings, replica_id: &str) -> anyhow::Result<()> {
    let own = own_runs_pattern(replica_id);
    let abandoned = abandon_previous_runs(store, replica_id).await?;
    release_dead_local_leases(store, &own, replica_id).await?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "closed sync runs left running by a previous process"
        );
    }
    let (added, disabled) = store
        .tracking()
        .sync_config_projects(&settings.sync.projects, now(store).await?)
        .await?;
    if added > 0 || disabled > 0 {
        tracing::info!(
            added,
            disabled,
            "tracked projects updated from sync.projects"
        );
    }
    Ok(())
}

/// Exit code of `run --once`: 0 only when every due project was polled without error.
pub(crate) fn exit_code(outcome: CycleOutcome) -> u8 {
    match outcome {
        CycleOutcome::Success => 0,
        CycleOutcome::Failed => 1,
        CycleOutcome::Partial => 3,
    }
}

/// Cancels the token on SIGTERM or SIGINT; a second signal exits at once. The handlers
/// are installed before this returns, not when the task first runs: a signal that came
/// in between (a busy start-up) would otherwise kill the process with the default action.
pub(crate) fn cancel_on_signals(token: CancellationToken) {
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
